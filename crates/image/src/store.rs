//! [`ImageStore`]: the facade the engine and CLI use. It ties the content
//! store, metadata, snapshotter and layer code together: import, register
//! (after a pull or load), list, inspect, tag, remove, prune, history,
//! container rootfs preparation and commit.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::changes::Change as ConfigChange;
use crate::content::{ContentStore, Expected};
use crate::digest::Digest;
use crate::error::{DbContext, Error, IoContext, Result};
use crate::gc::{self, GcReport, Node, SnapshotNode};
use crate::layer::{self, ApplyOptions, DiffOptions, Limits};
use crate::metadata::{self, Db, ImageRecord, LeaseTarget};
use crate::reference::{Reference, familiar_repository};
use crate::snapshot::{Driver, Kind, Mount, OverlaySnapshotter, Snapshotter, VfsSnapshotter};
use crate::spec::{
    self, ContainerConfig, Descriptor, History, ImageConfig, Manifest, Parsed, Platform, RootFs,
};
use crate::timefmt::rfc3339;

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The snapshot driver; None picks overlay when the kernel has it and
    /// we are root, vfs otherwise.
    pub driver: Option<Driver>,
    /// Refuse device nodes in layers and skip chown (see [`ApplyOptions`]).
    pub rootless: bool,
    /// Per-layer extraction limits.
    pub limits: Limits,
    /// The platform picked from multi-platform indexes (linux/amd64).
    pub platform: Platform,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            driver: None,
            rootless: false,
            limits: Limits::default(),
            platform: Platform::linux_amd64(),
        }
    }
}

/// Options of [`ImageStore::import_rootfs_tar`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Name to tag the new image with.
    pub tag: Option<String>,
    /// `--change` instructions.
    pub changes: Vec<ConfigChange>,
    /// History comment (`--message`).
    pub message: Option<String>,
    /// The config's `created` time (RFC 3339); now when None. Fixing it
    /// makes two imports of equal content produce equal image ids.
    pub created: Option<String>,
}

/// Options of [`ImageStore::commit_container`].
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub tag: Option<String>,
    /// The history entry's `created_by` (default `berth commit`).
    pub created_by: Option<String>,
    pub author: Option<String>,
    pub message: Option<String>,
    pub changes: Vec<ConfigChange>,
}

/// One row of `berth images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// `sha256:<hex>` of the config.
    pub id: String,
    /// Full names (`docker.io/library/busybox:latest`).
    pub repo_tags: Vec<String>,
    /// `repository@manifest-digest` for each tagged repository.
    pub repo_digests: Vec<String>,
    /// The config's created time (RFC 3339), when it has one.
    pub created: Option<String>,
    /// Bytes: config plus compressed layers.
    pub size: u64,
    /// Containers holding a lease on the image.
    pub containers: usize,
    pub labels: BTreeMap<String, String>,
}

impl ImageSummary {
    /// The 12-hex-digit id `berth images` shows.
    pub fn short_id(&self) -> &str {
        let hex = self.id.split_once(':').map_or(self.id.as_str(), |(_, h)| h);
        &hex[..hex.len().min(12)]
    }

    /// True for an image without tags (`<none>:<none>`).
    pub fn dangling(&self) -> bool {
        self.repo_tags.is_empty()
    }
}

/// `image inspect` output, shaped like Docker's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: Option<String>,
    pub author: Option<String>,
    pub comment: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub config: ContainerConfig,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFsInspect,
    pub size: u64,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    /// The snapshot (chain id) of the top layer.
    pub chain_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFsInspect {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

/// One row of `berth history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryItem {
    /// The image id for the top entry, `<missing>` below (as Docker shows).
    pub id: String,
    pub created: Option<String>,
    pub created_by: String,
    /// Compressed size of the entry's layer; 0 for empty layers.
    pub size: u64,
    pub comment: String,
    pub empty_layer: bool,
}

/// What `rmi` did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveEvent {
    Untagged(String),
    Deleted(String),
}

/// What `image prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
    pub gc: GcReport,
}

/// What [`ImageStore::recover`] cleaned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverReport {
    pub ingest_removed: usize,
    pub orphan_snapshot_dirs: usize,
    pub gc: GcReport,
}

/// A lease protecting content and snapshots created while it is held
/// from garbage collection (e.g. a pull between writing blobs and
/// [`ImageStore::register_image`]). Released on drop.
pub struct OperationLease {
    db: Arc<Db>,
    holder: String,
}

impl OperationLease {
    pub fn holder(&self) -> &str {
        &self.holder
    }
}

impl Drop for OperationLease {
    fn drop(&mut self) {
        let _ = self.db.release(&self.holder);
    }
}

/// The image store.
pub struct ImageStore {
    root: PathBuf,
    db: Arc<Db>,
    content: ContentStore,
    snapshots: Box<dyn Snapshotter>,
    opts: StoreOptions,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}:{}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn container_holder(container_id: &str) -> String {
    format!("container:{container_id}")
}

/// The snapshot key of a container's rootfs.
pub fn container_key(container_id: &str) -> String {
    format!("container:{container_id}")
}

/// The chain id of a layer on top of `parent` (OCI image spec, config.md
/// "Layer ChainID").
pub fn chain_id(parent: Option<&str>, diff_id: &Digest) -> String {
    match parent {
        None => diff_id.to_string(),
        Some(p) => Digest::sha256_of(format!("{p} {diff_id}").as_bytes()).to_string(),
    }
}

fn pid_alive(holder: &str) -> bool {
    // Holders of operations are `op:<pid>:<n>`; a dead pid means a crash.
    match holder.split(':').nth(1).and_then(|p| p.parse::<u32>().ok()) {
        Some(pid) => Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

/// Snapshot keys of short-lived operations (`<kind>:<pid>:<n>`): layer
/// extraction and import here, build steps and `COPY --from` views of the
/// engine's build driver. Those of dead processes are crash leftovers.
fn is_operation_key(key: &str) -> bool {
    ["extract:", "import:", "build-step:", "build-view:"]
        .iter()
        .any(|p| key.starts_with(p))
}

fn to_oci_layer_type(media_type: &str) -> String {
    match media_type {
        spec::DOCKER_LAYER_GZIP | spec::DOCKER_LAYER_FOREIGN => spec::OCI_LAYER_GZIP.to_string(),
        spec::DOCKER_LAYER_TAR => spec::OCI_LAYER.to_string(),
        other => other.to_string(),
    }
}

impl ImageStore {
    /// Opens the store under `root` with its tables in the database at
    /// `db_path`, with default options.
    pub fn open(root: &Path, db_path: &Path) -> Result<Self> {
        Self::open_with(root, db_path, StoreOptions::default())
    }

    /// Opens the store with explicit options.
    pub fn open_with(root: &Path, db_path: &Path, opts: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(root).ctx(|| format!("create {}", root.display()))?;
        let db = Db::open(db_path)?;
        let content = ContentStore::open(root)?;
        let driver = opts.driver.unwrap_or_else(|| {
            if !opts.rootless
                && rustix::process::geteuid().is_root()
                && OverlaySnapshotter::probe(root)
            {
                Driver::Overlay
            } else {
                Driver::Vfs
            }
        });
        let snapshots: Box<dyn Snapshotter> = match driver {
            Driver::Overlay => Box::new(OverlaySnapshotter::new(root, db.clone())?),
            Driver::Vfs => Box::new(VfsSnapshotter::new(root, db.clone())?),
        };
        std::fs::create_dir_all(root.join("tmp"))
            .ctx(|| format!("create {}/tmp", root.display()))?;
        Ok(ImageStore {
            root: root.to_path_buf(),
            db,
            content,
            snapshots,
            opts,
        })
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    pub fn snapshotter(&self) -> &dyn Snapshotter {
        &*self.snapshots
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts an operation whose new content and snapshots GC must keep
    /// until the returned lease is dropped. A registry pull holds one from
    /// its first blob write until [`ImageStore::register_image`] returns.
    pub fn begin_operation(&self) -> Result<OperationLease> {
        let holder = unique("op");
        self.db
            .add_lease(&holder, &LeaseTarget::Content("*".into()))?;
        Ok(OperationLease {
            db: self.db.clone(),
            holder,
        })
    }

    // ---- resolution ----

    /// Resolves a name (`busybox`, `busybox:1`, `repo@sha256:…`), a full
    /// id (`sha256:…`) or a unique id prefix to an image id.
    pub fn resolve(&self, name_or_id: &str) -> Result<String> {
        self.db.read(|tx| resolve_in(tx, name_or_id))
    }

    /// The image row.
    pub fn image(&self, id: &str) -> Result<ImageRecord> {
        self.db
            .read(|tx| metadata::get_image(tx, id))?
            .ok_or_else(|| Error::ImageNotFound(id.to_string()))
    }

    /// The manifest and config of an image.
    pub fn read_image(&self, id: &str) -> Result<(Manifest, ImageConfig)> {
        let rec = self.image(id)?;
        let md = Digest::parse(&rec.manifest_digest)?;
        let (m, _) = self.read_manifest(&md)?;
        let cfg = self.read_config(&m)?;
        Ok((m, cfg))
    }

    /// Reads a manifest blob; an index is resolved to the manifest for the
    /// store's platform. Returns the manifest and its own digest.
    pub fn read_manifest(&self, digest: &Digest) -> Result<(Manifest, Digest)> {
        let mut digest = digest.clone();
        let mut media: Option<String> = None;
        for _ in 0..4 {
            let bytes = self.content.read_small(&digest, spec::MAX_METADATA_SIZE)?;
            match spec::parse_manifest(&bytes, media.as_deref(), &format!("manifest {digest}"))? {
                Parsed::Manifest(m) => return Ok((*m, digest)),
                Parsed::Index(idx) => {
                    let d = spec::select_platform(&idx, &self.opts.platform).ok_or_else(|| {
                        Error::NoMatchingPlatform {
                            index: digest.to_string(),
                            wanted: self.opts.platform.to_string(),
                        }
                    })?;
                    media = Some(d.media_type.clone());
                    digest = d.digest.clone();
                }
            }
        }
        Err(Error::malformed(
            format!("manifest {digest}"),
            "indexes nested too deeply",
        ))
    }

    fn read_config(&self, m: &Manifest) -> Result<ImageConfig> {
        let bytes = self
            .content
            .read_small(&m.config.digest, spec::MAX_METADATA_SIZE)?;
        spec::parse_config(
            &bytes,
            m.layers.len(),
            &format!("config {}", m.config.digest),
        )
    }

    // ---- registration ----

    /// Makes the image whose manifest (or index) blob is `manifest_digest`
    /// known, unpacking its layers into snapshots, and tags it `name`.
    /// All blobs must already be in the content store. Returns the image id.
    pub fn register_image(&self, manifest_digest: &Digest, name: Option<&str>) -> Result<String> {
        let tag = name.map(Reference::parse).transpose()?;
        let _op = self.begin_operation()?;
        let (manifest, own_digest) = self.read_manifest(manifest_digest)?;
        let config = self.read_config(&manifest)?;
        for l in &manifest.layers {
            if !self.content.has(&l.digest) {
                return Err(Error::BlobNotFound(l.digest.clone()));
            }
            let size = self.content.size(&l.digest)?;
            if size != l.size {
                return Err(Error::SizeMismatch {
                    what: format!("layer {}", l.digest),
                    expected: l.size,
                    actual: size,
                });
            }
        }
        let top = self.unpack(&manifest, &config)?;
        let id = manifest.config.digest.to_string();
        let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        // Record the digest the caller named (an index for a multi-platform
        // pull: that is the repo digest users know); reads follow it to the
        // platform's manifest.
        let media = if own_digest == *manifest_digest {
            manifest
                .media_type
                .clone()
                .unwrap_or_else(|| spec::OCI_MANIFEST.to_string())
        } else {
            let bytes = self
                .content
                .read_small(manifest_digest, spec::MAX_METADATA_SIZE)?;
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| spec::OCI_INDEX.to_string())
        };
        let rec = ImageRecord {
            id: id.clone(),
            manifest_digest: manifest_digest.to_string(),
            manifest_media_type: media,
            created: config.created.clone(),
            added: metadata::now(),
            size,
            chain_id: top,
        };
        self.db.write(|tx| {
            metadata::put_image(tx, &rec)?;
            if let Some(t) = &tag {
                metadata::set_tag(tx, &t.to_string(), &id)?;
            }
            Ok(())
        })?;
        Ok(id)
    }

    /// Ensures a committed snapshot exists for every layer prefix; returns
    /// the top chain id.
    fn unpack(&self, manifest: &Manifest, config: &ImageConfig) -> Result<Option<String>> {
        let mut parent: Option<String> = None;
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let chain = chain_id(parent.as_deref(), diff_id);
            if self.snapshots.stat(&chain).is_err() {
                self.extract(layer, diff_id, parent.as_deref(), &chain)?;
            }
            parent = Some(chain);
        }
        Ok(parent)
    }

    fn extract(
        &self,
        layer: &Descriptor,
        diff_id: &Digest,
        parent: Option<&str>,
        chain: &str,
    ) -> Result<()> {
        let key = unique("extract");
        self.snapshots.prepare(&key, parent)?;
        let applied = (|| {
            let (dir, whiteouts) = self.snapshots.apply_target(&key)?;
            let reader = self.content.reader(&layer.digest)?;
            let opts = ApplyOptions {
                whiteouts,
                rootless: self.opts.rootless,
                limits: self.opts.limits,
            };
            let stats = layer::apply(std::io::BufReader::new(reader), &dir, &opts).map_err(
                |e| match e {
                    Error::HostileEntry { entry, reason } => Error::HostileEntry {
                        entry,
                        reason: format!("{reason} (layer {})", layer.digest),
                    },
                    Error::Io { context, source } => Error::Io {
                        context: format!("layer {}: {context}", layer.digest),
                        source,
                    },
                    other => other,
                },
            )?;
            if stats.diff_id != *diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("uncompressed layer {} (diff id in config)", layer.digest),
                    expected: diff_id.clone(),
                    actual: stats.diff_id,
                });
            }
            Ok(())
        })();
        if let Err(e) = applied {
            let _ = self.snapshots.remove(&key);
            return Err(e);
        }
        match self.snapshots.commit(chain, &key) {
            Ok(()) => Ok(()),
            // Another process unpacked the same layer first: share theirs.
            Err(_) if self.snapshots.stat(chain).is_ok() => self.snapshots.remove(&key),
            Err(e) => {
                let _ = self.snapshots.remove(&key);
                Err(e)
            }
        }
    }

    /// Stores `config` and an OCI manifest over `layers` (blobs already in
    /// the content store) and registers the image, tagged `tag`.
    pub fn create_image(
        &self,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
        tag: Option<&str>,
    ) -> Result<String> {
        let _op = self.begin_operation()?;
        let cfg_bytes =
            serde_json::to_vec(config).map_err(|e| Error::malformed("new image config", e))?;
        let cfg_digest = self.content.write_blob(&cfg_bytes, None)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(spec::OCI_MANIFEST.to_string()),
            config: Descriptor::new(spec::OCI_CONFIG, cfg_digest, cfg_bytes.len() as u64),
            layers,
            annotations: None,
        };
        let m_bytes =
            serde_json::to_vec(&manifest).map_err(|e| Error::malformed("new manifest", e))?;
        let m_digest = self.content.write_blob(&m_bytes, None)?;
        self.register_image(&m_digest, tag)
    }

    /// Writes the diff of snapshot `key` as a gzip layer blob; returns its
    /// descriptor and diff id. Hold an [`ImageStore::begin_operation`] lease
    /// until the layer is part of an image, or GC may collect it.
    pub fn snapshot_layer(&self, key: &str) -> Result<(Descriptor, Digest)> {
        let w = self.content.writer(None)?;
        let mut gz = crate::pgzip::ParallelGzEncoder::new(w, flate2::Compression::default());
        let stats = self.snapshots.diff(key, &mut gz, &DiffOptions::default())?;
        let w = gz.finish().ctx(|| "finish gzip layer".into())?;
        let (digest, size) = w.commit()?;
        Ok((
            Descriptor::new(spec::OCI_LAYER_GZIP, digest, size),
            stats.diff_id,
        ))
    }

    /// `berth import`: a root filesystem tarball (plain, gzip or zstd)
    /// becomes a one-layer image. The layer is re-serialised
    /// deterministically, so equal content gives an equal layer digest.
    pub fn import_rootfs_tar<R: Read>(&self, reader: R, opts: &ImportOptions) -> Result<String> {
        let tag = opts.tag.as_deref().map(Reference::parse).transpose()?;
        let _op = self.begin_operation()?;
        let key = unique("import");
        self.snapshots.prepare(&key, None)?;
        let result = (|| {
            let (dir, whiteouts) = self.snapshots.apply_target(&key)?;
            let aopts = ApplyOptions {
                whiteouts,
                rootless: self.opts.rootless,
                limits: self.opts.limits,
            };
            layer::apply(reader, &dir, &aopts)?;
            self.snapshot_layer(&key)
        })();
        let (desc, diff_id) = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = self.snapshots.remove(&key);
                return Err(e);
            }
        };
        let chain = chain_id(None, &diff_id);
        if self.snapshots.stat(&chain).is_ok() || self.snapshots.commit(&chain, &key).is_err() {
            self.snapshots.remove(&key)?;
        }
        let created = opts
            .created
            .clone()
            .unwrap_or_else(|| rfc3339(metadata::now()));
        let mut cc = ContainerConfig::default();
        for c in &opts.changes {
            c.apply(&mut cc);
        }
        let config = ImageConfig {
            created: Some(created.clone()),
            architecture: self.opts.platform.architecture.clone(),
            os: self.opts.platform.os.clone(),
            config: Some(cc),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id],
            },
            history: vec![History {
                created: Some(created),
                created_by: Some("berth import".into()),
                comment: opts.message.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        self.create_image(&config, vec![desc], tag.map(|t| t.to_string()).as_deref())
    }

    // ---- queries ----

    /// All images, newest first.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let (images, mut tags, leases) = self.db.read(|tx| {
            let images = metadata::list_images(tx)?;
            let mut tags: HashMap<String, Vec<String>> = HashMap::new();
            for img in &images {
                tags.insert(img.id.clone(), metadata::tags_of(tx, &img.id)?);
            }
            Ok((images, tags, metadata::leases_of(tx, None)?))
        })?;
        let mut out = Vec::new();
        for img in images {
            let repo_tags = tags.remove(&img.id).unwrap_or_default();
            let containers = leases
                .iter()
                .filter(|(_, t)| *t == LeaseTarget::Image(img.id.clone()))
                .count();
            let labels = self
                .read_image(&img.id)
                .ok()
                .and_then(|(_, c)| c.config.and_then(|c| c.labels))
                .unwrap_or_default();
            out.push(ImageSummary {
                repo_digests: repo_digests(&repo_tags, &img.manifest_digest),
                id: img.id,
                repo_tags,
                created: img.created,
                size: img.size,
                containers,
                labels,
            });
        }
        Ok(out)
    }

    /// `berth images --filter …`: [`ImageStore::list`] narrowed by Docker
    /// filters (`dangling`, `label`, `before`, `since`, `reference`).
    pub fn list_filtered(&self, filters: &[&str]) -> Result<Vec<ImageSummary>> {
        let created_of = |r: &str| -> Result<i64> {
            let id = self.resolve(r)?;
            self.image(&id)?
                .created
                .as_deref()
                .and_then(crate::timefmt::parse_rfc3339)
                .ok_or_else(|| Error::malformed(format!("image {r}"), "has no created time"))
        };
        let parsed = filters
            .iter()
            .map(|f| crate::filter::ImageFilter::parse(f, &created_of))
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .list()?
            .into_iter()
            .filter(|i| crate::filter::matches(&parsed, i))
            .collect())
    }

    /// `image inspect`.
    pub fn inspect(&self, reference: &str) -> Result<ImageInspect> {
        let id = self.resolve(reference)?;
        let rec = self.image(&id)?;
        let (_, cfg) = self.read_image(&id)?;
        let repo_tags = self.db.read(|tx| metadata::tags_of(tx, &id))?;
        Ok(ImageInspect {
            repo_digests: repo_digests(&repo_tags, &rec.manifest_digest),
            id,
            repo_tags,
            created: cfg.created.clone(),
            author: cfg.author.clone(),
            comment: cfg.history.last().and_then(|h| h.comment.clone()),
            architecture: cfg.architecture.clone(),
            os: cfg.os.clone(),
            variant: cfg.variant.clone(),
            config: cfg.config.clone().unwrap_or_default(),
            root_fs: RootFsInspect {
                kind: cfg.rootfs.kind.clone(),
                layers: cfg
                    .rootfs
                    .diff_ids
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
            size: rec.size,
            manifest_digest: rec.manifest_digest,
            manifest_media_type: rec.manifest_media_type,
            chain_id: rec.chain_id,
        })
    }

    /// `berth history`, newest first.
    pub fn history(&self, reference: &str) -> Result<Vec<HistoryItem>> {
        let id = self.resolve(reference)?;
        let (m, cfg) = self.read_image(&id)?;
        let mut layers = m.layers.iter();
        let mut items: Vec<HistoryItem> = Vec::new();
        let history: Vec<History> = if cfg.history.is_empty() {
            m.layers.iter().map(|_| History::default()).collect()
        } else {
            cfg.history.clone()
        };
        for h in &history {
            let size = if h.empty_layer {
                0
            } else {
                layers.next().map_or(0, |l| l.size)
            };
            items.push(HistoryItem {
                id: "<missing>".into(),
                created: h.created.clone(),
                created_by: h.created_by.clone().unwrap_or_default(),
                size,
                comment: h.comment.clone().unwrap_or_default(),
                empty_layer: h.empty_layer,
            });
        }
        items.reverse();
        if let Some(first) = items.first_mut() {
            first.id = id;
        }
        Ok(items)
    }

    // ---- names ----

    /// `berth tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let t = Reference::parse(target)?;
        if t.digest.is_some() {
            return Err(Error::InvalidReference {
                reference: target.into(),
                reason: "cannot tag with a digest".into(),
            });
        }
        self.db.write(|tx| {
            let id = resolve_in(tx, source)?;
            metadata::set_tag(tx, &t.to_string(), &id)?;
            Ok(())
        })
    }

    /// Image ids used by containers, with the first container using each.
    fn users(tx: &rusqlite::Transaction<'_>) -> Result<HashMap<String, String>> {
        let mut out = HashMap::new();
        for (holder, t) in metadata::leases_of(tx, None)? {
            if let (LeaseTarget::Image(id), Some(c)) = (t, holder.strip_prefix("container:")) {
                out.entry(id).or_insert_with(|| c.to_string());
            }
        }
        Ok(out)
    }

    /// `berth rmi [-f] REF`, with Docker's rules: removing one of several
    /// tags only untags; removing the last tag or the id deletes the image
    /// unless a container uses it (an error, or with `force` an untag that
    /// keeps the image for the container); an id with several tags needs
    /// `force`. Frees what nothing else references.
    pub fn remove(&self, reference: &str, force: bool) -> Result<Vec<RemoveEvent>> {
        let events = self.db.write(|tx| {
            let by_tag = Reference::parse(reference)
                .ok()
                .filter(|r| r.digest.is_none())
                .map(|r| r.to_string())
                .filter(|t| metadata::get_tag(tx, t).ok().flatten().is_some());
            let id = resolve_in(tx, reference)?;
            let tags = metadata::tags_of(tx, &id)?;
            let user = Self::users(tx)?.remove(&id);
            let short = id.trim_start_matches("sha256:").chars().take(12).collect::<String>();
            let mut events = Vec::new();
            if let Some(tag) = by_tag {
                if tags.len() > 1 {
                    metadata::remove_tag(tx, &tag)?;
                    return Ok(vec![RemoveEvent::Untagged(tag)]);
                }
                if let (Some(c), false) = (&user, force) {
                    return Err(Error::Conflict(format!(
                        "unable to remove repository reference {reference:?} (must force) - container {c} is using its referenced image {short}"
                    )));
                }
                metadata::remove_tag(tx, &tag)?;
                events.push(RemoveEvent::Untagged(tag));
            } else {
                if tags.len() > 1 && !force {
                    return Err(Error::Conflict(format!(
                        "unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                    )));
                }
                if let (Some(c), false) = (&user, force) {
                    return Err(Error::Conflict(format!(
                        "unable to delete {short} (must be forced) - image is being used by container {c}"
                    )));
                }
                for t in tags {
                    metadata::remove_tag(tx, &t)?;
                    events.push(RemoveEvent::Untagged(t));
                }
            }
            if user.is_none() {
                metadata::delete_image(tx, &id)?;
                events.push(RemoveEvent::Deleted(id));
            }
            Ok(events)
        })?;
        self.gc()?;
        Ok(events)
    }

    /// `berth image prune [-a]`: removes dangling images (untagged and
    /// unused), or with `all` every image no container uses; then collects
    /// garbage.
    pub fn prune(&self, all: bool) -> Result<PruneReport> {
        let (untagged, deleted) = self.db.write(|tx| {
            let users = Self::users(tx)?;
            let mut untagged = Vec::new();
            let mut deleted = Vec::new();
            for img in metadata::list_images(tx)? {
                let tags = metadata::tags_of(tx, &img.id)?;
                if users.contains_key(&img.id) || (!all && !tags.is_empty()) {
                    continue;
                }
                untagged.extend(tags);
                metadata::delete_image(tx, &img.id)?;
                deleted.push(img.id);
            }
            Ok((untagged, deleted))
        })?;
        let gc = self.gc()?;
        Ok(PruneReport {
            untagged,
            deleted,
            gc,
        })
    }

    /// Mark-and-sweep: removes blobs and committed snapshots that no image,
    /// lease or active snapshot reaches. Content and snapshots created after
    /// the oldest live operation lease began are kept.
    pub fn gc(&self) -> Result<GcReport> {
        // Forget operations of processes that died.
        let stale: Vec<String> = self
            .db
            .leases()?
            .into_iter()
            .filter(|(h, _)| h.starts_with("op:") && !pid_alive(h))
            .map(|(h, _)| h)
            .collect();
        for h in stale {
            self.db.release(&h)?;
        }
        let (images, leases, protect_since) = self.db.read(|tx| {
            let since: Option<i64> = tx
                .query_row(
                    "SELECT MIN(created) FROM image_leases WHERE kind = 'content' AND target = '*'",
                    [],
                    |r| r.get(0),
                )
                .db("read operation leases")?;
            Ok((
                metadata::list_images(tx)?,
                metadata::leases_of(tx, None)?,
                since,
            ))
        })?;
        let snaps = self.snapshots.list()?;
        // Active extractions of dead processes are crash leftovers.
        for s in &snaps {
            if s.kind == Kind::Active && is_operation_key(&s.key) && !pid_alive(&s.key) {
                let _ = self.snapshots.remove(&s.key);
            }
        }
        let snaps = self.snapshots.list()?;
        let mut edges: HashMap<Node, Vec<Node>> = HashMap::new();
        let mut roots: Vec<Node> = Vec::new();
        for img in &images {
            let node = Node::Image(img.id.clone());
            roots.push(node.clone());
            let mut out = Vec::new();
            if let Ok(md) = Digest::parse(&img.manifest_digest) {
                out.push(Node::Blob(md.clone()));
                if let Ok((m, own)) = self.read_manifest(&md) {
                    out.push(Node::Blob(own));
                    out.push(Node::Blob(m.config.digest.clone()));
                    out.extend(m.layers.iter().map(|l| Node::Blob(l.digest.clone())));
                }
            }
            if let Ok(cfg) = Digest::parse(&img.id) {
                out.push(Node::Blob(cfg));
            }
            if let Some(c) = &img.chain_id {
                out.push(Node::Snapshot(c.clone()));
            }
            edges.insert(node, out);
        }
        let mut snap_nodes = Vec::new();
        for s in &snaps {
            if let Some(p) = &s.parent {
                edges
                    .entry(Node::Snapshot(s.key.clone()))
                    .or_default()
                    .push(Node::Snapshot(p.clone()));
            }
            if s.kind != Kind::Committed || protect_since.is_some_and(|t| s.created >= t - 2) {
                roots.push(Node::Snapshot(s.key.clone()));
            }
            snap_nodes.push(SnapshotNode {
                key: s.key.clone(),
                parent: s.parent.clone(),
            });
        }
        for (_, t) in &leases {
            match t {
                LeaseTarget::Image(i) => roots.push(Node::Image(i.clone())),
                LeaseTarget::Snapshot(k) => roots.push(Node::Snapshot(k.clone())),
                LeaseTarget::Content(c) => {
                    if let Ok(d) = Digest::parse(c) {
                        roots.push(Node::Blob(d));
                    }
                }
            }
        }
        let blobs = self.content.list()?;
        if let Some(t) = protect_since {
            for d in &blobs {
                let fresh = std::fs::metadata(self.content.blob_path(d))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .is_some_and(|m| m.as_secs() as i64 >= t - 2);
                if fresh {
                    roots.push(Node::Blob(d.clone()));
                }
            }
        }
        let marked = gc::mark(&edges, roots);
        let plan = gc::plan(&blobs, &snap_nodes, &marked);
        let mut report = GcReport::default();
        for key in plan.snapshots {
            // Another collector may have removed it, or a new child may have
            // appeared since the listing: skip it, the next run decides.
            if self.snapshots.remove(&key).is_ok() {
                report.snapshots_removed.push(key);
            }
        }
        for d in plan.blobs {
            report.bytes_freed += self.content.size(&d).unwrap_or(0);
            self.content.delete(&d)?;
            report.blobs_removed.push(d);
        }
        self.content
            .clean_ingest(std::time::Duration::from_secs(24 * 3600))?;
        Ok(report)
    }

    /// The startup / `berth system check` pass: forgets operations and
    /// extractions of dead processes, removes half-written ingest files and
    /// snapshot directories a crash left without a record, then collects
    /// garbage.
    pub fn recover(&self) -> Result<RecoverReport> {
        let ingest_removed = self
            .content
            .clean_dead_ingest(std::time::Duration::from_secs(24 * 3600))?;
        let orphan_snapshot_dirs = self
            .snapshots
            .clean_orphans(std::time::Duration::from_secs(60))?;
        let gc = self.gc()?;
        Ok(RecoverReport {
            ingest_removed,
            orphan_snapshot_dirs,
            gc,
        })
    }

    // ---- containers ----

    /// Prepares a container's writable rootfs on `image` and records that
    /// the container uses the image. Returns the mounts to perform (the
    /// engine mounts them with [`crate::snapshot::mount_all`]). Preparing
    /// again returns the existing mounts.
    pub fn prepare_container_rootfs(&self, image: &str, container_id: &str) -> Result<Vec<Mount>> {
        let id = self.resolve(image)?;
        let rec = self.image(&id)?;
        let holder = container_holder(container_id);
        let key = container_key(container_id);
        self.db.add_lease(&holder, &LeaseTarget::Image(id))?;
        self.db
            .add_lease(&holder, &LeaseTarget::Snapshot(key.clone()))?;
        if self.snapshots.stat(&key).is_ok() {
            return self.snapshots.mounts(&key);
        }
        self.snapshots
            .prepare(&key, rec.chain_id.as_deref())
            .inspect_err(|_| {
                let _ = self.db.release(&holder);
            })
    }

    /// The mounts of a prepared container rootfs.
    pub fn container_mounts(&self, container_id: &str) -> Result<Vec<Mount>> {
        self.snapshots.mounts(&container_key(container_id))
    }

    /// Removes a container's rootfs snapshot and its leases (the caller has
    /// unmounted it). The image stays until removed or pruned.
    pub fn release_container(&self, container_id: &str) -> Result<()> {
        let key = container_key(container_id);
        if self.snapshots.stat(&key).is_ok() {
            self.snapshots.remove(&key)?;
        }
        self.db.release(&container_holder(container_id))?;
        Ok(())
    }

    /// The image a container was created from.
    pub fn container_image(&self, container_id: &str) -> Result<String> {
        let holder = container_holder(container_id);
        self.db
            .read(|tx| metadata::leases_of(tx, Some(&holder)))?
            .into_iter()
            .find_map(|(_, t)| match t {
                LeaseTarget::Image(i) => Some(i),
                _ => None,
            })
            .ok_or_else(|| {
                Error::snapshot(
                    container_key(container_id),
                    "no image recorded for this container",
                )
            })
    }

    /// `berth diff`: what the container changed.
    pub fn container_changes(&self, container_id: &str) -> Result<Vec<layer::Change>> {
        self.snapshots.changes(&container_key(container_id))
    }

    /// `berth commit`: the container's changes become a new layer on top of
    /// its image (deletions as whiteouts), with `opts` applied to the
    /// config. Returns the new image id.
    pub fn commit_container(&self, container_id: &str, opts: &CommitOptions) -> Result<String> {
        let parent_id = self.container_image(container_id)?;
        self.derive_image(Some(&parent_id), Some(&container_key(container_id)), opts)
    }

    /// A new image on top of `parent` (None: from scratch) with, when
    /// `snapshot_key` is given, that active snapshot's changes as a new
    /// layer, and `opts` applied to the config and history (an empty-layer
    /// history entry without a snapshot). `commit` uses it; so can the
    /// Containerfile builder for RUN steps (a layer) and ENV/CMD/… steps
    /// (config only). Returns the new image id.
    pub fn derive_image(
        &self,
        parent: Option<&str>,
        snapshot_key: Option<&str>,
        opts: &CommitOptions,
    ) -> Result<String> {
        let tag = opts.tag.as_deref().map(Reference::parse).transpose()?;
        let _op = self.begin_operation()?;
        let (parent_layers, mut cfg) = match parent {
            Some(p) => {
                let (m, cfg) = self.read_image(&self.resolve(p)?)?;
                (m.layers, cfg)
            }
            None => (
                Vec::new(),
                ImageConfig {
                    architecture: self.opts.platform.architecture.clone(),
                    os: self.opts.platform.os.clone(),
                    rootfs: RootFs {
                        kind: "layers".into(),
                        diff_ids: Vec::new(),
                    },
                    ..Default::default()
                },
            ),
        };
        let mut layers: Vec<Descriptor> = parent_layers
            .iter()
            .map(|l| Descriptor {
                media_type: to_oci_layer_type(&l.media_type),
                ..l.clone()
            })
            .collect();
        let new_layer = snapshot_key.map(|k| self.snapshot_layer(k)).transpose()?;
        let created = rfc3339(metadata::now());
        cfg.created = Some(created.clone());
        if opts.author.is_some() {
            cfg.author = opts.author.clone();
        }
        cfg.history.push(History {
            created: Some(created),
            created_by: Some(
                opts.created_by
                    .clone()
                    .unwrap_or_else(|| "berth commit".into()),
            ),
            author: opts.author.clone(),
            comment: opts.message.clone(),
            empty_layer: new_layer.is_none(),
        });
        if let Some((desc, diff_id)) = new_layer {
            cfg.rootfs.diff_ids.push(diff_id);
            layers.push(desc);
        }
        let mut cc = cfg.config.take().unwrap_or_default();
        for c in &opts.changes {
            c.apply(&mut cc);
        }
        cfg.config = Some(cc);
        self.create_image(&cfg, layers, tag.map(|t| t.to_string()).as_deref())
    }

    /// Ingests `data` as a blob that must hash to `expected` (when given).
    pub fn ingest(&self, data: &[u8], expected: Option<Expected>) -> Result<Digest> {
        self.content.write_blob(data, expected)
    }

    /// Full tag names of an image.
    pub fn tags(&self, id: &str) -> Result<Vec<String>> {
        self.db.read(|tx| metadata::tags_of(tx, id))
    }
}

fn repo_digests(tags: &[String], manifest_digest: &str) -> Vec<String> {
    let mut repos: Vec<String> = tags
        .iter()
        .filter_map(|t| Reference::parse(t).ok())
        .map(|r| format!("{}@{manifest_digest}", r.repository()))
        .collect();
    repos.sort();
    repos.dedup();
    repos
}

/// Resolution inside a transaction (see [`ImageStore::resolve`]).
fn resolve_in(tx: &rusqlite::Transaction<'_>, input: &str) -> Result<String> {
    let not_found = || Error::ImageNotFound(input.to_string());
    if let Ok(d) = Digest::parse(input) {
        return metadata::get_image(tx, &d.to_string())?
            .map(|i| i.id)
            .ok_or_else(not_found);
    }
    if let Ok(r) = Reference::parse(input) {
        if r.digest.is_none() {
            if let Some(id) = metadata::get_tag(tx, &r.to_string())? {
                return Ok(id);
            }
        } else if let Some(d) = &r.digest {
            // name@digest: any image of that repository with that manifest
            // (or config) digest.
            for img in metadata::list_images(tx)? {
                if img.manifest_digest == d.to_string() || img.id == d.to_string() {
                    return Ok(img.id);
                }
            }
        }
    }
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    if !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        let ids = metadata::images_with_prefix(tx, &format!("sha256:{hex}"))?;
        match ids.len() {
            0 => {}
            1 => return Ok(ids.into_iter().next().expect("one id")),
            count => {
                return Err(Error::AmbiguousReference {
                    reference: input.to_string(),
                    count,
                });
            }
        }
    }
    Err(not_found())
}

/// The short form of a full tag name for display (`busybox:latest`).
pub fn familiar_name(full: &str) -> String {
    Reference::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| familiar_repository(full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_keys() {
        for k in [
            "extract:1:2",
            "import:1:2",
            "build-step:1:2",
            "build-view:9:1",
        ] {
            assert!(is_operation_key(k), "{k}");
        }
        for k in ["container:abc", "sha256:0123", "build:1:2"] {
            assert!(!is_operation_key(k), "{k}");
        }
    }
}
