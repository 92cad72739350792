//! berth-image: the image store (see ../../../shared/DESIGN.md).
//!
//! In containerd's shape: a [`content`] store of blobs by digest, the image
//! [`spec`] types, [`layer`] apply/diff, [`snapshot`] drivers (overlay, vfs),
//! SQLite [`metadata`] with references and leases, mark-and-sweep [`gc`],
//! [`archive`] load/save, and the [`ImageStore`] facade tying them together.

pub mod archive;
pub mod changes;
pub mod content;
pub mod digest;
pub mod error;
pub mod filter;
pub mod gc;
pub mod layer;
pub mod metadata;
pub mod reference;
pub mod snapshot;
pub mod spec;
mod store;
mod timefmt;

pub use archive::{ArchiveFormat, LoadedImage};
pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use store::{
    CommitOptions, HistoryItem, ImageInspect, ImageStore, ImageSummary, ImportOptions,
    OperationLease, PruneReport, RemoveEvent, RootFsInspect, StoreOptions, chain_id, container_key,
    familiar_name,
};
pub use timefmt::{parse_rfc3339, rfc3339};
