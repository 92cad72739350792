//! `run`: create, start, and — unless detached — stay with the container:
//! forward signals to it, proxy its terminal, return its exit code, then
//! delete it (as `runc run` does).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Result, bail};
use berth_runtime::{CreateOptions, Runtime};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;

const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

pub fn run(rt: &Runtime, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<u8> {
    let created = rt.create(id, opts)?;
    if detach {
        if created.console.is_some() {
            let _ = rt.delete(id, true);
            bail!("a detached container with a terminal needs --console-socket");
        }
        if let Err(e) = rt.start(id) {
            let _ = rt.delete(id, true);
            return Err(e.into());
        }
        return Ok(0);
    }
    let sfd = block_signals()?;
    if let Err(e) = rt.start(id) {
        let _ = rt.delete(id, true);
        return Err(e.into());
    }
    let code = supervise(
        &created.pidfd,
        created.state.pid,
        &sfd,
        created.console.as_ref(),
    );
    if !keep {
        let _ = rt.delete(id, true);
    }
    code
}

/// Blocks the signals a foreground container receives from us, and returns
/// a signalfd to read them (the container's init unblocks them before execve).
pub fn block_signals() -> Result<SignalFd> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    Ok(SignalFd::new(&mask)?)
}

use berth_runtime::tty::RawMode;

pub fn supervise(
    pidfd: &OwnedFd,
    pid: i32,
    sfd: &SignalFd,
    console: Option<&OwnedFd>,
) -> Result<u8> {
    let _raw = console.map(|_| RawMode::enter());
    if let (Some(c), Some((rows, cols))) = (console, berth_runtime::tty::get_size(0)) {
        let _ = berth_runtime::tty::set_size(c.as_raw_fd(), rows, cols);
    }
    let mut stdin_open = console.is_some();
    let mut buf = [0u8; 8192];
    let stdin = std::io::stdin();
    loop {
        let mut fds = vec![
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(c) = console {
            fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        if ready.get(2) == Some(&true)
            && let Some(c) = console
        {
            match nix::unistd::read(c, &mut buf) {
                Ok(n) if n > 0 => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                _ => {}
            }
        }
        if ready.get(3) == Some(&true)
            && let Some(c) = console
        {
            match (&stdin).read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = nix::unistd::write(c, &buf[..n]);
                }
            }
        }
        if ready[1]
            && let Ok(Some(info)) = sfd.read_signal()
        {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGWINCH {
                if let (Some(c), Some((rows, cols))) = (console, berth_runtime::tty::get_size(0)) {
                    let _ = berth_runtime::tty::set_size(c.as_raw_fd(), rows, cols);
                }
            } else if sig != libc::SIGCHLD {
                let _ = berth_runtime::sys::pidfd_send_signal(pidfd.as_fd(), sig);
            }
        }
        if ready[0] {
            if let Some(c) = console {
                drain(c, &mut buf);
            }
            return wait_code(pid);
        }
    }
}

fn drain(c: &OwnedFd, buf: &mut [u8]) {
    let mut out = std::io::stdout();
    loop {
        let mut fds = [PollFd::new(c.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(50u16)), Ok(n) if n > 0) {
            break;
        }
        match nix::unistd::read(c, buf) {
            Ok(n) if n > 0 => {
                let _ = out.write_all(&buf[..n]);
            }
            _ => break,
        }
    }
    let _ = out.flush();
}

/// Reaps the init and turns its status into a shell-style exit code.
fn wait_code(pid: i32) -> Result<u8> {
    use nix::sys::wait::{WaitStatus, waitpid};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None)? {
            WaitStatus::Exited(_, code) => return Ok(code as u8),
            WaitStatus::Signaled(_, sig, _) => return Ok(128 + sig as u8),
            _ => continue,
        }
    }
}
