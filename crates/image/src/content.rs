//! The content store: blobs by digest under `<root>/content/blobs/<alg>/<hex>`.
//!
//! Ingest goes through a [`Writer`] that hashes while writing into
//! `<root>/content/ingest/<unique>`, checks size and digest, fsyncs and only
//! then renames the file into place, so a blob is either whole and verified
//! or absent (containerd's content store has the same shape).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Algorithm, Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

/// What a writer must receive: the digest and, when known, the size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub digest: Digest,
    pub size: Option<u64>,
}

impl From<&crate::spec::Descriptor> for Expected {
    fn from(d: &crate::spec::Descriptor) -> Self {
        Expected {
            digest: d.digest.clone(),
            size: Some(d.size),
        }
    }
}

/// A blob store keyed by digest.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating) the store under `<root>/content`.
    pub fn open(root: &Path) -> Result<Self> {
        let root = root.join("content");
        for dir in ["blobs/sha256", "blobs/sha512", "ingest"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        }
        Ok(ContentStore { root })
    }

    /// Where the blob for `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    /// True when the blob is present.
    pub fn has(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The blob's size in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(e).ctx(|| format!("stat blob {digest}")),
        }
    }

    /// Opens the blob for reading.
    pub fn reader(&self, digest: &Digest) -> Result<File> {
        match File::open(self.blob_path(digest)) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(Error::BlobNotFound(digest.clone()))
            }
            Err(e) => Err(e).ctx(|| format!("open blob {digest}")),
        }
    }

    /// Reads a whole (small) blob such as a manifest or config, refusing
    /// blobs larger than `limit` bytes.
    pub fn read_small(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let size = self.size(digest)?;
        if size > limit {
            return Err(Error::LimitExceeded {
                what: "metadata blob size",
                limit,
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.reader(digest)?
            .read_to_end(&mut buf)
            .ctx(|| format!("read blob {digest}"))?;
        Ok(buf)
    }

    /// Starts an ingest. With `expected`, the writer hashes with the expected
    /// algorithm and refuses anything that does not match; without it, the
    /// content is hashed with sha256 and stored under whatever it hashes to.
    pub fn writer(&self, expected: Option<Expected>) -> Result<Writer> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!(
            "{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.root.join("ingest").join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx(|| format!("create ingest file {}", path.display()))?;
        let algorithm = expected
            .as_ref()
            .map_or(Algorithm::Sha256, |e| e.digest.algorithm());
        Ok(Writer {
            store: self.clone(),
            inner: Some(HashingWriter::new(file, algorithm)),
            path,
            expected,
            committed: false,
        })
    }

    /// Writes `data` as one blob; returns its digest.
    pub fn write_blob(&self, data: &[u8], expected: Option<Expected>) -> Result<Digest> {
        let mut w = self.writer(expected)?;
        w.write_all(data).ctx(|| "write blob".to_string())?;
        Ok(w.commit()?.0)
    }

    /// Deletes a blob (missing blobs are fine).
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.blob_path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("delete blob {digest}")),
        }
    }

    /// Every blob present, in digest order.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(alg);
            for entry in fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))? {
                let entry = entry.ctx(|| format!("list {}", dir.display()))?;
                let name = entry.file_name();
                // Foreign files in the store are ignored rather than fatal.
                if let Ok(d) = Digest::parse(&format!("{alg}:{}", name.to_string_lossy())) {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes ingest files whose writer process is gone (names start with
    /// the writer's pid) or that are older than `age`.
    pub fn clean_dead_ingest(&self, age: std::time::Duration) -> Result<usize> {
        let dir = self.root.join("ingest");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let dead = name
                .split('-')
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|e| e > age);
            if (dead || old) && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes ingest files older than `age` (left by crashed writers).
    pub fn clean_ingest(&self, age: std::time::Duration) -> Result<usize> {
        let dir = self.root.join("ingest");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", dir.display()))?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|e| e > age);
            if old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// An in-progress ingest. Dropping it without [`Writer::commit`] removes the
/// partial file.
pub struct Writer {
    store: ContentStore,
    inner: Option<HashingWriter<File>>,
    path: PathBuf,
    expected: Option<Expected>,
    committed: bool,
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| io::Error::other("writer already committed"))?;
        if let Some(size) = self.expected.as_ref().and_then(|e| e.size) {
            // Refuse as soon as the stream outgrows its descriptor.
            if inner_written(inner) + buf.len() as u64 > size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob exceeds its expected size of {size} bytes"),
                ));
            }
        }
        inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

fn inner_written(w: &HashingWriter<File>) -> u64 {
    w.written()
}

impl Writer {
    /// Verifies size and digest, fsyncs and moves the blob into place.
    /// Returns the digest and size. Committing a blob that already exists is
    /// a no-op that still verifies the stream.
    pub fn commit(mut self) -> Result<(Digest, u64)> {
        let inner = self
            .inner
            .take()
            .ok_or_else(|| Error::Archive("writer already committed".into()))?;
        let (file, digest, size) = inner.finish();
        if let Some(exp) = &self.expected {
            if let Some(want) = exp.size
                && want != size
            {
                return Err(Error::SizeMismatch {
                    what: format!("blob {}", exp.digest),
                    expected: want,
                    actual: size,
                });
            }
            if exp.digest != digest {
                return Err(Error::DigestMismatch {
                    what: "blob".to_string(),
                    expected: exp.digest.clone(),
                    actual: digest,
                });
            }
        }
        file.sync_all()
            .ctx(|| format!("fsync ingest {}", self.path.display()))?;
        drop(file);
        let target = self.store.blob_path(&digest);
        if target.exists() {
            let _ = fs::remove_file(&self.path);
        } else {
            fs::rename(&self.path, &target).ctx(|| format!("move blob {digest} into place"))?;
            if let Some(parent) = target.parent() {
                File::open(parent)
                    .and_then(|d| d.sync_all())
                    .ctx(|| "fsync blob directory".to_string())?;
            }
        }
        self.committed = true;
        Ok((digest, size))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest_is_empty(store: &ContentStore) -> bool {
        fs::read_dir(store.root.join("ingest"))
            .unwrap()
            .next()
            .is_none()
    }

    #[test]
    fn write_read_and_dedupe() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = store.write_blob(b"hello", None).unwrap();
        assert_eq!(d, Digest::sha256_of(b"hello"));
        assert!(store.has(&d));
        assert_eq!(store.size(&d).unwrap(), 5);
        assert_eq!(store.read_small(&d, 100).unwrap(), b"hello");
        let again = store
            .write_blob(
                b"hello",
                Some(Expected {
                    digest: d.clone(),
                    size: Some(5),
                }),
            )
            .unwrap();
        assert_eq!(again, d);
        assert_eq!(store.list().unwrap(), vec![d.clone()]);
        assert!(ingest_is_empty(&store));
        store.delete(&d).unwrap();
        assert!(!store.has(&d));
        assert!(matches!(store.reader(&d), Err(Error::BlobNotFound(_))));
    }

    #[test]
    fn digest_mismatch_leaves_store_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let wrong = Digest::sha256_of(b"other");
        let err = store
            .write_blob(
                b"hello",
                Some(Expected {
                    digest: wrong.clone(),
                    size: None,
                }),
            )
            .unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&wrong.to_string()));
        assert!(store.list().unwrap().is_empty());
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn truncated_and_oversized_blobs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"hello world");
        let err = store
            .write_blob(
                b"hello",
                Some(Expected {
                    digest: d.clone(),
                    size: Some(11),
                }),
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::SizeMismatch {
                    expected: 11,
                    actual: 5,
                    ..
                }
            ),
            "{err}"
        );
        let mut w = store
            .writer(Some(Expected {
                digest: d,
                size: Some(3),
            }))
            .unwrap();
        assert!(w.write_all(b"hello").is_err());
        drop(w);
        assert!(store.list().unwrap().is_empty());
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn sha512_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let mut h = Algorithm::Sha512.hasher();
        h.update(b"abc");
        let d = h.finish();
        let got = store
            .write_blob(
                b"abc",
                Some(Expected {
                    digest: d.clone(),
                    size: Some(3),
                }),
            )
            .unwrap();
        assert_eq!(got, d);
        assert!(
            store
                .blob_path(&d)
                .to_string_lossy()
                .contains("blobs/sha512/")
        );
    }
}
