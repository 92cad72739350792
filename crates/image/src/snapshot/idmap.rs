//! Idmapped root filesystems: a container in a user namespace sees the
//! image's files with the owners the image gave them, without a chown of
//! any layer (mount_setattr(2), `MOUNT_ATTR_IDMAP`).
//!
//! overlayfs itself cannot be idmapped (mount_setattr answers EINVAL), but
//! its layers can (Linux 5.19+): each lower dir and the upper/work pair are
//! cloned as detached mounts, idmapped with a user namespace holding the
//! container's map, and handed to a new overlay by file descriptor
//! (`fsconfig(FSCONFIG_SET_FD, "lowerdir+"|"upperdir"|"workdir")`, Linux
//! 6.13+; see the kernel's Documentation/filesystems/overlayfs.rst,
//! "Specifying layers via file descriptors"). Nothing is attached anywhere
//! but the target, so a crash leaves no helper mount behind.
//!
//! overlayfs does its own work (the work dir, copy-up) with the credentials
//! of whoever created the mount. Host root (uid 0) is not in the container's
//! map, so through the idmapped upper layer its writes fail with EOVERFLOW
//! and the kernel falls back to a read-only mount. The overlay is therefore
//! created from a short-lived thread whose fsuid/fsgid are the host ids of
//! the container's root (with its effective capabilities restored, which
//! setfsuid(2) clears). The upper layer then stores the container's ids as
//! the image would (container root is uid 0 on disk), so `diff` and
//! `commit` need no translation.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use super::mount::Mount;
use crate::error::{Error, Result};

fn mount_err(target: &Path, reason: String) -> Error {
    Error::Mount {
        target: target.to_path_buf(),
        reason,
    }
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;

/// A detached clone of `path`, idmapped with `ns` (and read-only if asked).
fn idmapped_tree(
    path: &Path,
    ns: BorrowedFd<'_>,
    recursive: bool,
    read_only: bool,
) -> std::io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = rustix::mount::open_tree(rustix::fs::CWD, path, flags)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: 0,
        propagation: 0,
        userns_fd: ns.as_raw_fd() as u64,
    };
    let at = libc::AT_EMPTY_PATH as u32
        | if recursive {
            libc::AT_RECURSIVE as u32
        } else {
            0
        };
    // SAFETY: plain syscall; `attr` is a valid mount_attr of the size passed
    // and the path is an empty C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(tree)
}

/// The parts of an overlay's option list.
#[derive(Debug, Default, PartialEq, Eq)]
struct OverlayOptions {
    lower: Vec<PathBuf>,
    upper: Option<PathBuf>,
    work: Option<PathBuf>,
    read_only: bool,
    /// Everything else, as `key=value` or flag strings.
    other: Vec<String>,
}

fn overlay_options(options: &[String]) -> OverlayOptions {
    let mut o = OverlayOptions::default();
    for opt in options {
        match opt.split_once('=') {
            Some(("lowerdir", dirs)) => o.lower = dirs.split(':').map(PathBuf::from).collect(),
            Some(("upperdir", d)) => o.upper = Some(d.into()),
            Some(("workdir", d)) => o.work = Some(d.into()),
            None if opt == "ro" => o.read_only = true,
            None if opt == "rw" => {}
            _ => o.other.push(opt.clone()),
        }
    }
    o
}

/// overlayfs wants the upper and work dirs on one mount: both are cloned
/// through their common parent. Returns that parent and both paths
/// relative to it.
fn upper_work_split(upper: &Path, work: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let parent = upper.parent()?;
    let rel_upper = upper.strip_prefix(parent).ok()?;
    let rel_work = work.strip_prefix(parent).ok()?;
    Some((
        parent.to_path_buf(),
        rel_upper.to_path_buf(),
        rel_work.to_path_buf(),
    ))
}

/// Mounts `mounts` on `target` with every layer idmapped by the user
/// namespace `userns` (its maps say which on-disk id each host id is).
/// `creator` is the host (uid, gid) overlayfs works as: the container's
/// root, which must be mapped (see the module comment).
pub fn mount_all_idmapped(
    mounts: &[Mount],
    target: &Path,
    userns: BorrowedFd<'_>,
    creator: (u32, u32),
) -> Result<()> {
    for m in mounts {
        match m.kind.as_str() {
            "overlay" => mount_overlay(m, target, userns, creator)?,
            "bind" => mount_bind(m, target, userns)?,
            other => return Err(mount_err(target, format!("unknown mount type {other:?}"))),
        }
    }
    Ok(())
}

fn attach(mnt: BorrowedFd<'_>, target: &Path) -> std::io::Result<()> {
    rustix::mount::move_mount(
        mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(Into::into)
}

fn mount_bind(m: &Mount, target: &Path, ns: BorrowedFd<'_>) -> Result<()> {
    let recursive = m.options.iter().any(|o| o == "rbind");
    let read_only = m.options.iter().any(|o| o == "ro");
    let tree = idmapped_tree(Path::new(&m.source), ns, recursive, read_only)
        .map_err(|e| mount_err(target, unsupported(&m.source, e)))?;
    attach(tree.as_fd(), target).map_err(|e| mount_err(target, format!("attaching: {e}")))
}

fn unsupported(what: &str, e: std::io::Error) -> String {
    format!(
        "idmapping {what}: {e} (idmapped mounts need Linux 5.19+ and a filesystem that supports them, such as ext4, xfs, btrfs or tmpfs)"
    )
}

fn mount_overlay(m: &Mount, target: &Path, ns: BorrowedFd<'_>, ids: (u32, u32)) -> Result<()> {
    let o = overlay_options(&m.options);
    let err = |reason: String| mount_err(target, reason);
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| err(format!("fsopen overlay: {e}")))?;
    // The layers, idmapped; all fds stay open until the overlay exists.
    let mut held = Vec::new();
    for lower in &o.lower {
        let tree = idmapped_tree(lower, ns, false, false)
            .map_err(|e| err(unsupported(&lower.display().to_string(), e)))?;
        rustix::mount::fsconfig_set_fd(&fs, "lowerdir+", &tree).map_err(|e| {
            err(format!(
                "overlay lower layer {} by fd: {e} (needs Linux 6.13+)",
                lower.display()
            ))
        })?;
        held.push(tree);
    }
    if let (Some(upper), Some(work)) = (&o.upper, &o.work) {
        let (parent, rel_upper, rel_work) = upper_work_split(upper, work).ok_or_else(|| {
            err(format!(
                "upper dir {} and work dir {} do not share a parent",
                upper.display(),
                work.display()
            ))
        })?;
        let tree = idmapped_tree(&parent, ns, false, false)
            .map_err(|e| err(unsupported(&parent.display().to_string(), e)))?;
        for (key, rel) in [("upperdir", rel_upper), ("workdir", rel_work)] {
            let dir = rustix::fs::openat(
                &tree,
                &rel,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| err(format!("opening {key} {}: {e}", rel.display())))?;
            rustix::mount::fsconfig_set_fd(&fs, key, &dir)
                .map_err(|e| err(format!("overlay {key} by fd: {e}")))?;
            held.push(dir);
        }
        held.push(tree);
    }
    for opt in &o.other {
        match opt.split_once('=') {
            Some((k, v)) => rustix::mount::fsconfig_set_string(&fs, k, v),
            None => rustix::mount::fsconfig_set_flag(&fs, opt.as_str()),
        }
        .map_err(|e| err(format!("overlay option {opt}: {e}")))?;
    }
    create_as(fs.as_fd(), ids).map_err(|e| err(format!("creating the overlay: {e}")))?;
    let attrs = if o.read_only {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| err(format!("fsmount: {e}")))?;
    drop(held);
    attach(mnt.as_fd(), target).map_err(|e| err(format!("attaching: {e}")))
}

/// Runs `fsconfig(FSCONFIG_CMD_CREATE)` with `ids` as filesystem ids:
/// overlayfs keeps the creator's credentials for its own work (see the
/// module comment).
fn create_as(fs: BorrowedFd<'_>, ids: (u32, u32)) -> std::io::Result<()> {
    with_fs_ids(ids, || {
        rustix::mount::fsconfig_create(fs).map_err(Into::into)
    })?
}

/// Runs `f` on a short-lived thread whose fsuid/fsgid are `ids` and whose
/// effective capabilities are the caller's: how host-side code (overlay
/// creation, `berth cp` into a container) writes through an idmapped mount
/// in which host root has no id. fsuid is per thread (setfsuid(2)), so the
/// rest of the process is untouched and the credentials die with the
/// thread.
pub fn with_fs_ids<T: Send>(ids: (u32, u32), f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| -> std::io::Result<T> {
            let caps = rustix::thread::capabilities(None)?;
            // SAFETY: setfsuid/setfsgid change only this thread's
            // filesystem ids; they cannot fail in a way that matters here
            // (the return value is the previous id).
            unsafe {
                libc::setfsgid(ids.1);
                libc::setfsuid(ids.0);
            }
            // Leaving fsuid 0 clears the effective filesystem capabilities
            // (capabilities(7), "Effect of user ID changes on
            // capabilities"); raise them again from the permitted set.
            rustix::thread::set_capabilities(
                None,
                rustix::thread::CapabilitySets {
                    effective: caps.permitted,
                    ..caps
                },
            )?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("thread with other fs ids panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_split() {
        let o = overlay_options(&[
            "lowerdir=/s/l/a:/s/l/b".into(),
            "upperdir=/s/1/fs".into(),
            "workdir=/s/1/work".into(),
            "volatile".into(),
            "index=off".into(),
            "ro".into(),
        ]);
        assert_eq!(o.lower, vec![PathBuf::from("/s/l/a"), "/s/l/b".into()]);
        assert!(o.read_only);
        assert_eq!(o.other, vec!["volatile".to_string(), "index=off".into()]);
        assert_eq!(
            upper_work_split(o.upper.as_deref().unwrap(), o.work.as_deref().unwrap()),
            Some(("/s/1".into(), "fs".into(), "work".into()))
        );
    }
}
