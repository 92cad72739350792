//! `runc update` input: the resources JSON of `-r FILE` and the individual
//! flags, merged the way runc merges them (flags override the file).

use crate::Error;
use oci_spec::runtime::{LinuxBlockIo, LinuxMemory, LinuxPids, LinuxResources};

/// runc update's flags, as strings from the command line (None = not given).
#[derive(Debug, Clone, Default)]
pub struct UpdateFlags {
    pub blkio_weight: Option<String>,
    pub cpu_period: Option<String>,
    pub cpu_quota: Option<String>,
    pub cpu_share: Option<String>,
    pub cpu_rt_period: Option<String>,
    pub cpu_rt_runtime: Option<String>,
    pub cpu_idle: Option<String>,
    pub cpu_burst: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// Bytes, with an optional unit ("512m", "1g"); -1 for unlimited.
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    /// memory+swap, as `--memory-swap`.
    pub memory_swap: Option<String>,
    pub pids_limit: Option<String>,
}

/// Parses a resources JSON document (`runc update -r FILE`): the OCI
/// `linux.resources` object.
pub fn parse_resources_json(text: &str) -> Result<LinuxResources, Error> {
    serde_json::from_str(text).map_err(|e| {
        Error::invalid(
            "(resources JSON)",
            format!("not a linux.resources object: {e}"),
        )
    })
}

/// Parses a byte count with an optional binary unit, as docker/runc do:
/// "1024", "512k", "64m", "1g", "2GiB", "-1" (unlimited). Units are
/// case-insensitive powers of 1024.
pub fn parse_bytes(field: &str, s: &str) -> Result<i64, Error> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        other => {
            return Err(Error::invalid(
                field,
                format!("{s:?} has unknown unit {other:?}"),
            ));
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| Error::invalid(field, format!("{s:?} is not a size like 512m or 1g")))?;
    let bytes = value * mult as f64;
    if !(0.0..9.2e18).contains(&bytes) {
        return Err(Error::invalid(field, format!("{s:?} is out of range")));
    }
    Ok(bytes as i64)
}

fn num<T: std::str::FromStr>(field: &str, v: &Option<String>) -> Result<Option<T>, Error> {
    v.as_deref()
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| Error::invalid(field, format!("{s:?} is not a valid number")))
        })
        .transpose()
}

impl UpdateFlags {
    /// Applies the flags on top of `base` (the `-r` file, or empty).
    pub fn apply_to(&self, base: LinuxResources) -> Result<LinuxResources, Error> {
        let mut r = base;
        let mut cpu = r.cpu().clone().unwrap_or_default();
        let mut cpu_set = false;
        macro_rules! set {
            ($target:ident . $setter:ident, $field:literal, $flag:expr, $ty:ty, $flagset:ident) => {
                if let Some(v) = num::<$ty>($field, &$flag)? {
                    $target.$setter(Some(v));
                    $flagset = true;
                }
            };
        }
        set!(cpu.set_period, "cpu.period", self.cpu_period, u64, cpu_set);
        set!(cpu.set_quota, "cpu.quota", self.cpu_quota, i64, cpu_set);
        set!(cpu.set_shares, "cpu.shares", self.cpu_share, u64, cpu_set);
        set!(
            cpu.set_realtime_period,
            "cpu.realtimePeriod",
            self.cpu_rt_period,
            u64,
            cpu_set
        );
        set!(
            cpu.set_realtime_runtime,
            "cpu.realtimeRuntime",
            self.cpu_rt_runtime,
            i64,
            cpu_set
        );
        set!(cpu.set_idle, "cpu.idle", self.cpu_idle, i64, cpu_set);
        set!(cpu.set_burst, "cpu.burst", self.cpu_burst, u64, cpu_set);
        if let Some(c) = &self.cpuset_cpus {
            cpu.set_cpus(Some(c.clone()));
            cpu_set = true;
        }
        if let Some(m) = &self.cpuset_mems {
            cpu.set_mems(Some(m.clone()));
            cpu_set = true;
        }
        if cpu_set {
            r.set_cpu(Some(cpu));
        }
        let mut mem: LinuxMemory = r.memory().unwrap_or_default();
        let mut mem_set = false;
        for (field, flag, setter) in [
            (
                "memory.limit",
                &self.memory,
                LinuxMemory::set_limit as fn(&mut LinuxMemory, Option<i64>) -> &mut LinuxMemory,
            ),
            (
                "memory.reservation",
                &self.memory_reservation,
                LinuxMemory::set_reservation,
            ),
            ("memory.swap", &self.memory_swap, LinuxMemory::set_swap),
        ] {
            if let Some(v) = flag {
                setter(&mut mem, Some(parse_bytes(field, v)?));
                mem_set = true;
            }
        }
        if mem_set {
            r.set_memory(Some(mem));
        }
        if let Some(p) = num::<i64>("pids.limit", &self.pids_limit)? {
            let mut pids = LinuxPids::default();
            pids.set_limit(p);
            r.set_pids(Some(pids));
        }
        if let Some(w) = num::<u16>("blockIO.weight", &self.blkio_weight)? {
            let mut b: LinuxBlockIo = r.block_io().clone().unwrap_or_default();
            b.set_weight(Some(w));
            r.set_block_io(Some(b));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("m", "1024").unwrap(), 1024);
        assert_eq!(parse_bytes("m", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("m", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("m", "2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("m", "1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("m", "-1").unwrap(), -1);
        let err = parse_bytes("memory.limit", "12q").unwrap_err().to_string();
        assert_eq!(
            err,
            "linux.resources.memory.limit: \"12q\" has unknown unit \"q\""
        );
        assert!(parse_bytes("m", "m").is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let base = parse_resources_json(
            r#"{"memory":{"limit":1048576,"swap":2097152},"cpu":{"shares":512}}"#,
        )
        .unwrap();
        let flags = UpdateFlags {
            memory: Some("64m".into()),
            cpu_quota: Some("20000".into()),
            pids_limit: Some("10".into()),
            cpuset_cpus: Some("0".into()),
            ..UpdateFlags::default()
        };
        let r = flags.apply_to(base).unwrap();
        let mem = r.memory().as_ref().unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), Some(2_097_152)));
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.cpus().as_deref()),
            (Some(512), Some(20000), Some("0"))
        );
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
        let err = UpdateFlags {
            cpu_share: Some("lots".into()),
            ..Default::default()
        }
        .apply_to(LinuxResources::default())
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.cpu.shares: \"lots\" is not a valid number"
        );
        assert!(parse_resources_json("[1]").is_err());
    }
}
