//! Waiting for OOM kills without busy polling, for the `events` stream.
//!
//! - v1: an eventfd registered through `cgroup.event_control` for
//!   `memory.oom_control` fires when the cgroup runs out of memory
//!   (Documentation/admin-guide/cgroup-v1/memory.rst, "OOM Control").
//! - v2: inotify on `memory.events`, which the kernel marks modified when
//!   any of its counters changes (cgroup-v2.rst, "memory.events").
//!
//! Either way the count itself comes from `oom_kill_count`, so a wake-up
//! that was not a kill (v1 notifies on every OOM, v2 on every event) is
//! simply waited past.

use crate::{CgroupVersion, Error, Manager};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Watches one cgroup's OOM kills.
pub struct OomWatcher {
    manager: Manager,
    /// eventfd (v1) or inotify fd (v2).
    fd: OwnedFd,
    /// v1: memory.oom_control, kept open while registered.
    _control: Option<OwnedFd>,
    seen: u64,
}

fn last_err(op: &'static str, path: &std::path::Path) -> Error {
    Error::io(op, path)(std::io::Error::last_os_error())
}

fn cstr(p: &std::path::Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default()
}

impl OomWatcher {
    /// Starts watching; kills before this call are not reported.
    pub fn new(manager: &Manager) -> Result<OomWatcher, Error> {
        let seen = manager.oom_kill_count()?;
        let dir = manager
            .paths()
            .get(if manager.version() == CgroupVersion::V1 {
                "memory"
            } else {
                ""
            })
            .cloned()
            .ok_or(Error::NoController {
                op: "OOM events",
                controller: "memory",
            })?;
        let (fd, control) = match manager.version() {
            CgroupVersion::V1 => {
                // SAFETY: eventfd(2) with valid flags; the result is checked.
                let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
                if efd < 0 {
                    return Err(last_err("eventfd for", &dir));
                }
                // SAFETY: a new fd we own.
                let efd = unsafe { OwnedFd::from_raw_fd(efd) };
                let ctl_path = dir.join("memory.oom_control");
                let ctl = std::fs::File::open(&ctl_path).map_err(Error::io("open", &ctl_path))?;
                let ctl: OwnedFd = ctl.into();
                crate::fsutil::write(
                    &dir.join("cgroup.event_control"),
                    &format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()),
                )?;
                (efd, Some(ctl))
            }
            CgroupVersion::V2 => {
                // SAFETY: inotify_init1(2) with valid flags; checked.
                let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
                if ifd < 0 {
                    return Err(last_err("inotify for", &dir));
                }
                // SAFETY: a new fd we own.
                let ifd = unsafe { OwnedFd::from_raw_fd(ifd) };
                let events = dir.join("memory.events");
                let path = cstr(&events);
                // SAFETY: valid inotify fd and NUL-terminated path.
                if unsafe {
                    libc::inotify_add_watch(ifd.as_raw_fd(), path.as_ptr(), libc::IN_MODIFY)
                } < 0
                {
                    return Err(last_err("inotify watch", &events));
                }
                (ifd, None)
            }
        };
        Ok(OomWatcher {
            manager: manager.clone(),
            fd,
            _control: control,
            seen,
        })
    }

    /// Waits until the OOM-kill count rises (returns the new total) or
    /// `timeout` passes (None). A removed cgroup ends the wait with an error.
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<u64>, Error> {
        let start = Instant::now();
        loop {
            let n = self.manager.oom_kill_count()?;
            if n > self.seen {
                self.seen = n;
                return Ok(Some(n));
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            // Wake at least every 250 ms: a kill may be counted just after
            // the notification that announced the OOM.
            let ms = left.min(Duration::from_millis(250)).as_millis() as i32;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r > 0 {
                let mut buf = [0u8; 4096];
                // SAFETY: drain the nonblocking fd into a local buffer.
                let _ =
                    unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            }
        }
    }
}
