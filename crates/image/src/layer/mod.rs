//! Layer apply and diff: OCI layer tarballs ⇄ snapshot directories.
//!
//! * [`apply`] unpacks a (gzip, zstd or plain; sniffed by magic) layer into a
//!   directory, converting whiteouts to the snapshot's form, and refuses
//!   hostile entries (see [`ApplyOptions`] for the limits).
//! * [`write_diff`] turns an overlay upper dir, or a pair of directories, into a
//!   deterministic layer tar with OCI whiteouts.

mod apply;
mod diff;
pub(crate) mod fsops;
pub mod path;

pub use apply::apply;
pub use diff::{Change, ChangeKind, DiffOptions, DiffSource, changes, write_diff};

use std::io::{self, BufRead, BufReader, Read};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// How whiteouts are represented in the target directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// overlayfs form: a whiteout is a 0:0 character device, an opaque
    /// directory carries `trusted.overlay.opaque=y` (Documentation/filesystems/overlayfs.rst).
    Overlay,
    /// Full-copy snapshots (vfs): whiteouts delete, opaque markers empty the
    /// directory of everything lower layers put there.
    Delete,
}

/// Limits that make a tar bomb fail cleanly instead of filling the disk or
/// the inode table. The defaults fit any real image (Docker Hub's largest
/// common images have well under 200k files per layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries per layer (default 1,000,000).
    pub max_entries: u64,
    /// Uncompressed tar bytes per layer (default 64 GiB).
    pub max_bytes: u64,
    /// Bytes in one entry name (default 4096, PATH_MAX).
    pub max_path_len: usize,
    /// Directory depth of one entry (default 256).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1_000_000,
            max_bytes: 64 << 30,
            max_path_len: 4096,
            max_depth: 256,
        }
    }
}

/// Options of [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
    /// Running without root: device nodes are refused with an error and
    /// ownership is not changed.
    pub rootless: bool,
    pub limits: Limits,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            whiteouts: WhiteoutMode::Delete,
            rootless: false,
            limits: Limits::default(),
        }
    }
}

/// What [`apply`] or [`write_diff`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffStats {
    /// sha256 of the uncompressed tar stream (the layer's diff id).
    pub diff_id: Digest,
    /// Uncompressed tar size in bytes.
    pub tar_size: u64,
    /// Number of tar entries (whiteouts included).
    pub entries: u64,
}

/// Wraps `reader` in the decompressor its magic bytes call for: gzip
/// (`1f 8b`), zstd (`28 b5 2f fd`) or none.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let head = buf.fill_buf().map_err(|e| Error::Io {
        context: "read layer".into(),
        source: e,
    })?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buf)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let dec = zstd::stream::read::Decoder::with_buffer(buf).map_err(|e| Error::Io {
            context: "start zstd decoder".into(),
            source: e,
        })?;
        Ok(Box::new(dec))
    } else {
        Ok(Box::new(buf))
    }
}

/// Counts and hashes an uncompressed stream, failing once it passes a limit.
pub(crate) struct CountingReader<R> {
    inner: R,
    hasher: crate::digest::Hasher,
    count: u64,
    limit: u64,
    pub(crate) exceeded: bool,
}

impl<R: Read> CountingReader<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        CountingReader {
            inner,
            hasher: crate::digest::Algorithm::Sha256.hasher(),
            count: 0,
            limit,
            exceeded: false,
        }
    }

    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        // Hash the tail after the end-of-archive blocks too: the diff id
        // covers the whole stream.
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.finish(), self.count))
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("layer larger than the byte limit"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Counts nothing itself; a named wrapper so the tar writer's output type
/// is ours (keeps [`write_diff`]'s signature simple).
pub(crate) struct CountingWriter<W>(pub(crate) W);

impl<W: io::Write> io::Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
