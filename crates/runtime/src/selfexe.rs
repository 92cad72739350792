//! Defence against the `/proc/self/exe` class of escapes (CVE-2019-5736).
//!
//! A container can make the runtime execute itself inside the container:
//! `exec` of a script whose interpreter line is `#!/proc/self/exe` makes the
//! kernel run the runtime's own binary as a container process, whose
//! `/proc/PID/exe` then points at the host file. The container keeps that
//! handle and, once the process exits, reopens it for writing and replaces
//! the host's runtime binary.
//!
//! As runc and crun do, the runtime re-executes itself from a copy that
//! cannot be written before it does anything with a container, so
//! `/proc/PID/exe` of every runtime process never reaches the host file.
//!
//! The copy costs nothing when we are privileged: the binary is opened
//! through a read-only overlayfs mount of its own directory (no upper layer,
//! so every write fails with EROFS) that is created with the new mount API
//! and never attached anywhere (fsopen(2), fsmount(2)); runc 1.2 does the
//! same. Copying the whole binary into a sealed memfd (`F_SEAL_WRITE`,
//! memfd_create(2)) takes several milliseconds and is only the fallback,
//! e.g. for rootless use.

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

const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// Whether `fd` is a file on a read-only overlayfs mount.
fn on_readonly_overlay(fd: &impl AsRawFd) -> bool {
    // SAFETY: borrowing an fd we own for the duration of the call.
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.as_raw_fd()) };
    let overlay =
        nix::sys::statfs::fstatfs(b).is_ok_and(|s| s.filesystem_type().0 == OVERLAYFS_SUPER_MAGIC);
    overlay
        && nix::sys::statvfs::fstatvfs(b)
            .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// True when this process already runs from a copy that cannot be written.
pub fn running_sealed() -> bool {
    std::fs::File::open("/proc/self/exe").is_ok_and(|f| is_sealed(&f) || on_readonly_overlay(&f))
}

fn fs_call(ret: libc::c_long, what: &str) -> Result<libc::c_long> {
    if ret < 0 { Err(sys_err(what)) } else { Ok(ret) }
}

/// An O_PATH fd of this binary through a detached, read-only overlayfs
/// mount of its directory. Overlayfs without an upper layer needs two lower
/// layers: the second is an empty detached tmpfs.
pub fn readonly_overlay_copy() -> Result<OwnedFd> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| Error::Sys {
        what: "sealed runtime copy: reading /proc/self/exe".into(),
        source: e,
    })?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(Error::Other(format!(
            "sealed runtime copy: odd binary path {}",
            exe.display()
        )));
    };
    let dir_s = dir.to_string_lossy();
    if dir_s.contains([':', ',', '\\']) || !exe.is_absolute() {
        return Err(Error::Other(format!(
            "sealed runtime copy: {} cannot be an overlay layer",
            dir.display()
        )));
    }
    let empty = detached_mount(c"tmpfs", &[(c"mode", c"0555"), (c"size", c"4k")])?;
    let lower = CString::new(format!("{dir_s}:/proc/self/fd/{}", empty.as_raw_fd()))
        .map_err(|_| Error::Other("sealed runtime copy: NUL in path".into()))?;
    let mnt = detached_mount(c"overlay", &[(c"lowerdir", lower.as_c_str())])?;
    let name = CString::new(name.as_encoded_bytes()).expect("file names have no NUL");
    let fd = nix::fcntl::openat(
        &mnt,
        name.as_c_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::Sys {
        what: "sealed runtime copy: opening the binary on the overlay".into(),
        source: e.into(),
    })?;
    Ok(fd)
}

/// fsopen + fsconfig + fsmount: a read-only mount that is never attached.
fn detached_mount(
    fstype: &std::ffi::CStr,
    opts: &[(&std::ffi::CStr, &std::ffi::CStr)],
) -> Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
    const MOUNT_ATTR_NODEV: libc::c_uint = 4;
    // SAFETY: fsopen with a C string; the result is checked and owned.
    let fs = fs_call(
        unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) },
        "fsopen",
    )?;
    // SAFETY: fs is a new fd we own.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    for (k, v) in opts {
        fs_call(
            // SAFETY: fsconfig with C strings on our fs context fd.
            unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs.as_raw_fd(),
                    FSCONFIG_SET_STRING,
                    k.as_ptr(),
                    v.as_ptr(),
                    0,
                )
            },
            "fsconfig",
        )?;
    }
    fs_call(
        // SAFETY: fsconfig(FSCONFIG_CMD_CREATE) with null key/value.
        unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_char>(),
                0,
            )
        },
        "fsconfig create",
    )?;
    // SAFETY: fsmount on our fs context fd.
    let m = fs_call(
        unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fs.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV,
            )
        },
        "fsmount",
    )?;
    // SAFETY: a new mount fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(m as i32) })
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

/// The environment variable that carries the binary's real path across the
/// re-exec (after it, /proc/self/exe names the copy).
pub const ORIGINAL_EXE_ENV: &str = "BERTH_ORIGINAL_EXE";

/// The path of this program's binary on the host, also after a sealed
/// re-exec (for finding companion binaries next to it).
pub fn original_exe() -> std::io::Result<std::path::PathBuf> {
    match std::env::var_os(ORIGINAL_EXE_ENV) {
        Some(p) if running_sealed() => Ok(p.into()),
        _ => std::env::current_exe(),
    }
}

/// Re-executes the current process (same argv and environment) from a
/// sealed memfd copy of its binary, unless it already runs from one.
/// Returns only on failure, or when already sealed.
pub fn reexec_sealed() -> Result<()> {
    if running_sealed() {
        return Ok(());
    }
    let fd = match readonly_overlay_copy() {
        Ok(fd) => fd,
        Err(_) => sealed_copy()?,
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Other("an argument contains NUL".into()))?;
    let original = std::env::current_exe().map_err(|e| Error::Sys {
        what: "sealed runtime copy: locating the binary".into(),
        source: e,
    })?;
    let env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != ORIGINAL_EXE_ENV)
        .chain(std::iter::once((
            ORIGINAL_EXE_ENV.into(),
            original.into_os_string(),
        )))
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv)
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Other("an environment variable contains NUL".into()))?;
    let e = nix::unistd::execveat(&fd, c"", &args, &env, nix::fcntl::AtFlags::AT_EMPTY_PATH)
        .unwrap_err();
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

    #[test]
    fn overlay_copy_is_read_only() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let fd = readonly_overlay_copy().unwrap();
        assert!(on_readonly_overlay(&fd));
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        let len = std::fs::metadata("/proc/self/exe").unwrap().len();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }
}
