//! `--init`: berth's reaper (crates/init) runs as pid 1 of the container,
//! the command as its child. Signals reach the command, orphans are reaped,
//! exit codes propagate; the same with an external runtime.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::Instance;

/// `run --rm --init --network none busybox ARGS...`.
fn run_init(b: &Instance, args: &[&str]) -> std::process::Output {
    let mut all = vec!["run", "--rm", "--init", "--network", "none", "busybox"];
    all.extend(args);
    b.run(&all)
}

#[test]
fn the_reaper_is_pid_1_and_exit_codes_propagate() {
    let Some(b) = Instance::new() else { return };
    let o = run_init(
        &b,
        &["sh", "-c", "cat /proc/1/cmdline; echo; echo $$; exit 7"],
    );
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("/dev/init\0--\0sh\0-c\0cat /proc/1/cmdline; echo; echo $$; exit 7\0")
    );
    // The command is the reaper's first child.
    assert_eq!(lines.next(), Some("2"));
    // Killed by a signal: 128 + its number.
    let o = run_init(&b, &["sh", "-c", "kill -9 $$"]);
    assert_eq!(o.status.code(), Some(137));
    // A missing command: 127, and the message names it.
    let o = run_init(&b, &["no-such-command"]);
    assert_eq!(o.status.code(), Some(127));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot run \"no-such-command\": executable file not found in $PATH"),
        "{err}"
    );
    // Found but not executable: 126.
    let o = run_init(&b, &["/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"/etc/passwd\""));
    // Nothing of a --rm container stays.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn inspect_shows_init_and_the_command_as_docker_does() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "create",
        "--init",
        "--name",
        "i",
        "--network",
        "none",
        "busybox",
        "sleep",
        "5",
    ]);
    b.ok(&[
        "create",
        "--name",
        "plain",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "i"])).unwrap();
    let v = &v[0];
    assert_eq!(v["HostConfig"]["Init"], true);
    assert_eq!(v["Path"], "sleep");
    assert_eq!(v["Args"], serde_json::json!(["5"]));
    assert_eq!(b.inspect("plain", "{{.HostConfig.Init}}"), "false");
}

/// (pid, comm, state) of every process in container `name`.
fn processes(b: &Instance, name: &str) -> Vec<(u32, String, char)> {
    // A process may vanish between the glob and cat: keep what was read.
    let o = b.run(&["exec", name, "sh", "-c", "cat /proc/[0-9]*/stat"]);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (pid, rest) = l.split_once(" (")?;
            let (comm, rest) = rest.rsplit_once(") ")?;
            Some((pid.parse().ok()?, comm.to_string(), rest.chars().next()?))
        })
        .collect()
}

#[test]
fn orphans_are_reaped() {
    let Some(b) = Instance::new() else { return };
    // The subshell forks `sleep 1` and exits, so the sleep is re-parented
    // to pid 1; the command then becomes `sleep 1000`, which never waits.
    let script = "(sleep 1 &); exec sleep 1000";
    for (name, init) in [("reaped", true), ("control", false)] {
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        if init {
            args.push("--init");
        }
        args.extend(["busybox", "sh", "-c", script]);
        b.ok(&args);
    }
    // Without a reaper, pid 1 is `sleep 1000` and the orphan stays a zombie.
    assert!(
        b.until(30, || processes(&b, "control")
            .iter()
            .any(|(_, comm, state)| comm == "sleep" && *state == 'Z')),
        "{:?}",
        processes(&b, "control")
    );
    // With one, the orphan disappears once it has exited: only the reaper
    // and `sleep 1000` are left (besides the exec'd reader).
    let settled = |p: &[(u32, String, char)]| {
        let sleeps = p.iter().filter(|(_, comm, _)| comm == "sleep").count();
        sleeps == 1 && !p.iter().any(|(_, _, state)| *state == 'Z')
    };
    assert!(
        b.until(30, || settled(&processes(&b, "reaped"))),
        "{:?}",
        processes(&b, "reaped")
    );
    let p = processes(&b, "reaped");
    assert!(p.contains(&(1, "init".into(), 'S')), "{p:?}");
    assert!(p.contains(&(2, "sleep".into(), 'S')), "{p:?}");
}

const TRAPS: &str =
    "trap 'exit 3' TERM; trap 'exit 5' USR1; echo ready; while :; do sleep 0.1; done";

#[test]
fn stop_and_kill_reach_the_command_through_the_reaper() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        "t",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        TRAPS,
    ]);
    // Signals sent before the traps are set would kill the shell instead.
    assert!(b.until(30, || b.ok(&["logs", "t"]) == "ready\n"));
    b.ok(&["kill", "-s", "USR1", "t"]);
    assert_eq!(b.ok(&["wait", "t"]).trim(), "5");
    b.ok(&["start", "t"]);
    assert!(b.until(30, || b.ok(&["logs", "t"]) == "ready\nready\n"));
    // Without forwarding, stop would end in SIGKILL after 60 s (137).
    b.ok(&["stop", "-t", "60", "t"]);
    assert_eq!(b.inspect("t", "{{.State.ExitCode}}"), "3");
}

#[test]
fn a_foreground_run_forwards_signals_through_the_reaper() {
    let Some(b) = Instance::new() else { return };
    let mut c = b
        .cmd(&[
            "run",
            "--rm",
            "--init",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            TRAPS,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let kill = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(c.wait().unwrap().code(), Some(3));
}

#[test]
fn with_a_tty_the_command_is_the_foreground_process_group() {
    let Some(b) = Instance::new() else { return };
    // Fields 5 and 8 of /proc/PID/stat: process group and the terminal's
    // foreground process group (proc(5)).
    let o = b.run(&[
        "run",
        "--rm",
        "-t",
        "--init",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "read -r pid comm state ppid pgrp sid tty tpgid rest < /proc/self/stat; \
         echo pid=$pid pgrp=$pgrp sid=$sid tpgid=$tpgid",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out} {o:?}");
    assert_eq!(out.trim(), "pid=2 pgrp=2 sid=1 tpgid=2");
}

#[test]
fn runc_runs_the_reaper_too() {
    let Some(b) = Instance::new() else { return };
    if Command::new("runc").arg("--version").output().is_err() {
        eprintln!("skipping: runc not installed");
        return;
    }
    let o = b.run(&[
        "run",
        "--rm",
        "--init",
        "--runtime",
        "runc",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "(sleep 0.1 &); cat /proc/1/cmdline; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("/dev/init\0--\0sh\0"),
        "{o:?}"
    );
}
