//! Full tree copy for the vfs driver: every file kind, owners, modes
//! (setuid/sticky included), xattrs, mtimes and hard links.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps};

use crate::error::{IoContext, Result};
use crate::layer::fsops::read_xattrs;

/// Copies the contents of `src` into the existing directory `dst`.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut links = HashMap::new();
    copy_dir_contents(src, dst, &mut links)?;
    copy_meta(
        src,
        dst,
        &fs::symlink_metadata(src).ctx(|| format!("lstat {}", src.display()))?,
    )
}

fn copy_dir_contents(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(src)
        .ctx(|| format!("read {}", src.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .ctx(|| format!("read {}", src.display()))?;
    names.sort();
    for name in names {
        let (s, d) = (src.join(&name), dst.join(&name));
        let md = fs::symlink_metadata(&s).ctx(|| format!("lstat {}", s.display()))?;
        let ft = md.file_type();
        if md.nlink() > 1 && !ft.is_dir() {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                fs::hard_link(first, &d).ctx(|| format!("link {}", d.display()))?;
                continue;
            }
            links.insert((md.dev(), md.ino()), d.clone());
        }
        if ft.is_dir() {
            fs::create_dir(&d).ctx(|| format!("mkdir {}", d.display()))?;
            copy_dir_contents(&s, &d, links)?;
        } else if ft.is_symlink() {
            let t = fs::read_link(&s).ctx(|| format!("readlink {}", s.display()))?;
            std::os::unix::fs::symlink(t, &d).ctx(|| format!("symlink {}", d.display()))?;
        } else if ft.is_file() {
            let mut from = fs::File::open(&s).ctx(|| format!("open {}", s.display()))?;
            let mut to = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&d)
                .ctx(|| format!("create {}", d.display()))?;
            std::io::copy(&mut from, &mut to).ctx(|| format!("copy {}", s.display()))?;
        } else {
            let kind = FileType::from_raw_mode(md.mode());
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &d,
                kind,
                Mode::from_raw_mode(0o600),
                md.rdev(),
            )
            .ctx(|| format!("mknod {}", d.display()))?;
        }
        copy_meta(&s, &d, &md)?;
    }
    Ok(())
}

fn copy_meta(src: &Path, dst: &Path, md: &fs::Metadata) -> Result<()> {
    let (u, g) = (
        rustix::fs::Uid::from_raw(md.uid()),
        rustix::fs::Gid::from_raw(md.gid()),
    );
    rustix::fs::chownat(
        rustix::fs::CWD,
        dst,
        Some(u),
        Some(g),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("chown {}", dst.display()))?;
    if !md.file_type().is_symlink() {
        for (k, v) in read_xattrs(src)? {
            rustix::fs::lsetxattr(dst, k.as_str(), &v, rustix::fs::XattrFlags::empty())
                .ctx(|| format!("set xattr {k} on {}", dst.display()))?;
        }
        rustix::fs::chmodat(
            rustix::fs::CWD,
            dst,
            Mode::from_raw_mode(md.mode() & 0o7777),
            AtFlags::empty(),
        )
        .ctx(|| format!("chmod {}", dst.display()))?;
    }
    let ts = |s: i64, ns: i64| Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = Timestamps {
        last_access: ts(md.atime(), md.atime_nsec()),
        last_modification: ts(md.mtime(), md.mtime_nsec()),
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)
        .ctx(|| format!("set times of {}", dst.display()))
}
