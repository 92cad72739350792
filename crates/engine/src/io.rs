//! The I/O loop shared by the per-container monitor and a foreground
//! `berth run`: copies the container's output to the json-file log, to
//! attached clients (a unix socket) and — in the foreground — to our own
//! stdout/stderr; copies input the other way; forwards signals; returns the
//! container's exit code when its init exits.
//!
//! Attach frames (monitor → client): `[kind u8][len u32 BE][data]`, kind 1
//! stdout, 2 stderr, 3 exit (data: the exit code, i32 BE). Client → monitor:
//! raw bytes for the container's stdin.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::logs::LogWriter;

pub const FRAME_STDOUT: u8 = 1;
pub const FRAME_STDERR: u8 = 2;
pub const FRAME_EXIT: u8 = 3;

/// The container's ends of its stdio.
#[derive(Default)]
pub struct Streams {
    /// Read ends of the stdout/stderr pipes.
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The pty master (output and input) for a `-t` container.
    pub pty: Option<OwnedFd>,
    /// The write end of the stdin pipe for `-i` without `-t`.
    pub stdin: Option<OwnedFd>,
}

/// What the loop is connected to.
pub struct Loop {
    /// The container init (our child).
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub streams: Streams,
    pub log: Option<LogWriter>,
    pub listener: Option<UnixListener>,
    /// Foreground: copy output to our stdout/stderr; read our stdin when `forward_stdin`.
    pub local: bool,
    pub forward_stdin: bool,
    /// Foreground: signals to forward to the container.
    pub signals: Option<SignalFd>,
    /// Called every `tick_ms` (health checks); returns nothing.
    pub tick_ms: Option<u64>,
}

/// Encodes one attach frame.
pub fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + data.len());
    v.push(kind);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// Decodes frames from `buf`, returning complete frames and leaving the rest.
pub fn parse_frames(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = vec![];
    loop {
        if buf.len() < 5 {
            break;
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            break;
        }
        out.push((buf[0], buf[5..5 + len].to_vec()));
        buf.drain(..5 + len);
    }
    out
}

/// Exit code of a wait status, Docker style (128+signal for a signal death).
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

fn read_some(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Option<usize> {
    match nix::unistd::read(fd, buf) {
        Ok(0) => None,
        Ok(n) => Some(n),
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => Some(0),
        // EIO on a pty master when the slave side is gone.
        Err(_) => None,
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    // SAFETY: F_GETFL/F_SETFL on a valid fd have no memory effects.
    unsafe {
        let fl = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

impl Loop {
    fn output(&mut self, clients: &mut Vec<UnixStream>, stream: usize, data: &[u8]) {
        if let Some(l) = &mut self.log {
            let _ = l.push(stream, data);
        }
        if self.local {
            if stream == 0 {
                let mut o = std::io::stdout().lock();
                let _ = o.write_all(data);
                let _ = o.flush();
            } else {
                let _ = std::io::stderr().write_all(data);
            }
        }
        let f = frame(
            if stream == 0 {
                FRAME_STDOUT
            } else {
                FRAME_STDERR
            },
            data,
        );
        clients.retain_mut(|c| c.write_all(&f).is_ok());
    }

    fn input(&mut self, data: &[u8]) {
        let target = self.streams.pty.as_ref().or(self.streams.stdin.as_ref());
        if let Some(t) = target {
            let _ = nix::unistd::write(t, data);
        }
    }

    /// Runs until the init exits; returns its exit code.
    pub fn run(mut self, mut on_tick: impl FnMut()) -> i32 {
        let mut clients: Vec<UnixStream> = vec![];
        let mut buf = vec![0u8; 32 * 1024];
        let mut stdin_open = self.forward_stdin;
        let mut code: Option<i32> = None;
        let mut last_tick = std::time::Instant::now();
        if let Some(l) = &self.listener {
            let _ = l.set_nonblocking(true);
        }
        for s in [
            &self.streams.stdout,
            &self.streams.stderr,
            &self.streams.pty,
        ]
        .into_iter()
        .flatten()
        {
            set_nonblocking(s.as_fd());
        }
        while code.is_none() {
            // Slots: 0 pidfd, 1 stdout, 2 stderr, 3 pty, 4 our stdin, 5 signals, 6 listener, 7.. clients.
            let stdin = std::io::stdin();
            fn opt(o: Option<BorrowedFd<'_>>) -> Option<PollFd<'_>> {
                o.map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            }
            let mut slots: Vec<Option<PollFd<'_>>> = vec![
                Some(PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)),
                opt(self.streams.stdout.as_ref().map(|f| f.as_fd())),
                opt(self.streams.stderr.as_ref().map(|f| f.as_fd())),
                opt(self.streams.pty.as_ref().map(|f| f.as_fd())),
                opt(stdin_open.then(|| stdin.as_fd())),
                opt(self.signals.as_ref().map(|s| s.as_fd())),
                opt(self.listener.as_ref().map(|l| l.as_fd())),
            ];
            slots.extend(
                clients
                    .iter()
                    .map(|c| Some(PollFd::new(c.as_fd(), PollFlags::POLLIN))),
            );
            let mut fds: Vec<PollFd<'_>> = slots.iter().flatten().cloned().collect();
            let timeout = match self.tick_ms {
                Some(ms) => PollTimeout::try_from(ms.min(1000) as i32).unwrap_or(PollTimeout::NONE),
                None => PollTimeout::NONE,
            };
            match poll(&mut fds, timeout) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
                Ok(_) => {}
            }
            let mut it = fds.iter();
            let ready: Vec<bool> = slots
                .iter()
                .map(|s| {
                    s.as_ref().is_some_and(|_| {
                        it.next()
                            .and_then(|f| f.revents())
                            .is_some_and(|r| !r.is_empty())
                    })
                })
                .collect();
            drop(slots);
            for (slot, stream) in [(1usize, 0usize), (2, 1), (3, 0)] {
                if !ready[slot] {
                    continue;
                }
                let fd = match slot {
                    1 => &self.streams.stdout,
                    2 => &self.streams.stderr,
                    _ => &self.streams.pty,
                };
                let Some(fd) = fd else { continue };
                match read_some(fd.as_fd(), &mut buf) {
                    Some(n) if n > 0 => {
                        let data = buf[..n].to_vec();
                        self.output(&mut clients, stream, &data);
                    }
                    Some(_) => {}
                    None => match slot {
                        1 => self.streams.stdout = None,
                        2 => self.streams.stderr = None,
                        _ => self.streams.pty = None,
                    },
                }
            }
            if ready[4] {
                match (&stdin).read(&mut buf) {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        // EOF on our stdin closes the container's (not a pty's).
                        self.streams.stdin = None;
                    }
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        self.input(&data);
                    }
                }
            }
            if ready[5]
                && let Some(sfd) = &self.signals
                && let Ok(Some(si)) = sfd.read_signal()
            {
                let sig = si.ssi_signo as i32;
                if sig == libc::SIGWINCH {
                    if let (Some(p), Some((r, c))) =
                        (&self.streams.pty, berth_runtime::tty::get_size(0))
                    {
                        let _ = berth_runtime::tty::set_size(p.as_raw_fd(), r, c);
                    }
                } else if sig != libc::SIGCHLD
                    && let Ok(s) = Signal::try_from(sig)
                {
                    let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), s);
                }
            }
            if ready[6]
                && let Some(l) = &self.listener
            {
                while let Ok((c, _)) = l.accept() {
                    let _ = c.set_nonblocking(true);
                    clients.push(c);
                }
            }
            let mut gone = vec![];
            for (i, r) in ready[7..].iter().enumerate() {
                if !*r {
                    continue;
                }
                match clients[i].read(&mut buf) {
                    Ok(0) => gone.push(i),
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        self.input(&data);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => gone.push(i),
                }
            }
            for i in gone.into_iter().rev() {
                clients.remove(i);
            }
            if let Some(ms) = self.tick_ms
                && last_tick.elapsed().as_millis() as u64 >= ms
            {
                last_tick = std::time::Instant::now();
                on_tick();
            }
            code = self.reap();
        }
        let code = code.unwrap_or_else(|| self.wait_blocking());
        // Drain what the container wrote before it exited.
        for stream in 0..3 {
            let fd = match stream {
                0 => self.streams.stdout.take(),
                1 => self.streams.stderr.take(),
                _ => self.streams.pty.take(),
            };
            let Some(fd) = fd else { continue };
            set_nonblocking(fd.as_fd());
            while let Some(n) = read_some(fd.as_fd(), &mut buf) {
                if n == 0 {
                    break;
                }
                let data = buf[..n].to_vec();
                self.output(&mut clients, if stream == 1 { 1 } else { 0 }, &data);
            }
        }
        if let Some(l) = &mut self.log {
            let _ = l.flush();
        }
        let f = frame(FRAME_EXIT, &code.to_be_bytes());
        for c in &mut clients {
            let _ = c.set_nonblocking(false);
            let _ = c.write_all(&f);
        }
        code
    }

    /// Reaps every exited child; returns the init's exit code if it exited.
    fn reap(&self) -> Option<i32> {
        let mut code = None;
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(st) => {
                    if st.pid() == Some(Pid::from_raw(self.pid)) {
                        code = exit_code(st);
                    }
                }
            }
        }
        code
    }

    fn wait_blocking(&self) -> i32 {
        loop {
            match waitpid(Pid::from_raw(self.pid), None) {
                Ok(st) => {
                    if let Some(c) = exit_code(st) {
                        return c;
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return 255,
            }
        }
    }
}

/// A unix socket path is limited to 108 bytes (unix(7)); deep run dirs
/// exceed it. Both sides go through `/proc/self/fd/N/NAME` of an open
/// handle on the directory instead, which is always short.
fn via_dir<T>(
    path: &std::path::Path,
    f: impl FnOnce(&std::path::Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("socket path has no directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("socket path has no name"))?;
    let d = std::fs::File::open(dir)?;
    let short = std::path::PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    f(&short)
}

pub fn bind_socket(path: &std::path::Path) -> std::io::Result<UnixListener> {
    via_dir(path, |p| UnixListener::bind(p))
}

pub fn connect_socket(path: &std::path::Path) -> std::io::Result<UnixStream> {
    via_dir(path, |p| UnixStream::connect(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut b = frame(FRAME_STDOUT, b"hi");
        b.extend(frame(FRAME_EXIT, &7i32.to_be_bytes()));
        b.extend_from_slice(&[1, 0]);
        let f = parse_frames(&mut b);
        assert_eq!(
            f,
            vec![(1, b"hi".to_vec()), (3, 7i32.to_be_bytes().to_vec())]
        );
        assert_eq!(b, vec![1, 0]);
    }
}
