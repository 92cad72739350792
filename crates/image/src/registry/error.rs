//! Errors of the registry client. Each names what was being done and to what
//! (registry, repository, digest) so the CLI can print it as is.

use std::path::PathBuf;

/// An error talking to a registry, verifying content or storing credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid image reference {reference:?}: {message}")]
    InvalidReference { reference: String, message: String },
    #[error("invalid digest {digest:?}: {message}")]
    InvalidDigest { digest: String, message: String },
    #[error(
        "blob {digest} failed verification: expected {expected_size} bytes with that digest, got {actual_size} bytes with digest {actual_digest}"
    )]
    DigestMismatch {
        digest: String,
        expected_size: u64,
        actual_size: u64,
        actual_digest: String,
    },
    #[error("blob {digest} was truncated: got {received} of {expected} bytes")]
    Truncated {
        digest: String,
        expected: u64,
        received: u64,
    },
    #[error("{context}: connecting to {url}: {message}")]
    Transport {
        context: String,
        url: String,
        message: String,
    },
    #[error("{context}: {url} answered HTTP {status}: {body}")]
    Status {
        context: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("{context}: authentication required by {registry} and {message}")]
    Unauthorized {
        context: String,
        registry: String,
        message: String,
    },
    #[error("manifest {reference} not found in {registry}")]
    ManifestNotFound { registry: String, reference: String },
    #[error(
        "{reference}: no manifest for platform {platform} in the image index (available: {available})"
    )]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{what}: unsupported media type {media_type:?}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("{what}: malformed JSON: {message}")]
    BadJson { what: String, message: String },
    #[error(
        "registry {registry}: HTTPS failed ({message}); plain HTTP is only used for localhost or with --tls-verify=false"
    )]
    InsecureNotAllowed { registry: String, message: String },
    #[error("authentication challenge from {registry}: {message}")]
    BadChallenge { registry: String, message: String },
    #[error("login to {registry} failed: {message}")]
    LoginFailed { registry: String, message: String },
    #[error("blob store: {digest}: {message}")]
    Store { digest: String, message: String },
    #[error("credentials file {path}: {message}")]
    Credentials { path: PathBuf, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
