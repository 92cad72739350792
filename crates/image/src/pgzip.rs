//! Parallel gzip in pigz's shape: the input is cut into fixed 1 MiB blocks,
//! each compressed independently as raw deflate on its own thread and ended
//! with a sync flush (an empty stored block, so it ends on a byte boundary);
//! the last block ends the stream. A full batch (one block per thread) is
//! compressed in the background while the caller produces the next one.
//! The concatenation is one ordinary deflate
//! stream in one gzip member (RFC 1951 §3.2.3 blocks, RFC 1952 member), so
//! every gzip reader accepts it. Output is deterministic: the blocking does
//! not depend on the thread count, the header has mtime 0, no name, OS 255.
//! Layer commits are dominated by compression (incompressible data deflates
//! at ~40 MB/s per core), so this scales them with the cores.

use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};

const BLOCK: usize = 1 << 20;

/// A `Write` that gzips into `inner` using up to `threads` threads.
pub struct ParallelGzEncoder<W: Write> {
    /// None once finished.
    inner: Option<W>,
    level: Compression,
    threads: usize,
    /// Full blocks waiting for a parallel batch, and the one being filled.
    pending: Vec<Vec<u8>>,
    current: Vec<u8>,
    crc: crc32fast::Hasher,
    size: u64,
    header_written: bool,
    /// The batch being compressed in the background while the caller keeps
    /// producing input (the diff walk overlaps compression).
    in_flight: Option<std::thread::JoinHandle<io::Result<Vec<Vec<u8>>>>>,
}

/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

fn deflate_block(data: &[u8], level: Compression, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(level, false);
    let mut out = Vec::with_capacity(data.len() + data.len() / 100 + 64);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut consumed = 0usize;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let before = c.total_in();
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        consumed += (c.total_in() - before) as usize;
        let done = match status {
            Status::StreamEnd => true,
            // A sync flush is complete when all input is consumed and the
            // output buffer was not filled up.
            Status::Ok | Status::BufError => {
                !last && consumed == data.len() && out.capacity() > out.len()
            }
        };
        if done {
            return Ok(out);
        }
    }
}

impl<W: Write> ParallelGzEncoder<W> {
    pub fn new(inner: W, level: Compression) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        Self::with_threads(inner, level, threads)
    }

    pub fn with_threads(inner: W, level: Compression, threads: usize) -> Self {
        ParallelGzEncoder {
            inner: Some(inner),
            level,
            threads: threads.max(1),
            pending: Vec::new(),
            current: Vec::with_capacity(BLOCK),
            crc: crc32fast::Hasher::new(),
            size: 0,
            header_written: false,
            in_flight: None,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.out()?.write_all(&HEADER)?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Waits for the background batch and writes its output.
    fn drain(&mut self) -> io::Result<()> {
        if let Some(h) = self.in_flight.take() {
            let outputs = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("compression thread panicked")))?;
            self.write_header()?;
            for o in outputs {
                self.out()?.write_all(&o)?;
            }
        }
        Ok(())
    }

    /// Starts compressing a batch of full (non-final) blocks in the
    /// background, after writing the previous batch's output.
    fn submit(&mut self, blocks: Vec<Vec<u8>>) -> io::Result<()> {
        self.drain()?;
        let level = self.level;
        self.in_flight = Some(std::thread::spawn(move || {
            compress_all(&blocks, level, false)
        }));
        Ok(())
    }

    /// Ends the stream (trailer: CRC32 and size mod 2^32) and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.drain()?;
        let mut blocks = std::mem::take(&mut self.pending);
        blocks.push(std::mem::take(&mut self.current));
        let outputs = compress_all(&blocks, self.level, true)?;
        self.write_header()?;
        for o in outputs {
            self.out()?.write_all(&o)?;
        }
        let crc = self.crc.clone().finalize();
        self.out()?.write_all(&crc.to_le_bytes())?;
        let size = self.size as u32;
        self.out()?.write_all(&size.to_le_bytes())?;
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))
    }
}

impl<W: Write> Drop for ParallelGzEncoder<W> {
    fn drop(&mut self) {
        // Never leave a compression thread running behind an abandoned
        // encoder (a build clones container inits from this process).
        if let Some(h) = self.in_flight.take() {
            let _ = h.join();
        }
    }
}

/// Compresses `blocks` on one thread each (the last one ends the stream
/// when `last`), returning the outputs in order.
fn compress_all(blocks: &[Vec<u8>], level: Compression, last: bool) -> io::Result<Vec<Vec<u8>>> {
    let n = blocks.len();
    std::thread::scope(|s| {
        let handles: Vec<_> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| s.spawn(move || deflate_block(b, level, last && i + 1 == n)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("compression thread panicked")))
            })
            .collect()
    })
}

impl<W: Write> Write for ParallelGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.current.len());
        self.current.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        self.size += n as u64;
        if self.current.len() == BLOCK {
            let full = std::mem::replace(&mut self.current, Vec::with_capacity(BLOCK));
            self.pending.push(full);
            if self.pending.len() == self.threads {
                let batch = std::mem::take(&mut self.pending);
                self.submit(batch)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out()?.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn data(len: usize) -> Vec<u8> {
        // Half compressible text, half pseudo-random bytes.
        let mut x: u32 = 12345;
        (0..len)
            .map(|i| {
                if (i / 100_000) % 2 == 0 {
                    b"layer data "[i % 11]
                } else {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                }
            })
            .collect()
    }

    fn gz(input: &[u8], threads: usize) -> Vec<u8> {
        let mut e = ParallelGzEncoder::with_threads(Vec::new(), Compression::default(), threads);
        for chunk in input.chunks(7777) {
            e.write_all(chunk).unwrap();
        }
        e.finish().unwrap()
    }

    #[test]
    fn roundtrips_and_is_deterministic_across_thread_counts() {
        for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345] {
            let input = data(len);
            let one = gz(&input, 1);
            let four = gz(&input, 4);
            assert_eq!(one, four, "len {len}: same bytes for any thread count");
            // A single-member reader (not Multi) must read it all.
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, input, "len {len}");
            assert_eq!(&one[..10], &HEADER);
        }
    }

    #[test]
    fn gnu_gzip_accepts_it() {
        let input = data(2 * BLOCK + 99);
        let bytes = gz(&input, 2);
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), &bytes).unwrap();
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, input);
    }
}
