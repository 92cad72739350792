//! Helpers shared by berth's integration tests: a busybox root filesystem
//! made from Debian's `busybox-static`, unique names, and guards that clean
//! up what a test created even when it fails.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where Debian's `busybox-static` installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Errors while preparing test fixtures.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is missing: install Debian's busybox-static (apt-get install busybox-static)")]
    NoBusybox(&'static str),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> FixtureError {
    let what = what.into();
    move |source| FixtureError::Io { what, source }
}

/// A name no other test (in this or a parallel process) uses: `prefix-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Lays out a minimal busybox root filesystem in `root`: `/bin/busybox`, a
/// symlink per applet in `/bin`, `/etc/passwd` and `/etc/group` with root and
/// nobody, and the usual empty mount points.
pub fn busybox_rootfs(root: &Path) -> Result<(), FixtureError> {
    if !Path::new(BUSYBOX).exists() {
        return Err(FixtureError::NoBusybox(BUSYBOX));
    }
    for dir in [
        "bin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "var", "run", "usr/bin", "sbin",
    ] {
        fs::create_dir_all(root.join(dir)).map_err(io(format!("mkdir {dir}")))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))
        .map_err(io("chmod /tmp"))?;
    let target = root.join("bin/busybox");
    fs::copy(BUSYBOX, &target).map_err(io("copy busybox"))?;
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .map_err(io("busybox --list"))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let link = root.join("bin").join(applet);
        if !link.exists() {
            symlink("busybox", &link).map_err(io(format!("symlink {applet}")))?;
        }
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .map_err(io("write /etc/passwd"))?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")
        .map_err(io("write /etc/group"))?;
    Ok(())
}

/// A temporary directory holding an OCI bundle with a busybox rootfs in
/// `rootfs/`; the caller writes `config.json`. Removed on drop.
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    pub fn new() -> Result<Self, FixtureError> {
        let dir = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .map_err(io("create bundle dir"))?;
        busybox_rootfs(&dir.path().join("rootfs"))?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// True when the tests run as root (integration tests that need root skip
/// otherwise, printing why).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs the calling test binary again inside a cgroup-v2-only
/// user-mode-linux kernel (`tests/uml/run.sh`) with `args` as the libtest
/// arguments, and asserts that at least `min_passed` tests passed there.
/// Returns without running when already inside UML (`BERTH_IN_UML`), or,
/// with a printed reason, when not root or linux.uml is missing.
pub fn run_self_in_uml(args: &[&str], min_passed: u32) {
    if std::env::var_os("BERTH_IN_UML").is_some() {
        return;
    }
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let uml = Path::new("/usr/bin/linux.uml");
    if !uml.exists() {
        eprintln!(
            "skipped: {} missing (apt-get install user-mode-linux)",
            uml.display()
        );
        return;
    }
    let run = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/uml/run.sh");
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new("bash")
        .arg(&run)
        .arg(&exe)
        .args(["--test-threads=2", "--color=never"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tests/uml/run.sh");
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    eprintln!(
        "---- UML console ----\n{console}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = console
        .lines()
        .find(|l| l.starts_with("test result:"))
        .unwrap_or("");
    assert!(
        out.status.success() && result.starts_with("test result: ok."),
        "the tests failed inside UML (cgroup v2): {result:?}"
    );
    let passed: u32 = result
        .split(';')
        .next()
        .and_then(|s| s.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        passed >= min_passed,
        "too few tests ran inside UML: {result}"
    );
    assert!(
        console.contains("BERTH_UML_KERNEL="),
        "the guest init did not run"
    );
}
