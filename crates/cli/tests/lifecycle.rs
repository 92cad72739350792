//! Detached containers and their monitor: logs, logs -f, attach, exec,
//! stop/kill/restart/rm, pause, rename, wait, top, inspect, restart policies.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::Instance;

const LOOP: &str = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done";

fn log_lines(b: &Instance, name: &str) -> usize {
    b.ok(&["logs", name]).lines().count()
}

#[test]
fn detached_container_keeps_logging_and_logs_follow() {
    let Some(b) = Instance::new() else { return };
    let id = b.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        LOOP,
    ]);
    assert_eq!(id.trim().len(), 64);
    // The CLI has exited; the monitor keeps writing logs.
    assert!(b.until(10, || log_lines(&b, "talker") >= 5));
    let n = log_lines(&b, "talker");
    assert!(b.until(10, || log_lines(&b, "talker") > n + 3));
    // logs -f follows the live container.
    let mut f = b
        .cmd(&["logs", "-f", "--tail", "0", "talker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(f.stdout.take().unwrap());
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    let mut second = String::new();
    r.read_line(&mut second).unwrap();
    let num = |s: &str| {
        s.trim()
            .strip_prefix("line ")
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(num(&second), num(&first) + 1);
    // Timestamps and --tail.
    let t = b.ok(&["logs", "-t", "--tail", "2", "talker"]);
    assert_eq!(t.lines().count(), 2);
    assert!(t.starts_with("20"), "{t}");
    // stop ends logs -f.
    b.ok(&["stop", "-t", "1", "talker"]);
    let status = f.wait().unwrap();
    assert!(status.success());
    assert_eq!(b.inspect("talker", "{{.State.Status}}"), "exited");
    assert_eq!(b.inspect("talker", "{{.State.ExitCode}}"), "137");
    // The monitor is gone and cleaned up.
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
}

#[test]
fn attach_and_wait_reattach_to_the_monitor() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "w",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "sleep 3; echo done; exit 7",
    ]);
    let attach = b
        .cmd(&["attach", "--no-stdin", "w"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&attach.stdout), "done\n");
    assert_eq!(attach.status.code(), Some(7));
    assert_eq!(b.ok(&["wait", "w"]).trim(), "7");
    // start again, wait from another CLI.
    b.ok(&["start", "w"]);
    assert_eq!(b.ok(&["wait", "w"]).trim(), "7");
    assert_eq!(b.ok(&["logs", "w"]), "done\ndone\n");
    // start -a is attached and returns the code.
    let o = b.run(&["start", "-a", "w"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "done\n");
}

#[test]
fn exec_env_user_workdir_and_tty() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "e",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        b.ok(&["exec", "-e", "X=42", "e", "sh", "-c", "echo $X"]),
        "42\n"
    );
    assert_eq!(b.ok(&["exec", "-u", "nobody", "e", "id", "-u"]), "65534\n");
    assert_eq!(b.ok(&["exec", "-w", "/tmp", "e", "pwd"]), "/tmp\n");
    let o = b.run(&["exec", "e", "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    let o = b.run(&["exec", "e", "no-such-binary"]);
    assert_eq!(o.status.code(), Some(127));
    // -t: the process gets a pty.
    let out = b.ok(&["exec", "-t", "e", "tty"]);
    assert!(out.contains("/dev/pts/"), "{out:?}");
    // -i without -t: stdin is passed through.
    let mut c = b
        .cmd(&["exec", "-i", "e", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "through stdin\n");
    // -d returns at once; the process runs in the container.
    b.ok(&["exec", "-d", "e", "sh", "-c", "echo bg > /tmp/bg"]);
    assert!(b.until(5, || b.run(&["exec", "e", "cat", "/tmp/bg"]).stdout
        == b"bg\n"));
    // top lists the processes.
    let top = b.ok(&["top", "e"]);
    assert!(top.contains("sleep 1000"), "{top}");
}

#[test]
fn exec_it_through_a_pty() {
    let Some(b) = Instance::new() else { return };
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: no script(1)");
        return;
    }
    b.ok(&[
        "run",
        "-d",
        "--name",
        "p",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    // script(1) gives berth a terminal; the shell in the container reads
    // our input through the pty and its output comes back.
    let cmd = format!(
        "{} --root {} exec -it p sh -c 'read x; echo got:$x; tty'",
        common::BERTH,
        b.root().display()
    );
    let mut c = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("BERTH_MONITOR", common::MONITOR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = c.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"hello\r").unwrap();
    let o = c.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("got:hello"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
}

#[test]
fn run_it_through_a_pty() {
    let Some(b) = Instance::new() else { return };
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: no script(1)");
        return;
    }
    let cmd = format!(
        "{} --root {} run -it --rm --network none busybox sh -c 'read x; echo got:$x; tty; exit 3'",
        common::BERTH,
        b.root().display()
    );
    let mut c = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("BERTH_MONITOR", common::MONITOR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = c.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    stdin.write_all(b"hello\r").unwrap();
    let o = c.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("got:hello"), "{out:?}");
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn stop_kill_restart_rename_pause() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "create",
        "--name",
        "c1",
        "--network",
        "none",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo usr1; exit 9' USR1; while true; do sleep 0.1; done",
    ]);
    assert_eq!(b.inspect("c1", "{{.State.Status}}"), "created");
    b.ok(&["start", "c1"]);
    assert_eq!(b.inspect("c1", "{{.State.Status}}"), "running");
    let o = b.run(&["rm", "c1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stop it first"));
    // The custom stop signal is used.
    b.ok(&["stop", "c1"]);
    assert_eq!(b.inspect("c1", "{{.State.ExitCode}}"), "9");
    assert_eq!(b.ok(&["logs", "c1"]), "usr1\n");
    b.ok(&["restart", "c1"]);
    assert_eq!(b.inspect("c1", "{{.State.Status}}"), "running");
    b.ok(&["kill", "-s", "USR1", "c1"]);
    assert!(b.until(5, || b.inspect("c1", "{{.State.Status}}") == "exited"));
    b.ok(&["start", "c1"]);
    b.ok(&["pause", "c1"]);
    assert_eq!(b.inspect("c1", "{{.State.Status}}"), "paused");
    b.ok(&["unpause", "c1"]);
    b.ok(&["rename", "c1", "c2"]);
    assert_eq!(b.inspect("c2", "{{.Name}}"), "/c2");
    assert_eq!(b.run(&["inspect", "c1"]).status.code(), Some(1));
    b.ok(&["kill", "c2"]);
    assert!(b.until(5, || b.inspect("c2", "{{.State.ExitCode}}") == "137"));
    b.ok(&["rm", "c2"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(b.mounts().is_empty());
}

#[test]
fn restart_policy_restarts_n_times() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "crash",
        "--network",
        "none",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 2",
    ]);
    let done = b.until(30, || {
        b.inspect("crash", "{{.RestartCount}}") == "3"
            && b.inspect("crash", "{{.State.Status}}") == "exited"
    });
    assert!(done, "{}", b.ok(&["inspect", "crash"]));
    // Three restarts: four runs in total, then it stays down.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.ok(&["logs", "crash"]).lines().count(), 4);
    assert_eq!(b.inspect("crash", "{{.State.ExitCode}}"), "2");
    // always, stopped by the user: no restart.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "alw",
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    b.ok(&["stop", "-t", "1", "alw"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.inspect("alw", "{{.State.Status}}"), "exited");
}

#[test]
fn rm_leaves_nothing_behind() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "gone",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "sleep 0.3",
    ]);
    assert!(b.until(10, || b.ok(&["ps", "-aq"]).is_empty()));
    b.ok(&[
        "run",
        "-d",
        "--name",
        "f",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    b.ok(&["rm", "-f", "f"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(b.mounts().is_empty(), "{:?}", b.mounts());
    let left: Vec<_> = std::fs::read_dir(b.root().join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty());
    let rt: Vec<_> = std::fs::read_dir(b.run_dir().join("runtime"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(rt.is_empty());
}

#[test]
fn healthcheck_marks_healthy_and_unhealthy() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "h",
        "--network",
        "none",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 1000",
    ]);
    assert!(b.until(15, || b.inspect("h", "{{.State.Health.Status}}")
        == "healthy"));
    b.ok(&["exec", "h", "rm", "/tmp/ok"]);
    assert!(b.until(15, || b.inspect("h", "{{.State.Health.Status}}")
        == "unhealthy"));
    assert!(b.ok(&["ps"]).contains("(unhealthy)"));
}

#[test]
fn logs_rotate_and_filter_by_time() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "rot",
        "--network",
        "none",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done",
    ]);
    assert_eq!(b.ok(&["wait", "rot"]).trim(), "0");
    let dir = b
        .root()
        .join("containers")
        .join(b.inspect("rot", "{{.Id}}"));
    assert!(dir.join("json.log.1").exists() && dir.join("json.log.2").exists());
    assert!(!dir.join("json.log.3").exists());
    for f in ["json.log", "json.log.1", "json.log.2"] {
        assert!(std::fs::metadata(dir.join(f)).unwrap().len() <= 2048, "{f}");
    }
    // What is kept is the newest output, in order.
    let out = b.ok(&["logs", "rot"]);
    assert!(out.ends_with("line 199\n"), "{out}");
    let nums: Vec<u32> = out.lines().map(|l| l[5..].parse().unwrap()).collect();
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1));
    // Each line is a json-file entry with stream and time.
    let first = std::fs::read_to_string(dir.join("json.log")).unwrap();
    let v: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(v["stream"], "stdout");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    // --since in the future shows nothing; --until in the past nothing; 1h ago everything.
    assert_eq!(
        b.ok(&["logs", "--since", "2100-01-01T00:00:00Z", "rot"]),
        ""
    );
    assert_eq!(b.ok(&["logs", "--until", "1h", "rot"]), "");
    assert_eq!(b.ok(&["logs", "--since", "1h", "rot"]), out);
}
