//! Resource usage in the shape of runc's `events --stats` "data" object
//! (runc's types/events.go: cpu, memory, pids, blkio, hugetlb).
//!
//! Parsers are pure functions over file contents; `Manager::stats` reads.

use crate::fsutil::{parse_flat_keyed, parse_max};
use serde::Serialize;
use std::collections::BTreeMap;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// CPU time in nanoseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// v1 only (cpuacct.usage_percpu_sys), as runc.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// v1 only (cpuacct.usage_percpu_user), as runc.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MemoryEntry {
    /// u64::MAX when unlimited (as runc reports it).
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Blkio {
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// The `data` of runc's `events --stats`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Always `{}`: berth has no Intel RDT support (runc prints it so).
    pub intel_rdt: IntelRdt,
    /// Always `null`: runc fills it only for a container's own network
    /// namespace statistics, which a cgroup does not know.
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

/// runc's `cpuset` section (v1 cpuset files; v2 leaves it zero, as runc).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u32>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u32>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct IntelRdt {}

/// One line of `runc events`: `{"type":"stats","id":..,"data":{..}}` for
/// `--stats` and each interval, `{"type":"oom","id":..}` for an OOM kill.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

impl Event {
    pub fn stats(id: &str, stats: Stats) -> Event {
        Event {
            kind: "stats".into(),
            id: id.into(),
            data: Some(stats),
        }
    }

    pub fn oom(id: &str) -> Event {
        Event {
            kind: "oom".into(),
            id: id.into(),
            data: None,
        }
    }
}

/// runc's cpuset section from the v1 cpuset files (`read(name)` gives a
/// file's text; missing files leave their field zero).
pub fn cpuset_v1(read: impl Fn(&str) -> Option<String>) -> CpuSet {
    let list = |f: &str| {
        read(f)
            .and_then(|t| crate::convert::parse_cpu_list(t.trim()).ok())
            .map(|set| set.into_iter().collect())
            .unwrap_or_default()
    };
    let n = |f: &str| {
        read(&format!("cpuset.{f}"))
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    };
    CpuSet {
        cpus: list("cpuset.cpus"),
        cpu_exclusive: n("cpu_exclusive"),
        mems: list("cpuset.mems"),
        mem_hardwall: n("mem_hardwall"),
        mem_exclusive: n("mem_exclusive"),
        memory_migrate: n("memory_migrate"),
        memory_spread_page: n("memory_spread_page"),
        memory_spread_slab: n("memory_spread_slab"),
        memory_pressure: n("memory_pressure"),
        sched_load_balance: n("sched_load_balance"),
        sched_relax_domain_level: read("cpuset.sched_relax_domain_level")
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0),
    }
}

/// USER_HZ as the kernel exports it in cpuacct.stat (always 100 on Linux).
const USER_HZ: u64 = 100;

/// v1 cpuacct.stat ("user N\nsystem N" in USER_HZ ticks) → (user, kernel) ns.
pub fn parse_cpuacct_stat(text: &str) -> (u64, u64) {
    let m = parse_flat_keyed(text);
    let ns = |k: &str| m.get(k).copied().unwrap_or(0) * (1_000_000_000 / USER_HZ);
    (ns("user"), ns("system"))
}

/// v1 cpu.stat / v2 cpu.stat throttling fields.
pub fn parse_throttling(text: &str, v2: bool) -> Throttling {
    let m = parse_flat_keyed(text);
    let g = |k: &str| m.get(k).copied().unwrap_or(0);
    Throttling {
        periods: g("nr_periods"),
        throttled_periods: g("nr_throttled"),
        throttled_time: if v2 {
            g("throttled_usec") * 1000
        } else {
            g("throttled_time")
        },
    }
}

/// v2 cpu.stat usage (µs) → ns.
pub fn parse_cpu_stat_v2(text: &str) -> CpuUsage {
    let m = parse_flat_keyed(text);
    let g = |k: &str| m.get(k).copied().unwrap_or(0) * 1000;
    CpuUsage {
        total: g("usage_usec"),
        kernel: g("system_usec"),
        user: g("user_usec"),
        ..CpuUsage::default()
    }
}

/// v1 blkio `*_recursive` files: "8:0 Read 4096" lines ("Total" lines skipped).
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let dev = it.next()?;
            let op = it.next()?;
            let value = it.next()?.parse().ok()?;
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_owned(),
                value,
            })
        })
        .collect()
}

/// v2 io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." → (bytes, ios)
/// entries with runc's "Read"/"Write" ops.
pub fn parse_io_stat(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_owned(),
                value,
            });
        }
    }
    (bytes, ios)
}

/// A limit file ("max" or a number; v1 reports huge numbers for unlimited).
pub fn limit_of(text: &str) -> u64 {
    parse_max(text).unwrap_or(u64::MAX)
}

/// v1 cpuacct.usage_percpu.
pub fn parse_percpu(text: &str) -> Vec<u64> {
    text.split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuset_section() {
        let files: BTreeMap<&str, &str> = [
            ("cpuset.cpus", "0-2,5\n"),
            ("cpuset.mems", "0\n"),
            ("cpuset.sched_load_balance", "1\n"),
            ("cpuset.sched_relax_domain_level", "-1\n"),
        ]
        .into();
        let c = cpuset_v1(|f| files.get(f).map(|s| s.to_string()));
        assert_eq!(c.cpus, [0, 1, 2, 5]);
        assert_eq!(c.mems, [0]);
        assert_eq!((c.sched_load_balance, c.sched_relax_domain_level), (1, -1));
        assert_eq!(c.cpu_exclusive, 0);
    }

    /// The top-level keys, in runc 1.1's order (types/events.go).
    #[test]
    fn stats_document_shape() {
        // Serialised straight from the structs: field order is kept.
        let text = serde_json::to_string(&Event::stats("x", Stats::default())).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = [
            "cpu",
            "cpuset",
            "memory",
            "pids",
            "blkio",
            "hugetlb",
            "intel_rdt",
            "network_interfaces",
        ]
        .into();
        let mut last = 0;
        for k in keys {
            let at = text.find(&format!("\"{k}\":")).expect(k);
            assert!(at >= last, "{k} out of order in {text}");
            last = at;
        }
        assert_eq!(v["data"]["intel_rdt"], serde_json::json!({}));
        assert!(v["data"]["network_interfaces"].is_null());
        assert_eq!(v["data"]["cpuset"]["sched_relax_domain_level"], 0);
    }

    #[test]
    fn cpu_parsers() {
        assert_eq!(
            parse_cpuacct_stat("user 150\nsystem 20\n"),
            (1_500_000_000, 200_000_000)
        );
        let t = parse_throttling("nr_periods 10\nnr_throttled 4\nthrottled_time 123\n", false);
        assert_eq!(
            (t.periods, t.throttled_periods, t.throttled_time),
            (10, 4, 123)
        );
        let text = "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n";
        let u = parse_cpu_stat_v2(text);
        assert_eq!((u.total, u.user, u.kernel), (2_000_000, 1_500_000, 500_000));
        assert_eq!(parse_throttling(text, true).throttled_time, 7000);
        assert_eq!(parse_percpu("5 6 \n"), vec![5, 6]);
    }

    #[test]
    fn blkio_parsers() {
        let e = parse_blkio_v1("8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n");
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[1].major, e[1].minor, e[1].op.as_str(), e[1].value),
            (8, 0, "Write", 8192)
        );
        let (bytes, ios) =
            parse_io_stat("254:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(
            bytes.iter().map(|e| e.value).collect::<Vec<_>>(),
            vec![100, 200]
        );
        assert_eq!(ios[0].op, "Read");
    }

    #[test]
    fn serializes_in_runc_shape() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.memory.usage.limit = u64::MAX;
        s.pids.current = 2;
        s.hugetlb.insert("2MB".into(), Hugetlb::default());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu"]["usage"]["total"], 5);
        assert_eq!(v["cpu"]["usage"]["kernel"], 0);
        assert_eq!(v["memory"]["usage"]["limit"], u64::MAX);
        assert_eq!(v["pids"]["current"], 2);
        assert!(v["pids"].get("limit").is_none(), "omitempty like runc");
        assert_eq!(v["hugetlb"]["2MB"]["failcnt"], 0);
        assert!(v["blkio"].as_object().unwrap().is_empty());
        assert_eq!(limit_of("max\n"), u64::MAX);
        assert_eq!(limit_of("4096\n"), 4096);
        let e = serde_json::to_value(Event::stats("c1", s)).unwrap();
        assert_eq!(
            (
                e["type"].as_str(),
                e["id"].as_str(),
                &e["data"]["pids"]["current"]
            ),
            (Some("stats"), Some("c1"), &serde_json::json!(2))
        );
        assert_eq!(
            serde_json::to_string(&Event::oom("c1")).unwrap(),
            r#"{"type":"oom","id":"c1"}"#
        );
    }
}
