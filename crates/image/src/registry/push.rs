//! `berth push`: upload every blob the manifest names that the registry
//! lacks (HEAD check first, cross-repository mount when the blob is known to
//! live in another repository of the same registry, else a monolithic PUT or
//! PATCH chunks), then PUT the manifest. For an index, every child manifest
//! is pushed by digest before the index itself.

use std::io::Read;

use super::auth::{percent_encode, repository_scope};
use super::blobs::{BlobOutcome, BlobSource, Progress};
use super::client::{Client, Method, Req, ReqBody, error_body, header_str};
use super::digest::{VerifyingReader, sha256_digest};
use super::error::RegistryError;
use super::manifest::{Descriptor, ImageManifest, ManifestKind, parse_manifest};
use super::pull::{ProgressReader, run_parallel};
use super::reference::Reference;

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// Digest of the manifest (or index) put at the tag.
    pub manifest_digest: String,
    pub media_type: String,
    /// Every blob and what happened to it.
    pub blobs: Vec<(String, BlobOutcome)>,
}

/// Resolve an upload `Location` header against the registry base URL.
pub fn resolve_location(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        format!("{base}/{location}")
    }
}

/// Append `key=value` (value percent-encoded) to a URL's query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", percent_encode(value))
}

/// Layers that registries must not receive (Windows foreign layers).
fn is_nondistributable(desc: &Descriptor) -> bool {
    desc.media_type.contains("nondistributable") || desc.media_type.contains("foreign")
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

impl Client {
    fn expect_status(
        resp: &mut ureq::http::Response<ureq::Body>,
        wanted: &[u16],
        context: &str,
        url: &str,
    ) -> Result<(), RegistryError> {
        let status = resp.status().as_u16();
        if wanted.contains(&status) {
            Ok(())
        } else {
            Err(RegistryError::Status {
                context: context.to_string(),
                url: url.to_string(),
                status,
                body: error_body(resp),
            })
        }
    }

    /// Start an upload session (or mount); returns `Err(outcome)`-like
    /// `Ok(None)` when the blob got mounted.
    fn start_upload(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        source: &dyn BlobSource,
        base: &str,
    ) -> Result<Option<String>, RegistryError> {
        let repo = &reference.repository;
        let uploads = format!("{base}/v2/{repo}/blobs/uploads/");
        for cand in source.mount_candidates(&desc.digest) {
            if cand.registry != reference.registry || &cand.repository == repo {
                continue;
            }
            let url = with_query(
                &with_query(&uploads, "mount", &desc.digest),
                "from",
                &cand.repository,
            );
            let scopes = [
                repository_scope(repo, "pull,push"),
                repository_scope(&cand.repository, "pull"),
            ];
            let context = format!("mounting {} from {}", desc.digest, cand.repository);
            let mut resp = self.call(
                &reference.registry,
                Req::new(Method::Post, url.clone()),
                &scopes,
                &context,
            )?;
            match resp.status().as_u16() {
                201 => return Ok(None),
                // The registry could not mount and opened a normal session.
                202 => {
                    if let Some(loc) = header_str(&resp, "location") {
                        return Ok(Some(resolve_location(base, &loc)));
                    }
                }
                _ => Self::expect_status(&mut resp, &[201, 202], &context, &url)?,
            }
        }
        let scopes = [repository_scope(repo, "pull,push")];
        let context = format!("starting upload of {} to {}", desc.digest, reference.name());
        let mut resp = self.call(
            &reference.registry,
            Req::new(Method::Post, uploads.clone()),
            &scopes,
            &context,
        )?;
        Self::expect_status(&mut resp, &[202], &context, &uploads)?;
        let loc = header_str(&resp, "location").ok_or_else(|| RegistryError::Status {
            context: context.clone(),
            url: uploads.clone(),
            status: 202,
            body: "no Location header in the upload response".into(),
        })?;
        Ok(Some(resolve_location(base, &loc)))
    }

    /// Make sure one blob exists in the target repository.
    fn upload_blob(
        &self,
        reference: &Reference,
        desc: &Descriptor,
        source: &dyn BlobSource,
        progress: &dyn Progress,
    ) -> Result<BlobOutcome, RegistryError> {
        let repo = &reference.repository;
        let base = self.base_url(&reference.registry)?;
        let scopes = [repository_scope(repo, "pull,push")];
        let blob_url = format!("{base}/v2/{repo}/blobs/{}", desc.digest);
        let context = format!("checking blob {} in {}", desc.digest, reference.name());
        let mut resp = self.call(
            &reference.registry,
            Req::new(Method::Head, blob_url.clone()),
            &scopes,
            &context,
        )?;
        match resp.status().as_u16() {
            200 => {
                progress.finish(&desc.digest, BlobOutcome::AlreadyPresent);
                return Ok(BlobOutcome::AlreadyPresent);
            }
            404 => {}
            _ => Self::expect_status(&mut resp, &[200, 404], &context, &blob_url)?,
        }
        let Some(mut location) = self.start_upload(reference, desc, source, &base)? else {
            progress.finish(&desc.digest, BlobOutcome::Mounted);
            return Ok(BlobOutcome::Mounted);
        };
        let (stream, size) = source.open_blob(&desc.digest)?;
        if size != desc.size {
            return Err(RegistryError::Store {
                digest: desc.digest.clone(),
                message: format!(
                    "the manifest says {} bytes, the store has {size}",
                    desc.size
                ),
            });
        }
        progress.start(&desc.digest, size);
        let mut reader = VerifyingReader::new(
            ProgressReader {
                inner: stream,
                digest: &desc.digest,
                progress,
            },
            &desc.digest,
            Some(size),
        );
        let context = format!("uploading blob {} to {}", desc.digest, reference.name());
        let chunk = self.options.chunk_size;
        let result = if chunk > 0 && size > chunk {
            self.upload_chunked(
                reference,
                &desc.digest,
                &mut reader,
                &mut location,
                chunk,
                &base,
                &context,
            )
        } else {
            let url = with_query(&location, "digest", &desc.digest);
            self.call(
                &reference.registry,
                Req::new(Method::Put, url.clone())
                    .header("Content-Type", "application/octet-stream")
                    .body(ReqBody::Stream(&mut reader, size)),
                &scopes,
                &context,
            )
            .and_then(|mut resp| Self::expect_status(&mut resp, &[201], &context, &url))
        };
        if let Some(failure) = reader.take_failure() {
            return Err(failure);
        }
        result?;
        progress.finish(&desc.digest, BlobOutcome::Uploaded);
        Ok(BlobOutcome::Uploaded)
    }

    #[allow(clippy::too_many_arguments)]
    fn upload_chunked(
        &self,
        reference: &Reference,
        digest: &str,
        reader: &mut dyn Read,
        location: &mut String,
        chunk: u64,
        base: &str,
        context: &str,
    ) -> Result<(), RegistryError> {
        let scopes = [repository_scope(&reference.repository, "pull,push")];
        let mut buf = vec![0u8; chunk as usize];
        let mut offset = 0u64;
        loop {
            let n = read_full(reader, &mut buf).map_err(|e| RegistryError::io(context, e))?;
            if n == 0 {
                break;
            }
            let url = location.clone();
            let mut resp = self.call(
                &reference.registry,
                Req::new(Method::Patch, url.clone())
                    .header("Content-Type", "application/octet-stream")
                    .header(
                        "Content-Range",
                        format!("{offset}-{}", offset + n as u64 - 1),
                    )
                    .body(ReqBody::Bytes(&buf[..n])),
                &scopes,
                context,
            )?;
            Self::expect_status(&mut resp, &[202], context, &url)?;
            if let Some(loc) = header_str(&resp, "location") {
                *location = resolve_location(base, &loc);
            }
            offset += n as u64;
            if (n as u64) < chunk {
                // Short read: the stream is at its end; one more read
                // lets the verifier check size and digest.
                let extra =
                    read_full(reader, &mut buf[..1]).map_err(|e| RegistryError::io(context, e))?;
                if extra != 0 {
                    return Err(RegistryError::io(
                        context,
                        std::io::Error::other("blob stream returned data after a short read"),
                    ));
                }
                break;
            }
        }
        // The final PUT carries only the digest.
        let url = with_query(location, "digest", digest);
        let mut resp = self.call(
            &reference.registry,
            Req::new(Method::Put, url.clone()),
            &scopes,
            context,
        )?;
        Self::expect_status(&mut resp, &[201], context, &url)
    }

    /// Push the blobs of one image manifest.
    fn push_blobs(
        &self,
        reference: &Reference,
        manifest: &ImageManifest,
        source: &dyn BlobSource,
        progress: &dyn Progress,
    ) -> Result<Vec<(String, BlobOutcome)>, RegistryError> {
        let mut blobs: Vec<Descriptor> = vec![manifest.config.clone()];
        blobs.extend(
            manifest
                .layers
                .iter()
                .filter(|d| !is_nondistributable(d))
                .cloned(),
        );
        let outcomes = std::sync::Mutex::new(Vec::new());
        run_parallel(&blobs, self.options.max_parallel, |d| {
            let o = self.upload_blob(reference, d, source, progress)?;
            outcomes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((d.digest.clone(), o));
            Ok(())
        })?;
        let mut out = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn put_manifest(
        &self,
        reference: &Reference,
        manifest_ref: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<String, RegistryError> {
        let base = self.base_url(&reference.registry)?;
        let url = format!(
            "{base}/v2/{}/manifests/{manifest_ref}",
            reference.repository
        );
        let context = format!("putting manifest {}", reference.with_ref(manifest_ref));
        let scopes = [repository_scope(&reference.repository, "pull,push")];
        let mut resp = self.call(
            &reference.registry,
            Req::new(Method::Put, url.clone())
                .header("Content-Type", media_type)
                .body(ReqBody::Bytes(bytes)),
            &scopes,
            &context,
        )?;
        Self::expect_status(&mut resp, &[201], &context, &url)?;
        let digest = sha256_digest(bytes);
        if let Some(claimed) = header_str(&resp, "docker-content-digest")
            && claimed != digest
        {
            return Err(RegistryError::DigestMismatch {
                digest,
                expected_size: bytes.len() as u64,
                actual_size: bytes.len() as u64,
                actual_digest: format!("{claimed} (as computed by the registry)"),
            });
        }
        Ok(digest)
    }

    /// Push the image whose manifest (or index) is `manifest_bytes` to
    /// `reference`; blobs (and, for an index, child manifests) come from
    /// `source`.
    pub fn push(
        &self,
        reference: &Reference,
        manifest_bytes: &[u8],
        source: &dyn BlobSource,
        progress: &dyn Progress,
    ) -> Result<PushedImage, RegistryError> {
        let what = format!("manifest for {reference}");
        let (kind, media_type) = parse_manifest(manifest_bytes, None, &what)?;
        let digest = sha256_digest(manifest_bytes);
        if let Some(pinned) = &reference.digest
            && *pinned != digest
        {
            return Err(RegistryError::DigestMismatch {
                digest: pinned.clone(),
                expected_size: manifest_bytes.len() as u64,
                actual_size: manifest_bytes.len() as u64,
                actual_digest: digest,
            });
        }
        let target = reference.tag.clone().unwrap_or_else(|| digest.clone());
        let blobs = match kind {
            ManifestKind::Image(m) => self.push_blobs(reference, &m, source, progress)?,
            ManifestKind::Index(idx) => {
                let mut all = Vec::new();
                for child in &idx.manifests {
                    let (mut stream, size) = source.open_blob(&child.digest)?;
                    let mut bytes = Vec::new();
                    VerifyingReader::new(&mut stream, &child.digest, Some(size.min(child.size)))
                        .read_to_end(&mut bytes)
                        .map_err(|e| {
                            RegistryError::io(format!("reading manifest {}", child.digest), e)
                        })?;
                    let (ckind, ctype) = parse_manifest(
                        &bytes,
                        Some(&child.media_type),
                        &format!("{what} ({})", child.digest),
                    )?;
                    let ManifestKind::Image(m) = ckind else {
                        return Err(RegistryError::UnsupportedMediaType {
                            what: format!("{what} ({})", child.digest),
                            media_type: "nested index".into(),
                        });
                    };
                    all.extend(self.push_blobs(reference, &m, source, progress)?);
                    self.put_manifest(reference, &child.digest, &bytes, &ctype)?;
                }
                all
            }
        };
        let manifest_digest = self.put_manifest(reference, &target, manifest_bytes, &media_type)?;
        Ok(PushedImage {
            manifest_digest,
            media_type,
            blobs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_resolution() {
        let base = "http://127.0.0.1:5000";
        let cases: &[(&str, &str)] = &[
            (
                "/v2/r/blobs/uploads/u?_state=x",
                "http://127.0.0.1:5000/v2/r/blobs/uploads/u?_state=x",
            ),
            (
                "https://other/v2/r/blobs/uploads/u",
                "https://other/v2/r/blobs/uploads/u",
            ),
            ("v2/r/u", "http://127.0.0.1:5000/v2/r/u"),
        ];
        for (loc, want) in cases {
            assert_eq!(resolve_location(base, loc), *want);
        }
    }

    #[test]
    fn query_appending() {
        assert_eq!(
            with_query("http://h/u", "digest", "sha256:ab"),
            "http://h/u?digest=sha256%3Aab"
        );
        assert_eq!(
            with_query("http://h/u?s=1", "from", "a/b"),
            "http://h/u?s=1&from=a%2Fb"
        );
    }

    #[test]
    fn nondistributable_layers_are_skipped() {
        let d = |mt: &str| Descriptor {
            media_type: mt.into(),
            digest: "sha256:00".into(),
            size: 0,
            platform: None,
            urls: None,
            annotations: None,
        };
        assert!(is_nondistributable(&d(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        )));
        assert!(is_nondistributable(&d(
            "application/vnd.oci.image.layer.nondistributable.v1.tar"
        )));
        assert!(!is_nondistributable(&d(
            "application/vnd.oci.image.layer.v1.tar+gzip"
        )));
    }
}
