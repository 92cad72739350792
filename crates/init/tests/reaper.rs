//! The reaper as a plain child of the test (not pid 1: it then makes itself
//! a child subreaper): exit codes, exec failures, signal forwarding, and
//! the signal state the command starts with.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const INIT: &str = env!("CARGO_BIN_EXE_berth-init");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(INIT)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running berth-init")
}

#[test]
fn exit_codes_propagate() {
    assert_eq!(run(&["--", "sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(run(&["true"]).status.code(), Some(0));
    // Killed by a signal: 128 + its number, as a shell reports it.
    assert_eq!(run(&["sh", "-c", "kill -9 $$"]).status.code(), Some(137));
}

#[test]
fn commands_that_cannot_run_exit_127_or_126_naming_them() {
    let o = run(&["--", "no-such-command-here"]);
    assert_eq!(o.status.code(), Some(127));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("\"no-such-command-here\"") && err.contains("not found in $PATH"),
        "{err}"
    );
    let o = run(&["--", "/no/such/file"]);
    assert_eq!(o.status.code(), Some(127));
    // Found but not executable.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("script");
    std::fs::write(&f, "#!/bin/sh\n").unwrap();
    let o = run(&["--", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(126));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ermission denied"), "{err}");
    assert_eq!(run(&[]).status.code(), Some(2));
}

#[test]
fn signals_are_forwarded_to_the_command() {
    let mut c = Command::new(INIT)
        .args(["--", "sh", "-c"])
        .arg("trap 'exit 3' TERM; trap 'echo usr1' USR1; echo ready; while :; do sleep 0.05; done")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pid = c.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-USR1", &pid])
            .status()
            .unwrap()
            .success()
    );
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "usr1\n");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(c.wait().unwrap().code(), Some(3));
}

#[test]
fn the_command_starts_with_no_blocked_or_ignored_signals() {
    // The shell hands berth-init ignored SIGINT and SIGHUP (they survive
    // execve); berth-init itself blocks everything.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' INT HUP; exec {INIT} -- cat /proc/self/status"
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success());
    let status = String::from_utf8_lossy(&o.stdout);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .to_string()
    };
    assert_eq!(field("SigBlk:"), "0000000000000000");
    assert_eq!(field("SigIgn:"), "0000000000000000");
}
