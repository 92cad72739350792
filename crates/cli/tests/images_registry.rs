//! `berth push/pull/login/logout` against Debian's `docker-registry` on
//! 127.0.0.1 (anonymous and htpasswd), with `skopeo` as the oracle.

mod images_util;

use images_util::{Berth, Registry, have, import_busybox, tool};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn push_pull_roundtrip_mount_and_skopeo_interop() {
    let reg = Registry::anonymous();
    let host = reg.host();
    let a = Berth::new();
    let id = import_busybox(&a, "bb:1");
    let dest = format!("{host}/test/bb:1");
    let o = a.out(&["push", "bb:1", &dest]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("pushed"), "{stderr}");
    let manifest_digest = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(manifest_digest.starts_with("sha256:"));

    // Same layers into another repository of the same registry: mounted.
    a.ok(&["tag", "bb:1", &dest]);
    let o = a.out(&["push", "bb:1", &format!("{host}/other/bb:1")]);
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("mounted from another repository"),
        "{stderr}"
    );

    // A second store pulls it: same image id, repo digest recorded.
    let b = Berth::new();
    let pulled = b.ok(&["pull", &dest]);
    assert_eq!(pulled.trim(), id);
    let digests = b.ok(&["images", "--digests", "--format", "{{.Digest}}"]);
    assert_eq!(digests.trim(), manifest_digest);
    // Pulling again finds every blob present.
    let o = b.out(&["pull", &dest]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists") || o.status.success());

    if have("skopeo") {
        // skopeo reads what berth pushed ...
        let inspect = tool(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ]));
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(v["Digest"], manifest_digest);
        // ... and berth pulls what skopeo pushed (docker schema 2).
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("bb.tar");
        a.ok(&["save", "-o", archive.to_str().unwrap(), "bb:1"]);
        let sk = format!("{host}/skopeo/bb:2");
        tool(Command::new("skopeo").args([
            "copy",
            "--dest-tls-verify=false",
            &format!("docker-archive:{}", archive.display()),
            &format!("docker://{sk}"),
        ]));
        let c = Berth::new();
        assert_eq!(c.ok(&["pull", &sk]).trim(), id);
    }
    let err = a.fails(&["pull", &format!("{host}/test/missing:1")]);
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn htpasswd_registry_needs_login_and_credentials_are_private() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let host = reg.host();
    let a = Berth::new();
    import_busybox(&a, "bb:1");
    let dest = format!("{host}/private/bb:1");
    let err = a.fails(&["push", "bb:1", &dest]);
    assert!(err.contains("authentication required"), "{err}");
    let err = a.fails(&["login", &host, "-u", "alice", "-p", "wrong"]);
    assert!(err.contains("invalid username or password"), "{err}");
    a.ok(&["login", &host, "-u", "alice", "-p", "s3cret"]);
    let auth = a.root.path().join("auth.json");
    let mode = std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "credentials file is private");
    a.ok(&["push", "bb:1", &dest]);
    let b = Berth::new();
    let err = b.fails(&["pull", &dest]);
    assert!(err.contains("authentication required"), "{err}");
    b.ok(&["pull", "--creds", "alice:s3cret", &dest]);
    a.ok(&["logout", &host]);
    let err = a.fails(&["pull", &dest]);
    assert!(err.contains("authentication required"), "{err}");
    assert_eq!(a.out(&["logout", &host]).status.code(), Some(1));
}

#[test]
fn corrupt_registry_blob_is_named_and_nothing_lands() {
    let reg = Registry::anonymous();
    let host = reg.host();
    let a = Berth::new();
    import_busybox(&a, "bb:1");
    let dest = format!("{host}/test/corrupt:1");
    a.ok(&["push", "-q", "bb:1", &dest]);
    let layer = a
        .ok(&["image", "inspect", "-f", "{{json .}}", "bb:1"])
        .trim()
        .to_string();
    let _: serde_json::Value = serde_json::from_str(&layer).unwrap();
    // Flip bytes of every large blob (the layer) in the registry's storage.
    let blobs = reg.dir.path().join("data/docker/registry/v2/blobs/sha256");
    let mut flipped = Vec::new();
    for prefix in std::fs::read_dir(&blobs).unwrap() {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let blob = blob.unwrap().path();
            let data = blob.join("data");
            let mut bytes = std::fs::read(&data).unwrap();
            if bytes.len() > 100_000 {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0xff;
                std::fs::write(&data, bytes).unwrap();
                flipped.push(blob.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert_eq!(flipped.len(), 1, "one layer blob");
    let b = Berth::new();
    let err = b.fails(&["pull", "-q", &dest]);
    assert!(
        err.contains(&flipped[0][..12]) && err.contains("verification"),
        "names the bad blob: {err}"
    );
    assert!(b.ids().is_empty(), "no image registered");
    let content = b.root.path().join("content/blobs/sha256").join(&flipped[0]);
    assert!(!content.exists(), "the bad blob never lands");
}

/// Runs `berth ARGS` on a pseudo-terminal (script(1)) with `TERM=term`;
/// returns its status and everything it wrote (stdout and stderr share the
/// terminal), with the terminal's CR LF line ends made LF.
fn on_pty(b: &Berth, args: &[&str], term: &str) -> (std::process::ExitStatus, String) {
    let quoted: Vec<String> = [env!("CARGO_BIN_EXE_berth"), "--root"]
        .iter()
        .map(|s| s.to_string())
        .chain([b.root.path().to_string_lossy().into_owned()])
        .chain(args.iter().map(|s| s.to_string()))
        .map(|a| format!("'{a}'"))
        .collect();
    let o = Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .env("TERM", term)
        .env_remove("BERTH_AUTH_FILE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) (apt install bsdutils)");
    let out = String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n");
    (o.status, out)
}

/// The short digests of the blobs in `Copying blob <short> <word>` lines.
fn blob_lines(text: &str, word: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("Copying blob "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, w)| *w == word)
        .map(|(d, _)| d.to_string())
        .collect()
}

#[test]
fn transfers_show_a_bar_per_blob_on_a_terminal_lines_otherwise_nothing_with_q() {
    let reg = Registry::anonymous();
    let host = reg.host();
    let a = Berth::new();
    let id = import_busybox(&a, "bb:1");
    let dest = format!("{host}/progress/bb:1");
    // Not a terminal: one line per blob on stderr, the digest on stdout.
    let o = a.out(&["push", "bb:1", &dest]);
    assert!(o.status.success(), "{o:?}");
    let blobs = blob_lines(&String::from_utf8_lossy(&o.stderr), "pushed");
    let config = &id["sha256:".len()..][..12];
    assert!(
        blobs.len() >= 2 && blobs.iter().any(|b| b == config),
        "{blobs:?}"
    );
    let layers: Vec<&String> = blobs.iter().filter(|b| *b != config).collect();
    let digest = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    // -q: only the digest, nothing on stderr.
    let o = a.out(&["push", "-q", "bb:1", &dest]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{digest}\n"));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");

    // A terminal: a bar per blob while it moves, its outcome when done.
    let b = Berth::new();
    let (status, out) = on_pty(&b, &["pull", &dest], "xterm");
    assert!(status.success(), "{out}");
    for l in &layers {
        assert!(
            out.contains(&format!("Copying blob {l} [")),
            "no bar for {l}: {out:?}"
        );
        assert!(out.contains(&format!("Copying blob {l} done")), "{out:?}");
    }
    assert!(out.contains("\x1b["), "bars redraw in place: {out:?}");
    assert!(out.ends_with(&format!("{id}\n")), "{out:?}");
    // Pulled again: the layers need no transfer and say so.
    let (status, out) = on_pty(&b, &["pull", &dest], "xterm");
    assert!(status.success(), "{out}");
    for l in &layers {
        assert!(
            out.contains(&format!("Copying blob {l} already exists")),
            "{out:?}"
        );
    }
    // Pushed on a terminal (to a registry without the blobs): bars too.
    let reg2 = Registry::anonymous();
    let dest2 = format!("{}/progress/bb:1", reg2.host());
    let (status, out) = on_pty(&b, &["push", &dest, &dest2], "xterm");
    assert!(status.success(), "{out}");
    for l in &layers {
        assert!(
            out.contains(&format!("Copying blob {l} [")),
            "no bar for {l}: {out:?}"
        );
        assert!(out.contains(&format!("Copying blob {l} pushed")), "{out:?}");
    }

    // A terminal that cannot move its cursor gets plain lines.
    let c = Berth::new();
    let (status, out) = on_pty(&c, &["pull", &dest], "dumb");
    assert!(status.success(), "{out}");
    assert_eq!(blob_lines(&out, "done").len(), blobs.len(), "{out:?}");
    assert!(!out.contains('\x1b'), "{out:?}");

    // -q on a terminal: the image id and nothing else.
    let d = Berth::new();
    let (status, out) = on_pty(&d, &["pull", "-q", &dest], "xterm");
    assert!(status.success(), "{out}");
    assert_eq!(out, format!("{id}\n"));
    // -q without one: the same on stdout, nothing on stderr.
    let e = Berth::new();
    let o = e.out(&["pull", "-q", &dest]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{id}\n"));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
}

#[test]
fn build_reports_base_image_pulls_as_lines() {
    let reg = Registry::anonymous();
    let a = Berth::new();
    let id = import_busybox(&a, "bb:1");
    let base = format!("{}/progress/base:1", reg.host());
    a.ok(&["push", "-q", "bb:1", &base]);
    let b = Berth::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        format!("FROM {base}\nLABEL built=yes\n"),
    )
    .unwrap();
    let o = b.out(&["build", "-t", "app:1", ctx.path().to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("Trying to pull {base}...")), "{err}");
    let config = &id["sha256:".len()..][..12];
    assert!(
        blob_lines(&err, "done").iter().any(|b| b == config),
        "{err}"
    );
    assert!(blob_lines(&err, "done").len() >= 2, "{err}");
    // -q: the built image's id alone.
    let c = Berth::new();
    let o = c.out(&["build", "-q", ctx.path().to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
}
