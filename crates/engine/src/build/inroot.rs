//! File operations inside a rootfs that symlinks cannot escape: every path
//! is resolved with openat2(2) `RESOLVE_IN_ROOT`, so `/`, `..` and absolute
//! symlink targets stay inside the root (as they would inside the
//! container). See openat2(2).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;

/// A directory treated as `/`.
pub struct Root {
    fd: OwnedFd,
}

/// Splits a container path into its normal components (`.`/empty dropped;
/// `..` kept for openat2 to clamp at the root).
pub fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

impl Root {
    pub fn open(dir: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)?;
        Ok(Root { fd })
    }

    fn resolve(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        rustix::fs::openat2(
            self.fd.as_fd(),
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(errno)
    }

    /// An `O_PATH` fd of the object at `path` (symlinks followed in-root).
    pub fn open_path(&self, path: &str) -> io::Result<OwnedFd> {
        self.resolve(&components(path).join("/"), OFlags::PATH)
    }

    /// Whether `path` is (resolves to) a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        self.resolve(
            &components(path).join("/"),
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .is_ok()
    }

    /// Reads a small file (e.g. /etc/passwd); empty when missing.
    pub fn read_to_string(&self, path: &str) -> String {
        match self.resolve(&components(path).join("/"), OFlags::RDONLY) {
            Ok(fd) => io::read_to_string(File::from(fd)).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// `mkdir -p` of `path`; directories created get mode 0755 and `owner`.
    /// Returns an `O_PATH` fd of the directory.
    pub fn mkdir_all(&self, path: &str, owner: Option<(u32, u32)>) -> io::Result<OwnedFd> {
        let comps = components(path);
        let mut dir = self.resolve("", OFlags::PATH | OFlags::DIRECTORY)?;
        for i in 0..comps.len() {
            let prefix = comps[..=i].join("/");
            match self.resolve(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => dir = fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(&dir, comps[i], Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(errno(e)),
                    }
                    let fd = self.resolve(&prefix, OFlags::PATH | OFlags::DIRECTORY)?;
                    if let Some((uid, gid)) = owner {
                        chown_fd(&fd, uid, gid)?;
                    }
                    dir = fd;
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("/{prefix} is not a directory: {e}"),
                    ));
                }
            }
        }
        Ok(dir)
    }
}

/// The host path of an fd (through /proc/self/fd).
pub fn host_path(fd: &OwnedFd) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn chown_fd(fd: &OwnedFd, uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::chownat(
        fd,
        "",
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(errno)
}

/// Removes a non-directory `name` in `dir` if present.
fn clear(dir: &OwnedFd, name: &str) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) | Err(Errno::ISDIR) => Ok(()),
        Err(e) => Err(errno(e)),
    }
}

/// Metadata applied to a created entry.
#[derive(Debug, Clone, Copy)]
pub struct Attrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time (seconds); None leaves it.
    pub mtime: Option<i64>,
}

fn set_attrs(dir: &OwnedFd, name: &str, a: &Attrs, symlink: bool) -> io::Result<()> {
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(a.uid)),
        Some(rustix::fs::Gid::from_raw(a.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(errno)?;
    if !symlink {
        // chown clears setuid/setgid bits, so the mode comes after it.
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(a.mode), AtFlags::empty())
            .map_err(errno)?;
    }
    if let Some(t) = a.mtime {
        let ts = rustix::fs::Timespec {
            tv_sec: t,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            dir,
            name,
            &Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
    }
    Ok(())
}

/// Writes a regular file `name` in directory `dir` from `data`.
pub fn write_file(
    dir: &OwnedFd,
    name: &str,
    data: &mut dyn io::Read,
    attrs: &Attrs,
) -> io::Result<()> {
    clear(dir, name)?;
    // openat(2) accepts an O_PATH directory fd as dirfd; O_NOFOLLOW keeps a
    // symlink planted at `name` from redirecting the write.
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(errno)?;
    let mut f = File::from(fd);
    io::copy(data, &mut f)?;
    drop(f);
    set_attrs(dir, name, attrs, false)
}

/// Creates a symlink `name` → `target` in `dir`.
pub fn write_symlink(dir: &OwnedFd, name: &str, target: &Path, attrs: &Attrs) -> io::Result<()> {
    clear(dir, name)?;
    rustix::fs::symlinkat(target, dir, name).map_err(errno)?;
    set_attrs(dir, name, attrs, true)
}

/// Creates (or reuses) directory `name` in `dir`; returns its fd.
pub fn make_dir(dir: &OwnedFd, name: &str, attrs: &Attrs) -> io::Result<OwnedFd> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(errno(e)),
    }
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        io::Error::new(
            errno(e).kind(),
            format!("{name} exists and is not a directory"),
        )
    })?;
    set_attrs(dir, name, attrs, false)?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_cannot_escape() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("etc/dots")).unwrap();
        let r = Root::open(&root).unwrap();
        let fd = r.mkdir_all("/up/created", None).unwrap();
        assert_eq!(host_path(&fd).unwrap(), root.join("created"));
        let fd = r.mkdir_all("etc/dots/x/y", None).unwrap();
        assert_eq!(host_path(&fd).unwrap(), root.join("x/y"));
        assert!(!tmp.path().join("x").exists());
        let attrs = Attrs {
            mode: 0o640,
            uid: 0,
            gid: 0,
            mtime: Some(1000),
        };
        write_file(&fd, "f", &mut &b"hi"[..], &attrs).unwrap();
        let m = std::fs::metadata(root.join("x/y/f")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((m.mode() & 0o7777, m.mtime(), m.len()), (0o640, 1000, 2));
        assert_eq!(components("/a/./b//c/"), vec!["a", "b", "c"]);
    }
}
