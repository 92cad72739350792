//! The build context: resolving COPY/ADD sources (globs, `.dockerignore`,
//! symlinks kept inside the context) and hashing their content for cache keys.
//!
//! Symlinks met while resolving a source are followed like Docker does, but a
//! link whose target leaves the context (absolute path elsewhere, or `..`
//! above the root) is refused: the context is the only thing a build may read.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::cache::{Sha256Writer, sha256_hex};
use super::error::ContainerfileError;
use super::ignore::{Glob, IgnoreMatcher, clean_relative};

/// Maximum symlinks followed while resolving one path (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// Compression of an archive that ADD unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Recognise a (possibly compressed) tar archive from its first bytes, as ADD
/// does for local sources. Compressed streams are assumed to hold a tar.
pub fn detect_archive(header: &[u8]) -> Option<ArchiveKind> {
    if header.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveKind::Gzip)
    } else if header.starts_with(b"BZh") {
        Some(ArchiveKind::Bzip2)
    } else if header.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(ArchiveKind::Xz)
    } else if header.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(ArchiveKind::Zstd)
    } else if header.len() >= 262 && &header[257..262] == b"ustar" {
        Some(ArchiveKind::Tar)
    } else {
        None
    }
}

/// One source of a COPY/ADD, resolved inside the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSource {
    /// The (expanded) pattern this came from.
    pub pattern: String,
    /// Context-relative path, symlinks resolved (`.` for the root).
    pub rel: String,
    /// Absolute host path.
    pub path: PathBuf,
    pub is_dir: bool,
    /// For regular files: the archive kind, if the content is one.
    pub archive: Option<ArchiveKind>,
}

/// What kind of filesystem object an input is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// A regular file and the sha256 of its content.
    File {
        sha256: String,
    },
    Dir,
    Symlink {
        target: String,
    },
}

/// One filesystem object that a COPY/ADD reads; part of the cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputEntry {
    /// Path relative to the context.
    pub rel: String,
    pub kind: InputKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub size: u64,
}

/// A build context directory and its `.dockerignore` rules.
#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    ignore: IgnoreMatcher,
}

impl BuildContext {
    /// Open `root`, reading `root/.dockerignore` when it exists.
    pub fn open(root: &Path) -> Result<Self, ContainerfileError> {
        let file = root.join(".dockerignore");
        let ignore = match fs::read_to_string(&file) {
            Ok(text) => IgnoreMatcher::parse(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreMatcher::default(),
            Err(e) => return Err(ContainerfileError::io(file, e)),
        };
        Self::with_ignore(root, ignore)
    }

    /// Open `root` for a build of `containerfile`: `<containerfile>.dockerignore`
    /// (e.g. `Dockerfile.dockerignore` beside it) wins over `root/.dockerignore`.
    pub fn open_for(root: &Path, containerfile: &Path) -> Result<Self, ContainerfileError> {
        let mut name = containerfile.as_os_str().to_owned();
        name.push(".dockerignore");
        let specific = PathBuf::from(name);
        match fs::read_to_string(&specific) {
            Ok(text) => Self::with_ignore(root, IgnoreMatcher::parse(&text)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::open(root),
            Err(e) => Err(ContainerfileError::io(specific, e)),
        }
    }

    /// Use explicit ignore rules (e.g. from `<Containerfile>.dockerignore`).
    pub fn with_ignore(root: &Path, ignore: IgnoreMatcher) -> Result<Self, ContainerfileError> {
        let root = fs::canonicalize(root).map_err(|e| ContainerfileError::io(root, e))?;
        Ok(Self { root, ignore })
    }

    /// The canonical context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore rules in force.
    pub fn ignore(&self) -> &IgnoreMatcher {
        &self.ignore
    }

    /// Resolve the (expanded) source patterns of the COPY/ADD on `line`.
    /// Each pattern must match something that is not ignored.
    pub fn resolve_sources(
        &self,
        line: usize,
        patterns: &[String],
    ) -> Result<Vec<ResolvedSource>, ContainerfileError> {
        let mut out = Vec::new();
        for pattern in patterns {
            let cleaned = clean_relative(pattern);
            if cleaned == ".." || cleaned.starts_with("../") {
                return Err(ContainerfileError::OutsideContext {
                    line,
                    path: pattern.clone(),
                });
            }
            let glob = Glob::new(&cleaned).map_err(|message| ContainerfileError::BadPattern {
                line,
                pattern: pattern.clone(),
                message,
            })?;
            let candidates = if glob.is_literal() || cleaned == "." {
                vec![cleaned.clone()]
            } else {
                let mut all = Vec::new();
                self.walk_names(&self.root, "", &mut all)?;
                all.retain(|rel| glob.matches(rel));
                all
            };
            let before = out.len();
            for rel in candidates {
                if rel != "." && self.ignore.is_excluded(&rel) {
                    continue;
                }
                let resolved = self.resolve_in_context(line, pattern, &rel)?;
                let path = self.root.join(&resolved);
                let meta = match fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(ContainerfileError::io(path, e)),
                };
                let archive = if meta.is_file() {
                    read_header(&path)?.and_then(|h| detect_archive(&h))
                } else {
                    None
                };
                out.push(ResolvedSource {
                    pattern: pattern.clone(),
                    rel: if resolved.as_os_str().is_empty() {
                        ".".into()
                    } else {
                        resolved.to_string_lossy().into_owned()
                    },
                    path,
                    is_dir: meta.is_dir(),
                    archive,
                });
            }
            if out.len() == before {
                return Err(ContainerfileError::SourceNotFound {
                    line,
                    path: pattern.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Resolve `rel` component by component, following symlinks but never
    /// leaving the context. Returns the resolved context-relative path.
    fn resolve_in_context(
        &self,
        line: usize,
        pattern: &str,
        rel: &str,
    ) -> Result<PathBuf, ContainerfileError> {
        let outside = || ContainerfileError::OutsideContext {
            line,
            path: pattern.to_string(),
        };
        let mut pending: Vec<String> = components(rel).into_iter().rev().collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            if comp == ".." {
                resolved.pop().ok_or_else(outside)?;
                continue;
            }
            resolved.push(comp);
            let here = self.root.join(resolved.join("/"));
            let meta = match fs::symlink_metadata(&here) {
                Ok(m) => m,
                // Missing: report as not found by the caller.
                Err(_) => {
                    resolved.extend(pending.drain(..).rev());
                    break;
                }
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINKS {
                return Err(ContainerfileError::io(
                    here,
                    std::io::Error::other("too many levels of symbolic links"),
                ));
            }
            let target = fs::read_link(&here).map_err(|e| ContainerfileError::io(&here, e))?;
            resolved.pop();
            let target_str = target.to_string_lossy().into_owned();
            let relative_target = if target.is_absolute() {
                // Absolute links are allowed only when they point back inside.
                match target.strip_prefix(&self.root) {
                    Ok(inside) => {
                        resolved.clear();
                        inside.to_string_lossy().into_owned()
                    }
                    Err(_) => return Err(outside()),
                }
            } else {
                target_str
            };
            pending.extend(components(&relative_target).into_iter().rev());
        }
        Ok(PathBuf::from(resolved.join("/")))
    }

    /// Every path in the context (relative, `/`-separated), sorted, without
    /// following symlinks; ignored directories are pruned when no exception
    /// could re-include something below them.
    fn walk_names(
        &self,
        dir: &Path,
        prefix: &str,
        out: &mut Vec<String>,
    ) -> Result<(), ContainerfileError> {
        for (name, ft) in sorted_entries(dir)? {
            let rel = join_rel(prefix, &name);
            if ft.is_dir() {
                let prune = self.ignore.is_excluded(&rel) && !self.ignore.has_exceptions();
                out.push(rel.clone());
                if !prune {
                    self.walk_names(&dir.join(&name), &rel, out)?;
                }
            } else {
                out.push(rel);
            }
        }
        Ok(())
    }

    /// Every object the sources read, in a deterministic order, with content
    /// hashes. Ignored files inside source directories are skipped.
    pub fn inputs(
        &self,
        sources: &[ResolvedSource],
    ) -> Result<Vec<InputEntry>, ContainerfileError> {
        let mut out = Vec::new();
        for src in sources {
            self.input_entry(&src.path, &src.rel, &mut out)?;
        }
        Ok(out)
    }

    fn input_entry(
        &self,
        path: &Path,
        rel: &str,
        out: &mut Vec<InputEntry>,
    ) -> Result<(), ContainerfileError> {
        // Sources were resolved through symlinks already; entries below a
        // directory are recorded as they are (COPY copies links as links).
        let meta = fs::symlink_metadata(path).map_err(|e| ContainerfileError::io(path, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| ContainerfileError::io(path, e))?;
            InputKind::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        } else if ft.is_dir() {
            InputKind::Dir
        } else {
            InputKind::File {
                sha256: hash_file(path)?,
            }
        };
        let is_dir = matches!(kind, InputKind::Dir);
        out.push(InputEntry {
            rel: rel.to_string(),
            kind,
            mode,
            size: if is_dir { 0 } else { meta.size() },
        });
        if is_dir {
            for (name, _) in sorted_entries(path)? {
                let child = join_rel(if rel == "." { "" } else { rel }, &name);
                if self.ignore.is_excluded(&child) {
                    continue;
                }
                self.input_entry(&path.join(&name), &child, out)?;
            }
        }
        Ok(())
    }

    /// Digest (`sha256:…`) over everything the sources read: paths, kinds,
    /// permission bits, sizes and content. This is the "inputs" part of a
    /// COPY/ADD cache key.
    pub fn inputs_digest(&self, sources: &[ResolvedSource]) -> Result<String, ContainerfileError> {
        Ok(digest_inputs(&self.inputs(sources)?))
    }
}

/// Digest of a list of input entries (pure).
pub fn digest_inputs(entries: &[InputEntry]) -> String {
    let mut text = String::new();
    for e in entries {
        let (kind, detail) = match &e.kind {
            InputKind::File { sha256 } => ("file", sha256.as_str()),
            InputKind::Dir => ("dir", ""),
            InputKind::Symlink { target } => ("symlink", target.as_str()),
        };
        text.push_str(&format!(
            "{}\0{kind}\0{:o}\0{}\0{detail}\n",
            e.rel, e.mode, e.size
        ));
    }
    format!("sha256:{}", sha256_hex(text.as_bytes()))
}

fn components(rel: &str) -> Vec<String> {
    rel.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

fn join_rel(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<(String, fs::FileType)>, ContainerfileError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| ContainerfileError::io(dir, e))? {
        let entry = entry.map_err(|e| ContainerfileError::io(dir, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| ContainerfileError::io(entry.path(), e))?;
        entries.push((entry.file_name().to_string_lossy().into_owned(), ft));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn read_header(path: &Path) -> Result<Option<Vec<u8>>, ContainerfileError> {
    let mut f = fs::File::open(path).map_err(|e| ContainerfileError::io(path, e))?;
    let mut buf = vec![0u8; 512];
    let mut filled = 0;
    while filled < buf.len() {
        let n = f
            .read(&mut buf[filled..])
            .map_err(|e| ContainerfileError::io(path, e))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(Some(buf))
}

fn hash_file(path: &Path) -> Result<String, ContainerfileError> {
    let mut f = fs::File::open(path).map_err(|e| ContainerfileError::io(path, e))?;
    let mut w = Sha256Writer::default();
    std::io::copy(&mut f, &mut w).map_err(|e| ContainerfileError::io(path, e))?;
    Ok(w.finish_hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn ctx() -> (tempfile::TempDir, BuildContext) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("src/sub")).unwrap();
        fs::create_dir_all(r.join("target")).unwrap();
        fs::write(r.join("src/a.rs"), "a").unwrap();
        fs::write(r.join("src/b.rs"), "b").unwrap();
        fs::write(r.join("src/sub/c.rs"), "c").unwrap();
        fs::write(r.join("src/notes.md"), "n").unwrap();
        fs::write(r.join("target/big"), "x").unwrap();
        fs::write(r.join("README.md"), "readme").unwrap();
        fs::write(r.join(".dockerignore"), "target\n**/*.md\n!README.md\n").unwrap();
        symlink("src/a.rs", r.join("link-in")).unwrap();
        symlink("../../etc/passwd", r.join("link-out")).unwrap();
        symlink("/etc/hostname", r.join("link-abs")).unwrap();
        let c = BuildContext::open(r).unwrap();
        (dir, c)
    }

    fn rels(sources: &[ResolvedSource]) -> Vec<&str> {
        sources.iter().map(|s| s.rel.as_str()).collect()
    }

    #[test]
    fn resolve_table() {
        let (_d, c) = ctx();
        let cases: &[(&[&str], &[&str])] = &[
            (&["src/a.rs"], &["src/a.rs"]),
            (&["./src/../src/a.rs"], &["src/a.rs"]),
            (&["/src/a.rs"], &["src/a.rs"]),
            (&["src/*.rs"], &["src/a.rs", "src/b.rs"]),
            (&["src/**/*.rs"], &["src/a.rs", "src/b.rs", "src/sub/c.rs"]),
            (&["*.md"], &["README.md"]),
            (&["link-in"], &["src/a.rs"]),
            (&["src"], &["src"]),
            (&["."], &["."]),
        ];
        for (patterns, want) in cases {
            let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
            let got = c.resolve_sources(7, &p).unwrap();
            assert_eq!(rels(&got), *want, "{patterns:?}");
        }
    }

    #[test]
    fn resolve_errors_name_line_and_path() {
        let (_d, c) = ctx();
        let cases: &[(&str, &str)] = &[
            ("../outside", "outside the build context"),
            ("link-out", "outside the build context"),
            ("link-abs", "outside the build context"),
            ("missing.txt", "not found"),
            ("target/big", "not found"),
            ("src/notes.md", "not found"),
            ("src/*.py", "not found"),
            ("src/[", "invalid pattern"),
        ];
        for (pattern, needle) in cases {
            let err = c
                .resolve_sources(12, &[pattern.to_string()])
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("line 12:"), "{pattern}: {err}");
            assert!(err.contains(needle), "{pattern}: {err}");
            assert!(err.contains(pattern), "{pattern}: {err}");
        }
    }

    #[test]
    fn absolute_symlink_back_into_context_is_allowed() {
        let (d, c) = ctx();
        let target = c.root().join("src/b.rs");
        symlink(&target, d.path().join("abs-in")).unwrap();
        let got = c.resolve_sources(1, &["abs-in".into()]).unwrap();
        assert_eq!(rels(&got), ["src/b.rs"]);
    }

    #[test]
    fn inputs_skip_ignored_and_track_content() {
        let (d, c) = ctx();
        let src = c.resolve_sources(1, &["src".into()]).unwrap();
        let entries = c.inputs(&src).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(
            names,
            ["src", "src/a.rs", "src/b.rs", "src/sub", "src/sub/c.rs"]
        );
        let before = c.inputs_digest(&src).unwrap();
        // Ignored file changes do not matter.
        fs::write(d.path().join("src/notes.md"), "changed").unwrap();
        assert_eq!(c.inputs_digest(&src).unwrap(), before);
        // Content changes do.
        fs::write(d.path().join("src/sub/c.rs"), "C").unwrap();
        let after = c.inputs_digest(&src).unwrap();
        assert_ne!(after, before);
        // Mode changes do.
        fs::set_permissions(d.path().join("src/a.rs"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(c.inputs_digest(&src).unwrap(), after);
    }

    #[test]
    fn archives_are_detected() {
        let (d, c) = ctx();
        let mut gz = vec![0x1f, 0x8b, 8, 0];
        gz.extend_from_slice(&[0; 20]);
        fs::write(d.path().join("x.tar.gz"), &gz).unwrap();
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        fs::write(d.path().join("plain.tar"), &tar).unwrap();
        let got = c
            .resolve_sources(
                1,
                &["x.tar.gz".into(), "plain.tar".into(), "src/a.rs".into()],
            )
            .unwrap();
        let kinds: Vec<_> = got.iter().map(|s| s.archive).collect();
        assert_eq!(
            kinds,
            [Some(ArchiveKind::Gzip), Some(ArchiveKind::Tar), None]
        );
        assert_eq!(detect_archive(b"BZh91AY"), Some(ArchiveKind::Bzip2));
        assert_eq!(
            detect_archive(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1]),
            Some(ArchiveKind::Xz)
        );
        assert_eq!(
            detect_archive(&[0x28, 0xb5, 0x2f, 0xfd]),
            Some(ArchiveKind::Zstd)
        );
        assert_eq!(detect_archive(b"hello"), None);
    }

    #[test]
    fn containerfile_specific_ignore_file_wins() {
        let (d, _) = ctx();
        let cf = d.path().join("build.Containerfile");
        fs::write(&cf, "FROM scratch\n").unwrap();
        // Without a specific file, .dockerignore applies (README.md re-included, src/notes.md not).
        let c = BuildContext::open_for(d.path(), &cf).unwrap();
        assert!(c.ignore().is_excluded("target/big"));
        fs::write(d.path().join("build.Containerfile.dockerignore"), "src\n").unwrap();
        let c = BuildContext::open_for(d.path(), &cf).unwrap();
        assert!(!c.ignore().is_excluded("target/big"));
        assert!(c.ignore().is_excluded("src/a.rs"));
        let err = c
            .resolve_sources(4, &["src/a.rs".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 4") && err.contains("not found"), "{err}");
    }
}
