//! Crash safety: kill -9 of the monitor and of the CLI in the middle of
//! run, rm and stop, then `system check`; loss of the run dir; two
//! `run --name x` at once; 30 parallel containers.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Instance;

fn monitor_pid(b: &Instance, name: &str) -> i32 {
    let id = b.inspect(name, "{{.Id}}");
    let db = rusqlite_free_pid(b, &id);
    db.expect("monitor pid")
}

/// The monitor is the parent of the container's init.
fn rusqlite_free_pid(b: &Instance, name: &str) -> Option<i32> {
    let pid: i32 = b.inspect(name, "{{.State.Pid}}").parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn kill9(pid: i32) {
    // SAFETY: kill(2) on a process this test started (through berth).
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

fn consistent(b: &Instance) {
    let check = b.ok(&["system", "check"]);
    let again = b.ok(&["system", "check"]);
    assert!(
        again.contains("nothing to repair"),
        "first: {check}\nsecond: {again}"
    );
}

#[test]
fn kill_monitor_then_system_check() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "m",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let mon = monitor_pid(&b, "m");
    let init: i32 = b.inspect("m", "{{.State.Pid}}").parse().unwrap();
    kill9(mon);
    std::thread::sleep(Duration::from_millis(200));
    let out = b.ok(&["system", "check"]);
    assert!(out.contains("monitor gone"), "{out}");
    assert_eq!(b.inspect("m", "{{.State.Status}}"), "exited");
    assert!(
        !std::path::Path::new(&format!("/proc/{init}")).exists()
            || std::fs::read_to_string(format!("/proc/{init}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    consistent(&b);
    // It can be started again.
    b.ok(&["start", "m"]);
    assert_eq!(b.inspect("m", "{{.State.Status}}"), "running");
}

#[test]
fn kill_cli_during_run_stop_and_rm() {
    let Some(b) = Instance::new() else { return };
    // Foreground run killed: its container stays without a parent.
    let mut c = b
        .cmd(&[
            "run",
            "--name",
            "fg",
            "--network",
            "none",
            "busybox",
            "sleep",
            "1000",
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(b.until(
        10,
        || b.run(&["inspect", "-f", "{{.State.Status}}", "fg"]).stdout == b"running\n"
    ));
    kill9(c.id() as i32);
    let _ = c.wait();
    consistent(&b);
    assert_eq!(b.inspect("fg", "{{.State.Status}}"), "exited");
    // stop killed midway (the container ignores TERM, so stop waits).
    b.ok(&[
        "run",
        "-d",
        "--name",
        "s",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let mut c = b.cmd(&["stop", "-t", "30", "s"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    kill9(c.id() as i32);
    let _ = c.wait();
    b.ok(&["stop", "-t", "0", "s"]);
    consistent(&b);
    assert_eq!(b.inspect("s", "{{.State.Status}}"), "exited");
    // rm -f killed midway, at a few points.
    for delay in [0u64, 20, 60] {
        let name = format!("r{delay}");
        b.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "busybox",
            "sleep",
            "1000",
        ]);
        let mut c = b.cmd(&["rm", "-f", &name]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        kill9(c.id() as i32);
        let _ = c.wait();
        let _ = b.run(&["rm", "-f", &name]);
        consistent(&b);
        assert_eq!(b.run(&["inspect", &name]).status.code(), Some(1));
    }
    b.ok(&["rm", "-f", "fg", "s"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    let left: Vec<_> = std::fs::read_dir(b.root().join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn lost_run_dir_shows_exited_and_restarts() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "r",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    // A reboot: every process gone, /run emptied.
    let mon = monitor_pid(&b, "r");
    let init: i32 = b.inspect("r", "{{.State.Pid}}").parse().unwrap();
    kill9(mon);
    kill9(init);
    std::thread::sleep(Duration::from_millis(200));
    for m in b.mounts().into_iter().rev() {
        let _ = std::process::Command::new("umount").arg(&m).status();
    }
    std::fs::remove_dir_all(b.run_dir()).unwrap();
    let ps = b.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited"), "{ps}");
    b.ok(&["start", "r"]);
    assert_eq!(b.inspect("r", "{{.State.Status}}"), "running");
    consistent(&b);
}

#[test]
fn two_runs_with_one_name_one_wins() {
    let Some(b) = Instance::new() else { return };
    let spawn = || {
        b.cmd(&[
            "run",
            "-d",
            "--name",
            "x",
            "--network",
            "none",
            "busybox",
            "sleep",
            "1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let (c1, c2) = (spawn(), spawn());
    let (o1, o2) = (
        c1.wait_with_output().unwrap(),
        c2.wait_with_output().unwrap(),
    );
    let ok = [o1.status.success(), o2.status.success()];
    assert_eq!(ok.iter().filter(|x| **x).count(), 1, "{o1:?} {o2:?}");
    let loser = if ok[0] { o2 } else { o1 };
    assert_eq!(loser.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&loser.stderr).contains("already in use"));
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1);
}

#[test]
fn thirty_parallel_containers() {
    let Some(b) = Instance::new() else { return };
    let names: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
    let phase = |args: &dyn Fn(&str) -> Vec<String>| {
        let children: Vec<_> = names
            .iter()
            .map(|n| {
                let a = args(n);
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                b.cmd(&a)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    };
    phase(&|n| {
        vec![
            "create".into(),
            "--name".into(),
            n.into(),
            "--network".into(),
            "none".into(),
            "busybox".into(),
            "sleep".into(),
            "1000".into(),
        ]
    });
    phase(&|n| vec!["start".into(), n.into()]);
    assert_eq!(b.ok(&["ps", "-q"]).lines().count(), 30);
    phase(&|n| vec!["stop".into(), "-t".into(), "1".into(), n.into()]);
    assert_eq!(b.ok(&["ps", "-q"]).lines().count(), 0);
    phase(&|n| vec!["rm".into(), n.into()]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    let left: Vec<_> = std::fs::read_dir(b.root().join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty());
    consistent(&b);
}
