//! Volumes, bind/tmpfs mounts, cp, commit/diff, container flags.

mod common;

use common::Instance;

#[test]
fn named_volume_survives_and_is_populated() {
    let Some(b) = Instance::new() else { return };
    b.ok_none(&[
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "data\n");
    assert_eq!(
        b.ok_none(&["-v", "data:/data", "busybox", "cat", "/data/f"]),
        "kept\n"
    );
    // First use copies the image's content at the mount point.
    let out = b.ok_none(&["-v", "etc:/etc", "busybox", "cat", "/etc/group"]);
    assert!(out.contains("root:x:0:"), "{out}");
    let mp = b.ok(&["volume", "inspect", "etc"]);
    assert!(mp.contains("\"Mountpoint\""));
    // In use: rm refuses; after the container is gone it works.
    b.ok(&[
        "create",
        "--name",
        "user",
        "-v",
        "data:/data",
        "busybox",
        "true",
    ]);
    let o = b.run(&["volume", "rm", "data"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("in use"));
    b.ok(&["rm", "user"]);
    b.ok(&["volume", "rm", "data"]);
    b.ok(&["volume", "create", "spare"]);
    let pruned = b.ok(&["volume", "prune", "-f"]);
    assert!(
        pruned.contains("spare") && pruned.contains("etc"),
        "{pruned}"
    );
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn bind_ro_tmpfs_and_readonly_rootfs() {
    let Some(b) = Instance::new() else { return };
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from host\n").unwrap();
    let v = format!("{}:/h", host.path().display());
    assert_eq!(
        b.ok_none(&["-v", &v, "busybox", "cat", "/h/in"]),
        "from host\n"
    );
    b.ok_none(&["-v", &v, "busybox", "sh", "-c", "echo back > /h/out"]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "back\n"
    );
    let vro = format!("{v}:ro");
    let o = b.run_none(&["-v", &vro, "busybox", "touch", "/h/x"]);
    assert_ne!(o.status.code(), Some(0));
    let m = format!(
        "type=bind,source={},target=/m,readonly",
        host.path().display()
    );
    let o = b.run_none(&["--mount", &m, "busybox", "touch", "/m/x"]);
    assert_ne!(o.status.code(), Some(0));
    let out = b.ok_none(&[
        "--tmpfs",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "grep /scratch /proc/mounts",
    ]);
    assert!(out.contains("tmpfs"), "{out}");
    let o = b.run_none(&["--read-only", "busybox", "touch", "/x"]);
    assert_ne!(o.status.code(), Some(0));
    let o = b.run_none(&["-v", "/no/such/dir:/x", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn process_flags() {
    let Some(b) = Instance::new() else { return };
    let envf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(envf.path(), "# comment\nFROMFILE=yes\n").unwrap();
    let out = b.ok_none(&[
        "-e",
        "A=1",
        "--env-file",
        &envf.path().to_string_lossy(),
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "boat",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROMFILE $(pwd) $(id -u) $(hostname)",
    ]);
    assert_eq!(out, "1 yes /tmp 65534 boat\n");
    assert_eq!(
        b.ok_none(&["--entrypoint", "echo", "busybox", "via", "entrypoint"]),
        "via entrypoint\n"
    );
    // Capabilities: CAP_NET_RAW is dropped; privileged has CAP_SYS_ADMIN (bit 21).
    let caps = |extra: &[&str]| {
        let mut a = extra.to_vec();
        a.extend(["busybox", "sh", "-c", "grep CapEff /proc/self/status"]);
        let out = b.ok_none(&a);
        u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let default = caps(&[]);
    assert_eq!(default & (1 << 13), 1 << 13, "CAP_NET_RAW by default");
    assert_eq!(caps(&["--cap-drop", "NET_RAW"]) & (1 << 13), 0);
    assert_eq!(caps(&["--cap-add", "SYS_ADMIN"]) & (1 << 21), 1 << 21);
    assert_eq!(default & (1 << 21), 0);
    assert_ne!(caps(&["--privileged"]) & (1 << 21), 0);
    let out = b.ok_none(&[
        "--ulimit",
        "nofile=100:200",
        "busybox",
        "sh",
        "-c",
        "ulimit -n",
    ]);
    assert_eq!(out, "100\n");
    let out = b.ok_none(&[
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert!(out.contains('1'), "{out}");
    // A seccomp profile that denies mkdir.
    let prof = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(prof.path(), r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#).unwrap();
    let so = format!("seccomp={}", prof.path().display());
    let o = b.run_none(&["--security-opt", &so, "busybox", "mkdir", "/tmp/x"]);
    assert_ne!(o.status.code(), Some(0));
    b.ok_none(&[
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "mkdir",
        "/tmp/x",
    ]);
    let out = b.ok_none(&[
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "echo x > /dev/mynull && echo ok",
    ]);
    assert_eq!(out, "ok\n");
    // A labelled container is found by filter; --format json.
    b.ok(&[
        "create", "--name", "lab", "--label", "tier=web", "busybox", "true",
    ]);
    assert_eq!(
        b.ok(&[
            "ps",
            "-a",
            "--filter",
            "label=tier=web",
            "--format",
            "{{.Names}}"
        ]),
        "lab\n"
    );
    assert_eq!(b.ok(&["ps", "-a", "--filter", "label=tier=db", "-q"]), "");
    let js = b.ok(&["ps", "-a", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(js.trim()).unwrap();
    assert_eq!(v["Names"], "lab");
    assert_eq!(v["State"], "created");
    let t = b.ok(&["ps", "-a", "--format", "table {{.Names}}\t{{.State}}"]);
    assert!(t.starts_with("NAMES"), "{t}");
    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "lab"])).unwrap();
    assert_eq!(inspect[0]["Config"]["Labels"]["tier"], "web");
    assert_eq!(inspect[0]["Name"], "/lab");
}

#[test]
fn cp_both_ways_commit_and_diff() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "c",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo inside > /tmp/f; ln -s /etc/passwd /tmp/link; ln -s / /tmp/root; sleep 1000",
    ]);
    assert!(b.until(5, || {
        b.run(&["exec", "c", "cat", "/tmp/f"]).status.success()
    }));
    let host = tempfile::tempdir().unwrap();
    b.ok(&["cp", "c:/tmp/f", &host.path().to_string_lossy()]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("f")).unwrap(),
        "inside\n"
    );
    // A symlink inside resolves inside the container, never on the host.
    let dst = host.path().join("pw");
    b.ok(&["cp", "c:/tmp/root/etc/passwd", &dst.to_string_lossy()]);
    assert!(
        std::fs::read_to_string(&dst)
            .unwrap()
            .contains("nobody:x:65534")
    );
    let src = host.path().join("up");
    std::fs::write(&src, "uploaded\n").unwrap();
    b.ok(&["cp", &src.to_string_lossy(), "c:/tmp/"]);
    assert_eq!(b.ok(&["exec", "c", "cat", "/tmp/up"]), "uploaded\n");
    // Copying onto a symlink that points out of the container stays inside.
    b.ok(&["cp", &src.to_string_lossy(), "c:/tmp/root/escaped"]);
    assert_eq!(b.ok(&["exec", "c", "cat", "/escaped"]), "uploaded\n");
    // Stopped container: still works.
    b.ok(&["stop", "-t", "0", "c"]);
    b.ok(&[
        "cp",
        "c:/tmp/up",
        &host.path().join("again").to_string_lossy(),
    ]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("again")).unwrap(),
        "uploaded\n"
    );
    let diff = b.ok(&["diff", "c"]);
    assert!(
        diff.contains("A /tmp/f") || diff.contains("A /tmp/up"),
        "{diff}"
    );
    let id = b.ok(&["commit", "c", "snap:v1"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(b.ok_none(&["snap:v1", "cat", "/tmp/up"]), "uploaded\n");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
}
