//! berth-image: the image store (see ../../../shared/DESIGN.md).
//!
//! In containerd's shape: a [`content`] store of blobs by digest, the image
//! [`spec`] types, [`layer`] apply/diff, [`snapshot`] drivers (overlay, vfs),
//! SQLite [`metadata`] with references and leases, mark-and-sweep [`gc`],
//! [`archive`] load/save, and the [`ImageStore`] facade tying them together.

pub mod content;
pub mod digest;
pub mod error;
pub mod layer;
pub mod metadata;
pub mod snapshot;
pub mod spec;

pub use digest::Digest;
pub use error::{Error, Result};
