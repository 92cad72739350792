//! berth-image: the image store (see ../../../shared/DESIGN.md).
//!
//! In containerd's shape: a [`content`] store of blobs by digest, the image
//! [`spec`] types, [`layer`] apply/diff, [`snapshot`] drivers (overlay, vfs),
//! SQLite [`metadata`] with references and leases, mark-and-sweep [`gc`],
//! [`archive`] load/save, and the [`ImageStore`] facade tying them together.
//!
//! # On disk
//!
//! `<root>/content/blobs/<alg>/<hex>` (blobs), `<root>/content/ingest/`
//! (writes in progress), `<root>/snapshots/<id>/{fs,work}` and
//! `<root>/snapshots/l/<short>` (short links), `<root>/tmp/` (scratch), and
//! `image_*` tables in the engine's database file.
//!
//! # Policies
//!
//! * **Layer output is deterministic** ([`layer::write_diff`]): entries
//!   sorted by path, a directory before its contents; numeric uid/gid and
//!   mode/xattrs/device numbers from the files, empty user/group names;
//!   mtimes in whole seconds from the files (optionally clamped); whiteouts
//!   as empty 0600 files owned by 0:0 with mtime 0; gzip with no name and
//!   mtime 0. Archives ([`archive`]) use mode 0644, 0:0 and mtime 0.
//! * **Hostile layers are refused** ([`layer::apply`]): `..` components,
//!   parents that leave the snapshot through a symlink (absolute, or `..`
//!   above the root: resolved with openat2 `RESOLVE_BENEATH`), hard links
//!   to anything outside the layer, device nodes when rootless, layers with
//!   forged `trusted.overlay.*` xattrs (dropped), and the limits of
//!   [`layer::Limits`]: 1,000,000 entries, 64 GiB uncompressed, 4096-byte
//!   names, 256 levels deep. Leading `/` is taken relative to the root.
//! * **Bad input leaves the store unchanged**: blobs are verified before
//!   they become visible; a failed unpack removes its snapshot; stray blobs
//!   are garbage for the next [`ImageStore::gc`].

pub mod archive;
pub mod changes;
pub mod containerfile;
pub mod content;
pub mod digest;
pub mod error;
pub mod filter;
pub mod gc;
pub mod layer;
pub mod metadata;
pub mod pgzip;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod spec;
mod store;
mod timefmt;
pub mod transfer;

pub use archive::{ArchiveFormat, LoadedImage};
pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use store::{
    CommitOptions, HistoryItem, ImageInspect, ImageStore, ImageSummary, ImportOptions,
    OperationLease, PruneReport, RecoverReport, RemoveEvent, RootFsInspect, StoreOptions, chain_id,
    container_key, familiar_name,
};
pub use timefmt::{parse_rfc3339, rfc3339};
