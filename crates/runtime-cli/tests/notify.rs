//! Seccomp user notification (SCMP_ACT_NOTIFY) end to end: the test process
//! is the listener at `linux.seccomp.listenerPath`; it receives the fd the
//! runtime sends and answers the container's syscalls through it. Each test
//! runs against berth-runtime and, as oracles, runc and crun; where an
//! oracle lacks the feature the test says so instead of failing.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Rt, accept_listener, armed, config};
use serde_json::{Value, json};

const WAIT_KILLABLE: &str = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV";

/// The next notification on a listener fd (SECCOMP_IOCTL_NOTIF_RECV), or
/// None once no process uses the filter any more (POLLHUP). ENOENT means a
/// notification went away before it was received (its process was
/// interrupted); a listener carries on.
fn recv_notification(fd: &OwnedFd) -> Option<libc::seccomp_notif> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let mut p = [PollFd::new(std::os::fd::AsFd::as_fd(fd), PollFlags::POLLIN)];
        match poll(&mut p, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.unwrap(),
        };
        let ev = p[0].revents().unwrap_or(PollFlags::empty());
        if !ev.contains(PollFlags::POLLIN) && ev.contains(PollFlags::POLLHUP) {
            return None;
        }
        // SAFETY: the kernel wants a zeroed seccomp_notif; all-zero is valid.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: NOTIF_RECV fills the struct we own, of the size it encodes.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut n) };
        if r == 0 {
            return Some(n);
        }
        let e = std::io::Error::last_os_error();
        let again = matches!(e.raw_os_error(), Some(libc::EINTR | libc::ENOENT));
        assert!(again, "NOTIF_RECV: {e}");
    }
}

/// Waits until process `pid` has exited (through a pidfd: no polling of
/// /proc, no pid reuse).
fn wait_exit(pid: u32) {
    // SAFETY: pidfd_open(2) with a pid and no flags; returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as i32, 0) };
    if fd < 0 {
        return; // already gone
    }
    // SAFETY: pidfd_open returned a new fd we own.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    let mut p = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&fd),
        nix::poll::PollFlags::POLLIN,
    )];
    while nix::poll::poll(&mut p, nix::poll::PollTimeout::NONE) == Err(nix::errno::Errno::EINTR) {}
}

/// Answers notification `id`: the syscall fails with `errno`. Err is the
/// errno of the answer itself (ENOENT: the notification is gone).
fn answer(fd: &OwnedFd, id: u64, errno: i32) -> Result<(), i32> {
    let mut resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: NOTIF_SEND reads the response we own.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

fn no_pending_notification(fd: &OwnedFd) -> bool {
    let mut p = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(fd),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut p, nix::poll::PollTimeout::ZERO).unwrap() == 0
}

/// Whether `rt` says it supports WAIT_KILLABLE_RECV. crun 1.8 has no
/// `features`: it is tried.
fn supports_wait_killable(rt: &Rt) -> bool {
    let o = rt.out(&["features"]);
    if !o.status.success() {
        return true;
    }
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    v["linux"]["seccomp"]["supportedFlags"]
        .as_array()
        .is_some_and(|a| a.iter().any(|f| f == WAIT_KILLABLE))
}

fn notify_config(args: &[&str], sock: &Path, flags: &[&str]) -> Value {
    let mut cfg = config(args);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "meta-notify",
        "flags": flags,
        "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    cfg
}

/// The scheduler state letter of `pid` (field 3 of /proc/PID/stat) and
/// whether SIGURG is pending for it, or None once it is gone.
fn sleep_state(pid: u32) -> Option<(char, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let urg = 1u64 << (libc::SIGURG - 1);
    let pending = status.lines().any(|l| {
        (l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
            && u64::from_str_radix(l[7..].trim(), 16).is_ok_and(|m| m & urg != 0)
    });
    Some((state, pending))
}

/// Waits until `pid`, blocked in a notified syscall, sleeps in the killable
/// state ('D') with SIGURG pending: what WAIT_KILLABLE_RECV does once the
/// listener has received the notification. Without the flag the signal
/// ends the wait and the process leaves the syscall (EINTR) instead.
fn wait_for_killable_sleep(pid: u32) {
    // Only a guard against hanging; the outcome does not depend on time.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sleep_state(pid) {
            Some(('D', true)) => return,
            Some(('Z', _)) | None => {
                panic!("the signal ended the notification wait of {pid}: the flag is not in effect")
            }
            Some(other) => assert!(
                Instant::now() < deadline,
                "{pid} never slept killable with SIGURG pending: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The probe process installs a SIGURG handler (no SA_RESTART) and makes a
/// notified mkdir. The listener takes the notification, then the test sends
/// SIGURG to the waiting process. Returns the probe's output and how the
/// listener's answer (EXDEV) went. The container is created and started,
/// not `run`: runc's foreground `run` forwards signals (its own SIGURG
/// preemption among them) to the container.
fn signal_while_notified(rt: &Rt, wait_killable: bool) -> (String, Result<(), i32>) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("listener.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let flags: &[&str] = if wait_killable { &[WAIT_KILLABLE] } else { &[] };
    let probe = "exec /bin/attack notify-wait >/result 2>&1";
    let mut cfg = notify_config(&["sh", "-c", probe], &sock, flags);
    cfg["root"]["readonly"] = json!(false);
    let c = armed(rt, &cfg);
    c.create_ok();
    rt.ok(&["start", &c.id]);
    let (doc, fd) = accept_listener(&listener, || {
        (rt.status(&c.id) == "stopped")
            .then(|| format!("{} stopped before sending the fd", rt.name))
    });
    assert_eq!(doc["metadata"], "meta-notify", "{}: {doc}", rt.name);
    let fd = fd.expect("no listener fd");
    let n = recv_notification(&fd).expect("the probe ended without a notification");
    assert_eq!(n.data.nr as i64, libc::SYS_mkdirat, "{}", rt.name);
    // SAFETY: kill(2) on the container process that just notified us.
    assert_eq!(unsafe { libc::kill(n.pid as i32, libc::SIGURG) }, 0);
    let answered = if wait_killable {
        wait_for_killable_sleep(n.pid);
        let a = answer(&fd, n.id, libc::EXDEV);
        wait_exit(n.pid);
        a
    } else {
        // The signal ends the wait: let the process finish first, so the
        // answer cannot race it.
        wait_exit(n.pid);
        answer(&fd, n.id, libc::EXDEV)
    };
    let out = std::fs::read_to_string(c.bundle.rootfs().join("result")).unwrap();
    (out, answered)
}

// With WAIT_KILLABLE_RECV the process keeps waiting for the listener's
// answer through a non-fatal signal (the Go runtime's SIGURG preemption is
// the case it was made for), then runs the handler and gets the answer.
all3!(wait_killable_recv_survives_signals, |rt: Rt| {
    if !supports_wait_killable(&rt) {
        eprintln!("{}: does not support {WAIT_KILLABLE}", rt.name);
        return;
    }
    let (out, answered) = signal_while_notified(&rt, true);
    assert_eq!(answered, Ok(()), "{}: {out}", rt.name);
    assert_eq!(out, "handler\nmkdir 18\n", "{}: EXDEV expected", rt.name);
});

// Control: without the flag the same signal interrupts the wait (EINTR)
// and the listener's answer finds no notification.
all3!(wait_killable_control_signal_interrupts, |rt: Rt| {
    let (out, answered) = signal_while_notified(&rt, false);
    assert_eq!(answered, Err(libc::ENOENT), "{}: {out}", rt.name);
    assert_eq!(out, "handler\nmkdir 4\n", "{}: EINTR expected", rt.name);
});

fn oracle_gap(rt: &Rt, gap: &str) -> bool {
    if !rt.is_berth() {
        eprintln!("known {} gap: {gap}", rt.name);
        return true;
    }
    false
}

// `exec` loads a new filter for its process, so it has a listener fd of its
// own: the runtime sends it with the exec'd process's pid and the
// container's state ("running").
all3!(exec_sends_its_own_listener_fd, |rt: Rt| {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("listener.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let c = common::Ctr::new(&rt, &notify_config(&["sleep", "30"], &sock, &[]));
    c.create_ok();
    rt.ok(&["start", &c.id]);
    let init_pid = rt.state(&c.id)["pid"].as_i64().unwrap();
    let (doc, init_fd) = accept_listener(&listener, || None);
    assert_eq!(doc["pid"], init_pid, "{}: {doc}", rt.name);
    let init_fd = init_fd.expect("no init listener fd");
    let pid_file = dir.path().join("exec.pid");
    std::thread::scope(|s| {
        let exec = s.spawn(|| {
            rt.out(&[
                "exec",
                "--pid-file",
                pid_file.to_str().unwrap(),
                &c.id,
                "mkdir",
                "/from-exec",
            ])
        });
        let got = common::try_accept_listener(&listener, || {
            exec.is_finished()
                .then(|| format!("{}: exec ended without sending its fd", rt.name))
        });
        let (doc, fd) = match got {
            Ok(got) => got,
            Err(_) if oracle_gap(&rt, "exec does not send its seccomp listener fd") => return,
            Err(why) => panic!("{why}"),
        };
        assert_eq!(doc["fds"], json!(["seccompFd"]), "{}: {doc}", rt.name);
        assert_eq!(doc["metadata"], "meta-notify", "{}: {doc}", rt.name);
        assert_eq!(doc["state"]["id"], c.id.as_str(), "{}: {doc}", rt.name);
        assert_eq!(doc["state"]["status"], "running", "{}: {doc}", rt.name);
        let fd = fd.expect("no exec listener fd");
        let n = recv_notification(&fd).expect("exec's mkdir sent no notification");
        assert_eq!(answer(&fd, n.id, libc::EXDEV), Ok(()), "{}", rt.name);
        let pid = doc["pid"].as_i64().unwrap();
        let pid_known = pid != 0 || !oracle_gap(&rt, "exec's containerProcessState has pid 0");
        if pid_known {
            assert_ne!(pid, init_pid, "{}: the init's pid: {doc}", rt.name);
            assert_eq!(
                n.pid as i64, pid,
                "{}: notified by another process",
                rt.name
            );
        }
        let o = exec.join().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("cross-device"),
            "{}: mkdir did not get the listener's answer: {err}",
            rt.name
        );
        let written: i64 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            written, n.pid as i64,
            "{}: pid file and notifier differ",
            rt.name
        );
    });
    assert!(
        no_pending_notification(&init_fd),
        "{}: the exec'd mkdir reached the init's listener",
        rt.name
    );
});
