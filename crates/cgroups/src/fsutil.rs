//! Thin file helpers for cgroupfs: one `write(2)` per value (cgroup files
//! parse each write separately), reads with path context.

use crate::Error;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

pub(crate) fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(Error::io("read", path))
}

/// Writes `value` with a single write(2): O_WRONLY|O_TRUNC, never O_CREAT
/// (a missing cgroup file means the kernel lacks the feature).
pub(crate) fn write_raw(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(value.as_bytes())
}

pub(crate) fn write(path: &Path, value: &str) -> Result<(), Error> {
    write_raw(path, value).map_err(Error::io("write", path))
}

/// "max" → None, number → Some.
pub(crate) fn parse_max(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" { None } else { s.parse().ok() }
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events, ...).
pub(crate) fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k.to_owned(), v))
        })
        .collect()
}

pub(crate) fn read_flat_keyed(path: &Path) -> Result<BTreeMap<String, u64>, Error> {
    Ok(parse_flat_keyed(&read(path)?))
}

/// Pids listed in a cgroup.procs file.
pub(crate) fn parse_pids(text: &str) -> Vec<i32> {
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
