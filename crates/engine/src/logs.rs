//! Docker's json-file log format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-…Z"}`, written by the
//! monitor (or a foreground CLI) and read by `berth logs`. Rotation by size
//! keeps `json.log`, `json.log.1` … `json.log.<max_file-1>`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends lines, rotating when the file grows past `max_size` bytes.
pub struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_file: u32,
    /// Partial lines per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
}

/// Longest line kept before a partial line is written out (Docker: 16 KiB).
const MAX_PARTIAL: usize = 16 * 1024;

impl LogWriter {
    /// `max_size` 0 = unlimited.
    pub fn open(path: &Path, max_size: u64, max_file: u32) -> std::io::Result<LogWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file: Some(file),
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [vec![], vec![]],
        })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.max_file <= 1 {
            // Keep no old file: truncate.
            let f = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&self.path)?;
            drop(f);
        } else {
            for i in (1..self.max_file - 1).rev() {
                let from = rotated(&self.path, i);
                if from.exists() {
                    std::fs::rename(&from, rotated(&self.path, i + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        Ok(())
    }

    fn write_line(&mut self, stream: usize, bytes: &[u8]) -> std::io::Result<()> {
        let line = LogLine {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: if stream == 0 { "stdout" } else { "stderr" }.into(),
            time: crate::time::now_rfc3339(),
        };
        let mut text = serde_json::to_string(&line).expect("serializes");
        text.push('\n');
        if self.max_size > 0 && self.size > 0 && self.size + text.len() as u64 > self.max_size {
            self.rotate()?;
        }
        if let Some(f) = &mut self.file {
            f.write_all(text.as_bytes())?;
        }
        self.size += text.len() as u64;
        Ok(())
    }

    /// Takes output of `stream` (0 stdout, 1 stderr); writes every complete line.
    pub fn push(&mut self, stream: usize, data: &[u8]) -> std::io::Result<()> {
        let mut buf = std::mem::take(&mut self.partial[stream]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            self.write_line(stream, &buf[start..start + pos + 1])?;
            start += pos + 1;
        }
        let rest = buf[start..].to_vec();
        if rest.len() >= MAX_PARTIAL {
            self.write_line(stream, &rest)?;
        } else {
            self.partial[stream] = rest;
        }
        Ok(())
    }

    /// Writes out partial lines (at exit).
    pub fn flush(&mut self) -> std::io::Result<()> {
        for s in 0..2 {
            let rest = std::mem::take(&mut self.partial[s]);
            if !rest.is_empty() {
                self.write_line(s, &rest)?;
            }
        }
        Ok(())
    }
}

pub fn rotated(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// Every log line of a container, oldest first (rotated files included).
pub fn read_all(path: &Path, max_file: u32) -> Vec<LogLine> {
    let mut files: Vec<PathBuf> = (1..max_file.max(1))
        .rev()
        .map(|i| rotated(path, i))
        .collect();
    files.push(path.to_path_buf());
    let mut out = vec![];
    for f in files {
        if let Ok(file) = File::open(&f) {
            out.extend(parse_lines(BufReader::new(file)));
        }
    }
    out
}

pub fn parse_lines(r: impl BufRead) -> Vec<LogLine> {
    r.lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// Which lines `logs --since/--until/--tail` shows.
pub fn select(
    lines: Vec<LogLine>,
    since: Option<i64>,
    until: Option<i64>,
    tail: Option<usize>,
) -> Vec<LogLine> {
    let mut v: Vec<LogLine> = lines
        .into_iter()
        .filter(|l| {
            let t = crate::time::parse_rfc3339(&l.time).unwrap_or(0);
            since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u)
        })
        .collect();
    if let Some(n) = tail
        && v.len() > n
    {
        v.drain(..v.len() - n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("json.log");
        let mut w = LogWriter::open(&p, 200, 3).unwrap();
        w.push(0, b"hel").unwrap();
        w.push(0, b"lo\nwor").unwrap();
        w.push(1, b"err\n").unwrap();
        w.flush().unwrap();
        let lines = read_all(&p, 3);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].log, "hello\n");
        assert_eq!(lines[1].stream, "stderr");
        assert_eq!(lines[2].log, "wor");
        for i in 0..20 {
            w.push(0, format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(rotated(&p, 1).exists() && rotated(&p, 2).exists() && !rotated(&p, 3).exists());
        assert!(std::fs::metadata(&p).unwrap().len() <= 200);
        let all = read_all(&p, 3);
        assert_eq!(all.last().unwrap().log, "line 19\n");
        assert_eq!(select(all, None, None, Some(2)).len(), 2);
    }
}
