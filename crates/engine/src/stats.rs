//! `berth stats`: a container's resource use, computed the way Docker does.
//!
//! The figures come from the container's own cgroup (read through
//! `berth-cgroups`, v1 or v2) and, for network traffic, from its network
//! namespace:
//!
//! | column | source |
//! | --- | --- |
//! | CPU % | cgroup CPU time delta ÷ host CPU time delta (/proc/stat) × online CPUs |
//! | MEM USAGE | v1 `memory.usage_in_bytes` − `total_inactive_file`; v2 `memory.current` − `inactive_file` |
//! | LIMIT | the cgroup's memory limit, or the host's memory when it is higher (unlimited) |
//! | NET I/O | `/proc/<init>/net/dev` without `lo` (0 when the container shares the host's namespace) |
//! | BLOCK I/O | v1 `blkio.throttle.io_service_bytes_recursive`; v2 `io.stat` |
//! | PIDS | `pids.current` |
//!
//! The container's cgroup is the spec's `linux.cgroupsPath`
//! ([`crate::spec::cgroups_path`]), the same for berth's runtime and for an
//! external one. Only when that cgroup does not exist (a runtime that put
//! the container somewhere else, e.g. a systemd cgroup driver, or a
//! rootless runtime without a delegated cgroup) are the figures summed over
//! the container's processes from /proc instead ([`Source::Proc`]).
//!
//! Decisions are pure functions over [`Sample`]s and file contents; the
//! reading is in [`sample`].

use berth_cgroups::stats::{BlkioEntry, Stats};
use berth_cgroups::{Hierarchy, Manager};

use crate::procs;

/// Where a sample's figures came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// No processes to read (the container is not running).
    #[default]
    None,
    /// The container's cgroup.
    Cgroup,
    /// Summed over the container's processes in /proc (no cgroup found).
    Proc,
}

/// One reading of a container's resource use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub source: Source,
    /// CPU time used by the container, in nanoseconds.
    pub cpu_ns: u64,
    /// CPU time of the whole host (all CPUs), in nanoseconds.
    pub system_ns: u64,
    pub online_cpus: u32,
    /// Memory in use, page cache that could be dropped (inactive file) excluded.
    pub memory: u64,
    /// The effective memory limit (the host's memory when unlimited).
    pub memory_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

/// Docker's CPU %: the container's share of the host's CPU time between
/// two samples, scaled so that one busy CPU reads 100%.
pub fn cpu_percent(prev: &Sample, cur: &Sample) -> f64 {
    let cpu = cur.cpu_ns.saturating_sub(prev.cpu_ns);
    let system = cur.system_ns.saturating_sub(prev.system_ns);
    if cpu == 0 || system == 0 {
        return 0.0;
    }
    cpu as f64 / system as f64 * f64::from(cur.online_cpus.max(1)) * 100.0
}

/// MEM %: usage over the effective limit.
pub fn memory_percent(s: &Sample) -> f64 {
    if s.memory_limit == 0 {
        return 0.0;
    }
    s.memory as f64 / s.memory_limit as f64 * 100.0
}

/// Usage without the inactive file cache, which the kernel reclaims
/// before it would OOM-kill (Docker's "usage - cache" rule). A counter that
/// raced past the usage leaves the usage as is.
pub fn usage_without_inactive_file(usage: u64, inactive_file: u64) -> u64 {
    if inactive_file < usage {
        usage - inactive_file
    } else {
        usage
    }
}

/// The limit to show: the cgroup's, unless it is above the host's memory
/// (unlimited is reported as a huge number by v1 and as u64::MAX for v2's
/// "max"). `host` 0 (unknown) keeps the cgroup's.
pub fn effective_limit(cgroup_limit: u64, host: u64) -> u64 {
    if host > 0 && cgroup_limit > host {
        host
    } else {
        cgroup_limit
    }
}

/// (read, write) bytes: the `Read` and `Write` entries of every device
/// (v1 files also list `Sync`, `Async`, `Total`… which would count twice).
pub fn block_io(entries: &[BlkioEntry]) -> (u64, u64) {
    let sum = |op: &str| {
        entries
            .iter()
            .filter(|e| e.op.eq_ignore_ascii_case(op))
            .map(|e| e.value)
            .sum()
    };
    (sum("read"), sum("write"))
}

/// The inactive file cache in a memory.stat: v1 names the hierarchical
/// figure `total_inactive_file`, v2 has only `inactive_file`.
fn inactive_file(stats: &Stats) -> u64 {
    let raw = &stats.memory.raw;
    raw.get("total_inactive_file")
        .or_else(|| raw.get("inactive_file"))
        .copied()
        .unwrap_or(0)
}

/// The cgroup part of a sample, from the cgroup's stats (`host_memory` caps
/// the limit).
pub fn from_cgroup(stats: &Stats, host_memory: u64) -> Sample {
    let (block_read, block_write) = block_io(&stats.blkio.io_service_bytes_recursive);
    Sample {
        source: Source::Cgroup,
        cpu_ns: stats.cpu.usage.total,
        memory: usage_without_inactive_file(stats.memory.usage.usage, inactive_file(stats)),
        memory_limit: effective_limit(stats.memory.usage.limit, host_memory),
        block_read,
        block_write,
        pids: stats.pids.current,
        ..Sample::default()
    }
}

/// Received and transmitted bytes over every interface but `lo`, from the
/// text of /proc/PID/net/dev (proc(5)).
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0;
    let mut tx = 0;
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// Host CPU time in clock ticks from the first line of /proc/stat: user,
/// nice, system, idle, iowait, irq and softirq, the fields Docker adds
/// (steal and the guest fields, already inside user, are left out).
pub fn parse_proc_stat_ticks(text: &str) -> u64 {
    text.lines()
        .next()
        .filter(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// The container's cgroup, when it exists: the spec's cgroupsPath resolved
/// on this host's hierarchy.
pub fn container_cgroup(id: &str) -> Option<Manager> {
    let h = Hierarchy::detect().ok()?;
    let m = Manager::new(&h, &crate::spec::cgroups_path(id), id).ok()?;
    m.exists().then_some(m)
}

fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |t| t.max(1) as u64)
}

fn online_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

fn host_cpu_ns() -> u64 {
    let ticks = std::fs::read_to_string("/proc/stat")
        .map(|t| parse_proc_stat_ticks(&t))
        .unwrap_or(0);
    ticks.saturating_mul(1_000_000_000 / clock_ticks_per_second())
}

/// Traffic of the init's network namespace; none when that is the host's
/// (`--network host`: the host's counters are not the container's).
fn network(init: i32) -> (u64, u64) {
    let ns = |p: &str| std::fs::read_link(p).ok();
    let theirs = ns(&format!("/proc/{init}/ns/net"));
    if theirs.is_none() || theirs == ns("/proc/self/ns/net") {
        return (0, 0);
    }
    std::fs::read_to_string(format!("/proc/{init}/net/dev"))
        .map(|t| parse_net_dev(&t))
        .unwrap_or((0, 0))
}

/// Sums /proc/PID/{stat,status,io} over the container's processes: the
/// fallback when the container has no cgroup of its own.
fn from_procs(init: i32, host_memory: u64) -> Sample {
    let tck = clock_ticks_per_second();
    let mut s = Sample {
        source: Source::Proc,
        memory_limit: host_memory,
        ..Sample::default()
    };
    for p in procs::container_pids(init) {
        let u = procs::usage(p);
        s.cpu_ns += u.cpu_ticks.saturating_mul(1_000_000_000 / tck);
        s.memory += u.rss;
        s.block_read += u.read_bytes;
        s.block_write += u.write_bytes;
        s.pids += 1;
    }
    s
}

/// One sample of container `id` whose init is host pid `init` (0 or less:
/// not running, an empty sample).
pub fn sample(id: &str, init: i32) -> Sample {
    if init <= 0 {
        return Sample::default();
    }
    let host_memory = procs::host_memory();
    let cgroup = container_cgroup(id).and_then(|m| m.stats().ok());
    let mut s = match cgroup {
        Some(stats) => from_cgroup(&stats, host_memory),
        None => from_procs(init, host_memory),
    };
    (s.net_rx, s.net_tx) = network(init);
    s.system_ns = host_cpu_ns();
    s.online_cpus = online_cpus();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_cgroups::CgroupVersion;
    use std::path::Path;

    fn at(cpu: u64, system: u64, cpus: u32) -> Sample {
        Sample {
            cpu_ns: cpu,
            system_ns: system,
            online_cpus: cpus,
            ..Sample::default()
        }
    }

    #[test]
    fn cpu_percent_is_share_of_host_time_times_cpus() {
        // Half a second of CPU while the 2-CPU host ran 2 s (1 s wall): 50%.
        let p = cpu_percent(&at(0, 0, 2), &at(500_000_000, 2_000_000_000, 2));
        assert!((p - 50.0).abs() < 1e-9, "{p}");
        // Two busy CPUs read 200%.
        let p = cpu_percent(&at(1, 10, 2), &at(2_000_000_001, 2_000_000_010, 2));
        assert!((p - 200.0).abs() < 1e-9, "{p}");
        // No host time passed, or the counter went back (a restart): 0.
        assert_eq!(cpu_percent(&at(5, 100, 2), &at(9, 100, 2)), 0.0);
        assert_eq!(cpu_percent(&at(9, 100, 2), &at(5, 200, 2)), 0.0);
    }

    #[test]
    fn memory_rules() {
        assert_eq!(usage_without_inactive_file(100, 30), 70);
        assert_eq!(usage_without_inactive_file(100, 100), 100);
        assert_eq!(usage_without_inactive_file(100, 300), 100);
        // v1 unlimited (PAGE_COUNTER_MAX pages) and v2 "max" both cap at the host.
        assert_eq!(effective_limit(9_223_372_036_854_771_712, 8 << 30), 8 << 30);
        assert_eq!(effective_limit(u64::MAX, 8 << 30), 8 << 30);
        assert_eq!(effective_limit(32 << 20, 8 << 30), 32 << 20);
        assert_eq!(effective_limit(32 << 20, 0), 32 << 20);
        let s = Sample {
            memory: 8 << 20,
            memory_limit: 32 << 20,
            ..Sample::default()
        };
        assert_eq!(memory_percent(&s), 25.0);
        assert_eq!(memory_percent(&Sample::default()), 0.0);
    }

    #[test]
    fn block_io_counts_read_and_write_only() {
        let e = berth_cgroups::stats::parse_blkio_v1(
            "8:0 Read 4096\n8:0 Write 100\n8:0 Sync 4196\n8:0 Total 4196\n\
             8:16 Read 1\n8:16 Write 2\nTotal 4199\n",
        );
        assert_eq!(block_io(&e), (4097, 102));
        let (bytes, _) = berth_cgroups::stats::parse_io_stat(
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=5 dios=1\n254:0 rbytes=1 wbytes=2\n",
        );
        assert_eq!(block_io(&bytes), (11, 22));
    }

    #[test]
    fn net_dev_skips_lo() {
        let t = "Inter-|   Receive\n face |bytes\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 2000 3 0 0 0 0 0 0 500 2 0 0 0 0 0 0\n   veth1:   5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(t), (2005, 507));
        assert_eq!(parse_net_dev(""), (0, 0));
    }

    #[test]
    fn proc_stat_sums_the_first_seven_fields() {
        let t = "cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 1 1 1 1 1 1 1 1 1 1\n";
        assert_eq!(parse_proc_stat_ticks(t), 280);
        assert_eq!(parse_proc_stat_ticks("intr 5\n"), 0);
    }

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    /// A v2 cgroup laid out in a temporary directory, read through
    /// berth-cgroups as for a real container.
    #[test]
    fn v2_cgroup_files_to_sample() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            &[
                ("cgroup.controllers", "cpu io memory pids\n"),
                ("berth/c1/cgroup.procs", ""),
                (
                    "berth/c1/cpu.stat",
                    "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
                ),
                ("berth/c1/memory.current", "73400320\n"),
                ("berth/c1/memory.max", "33554432\n"),
                (
                    "berth/c1/memory.stat",
                    "anon 60000000\nfile 13400320\nactive_file 400320\ninactive_file 13000000\n",
                ),
                (
                    "berth/c1/memory.events",
                    "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
                ),
                (
                    "berth/c1/io.stat",
                    "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
                ),
                ("berth/c1/pids.current", "3\n"),
                ("berth/c1/pids.max", "10\n"),
            ],
        );
        let h = Hierarchy::at(root.path()).unwrap();
        assert_eq!(h.version(), CgroupVersion::V2);
        let m = Manager::new(&h, &crate::spec::cgroups_path("c1"), "c1").unwrap();
        let s = from_cgroup(&m.stats().unwrap(), 8 << 30);
        assert_eq!(s.source, Source::Cgroup);
        assert_eq!(s.cpu_ns, 1_500_000);
        assert_eq!(s.memory, 73_400_320 - 13_000_000);
        assert_eq!(s.memory_limit, 33_554_432);
        assert_eq!((s.block_read, s.block_write, s.pids), (4096, 8192, 3));
        assert_eq!(m.oom_kill_count().unwrap(), 1);
        // memory.max "max": the host's memory is the limit.
        write(root.path(), &[("berth/c1/memory.max", "max\n")]);
        assert_eq!(
            from_cgroup(&m.stats().unwrap(), 8 << 30).memory_limit,
            8 << 30
        );
    }

    /// The same from v1 files (one directory per controller).
    #[test]
    fn v1_cgroup_files_to_sample() {
        let root = tempfile::tempdir().unwrap();
        let leaf = "berth/c1";
        let mut files = vec![];
        for ctrl in ["cpu,cpuacct", "memory", "blkio", "pids"] {
            files.push((format!("{ctrl}/cgroup.procs"), String::new()));
            files.push((format!("{ctrl}/{leaf}/cgroup.procs"), String::new()));
        }
        for (f, t) in [
            ("cpu,cpuacct/berth/c1/cpuacct.usage", "2500000000\n"),
            ("memory/berth/c1/memory.usage_in_bytes", "50000000\n"),
            (
                "memory/berth/c1/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            (
                "memory/berth/c1/memory.stat",
                "cache 20000000\ninactive_file 9\ntotal_inactive_file 15000000\n",
            ),
            (
                "blkio/berth/c1/blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 100\n8:0 Write 200\n8:0 Total 300\nTotal 300\n",
            ),
            ("pids/berth/c1/pids.current", "2\n"),
        ] {
            files.push((f.into(), t.into()));
        }
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        write(root.path(), &files);
        let h = Hierarchy::at(root.path()).unwrap();
        assert_eq!(h.version(), CgroupVersion::V1);
        let m = Manager::new(&h, &crate::spec::cgroups_path("c1"), "c1").unwrap();
        let s = from_cgroup(&m.stats().unwrap(), 8 << 30);
        assert_eq!(s.cpu_ns, 2_500_000_000);
        assert_eq!(s.memory, 35_000_000);
        assert_eq!(s.memory_limit, 8 << 30);
        assert_eq!((s.block_read, s.block_write, s.pids), (100, 200, 2));
    }

    #[test]
    fn own_process_falls_back_to_proc() {
        let me = std::process::id() as i32;
        let s = from_procs(me, procs::host_memory());
        assert_eq!(s.source, Source::Proc);
        assert!(s.memory > 0 && s.pids >= 1 && s.cpu_ns > 0, "{s:?}");
        // The test shares the host's network namespace: no traffic is its own.
        assert_eq!(network(me), (0, 0));
    }
}
