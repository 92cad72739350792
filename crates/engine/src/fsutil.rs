//! File helpers: atomic writes, in-root path resolution (symlinks cannot
//! leave the root, as with openat2's RESOLVE_IN_ROOT), copying trees
//! without following symlinks, directory sizes.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result, io};

/// Writes `data` to `path` through a temporary file and rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))
}

/// Resolves `path` (absolute, container view) inside `root`: `..` stops at
/// the root and absolute symlinks are taken relative to it, so the result
/// is always under `root`. The last component is followed only when
/// `follow_last`.
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> Result<PathBuf> {
    let mut todo: Vec<String> = components(path);
    todo.reverse();
    let mut cur: Vec<String> = vec![];
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let mut cand = root.to_path_buf();
        cand.extend(cur.iter());
        cand.push(&c);
        let last = todo.is_empty();
        match std::fs::symlink_metadata(&cand) {
            Ok(m) if m.file_type().is_symlink() && (!last || follow_last) => {
                links += 1;
                if links > 40 {
                    return Err(Error::Invalid(format!(
                        "{path}: too many levels of symbolic links"
                    )));
                }
                let target = std::fs::read_link(&cand)
                    .map_err(io(format!("readlink {}", cand.display())))?;
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    cur.clear();
                }
                let mut more = components(&t);
                more.reverse();
                todo.extend(more);
            }
            _ => cur.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(cur.iter());
    Ok(out)
}

fn components(p: &str) -> Vec<String> {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Copies `src` (file, symlink or directory) to `dst`, recreating symlinks
/// as symlinks (never following them) and keeping modes and owners.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    copy_tree_owned(src, dst, &|u, g| (Some(u), Some(g)))
}

/// What owner a copy gets, from the source's uid and gid (None: leave it
/// to the kernel).
pub type OwnerMap<'a> = dyn Fn(u32, u32) -> (Option<u32>, Option<u32>) + Sync + 'a;

/// [`copy_tree`], giving each copy the owner `owner` says.
pub fn copy_tree_owned(src: &Path, dst: &Path, owner: &OwnerMap<'_>) -> Result<()> {
    let m = std::fs::symlink_metadata(src).map_err(io(format!("stat {}", src.display())))?;
    let ft = m.file_type();
    if ft.is_symlink() {
        let t = std::fs::read_link(src).map_err(io(format!("readlink {}", src.display())))?;
        let _ = std::fs::remove_file(dst);
        symlink(&t, dst).map_err(io(format!("symlink {}", dst.display())))?;
    } else if ft.is_dir() {
        if !dst.is_dir() {
            std::fs::create_dir(dst).map_err(io(format!("mkdir {}", dst.display())))?;
        }
        for e in std::fs::read_dir(src).map_err(io(format!("reading {}", src.display())))? {
            let e = e.map_err(io(format!("reading {}", src.display())))?;
            copy_tree_owned(&e.path(), &dst.join(e.file_name()), owner)?;
        }
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(io(format!("chmod {}", dst.display())))?;
    } else if ft.is_file() {
        std::fs::copy(src, dst).map_err(io(format!(
            "copying {} to {}",
            src.display(),
            dst.display()
        )))?;
    } else {
        // Devices, fifos, sockets are skipped.
        return Ok(());
    }
    let (u, g) = owner(m.uid(), m.gid());
    let _ = std::os::unix::fs::lchown(dst, u, g);
    Ok(())
}

/// Makes `dir` (and its parents) exist with no access for other users:
/// berth's root and run directories hold the state database, container
/// configs (environment variables included), logs and rootfs mounts. An
/// existing directory loses its "other" bits only; its group bits, which
/// are an ACL's mask once [`ensure_reachable`] added entries, stay.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(format!("creating {}", dir.display()))(e)),
    }
    let mode = std::fs::metadata(dir)
        .map_err(io(format!("stat {}", dir.display())))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7770))
            .map_err(io(format!("chmod o-rwx {}", dir.display())))?;
    }
    Ok(())
}

/// Lets host uid `uid` (a user-namespaced container's root) look `path`
/// up: every directory above it inside one of berth's `bases` (its root
/// and run directories) gets a search-only ACL entry for that uid
/// ([`crate::acl`]); directories above the bases must already be
/// searchable by others. Nothing is opened to other users: berth's
/// directories stay owner-only for them.
pub fn ensure_reachable(bases: &[&Path], path: &Path, uid: u32) -> Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    for dir in parent.ancestors().filter(|d| !d.as_os_str().is_empty()) {
        let m = match std::fs::metadata(dir) {
            Ok(m) => m,
            // Made later by whoever needs it (the runtime's are 0711).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(format!("stat {}", dir.display()))(e)),
        };
        if m.permissions().mode() & 0o001 != 0 || m.uid() == uid {
            continue;
        }
        if bases.iter().any(|b| dir.starts_with(b)) {
            crate::acl::grant_search(dir, uid).map_err(io(format!(
                "letting uid {uid} search {} (a POSIX ACL: the filesystem must support them)",
                dir.display()
            )))?;
        } else {
            return Err(Error::Invalid(format!(
                "a container in a user namespace cannot reach {}: {} is not searchable by other users (chmod o+x it, or use a berth root elsewhere)",
                path.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Bytes used by the files under `path` (not following symlinks).
pub fn du(path: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    } else {
        m.blocks() * 512
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dirs_are_closed_to_others() {
        let t = tempfile::tempdir().unwrap();
        let fresh = t.path().join("a/b");
        private_dir(&fresh).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&fresh), 0o700);
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o750, "group bits (an ACL's mask) stay");
    }

    #[test]
    fn symlinks_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        symlink("/etc", r.join("a/abs")).unwrap();
        symlink("../../../../..", r.join("a/up")).unwrap();
        assert_eq!(
            resolve_in_root(r, "/a/abs/passwd", true).unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(r, "/a/up/etc", true).unwrap(),
            r.join("etc")
        );
        assert_eq!(resolve_in_root(r, "/../../x", true).unwrap(), r.join("x"));
        assert_eq!(
            resolve_in_root(r, "/a/abs", false).unwrap(),
            r.join("a/abs")
        );
    }

    #[test]
    fn copies_keep_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("s");
        std::fs::create_dir_all(s.join("sub")).unwrap();
        std::fs::write(s.join("sub/f"), "x").unwrap();
        symlink("/etc/passwd", s.join("link")).unwrap();
        copy_tree(&s, &d.path().join("t")).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("t/sub/f")).unwrap(),
            "x"
        );
        assert!(
            std::fs::symlink_metadata(d.path().join("t/link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(du(&d.path().join("t")) > 0);
    }
}
