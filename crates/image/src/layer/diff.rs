//! Producing layer tars (and change lists) from snapshots.
//!
//! Output is deterministic: entries in byte order of their path, a
//! directory right before its contents; numeric uid/gid from the files with
//! empty user/group names; mode, size, device numbers and xattrs from the
//! files; mtimes from the files in whole seconds (clamped to
//! [`DiffOptions::clamp_mtime`] when set, as `SOURCE_DATE_EPOCH` does);
//! whiteouts and opaque markers as empty regular files, mode 0600, owned by
//! 0:0, mtime 0; no atime/ctime. Equal trees therefore give equal bytes and
//! equal digests.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, Stat};

use super::fsops::{is_dir, list_dir, lstat_at, read_xattrs};
use super::path::{OPAQUE_MARKER, WHITEOUT_PREFIX};
use super::{CountingWriter, DiffStats};
use crate::digest::HashingWriter;
use crate::error::{IoContext, Result};

/// Where the changes come from.
#[derive(Debug, Clone, Copy)]
pub enum DiffSource<'a> {
    /// An overlayfs upper directory: 0:0 character devices are whiteouts and
    /// `trusted.overlay.opaque=y` marks opaque directories.
    OverlayUpper(&'a Path),
    /// Two full trees (vfs snapshots): what changed from `lower` (none means
    /// empty) to `upper`.
    Dirs {
        lower: Option<&'a Path>,
        upper: &'a Path,
    },
}

/// Options of [`write_diff`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Clamp file mtimes to at most this many seconds since the epoch.
    pub clamp_mtime: Option<u64>,
}

/// One change, as `docker diff` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute path inside the container (`/etc/passwd`).
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

enum Item {
    Entry {
        rel: String,
        path: PathBuf,
        st: Box<Stat>,
    },
    Whiteout {
        rel: String,
    },
    Opaque {
        dir: String,
    },
}

fn child_rel(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

fn open_dir(path: &Path) -> Result<std::os::fd::OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", path.display()))
}

fn is_whiteout_dev(st: &Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn walk_overlay(dir: &Path, prefix: &str, out: &mut Vec<Item>) -> Result<()> {
    let fd = open_dir(dir)?;
    for name in list_dir(fd.as_fd())? {
        let Some(st) = lstat_at(fd.as_fd(), &name)? else {
            continue;
        };
        let rel = child_rel(prefix, &name);
        let path = dir.join(&name);
        if is_whiteout_dev(&st) {
            out.push(Item::Whiteout { rel });
        } else if is_dir(st.st_mode) {
            let opaque = read_xattrs(&path)?
                .iter()
                .any(|(k, v)| k == "trusted.overlay.opaque" && v == b"y");
            out.push(Item::Entry {
                rel: rel.clone(),
                path: path.clone(),
                st: Box::new(st),
            });
            if opaque {
                out.push(Item::Opaque { dir: rel.clone() });
            }
            walk_overlay(&path, &rel, out)?;
        } else {
            out.push(Item::Entry {
                rel,
                path,
                st: Box::new(st),
            });
        }
    }
    Ok(())
}

fn same_meta(a: &Stat, pa: &Path, b: &Stat, pb: &Path) -> Result<bool> {
    let base = a.st_mode == b.st_mode
        && a.st_uid == b.st_uid
        && a.st_gid == b.st_gid
        && a.st_mtime == b.st_mtime
        && a.st_mtime_nsec == b.st_mtime_nsec
        && a.st_rdev == b.st_rdev
        && (is_dir(a.st_mode) || a.st_size == b.st_size);
    if !base {
        return Ok(false);
    }
    if a.st_mode & libc::S_IFMT == libc::S_IFLNK
        && std::fs::read_link(pa).ctx(|| format!("readlink {}", pa.display()))?
            != std::fs::read_link(pb).ctx(|| format!("readlink {}", pb.display()))?
    {
        return Ok(false);
    }
    Ok(read_xattrs(pa)? == read_xattrs(pb)?)
}

fn walk_dirs(lower: Option<&Path>, upper: &Path, prefix: &str, out: &mut Vec<Item>) -> Result<()> {
    let ufd = open_dir(upper)?;
    let lfd = lower.map(open_dir).transpose()?;
    let mut names = list_dir(ufd.as_fd())?;
    if let Some(l) = &lfd {
        names.extend(list_dir(l.as_fd())?);
        names.sort();
        names.dedup();
    }
    for name in names {
        let rel = child_rel(prefix, &name);
        let lst = match &lfd {
            Some(l) => lstat_at(l.as_fd(), &name)?,
            None => None,
        };
        let ust = lstat_at(ufd.as_fd(), &name)?;
        let upath = upper.join(&name);
        match (lst, ust) {
            (Some(_), None) => out.push(Item::Whiteout { rel }),
            (None, None) => {}
            (None, Some(u)) => {
                out.push(Item::Entry {
                    rel: rel.clone(),
                    path: upath.clone(),
                    st: Box::new(u),
                });
                if is_dir(u.st_mode) {
                    walk_dirs(None, &upath, &rel, out)?;
                }
            }
            (Some(l), Some(u)) => {
                let lpath = lower.expect("lower stat implies lower dir").join(&name);
                let both_dirs = is_dir(l.st_mode) && is_dir(u.st_mode);
                if !same_meta(&l, &lpath, &u, &upath)? {
                    out.push(Item::Entry {
                        rel: rel.clone(),
                        path: upath.clone(),
                        st: Box::new(u),
                    });
                }
                if both_dirs {
                    walk_dirs(Some(&lpath), &upath, &rel, out)?;
                } else if is_dir(u.st_mode) {
                    walk_dirs(None, &upath, &rel, out)?;
                }
            }
        }
    }
    Ok(())
}

fn collect(src: DiffSource<'_>) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    match src {
        DiffSource::OverlayUpper(upper) => walk_overlay(upper, "", &mut items)?,
        DiffSource::Dirs { lower, upper } => walk_dirs(lower, upper, "", &mut items)?,
    }
    Ok(items)
}

/// Writes the layer tar for `src` to `out` (uncompressed; wrap `out` in a
/// compressor as needed). Returns `out` and the diff id of the tar stream.
pub fn write_diff<W: Write>(
    src: DiffSource<'_>,
    out: W,
    opts: &DiffOptions,
) -> Result<(W, DiffStats)> {
    let items = collect(src)?;
    let hashing = HashingWriter::new(CountingWriter(out), crate::digest::Algorithm::Sha256);
    let mut b = tar::Builder::new(hashing);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut entries = 0u64;
    for item in &items {
        entries += 1;
        match item {
            Item::Whiteout { rel } => {
                let (dir, name) = rel
                    .rsplit_once('/')
                    .map_or(("", rel.as_str()), |(d, n)| (d, n));
                marker(&mut b, &child_rel(dir, &format!("{WHITEOUT_PREFIX}{name}")))?;
            }
            Item::Opaque { dir } => marker(&mut b, &child_rel(dir, OPAQUE_MARKER))?,
            Item::Entry { rel, path, st } => entry(&mut b, rel, path, st, opts, &mut links)?,
        }
    }
    let hashing = b.into_inner().ctx(|| "finish layer tar".to_string())?;
    let (counting, diff_id, tar_size) = hashing.finish();
    Ok((
        counting.0,
        DiffStats {
            diff_id,
            tar_size,
            entries,
        },
    ))
}

/// The changes in `src` as `docker diff` lists them. `lowers` are the
/// directories of the parent chain, top first, used to tell added from
/// modified for overlay uppers (ignored for [`DiffSource::Dirs`]).
pub fn changes(src: DiffSource<'_>, lowers: &[&Path]) -> Result<Vec<Change>> {
    let lower_dirs: Vec<&Path> = match src {
        DiffSource::OverlayUpper(_) => lowers.to_vec(),
        DiffSource::Dirs { lower, .. } => lower.into_iter().collect(),
    };
    let mut out = Vec::new();
    for item in collect(src)? {
        match item {
            Item::Whiteout { rel } => out.push(Change {
                kind: ChangeKind::Deleted,
                path: format!("/{rel}"),
            }),
            Item::Opaque { .. } => {}
            Item::Entry { rel, .. } => {
                let kind = if exists_in_lowers(&lower_dirs, &rel) {
                    ChangeKind::Modified
                } else {
                    ChangeKind::Added
                };
                out.push(Change {
                    kind,
                    path: format!("/{rel}"),
                });
            }
        }
    }
    Ok(out)
}

/// Whether `rel` exists in the union of `lowers` (top first): a whiteout in
/// a higher layer hides it.
fn exists_in_lowers(lowers: &[&Path], rel: &str) -> bool {
    for l in lowers {
        if let Ok(st) = rustix::fs::lstat(l.join(rel)) {
            return !is_whiteout_dev(&st);
        }
    }
    false
}

fn marker<W: Write>(b: &mut tar::Builder<W>, name: &str) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(0);
    b.append_data(&mut h, name, std::io::empty())
        .ctx(|| format!("write whiteout {name}"))
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "<len> <key>=<value>\n" where len counts itself.
    let rest = 3 + key.len() + value.len(); // space, '=', newline
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    let mut rec = format!("{len} {key}=").into_bytes();
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

fn entry<W: Write>(
    b: &mut tar::Builder<W>,
    rel: &str,
    path: &Path,
    st: &Stat,
    opts: &DiffOptions,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    let fmt = st.st_mode & libc::S_IFMT;
    let xattrs: Vec<(String, Vec<u8>)> = if fmt == libc::S_IFLNK {
        Vec::new()
    } else {
        read_xattrs(path)?
            .into_iter()
            .filter(|(k, _)| !k.starts_with("trusted.overlay."))
            .collect()
    };
    if !xattrs.is_empty() {
        let mut data = Vec::new();
        for (k, v) in &xattrs {
            data.extend(pax_record(&format!("SCHILY.xattr.{k}"), v));
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let pax_name: String = format!("PaxHeaders.0/{base}").chars().take(99).collect();
        b.append_data(&mut h, pax_name, &data[..])
            .ctx(|| format!("write xattrs of {rel}"))?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    let mtime = st.st_mtime.max(0) as u64;
    h.set_mtime(opts.clamp_mtime.map_or(mtime, |c| mtime.min(c)));
    h.set_size(0);
    let ctx = || format!("write layer entry {rel}");
    match fmt {
        libc::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{rel}/"), std::io::empty())
                .ctx(ctx)
        }
        libc::S_IFLNK => {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = std::fs::read_link(path).ctx(|| format!("readlink {}", path.display()))?;
            b.append_link(&mut h, rel, target).ctx(ctx)
        }
        libc::S_IFREG => {
            if st.st_nlink > 1 {
                let key = (st.st_dev, st.st_ino);
                if let Some(first) = links.get(&key) {
                    h.set_entry_type(tar::EntryType::Link);
                    return b.append_link(&mut h, rel, first).ctx(ctx);
                }
                links.insert(key, rel.to_string());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            let fd = rustix::fs::open(
                path,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ctx(|| format!("open {}", path.display()))?;
            let file = std::fs::File::from(fd);
            // Exactly st_size bytes, even if the file changes under us.
            let reader = std::io::Read::take(file, st.st_size as u64);
            b.append_data(&mut h, rel, reader).ctx(ctx)
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
            h.set_entry_type(match fmt {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            if fmt != libc::S_IFIFO {
                h.set_device_major(rustix::fs::major(st.st_rdev)).ctx(ctx)?;
                h.set_device_minor(rustix::fs::minor(st.st_rdev)).ctx(ctx)?;
            }
            b.append_data(&mut h, rel, std::io::empty()).ctx(ctx)
        }
        // Sockets cannot be carried in a layer; skip them as docker does.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::pax_record;

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_record("SCHILY.xattr.user.a", b"b");
        let s = String::from_utf8(r.clone()).unwrap();
        let (len, _) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), r.len());
        let long = pax_record("k", &[b'x'; 95]);
        let s = String::from_utf8(long.clone()).unwrap();
        assert_eq!(
            s.split_once(' ').unwrap().0.parse::<usize>().unwrap(),
            long.len()
        );
    }
}
