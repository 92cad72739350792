//! `berth pull`: fetch a manifest (choosing the configured platform from an
//! index), verify everything against its digest, download layers in
//! parallel into the sink, and store config and manifests last, so that a
//! failed pull never leaves an image behind: verified layers that did arrive
//! stay (content-addressed, so a retry skips them), a bad blob never lands.

use std::io::Read;
use std::sync::Mutex;

use super::auth::repository_scope;
use super::blobs::{BlobOutcome, BlobSink, Progress};
use super::client::{Client, Method, Req, error_body, header_str};
use super::digest::{VerifyingReader, sha256_digest};
use super::error::RegistryError;
use super::manifest::{
    Descriptor, ManifestKind, accept_header, parse_manifest, platforms_of, select_platform,
};
use super::reference::Reference;

/// Largest manifest we accept (the distribution spec suggests 4 MiB).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// What a pull produced. Everything listed is in the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The reference pulled (as given).
    pub reference: Reference,
    /// Digest of the image manifest (the platform's, when the tag named an index).
    pub manifest_digest: String,
    pub manifest_bytes: Vec<u8>,
    /// Media type of the image manifest.
    pub media_type: String,
    /// The index / manifest list the manifest was chosen from, if any.
    pub index_digest: Option<String>,
    pub config: Descriptor,
    /// The image config JSON (also in the sink).
    pub config_bytes: Vec<u8>,
    pub layers: Vec<Descriptor>,
}

/// A manifest (or index) as the registry serves it for a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedManifest {
    /// Verified sha256 digest of `bytes`.
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl PulledImage {
    pub fn config_digest(&self) -> &str {
        &self.config.digest
    }
}

/// Reads through, reporting progress.
pub(crate) struct ProgressReader<'a, R> {
    pub(crate) inner: R,
    pub(crate) digest: &'a str,
    pub(crate) progress: &'a dyn Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.progress.advance(self.digest, n as u64);
        }
        Ok(n)
    }
}

/// Run `job` over `items` on up to `parallel` threads; the first error stops
/// the hand-out of further items and is returned.
pub(crate) fn run_parallel<T: Sync, F>(
    items: &[T],
    parallel: usize,
    job: F,
) -> Result<(), RegistryError>
where
    F: Fn(&T) -> Result<(), RegistryError> + Sync,
{
    let next = Mutex::new(0usize);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    let workers = parallel.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        let failed = first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .is_some();
                        if *n >= items.len() || failed {
                            return;
                        }
                        *n += 1;
                        *n - 1
                    };
                    if let Err(e) = job(&items[i]) {
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

impl Client {
    /// Fetch manifest bytes for `reference` at `manifest_ref` (tag or
    /// digest); returns bytes, Content-Type and the verified digest.
    fn fetch_manifest(
        &self,
        reference: &Reference,
        manifest_ref: &str,
        expected: Option<&Descriptor>,
    ) -> Result<(Vec<u8>, Option<String>, String), RegistryError> {
        let base = self.base_url(&reference.registry)?;
        let url = format!(
            "{base}/v2/{}/manifests/{manifest_ref}",
            reference.repository
        );
        let context = format!("fetching manifest {}", reference.with_ref(manifest_ref));
        let scopes = [repository_scope(&reference.repository, "pull")];
        let req = Req::new(Method::Get, url.clone()).header("Accept", accept_header());
        let mut resp = self.call(&reference.registry, req, &scopes, &context)?;
        match resp.status().as_u16() {
            200 => {}
            404 => {
                return Err(RegistryError::ManifestNotFound {
                    registry: reference.registry.clone(),
                    reference: format!("{}:{manifest_ref}", reference.repository),
                });
            }
            status => {
                return Err(RegistryError::Status {
                    context,
                    url,
                    status,
                    body: error_body(&mut resp),
                });
            }
        }
        let content_type = header_str(&resp, "content-type");
        let header_digest = header_str(&resp, "docker-content-digest");
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| RegistryError::Transport {
                context: context.clone(),
                url: url.clone(),
                message: e.to_string(),
            })?;
        let actual = sha256_digest(&bytes);
        // The digest to check against: a descriptor's, the pinned one, or
        // the one the registry claims for a tag.
        let wanted = expected
            .map(|d| d.digest.clone())
            .or_else(|| {
                manifest_ref
                    .starts_with("sha256:")
                    .then(|| manifest_ref.to_string())
            })
            .or(header_digest.filter(|d| d.starts_with("sha256:")));
        let expected_size = expected.map_or(bytes.len() as u64, |d| d.size);
        if let Some(w) = wanted
            && (w != actual || expected_size != bytes.len() as u64)
        {
            return Err(RegistryError::DigestMismatch {
                digest: w,
                expected_size,
                actual_size: bytes.len() as u64,
                actual_digest: actual,
            });
        }
        Ok((bytes, content_type, actual))
    }

    /// Stream one blob from the registry into the sink, verified.
    fn download_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<BlobOutcome, RegistryError> {
        if sink.has(&desc.digest) {
            progress.finish(&desc.digest, BlobOutcome::AlreadyPresent);
            return Ok(BlobOutcome::AlreadyPresent);
        }
        let base = self.base_url(&reference.registry)?;
        let url = format!("{base}/v2/{}/blobs/{}", reference.repository, desc.digest);
        let context = format!("downloading blob {} of {}", desc.digest, reference);
        let scopes = [repository_scope(&reference.repository, "pull")];
        let req = Req::new(Method::Get, url.clone());
        let mut resp = self.call(&reference.registry, req, &scopes, &context)?;
        if resp.status().as_u16() != 200 {
            return Err(RegistryError::Status {
                context,
                url,
                status: resp.status().as_u16(),
                body: error_body(&mut resp),
            });
        }
        progress.start(&desc.digest, desc.size);
        let body = resp.into_body().into_reader();
        let mut reader = VerifyingReader::new(
            ProgressReader {
                inner: body,
                digest: &desc.digest,
                progress,
            },
            &desc.digest,
            Some(desc.size),
        );
        match sink.write_blob(&desc.digest, desc.size, &mut reader) {
            Ok(()) => {
                progress.finish(&desc.digest, BlobOutcome::Downloaded);
                Ok(BlobOutcome::Downloaded)
            }
            Err(e) => Err(match reader.take_failure() {
                Some(verify) => verify,
                None if reader.bytes_read() < desc.size => RegistryError::Truncated {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    received: reader.bytes_read(),
                },
                None => e,
            }),
        }
    }

    /// Store bytes already verified in memory.
    fn store_bytes(sink: &dyn BlobSink, digest: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        if sink.has(digest) {
            return Ok(());
        }
        let mut r = bytes;
        sink.write_blob(digest, bytes.len() as u64, &mut r)
    }

    /// Fetch and verify the manifest or index `reference` names, without
    /// pulling anything else (`berth pull` up-to-date checks, inspect).
    pub fn resolve(&self, reference: &Reference) -> Result<ResolvedManifest, RegistryError> {
        let (bytes, content_type, digest) =
            self.fetch_manifest(reference, reference.manifest_ref(), None)?;
        let (_, media_type) =
            parse_manifest(&bytes, content_type.as_deref(), &reference.to_string())?;
        Ok(ResolvedManifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// Pull `reference` into `sink`.
    pub fn pull(
        &self,
        reference: &Reference,
        sink: &dyn BlobSink,
        progress: &dyn Progress,
    ) -> Result<PulledImage, RegistryError> {
        let (bytes, content_type, digest) =
            self.fetch_manifest(reference, reference.manifest_ref(), None)?;
        let what = reference.to_string();
        let (kind, media_type) = parse_manifest(&bytes, content_type.as_deref(), &what)?;
        let (index, manifest_bytes, manifest_digest, media_type, manifest) = match kind {
            ManifestKind::Image(m) => (None, bytes, digest, media_type, m),
            ManifestKind::Index(idx) => {
                let platform = match &self.options.variant {
                    Some(v) => format!("{}/{}/{v}", self.options.os, self.options.architecture),
                    None => format!("{}/{}", self.options.os, self.options.architecture),
                };
                let chosen = select_platform(
                    &idx,
                    &self.options.os,
                    &self.options.architecture,
                    self.options.variant.as_deref(),
                )
                .ok_or_else(|| RegistryError::NoMatchingPlatform {
                    reference: what.clone(),
                    platform,
                    available: platforms_of(&idx),
                })?
                .clone();
                let (mbytes, mct, mdigest) =
                    self.fetch_manifest(reference, &chosen.digest, Some(&chosen))?;
                let (mkind, mtype) = parse_manifest(
                    &mbytes,
                    mct.as_deref().or(Some(chosen.media_type.as_str())),
                    &format!("{what} ({})", chosen.digest),
                )?;
                let ManifestKind::Image(m) = mkind else {
                    return Err(RegistryError::UnsupportedMediaType {
                        what: format!("{what} ({})", chosen.digest),
                        media_type: "nested index".into(),
                    });
                };
                (Some((digest, bytes)), mbytes, mdigest, mtype, m)
            }
        };
        // Config: small, fetched into memory through the same verified path.
        let config = manifest.config.clone();
        let config_bytes = {
            let mem = MemorySink::default();
            self.download_blob(reference, &config, &mem, progress)?;
            mem.into_bytes()
        };
        let layers: Vec<Descriptor> = manifest.layers.clone();
        run_parallel(&layers, self.options.max_parallel, |layer| {
            self.download_blob(reference, layer, sink, progress)
                .map(|_| ())
        })?;
        Self::store_bytes(sink, &config.digest, &config_bytes)?;
        Self::store_bytes(sink, &manifest_digest, &manifest_bytes)?;
        let index_digest = match index {
            Some((d, b)) => {
                Self::store_bytes(sink, &d, &b)?;
                Some(d)
            }
            None => None,
        };
        Ok(PulledImage {
            reference: reference.clone(),
            manifest_digest,
            manifest_bytes,
            media_type,
            index_digest,
            config,
            config_bytes,
            layers,
        })
    }
}

/// A one-blob in-memory sink for the config (verified by the reader).
#[derive(Default)]
struct MemorySink(Mutex<Vec<u8>>);

impl MemorySink {
    fn into_bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl BlobSink for MemorySink {
    fn has(&self, _digest: &str) -> bool {
        false
    }

    fn write_blob(
        &self,
        digest: &str,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), RegistryError> {
        let mut buf = Vec::with_capacity(size.min(MAX_MANIFEST) as usize);
        data.take(MAX_MANIFEST + 1)
            .read_to_end(&mut buf)
            .map_err(|e| RegistryError::Store {
                digest: digest.to_string(),
                message: e.to_string(),
            })?;
        if buf.len() as u64 > MAX_MANIFEST {
            return Err(RegistryError::Store {
                digest: digest.to_string(),
                message: format!("config larger than {MAX_MANIFEST} bytes"),
            });
        }
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = buf;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn run_parallel_runs_everything_and_reports_first_error() {
        let items: Vec<usize> = (0..20).collect();
        let count = AtomicUsize::new(0);
        run_parallel(&items, 4, |_| {
            count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(count.load(Ordering::Relaxed), 20);
        let err = run_parallel(&items, 1, |i| {
            if *i == 3 {
                Err(RegistryError::Store {
                    digest: format!("d{i}"),
                    message: "boom".into(),
                })
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("d3"));
        run_parallel::<usize, _>(&[], 3, |_| Ok(())).unwrap();
    }
}
