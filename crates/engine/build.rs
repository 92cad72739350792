//! Builds the reaper that `--init` runs as pid 1 (crates/init/src/main.rs)
//! as a static, stripped binary in `$OUT_DIR/berth-init`, which
//! src/init.rs embeds. It is bind-mounted into arbitrary images, which may
//! have no libc, so it is linked statically against glibc (libc.a comes
//! with Debian's libc6-dev). One rustc call on one source file: the program
//! depends on nothing but std.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let source = manifest.join("../init/src/main.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    let out = PathBuf::from(var("OUT_DIR")).join("berth-init");
    let mut rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()));
    rustc
        .args(["--edition", "2024", "--crate-type", "bin"])
        .args(["--crate-name", "berth_init", "--target", &var("TARGET")])
        .args(["-C", "target-feature=+crt-static", "-C", "panic=abort"])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "lto=fat",
            "-C",
            "codegen-units=1",
        ])
        .args(["-C", "strip=symbols"])
        .arg("-o")
        .arg(&out)
        .arg(&source);
    // The linker Cargo was told to use for the target, if any.
    if let Ok(linker) = std::env::var("RUSTC_LINKER") {
        rustc.arg("-C").arg(format!("linker={linker}"));
    }
    let result = rustc
        .output()
        .unwrap_or_else(|e| panic!("running {rustc:?}: {e}"));
    if !result.status.success() {
        panic!(
            "building the static berth-init from {} failed ({}); static linking needs \
             glibc's libc.a (Debian: apt-get install libc6-dev):\n{}",
            source.display(),
            result.status,
            String::from_utf8_lossy(&result.stderr)
        );
    }
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("cargo sets {name} for build scripts"))
}
