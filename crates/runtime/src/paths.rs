//! Resolving paths inside the container's root filesystem so that no
//! symlink or `..` in the image can lead outside it: every lookup goes
//! through openat2(2) with RESOLVE_IN_ROOT from an fd of the rootfs, and
//! mounts target the resulting fd (`/proc/self/fd/N`), never a path that
//! could be swapped afterwards (the CVE-2021-30465 class).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys;

/// Normalises a container path to components below `/` (drops `/`, `.`;
/// keeps `..`, which RESOLVE_IN_ROOT clamps at the root).
pub fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

fn cstr(p: &Path) -> CString {
    let s = p.as_os_str().as_encoded_bytes();
    CString::new(if s.is_empty() { b".".as_slice() } else { s }).expect("paths have no NUL")
}

/// Opens `path` (inside `root`) with O_PATH, following symlinks as if
/// `root` were `/`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path) -> std::io::Result<OwnedFd> {
    sys::openat2(
        root,
        &cstr(&relative(path)),
        libc::O_PATH,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
}

/// Opens `path` (inside `root`) with O_PATH without following any
/// symlink: ELOOP if a component is one.
pub fn open_in_root_nofollow(root: BorrowedFd<'_>, path: &Path) -> std::io::Result<OwnedFd> {
    sys::openat2(
        root,
        &cstr(&relative(path)),
        libc::O_PATH,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_SYMLINKS,
    )
}

/// Whether two fds refer to the same file (device and inode).
pub fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> std::io::Result<bool> {
    let (a, b) = (nix::sys::stat::fstat(a)?, nix::sys::stat::fstat(b)?);
    Ok((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
}

/// The path through which a syscall taking a path reaches the object `fd`
/// refers to.
pub fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let what = format!("{what} {}", path.display());
    move |source| Error::Sys { what, source }
}

/// mkdir -p inside `root`; returns an O_PATH fd of the final directory.
/// A dangling symlink on the way is followed (inside the root) and its
/// target created, as a mount destination like `/var/run -> /run` needs.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd> {
    mkdir_all_depth(root, &relative(path), mode, 0)
}

fn mkdir_all_depth(root: BorrowedFd<'_>, rel: &Path, mode: u32, depth: u32) -> Result<OwnedFd> {
    if depth > 40 {
        return Err(Error::Other(format!(
            "too many levels of symbolic links creating {}",
            rel.display()
        )));
    }
    let comps: Vec<_> = rel.components().collect();
    let mut cur = PathBuf::new();
    let mut fd = open_in_root(root, &cur).map_err(err("opening", rel))?;
    for (i, comp) in comps.iter().enumerate() {
        cur.push(comp);
        match open_in_root(root, &cur) {
            Ok(next) => fd = next,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let name = cstr(Path::new(comp.as_os_str()));
                match nix::sys::stat::mkdirat(
                    fd.as_fd(),
                    name.as_c_str(),
                    nix::sys::stat::Mode::from_bits_truncate(mode),
                ) {
                    Ok(()) => {}
                    Err(nix::errno::Errno::EEXIST) => {
                        // A dangling symlink: continue from its target.
                        let target = nix::fcntl::readlinkat(fd.as_fd(), name.as_c_str())
                            .map_err(|e| err("reading link", &cur)(e.into()))?;
                        let target = Path::new(&target);
                        let mut next = if target.is_absolute() {
                            relative(target)
                        } else {
                            cur.parent().unwrap_or(Path::new("")).join(target)
                        };
                        for rest in &comps[i + 1..] {
                            next.push(rest);
                        }
                        return mkdir_all_depth(root, &next, mode, depth + 1);
                    }
                    Err(e) => return Err(err("creating", &cur)(e.into())),
                }
                fd = open_in_root(root, &cur).map_err(err("opening", &cur))?;
            }
            Err(e) => return Err(err("opening", &cur)(e)),
        }
    }
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(|e| err("stat", rel)(e.into()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::Other(format!(
            "{} exists in the rootfs and is not a directory",
            Path::new("/").join(rel).display()
        )));
    }
    Ok(fd)
}

/// Makes sure a file exists at `path` inside `root` (creating parents);
/// returns an O_PATH fd of it. An existing directory is an error.
pub fn ensure_file_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd> {
    match open_in_root(root, path) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(err("opening", path)(e)),
    }
    let rel = relative(path);
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .ok_or_else(|| Error::Other(format!("{} has no file name", path.display())))?;
    let dir = mkdir_all_in_root(root, parent, 0o755)?;
    // O_PATH fds can't be used as openat dirfds for creation through /proc
    // tricks; reopen the directory for real (it is inside the root).
    let dir = reopen_dir(&dir).map_err(err("opening", parent))?;
    let c = cstr(Path::new(name));
    match nix::fcntl::openat(
        dir.as_fd(),
        c.as_c_str(),
        nix::fcntl::OFlag::O_CREAT
            | nix::fcntl::OFlag::O_EXCL
            | nix::fcntl::OFlag::O_WRONLY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(err("creating", path)(e.into())),
    }
    open_in_root(root, path).map_err(err("opening", path))
}

/// Turns an O_PATH directory fd into an ordinary one.
pub fn reopen_dir(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    let f = std::fs::File::open(fd_path(fd))?;
    Ok(OwnedFd::from(f))
}

/// Whether `fd` refers to a directory.
pub fn is_dir(fd: BorrowedFd<'_>) -> std::io::Result<bool> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn relative_drops_root_and_dots() {
        assert_eq!(relative(Path::new("/a/./b/")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/../x")), PathBuf::from("../x"));
    }

    #[test]
    fn symlinks_cannot_leave_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.path().join("evil")).unwrap();
        symlink("/../../..", root.path().join("up")).unwrap();
        let rfd = OwnedFd::from(std::fs::File::open(root.path()).unwrap());
        mkdir_all_in_root(rfd.as_fd(), Path::new("/evil/made"), 0o755).unwrap();
        assert!(
            !outside.path().join("made").exists(),
            "escaped through an absolute symlink"
        );
        assert!(
            root.path()
                .join(outside.path().strip_prefix("/").unwrap())
                .join("made")
                .is_dir()
        );
        ensure_file_in_root(rfd.as_fd(), Path::new("/up/etc/x")).unwrap();
        assert!(root.path().join("etc/x").is_file());
    }

    #[test]
    fn dir_where_file_exists_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("f"), "").unwrap();
        let rfd = OwnedFd::from(std::fs::File::open(root.path()).unwrap());
        assert!(mkdir_all_in_root(rfd.as_fd(), Path::new("/f"), 0o755).is_err());
    }
}
