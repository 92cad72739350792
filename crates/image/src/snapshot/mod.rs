//! Snapshotters in containerd's shape: `prepare` an active (writable)
//! snapshot on a committed parent, `view` a read-only one, `commit` an
//! active one under a name (berth uses layer chain ids), `remove`; each
//! returns [`Mount`] descriptions rather than mounting anything itself.
//!
//! Two drivers sit behind [`Snapshotter`]: [`OverlaySnapshotter`] (one
//! directory per snapshot, stacked with overlayfs) and [`VfsSnapshotter`]
//! (a full copy per snapshot, for hosts without overlayfs). Layout under
//! `<root>/snapshots`: `<id>/fs` (the snapshot's files, or upper dir),
//! `<id>/work` (overlay work dir) and `l/<short>` → `../<id>/fs` short links
//! that keep many-layer overlay option strings short, as Docker's overlay2
//! does. Records live in the `image_snapshots` table.

mod copy;
pub mod idmap;
pub mod mount;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use idmap::{mount_all_idmapped, with_fs_ids};
pub use mount::{Mount, MountGuard, mount_all, unmount};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::{DiffOptions, DiffSource, DiffStats, WhiteoutMode};
use crate::metadata::{self, Db, SnapshotRecord};

/// The state of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Active,
    View,
    Committed,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "active" => Kind::Active,
            "view" => Kind::View,
            _ => Kind::Committed,
        }
    }
}

/// What `stat` and `list` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub key: String,
    pub parent: Option<String>,
    pub kind: Kind,
    pub created: i64,
}

/// Disk usage of one snapshot's own files (not its parents').
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub size: u64,
    pub inodes: u64,
}

/// The driver behind a snapshotter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Overlay,
    Vfs,
}

/// The snapshotter interface both drivers implement.
pub trait Snapshotter: Send + Sync {
    fn driver(&self) -> Driver;
    /// Creates an active (writable) snapshot `key` on committed `parent`.
    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;
    /// Creates a read-only view `key` of committed `parent`.
    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>>;
    /// The mounts of an existing active snapshot or view.
    fn mounts(&self, key: &str) -> Result<Vec<Mount>>;
    /// Turns active snapshot `key` into committed snapshot `name`.
    fn commit(&self, name: &str, key: &str) -> Result<()>;
    /// Removes a snapshot that has no children.
    fn remove(&self, key: &str) -> Result<()>;
    fn stat(&self, key: &str) -> Result<Info>;
    fn list(&self) -> Result<Vec<Info>>;
    fn usage(&self, key: &str) -> Result<Usage>;
    /// Where to unpack a layer into an active snapshot without mounting it
    /// (the overlay upper dir, or the vfs copy), and in which whiteout form.
    fn apply_target(&self, key: &str) -> Result<(PathBuf, WhiteoutMode)>;
    /// Writes the (uncompressed) layer tar of what `key` changed on top of
    /// its parent.
    fn diff(&self, key: &str, out: &mut dyn Write, opts: &DiffOptions) -> Result<DiffStats>;
    /// The changes of `key` against its parent, as `docker diff` lists them.
    fn changes(&self, key: &str) -> Result<Vec<crate::layer::Change>>;
    /// Removes snapshot directories without a record (left by a crash
    /// between creating the directory and recording it) that are older
    /// than `min_age`; returns how many.
    fn clean_orphans(&self, min_age: std::time::Duration) -> Result<usize>;
}

/// State shared by both drivers.
struct Base {
    root: PathBuf,
    db: Arc<Db>,
}

impl Base {
    fn open(root: &Path, db: Arc<Db>) -> Result<Base> {
        let root = root.join("snapshots");
        std::fs::create_dir_all(root.join("l")).ctx(|| format!("create {}", root.display()))?;
        Ok(Base { root, db })
    }

    fn fs_dir(&self, rec: &SnapshotRecord) -> PathBuf {
        self.root.join(&rec.id).join("fs")
    }

    fn short_link(&self, rec: &SnapshotRecord) -> PathBuf {
        self.root.join("l").join(short_of(&rec.id))
    }

    fn get(&self, key: &str) -> Result<SnapshotRecord> {
        self.db
            .read(|tx| metadata::get_snapshot(tx, key))?
            .ok_or_else(|| Error::snapshot(key, "does not exist"))
    }

    /// The chain from `key` down to the base layer (top first).
    fn chain(&self, key: &str) -> Result<Vec<SnapshotRecord>> {
        let mut out = Vec::new();
        let mut next = Some(key.to_string());
        while let Some(k) = next {
            let rec = self.get(&k)?;
            next = rec.parent.clone();
            out.push(rec);
        }
        Ok(out)
    }

    /// Creates the directories and the record of a new snapshot.
    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        with_work: bool,
    ) -> Result<SnapshotRecord> {
        if let Some(p) = parent {
            let prec = self.get(p)?;
            if Kind::parse(&prec.kind) != Kind::Committed {
                return Err(Error::snapshot(key, format!("parent {p} is not committed")));
            }
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let seed = format!(
            "{key}\0{}\0{}\0{:?}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
        );
        let id = Digest::sha256_of(seed.as_bytes()).hex().to_string();
        let rec = SnapshotRecord {
            key: key.to_string(),
            id,
            parent: parent.map(str::to_string),
            kind: kind.as_str().to_string(),
            created: metadata::now(),
        };
        let dir = self.root.join(&rec.id);
        std::fs::create_dir_all(dir.join("fs")).ctx(|| format!("create {}", dir.display()))?;
        if with_work {
            std::fs::create_dir_all(dir.join("work"))
                .ctx(|| format!("create {}/work", dir.display()))?;
        }
        std::os::unix::fs::symlink(format!("../{}/fs", rec.id), self.short_link(&rec))
            .ctx(|| format!("create short link for {key}"))?;
        if let Err(e) = self.db.write(|tx| metadata::put_snapshot(tx, &rec)) {
            self.remove_dirs(&rec);
            return Err(e);
        }
        Ok(rec)
    }

    fn remove_dirs(&self, rec: &SnapshotRecord) {
        let _ = std::fs::remove_file(self.short_link(rec));
        let _ = remove_tree(&self.root.join(&rec.id));
    }

    fn commit(&self, name: &str, key: &str) -> Result<()> {
        self.db.write(|tx| {
            let rec = metadata::get_snapshot(tx, key)?
                .ok_or_else(|| Error::snapshot(key, "does not exist"))?;
            if Kind::parse(&rec.kind) != Kind::Active {
                return Err(Error::snapshot(
                    key,
                    "only active snapshots can be committed",
                ));
            }
            if metadata::get_snapshot(tx, name)?.is_some() {
                return Err(Error::snapshot(name, "already exists"));
            }
            tx.execute(
                "UPDATE image_snapshots SET key = ?1, kind = 'committed' WHERE key = ?2",
                rusqlite::params![name, key],
            )
            .map_err(|source| Error::Db {
                context: format!("commit snapshot {key}"),
                source,
            })?;
            Ok(())
        })?;
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<()> {
        let rec = self.db.write(|tx| {
            let rec = metadata::get_snapshot(tx, key)?
                .ok_or_else(|| Error::snapshot(key, "does not exist"))?;
            let children = metadata::snapshot_children(tx, key)?;
            if !children.is_empty() {
                return Err(Error::snapshot(
                    key,
                    format!(
                        "has {} child snapshot(s), e.g. {}",
                        children.len(),
                        children[0]
                    ),
                ));
            }
            metadata::delete_snapshot(tx, key)?;
            Ok(rec)
        })?;
        self.remove_dirs(&rec);
        Ok(())
    }

    fn info(rec: &SnapshotRecord) -> Info {
        Info {
            key: rec.key.clone(),
            parent: rec.parent.clone(),
            kind: Kind::parse(&rec.kind),
            created: rec.created,
        }
    }

    fn stat(&self, key: &str) -> Result<Info> {
        Ok(Self::info(&self.get(key)?))
    }

    fn list(&self) -> Result<Vec<Info>> {
        Ok(self
            .db
            .read(metadata::list_snapshots)?
            .iter()
            .map(Self::info)
            .collect())
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        let rec = self.get(key)?;
        let mut u = Usage::default();
        let mut seen = std::collections::HashSet::new();
        du(&self.fs_dir(&rec), &mut u, &mut seen)?;
        Ok(u)
    }

    fn active_dir(&self, key: &str) -> Result<PathBuf> {
        let rec = self.get(key)?;
        if Kind::parse(&rec.kind) != Kind::Active {
            return Err(Error::snapshot(key, "is not active"));
        }
        Ok(self.fs_dir(&rec))
    }

    /// Directories whose snapshot record is gone (a crash between creating
    /// the directory and the record); returns how many were removed.
    fn clean_orphans(&self, min_age: std::time::Duration) -> Result<usize> {
        let known: std::collections::HashSet<String> = self
            .db
            .read(metadata::list_snapshots)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut removed = 0;
        for entry in
            std::fs::read_dir(&self.root).ctx(|| format!("list {}", self.root.display()))?
        {
            let entry = entry.ctx(|| format!("list {}", self.root.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|e| e >= min_age);
            // Young directories may belong to a create in progress elsewhere.
            if name != "l" && !known.contains(&name) && old && !name.starts_with("overlay-probe-") {
                let _ = std::fs::remove_file(self.root.join("l").join(short_of(&name)));
                remove_tree(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The short link name for a snapshot id (26 characters, like overlay2's).
fn short_of(id: &str) -> String {
    id.chars().take(26).collect::<String>().to_uppercase()
}

fn du(dir: &Path, u: &mut Usage, seen: &mut std::collections::HashSet<(u64, u64)>) -> Result<()> {
    for entry in std::fs::read_dir(dir).ctx(|| format!("read {}", dir.display()))? {
        let entry = entry.ctx(|| format!("read {}", dir.display()))?;
        let md = entry
            .metadata()
            .ctx(|| format!("lstat {}", entry.path().display()))?;
        if seen.insert((md.dev(), md.ino())) {
            u.inodes += 1;
            u.size += md.blocks() * 512;
        }
        if md.is_dir() {
            du(&entry.path(), u, seen)?;
        }
    }
    Ok(())
}

/// Removes a tree that may contain read-only directories.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path);
            std::fs::remove_dir_all(path).ctx(|| format!("remove {}", path.display()))
        }
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = std::fs::symlink_metadata(path)
        && md.is_dir()
    {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
        if let Ok(rd) = std::fs::read_dir(path) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

fn bind(source: &Path, ro: bool) -> Mount {
    Mount {
        kind: "bind".into(),
        source: source.to_string_lossy().into_owned(),
        options: vec!["rbind".into(), if ro { "ro" } else { "rw" }.into()],
    }
}

/// overlayfs snapshots. Mount options turn off `redirect_dir`, `index` and
/// `metacopy` so an upper dir always holds whole files and plain
/// whiteouts, which is what [`crate::layer::write_diff`] reads.
pub struct OverlaySnapshotter {
    base: Base,
}

impl OverlaySnapshotter {
    pub fn new(root: &Path, db: Arc<Db>) -> Result<Self> {
        Ok(OverlaySnapshotter {
            base: Base::open(root, db)?,
        })
    }

    /// True when the running kernel lists overlayfs.
    pub fn supported() -> bool {
        std::fs::read_to_string("/proc/filesystems")
            .is_ok_and(|s| s.lines().any(|l| l.ends_with("\toverlay")))
    }

    /// True when an overlay with two lower layers, an upper and a work dir
    /// actually mounts on `root`'s filesystem (the kernel may have overlayfs
    /// yet refuse it on this backing filesystem, or we may lack privilege),
    /// as Docker's overlay2 driver checks before use.
    pub fn probe(root: &Path) -> bool {
        if !Self::supported() {
            return false;
        }
        let Ok(dir) = tempfile::Builder::new()
            .prefix("overlay-probe-")
            .tempdir_in(root)
        else {
            return false;
        };
        let d = dir.path();
        for sub in ["l1", "l2", "upper", "work", "merged"] {
            if std::fs::create_dir(d.join(sub)).is_err() {
                return false;
            }
        }
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!(
                    "lowerdir={}:{}",
                    d.join("l1").display(),
                    d.join("l2").display()
                ),
                format!("upperdir={}", d.join("upper").display()),
                format!("workdir={}", d.join("work").display()),
                "index=off".into(),
                "redirect_dir=off".into(),
                "metacopy=off".into(),
            ],
        };
        match MountGuard::new(std::slice::from_ref(&m), &d.join("merged")) {
            Ok(guard) => {
                drop(guard);
                true
            }
            Err(_) => false,
        }
    }

    fn lowers(&self, chain: &[SnapshotRecord]) -> String {
        chain
            .iter()
            .map(|r| self.base.short_link(r).to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":")
    }

    fn mounts_for(&self, rec: &SnapshotRecord) -> Result<Vec<Mount>> {
        let parents = match &rec.parent {
            Some(p) => self.base.chain(p)?,
            None => Vec::new(),
        };
        let kind = Kind::parse(&rec.kind);
        let ro = kind == Kind::View;
        if parents.is_empty() {
            return Ok(vec![bind(&self.base.fs_dir(rec), ro)]);
        }
        let fixed = [
            "index=off".to_string(),
            "redirect_dir=off".into(),
            "metacopy=off".into(),
        ];
        if ro {
            if parents.len() == 1 {
                return Ok(vec![bind(&self.base.fs_dir(&parents[0]), true)]);
            }
            let mut options = vec![
                "ro".to_string(),
                format!("lowerdir={}", self.lowers(&parents)),
            ];
            options.extend(fixed);
            return Ok(vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options,
            }]);
        }
        let dir = self.base.root.join(&rec.id);
        let mut options = vec![
            format!("lowerdir={}", self.lowers(&parents)),
            format!("upperdir={}", dir.join("fs").display()),
            format!("workdir={}", dir.join("work").display()),
        ];
        options.extend(fixed);
        Ok(vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options,
        }])
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn driver(&self) -> Driver {
        Driver::Overlay
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        let rec = self.base.create(key, parent, Kind::Active, true)?;
        self.mounts_for(&rec)
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        let rec = self.base.create(key, parent, Kind::View, false)?;
        self.mounts_for(&rec)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let rec = self.base.get(key)?;
        if Kind::parse(&rec.kind) == Kind::Committed {
            return Err(Error::snapshot(
                key,
                "committed snapshots are not mounted; view them",
            ));
        }
        self.mounts_for(&rec)
    }

    fn commit(&self, name: &str, key: &str) -> Result<()> {
        self.base.commit(name, key)?;
        let rec = self.base.get(name)?;
        // The work dir is only needed while mounted read-write.
        remove_tree(&self.base.root.join(&rec.id).join("work"))
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.base.remove(key)
    }

    fn stat(&self, key: &str) -> Result<Info> {
        self.base.stat(key)
    }

    fn list(&self) -> Result<Vec<Info>> {
        self.base.list()
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        self.base.usage(key)
    }

    fn apply_target(&self, key: &str) -> Result<(PathBuf, WhiteoutMode)> {
        Ok((self.base.active_dir(key)?, WhiteoutMode::Overlay))
    }

    fn diff(&self, key: &str, out: &mut dyn Write, opts: &DiffOptions) -> Result<DiffStats> {
        let rec = self.base.get(key)?;
        let upper = self.base.fs_dir(&rec);
        Ok(crate::layer::write_diff(DiffSource::OverlayUpper(&upper), out, opts)?.1)
    }

    fn changes(&self, key: &str) -> Result<Vec<crate::layer::Change>> {
        let rec = self.base.get(key)?;
        let lowers: Vec<PathBuf> = match &rec.parent {
            Some(p) => self
                .base
                .chain(p)?
                .iter()
                .map(|r| self.base.fs_dir(r))
                .collect(),
            None => Vec::new(),
        };
        let refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        crate::layer::changes(DiffSource::OverlayUpper(&self.base.fs_dir(&rec)), &refs)
    }

    fn clean_orphans(&self, min_age: std::time::Duration) -> Result<usize> {
        self.base.clean_orphans(min_age)
    }
}

/// Full-copy snapshots: each snapshot holds its whole tree, so it works on
/// any filesystem and kernel, at the cost of space and prepare time.
pub struct VfsSnapshotter {
    base: Base,
}

impl VfsSnapshotter {
    pub fn new(root: &Path, db: Arc<Db>) -> Result<Self> {
        Ok(VfsSnapshotter {
            base: Base::open(root, db)?,
        })
    }

    fn create_copy(&self, key: &str, parent: Option<&str>, kind: Kind) -> Result<SnapshotRecord> {
        let rec = self.base.create(key, parent, kind, false)?;
        if let Some(p) = parent {
            let prec = self.base.get(p)?;
            if let Err(e) = copy::copy_tree(&self.base.fs_dir(&prec), &self.base.fs_dir(&rec)) {
                let _ = self.base.remove(key);
                return Err(e);
            }
        }
        Ok(rec)
    }

    fn parent_dir(&self, rec: &SnapshotRecord) -> Result<Option<PathBuf>> {
        rec.parent
            .as_deref()
            .map(|p| self.base.get(p).map(|r| self.base.fs_dir(&r)))
            .transpose()
    }
}

impl Snapshotter for VfsSnapshotter {
    fn driver(&self) -> Driver {
        Driver::Vfs
    }

    fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        let rec = self.create_copy(key, parent, Kind::Active)?;
        Ok(vec![bind(&self.base.fs_dir(&rec), false)])
    }

    fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>> {
        let rec = self.create_copy(key, parent, Kind::View)?;
        Ok(vec![bind(&self.base.fs_dir(&rec), true)])
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let rec = self.base.get(key)?;
        match Kind::parse(&rec.kind) {
            Kind::Committed => Err(Error::snapshot(
                key,
                "committed snapshots are not mounted; view them",
            )),
            k => Ok(vec![bind(&self.base.fs_dir(&rec), k == Kind::View)]),
        }
    }

    fn commit(&self, name: &str, key: &str) -> Result<()> {
        self.base.commit(name, key)
    }

    fn remove(&self, key: &str) -> Result<()> {
        self.base.remove(key)
    }

    fn stat(&self, key: &str) -> Result<Info> {
        self.base.stat(key)
    }

    fn list(&self) -> Result<Vec<Info>> {
        self.base.list()
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        self.base.usage(key)
    }

    fn apply_target(&self, key: &str) -> Result<(PathBuf, WhiteoutMode)> {
        Ok((self.base.active_dir(key)?, WhiteoutMode::Delete))
    }

    fn diff(&self, key: &str, out: &mut dyn Write, opts: &DiffOptions) -> Result<DiffStats> {
        let rec = self.base.get(key)?;
        let lower = self.parent_dir(&rec)?;
        let upper = self.base.fs_dir(&rec);
        Ok(crate::layer::write_diff(
            DiffSource::Dirs {
                lower: lower.as_deref(),
                upper: &upper,
            },
            out,
            opts,
        )?
        .1)
    }

    fn changes(&self, key: &str) -> Result<Vec<crate::layer::Change>> {
        let rec = self.base.get(key)?;
        let lower = self.parent_dir(&rec)?;
        crate::layer::changes(
            DiffSource::Dirs {
                lower: lower.as_deref(),
                upper: &self.base.fs_dir(&rec),
            },
            &[],
        )
    }

    fn clean_orphans(&self, min_age: std::time::Duration) -> Result<usize> {
        self.base.clean_orphans(min_age)
    }
}
