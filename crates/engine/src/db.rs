//! The engine's tables in the shared SQLite database (WAL): containers,
//! volumes and events. Every state change is one `BEGIN IMMEDIATE`
//! transaction, so concurrent `berth` processes serialise on SQLite's
//! write lock instead of racing (two `run --name x`: the UNIQUE constraint
//! makes exactly one win).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, db};
use crate::model::{Container, ContainerConfig, ContainerState};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS engine_containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    created TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS engine_volumes (
    name TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    labels TEXT NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS engine_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    attributes TEXT NOT NULL
);
";

/// A volume row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub created: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub anonymous: bool,
}

/// One event (`berth events`), Docker's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub time_nano: i64,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    /// The object's id.
    pub actor: String,
    pub attributes: std::collections::BTreeMap<String, String>,
}

pub struct Db {
    conn: Connection,
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("engine types serialize")
}

fn from_json<T: for<'de> Deserialize<'de>>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s)
        .map_err(|e| Error::Other(format!("corrupt {what} in the database: {e}")))
}

type Row = (String, String, String, String, String, String, String);

fn row_to_container(r: Row) -> Result<Container> {
    Ok(Container {
        config: from_json::<ContainerConfig>(&r.5, "container config")?,
        state: from_json::<ContainerState>(&r.6, "container state")?,
        id: r.0,
        name: r.1,
        image: r.2,
        image_id: r.3,
        created: r.4,
    })
}

const COLS: &str = "id, name, image, image_id, created, config, state";

impl Db {
    pub fn open(path: &Path) -> Result<Db> {
        let conn = Connection::open(path).map_err(db(format!("open {}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(db("busy_timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db("journal_mode=WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db("synchronous"))?;
        let exists: bool = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'engine_events'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db("schema check"))?
            > 0;
        if !exists {
            conn.execute_batch(SCHEMA)
                .map_err(db("creating the engine tables"))?;
        }
        Ok(Db { conn })
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction.
    fn write<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(format!("begin ({what})")))?;
        let v = f(&tx)?;
        tx.commit().map_err(db(format!("commit ({what})")))?;
        Ok(v)
    }

    pub fn insert_container(&mut self, c: &Container) -> Result<()> {
        let mut c = c.clone();
        self.insert_container_with(&mut c, |_, _| Ok(()))
    }

    /// Inserts `c` after `prepare` has had its say, in one transaction:
    /// `prepare` may read every existing container's config (through the
    /// loader it gets, only when it needs them), so choices that must
    /// differ between containers, like `--userns=auto` id blocks, cannot
    /// race.
    pub fn insert_container_with(
        &mut self,
        c: &mut Container,
        prepare: impl FnOnce(&mut Container, &dyn Fn() -> Result<Vec<ContainerConfig>>) -> Result<()>,
    ) -> Result<()> {
        self.write("insert container", |tx| {
            let others = || -> Result<Vec<ContainerConfig>> {
                let mut st = tx
                    .prepare("SELECT config FROM engine_containers")
                    .map_err(db("listing container configs"))?;
                let rows = st
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(db("listing container configs"))?;
                let mut out = vec![];
                for r in rows {
                    let text = r.map_err(db("listing container configs"))?;
                    out.push(from_json::<ContainerConfig>(&text, "container config")?);
                }
                Ok(out)
            };
            prepare(c, &others)?;
            let c = &*c;
            let taken: Option<String> = tx
                .query_row(
                    "SELECT id FROM engine_containers WHERE name = ?1",
                    [&c.name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db("name lookup"))?;
            if taken.is_some() {
                return Err(Error::NameInUse(c.name.clone()));
            }
            tx.execute(
                &format!(
                    "INSERT INTO engine_containers ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    c.id,
                    c.name,
                    c.image,
                    c.image_id,
                    c.created,
                    to_json(&c.config),
                    to_json(&c.state)
                ],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Error::NameInUse(c.name.clone())
                }
                e => Error::Db {
                    what: "insert container".into(),
                    source: e,
                },
            })?;
            Ok(())
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<Container>> {
        self.conn
            .query_row(
                &format!("SELECT {COLS} FROM engine_containers WHERE id = ?1"),
                [id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()
            .map_err(db("get container"))?
            .map(row_to_container)
            .transpose()
    }

    /// Resolves a full id, a name, or a unique id prefix to the full id.
    pub fn resolve(&self, name_or_id: &str) -> Result<String> {
        let name = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        let by_name: Option<String> = self
            .conn
            .query_row(
                "SELECT id FROM engine_containers WHERE name = ?1 OR id = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("resolve container"))?;
        if let Some(id) = by_name {
            return Ok(id);
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::NoSuchContainer(name_or_id.into()));
        }
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM engine_containers WHERE id LIKE ?1 || '%' LIMIT 2")
            .map_err(db("resolve container"))?;
        let ids: Vec<String> = stmt
            .query_map([name], |r| r.get(0))
            .map_err(db("resolve container"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(db("resolve container"))?;
        match ids.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::NoSuchContainer(name_or_id.into())),
            _ => Err(Error::Invalid(format!(
                "container id prefix {name_or_id:?} is ambiguous"
            ))),
        }
    }

    /// All containers, newest first.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLS} FROM engine_containers ORDER BY created DESC, rowid DESC"
            ))
            .map_err(db("list containers"))?;
        let rows: Vec<Row> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .map_err(db("list containers"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(db("list containers"))?;
        rows.into_iter().map(row_to_container).collect()
    }

    /// Read-modify-write of a container's state in one transaction; `f`
    /// returns an error to abort without writing. Returns the new state.
    pub fn update_state(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut ContainerState) -> Result<()>,
    ) -> Result<ContainerState> {
        self.write("update container state", |tx| {
            let text: Option<String> = tx
                .query_row(
                    "SELECT state FROM engine_containers WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db("read state"))?;
            let text = text.ok_or_else(|| Error::NoSuchContainer(id.into()))?;
            let mut st: ContainerState = from_json(&text, "container state")?;
            f(&mut st)?;
            tx.execute(
                "UPDATE engine_containers SET state = ?2 WHERE id = ?1",
                params![id, to_json(&st)],
            )
            .map_err(db("write state"))?;
            Ok(st)
        })
    }

    pub fn rename(&mut self, id: &str, new_name: &str) -> Result<()> {
        self.write("rename container", |tx| {
            let taken: Option<String> = tx
                .query_row(
                    "SELECT id FROM engine_containers WHERE name = ?1",
                    [new_name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db("name lookup"))?;
            if taken.is_some() {
                return Err(Error::NameInUse(new_name.into()));
            }
            tx.execute(
                "UPDATE engine_containers SET name = ?2 WHERE id = ?1",
                params![id, new_name],
            )
            .map_err(db("rename"))?;
            Ok(())
        })
    }

    pub fn delete_container(&mut self, id: &str) -> Result<bool> {
        self.write("delete container", |tx| {
            Ok(tx
                .execute("DELETE FROM engine_containers WHERE id = ?1", [id])
                .map_err(db("delete container"))?
                > 0)
        })
    }

    // ---- volumes ----

    /// Inserts a volume; returns false if it already existed.
    pub fn insert_volume(&mut self, v: &VolumeRecord) -> Result<bool> {
        self.write("insert volume", |tx| {
            Ok(tx
                .execute(
                    "INSERT OR IGNORE INTO engine_volumes (name, created, labels, anonymous) VALUES (?1, ?2, ?3, ?4)",
                    params![v.name, v.created, to_json(&v.labels), v.anonymous],
                )
                .map_err(db("insert volume"))?
                > 0)
        })
    }

    pub fn get_volume(&self, name: &str) -> Result<Option<VolumeRecord>> {
        self.conn
            .query_row(
                "SELECT name, created, labels, anonymous FROM engine_volumes WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(db("get volume"))?
            .map(|(name, created, labels, anonymous)| {
                Ok(VolumeRecord {
                    name,
                    created,
                    labels: from_json(&labels, "volume labels")?,
                    anonymous,
                })
            })
            .transpose()
    }

    pub fn list_volumes(&self) -> Result<Vec<VolumeRecord>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM engine_volumes ORDER BY name")
            .map_err(db("list volumes"))?;
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .map_err(db("list volumes"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(db("list volumes"))?;
        names
            .iter()
            .filter_map(|n| self.get_volume(n).transpose())
            .collect()
    }

    pub fn delete_volume(&mut self, name: &str) -> Result<bool> {
        self.write("delete volume", |tx| {
            Ok(tx
                .execute("DELETE FROM engine_volumes WHERE name = ?1", [name])
                .map_err(db("delete volume"))?
                > 0)
        })
    }

    // ---- events ----

    pub fn add_event(
        &mut self,
        kind: &str,
        action: &str,
        actor: &str,
        attrs: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let now = crate::time::now_nanos();
        self.write("add event", |tx| {
            tx.execute(
                "INSERT INTO engine_events (time_nano, type, action, actor, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![now, kind, action, actor, to_json(attrs)],
            )
            .map_err(db("add event"))?;
            // Keep the log bounded.
            tx.execute("DELETE FROM engine_events WHERE seq <= (SELECT max(seq) FROM engine_events) - 10000", [])
                .map_err(db("trim events"))?;
            Ok(())
        })
    }

    /// Events after sequence number `after_seq` with time in `[since, until)` (nanoseconds).
    pub fn events(&self, after_seq: i64, since: i64, until: i64) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, time_nano, type, action, actor, attributes FROM engine_events
                 WHERE seq > ?1 AND time_nano >= ?2 AND time_nano < ?3 ORDER BY seq",
            )
            .map_err(db("list events"))?;
        let rows: Vec<(i64, i64, String, String, String, String)> = stmt
            .query_map(params![after_seq, since, until], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(db("list events"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(db("list events"))?;
        rows.into_iter()
            .map(|(seq, time_nano, kind, action, actor, attrs)| {
                Ok(Event {
                    seq,
                    time_nano,
                    kind,
                    action,
                    actor,
                    attributes: from_json(&attrs, "event")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Status;

    fn sample(id: &str, name: &str) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            created: "2026-01-01T00:00:00Z".into(),
            config: ContainerConfig::default(),
            state: ContainerState::default(),
        }
    }

    #[test]
    fn names_are_unique_and_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Db::open(&dir.path().join("db")).unwrap();
        d.insert_container(&sample("abcdef01", "one")).unwrap();
        assert!(matches!(
            d.insert_container(&sample("abcdef02", "one")),
            Err(Error::NameInUse(_))
        ));
        d.insert_container(&sample("bbcdef02", "two")).unwrap();
        assert_eq!(d.resolve("one").unwrap(), "abcdef01");
        assert_eq!(d.resolve("bbc").unwrap(), "bbcdef02");
        assert!(matches!(d.resolve("zzz"), Err(Error::NoSuchContainer(_))));
        d.insert_container(&sample("abcdef03", "three")).unwrap();
        assert!(matches!(d.resolve("abcdef"), Err(Error::Invalid(_))));
        let st = d
            .update_state("abcdef01", |s| {
                s.status = Status::Running;
                Ok(())
            })
            .unwrap();
        assert_eq!(st.status, Status::Running);
        assert_eq!(
            d.get("abcdef01").unwrap().unwrap().state.status,
            Status::Running
        );
        d.rename("abcdef01", "uno").unwrap();
        assert!(matches!(
            d.rename("abcdef02", "uno"),
            Err(Error::NameInUse(_))
        ));
        assert!(d.delete_container("abcdef01").unwrap());
        assert_eq!(d.list().unwrap().len(), 2);
    }

    #[test]
    fn events_filter_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Db::open(&dir.path().join("db")).unwrap();
        d.add_event("container", "create", "a", &Default::default())
            .unwrap();
        d.add_event("container", "start", "a", &Default::default())
            .unwrap();
        let all = d.events(0, 0, i64::MAX).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(d.events(all[0].seq, 0, i64::MAX).unwrap().len(), 1);
    }
}
