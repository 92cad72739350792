//! COPY / ADD into a step's rootfs, following Docker's rules
//! (<https://docs.docker.com/reference/dockerfile/#copy>): a directory
//! source copies its contents; a file goes to `dest` itself unless `dest`
//! ends with `/`, is an existing directory, or there are several sources;
//! new files are owned by 0:0 unless `--chown`; `--chmod` overrides modes;
//! ADD unpacks local tar archives (plain, gzip, bzip2-less, xz-less: what
//! the layer code reads) into the destination. All writes go through
//! [`Root`] so the image's symlinks cannot redirect them outside the rootfs.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_image::containerfile::IgnoreMatcher;
use berth_image::layer::{self, ApplyOptions, WhiteoutMode};

use super::inroot::{self, Attrs, Root};

/// One thing to copy.
#[derive(Debug, Clone)]
pub struct Source {
    /// Host path (inside the context, or inside a mounted stage/image).
    pub path: PathBuf,
    /// Context-relative path for `.dockerignore` checks below directories
    /// (None: no ignore rules apply, e.g. `COPY --from`).
    pub rel: Option<String>,
    /// ADD of a local archive: unpack instead of copying.
    pub unpack: bool,
}

/// Ownership and mode options.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    pub owner: (u32, u32),
    pub chmod: Option<u32>,
}

/// Splits `dest` into (parent dir, file name) for a file target.
fn split_dest(dest: &str) -> (String, String) {
    let comps = inroot::components(dest);
    match comps.split_last() {
        Some((name, parent)) => (parent.join("/"), name.to_string()),
        None => (String::new(), String::new()),
    }
}

/// Whether a single file source lands *inside* `dest` (pure part).
pub fn dest_is_dir(dest: &str, sources: usize, dest_exists_as_dir: bool) -> bool {
    dest.ends_with('/') || dest.ends_with("/.") || sources > 1 || dest_exists_as_dir
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs one COPY/ADD into `rootfs`.
pub fn copy(
    rootfs: &Path,
    sources: &[Source],
    dest: &str,
    opts: &CopyOptions,
    ignore: Option<&IgnoreMatcher>,
) -> io::Result<()> {
    let root = Root::open(rootfs)?;
    let into_dir = dest_is_dir(dest, sources.len(), root.is_dir(dest));
    for src in sources {
        let meta = fs::metadata(&src.path)?;
        if src.unpack {
            let dir = root.mkdir_all(dest, Some(opts.owner))?;
            let host = inroot::host_path(&dir)?;
            let f = fs::File::open(&src.path)?;
            let apply = ApplyOptions {
                whiteouts: WhiteoutMode::Delete,
                ..Default::default()
            };
            layer::apply(io::BufReader::new(f), &host, &apply)
                .map_err(|e| io::Error::other(format!("unpacking {}: {e}", src.path.display())))?;
        } else if meta.is_dir() {
            let dir = root.mkdir_all(dest, Some(opts.owner))?;
            copy_children(&src.path, src.rel.as_deref(), &dir, opts, ignore)?;
        } else {
            let (parent, name) = if into_dir {
                (inroot::components(dest).join("/"), file_name(&src.path))
            } else {
                split_dest(dest)
            };
            let dir = root.mkdir_all(&parent, Some(opts.owner))?;
            copy_entry(&src.path, &dir, &name, None, opts, ignore)?;
        }
    }
    Ok(())
}

/// Writes inline (heredoc) files.
pub fn write_inline(
    rootfs: &Path,
    files: &[(String, String)],
    dest: &str,
    opts: &CopyOptions,
) -> io::Result<()> {
    let root = Root::open(rootfs)?;
    let into_dir = dest_is_dir(dest, files.len(), root.is_dir(dest));
    for (name, content) in files {
        let (parent, fname) = if into_dir {
            (inroot::components(dest).join("/"), name.clone())
        } else {
            split_dest(dest)
        };
        let dir = root.mkdir_all(&parent, Some(opts.owner))?;
        let attrs = Attrs {
            mode: opts.chmod.unwrap_or(0o644),
            uid: opts.owner.0,
            gid: opts.owner.1,
            mtime: None,
        };
        inroot::write_file(&dir, &fname, &mut content.as_bytes(), &attrs)?;
    }
    Ok(())
}

fn copy_children(
    src: &Path,
    rel: Option<&str>,
    dir: &OwnedFd,
    opts: &CopyOptions,
    ignore: Option<&IgnoreMatcher>,
) -> io::Result<()> {
    let mut names: Vec<String> = fs::read_dir(src)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let child_rel = rel.map(|r| {
            if r == "." || r.is_empty() {
                name.clone()
            } else {
                format!("{r}/{name}")
            }
        });
        if let (Some(ig), Some(cr)) = (ignore, &child_rel)
            && ig.is_excluded(cr)
        {
            continue;
        }
        copy_entry(
            &src.join(&name),
            dir,
            &name,
            child_rel.as_deref(),
            opts,
            ignore,
        )?;
    }
    Ok(())
}

fn copy_entry(
    src: &Path,
    dir: &OwnedFd,
    name: &str,
    rel: Option<&str>,
    opts: &CopyOptions,
    ignore: Option<&IgnoreMatcher>,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    let attrs = Attrs {
        mode: opts.chmod.unwrap_or(meta.mode() & 0o7777),
        uid: opts.owner.0,
        gid: opts.owner.1,
        mtime: Some(meta.mtime()),
    };
    if ft.is_symlink() {
        inroot::write_symlink(dir, name, &fs::read_link(src)?, &attrs)
    } else if ft.is_dir() {
        let sub = inroot::make_dir(dir, name, &attrs)?;
        copy_children(src, rel, &sub, opts, ignore)
    } else if ft.is_file() {
        let mut f = fs::File::open(src)?;
        inroot::write_file(dir, name, &mut f, &attrs)
    } else {
        Err(io::Error::other(format!(
            "{}: only files, directories and symlinks can be copied",
            src.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_rules() {
        assert!(dest_is_dir("/app/", 1, false));
        assert!(dest_is_dir("/app/.", 1, false));
        assert!(dest_is_dir("/app", 2, false));
        assert!(dest_is_dir("/app", 1, true));
        assert!(!dest_is_dir("/app", 1, false));
        assert_eq!(split_dest("/a/b/c"), ("a/b".into(), "c".into()));
        assert_eq!(split_dest("/c"), (String::new(), "c".into()));
    }

    #[test]
    fn copies_trees_with_owner_mode_and_ignore() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        fs::create_dir_all(ctx.join("src/skip")).unwrap();
        fs::write(ctx.join("src/a.txt"), "a").unwrap();
        fs::write(ctx.join("src/skip/b"), "b").unwrap();
        std::os::unix::fs::symlink("a.txt", ctx.join("src/link")).unwrap();
        let rootfs = tmp.path().join("root");
        fs::create_dir_all(&rootfs).unwrap();
        let ignore = IgnoreMatcher::parse("src/skip\n").unwrap();
        let src = Source {
            path: ctx.join("src"),
            rel: Some("src".into()),
            unpack: false,
        };
        let opts = CopyOptions {
            owner: (12, 34),
            chmod: Some(0o700),
        };
        copy(&rootfs, &[src], "/app", &opts, Some(&ignore)).unwrap();
        let m = fs::metadata(rootfs.join("app/a.txt")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (12, 34, 0o700));
        assert!(!rootfs.join("app/skip").exists());
        assert_eq!(
            fs::read_link(rootfs.join("app/link")).unwrap(),
            Path::new("a.txt")
        );
        // One file to a non-directory destination renames it.
        let one = Source {
            path: ctx.join("src/a.txt"),
            rel: Some("src/a.txt".into()),
            unpack: false,
        };
        copy(
            &rootfs,
            &[one],
            "/etc/renamed",
            &CopyOptions::default(),
            None,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(rootfs.join("etc/renamed")).unwrap(), "a");
    }
}
