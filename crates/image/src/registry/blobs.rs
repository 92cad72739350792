//! The small interfaces the registry client needs from the content store,
//! and progress reporting. The store implements [`BlobSink`] (pull) and
//! [`BlobSource`] (push); the CLI implements [`Progress`] with progress bars.

use std::io::Read;

use super::error::RegistryError;
use super::reference::Reference;

/// Where pulled content goes. `write_blob` must verify that `data` has
/// `size` bytes and the sha256 `digest` and store it atomically: on any
/// error (including a read error from `data`) nothing may be stored.
pub trait BlobSink: Sync {
    fn has(&self, digest: &str) -> bool;
    fn write_blob(&self, digest: &str, size: u64, data: &mut dyn Read)
    -> Result<(), RegistryError>;
}

/// Where pushed content comes from.
pub trait BlobSource: Sync {
    /// Open a blob (or manifest) by digest; returns the stream and its size.
    fn open_blob(&self, digest: &str) -> Result<(Box<dyn Read + Send>, u64), RegistryError>;

    /// Repositories this blob is known to exist in (e.g. the image it was
    /// pulled from), so a push to the same registry can mount it instead of
    /// uploading it.
    fn mount_candidates(&self, _digest: &str) -> Vec<Reference> {
        Vec::new()
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Pull: downloaded and verified.
    Downloaded,
    /// Pull: the sink already had it. Push: the registry already had it.
    AlreadyPresent,
    /// Push: mounted from another repository of the same registry.
    Mounted,
    /// Push: uploaded.
    Uploaded,
}

/// Progress of blob transfers; called from worker threads.
pub trait Progress: Sync {
    /// A transfer of `total` bytes starts.
    fn start(&self, _digest: &str, _total: u64) {}
    /// `bytes` more bytes moved.
    fn advance(&self, _digest: &str, _bytes: u64) {}
    /// The blob is done.
    fn finish(&self, _digest: &str, _outcome: BlobOutcome) {}
}

/// Progress that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
