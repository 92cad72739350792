//! The entries of `mounts`: option parsing (pure) and the mount calls.
//!
//! Bind mounts use the new mount API (open_tree(2) + mount_setattr(2) +
//! move_mount(2)): the clone gets its flags *before* it becomes visible, so a
//! read-only bind is never writable for a moment, and no remount through a
//! path is needed. Other filesystems are mounted with mount(2) onto the
//! target fd, made the working directory (never a /proc/self/fd path).

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::error::{Error, Result};

/// mount_setattr(2) attribute bits (linux/mount.h).
pub mod attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const NOEXEC: u64 = 0x8;
    pub const ATIME_MASK: u64 = 0x70;
    pub const RELATIME: u64 = 0x0;
    pub const NOATIME: u64 = 0x10;
    pub const STRICTATIME: u64 = 0x20;
    pub const NODIRATIME: u64 = 0x80;
    pub const IDMAP: u64 = 0x10_0000;
    pub const NOSYMFOLLOW: u64 = 0x20_0000;
}

/// A mount entry's options, sorted into what each syscall needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Flags for mount(2) (non-bind filesystems).
    pub flags: MsFlags,
    /// Bind mount (`bind` or `rbind`), recursive for `rbind`.
    pub bind: bool,
    pub recursive: bool,
    /// mount_setattr attributes to set and clear (bind mounts).
    pub attr_set: u64,
    pub attr_clr: u64,
    /// Whether set/clear apply to the whole tree (`rro`, `rnosuid`, …).
    pub attr_recursive: bool,
    /// Propagation changes, in order (MS_SHARED, MS_PRIVATE|MS_REC, …).
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options, passed as mount data.
    pub data: Vec<String>,
    /// `idmap`/`ridmap`: an idmapped bind mount using the container's maps.
    pub idmap: bool,
    /// The value of `idmap=…`/`ridmap=…` (crun's and Podman's syntax for a
    /// mapping of the mount's own, see [`parse_idmap_value`]).
    pub idmap_value: Option<String>,
    /// `tmpcopyup`: copy the image's content at the destination into the new tmpfs.
    pub tmpcopyup: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flags: MsFlags::empty(),
            bind: false,
            recursive: false,
            attr_set: 0,
            attr_clr: 0,
            attr_recursive: false,
            propagation: vec![],
            data: vec![],
            idmap: false,
            idmap_value: None,
            tmpcopyup: false,
        }
    }
}

impl Options {
    pub fn data_string(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }
}

/// Sorts option strings; unknown ones are filesystem data, as runc does.
pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        let (set, clr, ms_set, ms_clr): (u64, u64, MsFlags, MsFlags) = match opt.as_str() {
            "defaults" => (0, 0, MsFlags::empty(), MsFlags::empty()),
            "ro" => (attr::RDONLY, 0, MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (0, attr::RDONLY, MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (attr::NOSUID, 0, MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (0, attr::NOSUID, MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (attr::NODEV, 0, MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (0, attr::NODEV, MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (attr::NOEXEC, 0, MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (0, attr::NOEXEC, MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noatime" => (
                attr::NOATIME,
                attr::ATIME_MASK,
                MsFlags::MS_NOATIME,
                MsFlags::empty(),
            ),
            "atime" => (
                attr::RELATIME,
                attr::ATIME_MASK,
                MsFlags::empty(),
                MsFlags::MS_NOATIME,
            ),
            "relatime" => (
                attr::RELATIME,
                attr::ATIME_MASK,
                MsFlags::MS_RELATIME,
                MsFlags::empty(),
            ),
            "norelatime" => (0, 0, MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (
                attr::STRICTATIME,
                attr::ATIME_MASK,
                MsFlags::MS_STRICTATIME,
                MsFlags::empty(),
            ),
            "nostrictatime" => (0, 0, MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "nodiratime" => (
                attr::NODIRATIME,
                0,
                MsFlags::MS_NODIRATIME,
                MsFlags::empty(),
            ),
            "diratime" => (
                0,
                attr::NODIRATIME,
                MsFlags::empty(),
                MsFlags::MS_NODIRATIME,
            ),
            "nosymfollow" => (
                attr::NOSYMFOLLOW,
                0,
                MsFlags::from_bits_retain(256),
                MsFlags::empty(),
            ),
            "sync" => (0, 0, MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (0, 0, MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (0, 0, MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (0, 0, MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (0, 0, MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "lazytime" => (0, 0, MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "nolazytime" => (0, 0, MsFlags::empty(), MsFlags::MS_LAZYTIME),
            "remount" => (0, 0, MsFlags::MS_REMOUNT, MsFlags::empty()),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            "idmap" | "ridmap" => {
                o.idmap = true;
                o.attr_recursive |= opt == "ridmap";
                continue;
            }
            v if v.starts_with("idmap=") || v.starts_with("ridmap=") => {
                let (name, value) = v.split_once('=').expect("has =");
                o.idmap = true;
                o.attr_recursive |= name == "ridmap";
                o.idmap_value = Some(value.to_string());
                continue;
            }
            "tmpcopyup" => {
                o.tmpcopyup = true;
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation.push(propagation_flags(opt).expect("listed"));
                continue;
            }
            r if r.len() > 1
                && r.starts_with('r')
                && [
                    "ro",
                    "rw",
                    "nosuid",
                    "suid",
                    "nodev",
                    "dev",
                    "noexec",
                    "exec",
                    "noatime",
                    "atime",
                    "relatime",
                    "strictatime",
                    "nodiratime",
                    "diratime",
                    "nosymfollow",
                ]
                .contains(&&r[1..]) =>
            {
                // Recursive attributes (runc's `rro` etc.) apply to every
                // submount of a bind.
                let inner = parse_options(&[r[1..].to_string()]);
                o.attr_set = (o.attr_set & !inner.attr_clr) | inner.attr_set;
                o.attr_clr |= inner.attr_clr;
                o.attr_recursive = true;
                continue;
            }
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.attr_set = (o.attr_set & !clr) | set;
        o.attr_clr = (o.attr_clr & !set) | clr;
        o.flags = (o.flags - ms_clr) | ms_set;
    }
    o
}

/// MS_* flags of a propagation option (`rslave` → MS_SLAVE|MS_REC).
pub fn propagation_flags(name: &str) -> Option<MsFlags> {
    let (rec, base) = match name.strip_prefix('r') {
        Some(b) if ["private", "shared", "slave", "unbindable"].contains(&b) => (true, b),
        _ => (false, name),
    };
    let f = match base {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(if rec { f | MsFlags::MS_REC } else { f })
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("paths have no NUL")
}

fn sys_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Sys { what, source }
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached copy of the tree at `source` (open_tree(2) with OPEN_TREE_CLONE).
pub fn clone_tree(source: &Path, recursive: bool) -> Result<OwnedFd> {
    const OPEN_TREE_CLONE: u32 = 1;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as u32
        | if recursive {
            libc::AT_RECURSIVE as u32
        } else {
            0
        };
    let c = cpath(source);
    // SAFETY: plain syscall with a C string.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(sys_err(format!("bind source {}", source.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the kernel returned a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A detached copy of the mount `fd` refers to, reached through the fd
/// itself (`AT_EMPTY_PATH`), never through a path the container could
/// have replaced. With `recursive`, the mounts below it come along.
pub fn clone_fd(fd: BorrowedFd<'_>, recursive: bool, what: &str) -> Result<OwnedFd> {
    const OPEN_TREE_CLONE: u32 = 1;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as u32
        | libc::AT_EMPTY_PATH as u32
        | if recursive {
            libc::AT_RECURSIVE as u32
        } else {
            0
        };
    // SAFETY: plain syscall with an fd and an empty C string.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    if r < 0 {
        return Err(sys_err(format!("cloning the mount of {what}"))(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the kernel returned a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// mount_setattr(2) on a mount fd.
pub fn set_attr(
    mnt: BorrowedFd<'_>,
    set: u64,
    clr: u64,
    propagation: u64,
    userns: Option<BorrowedFd<'_>>,
    recursive: bool,
    what: &str,
) -> Result<()> {
    if set == 0 && clr == 0 && propagation == 0 && userns.is_none() {
        return Ok(());
    }
    let a = MountAttr {
        attr_set: set | if userns.is_some() { attr::IDMAP } else { 0 },
        attr_clr: clr,
        propagation,
        userns_fd: userns.map_or(0, |f| f.as_raw_fd() as u64),
    };
    let flags = libc::AT_EMPTY_PATH as u32
        | if recursive {
            libc::AT_RECURSIVE as u32
        } else {
            0
        };
    // SAFETY: plain syscall; a points to a valid mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &a as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(sys_err(format!("setting mount attributes of {what}"))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// move_mount(2): attaches the detached mount `mnt` on top of `target`.
pub fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>, what: &str) -> Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    // SAFETY: plain syscall with fds and empty C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(sys_err(format!("attaching the mount at {what}"))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// mount(2) of a filesystem onto the directory `target` refers to. The
/// mount point is named as "." after fchdir(2) to the fd, not as
/// /proc/self/fd/N: after pivot_root that would go through the container's
/// /proc, which is not necessarily the kernel's.
pub fn mount_fs(
    source: &str,
    target: &OwnedFd,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
    what: &Path,
) -> Result<()> {
    let err = |e: nix::errno::Errno| {
        sys_err(format!("mounting {fstype} on {}", what.display()))(e.into())
    };
    let back = nix::fcntl::open(
        ".",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(err)?;
    nix::unistd::fchdir(target).map_err(err)?;
    let mounted = nix::mount::mount(Some(source), ".", Some(fstype), flags, data);
    let returned = nix::unistd::fchdir(&back);
    mounted.map_err(err)?;
    returned.map_err(|e| sys_err("returning to the working directory".into())(e.into()))
}

/// Changes propagation of the mount at `target` (mount(2) with only propagation flags).
pub fn set_propagation(target: &str, flags: MsFlags) -> Result<()> {
    nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| sys_err(format!("setting propagation {flags:?} of {target}"))(e.into()))
}

/// A bind mount described fully: source on the host, destination in the
/// rootfs, options.
pub struct Bind<'a> {
    pub source: &'a Path,
    pub target: &'a OwnedFd,
    pub dest: &'a Path,
    pub opts: &'a Options,
    pub userns: Option<BorrowedFd<'a>>,
}

pub fn bind(b: Bind<'_>) -> Result<()> {
    use std::os::fd::AsFd;
    let tree = clone_tree(b.source, b.opts.recursive)?;
    let what = b.dest.display().to_string();
    set_attr(
        tree.as_fd(),
        b.opts.attr_set,
        b.opts.attr_clr,
        0,
        b.userns,
        b.opts.attr_recursive,
        &what,
    )?;
    for prop in &b.opts.propagation {
        let recursive = prop.contains(MsFlags::MS_REC);
        let base = (*prop - MsFlags::MS_REC).bits();
        set_attr(tree.as_fd(), 0, 0, base, None, recursive, &what)?;
    }
    attach(tree.as_fd(), b.target.as_fd(), &what)
}

/// Resolves a bind source: relative paths are relative to the bundle.
pub fn bind_source(bundle: &Path, source: &Path) -> PathBuf {
    if source.is_absolute() {
        source.to_path_buf()
    } else {
        bundle.join(source)
    }
}

/// One range of an idmapped mount: `size` ids from `fs` on the backing
/// filesystem appear as the ids from `host` (a user namespace map line).
pub type IdmapRange = (u32, u32, u32);

/// Parses the value of crun's and Podman's `idmap=` mount option,
/// `uids=0-1-10#10-11-10;gids=0-100-10`: for each `FS-HOST-SIZE` triplet,
/// `SIZE` ids from `FS` on the backing filesystem are host ids from `HOST`;
/// `#` separates ranges. Both `uids` and `gids` are needed. Podman's
/// relative form (`@` prefix) is refused.
pub fn parse_idmap_value(
    value: &str,
) -> std::result::Result<(Vec<IdmapRange>, Vec<IdmapRange>), String> {
    let mut uids = None;
    let mut gids = None;
    for part in value.split(';').filter(|p| !p.is_empty()) {
        let (key, ranges) = part
            .split_once('=')
            .ok_or_else(|| format!("idmap={value}: {part:?} is not uids=… or gids=…"))?;
        let parsed = ranges
            .split('#')
            .map(|r| parse_idmap_range(r).map_err(|e| format!("idmap={value}: {e}")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        match key {
            "uids" => uids = Some(parsed),
            "gids" => gids = Some(parsed),
            _ => return Err(format!("idmap={value}: unknown key {key:?} (uids, gids)")),
        }
    }
    match (uids, gids) {
        (Some(u), Some(g)) => Ok((u, g)),
        _ => Err(format!("idmap={value}: both uids= and gids= are needed")),
    }
}

fn parse_idmap_range(r: &str) -> std::result::Result<IdmapRange, String> {
    if r.starts_with('@') {
        return Err(format!("{r:?}: relative (@) mappings are not supported"));
    }
    let n: Vec<&str> = r.split('-').collect();
    let num = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("{r:?}: {s:?} is not a number (want FS-HOST-SIZE)"))
    };
    match n.as_slice() {
        [fs, host, size] => {
            let size = num(size)?;
            if size == 0 {
                return Err(format!("{r:?}: the size must not be 0"));
            }
            Ok((num(fs)?, num(host)?, size))
        }
        _ => Err(format!("{r:?}: want FS-HOST-SIZE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crun_idmap_values_parse() {
        assert_eq!(
            parse_idmap_value("uids=0-1-10#10-11-10;gids=0-100-10"),
            Ok((vec![(0, 1, 10), (10, 11, 10)], vec![(0, 100, 10)]))
        );
        for bad in [
            "uids=0-1-10",
            "uids=0-1;gids=0-1-1",
            "uids=0-1-0;gids=0-1-1",
            "uids=@0-1-1;gids=0-1-1",
            "users=0-1-1;gids=0-1-1",
            "uids=a-1-1;gids=0-1-1",
        ] {
            assert!(parse_idmap_value(bad).is_err(), "{bad}");
        }
        let o = parse_options(&["rbind".into(), "ridmap=uids=0-5-1;gids=0-6-1".into()]);
        assert!(o.idmap && o.attr_recursive && o.bind);
        assert_eq!(o.idmap_value.as_deref(), Some("uids=0-5-1;gids=0-6-1"));
        assert!(o.data.is_empty());
    }

    fn p(opts: &[&str]) -> Options {
        parse_options(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data_are_sorted() {
        let o = p(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert!(!o.bind);
    }

    #[test]
    fn later_options_win() {
        let o = p(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(o.attr_set & attr::RDONLY, 0);
        assert_ne!(o.attr_clr & attr::RDONLY, 0);
    }

    #[test]
    fn rbind_and_propagation() {
        let o = p(&["rbind", "ro", "rslave"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.attr_set, attr::RDONLY);
    }

    #[test]
    fn recursive_attributes() {
        let o = p(&["rbind", "rro", "rnosuid"]);
        assert!(o.attr_recursive);
        assert_eq!(o.attr_set, attr::RDONLY | attr::NOSUID);
    }

    #[test]
    fn propagation_names() {
        assert_eq!(
            propagation_flags("rprivate"),
            Some(MsFlags::MS_PRIVATE | MsFlags::MS_REC)
        );
        assert_eq!(propagation_flags("shared"), Some(MsFlags::MS_SHARED));
        assert_eq!(propagation_flags("bogus"), None);
    }
}
