//! `--runtime`: an external runc-compatible binary drives the same bundle.

mod common;

use common::Instance;

#[test]
fn runc_runs_foreground_and_detached() {
    let Some(b) = Instance::new() else { return };
    if !std::path::Path::new("/usr/sbin/runc").exists()
        && !std::path::Path::new("/usr/bin/runc").exists()
    {
        eprintln!("skipping: runc not installed");
        return;
    }
    assert_eq!(
        b.ok_none(&["--runtime", "runc", "busybox", "echo", "via-runc"]),
        "via-runc\n"
    );
    let o = b.run_none(&["--runtime", "runc", "busybox", "sh", "-c", "exit 4"]);
    assert_eq!(o.status.code(), Some(4));
    b.ok(&[
        "run",
        "-d",
        "--name",
        "r",
        "--network",
        "none",
        "--runtime",
        "runc",
        "busybox",
        "sh",
        "-c",
        "echo up; sleep 1000",
    ]);
    assert!(b.until(10, || b.ok(&["logs", "r"]) == "up\n"));
    assert_eq!(
        b.inspect("r", "{{.HostConfig.Runtime}}")
            .rsplit('/')
            .next()
            .unwrap(),
        "runc"
    );
    assert_eq!(
        b.ok(&[
            "exec",
            "-e",
            "X=7",
            "-u",
            "nobody",
            "r",
            "sh",
            "-c",
            "echo $X $(id -u)"
        ]),
        "7 65534\n"
    );
    assert_eq!(
        b.run(&["exec", "r", "sh", "-c", "exit 6"]).status.code(),
        Some(6)
    );
    b.ok(&["stop", "-t", "1", "r"]);
    assert_eq!(b.inspect("r", "{{.State.Status}}"), "exited");
    b.ok(&["rm", "r"]);
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    let o = b.run(&[
        "run",
        "--rm",
        "--runtime",
        "/no/such/runtime",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/runtime"));
}
