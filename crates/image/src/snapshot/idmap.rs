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
use serde::{Deserialize, Serialize};

use super::mount::Mount;
use crate::error::{Error, Result};

/// `size` consecutive ids starting at `container` inside the container are
/// the ids starting at `host` outside (user_namespaces(7), "User and group
/// ID mappings").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// A container's uid and gid maps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdMap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

/// The kernel takes at most this many lines per map (user_namespaces(7)).
const MAX_RANGES: usize = 340;

impl IdRange {
    /// Parses `container:host:size` (Podman's `--uidmap` form).
    pub fn parse(s: &str) -> std::result::Result<IdRange, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let [c, h, n] = parts.as_slice() else {
            return Err(format!(
                "id mapping {s:?}: expected CONTAINER_ID:HOST_ID:SIZE"
            ));
        };
        let num = |what: &str, v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("id mapping {s:?}: {what} {v:?} is not a number"))
        };
        let r = IdRange {
            container: num("container id", c)?,
            host: num("host id", h)?,
            size: num("size", n)?,
        };
        if r.size == 0 {
            return Err(format!("id mapping {s:?}: the size must not be 0"));
        }
        Ok(r)
    }

    fn end_container(&self) -> u64 {
        u64::from(self.container) + u64::from(self.size)
    }

    fn end_host(&self) -> u64 {
        u64::from(self.host) + u64::from(self.size)
    }
}

/// Checks one map the way the kernel will: not empty, not too many lines,
/// no range past 2^32-1, no two ranges overlapping on either side.
fn validate_ranges(what: &str, ranges: &[IdRange]) -> std::result::Result<(), String> {
    if ranges.is_empty() {
        return Err(format!("the {what} map is empty"));
    }
    if ranges.len() > MAX_RANGES {
        return Err(format!(
            "the {what} map has {} ranges; the kernel takes at most {MAX_RANGES}",
            ranges.len()
        ));
    }
    for r in ranges {
        // 4294967295 is (uid_t)-1, never a valid id.
        if r.end_container() > u64::from(u32::MAX) || r.end_host() > u64::from(u32::MAX) {
            return Err(format!(
                "the {what} range {}:{}:{} goes past the largest id",
                r.container, r.host, r.size
            ));
        }
    }
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            let overlap = |a0: u64, a1: u64, b0: u64, b1: u64| a0 < b1 && b0 < a1;
            if overlap(
                a.container.into(),
                a.end_container(),
                b.container.into(),
                b.end_container(),
            ) || overlap(a.host.into(), a.end_host(), b.host.into(), b.end_host())
            {
                return Err(format!(
                    "the {what} ranges {}:{}:{} and {}:{}:{} overlap",
                    a.container, a.host, a.size, b.container, b.host, b.size
                ));
            }
        }
    }
    Ok(())
}

/// The host id that container id `id` maps to.
fn to_host(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.container && u64::from(id) < r.end_container())
        .map(|r| r.host + (id - r.container))
}

/// The container id that host id `id` is, if it is mapped.
fn to_container(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.host && u64::from(id) < r.end_host())
        .map(|r| r.container + (id - r.host))
}

/// The text written to /proc/PID/{uid,gid}_map.
fn proc_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.container, r.host, r.size))
        .collect()
}

impl IdMap {
    pub fn validate(&self) -> std::result::Result<(), String> {
        validate_ranges("uid", &self.uids)?;
        validate_ranges("gid", &self.gids)
    }

    pub fn host_uid(&self, id: u32) -> Option<u32> {
        to_host(&self.uids, id)
    }

    pub fn host_gid(&self, id: u32) -> Option<u32> {
        to_host(&self.gids, id)
    }

    pub fn container_uid(&self, host: u32) -> Option<u32> {
        to_container(&self.uids, host)
    }

    pub fn container_gid(&self, host: u32) -> Option<u32> {
        to_container(&self.gids, host)
    }

    /// The host ids of the container's root (or of its first mapped ids):
    /// what host-side writes into the idmapped rootfs must use, see
    /// [`with_fs_ids`].
    pub fn root_ids(&self) -> (u32, u32) {
        self.mounter_ids()
    }

    /// The host ids overlayfs works with: the container's root, or the
    /// first mapped ids when root is not mapped.
    fn mounter_ids(&self) -> (u32, u32) {
        let uid = self
            .host_uid(0)
            .unwrap_or_else(|| self.uids.first().map_or(0, |r| r.host));
        let gid = self
            .host_gid(0)
            .unwrap_or_else(|| self.gids.first().map_or(0, |r| r.host));
        (uid, gid)
    }
}

fn mount_err(target: &Path, reason: String) -> Error {
    Error::Mount {
        target: target.to_path_buf(),
        reason,
    }
}

/// A user namespace that holds an id map and nothing else, kept alive by
/// its file descriptor after the process that made it is gone.
pub struct UserNamespace {
    fd: OwnedFd,
}

impl UserNamespace {
    /// Creates the namespace with a child cloned into it (clone(2),
    /// `CLONE_NEWUSER`), writes the maps from here and opens
    /// /proc/CHILD/ns/user; the child waits on a pipe and exits once this
    /// side closes it.
    pub fn new(map: &IdMap) -> Result<UserNamespace> {
        map.validate().map_err(|reason| Error::Malformed {
            what: "id map".into(),
            reason,
        })?;
        let err = |what: &str, e: std::io::Error| Error::Io {
            context: what.to_string(),
            source: e,
        };
        let (rd, wr) =
            std::io::pipe().map_err(|e| err("creating a pipe for the user namespace", e))?;
        let (rd, wr) = (OwnedFd::from(rd), OwnedFd::from(wr));
        // SAFETY: clone without CLONE_VM behaves like fork(2): the child
        // gets a copy of the address space and, below, only makes
        // async-signal-safe system calls before _exit.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWUSER | libc::SIGCHLD,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if pid == 0 {
            let mut b = [0u8; 1];
            // SAFETY: raw syscalls on fds this process owns, then _exit; no
            // allocation or lock is touched in the forked child.
            unsafe {
                libc::close(wr.as_raw_fd());
                libc::read(rd.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        if pid < 0 {
            return Err(err(
                "creating a user namespace (clone CLONE_NEWUSER)",
                std::io::Error::last_os_error(),
            ));
        }
        drop(rd);
        let pid = pid as i32;
        let result = (|| {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            std::fs::write(proc.join("uid_map"), proc_text(&map.uids))
                .map_err(|e| err("writing the user namespace's uid_map", e))?;
            std::fs::write(proc.join("gid_map"), proc_text(&map.gids))
                .map_err(|e| err("writing the user namespace's gid_map", e))?;
            let f = std::fs::File::open(proc.join("ns/user"))
                .map_err(|e| err("opening the new user namespace", e))?;
            Ok(UserNamespace { fd: f.into() })
        })();
        drop(wr);
        let mut status = 0;
        // SAFETY: waits for the child cloned above, which exits once the
        // pipe's write end is closed.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        result
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
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
    ns: &UserNamespace,
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
        userns_fd: ns.as_fd().as_raw_fd() as u64,
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

/// Mounts `mounts` on `target` with every layer idmapped to `map`.
pub fn mount_all_idmapped(mounts: &[Mount], target: &Path, map: &IdMap) -> Result<()> {
    let ns = UserNamespace::new(map)?;
    for m in mounts {
        match m.kind.as_str() {
            "overlay" => mount_overlay(m, target, &ns, map.mounter_ids())?,
            "bind" => mount_bind(m, target, &ns)?,
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

fn mount_bind(m: &Mount, target: &Path, ns: &UserNamespace) -> Result<()> {
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

fn mount_overlay(m: &Mount, target: &Path, ns: &UserNamespace, ids: (u32, u32)) -> Result<()> {
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

    fn r(c: u32, h: u32, n: u32) -> IdRange {
        IdRange {
            container: c,
            host: h,
            size: n,
        }
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(IdRange::parse("0:100000:65536"), Ok(r(0, 100000, 65536)));
        for bad in ["0:1", "a:1:2", "0:1:0", "0:1:2:3", "-1:0:1"] {
            assert!(IdRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_validate_like_the_kernel() {
        let ok = IdMap {
            uids: vec![r(0, 100000, 1000), r(1000, 5000, 1)],
            gids: vec![r(0, 100000, 65536)],
        };
        assert_eq!(ok.validate(), Ok(()));
        let host_overlap = IdMap {
            uids: vec![r(0, 100000, 1000), r(1000, 100500, 10)],
            ..ok.clone()
        };
        assert!(host_overlap.validate().unwrap_err().contains("overlap"));
        let container_overlap = IdMap {
            gids: vec![r(0, 1, 10), r(5, 100, 10)],
            ..ok.clone()
        };
        assert!(container_overlap.validate().unwrap_err().contains("gid"));
        let too_far = IdMap {
            uids: vec![r(0, u32::MAX - 10, 11)],
            ..ok.clone()
        };
        assert!(too_far.validate().unwrap_err().contains("largest"));
        let empty = IdMap { uids: vec![], ..ok };
        assert!(empty.validate().unwrap_err().contains("empty"));
    }

    #[test]
    fn ids_translate() {
        let m = IdMap {
            uids: vec![r(0, 100000, 1000), r(1000, 5000, 1)],
            gids: vec![r(1, 200000, 10)],
        };
        assert_eq!(m.host_uid(0), Some(100000));
        assert_eq!(m.host_uid(999), Some(100999));
        assert_eq!(m.host_uid(1000), Some(5000));
        assert_eq!(m.host_uid(1001), None);
        assert_eq!(m.mounter_ids(), (100000, 200000));
        assert_eq!(m.container_uid(100999), Some(999));
        assert_eq!(m.container_uid(5000), Some(1000));
        assert_eq!(m.container_uid(99999), None);
        assert_eq!(m.container_gid(200009), Some(10));
        assert_eq!(proc_text(&m.uids), "0 100000 1000\n1000 5000 1\n");
    }

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
