//! OCI distribution-spec client: pull and push images to registries
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md>),
//! with anonymous, Basic and Bearer-token authentication, stored
//! credentials, OCI and Docker schema 2 manifests/indexes, verified and
//! parallel blob transfers, and cross-repository mounts.
//!
//! The client is blocking (ureq) and uses scoped std threads for parallel
//! blobs. It talks to the content store through [`BlobSink`] and
//! [`BlobSource`] so it does not depend on the store's implementation.

pub mod auth;
pub mod blobs;
pub mod client;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod reference;

pub use blobs::{BlobOutcome, BlobSink, BlobSource, NoProgress, Progress};
pub use client::{Client, ClientOptions, Transport, is_loopback, transports_for};
pub use credentials::{CredentialStore, Credentials};
pub use digest::{VerifyingReader, sha256_digest, validate_digest};
pub use error::RegistryError;
pub use manifest::{Descriptor, ImageIndex, ImageManifest, ManifestKind, Platform};
pub use pull::{PulledImage, ResolvedManifest};
pub use push::PushedImage;
pub use reference::Reference;
