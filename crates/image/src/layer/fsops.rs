//! Thin, fd-based filesystem effects used by layer apply and snapshot copy.
//! Every lookup below a root goes through openat2(2) with `RESOLVE_BENEATH`
//! and `RESOLVE_NO_MAGICLINKS`, so no symlink (absolute, or `..` above the
//! root) can carry a write outside it: see
//! <https://man7.org/linux/man-pages/man2/openat2.2.html>.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, IoContext, Result};

/// Opens the directory `rel` below `root` without leaving it.
pub fn open_dir_beneath(root: BorrowedFd<'_>, rel: &str) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens (creating missing components as 0755 directories) the directory
/// `parts` below `root`. `entry` names the tar entry for error messages.
pub fn ensure_dir(root: BorrowedFd<'_>, parts: &[String], entry: &str) -> Result<OwnedFd> {
    let full = super::path::join(parts);
    match open_dir_beneath(root, &full) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(resolve_error(e, entry, &full)),
    }
    let mut cur = rustix::io::dup(root).ctx(|| "dup root fd".to_string())?;
    for (i, part) in parts.iter().enumerate() {
        let prefix = super::path::join(&parts[..=i]);
        match open_dir_beneath(root, &prefix) {
            Ok(fd) => cur = fd,
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&cur, part.as_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(resolve_error(e, entry, &prefix)),
                }
                cur = open_dir_beneath(root, &prefix)
                    .map_err(|e| resolve_error(e, entry, &prefix))?;
            }
            Err(e) => return Err(resolve_error(e, entry, &prefix)),
        }
    }
    Ok(cur)
}

/// Maps a resolution errno to a clear error naming the entry.
pub fn resolve_error(e: Errno, entry: &str, path: &str) -> Error {
    match e {
        Errno::XDEV => Error::hostile(
            entry,
            format!("{path} resolves outside the snapshot through a symlink"),
        ),
        Errno::LOOP => Error::hostile(entry, format!("{path}: too many symlinks or a magic link")),
        Errno::NOTDIR => Error::hostile(entry, format!("{path}: a parent is not a directory")),
        other => Error::Io {
            context: format!("entry {entry:?}: open {path}"),
            source: other.into(),
        },
    }
}

/// `lstat` of `name` in `dir`, or None when absent.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &str) -> Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("lstat {name}")),
    }
}

/// True when the mode is a directory.
pub fn is_dir(mode: u32) -> bool {
    mode & libc::S_IFMT == libc::S_IFDIR
}

/// Removes `name` in `dir`, recursing into directories; never follows
/// symlinks. Missing entries are fine.
pub fn remove_all_at(dir: BorrowedFd<'_>, name: &str) -> Result<()> {
    remove_all_raw(dir, std::ffi::OsStr::new(name))
}

fn remove_all_raw(dir: BorrowedFd<'_>, name: &std::ffi::OsStr) -> Result<()> {
    let shown = name.to_string_lossy();
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("lstat {shown}")),
    };
    if is_dir(st.st_mode) {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {shown} for removal"))?;
        for child in list_dir_raw(sub.as_fd())? {
            remove_all_raw(sub.as_fd(), &child)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).ctx(|| format!("rmdir {shown}"))
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).ctx(|| format!("unlink {shown}"))
    }
}

/// The names in a directory (without `.` and `..`), sorted by bytes.
fn list_dir_raw(dir: BorrowedFd<'_>) -> Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let fd = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "reopen directory".to_string())?;
    let mut names = Vec::new();
    let mut d = rustix::fs::Dir::read_from(&fd).ctx(|| "read directory".to_string())?;
    while let Some(entry) = d.read() {
        let entry = entry.ctx(|| "read directory entry".to_string())?;
        let bytes = entry.file_name().to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(std::ffi::OsStr::from_bytes(bytes).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// The names in a directory (without `.` and `..`), sorted. Layers carry
/// UTF-8 names only, so a name that is not UTF-8 is an error rather than a
/// file silently left out of a diff.
pub fn list_dir(dir: BorrowedFd<'_>) -> Result<Vec<String>> {
    list_dir_raw(dir)?
        .into_iter()
        .map(|n| {
            n.into_string().map_err(|n| {
                Error::malformed(
                    format!("file name {:?}", n.to_string_lossy()),
                    "not UTF-8 (layers carry UTF-8 names only)",
                )
            })
        })
        .collect()
}

/// The extended attributes of a path (not following symlinks), sorted by name.
pub fn read_xattrs(path: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut list = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(path, &mut list[..]) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("list xattrs of {}", path.display())),
    };
    let mut out = Vec::new();
    for name in list[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = vec![0u8; 65536];
        match rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]) {
            Ok(len) => {
                value.truncate(len);
                out.push((name, value));
            }
            Err(Errno::NODATA) => {}
            Err(e) => return Err(e).ctx(|| format!("read xattr {name} of {}", path.display())),
        }
    }
    out.sort();
    Ok(out)
}

/// Sets one xattr on an open file; filesystems without xattr support are
/// tolerated for non-`trusted.` names.
pub fn set_xattr(fd: BorrowedFd<'_>, name: &str, value: &[u8], entry: &str) -> Result<()> {
    match rustix::fs::fsetxattr(fd, name, value, rustix::fs::XattrFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::NOTSUP) if !name.starts_with("trusted.") => Ok(()),
        Err(e) => Err(e).ctx(|| format!("entry {entry:?}: set xattr {name}")),
    }
}
