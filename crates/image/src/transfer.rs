//! The store side of registry transfers: [`BlobSink`] and [`BlobSource`]
//! over the [`ImageStore`]'s content store (verified ingest: a blob becomes
//! visible only after its size and digest check out), and
//! [`ImageStore::pull`] / [`ImageStore::push`] that drive the registry
//! [`Client`] and register a pulled image.
//!
//! Resumable-safe: every verified blob of an interrupted pull stays in the
//! content store (protected by an operation lease while the pull runs), so a
//! retry finds it with [`BlobSink::has`] and skips it; a blob that failed
//! verification never lands.

use std::collections::HashMap;
use std::io::Read;

use crate::content::Expected;
use crate::digest::Digest;
use crate::error::Error;
use crate::registry::{self, BlobSink, BlobSource, Client, Progress, PushedImage, RegistryError};
use crate::spec;
use crate::store::ImageStore;

/// A failed pull or push: the registry side or the store side.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] Error),
}

/// What [`ImageStore::pull`] brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// The image id (config digest).
    pub id: String,
    /// The digest recorded as the repo digest (the index's for a
    /// multi-platform tag, the manifest's otherwise).
    pub digest: String,
    /// The full name it was tagged with.
    pub name: String,
}

fn store_err(context: &str, e: Error) -> RegistryError {
    RegistryError::io(context.to_string(), std::io::Error::other(e.to_string()))
}

/// Pulled blobs go into the content store through a verifying writer.
pub struct StoreSink<'a> {
    store: &'a ImageStore,
}

impl<'a> StoreSink<'a> {
    pub fn new(store: &'a ImageStore) -> Self {
        StoreSink { store }
    }
}

impl BlobSink for StoreSink<'_> {
    fn has(&self, digest: &str) -> bool {
        Digest::parse(digest).is_ok_and(|d| self.store.content().has(&d))
    }

    fn write_blob(
        &self,
        digest: &str,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), RegistryError> {
        let context = format!("storing blob {digest}");
        let d = Digest::parse(digest).map_err(|e| store_err(&context, e))?;
        let mut w = self
            .store
            .content()
            .writer(Some(Expected {
                digest: d,
                size: Some(size),
            }))
            .map_err(|e| store_err(&context, e))?;
        // A read error (including the verifying reader's digest check)
        // drops the writer, which removes the partial ingest file.
        std::io::copy(data, &mut w).map_err(|e| RegistryError::io(context.clone(), e))?;
        w.commit().map_err(|e| store_err(&context, e))?;
        Ok(())
    }
}

/// Pushed blobs come from the content store; blobs that other tagged images
/// of the same registry contain are offered for cross-repository mounts.
pub struct StoreSource<'a> {
    store: &'a ImageStore,
    known: HashMap<String, Vec<registry::Reference>>,
}

impl<'a> StoreSource<'a> {
    /// A source for pushing to `target`'s registry.
    pub fn new(store: &'a ImageStore, target: &registry::Reference) -> Result<Self, Error> {
        let mut known: HashMap<String, Vec<registry::Reference>> = HashMap::new();
        for img in store.list()? {
            let Ok((m, _)) = store.read_image(&img.id) else {
                continue;
            };
            for tag in &img.repo_tags {
                let Ok(r) = registry::Reference::parse(tag) else {
                    continue;
                };
                if r.registry != target.registry || r.repository == target.repository {
                    continue;
                }
                for l in &m.layers {
                    let list = known.entry(l.digest.to_string()).or_default();
                    if !list.contains(&r) {
                        list.push(r.clone());
                    }
                }
            }
        }
        Ok(StoreSource { store, known })
    }
}

impl BlobSource for StoreSource<'_> {
    fn open_blob(&self, digest: &str) -> Result<(Box<dyn Read + Send>, u64), RegistryError> {
        let context = format!("reading blob {digest}");
        let d = Digest::parse(digest).map_err(|e| store_err(&context, e))?;
        let size = self
            .store
            .content()
            .size(&d)
            .map_err(|e| store_err(&context, e))?;
        let f = self
            .store
            .content()
            .reader(&d)
            .map_err(|e| store_err(&context, e))?;
        Ok((Box::new(std::io::BufReader::new(f)), size))
    }

    fn mount_candidates(&self, digest: &str) -> Vec<registry::Reference> {
        self.known.get(digest).cloned().unwrap_or_default()
    }
}

impl ImageStore {
    /// `berth pull`: fetches `reference` with `client` into the content
    /// store and registers it under its full name.
    pub fn pull(
        &self,
        client: &Client,
        reference: &str,
        progress: &dyn Progress,
    ) -> Result<PullOutcome, TransferError> {
        let r = registry::Reference::parse(reference)?;
        let name = match &r.digest {
            // A digest pull stays untagged unless a tag was given too.
            Some(_) if r.tag.is_none() => None,
            _ => Some(crate::Reference::parse(&r.to_string())?.to_string()),
        };
        let _op = self.begin_operation()?;
        let pulled = client.pull(&r, &StoreSink::new(self), progress)?;
        let digest = pulled
            .index_digest
            .clone()
            .unwrap_or_else(|| pulled.manifest_digest.clone());
        let id = self.register_image(&Digest::parse(&digest)?, name.as_deref())?;
        Ok(PullOutcome {
            id,
            digest,
            name: name.unwrap_or_else(|| r.to_string()),
        })
    }

    /// `berth push`: uploads image `source` (a name or id in the store) to
    /// registry reference `target`. The platform manifest is pushed (an
    /// index pulled for one platform lacks the others' blobs).
    pub fn push(
        &self,
        client: &Client,
        source: &str,
        target: &str,
        progress: &dyn Progress,
    ) -> Result<PushedImage, TransferError> {
        let r = registry::Reference::parse(target)?;
        let id = self.resolve(source)?;
        let rec = self.image(&id)?;
        let (_, own) = self.read_manifest(&Digest::parse(&rec.manifest_digest)?)?;
        let bytes = self.content().read_small(&own, spec::MAX_METADATA_SIZE)?;
        let src = StoreSource::new(self, &r)?;
        Ok(client.push(&r, &bytes, &src, progress)?)
    }
}
