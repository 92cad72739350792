//! berth-monitor: the small per-container monitor (see the crate docs).
//! It inherits the container's init as its child and the init's stdio
//! fds from the `berth` process that exec'd it, then runs the I/O loop:
//! json-file logs, an attach socket, periodic health checks (spawned as
//! `berth __healthcheck ID`). When the init exits it writes the exit file
//! and execs `berth __monitor-exited ID CODE` for the bookkeeping.
//!
//! Arguments: BERTH_EXE ROOT ID PID STDOUT_FD STDERR_FD PTY_FD STDIN_FD
//! LOG_PATH LOG_MAX_SIZE LOG_MAX_FILE SOCKET EXIT_FILE HEALTH_INTERVAL_MS

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use berth_engine::io::{Loop, Streams};
use berth_engine::logs::LogWriter;

fn fd(arg: &str) -> Option<OwnedFd> {
    let n: i32 = arg.parse().ok()?;
    // SAFETY: the fd numbers were passed by the process that exec'd us and
    // are owned by nothing else in this process.
    (n >= 0).then(|| unsafe { OwnedFd::from_raw_fd(n) })
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 15 {
        eprintln!("berth-monitor: internal program of berth; not to be run by hand");
        std::process::exit(2);
    }
    let (berth, root, id) = (&a[1], &a[2], &a[3]);
    let pid: i32 = a[4].parse().unwrap_or(0);
    let pidfd = match berth_engine::runtimes::pidfd_open(pid) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("berth-monitor: {e}");
            std::process::exit(1);
        }
    };
    let streams = Streams {
        stdout: fd(&a[5]),
        stderr: fd(&a[6]),
        pty: fd(&a[7]),
        stdin: fd(&a[8]),
    };
    let log = LogWriter::open(
        Path::new(&a[9]),
        a[10].parse().unwrap_or(0),
        a[11].parse().unwrap_or(1),
    )
    .ok();
    let sock = Path::new(&a[12]);
    let _ = std::fs::remove_file(sock);
    let listener = berth_engine::io::bind_socket(sock).ok();
    let health_ms: u64 = a[14].parse().unwrap_or(0);
    let mut health_child: Option<std::process::Child> = None;
    let lp = Loop {
        pid,
        pidfd,
        streams,
        log,
        listener,
        local: false,
        forward_stdin: false,
        signals: None,
        tick_ms: (health_ms > 0).then_some(health_ms),
    };
    let code = lp.run(|| {
        // One health check at a time; the child records its own result.
        if let Some(c) = &mut health_child
            && c.try_wait().ok().flatten().is_none()
        {
            return;
        }
        health_child = Command::new(berth)
            .args(["--root", root, "__healthcheck", id])
            .spawn()
            .ok();
    });
    if let Some(mut c) = health_child {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = std::fs::remove_file(sock);
    let exit_file = Path::new(&a[13]);
    let tmp = exit_file.with_extension("tmp");
    if std::fs::write(&tmp, code.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, exit_file);
    }
    // Errors of the hand-off go to monitor.log next to the json log.
    if let Ok(f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(&a[9]).with_file_name("monitor.log"))
    {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto our own stderr.
        unsafe { libc::dup2(f.as_raw_fd(), 2) };
    }
    let err = Command::new(berth)
        .args(["--root", root, "__monitor-exited", id, &code.to_string()])
        .exec();
    eprintln!("berth-monitor: exec {berth}: {err}");
    std::process::exit(1);
}
