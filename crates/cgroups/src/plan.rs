//! `linux.resources` → the list of cgroup file writes, per version.
//!
//! Pure: everything the decision needs from the host comes in [`Facts`].
//! All validation happens here, so a request that fails is rejected before
//! the first write ("nothing half-applied").

use crate::convert;
use crate::devices;
use crate::{CgroupVersion, Error};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources, LinuxThrottleDevice};
use std::collections::{BTreeMap, BTreeSet};

/// One write: the first candidate file that exists gets its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    /// The `linux.resources` field it serves ("memory.limit").
    pub field: String,
    /// v1 controller whose directory holds the file; "" on v2.
    pub controller: &'static str,
    /// (file name, value); several when kernels differ (blkio.weight vs
    /// blkio.bfq.weight).
    pub candidates: Vec<(String, String)>,
}

/// What the planner needs to know about the host and the cgroup.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub controllers: BTreeSet<String>,
    /// Host CPUs / memory nodes usable by containers, None when unknown.
    pub host_cpus: Option<BTreeSet<u32>>,
    pub host_mems: Option<BTreeSet<u32>>,
    /// v1: current memory.limit_in_bytes (None = unlimited/new cgroup); for
    /// ordering limit vs memsw writes.
    pub memory_limit_now: Option<u64>,
    /// Current usage when updating a live cgroup (None on create).
    pub memory_usage: Option<u64>,
    pub memsw_usage: Option<u64>,
    /// v1: the live cgroup's device state (from devices.list), so updates
    /// only add and remove what changed.
    pub devices_now: Option<devices::DeviceState>,
}

struct Planner<'a> {
    v: CgroupVersion,
    facts: &'a Facts,
    out: Vec<Write>,
}

impl Planner<'_> {
    fn vname(&self) -> &'static str {
        self.v.as_str()
    }

    fn need(&self, field: &str, controller: &str) -> Result<(), Error> {
        if self.facts.controllers.contains(controller) {
            Ok(())
        } else {
            Err(Error::ControllerMissing {
                field: field.to_owned(),
                controller: controller.to_owned(),
                version: self.vname(),
            })
        }
    }

    fn push(
        &mut self,
        field: &str,
        controller: &'static str,
        file: impl Into<String>,
        value: impl Into<String>,
    ) {
        let controller = if self.v == CgroupVersion::V2 {
            ""
        } else {
            controller
        };
        self.out.push(Write {
            field: field.to_owned(),
            controller,
            candidates: vec![(file.into(), value.into())],
        });
    }

    fn push_alt(
        &mut self,
        field: &str,
        controller: &'static str,
        candidates: Vec<(String, String)>,
    ) {
        let controller = if self.v == CgroupVersion::V2 {
            ""
        } else {
            controller
        };
        self.out.push(Write {
            field: field.to_owned(),
            controller,
            candidates,
        });
    }

    fn v1_only(&self, field: &str, reason: &str) -> Result<(), Error> {
        if self.v == CgroupVersion::V2 {
            Err(Error::unsupported(field, "v2", reason))
        } else {
            Ok(())
        }
    }
}

/// Plans the writes for `r`; `check_usage` compares new limits with current
/// usage (updates of live cgroups).
pub(crate) fn plan(
    v: CgroupVersion,
    r: &LinuxResources,
    facts: &Facts,
) -> Result<Vec<Write>, Error> {
    let mut p = Planner {
        v,
        facts,
        out: Vec::new(),
    };
    if let Some(m) = r.memory() {
        memory(&mut p, m)?;
    }
    if let Some(c) = r.cpu() {
        cpu(&mut p, c)?;
    }
    if let Some(pids) = r.pids() {
        let limit = pids.limit();
        if limit != 0 {
            p.need("pids.limit", "pids")?;
            let value = if limit > 0 {
                limit.to_string()
            } else {
                "max".to_owned()
            };
            p.push("pids.limit", "pids", "pids.max", value);
        }
    }
    if let Some(b) = r.block_io() {
        block_io(&mut p, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        for (i, l) in h.iter().enumerate() {
            let field = format!("hugepageLimits[{i}]");
            p.need(&field, "hugetlb")?;
            let size = l.page_size();
            if !valid_page_size(size) {
                return Err(Error::invalid(
                    &field,
                    format!("pageSize {size:?} is not like \"2MB\" or \"1GB\""),
                ));
            }
            let (file, value) = match v {
                CgroupVersion::V1 => (
                    format!("hugetlb.{size}.limit_in_bytes"),
                    if l.limit() < 0 {
                        "-1".to_owned()
                    } else {
                        l.limit().to_string()
                    },
                ),
                CgroupVersion::V2 => (
                    format!("hugetlb.{size}.max"),
                    if l.limit() < 0 {
                        "max".to_owned()
                    } else {
                        l.limit().to_string()
                    },
                ),
            };
            p.push(&field, "hugetlb", file, value);
        }
    }
    if let Some(n) = r.network() {
        if let Some(class) = n.class_id() {
            p.v1_only(
                "network.classID",
                "net_cls has no v2 equivalent (match the cgroup path in nftables instead)",
            )?;
            p.need("network.classID", "net_cls")?;
            p.push(
                "network.classID",
                "net_cls",
                "net_cls.classid",
                class.to_string(),
            );
        }
        if let Some(prios) = n.priorities() {
            for (i, prio) in prios.iter().enumerate() {
                let field = format!("network.priorities[{i}]");
                p.v1_only(&field, "net_prio has no v2 equivalent")?;
                p.need(&field, "net_prio")?;
                if prio.name().is_empty() || prio.name().contains(char::is_whitespace) {
                    return Err(Error::invalid(
                        &field,
                        format!("interface name {:?} is not valid", prio.name()),
                    ));
                }
                p.push(
                    &field,
                    "net_prio",
                    "net_prio.ifpriomap",
                    format!("{} {}", prio.name(), prio.priority()),
                );
            }
        }
    }
    if let Some(rdma) = r.rdma() {
        let mut devs: Vec<_> = rdma.iter().collect();
        devs.sort_by(|a, b| a.0.cmp(b.0));
        for (dev, l) in devs {
            let field = format!("rdma[{dev:?}]");
            p.need(&field, "rdma")?;
            if dev.is_empty() || dev.contains(char::is_whitespace) {
                return Err(Error::invalid(
                    &field,
                    "device name is empty or has whitespace",
                ));
            }
            let n = |v: Option<u32>| v.map_or("max".to_owned(), |x| x.to_string());
            p.push(
                &field,
                "rdma",
                "rdma.max",
                format!(
                    "{dev} hca_handle={} hca_object={}",
                    n(l.hca_handles()),
                    n(l.hca_objects())
                ),
            );
        }
    }
    if let Some(devs) = r.devices() {
        let rules = devices::normalize_all(devs)?;
        if v == CgroupVersion::V1 && !rules.is_empty() {
            p.need("devices", "devices")?;
            let target = devices::DeviceState::from_rules(&rules);
            for (file, line) in target.v1_writes(facts.devices_now.as_ref()) {
                p.push("devices", "devices", file, line);
            }
        }
    }
    if let Some(u) = r.unified() {
        unified(&mut p, u)?;
    }
    Ok(p.out)
}

fn valid_page_size(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && ["KB", "MB", "GB", "TB"].contains(&unit)
}

fn limit_value(field: &str, v: i64, version: CgroupVersion) -> Result<String, Error> {
    match v {
        -1 => Ok(if version == CgroupVersion::V1 {
            "-1".into()
        } else {
            "max".into()
        }),
        n if n < -1 => Err(Error::invalid(
            field,
            format!("{n} is not a valid limit (use -1 for unlimited)"),
        )),
        n => Ok(n.to_string()),
    }
}

fn memory(p: &mut Planner, m: &LinuxMemory) -> Result<(), Error> {
    let limit = m.limit().filter(|&l| l != 0);
    let swap = m.swap().filter(|&s| s != 0);
    let any = limit.is_some()
        || swap.is_some()
        || m.reservation().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true);
    #[allow(deprecated)]
    let kernel = m.kernel();
    if any || kernel.is_some() || m.kernel_tcp().is_some() {
        p.need("memory", "memory")?;
    }
    let lv = limit
        .map(|l| limit_value("memory.limit", l, p.v))
        .transpose()?;
    let sv = swap
        .map(|s| limit_value("memory.swap", s, p.v))
        .transpose()?;
    if let (Some(l), Some(s)) = (limit, swap)
        && l > 0
        && s > 0
        && s < l
    {
        return Err(Error::invalid(
            "memory.swap",
            format!("memory+swap limit {s} is below memory.limit {l}"),
        ));
    }
    // A new limit below what the cgroup already uses would make v1 fail with
    // EBUSY and make v2 reclaim or OOM-kill; refuse it up front unless the
    // spec explicitly opts out with checkBeforeUpdate=false.
    if m.check_before_update() != Some(false) {
        if let (Some(l), Some(used)) = (limit, p.facts.memory_usage)
            && l > 0
            && (l as u64) < used
        {
            return Err(Error::invalid(
                "memory.limit",
                format!("{l} bytes is below the current usage of {used} bytes"),
            ));
        }
        if let (Some(s), Some(used)) = (swap, p.facts.memsw_usage)
            && s > 0
            && (s as u64) < used
        {
            return Err(Error::invalid(
                "memory.swap",
                format!("{s} bytes is below the current memory+swap usage of {used} bytes"),
            ));
        }
    }
    if let Some(sw) = m.swappiness()
        && sw > 100
    {
        return Err(Error::invalid(
            "memory.swappiness",
            format!("{sw} is above 100"),
        ));
    }
    match p.v {
        CgroupVersion::V1 => {
            // memsw must stay >= limit at every step: raise memsw first when
            // the new memsw is above the current limit, else lower limit first.
            let lim_w = lv.map(|v| ("memory.limit", "memory.limit_in_bytes", v));
            let sw_w = sv.map(|v| ("memory.swap", "memory.memsw.limit_in_bytes", v));
            let swap_first = match swap {
                Some(-1) => true,
                Some(s) => p
                    .facts
                    .memory_limit_now
                    .is_some_and(|now| (s as u64) >= now),
                None => false,
            };
            let order = if swap_first {
                [sw_w, lim_w]
            } else {
                [lim_w, sw_w]
            };
            for (field, file, value) in order.into_iter().flatten() {
                p.push(field, "memory", file, value);
            }
            if let Some(r) = m.reservation() {
                p.push(
                    "memory.reservation",
                    "memory",
                    "memory.soft_limit_in_bytes",
                    limit_value("memory.reservation", r, p.v)?,
                );
            }
            if let Some(k) = kernel {
                p.push(
                    "memory.kernel",
                    "memory",
                    "memory.kmem.limit_in_bytes",
                    limit_value("memory.kernel", k, p.v)?,
                );
            }
            if let Some(k) = m.kernel_tcp() {
                p.push(
                    "memory.kernelTCP",
                    "memory",
                    "memory.kmem.tcp.limit_in_bytes",
                    limit_value("memory.kernelTCP", k, p.v)?,
                );
            }
            if let Some(sw) = m.swappiness() {
                p.push(
                    "memory.swappiness",
                    "memory",
                    "memory.swappiness",
                    sw.to_string(),
                );
            }
            if let Some(d) = m.disable_oom_killer() {
                p.push(
                    "memory.disableOOMKiller",
                    "memory",
                    "memory.oom_control",
                    if d { "1" } else { "0" },
                );
            }
            if let Some(h) = m.use_hierarchy() {
                p.push(
                    "memory.useHierarchy",
                    "memory",
                    "memory.use_hierarchy",
                    if h { "1" } else { "0" },
                );
            }
        }
        CgroupVersion::V2 => {
            if let Some(v) = lv {
                p.push("memory.limit", "memory", "memory.max", v);
            }
            match convert::swap_to_v2(m.swap(), m.limit()) {
                Ok(Some(s)) => {
                    p.need("memory.swap", "memory")?;
                    p.push(
                        "memory.swap",
                        "memory",
                        "memory.swap.max",
                        s.map_or("max".to_owned(), |n| n.to_string()),
                    );
                }
                Ok(None) => {}
                Err(reason) => return Err(Error::invalid("memory.swap", reason)),
            }
            if let Some(r) = m.reservation() {
                p.push(
                    "memory.reservation",
                    "memory",
                    "memory.low",
                    limit_value("memory.reservation", r, p.v)?,
                );
            }
            if kernel.is_some() {
                return Err(Error::unsupported(
                    "memory.kernel",
                    "v2",
                    "kernel memory is accounted in memory.max; there is no separate limit",
                ));
            }
            if m.kernel_tcp().is_some() {
                return Err(Error::unsupported(
                    "memory.kernelTCP",
                    "v2",
                    "kernel memory is accounted in memory.max; there is no separate limit",
                ));
            }
            if m.swappiness().is_some() {
                return Err(Error::unsupported(
                    "memory.swappiness",
                    "v2",
                    "v2 has no per-cgroup swappiness",
                ));
            }
            if m.disable_oom_killer() == Some(true) {
                return Err(Error::unsupported(
                    "memory.disableOOMKiller",
                    "v2",
                    "v2 cannot disable the OOM killer for a cgroup",
                ));
            }
            if m.use_hierarchy() == Some(false) {
                return Err(Error::unsupported(
                    "memory.useHierarchy",
                    "v2",
                    "v2 accounting is always hierarchical",
                ));
            }
        }
    }
    Ok(())
}

fn cpu(p: &mut Planner, c: &LinuxCpu) -> Result<(), Error> {
    let shares = c.shares().filter(|&s| s != 0);
    let quota = c.quota().filter(|&q| q != 0);
    let period = c.period().filter(|&q| q != 0);
    if let Some(s) = shares {
        p.need("cpu.shares", "cpu")?;
        if !(2..=262_144).contains(&s) {
            return Err(Error::invalid(
                "cpu.shares",
                format!("{s} is outside 2..=262144"),
            ));
        }
        match p.v {
            CgroupVersion::V1 => p.push("cpu.shares", "cpu", "cpu.shares", s.to_string()),
            CgroupVersion::V2 => p.push(
                "cpu.shares",
                "cpu",
                "cpu.weight",
                convert::shares_to_weight(s).to_string(),
            ),
        }
    }
    if let Some(pr) = period
        && !(1000..=1_000_000).contains(&pr)
    {
        return Err(Error::invalid(
            "cpu.period",
            format!("{pr} µs is outside 1000..=1000000"),
        ));
    }
    if let Some(q) = quota
        && q != -1
        && q < 1000
    {
        return Err(Error::invalid(
            "cpu.quota",
            format!("{q} µs is below the kernel minimum of 1000 (use -1 for unlimited)"),
        ));
    }
    if quota.is_some() || period.is_some() {
        p.need("cpu.quota", "cpu")?;
        match p.v {
            CgroupVersion::V1 => {
                if let Some(pr) = period {
                    p.push("cpu.period", "cpu", "cpu.cfs_period_us", pr.to_string());
                }
                if let Some(q) = quota {
                    p.push("cpu.quota", "cpu", "cpu.cfs_quota_us", q.to_string());
                }
            }
            CgroupVersion::V2 => {
                if let Some(v) = convert::cpu_max(quota, period) {
                    p.push("cpu.quota", "cpu", "cpu.max", v);
                }
            }
        }
    }
    if let Some(b) = c.burst() {
        p.need("cpu.burst", "cpu")?;
        let file = if p.v == CgroupVersion::V1 {
            "cpu.cfs_burst_us"
        } else {
            "cpu.max.burst"
        };
        p.push("cpu.burst", "cpu", file, b.to_string());
    }
    let rt_period = c.realtime_period().filter(|&v| v != 0);
    let rt_runtime = c.realtime_runtime().filter(|&v| v != 0);
    if rt_period.is_some() || rt_runtime.is_some() {
        p.v1_only(
            "cpu.realtimeRuntime",
            "v2 has no realtime group scheduling interface",
        )?;
        p.need("cpu.realtimeRuntime", "cpu")?;
        if let Some(v) = rt_period {
            p.push(
                "cpu.realtimePeriod",
                "cpu",
                "cpu.rt_period_us",
                v.to_string(),
            );
        }
        if let Some(v) = rt_runtime {
            p.push(
                "cpu.realtimeRuntime",
                "cpu",
                "cpu.rt_runtime_us",
                v.to_string(),
            );
        }
    }
    for (field, value, host, file) in [
        ("cpu.cpus", c.cpus(), &p.facts.host_cpus, "cpuset.cpus"),
        ("cpu.mems", c.mems(), &p.facts.host_mems, "cpuset.mems"),
    ] {
        let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        p.need(field, "cpuset")?;
        let set = convert::parse_cpu_list(value).map_err(|e| Error::invalid(field, e))?;
        if let Some(host) = host {
            let outside: BTreeSet<u32> = set.difference(host).copied().collect();
            if !outside.is_empty() {
                return Err(Error::invalid(
                    field,
                    format!(
                        "{} not available on this host (available: {})",
                        convert::format_cpu_list(&outside),
                        convert::format_cpu_list(host)
                    ),
                ));
            }
        }
        p.push(field, "cpuset", file, convert::format_cpu_list(&set));
    }
    if let Some(idle) = c.idle() {
        p.need("cpu.idle", "cpu")?;
        if idle != 0 && idle != 1 {
            return Err(Error::invalid("cpu.idle", format!("{idle} is not 0 or 1")));
        }
        p.push("cpu.idle", "cpu", "cpu.idle", idle.to_string());
    }
    Ok(())
}

fn dev_key(field: &str, major: i64, minor: i64) -> Result<String, Error> {
    if major < 0 || minor < 0 {
        return Err(Error::invalid(
            field,
            format!("device {major}:{minor} has a negative number"),
        ));
    }
    Ok(format!("{major}:{minor}"))
}

fn weight_range(field: &str, w: u16) -> Result<u64, Error> {
    if !(10..=1000).contains(&w) {
        return Err(Error::invalid(field, format!("{w} is outside 10..=1000")));
    }
    Ok(u64::from(w))
}

fn block_io(p: &mut Planner, b: &LinuxBlockIo) -> Result<(), Error> {
    let ctrl = if p.v == CgroupVersion::V1 {
        "blkio"
    } else {
        "io"
    };
    if let Some(w) = b.weight().filter(|&w| w != 0) {
        p.need("blockIO.weight", ctrl)?;
        let w = weight_range("blockIO.weight", w)?;
        let cands = match p.v {
            CgroupVersion::V1 => vec![
                ("blkio.weight".into(), w.to_string()),
                ("blkio.bfq.weight".into(), w.to_string()),
            ],
            CgroupVersion::V2 => vec![
                ("io.bfq.weight".into(), w.to_string()),
                (
                    "io.weight".into(),
                    format!("default {}", convert::blkio_weight_to_io_weight(w)),
                ),
            ],
        };
        p.push_alt("blockIO.weight", "blkio", cands);
    }
    if let Some(w) = b.leaf_weight().filter(|&w| w != 0) {
        p.v1_only("blockIO.leafWeight", "v2 has no leaf weights")?;
        p.need("blockIO.leafWeight", ctrl)?;
        let w = weight_range("blockIO.leafWeight", w)?;
        p.push(
            "blockIO.leafWeight",
            "blkio",
            "blkio.leaf_weight",
            w.to_string(),
        );
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let field = format!("blockIO.weightDevice[{i}]");
        p.need(&field, ctrl)?;
        let key = dev_key(&field, d.major(), d.minor())?;
        if let Some(w) = d.weight() {
            let w = weight_range(&field, w)?;
            let cands = match p.v {
                CgroupVersion::V1 => vec![
                    ("blkio.weight_device".into(), format!("{key} {w}")),
                    ("blkio.bfq.weight_device".into(), format!("{key} {w}")),
                ],
                CgroupVersion::V2 => vec![
                    ("io.bfq.weight".into(), format!("{key} {w}")),
                    (
                        "io.weight".into(),
                        format!("{key} {}", convert::blkio_weight_to_io_weight(w)),
                    ),
                ],
            };
            p.push_alt(&field, "blkio", cands);
        }
        if let Some(w) = d.leaf_weight() {
            p.v1_only(&format!("{field}.leafWeight"), "v2 has no leaf weights")?;
            let w = weight_range(&field, w)?;
            p.push(
                &field,
                "blkio",
                "blkio.leaf_weight_device",
                format!("{key} {w}"),
            );
        }
    }
    let throttles: [(&str, &Option<Vec<LinuxThrottleDevice>>, &str, &str); 4] = [
        (
            "blockIO.throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            "blockIO.throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            "blockIO.throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            "blockIO.throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    // v2: one io.max line per device carrying all four limits.
    let mut io_max: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for (name, list, v1_file, v2_key) in throttles {
        for (i, t) in list.iter().flatten().enumerate() {
            let field = format!("{name}[{i}]");
            p.need(&field, ctrl)?;
            let key = dev_key(&field, t.major(), t.minor())?;
            match p.v {
                CgroupVersion::V1 => {
                    p.push(&field, "blkio", v1_file, format!("{key} {}", t.rate()))
                }
                CgroupVersion::V2 => {
                    let rate = if t.rate() == 0 {
                        "max".to_owned()
                    } else {
                        t.rate().to_string()
                    };
                    let entry = io_max
                        .entry(key)
                        .or_insert_with(|| (field.clone(), Vec::new()));
                    entry.1.push(format!("{v2_key}={rate}"));
                }
            }
        }
    }
    for (key, (field, parts)) in io_max {
        p.push(
            &field,
            "blkio",
            "io.max",
            format!("{key} {}", parts.join(" ")),
        );
    }
    Ok(())
}

/// v2 `unified`: raw `<controller>.<file>` keys. Files that change state
/// rather than limits (cgroup.procs, cgroup.freeze, ...) are refused.
fn unified(p: &mut Planner, u: &std::collections::HashMap<String, String>) -> Result<(), Error> {
    if p.v == CgroupVersion::V1 {
        let first = u.keys().min().cloned().unwrap_or_default();
        return Err(Error::unsupported(
            format!("unified[{first:?}]"),
            "v1",
            "raw unified keys are cgroup v2 files; this host mounts cgroup v1",
        ));
    }
    let mut keys: Vec<_> = u.iter().collect();
    keys.sort();
    for (k, v) in keys {
        let field = format!("unified[{k:?}]");
        let valid = k.split('.').count() >= 2
            && k.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !valid {
            return Err(Error::invalid(
                &field,
                "key must look like <controller>.<file> (letters, digits, '_', '.')",
            ));
        }
        let controller = k.split('.').next().unwrap_or_default();
        if controller == "cgroup" {
            if !["cgroup.max.depth", "cgroup.max.descendants"].contains(&k.as_str()) {
                return Err(Error::invalid(
                    &field,
                    "only cgroup.max.depth and cgroup.max.descendants may be set; other cgroup.* files are not resource limits",
                ));
            }
        } else if !p.facts.controllers.contains(controller) {
            return Err(Error::invalid(
                &field,
                format!(
                    "unknown controller {controller:?} (available: {})",
                    p.facts
                        .controllers
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
        }
        if v.trim().is_empty() {
            return Err(Error::invalid(&field, "value is empty"));
        }
        let file = k.clone();
        p.out.push(Write {
            field,
            controller: "",
            candidates: vec![(file, v.clone())],
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn all_v1() -> Facts {
        Facts {
            controllers: crate::hierarchy::V1_CONTROLLERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            host_cpus: Some([0, 1].into()),
            host_mems: Some([0].into()),
            ..Facts::default()
        }
    }

    fn all_v2() -> Facts {
        Facts {
            controllers: [
                "cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc",
            ]
            .map(String::from)
            .into(),
            host_cpus: Some([0, 1].into()),
            host_mems: Some([0].into()),
            ..Facts::default()
        }
    }

    fn flat(ws: &[Write]) -> Vec<(String, String)> {
        ws.iter().map(|w| w.candidates[0].clone()).collect()
    }

    fn pair(f: &str, v: &str) -> (String, String) {
        (f.to_owned(), v.to_owned())
    }

    #[test]
    fn memory_v1_and_v2() {
        let r = res(
            r#"{"memory":{"limit":33554432,"swap":67108864,"reservation":1048576,"swappiness":10}}"#,
        );
        let v1 = plan(CgroupVersion::V1, &r, &all_v1()).unwrap();
        assert_eq!(
            flat(&v1),
            vec![
                pair("memory.limit_in_bytes", "33554432"),
                pair("memory.memsw.limit_in_bytes", "67108864"),
                pair("memory.soft_limit_in_bytes", "1048576"),
                pair("memory.swappiness", "10"),
            ]
        );
        assert!(v1.iter().all(|w| w.controller == "memory"));
        let err = plan(CgroupVersion::V2, &r, &all_v2()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("linux.resources.memory.swappiness is not supported on cgroup v2"),
            "{err}"
        );
        let r = res(r#"{"memory":{"limit":33554432,"swap":67108864,"reservation":1048576}}"#);
        let v2 = plan(CgroupVersion::V2, &r, &all_v2()).unwrap();
        assert_eq!(
            flat(&v2),
            vec![
                pair("memory.max", "33554432"),
                pair("memory.swap.max", "33554432"),
                pair("memory.low", "1048576")
            ]
        );
        let r = res(r#"{"memory":{"limit":-1}}"#);
        assert_eq!(
            flat(&plan(CgroupVersion::V2, &r, &all_v2()).unwrap()),
            vec![pair("memory.max", "max"), pair("memory.swap.max", "max")]
        );
        assert_eq!(
            flat(&plan(CgroupVersion::V1, &r, &all_v1()).unwrap()),
            vec![pair("memory.limit_in_bytes", "-1")]
        );
    }

    #[test]
    fn v1_memsw_ordering_follows_current_limit() {
        // Raising both above the current limit: memsw first.
        let facts = Facts {
            memory_limit_now: Some(10 << 20),
            ..all_v1()
        };
        let r = res(r#"{"memory":{"limit":67108864,"swap":134217728}}"#);
        let files: Vec<String> = flat(&plan(CgroupVersion::V1, &r, &facts).unwrap())
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            files,
            ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
        );
        // Lowering below the current limit: limit first.
        let facts = Facts {
            memory_limit_now: Some(512 << 20),
            ..all_v1()
        };
        let files: Vec<String> = flat(&plan(CgroupVersion::V1, &r, &facts).unwrap())
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(
            files,
            ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        );
    }

    #[test]
    fn limit_below_usage_is_refused_unless_opted_out() {
        let facts = Facts {
            memory_usage: Some(50 << 20),
            ..all_v2()
        };
        let r = res(r#"{"memory":{"limit":33554432}}"#);
        let err = plan(CgroupVersion::V2, &r, &facts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.memory.limit: 33554432 bytes is below the current usage of 52428800 bytes"
        );
        let r = res(r#"{"memory":{"limit":33554432,"checkBeforeUpdate":false}}"#);
        assert!(plan(CgroupVersion::V2, &r, &facts).is_ok());
    }

    #[test]
    fn v2_only_rejections_name_the_field() {
        for (json, field) in [
            (
                r#"{"memory":{"disableOOMKiller":true}}"#,
                "memory.disableOOMKiller",
            ),
            (r#"{"memory":{"kernel":1048576}}"#, "memory.kernel"),
            (
                r#"{"cpu":{"realtimeRuntime":950000}}"#,
                "cpu.realtimeRuntime",
            ),
            (r#"{"network":{"classID":1048577}}"#, "network.classID"),
            (r#"{"blockIO":{"leafWeight":300}}"#, "blockIO.leafWeight"),
        ] {
            let err = plan(CgroupVersion::V2, &res(json), &all_v2())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!(
                    "linux.resources.{field} is not supported on cgroup v2"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn cpu_v1_and_v2() {
        let r = res(
            r#"{"cpu":{"shares":1024,"quota":20000,"period":100000,"burst":1000,"cpus":"0-1","mems":"0","idle":0}}"#,
        );
        assert_eq!(
            flat(&plan(CgroupVersion::V1, &r, &all_v1()).unwrap()),
            vec![
                pair("cpu.shares", "1024"),
                pair("cpu.cfs_period_us", "100000"),
                pair("cpu.cfs_quota_us", "20000"),
                pair("cpu.cfs_burst_us", "1000"),
                pair("cpuset.cpus", "0-1"),
                pair("cpuset.mems", "0"),
                pair("cpu.idle", "0"),
            ]
        );
        assert_eq!(
            flat(&plan(CgroupVersion::V2, &r, &all_v2()).unwrap()),
            vec![
                pair("cpu.weight", "39"),
                pair("cpu.max", "20000 100000"),
                pair("cpu.max.burst", "1000"),
                pair("cpuset.cpus", "0-1"),
                pair("cpuset.mems", "0"),
                pair("cpu.idle", "0"),
            ]
        );
        let ws = plan(
            CgroupVersion::V1,
            &res(r#"{"cpu":{"realtimeRuntime":950000,"realtimePeriod":1000000}}"#),
            &all_v1(),
        )
        .unwrap();
        assert_eq!(
            flat(&ws),
            vec![
                pair("cpu.rt_period_us", "1000000"),
                pair("cpu.rt_runtime_us", "950000")
            ]
        );
    }

    #[test]
    fn cpuset_outside_host_is_refused() {
        let err = plan(
            CgroupVersion::V1,
            &res(r#"{"cpu":{"cpus":"1-5"}}"#),
            &all_v1(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.cpu.cpus: 2-5 not available on this host (available: 0-1)"
        );
        let err = plan(
            CgroupVersion::V2,
            &res(r#"{"cpu":{"mems":"x"}}"#),
            &all_v2(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("linux.resources.cpu.mems: "),
            "{err}"
        );
    }

    #[test]
    fn bad_cpu_values() {
        for (json, field) in [
            (r#"{"cpu":{"shares":1}}"#, "cpu.shares"),
            (r#"{"cpu":{"quota":10}}"#, "cpu.quota"),
            (r#"{"cpu":{"period":10}}"#, "cpu.period"),
            (r#"{"cpu":{"idle":3}}"#, "cpu.idle"),
        ] {
            let err = plan(CgroupVersion::V1, &res(json), &all_v1())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("linux.resources.{field}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn missing_controller_is_named() {
        let facts = Facts {
            controllers: ["memory".to_string()].into(),
            ..Facts::default()
        };
        let err = plan(CgroupVersion::V1, &res(r#"{"pids":{"limit":10}}"#), &facts).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.pids.limit: the pids controller is not available on this host's cgroup v1 hierarchy"
        );
        let err = plan(
            CgroupVersion::V1,
            &res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#),
            &facts,
        )
        .unwrap_err();
        assert!(err.to_string().contains("hugetlb controller"), "{err}");
    }

    #[test]
    fn pids_and_hugetlb_and_rdma() {
        let r = res(
            r#"{"pids":{"limit":-1},"hugepageLimits":[{"pageSize":"2MB","limit":4194304}],"rdma":{"mlx5_1":{"hcaHandles":3}}}"#,
        );
        assert_eq!(
            flat(&plan(CgroupVersion::V1, &r, &all_v1()).unwrap()),
            vec![
                pair("pids.max", "max"),
                pair("hugetlb.2MB.limit_in_bytes", "4194304"),
                pair("rdma.max", "mlx5_1 hca_handle=3 hca_object=max")
            ]
        );
        assert_eq!(
            flat(&plan(CgroupVersion::V2, &r, &all_v2()).unwrap()),
            vec![
                pair("pids.max", "max"),
                pair("hugetlb.2MB.max", "4194304"),
                pair("rdma.max", "mlx5_1 hca_handle=3 hca_object=max")
            ]
        );
        let err = plan(
            CgroupVersion::V2,
            &res(r#"{"hugepageLimits":[{"pageSize":"2M","limit":1}]}"#),
            &all_v2(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("linux.resources.hugepageLimits[0]: pageSize \"2M\""),
            "{err}"
        );
    }

    #[test]
    fn block_io_v1_and_v2() {
        let r = res(
            r#"{"blockIO":{"weight":500,"weightDevice":[{"major":8,"minor":0,"weight":300}],
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],
                "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":100}]}}"#,
        );
        let v1 = plan(CgroupVersion::V1, &r, &all_v1()).unwrap();
        assert_eq!(
            v1[0].candidates,
            vec![pair("blkio.weight", "500"), pair("blkio.bfq.weight", "500")]
        );
        assert_eq!(
            v1[1].candidates,
            vec![
                pair("blkio.weight_device", "8:0 300"),
                pair("blkio.bfq.weight_device", "8:0 300")
            ]
        );
        assert_eq!(
            v1[2].candidates,
            vec![pair("blkio.throttle.read_bps_device", "8:0 1048576")]
        );
        assert_eq!(
            v1[3].candidates,
            vec![pair("blkio.throttle.write_iops_device", "8:0 100")]
        );
        let v2 = plan(CgroupVersion::V2, &r, &all_v2()).unwrap();
        assert_eq!(
            v2[0].candidates,
            vec![
                pair("io.bfq.weight", "500"),
                pair("io.weight", "default 4950")
            ]
        );
        assert_eq!(
            v2[1].candidates,
            vec![
                pair("io.bfq.weight", "8:0 300"),
                pair("io.weight", "8:0 2930")
            ]
        );
        assert_eq!(
            v2[2].candidates,
            vec![pair("io.max", "8:0 rbps=1048576 wiops=100")]
        );
        assert_eq!(v2.len(), 3);
    }

    #[test]
    fn network_v1() {
        let r =
            res(r#"{"network":{"classID":1048577,"priorities":[{"name":"eth0","priority":5}]}}"#);
        let ws = plan(CgroupVersion::V1, &r, &all_v1()).unwrap();
        assert_eq!(
            flat(&ws),
            vec![
                pair("net_cls.classid", "1048577"),
                pair("net_prio.ifpriomap", "eth0 5")
            ]
        );
        assert_eq!(ws[1].controller, "net_prio");
    }

    #[test]
    fn unified_keys() {
        let r = res(r#"{"unified":{"memory.high":"50000000","pids.max":"20"}}"#);
        assert_eq!(
            flat(&plan(CgroupVersion::V2, &r, &all_v2()).unwrap()),
            vec![pair("memory.high", "50000000"), pair("pids.max", "20")]
        );
        let err = plan(CgroupVersion::V1, &r, &all_v1()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.unified[\"memory.high\"] is not supported on cgroup v1: raw unified keys are cgroup v2 files; this host mounts cgroup v1"
        );
        for (key, msg) in [
            ("../memory.max", "key must look like"),
            ("memoryhigh", "key must look like"),
            ("foo.max", "unknown controller \"foo\""),
            ("cgroup.procs", "only cgroup.max.depth"),
        ] {
            let r: LinuxResources =
                serde_json::from_value(serde_json::json!({"unified": {key: "1"}})).unwrap();
            let err = plan(CgroupVersion::V2, &r, &all_v2())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("linux.resources.unified[{key:?}]: "))
                    && err.contains(msg),
                "{err}"
            );
        }
    }

    #[test]
    fn devices_v1_start_from_deny_all() {
        let r = res(
            r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]}"#,
        );
        let ws = plan(CgroupVersion::V1, &r, &all_v1()).unwrap();
        assert_eq!(
            flat(&ws),
            vec![pair("devices.deny", "a"), pair("devices.allow", "c 1:3 rw")]
        );
        // Updating a live cgroup: only the difference, grants first.
        let now = devices::DeviceState::parse_list("c 1:5 rwm\n").unwrap();
        let facts = Facts {
            devices_now: Some(now),
            ..all_v1()
        };
        let ws = plan(CgroupVersion::V1, &r, &facts).unwrap();
        assert_eq!(
            flat(&ws),
            vec![
                pair("devices.allow", "c 1:3 rw"),
                pair("devices.deny", "c 1:5 rwm")
            ]
        );
        // v2 devices are an eBPF program, not file writes.
        assert!(plan(CgroupVersion::V2, &r, &all_v2()).unwrap().is_empty());
    }

    #[test]
    fn nothing_planned_for_empty_resources() {
        assert!(
            plan(CgroupVersion::V1, &res("{}"), &Facts::default())
                .unwrap()
                .is_empty()
        );
        assert!(
            plan(
                CgroupVersion::V2,
                &res(r#"{"memory":{},"cpu":{}}"#),
                &Facts::default()
            )
            .unwrap()
            .is_empty()
        );
    }
}
