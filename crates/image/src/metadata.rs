//! Image metadata in the engine's SQLite database (tables prefixed
//! `image_`): images, tags, snapshot records and leases (references held by
//! containers or in-flight work). WAL mode and a busy timeout make several
//! `berth` processes safe; every mutation is one `BEGIN IMMEDIATE`
//! transaction so readers never see half a change.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::error::{DbContext, Error, IoContext, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS image_images (
    id TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    created TEXT,
    added INTEGER NOT NULL,
    size INTEGER NOT NULL,
    chain_id TEXT
);
CREATE TABLE IF NOT EXISTS image_tags (
    name TEXT PRIMARY KEY,
    image_id TEXT NOT NULL REFERENCES image_images(id)
);
CREATE INDEX IF NOT EXISTS image_tags_by_image ON image_tags(image_id);
CREATE TABLE IF NOT EXISTS image_snapshots (
    key TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    parent TEXT REFERENCES image_snapshots(key),
    kind TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS image_snapshots_by_parent ON image_snapshots(parent);
CREATE TABLE IF NOT EXISTS image_leases (
    holder TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (holder, kind, target)
);
";

/// The database handle shared by the store's parts.
pub struct Db {
    conn: Mutex<Connection>,
}

/// What a lease keeps alive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeaseTarget {
    /// An image (by id) a container was created from.
    Image(String),
    /// A snapshot key (a container's rootfs).
    Snapshot(String),
    /// A blob (by digest), e.g. during a pull before the image is registered.
    Content(String),
}

impl LeaseTarget {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            LeaseTarget::Image(s) => ("image", s),
            LeaseTarget::Snapshot(s) => ("snapshot", s),
            LeaseTarget::Content(s) => ("content", s),
        }
    }

    fn from_parts(kind: &str, target: String) -> Option<Self> {
        match kind {
            "image" => Some(LeaseTarget::Image(target)),
            "snapshot" => Some(LeaseTarget::Snapshot(target)),
            "content" => Some(LeaseTarget::Content(target)),
            _ => None,
        }
    }
}

/// Whether `e` is SQLite's "busy" or "locked" (worth retrying).
fn is_busy(e: &Error) -> bool {
    match e {
        Error::Db { source, .. } => matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ),
        _ => false,
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Db {
    /// Opens (creating) the database at `path`.
    ///
    /// Several processes may open a fresh database at once. Switching to WAL
    /// needs an exclusive lock and SQLite answers `SQLITE_BUSY` at once
    /// (without calling the busy handler) when another connection holds
    /// one, and a schema write from a read transaction may be refused the
    /// same way to avoid deadlock (<https://www.sqlite.org/rescode.html#busy>).
    /// So the set-up is retried with a bounded backoff on busy/locked.
    pub fn open(path: &Path) -> Result<Arc<Db>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        }
        let mut delay = Duration::from_millis(5);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match Self::try_open(path) {
                Ok(conn) => {
                    return Ok(Arc::new(Db {
                        conn: Mutex::new(conn),
                    }));
                }
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_open(path: &Path) -> Result<Connection> {
        let mut conn = Connection::open(path).db(&format!("open {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(30))
            .db("set busy timeout")?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .db("enable WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .db("enable foreign keys")?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .db("set synchronous")?;
        // Schema creation as one immediate (write-locked from the start)
        // transaction: no read-to-write upgrade that SQLite could refuse.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db("begin schema transaction")?;
        tx.execute_batch(SCHEMA).db("create image tables")?;
        tx.commit().db("commit image tables")?;
        Ok(conn)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when `f`
    /// returns Ok and rolled back otherwise.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db("begin transaction")?;
        let out = f(&tx)?;
        tx.commit().db("commit transaction")?;
        Ok(out)
    }

    /// Runs read-only queries (one consistent snapshot).
    pub fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .db("begin read")?;
        f(&tx)
    }

    /// Records that `holder` uses `target`.
    pub fn add_lease(&self, holder: &str, target: &LeaseTarget) -> Result<()> {
        let (kind, t) = target.parts();
        self.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO image_leases(holder, kind, target, created) VALUES (?1, ?2, ?3, ?4)",
                params![holder, kind, t, now()],
            )
            .db("add lease")?;
            Ok(())
        })
    }

    /// Drops every lease `holder` has; returns what they were.
    pub fn release(&self, holder: &str) -> Result<Vec<LeaseTarget>> {
        self.write(|tx| {
            let leases = leases_of(tx, Some(holder))?;
            tx.execute(
                "DELETE FROM image_leases WHERE holder = ?1",
                params![holder],
            )
            .db("release leases")?;
            Ok(leases.into_iter().map(|(_, t)| t).collect())
        })
    }

    /// Every lease as (holder, target).
    pub fn leases(&self) -> Result<Vec<(String, LeaseTarget)>> {
        self.read(|tx| leases_of(tx, None))
    }
}

/// Leases, all or one holder's.
pub fn leases_of(tx: &Transaction<'_>, holder: Option<&str>) -> Result<Vec<(String, LeaseTarget)>> {
    let mut stmt = tx
        .prepare("SELECT holder, kind, target FROM image_leases WHERE ?1 IS NULL OR holder = ?1 ORDER BY holder, kind, target")
        .db("list leases")?;
    let rows = stmt
        .query_map(params![holder], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .db("list leases")?;
    let mut out = Vec::new();
    for row in rows {
        let (h, k, t) = row.db("read lease")?;
        if let Some(target) = LeaseTarget::from_parts(&k, t) {
            out.push((h, target));
        }
    }
    Ok(out)
}

/// An image row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The config digest (`sha256:…`), which is the image id.
    pub id: String,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    /// The config's `created` timestamp (RFC 3339), if any.
    pub created: Option<String>,
    /// When this store learned of the image (seconds since the epoch).
    pub added: i64,
    /// Sum of the compressed layer sizes plus config and manifest.
    pub size: u64,
    /// Chain id of the top layer (None for an image without layers).
    pub chain_id: Option<String>,
}

fn image_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        id: r.get(0)?,
        manifest_digest: r.get(1)?,
        manifest_media_type: r.get(2)?,
        created: r.get(3)?,
        added: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        chain_id: r.get(6)?,
    })
}

const IMAGE_COLS: &str = "id, manifest_digest, manifest_media_type, created, added, size, chain_id";

/// Inserts or replaces an image row.
pub fn put_image(tx: &Transaction<'_>, img: &ImageRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO image_images(id, manifest_digest, manifest_media_type, created, added, size, chain_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest,
           manifest_media_type = excluded.manifest_media_type, size = excluded.size",
        params![img.id, img.manifest_digest, img.manifest_media_type, img.created, img.added, img.size as i64, img.chain_id],
    )
    .db("store image")?;
    Ok(())
}

pub fn get_image(tx: &Transaction<'_>, id: &str) -> Result<Option<ImageRecord>> {
    tx.query_row(
        &format!("SELECT {IMAGE_COLS} FROM image_images WHERE id = ?1"),
        params![id],
        image_from_row,
    )
    .optional()
    .db("read image")
}

pub fn list_images(tx: &Transaction<'_>) -> Result<Vec<ImageRecord>> {
    let mut stmt = tx
        .prepare(&format!(
            "SELECT {IMAGE_COLS} FROM image_images ORDER BY added DESC, id"
        ))
        .db("list images")?;
    let rows = stmt.query_map([], image_from_row).db("list images")?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .db("read image rows")
}

/// Image ids whose id starts with `prefix` (for short ids).
pub fn images_with_prefix(tx: &Transaction<'_>, prefix: &str) -> Result<Vec<String>> {
    let mut stmt = tx
        .prepare("SELECT id FROM image_images WHERE substr(id, 1, length(?1)) = ?1")
        .db("find image")?;
    let rows = stmt
        .query_map(params![prefix], |r| r.get::<_, String>(0))
        .db("find image")?;
    rows.collect::<rusqlite::Result<Vec<_>>>().db("find image")
}

pub fn delete_image(tx: &Transaction<'_>, id: &str) -> Result<()> {
    tx.execute("DELETE FROM image_tags WHERE image_id = ?1", params![id])
        .db("delete image tags")?;
    tx.execute("DELETE FROM image_images WHERE id = ?1", params![id])
        .db("delete image")?;
    Ok(())
}

/// Points `name` at `image_id`; returns the image it pointed at before.
pub fn set_tag(tx: &Transaction<'_>, name: &str, image_id: &str) -> Result<Option<String>> {
    let old = get_tag(tx, name)?;
    tx.execute(
        "INSERT INTO image_tags(name, image_id) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
        params![name, image_id],
    )
    .db("tag image")?;
    Ok(old.filter(|o| o != image_id))
}

pub fn get_tag(tx: &Transaction<'_>, name: &str) -> Result<Option<String>> {
    tx.query_row(
        "SELECT image_id FROM image_tags WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )
    .optional()
    .db("read tag")
}

pub fn remove_tag(tx: &Transaction<'_>, name: &str) -> Result<bool> {
    Ok(tx
        .execute("DELETE FROM image_tags WHERE name = ?1", params![name])
        .db("untag")?
        > 0)
}

pub fn tags_of(tx: &Transaction<'_>, image_id: &str) -> Result<Vec<String>> {
    let mut stmt = tx
        .prepare("SELECT name FROM image_tags WHERE image_id = ?1 ORDER BY name")
        .db("list tags")?;
    let rows = stmt
        .query_map(params![image_id], |r| r.get::<_, String>(0))
        .db("list tags")?;
    rows.collect::<rusqlite::Result<Vec<_>>>().db("list tags")
}

/// A snapshot row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub key: String,
    /// Directory name under `<root>/snapshots`.
    pub id: String,
    pub parent: Option<String>,
    pub kind: String,
    pub created: i64,
}

fn snapshot_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        key: r.get(0)?,
        id: r.get(1)?,
        parent: r.get(2)?,
        kind: r.get(3)?,
        created: r.get(4)?,
    })
}

pub fn get_snapshot(tx: &Transaction<'_>, key: &str) -> Result<Option<SnapshotRecord>> {
    tx.query_row(
        "SELECT key, id, parent, kind, created FROM image_snapshots WHERE key = ?1",
        params![key],
        snapshot_from_row,
    )
    .optional()
    .db("read snapshot")
}

pub fn list_snapshots(tx: &Transaction<'_>) -> Result<Vec<SnapshotRecord>> {
    let mut stmt = tx
        .prepare("SELECT key, id, parent, kind, created FROM image_snapshots ORDER BY key")
        .db("list snapshots")?;
    let rows = stmt.query_map([], snapshot_from_row).db("list snapshots")?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .db("list snapshots")
}

pub fn put_snapshot(tx: &Transaction<'_>, s: &SnapshotRecord) -> Result<()> {
    tx.execute(
        "INSERT INTO image_snapshots(key, id, parent, kind, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![s.key, s.id, s.parent, s.kind, s.created],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Error::snapshot(&s.key, "already exists")
        }
        other => Error::Db {
            context: "store snapshot".into(),
            source: other,
        },
    })?;
    Ok(())
}

pub fn snapshot_children(tx: &Transaction<'_>, key: &str) -> Result<Vec<String>> {
    let mut stmt = tx
        .prepare("SELECT key FROM image_snapshots WHERE parent = ?1 ORDER BY key")
        .db("list children")?;
    let rows = stmt
        .query_map(params![key], |r| r.get::<_, String>(0))
        .db("list children")?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .db("list children")
}

pub fn delete_snapshot(tx: &Transaction<'_>, key: &str) -> Result<()> {
    tx.execute("DELETE FROM image_snapshots WHERE key = ?1", params![key])
        .db("delete snapshot")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            manifest_digest: format!("m-{id}"),
            manifest_media_type: "x".into(),
            created: None,
            added: 1,
            size: 10,
            chain_id: None,
        }
    }

    #[test]
    fn images_tags_and_leases() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        db.write(|tx| {
            put_image(tx, &img("sha256:aa"))?;
            put_image(tx, &img("sha256:ab"))?;
            assert_eq!(
                set_tag(tx, "docker.io/library/x:latest", "sha256:aa")?,
                None
            );
            assert_eq!(
                set_tag(tx, "docker.io/library/x:latest", "sha256:ab")?,
                Some("sha256:aa".into())
            );
            Ok(())
        })
        .unwrap();
        db.read(|tx| {
            assert_eq!(images_with_prefix(tx, "sha256:a")?.len(), 2);
            assert_eq!(tags_of(tx, "sha256:ab")?, ["docker.io/library/x:latest"]);
            assert!(tags_of(tx, "sha256:aa")?.is_empty());
            Ok(())
        })
        .unwrap();
        db.add_lease("ctr1", &LeaseTarget::Snapshot("k".into()))
            .unwrap();
        db.add_lease("ctr1", &LeaseTarget::Image("sha256:aa".into()))
            .unwrap();
        assert_eq!(db.leases().unwrap().len(), 2);
        assert_eq!(db.release("ctr1").unwrap().len(), 2);
        assert!(db.leases().unwrap().is_empty());
    }

    #[test]
    fn failed_transaction_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        let r: Result<()> = db.write(|tx| {
            put_image(tx, &img("sha256:aa"))?;
            Err(Error::Conflict("boom".into()))
        });
        assert!(r.is_err());
        assert!(db.read(list_images).unwrap().is_empty());
    }

    #[test]
    fn two_handles_share_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        let a = Db::open(&path).unwrap();
        let b = Db::open(&path).unwrap();
        let threads: Vec<_> = [a, b]
            .into_iter()
            .enumerate()
            .map(|(i, db)| {
                std::thread::spawn(move || {
                    for n in 0..50 {
                        db.write(|tx| put_image(tx, &img(&format!("sha256:{i}-{n}"))))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let c = Db::open(&path).unwrap();
        assert_eq!(c.read(list_images).unwrap().len(), 100);
    }
}
