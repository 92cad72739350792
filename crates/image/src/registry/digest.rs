//! Content digests (<https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests>)
//! and a reader that verifies size and sha256 while streaming.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use super::error::RegistryError;

/// Check `algorithm:hex` form; only sha256 (64 lower-case hex digits) and
/// sha512 (128) are accepted.
pub fn validate_digest(digest: &str) -> Result<(), RegistryError> {
    let bad = |message: &str| RegistryError::InvalidDigest {
        digest: digest.to_string(),
        message: message.to_string(),
    };
    let (algo, hex) = digest
        .split_once(':')
        .ok_or_else(|| bad("expected ALGORITHM:HEX"))?;
    let len = match algo {
        "sha256" => 64,
        "sha512" => 128,
        _ => return Err(bad("unsupported algorithm (sha256 or sha512)")),
    };
    if hex.len() != len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad(&format!("expected {len} lower-case hex digits")));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// The outcome of verification, carried inside an `io::Error` so any sink
/// reading the stream fails (and so never commits) on bad content.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VerifyError(pub String);

/// Wraps a blob stream: counts bytes, hashes them and, at end of stream,
/// fails with [`io::ErrorKind::InvalidData`] if the size or sha256 is not
/// what the descriptor promised. Reading past the promised size fails too.
pub struct VerifyingReader<R> {
    inner: R,
    expected_digest: String,
    expected_size: Option<u64>,
    hasher: Sha256,
    read: u64,
    on_bytes: Box<dyn FnMut(u64) + Send>,
    verified: bool,
    failure: Option<RegistryError>,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected_digest: &str, expected_size: Option<u64>) -> Self {
        Self {
            inner,
            expected_digest: expected_digest.to_string(),
            expected_size,
            hasher: Sha256::new(),
            read: 0,
            on_bytes: Box::new(|_| {}),
            verified: false,
            failure: None,
        }
    }

    /// Call `f(n)` for every `n` bytes read (progress reporting).
    pub fn on_bytes(mut self, f: impl FnMut(u64) + Send + 'static) -> Self {
        self.on_bytes = Box::new(f);
        self
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The verification failure, if the stream failed verification (the
    /// consumer only saw an `io::Error` carrying its text).
    pub fn take_failure(&mut self) -> Option<RegistryError> {
        self.failure.take()
    }

    fn fail(&mut self, err: RegistryError) -> io::Error {
        let e = io::Error::new(io::ErrorKind::InvalidData, VerifyError(err.to_string()));
        self.failure = Some(err);
        e
    }

    fn verify(&mut self) -> io::Result<()> {
        let actual = format!(
            "sha256:{}",
            hex(&std::mem::take(&mut self.hasher).finalize())
        );
        let size_ok = self.expected_size.is_none_or(|s| s == self.read);
        if self.expected_digest.starts_with("sha256:") && actual != self.expected_digest || !size_ok
        {
            let err = match self.expected_size {
                Some(expected) if self.read < expected => RegistryError::Truncated {
                    digest: self.expected_digest.clone(),
                    expected,
                    received: self.read,
                },
                _ => RegistryError::DigestMismatch {
                    digest: self.expected_digest.clone(),
                    expected_size: self.expected_size.unwrap_or(self.read),
                    actual_size: self.read,
                    actual_digest: actual,
                },
            };
            return Err(self.fail(err));
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.verify()?;
            return Ok(0);
        }
        self.read += n as u64;
        if let Some(expected) = self.expected_size
            && self.read > expected
        {
            let err = RegistryError::DigestMismatch {
                digest: self.expected_digest.clone(),
                expected_size: expected,
                actual_size: self.read,
                actual_digest: "(not computed: stream longer than expected)".into(),
            };
            return Err(self.fail(err));
        }
        self.hasher.update(&buf[..n]);
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_validation_table() {
        let ok = [EMPTY.to_string(), format!("sha512:{}", "a".repeat(128))];
        for d in &ok {
            assert!(validate_digest(d).is_ok(), "{d}");
        }
        let bad = [
            "e3b0c442",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:abc",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "",
        ];
        for d in bad {
            assert!(validate_digest(d).is_err(), "{d}");
        }
    }

    #[test]
    fn sha256_of_empty() {
        assert_eq!(sha256_digest(b""), EMPTY);
    }

    fn read_all(data: &[u8], digest: &str, size: Option<u64>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut r = VerifyingReader::new(data, digest, size);
        let res = r.read_to_end(&mut out);
        assert_eq!(res.is_err(), r.take_failure().is_some());
        res?;
        Ok(out)
    }

    #[test]
    fn verifying_reader_table() {
        let data = b"hello world";
        let good = sha256_digest(data);
        assert_eq!(read_all(data, &good, Some(11)).unwrap(), data);
        assert_eq!(read_all(data, &good, None).unwrap(), data);
        let cases: &[(&[u8], Option<u64>, &str)] = &[
            (b"hello worle", Some(11), "failed verification"),
            (b"hello", Some(11), "truncated: got 5 of 11 bytes"),
            (b"hello world!", Some(11), "expected 11 bytes"),
        ];
        for (body, size, needle) in cases {
            let err = read_all(body, &good, *size).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let msg = err.to_string();
            assert!(msg.contains(needle), "{msg}");
            assert!(msg.contains(&good), "{msg}");
        }
    }

    #[test]
    fn progress_callback_counts_bytes() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let data = vec![7u8; 100_000];
        let mut r = VerifyingReader::new(&data[..], &sha256_digest(&data), Some(100_000)).on_bytes(
            move |n| {
                s.fetch_add(n, Ordering::Relaxed);
            },
        );
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), 100_000);
        assert_eq!(r.bytes_read(), 100_000);
    }
}
