//! The runtime's own procfs reads and writes (sysctls, oom_score_adj,
//! setgroups) go through a procfs the runtime opened itself, never through
//! the path `/proc` of the container. What sits at the container's `/proc`
//! is not always the kernel's: an image or a volume can be mounted over it
//! (CVE-2019-16884, CVE-2019-19921), a file of it can be covered, and a
//! running container that `exec` joins may have remounted it. A write
//! through it could then land in a file of the attacker's choosing, or in
//! another procfs file (CVE-2025-52881).
//!
//! The handle is a new, detached procfs instance (fsopen(2)/fsmount(2)):
//! nothing can be mounted over anything in it. Where the kernel refuses a
//! new instance (a user namespace whose /proc is partly masked: "mount too
//! revealing"), it is a non-recursive detached clone of the /proc mount
//! (open_tree(2) with OPEN_TREE_CLONE), which leaves behind whatever was
//! mounted on top of files inside it. Either way the root is checked to be
//! a procfs root whose `self` is the calling process, and files are opened
//! with openat2(2) `RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS`.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, Result};
use crate::{mounts, sys};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// The inode number of every procfs root (PROC_ROOT_INO).
const PROC_ROOT_INO: u64 = 1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// A private, checked procfs root for the calling process's pid namespace,
/// opened on first use: most containers write nothing to procfs, and a new
/// procfs instance costs a superblock on every start.
pub struct ProcRoot {
    opened: std::cell::OnceCell<Opened>,
}

struct Opened {
    root: OwnedFd,
    pid: i32,
}

fn sys_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Sys { what, source }
}

impl ProcRoot {
    /// The handle, opened and checked at its first read or write. The
    /// caller must be in the pid namespace whose processes it will name
    /// (after the second fork) and keep the handle on one thread.
    pub fn lazy() -> ProcRoot {
        ProcRoot {
            opened: std::cell::OnceCell::new(),
        }
    }

    /// Opens and checks the handle now.
    pub fn open() -> Result<ProcRoot> {
        let p = ProcRoot::lazy();
        p.opened()?;
        Ok(p)
    }

    fn opened(&self) -> Result<&Opened> {
        if let Some(o) = self.opened.get() {
            return Ok(o);
        }
        let o = Opened::open()?;
        Ok(self.opened.get_or_init(|| o))
    }

    /// Writes `value` to `/proc/{rel}` in one write(2), as procfs wants.
    pub fn write(&self, rel: &str, value: &str) -> Result<()> {
        self.opened()?.write(rel, value)
    }

    /// Reads `/proc/{rel}`.
    pub fn read(&self, rel: &str) -> Result<String> {
        self.opened()?.read(rel)
    }
}

impl Opened {
    fn open() -> Result<Opened> {
        let root = match sys::new_detached_mount(
            c"proc",
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        ) {
            Ok(fd) => fd,
            Err(fresh) => mounts::clone_tree(Path::new("/proc"), false).map_err(|e| {
                Error::Other(format!(
                    "opening a private procfs: a new instance failed ({fresh}), and so did a clone of /proc ({e})"
                ))
            })?,
        };
        let pid = std::process::id() as i32;
        let problem = identity_problem(
            fs_type(root.as_fd())?,
            nix::sys::stat::fstat(&root)
                .map_err(|e| sys_err("stat of the private procfs".into())(e.into()))?
                .st_ino,
            nix::fcntl::readlinkat(&root, c"self")
                .ok()
                .map(|t| t.to_string_lossy().into_owned())
                .as_deref(),
            pid,
        );
        if let Some(p) = problem {
            return Err(Error::Other(format!(
                "the procfs the runtime opened is not the real procfs of its pid namespace: {p}"
            )));
        }
        Ok(Opened { root, pid })
    }

    /// Opens `rel` (`sys/kernel/domainname`, `self/oom_score_adj`) below
    /// the root: no symlink followed, no mount crossed, checked on procfs.
    fn open_file(&self, rel: &str, flags: i32) -> Result<std::fs::File> {
        let path = resolve_self(rel, self.pid)?;
        let c = CString::new(path.as_str())
            .map_err(|_| Error::Other(format!("procfs path {rel:?} contains NUL")))?;
        let fd = sys::openat2(
            self.root.as_fd(),
            &c,
            flags | libc::O_NOCTTY,
            sys::RESOLVE_BENEATH
                | sys::RESOLVE_NO_XDEV
                | sys::RESOLVE_NO_SYMLINKS
                | sys::RESOLVE_NO_MAGICLINKS,
        )
        .map_err(sys_err(format!(
            "opening /proc/{rel} on the private procfs"
        )))?;
        if fs_type(fd.as_fd())? != PROC_SUPER_MAGIC {
            return Err(Error::Other(format!("/proc/{rel} is not on procfs")));
        }
        Ok(std::fs::File::from(fd))
    }

    fn write(&self, rel: &str, value: &str) -> Result<()> {
        let mut f = self.open_file(rel, libc::O_WRONLY)?;
        f.write_all(value.as_bytes())
            .map_err(sys_err(format!("writing {value:?} to /proc/{rel}")))
    }

    fn read(&self, rel: &str) -> Result<String> {
        let mut text = String::new();
        self.open_file(rel, libc::O_RDONLY)?
            .read_to_string(&mut text)
            .map_err(sys_err(format!("reading /proc/{rel}")))?;
        Ok(text)
    }
}

fn fs_type(fd: BorrowedFd<'_>) -> Result<i64> {
    nix::sys::statfs::fstatfs(fd)
        .map(|s| s.filesystem_type().0)
        .map_err(|e| sys_err("statfs on the private procfs".into())(e.into()))
}

/// What is wrong with a would-be procfs root: its filesystem type, its
/// inode (a procfs root is inode 1, a subdirectory is not), and whether its
/// `self` names `pid` (a procfs of another pid namespace does not).
pub fn identity_problem(
    fs_type: i64,
    ino: u64,
    self_target: Option<&str>,
    pid: i32,
) -> Option<String> {
    if fs_type != PROC_SUPER_MAGIC {
        return Some(format!("filesystem type {fs_type:#x}, not procfs"));
    }
    if ino != PROC_ROOT_INO {
        return Some(format!("inode {ino}: not the root of a procfs"));
    }
    match self_target {
        Some(t) if t == pid.to_string() => None,
        Some(t) => Some(format!("its self is {t:?}, the runtime is {pid}")),
        None => Some("the runtime has no pid in its pid namespace".into()),
    }
}

/// `rel` with a leading `self` replaced by `pid` (RESOLVE_NO_SYMLINKS
/// refuses the `self` symlink). Only plain relative paths are accepted.
pub fn resolve_self(rel: &str, pid: i32) -> Result<String> {
    let bad = rel.is_empty()
        || rel.starts_with('/')
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(Error::Other(format!(
            "procfs path {rel:?} is not a plain relative path"
        )));
    }
    Ok(match rel.split_once('/') {
        Some(("self", rest)) => format!("{pid}/{rest}"),
        _ if rel == "self" => pid.to_string(),
        _ => rel.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_becomes_the_pid() {
        assert_eq!(
            resolve_self("self/oom_score_adj", 7).unwrap(),
            "7/oom_score_adj"
        );
        assert_eq!(
            resolve_self("sys/kernel/domainname", 7).unwrap(),
            "sys/kernel/domainname"
        );
        assert_eq!(resolve_self("self", 7).unwrap(), "7");
        assert_eq!(resolve_self("selfish/x", 7).unwrap(), "selfish/x");
        for bad in ["", "/proc/self", "sys/../self", "sys//x", "./sys"] {
            assert!(resolve_self(bad, 7).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_our_procfs_root_passes() {
        assert_eq!(identity_problem(PROC_SUPER_MAGIC, 1, Some("42"), 42), None);
        assert!(identity_problem(0xef53, 1, Some("42"), 42).is_some());
        assert!(identity_problem(PROC_SUPER_MAGIC, 4026531841, Some("42"), 42).is_some());
        assert!(identity_problem(PROC_SUPER_MAGIC, 1, Some("4242"), 42).is_some());
        assert!(identity_problem(PROC_SUPER_MAGIC, 1, None, 42).is_some());
    }

    #[test]
    fn reads_this_process_through_a_private_instance() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let p = ProcRoot::open().unwrap();
        let status = p.read("self/status").unwrap();
        let pid_line = format!("Pid:\t{}", std::process::id());
        assert!(status.lines().any(|l| l == pid_line), "{status}");
        assert!(p.read("sys/kernel/ostype").unwrap().starts_with("Linux"));
        // No path out of the root, and no symlink followed inside it.
        assert!(p.read("mounts").is_err(), "followed the mounts symlink");
    }
}
