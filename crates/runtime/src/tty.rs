//! The container's terminal: a pty allocated from the container's own devpts
//! instance (so the slave's path makes sense inside), the slave as the
//! controlling terminal and stdio, the master handed to whoever holds the
//! console (runc's `--console-socket` protocol, or berth-runtime itself for
//! a foreground `run`).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

use crate::error::{Error, NixContext, Result};

pub struct Pty {
    pub master: OwnedFd,
    pub slave_name: String,
}

/// Allocates a pty in the current mount namespace and makes its slave the
/// calling process's controlling terminal and stdio.
pub fn setup(size: Option<(u16, u16)>) -> Result<Pty> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "opening /dev/ptmx".into())?;
    grantpt(&master).ctx(|| "grantpt".into())?;
    unlockpt(&master).ctx(|| "unlockpt".into())?;
    let name = ptsname_r(&master).ctx(|| "ptsname".into())?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("opening {name}"))?;
    if let Some((rows, cols)) = size {
        set_size(slave.as_raw_fd(), rows, cols)?;
    }
    nix::unistd::dup2_stdin(&slave).ctx(|| "dup2 pty to stdin".into())?;
    nix::unistd::dup2_stdout(&slave).ctx(|| "dup2 pty to stdout".into())?;
    nix::unistd::dup2_stderr(&slave).ctx(|| "dup2 pty to stderr".into())?;
    // SAFETY: TIOCSCTTY on fd 0 (the slave) with arg 0; we are a session leader.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::Sys {
            what: "making the pty the controlling terminal".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    drop(slave);
    let master: OwnedFd = master.into();
    Ok(Pty {
        master,
        slave_name: name,
    })
}

pub fn set_size(fd: i32, rows: u16, cols: u16) -> Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize we own.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(Error::Sys {
            what: "setting the terminal size".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The size of the terminal on `fd`, if it is one.
pub fn get_size(fd: i32) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes into a winsize we own.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some((ws.ws_row, ws.ws_col))
}

/// The caller's terminal (stdin) in raw mode while a container's terminal
/// is attached to it, restored on drop. Not a terminal: nothing happens.
pub struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        use std::os::fd::AsFd;
        let stdin = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            nix::sys::termios::cfmakeraw(&mut raw);
            let _ = nix::sys::termios::tcsetattr(
                stdin.as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                &raw,
            );
        }
        RawMode(saved)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use std::os::fd::AsFd;
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}
