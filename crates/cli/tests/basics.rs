//! Foreground run, create/start, exit codes, --rm.

mod common;

use common::Instance;

#[test]
fn run_echo_and_exit_codes() {
    let Some(b) = Instance::new() else { return };
    let out = b.ok_none(&["busybox", "echo", "hello"]);
    assert_eq!(out, "hello\n");
    let o = b.run_none(&["busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    let o = b.run_none(&["busybox", "nonexistent-cmd"]);
    assert_eq!(
        o.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = b.run_none(&["busybox", "/etc/passwd"]);
    assert_eq!(
        o.status.code(),
        Some(126),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = b.run_none(&["no-such-image", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-image"));
    // --rm left nothing behind.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    let containers: Vec<_> = std::fs::read_dir(b.root().join("containers"))
        .unwrap()
        .collect();
    assert!(containers.is_empty());
}
