//! The crate's error type: every variant names what was wrong (the digest,
//! the tar entry, the image reference) so a user can act on it.

use std::path::PathBuf;

use crate::digest::Digest;

/// Errors from the image store and its parts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest { input: String, reason: &'static str },
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0} is not in the content store")]
    BlobNotFound(Digest),
    #[error("malformed {what}: {reason}")]
    Malformed { what: String, reason: String },
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("no manifest for platform {wanted} in index {index}")]
    NoMatchingPlatform { index: String, wanted: String },
    #[error("refused layer entry {entry:?}: {reason}")]
    HostileEntry { entry: String, reason: String },
    #[error("layer exceeds the limit on {what} ({limit})")]
    LimitExceeded { what: &'static str, limit: u64 },
    #[error("no such image: {0}")]
    ImageNotFound(String),
    #[error("image reference {reference:?} is ambiguous: matches {count} images")]
    AmbiguousReference { reference: String, count: usize },
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("snapshot {key}: {reason}")]
    Snapshot { key: String, reason: String },
    #[error("mount {target}: {reason}")]
    Mount { target: PathBuf, reason: String },
    #[error("database: {context}: {source}")]
    Db {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("archive: {0}")]
    Archive(String),
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a context string to I/O errors.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: context(),
            source: e.into(),
        })
    }
}

/// Attaches a context string to SQLite errors.
pub trait DbContext<T> {
    fn db(self, context: &str) -> Result<T>;
}

impl<T> DbContext<T> for rusqlite::Result<T> {
    fn db(self, context: &str) -> Result<T> {
        self.map_err(|source| Error::Db {
            context: context.to_string(),
            source,
        })
    }
}

impl Error {
    /// A malformed-input error naming `what`.
    pub fn malformed(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// A refused tar entry.
    pub fn hostile(entry: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::HostileEntry {
            entry: entry.into(),
            reason: reason.into(),
        }
    }

    /// A snapshot error.
    pub fn snapshot(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Snapshot {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
