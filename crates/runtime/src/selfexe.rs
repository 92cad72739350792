//! Defence against the `/proc/self/exe` class of escapes (CVE-2019-5736).
//!
//! A container can make the runtime execute itself inside the container:
//! `exec` of a script whose interpreter line is `#!/proc/self/exe` makes the
//! kernel run the runtime's own binary as a container process, whose
//! `/proc/PID/exe` then points at the host file. The container keeps that
//! handle and, once the process exits, reopens it for writing and replaces
//! the host's runtime binary.
//!
//! As runc and crun do, the runtime re-executes itself from a sealed memfd
//! copy before it does anything with a container: `/proc/PID/exe` of every
//! runtime process is then the memfd, which cannot be written
//! (`F_SEAL_WRITE`, memfd_create(2)), and the host file is never reachable.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

fn sys_err(what: &str) -> Error {
    Error::Sys {
        what: format!("sealed runtime copy: {what}"),
        source: std::io::Error::last_os_error(),
    }
}

/// Whether `fd` is a memfd carrying all of [`SEALS`].
fn is_sealed(fd: &impl AsRawFd) -> bool {
    // SAFETY: fcntl(F_GET_SEALS) on an fd we own; fails harmlessly on
    // files that are not memfds.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// True when this process already runs from a sealed copy.
pub fn running_sealed() -> bool {
    std::fs::File::open("/proc/self/exe").is_ok_and(|f| is_sealed(&f))
}

/// A sealed memfd holding a copy of this process's binary.
pub fn sealed_copy() -> Result<OwnedFd> {
    let mut exe = std::fs::File::open("/proc/self/exe").map_err(|e| Error::Sys {
        what: "sealed runtime copy: opening /proc/self/exe".into(),
        source: e,
    })?;
    // SAFETY: memfd_create with a static C string; the result is checked.
    let raw = unsafe {
        libc::memfd_create(
            c"berth-runtime".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if raw < 0 {
        return Err(sys_err("memfd_create"));
    }
    // SAFETY: raw is a fresh fd nobody else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut out = std::fs::File::from(memfd);
    std::io::copy(&mut exe, &mut out).map_err(|e| Error::Sys {
        what: "sealed runtime copy: copying the binary".into(),
        source: e,
    })?;
    // SAFETY: fcntl(F_ADD_SEALS) on the memfd we own.
    if unsafe { libc::fcntl(out.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(sys_err("sealing the memfd"));
    }
    Ok(OwnedFd::from(out))
}

/// Re-executes the current process (same argv and environment) from a
/// sealed memfd copy of its binary, unless it already runs from one.
/// Returns only on failure, or when already sealed.
pub fn reexec_sealed() -> Result<()> {
    if running_sealed() {
        return Ok(());
    }
    let fd = sealed_copy()?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Other("an argument contains NUL".into()))?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv)
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Other("an environment variable contains NUL".into()))?;
    let e = nix::unistd::fexecve(&fd, &args, &env).unwrap_err();
    Err(Error::Sys {
        what: "sealed runtime copy: fexecve".into(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_is_sealed_and_unwritable() {
        let fd = sealed_copy().unwrap();
        assert!(is_sealed(&fd));
        let len = std::fs::metadata("/proc/self/exe").unwrap().len();
        let f = std::fs::File::from(fd);
        assert_eq!(f.metadata().unwrap().len(), len);
        let path = format!("/proc/self/fd/{}", f.as_raw_fd());
        // The reopened file refuses writes whatever the open mode allows.
        if let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&path) {
            assert!(std::io::Write::write_all(&mut w, b"x").is_err());
        }
        assert!(!running_sealed(), "the test binary is a plain file");
    }
}
