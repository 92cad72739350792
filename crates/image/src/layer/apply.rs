//! Unpacking a layer tar into a directory, safely.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};

use super::fsops::{
    ensure_dir, is_dir, list_dir, lstat_at, open_dir_beneath, remove_all_at, resolve_error,
    set_xattr,
};
use super::path::{EntryName, classify, components, join};
use super::{ApplyOptions, CountingReader, DiffStats, WhiteoutMode, decompress};
use crate::error::{Error, IoContext, Result};

/// Metadata of a directory, applied after all entries so that children can
/// be created in read-only directories and mtimes are not disturbed.
struct DirMeta {
    parts: Vec<String>,
    mode: u32,
    mtime: u64,
}

/// Applies the layer in `reader` onto `dir`. On error the directory may be
/// half-written: callers apply into a fresh snapshot and remove it on error.
pub fn apply<R: Read>(reader: R, dir: &Path, opts: &ApplyOptions) -> Result<DiffStats> {
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open layer target {}", dir.display()))?;
    let mut counting = CountingReader::new(decompress(reader)?, opts.limits.max_bytes);
    let mut state = State {
        root,
        opts,
        dirs: Vec::new(),
        added: HashSet::new(),
        entries: 0,
    };
    let result = state.unpack(&mut counting);
    if counting.exceeded {
        return Err(Error::LimitExceeded {
            what: "uncompressed layer bytes",
            limit: opts.limits.max_bytes,
        });
    }
    result?;
    state.finish_dirs()?;
    let entries = state.entries;
    let (diff_id, tar_size) = counting.finish().ctx(|| "read layer tail".to_string())?;
    Ok(DiffStats {
        diff_id,
        tar_size,
        entries,
    })
}

struct State<'o> {
    root: OwnedFd,
    opts: &'o ApplyOptions,
    dirs: Vec<DirMeta>,
    /// Paths this layer created, kept by opaque markers in delete mode.
    added: HashSet<String>,
    entries: u64,
}

impl State<'_> {
    fn unpack<R: Read>(&mut self, reader: &mut R) -> Result<()> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().ctx(|| "read layer tar".to_string())?;
        for entry in entries {
            let mut entry =
                entry.ctx(|| format!("read tar entry after {} entries", self.entries))?;
            self.entries += 1;
            if self.entries > self.opts.limits.max_entries {
                return Err(Error::LimitExceeded {
                    what: "entries per layer",
                    limit: self.opts.limits.max_entries,
                });
            }
            self.entry(&mut entry)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        if matches!(
            entry.header().entry_type(),
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            // pax headers the tar reader did not fold into an entry (e.g.
            // git archive's global header) carry nothing to unpack.
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let lim = self.opts.limits;
        match classify(&raw, lim.max_path_len, lim.max_depth)? {
            EntryName::Root | EntryName::Ignored => Ok(()),
            EntryName::Whiteout { dir, name } => self.whiteout(&dir, &name, &shown),
            EntryName::Opaque { dir } => self.opaque(&dir, &shown),
            EntryName::Path(parts) => self.create(entry, parts, &shown),
        }
    }

    fn whiteout(&mut self, dir: &[String], name: &str, shown: &str) -> Result<()> {
        let parent = ensure_dir(self.root.as_fd(), dir, shown)?;
        remove_all_at(parent.as_fd(), name)?;
        if self.opts.whiteouts == WhiteoutMode::Overlay {
            rustix::fs::mknodat(&parent, name, FileType::CharacterDevice, Mode::empty(), 0)
                .ctx(|| format!("entry {shown:?}: create overlay whiteout (needs CAP_MKNOD)"))?;
        }
        Ok(())
    }

    fn opaque(&mut self, dir: &[String], shown: &str) -> Result<()> {
        let fd = ensure_dir(self.root.as_fd(), dir, shown)?;
        match self.opts.whiteouts {
            WhiteoutMode::Overlay => set_xattr(fd.as_fd(), "trusted.overlay.opaque", b"y", shown),
            WhiteoutMode::Delete => {
                for child in list_dir(fd.as_fd())? {
                    let mut p = dir.to_vec();
                    p.push(child.clone());
                    if !self.added.contains(&join(&p)) {
                        remove_all_at(fd.as_fd(), &child)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn create<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        mut parts: Vec<String>,
        shown: &str,
    ) -> Result<()> {
        let name = parts.pop().expect("classify returns non-empty paths");
        let parent = ensure_dir(self.root.as_fd(), &parts, shown)?;
        parts.push(name.clone());
        self.added.insert(join(&parts));
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().ctx(|| format!("entry {shown:?}: mode"))? & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let existing = lstat_at(parent.as_fd(), &name)?;
        let new_is_dir = kind == tar::EntryType::Directory;
        if let Some(st) = existing
            && !(new_is_dir && is_dir(st.st_mode))
            && !(kind == tar::EntryType::Link && self.link_is_self(entry, &parts))
        {
            remove_all_at(parent.as_fd(), &name)?;
        }
        let xattrs = pax_xattrs(entry, shown)?;
        let fd = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Some(write_file(parent.as_fd(), &name, entry, shown)?)
            }
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e).ctx(|| format!("entry {shown:?}: mkdir")),
                }
                self.dirs.push(DirMeta {
                    parts: parts.clone(),
                    mode,
                    mtime,
                });
                let fd = open_dir_beneath(self.root.as_fd(), &join(&parts))
                    .map_err(|e| resolve_error(e, shown, shown))?;
                // A directory recreated over an overlay whiteout (`.wh.d`
                // then `d/` in one layer) must hide the lower one: opaque.
                if self.opts.whiteouts == WhiteoutMode::Overlay
                    && existing.is_some_and(|st| is_whiteout(&st))
                {
                    set_xattr(fd.as_fd(), "trusted.overlay.opaque", b"y", shown)?;
                }
                Some(fd)
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::hostile(shown, "symlink without target"))?;
                let target = std::str::from_utf8(&target)
                    .map_err(|_| Error::hostile(shown, "symlink target not UTF-8"))?;
                rustix::fs::symlinkat(target, &parent, name.as_str())
                    .ctx(|| format!("entry {shown:?}: symlink"))?;
                None
            }
            tar::EntryType::Link => {
                self.hard_link(entry, parent.as_fd(), &name, &parts, shown)?;
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                if self.opts.rootless {
                    return Err(Error::hostile(
                        shown,
                        "device nodes are refused in rootless mode",
                    ));
                }
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let ft = if kind == tar::EntryType::Char {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                rustix::fs::mknodat(
                    &parent,
                    name.as_str(),
                    ft,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .ctx(|| format!("entry {shown:?}: mknod"))?;
                None
            }
            tar::EntryType::Fifo => {
                rustix::fs::mknodat(
                    &parent,
                    name.as_str(),
                    FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .ctx(|| format!("entry {shown:?}: mkfifo"))?;
                None
            }
            other => {
                return Err(Error::hostile(
                    shown,
                    format!("unsupported tar entry type {other:?}"),
                ));
            }
        };
        if let Some(fd) = &fd {
            for (k, v) in &xattrs {
                set_xattr(fd.as_fd(), k, v, shown)?;
            }
        }
        let owner = (
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        );
        self.set_owner(parent.as_fd(), &name, owner, shown)?;
        if kind == tar::EntryType::Directory {
            return Ok(());
        }
        if kind != tar::EntryType::Symlink {
            // chmod after chown: chown clears setuid/setgid bits.
            rustix::fs::chmodat(
                &parent,
                name.as_str(),
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            )
            .ctx(|| format!("entry {shown:?}: chmod"))?;
        }
        set_mtime(parent.as_fd(), &name, mtime, shown)
    }

    fn link_is_self<R: Read>(&self, entry: &tar::Entry<'_, R>, parts: &[String]) -> bool {
        let lim = self.opts.limits;
        entry
            .link_name_bytes()
            .and_then(|t| components(&t, lim.max_path_len, lim.max_depth).ok())
            .is_some_and(|t| t == parts)
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        parent: BorrowedFd<'_>,
        name: &str,
        parts: &[String],
        shown: &str,
    ) -> Result<()> {
        let raw = entry
            .link_name_bytes()
            .ok_or_else(|| Error::hostile(shown, "hard link without target"))?;
        let lim = self.opts.limits;
        let mut target = components(&raw, lim.max_path_len, lim.max_depth)
            .map_err(|e| Error::hostile(shown, format!("hard link target: {e}")))?;
        if target == parts {
            return Ok(());
        }
        let tname = target
            .pop()
            .ok_or_else(|| Error::hostile(shown, "hard link to the root"))?;
        let tdir = open_dir_beneath(self.root.as_fd(), &join(&target))
            .map_err(|e| resolve_error(e, shown, "hard link target"))?;
        match lstat_at(tdir.as_fd(), &tname)? {
            None => {
                return Err(Error::hostile(
                    shown,
                    format!(
                        "hard link target {} is not in the layer",
                        String::from_utf8_lossy(&raw)
                    ),
                ));
            }
            Some(st) if is_dir(st.st_mode) => {
                return Err(Error::hostile(shown, "hard link to a directory"));
            }
            Some(_) => {}
        }
        rustix::fs::linkat(&tdir, tname.as_str(), parent, name, AtFlags::empty())
            .ctx(|| format!("entry {shown:?}: link"))
    }

    fn set_owner(
        &self,
        parent: BorrowedFd<'_>,
        name: &str,
        (uid, gid): (u32, u32),
        shown: &str,
    ) -> Result<()> {
        if self.opts.rootless {
            return Ok(());
        }
        let (u, g) = (
            rustix::fs::Uid::from_raw(uid),
            rustix::fs::Gid::from_raw(gid),
        );
        rustix::fs::chownat(parent, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            .ctx(|| format!("entry {shown:?}: chown {uid}:{gid}"))
    }

    fn finish_dirs(&mut self) -> Result<()> {
        // Deepest first, so setting a parent's mtime is the last touch.
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| {
            b.parts
                .len()
                .cmp(&a.parts.len())
                .then_with(|| a.parts.cmp(&b.parts))
        });
        for d in dirs {
            let mut parts = d.parts.clone();
            let name = parts.pop().expect("dir entries have a name");
            let shown = join(&d.parts);
            let parent = match open_dir_beneath(self.root.as_fd(), &join(&parts)) {
                Ok(fd) => fd,
                // Removed by a later whiteout in the same layer.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(resolve_error(e, &shown, &shown)),
            };
            match lstat_at(parent.as_fd(), &name)? {
                Some(st) if is_dir(st.st_mode) => {}
                _ => continue,
            }
            rustix::fs::chmodat(
                &parent,
                name.as_str(),
                Mode::from_raw_mode(d.mode),
                AtFlags::empty(),
            )
            .ctx(|| format!("entry {shown:?}: chmod"))?;
            set_mtime(parent.as_fd(), &name, d.mtime, &shown)?;
        }
        Ok(())
    }
}

fn is_whiteout(st: &rustix::fs::Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn set_mtime(parent: BorrowedFd<'_>, name: &str, mtime: u64, shown: &str) -> Result<()> {
    let ts = rustix::fs::Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)
        .ctx(|| format!("entry {shown:?}: set mtime"))
}

/// Extended attributes carried as PAX `SCHILY.xattr.*` records. overlayfs'
/// own `trusted.overlay.*` attributes are dropped: a layer must not forge
/// opaque or redirect markers.
fn pax_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    shown: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry
        .pax_extensions()
        .ctx(|| format!("entry {shown:?}: pax headers"))?
    {
        for ext in exts {
            let ext = ext.ctx(|| format!("entry {shown:?}: pax record"))?;
            if let Ok(key) = ext.key()
                && let Some(name) = key.strip_prefix("SCHILY.xattr.")
                && !name.starts_with("trusted.overlay.")
            {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// Writes a regular file, leaving holes where the data has all-zero 4 KiB
/// blocks, so sparse files stay sparse.
fn write_file<R: Read>(
    parent: BorrowedFd<'_>,
    name: &str,
    entry: &mut tar::Entry<'_, R>,
    shown: &str,
) -> Result<OwnedFd> {
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .ctx(|| format!("entry {shown:?}: create file"))?;
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = read_full(entry, &mut buf).ctx(|| format!("entry {shown:?}: read data"))?;
        if n == 0 {
            break;
        }
        for block in buf[..n].chunks(4096) {
            if block.iter().all(|b| *b == 0) {
                std::io::Seek::seek(&mut file, std::io::SeekFrom::Current(block.len() as i64))
                    .ctx(|| format!("entry {shown:?}: seek"))?;
            } else {
                file.write_all(block)
                    .ctx(|| format!("entry {shown:?}: write"))?;
            }
        }
        total += n as u64;
    }
    file.set_len(total)
        .ctx(|| format!("entry {shown:?}: set length"))?;
    Ok(OwnedFd::from(file))
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
