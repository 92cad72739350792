//! The layer cache: cache key → the build state after that step (layers,
//! diff ids, history, top snapshot), in an `image_build_cache` table of the
//! engine's database. An entry is used only while everything it names still
//! exists (GC may have collected the blobs or snapshot of a stage no image
//! kept); otherwise it is a miss and the step runs again.

use berth_image::error::DbContext;
use berth_image::spec::{Descriptor, History};
use berth_image::{Digest, ImageStore};
use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS image_build_cache (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created INTEGER NOT NULL
);";

/// The filesystem and history of a stage after some step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerState {
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<Digest>,
    pub history: Vec<History>,
    /// The committed snapshot of the top layer (None: empty rootfs).
    pub chain: Option<String>,
}

/// The cache over a store's database.
pub struct Cache<'a> {
    store: &'a ImageStore,
}

impl<'a> Cache<'a> {
    pub fn open(store: &'a ImageStore) -> berth_image::Result<Self> {
        store
            .db()
            .write(|tx| tx.execute_batch(SCHEMA).db("create image_build_cache"))?;
        Ok(Cache { store })
    }

    /// The state stored for `key`, if it and everything it names exist.
    pub fn lookup(&self, key: &str) -> berth_image::Result<Option<LayerState>> {
        let json: Option<String> = self.store.db().read(|tx| {
            tx.query_row(
                "SELECT state FROM image_build_cache WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .db("read image_build_cache")
        })?;
        let Some(state) = json.and_then(|j| serde_json::from_str::<LayerState>(&j).ok()) else {
            return Ok(None);
        };
        let layers_present = state
            .layers
            .iter()
            .all(|l| self.store.content().has(&l.digest));
        let snapshot_present = state
            .chain
            .as_deref()
            .is_none_or(|c| self.store.snapshotter().stat(c).is_ok());
        Ok((layers_present && snapshot_present).then_some(state))
    }

    /// Records the state after the step with `key`.
    pub fn store(&self, key: &str, state: &LayerState) -> berth_image::Result<()> {
        let json = serde_json::to_string(state).expect("plain data serialises");
        self.store.db().write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO image_build_cache (key, state, created) VALUES (?1, ?2, ?3)",
                rusqlite::params![key, json, berth_image::metadata::now()],
            )
            .db("write image_build_cache")?;
            Ok(())
        })
    }
}
