//! One container's cgroup: creation, limits, membership, freezing, stats,
//! teardown — for v1 (a directory per controller) and v2 (one directory).

use crate::cgpath::{self, CgPath};
use crate::devices;
use crate::ebpf;
use crate::fsutil;
use crate::plan::{self, Facts, Write};
use crate::stats::{self, Stats};
use crate::{CgroupVersion, Error, Hierarchy};
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long freeze waits for FROZEN.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
/// destroy: kill-and-rmdir rounds before giving up.
const DESTROY_ATTEMPTS: u32 = 10;

/// A container's cgroup (all its controller directories on v1). Holds only
/// paths, so the runtime can store it in state.json and reload it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    version: CgroupVersion,
    /// The cgroup path the container got, relative to the hierarchy root
    /// (v1: as resolved for the first controller).
    cgroup: String,
    /// v1: controller → leaf directory; v2: "" → leaf directory.
    dirs: BTreeMap<String, PathBuf>,
    /// v1: controller → mount point; v2: "" → hierarchy root.
    mounts: BTreeMap<String, PathBuf>,
}

impl Manager {
    /// Resolves `linux.cgroupsPath` (see `cgpath` for the rules: absolute is
    /// under the hierarchy root, relative under the caller's own cgroup — its
    /// parent on v2 —, empty is `/berth/<id>`). No filesystem effects.
    pub fn new(h: &Hierarchy, cgroups_path: &str, container_id: &str) -> Result<Manager, Error> {
        let parsed = cgpath::parse(cgroups_path, container_id)?;
        let resolve = |own: &str| match &parsed {
            CgPath::Absolute(p) => p.clone(),
            CgPath::Relative(r) => cgpath::join(own, r),
        };
        let mut dirs = BTreeMap::new();
        let mut mounts = BTreeMap::new();
        let cgroup;
        match h.version() {
            CgroupVersion::V1 => {
                for (ctrl, mount) in h.mounts() {
                    let cg = resolve(h.own_cgroup(ctrl));
                    dirs.insert(ctrl.clone(), mount.join(cg.trim_start_matches('/')));
                    mounts.insert(ctrl.clone(), mount.clone());
                }
                // Relative paths can differ per v1 controller; report the
                // first controller's (they agree when the caller's cgroups do).
                cgroup = resolve(h.mounts().keys().next().map_or("/", |c| h.own_cgroup(c)));
            }
            CgroupVersion::V2 => {
                cgroup = resolve(cgpath::parent(h.own_cgroup("")));
                dirs.insert(String::new(), h.root().join(cgroup.trim_start_matches('/')));
                mounts.insert(String::new(), h.root().to_owned());
            }
        }
        Ok(Manager {
            version: h.version(),
            cgroup,
            dirs,
            mounts,
        })
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The container's cgroup path relative to the hierarchy root.
    pub fn cgroup_path(&self) -> &str {
        &self.cgroup
    }

    /// runc's state.json `cgroup_paths`: controller → directory (v2: "" → dir).
    pub fn paths(&self) -> BTreeMap<String, PathBuf> {
        self.dirs.clone()
    }

    /// True while any of the container's cgroup directories exists.
    pub fn exists(&self) -> bool {
        self.dirs.values().any(|d| d.is_dir())
    }

    /// The distinct (mount, leaf) pairs; co-mounted v1 controllers share one.
    fn leaves(&self) -> Vec<(&Path, &Path)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (ctrl, dir) in &self.dirs {
            if seen.insert(dir.as_path()) {
                out.push((self.mounts[ctrl].as_path(), dir.as_path()));
            }
        }
        out
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        match self.version {
            CgroupVersion::V2 => self.dirs.get("").map(PathBuf::as_path),
            CgroupVersion::V1 => self.dirs.get(controller).map(PathBuf::as_path),
        }
    }

    fn v2_leaf(&self) -> &Path {
        &self.dirs[""]
    }

    fn controllers(&self) -> Result<BTreeSet<String>, Error> {
        match self.version {
            CgroupVersion::V1 => Ok(self.dirs.keys().cloned().collect()),
            CgroupVersion::V2 => {
                let text = fsutil::read(&self.mounts[""].join("cgroup.controllers"))?;
                Ok(text.split_whitespace().map(str::to_owned).collect())
            }
        }
    }

    /// Host facts for planning; `live` adds current usage (updates).
    fn facts(&self, live: bool) -> Result<Facts, Error> {
        let set = |text: Option<String>| {
            text.and_then(|t| crate::convert::parse_cpu_list(&t).ok())
                .filter(|s| !s.is_empty())
        };
        let read_opt = |p: PathBuf| std::fs::read_to_string(p).ok();
        let (cpus_file, mems_file) = match self.version {
            CgroupVersion::V1 => (
                self.mounts
                    .get("cpuset")
                    .map(|m| m.join("cpuset.effective_cpus")),
                self.mounts
                    .get("cpuset")
                    .map(|m| m.join("cpuset.effective_mems")),
            ),
            CgroupVersion::V2 => (
                Some(self.mounts[""].join("cpuset.cpus.effective")),
                Some(self.mounts[""].join("cpuset.mems.effective")),
            ),
        };
        let host_cpus = set(cpus_file.and_then(read_opt))
            .or_else(|| set(read_opt("/sys/devices/system/cpu/online".into())));
        let host_mems = set(mems_file.and_then(read_opt))
            .or_else(|| set(read_opt("/sys/devices/system/node/online".into())));
        let mut facts = Facts {
            controllers: self.controllers()?,
            host_cpus,
            host_mems,
            ..Facts::default()
        };
        let num = |p: Option<PathBuf>| {
            p.and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|t| fsutil::parse_max(&t))
        };
        if live
            && self.version == CgroupVersion::V1
            && let Some(dev) = self.dir_of("devices")
        {
            facts.devices_now = std::fs::read_to_string(dev.join("devices.list"))
                .ok()
                .and_then(|t| devices::DeviceState::parse_list(&t));
        }
        if let Some(mem) = self.dir_of("memory") {
            match self.version {
                CgroupVersion::V1 => {
                    facts.memory_limit_now =
                        num(Some(mem.join("memory.limit_in_bytes"))).filter(|&l| l < (1 << 62));
                    if live {
                        facts.memory_usage = num(Some(mem.join("memory.usage_in_bytes")));
                        facts.memsw_usage = num(Some(mem.join("memory.memsw.usage_in_bytes")));
                    }
                }
                CgroupVersion::V2 if live => {
                    facts.memory_usage = num(Some(mem.join("memory.current")));
                    facts.memsw_usage = num(Some(mem.join("memory.swap.current")))
                        .map(|s| s + facts.memory_usage.unwrap_or(0));
                }
                CgroupVersion::V2 => {}
            }
        }
        Ok(facts)
    }

    /// Validates `resources`, creates the cgroup (parents too; on v2 enabling
    /// the available controllers in each ancestor's cgroup.subtree_control)
    /// and applies the limits. On error, directories it created are removed.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<(), Error> {
        let empty = LinuxResources::default();
        let r = resources.unwrap_or(&empty);
        let facts = self.facts(false)?;
        let writes = plan::plan(self.version, r, &facts)?;
        let rules = devices::normalize_all(r.devices().as_deref().unwrap_or_default())?;
        let mut created = Vec::new();
        let result = self.make_dirs(&mut created).and_then(|()| {
            if self.version == CgroupVersion::V2 {
                self.enable_controllers()?;
            }
            self.apply(&writes)?;
            self.apply_device_program(&rules)
        });
        if result.is_err() {
            for dir in created.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        result
    }

    fn make_dirs(&self, created: &mut Vec<PathBuf>) -> Result<(), Error> {
        for (mount, leaf) in self.leaves() {
            let rel = leaf.strip_prefix(mount).unwrap_or(leaf);
            let mut cur = mount.to_path_buf();
            for comp in rel.components() {
                let parent = cur.clone();
                cur.push(comp);
                if !cur.exists() {
                    std::fs::create_dir(&cur).map_err(Error::io("create cgroup", &cur))?;
                    created.push(cur.clone());
                }
                if self.version == CgroupVersion::V1
                    && self.mounts.get("cpuset").is_some_and(|m| m == mount)
                {
                    init_v1_cpuset(&parent, &cur)?;
                }
            }
        }
        Ok(())
    }

    /// v2: each ancestor of the leaf must delegate the controllers to its
    /// children (cgroup-v2.rst "Enabling and Disabling"). One write per
    /// controller, so one that cannot be enabled does not block the others;
    /// a limit that needs it then fails naming its field.
    fn enable_controllers(&self) -> Result<(), Error> {
        let root = &self.mounts[""];
        let leaf = self.v2_leaf();
        let rel = leaf.strip_prefix(root).unwrap_or(leaf);
        let mut cur = root.clone();
        let comps: Vec<_> = rel.components().collect();
        for comp in comps
            .iter()
            .take(comps.len().saturating_sub(1))
            .copied()
            .chain(std::iter::once(std::path::Component::CurDir))
        {
            let available = fsutil::read(&cur.join("cgroup.controllers"))?;
            let enabled = fsutil::read(&cur.join("cgroup.subtree_control"))?;
            let enabled: BTreeSet<&str> = enabled.split_whitespace().collect();
            for c in available
                .split_whitespace()
                .filter(|c| !enabled.contains(c))
            {
                let _ = fsutil::write_raw(&cur.join("cgroup.subtree_control"), &format!("+{c}"));
            }
            if comp != std::path::Component::CurDir {
                cur.push(comp);
            }
        }
        Ok(())
    }

    /// Writes the plan: first checks every target file exists (so a missing
    /// kernel feature is reported before anything changes), then writes,
    /// restoring earlier single-value files if a later write fails.
    fn apply(&self, writes: &[Write]) -> Result<(), Error> {
        let mut resolved = Vec::with_capacity(writes.len());
        for w in writes {
            let dir = self
                .dir_of(w.controller)
                .ok_or_else(|| Error::ControllerMissing {
                    field: w.field.clone(),
                    controller: w.controller.to_owned(),
                    version: self.version.as_str(),
                })?;
            let found = w
                .candidates
                .iter()
                .find(|(file, _)| dir.join(file).exists());
            let Some((file, value)) = found else {
                let files: Vec<&str> = w.candidates.iter().map(|c| c.0.as_str()).collect();
                return Err(Error::unsupported(
                    &w.field,
                    self.version.as_str(),
                    format!(
                        "this kernel provides no {} in {} (controller disabled or feature not built)",
                        files.join(" or "),
                        dir.display()
                    ),
                ));
            };
            resolved.push((&w.field, dir.join(file), value));
        }
        let mut done: Vec<(PathBuf, Option<String>)> = Vec::new();
        for (field, path, value) in resolved {
            let old = std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && !s.contains('\n'));
            if let Err(source) = fsutil::write_raw(&path, value) {
                for (p, old) in done.iter().rev() {
                    if let Some(old) = old {
                        let _ = fsutil::write_raw(p, old);
                    }
                }
                return Err(Error::Apply {
                    field: field.clone(),
                    path,
                    value: value.clone(),
                    source,
                });
            }
            done.push((path, old));
        }
        Ok(())
    }

    fn apply_device_program(&self, rules: &[devices::Rule]) -> Result<(), Error> {
        if self.version != CgroupVersion::V2 || rules.is_empty() {
            return Ok(());
        }
        let fd = open_dir(self.v2_leaf())?;
        ebpf::install(&fd, &devices::DeviceState::from_rules(rules))
    }

    /// Number of berth device programs attached (v2; 0 on v1).
    pub fn device_programs(&self) -> Result<usize, Error> {
        if self.version != CgroupVersion::V2 {
            return Ok(0);
        }
        ebpf::attached_count(&open_dir(self.v2_leaf())?)
    }

    /// Moves `pid` into the container's cgroup(s).
    pub fn add_pid(&self, pid: i32) -> Result<(), Error> {
        for (_, dir) in self.leaves() {
            fsutil::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The `cgroup.procs` files a process writes "0" to, to join the cgroup
    /// itself (e.g. between fork and exec).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.leaves()
            .into_iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    /// v2: a directory fd of the leaf for clone3(CLONE_INTO_CGROUP), so the
    /// child starts inside it (clone(2), CLONE_INTO_CGROUP, Linux 5.7+).
    /// Opened O_RDONLY|O_DIRECTORY|O_CLOEXEC. None on v1.
    pub fn clone_into_fd(&self) -> Result<Option<OwnedFd>, Error> {
        match self.version {
            CgroupVersion::V1 => Ok(None),
            CgroupVersion::V2 => open_dir(self.v2_leaf()).map(Some),
        }
    }

    /// Validates and applies new limits to the live cgroup (limits below
    /// current usage are refused unless memory.checkBeforeUpdate=false).
    pub fn update(&self, resources: &LinuxResources) -> Result<(), Error> {
        let facts = self.facts(true)?;
        let writes = plan::plan(self.version, resources, &facts)?;
        let rules = devices::normalize_all(resources.devices().as_deref().unwrap_or_default())?;
        self.apply(&writes)?;
        self.apply_device_program(&rules)
    }

    fn freezer_file(&self) -> Result<PathBuf, Error> {
        match self.version {
            CgroupVersion::V1 => self
                .dirs
                .get("freezer")
                .map(|d| d.join("freezer.state"))
                .ok_or(Error::NoController {
                    op: "freeze",
                    controller: "freezer",
                }),
            CgroupVersion::V2 => Ok(self.v2_leaf().join("cgroup.freeze")),
        }
    }

    /// Freezes every process and waits until the kernel reports it frozen.
    pub fn freeze(&self) -> Result<(), Error> {
        let file = self.freezer_file()?;
        let value = if self.version == CgroupVersion::V1 {
            "FROZEN"
        } else {
            "1"
        };
        fsutil::write(&file, value)?;
        let start = Instant::now();
        let mut tick = 0u32;
        while start.elapsed() < FREEZE_TIMEOUT {
            if self.is_frozen()? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
            tick += 1;
            // v1 can sit in FREEZING when a task races a fork; writing again
            // retries the freeze (as runc does).
            if self.version == CgroupVersion::V1 && tick.is_multiple_of(20) {
                fsutil::write(&file, value)?;
            }
        }
        let _ = self.thaw();
        Err(Error::Timeout {
            what: "the freeze to complete",
            path: file,
            millis: FREEZE_TIMEOUT.as_millis(),
        })
    }

    pub fn thaw(&self) -> Result<(), Error> {
        let file = self.freezer_file()?;
        fsutil::write(
            &file,
            if self.version == CgroupVersion::V1 {
                "THAWED"
            } else {
                "0"
            },
        )
    }

    /// True once the cgroup is completely frozen (v1 FROZEN, v2 `frozen 1`
    /// in cgroup.events).
    pub fn is_frozen(&self) -> Result<bool, Error> {
        match self.version {
            CgroupVersion::V1 => Ok(fsutil::read(&self.freezer_file()?)?.trim() == "FROZEN"),
            CgroupVersion::V2 => {
                let events = fsutil::read_flat_keyed(&self.v2_leaf().join("cgroup.events"))?;
                Ok(events.get("frozen") == Some(&1))
            }
        }
    }

    /// Every pid in the cgroup and its descendants, sorted.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        let mut pids = BTreeSet::new();
        for (_, leaf) in self.leaves() {
            for dir in subtree(leaf)? {
                match std::fs::read_to_string(dir.join("cgroup.procs")) {
                    Ok(text) => pids.extend(fsutil::parse_pids(&text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("read", dir.join("cgroup.procs"))(e)),
                }
            }
        }
        Ok(pids.into_iter().collect())
    }

    /// Sends `signal` to every process. v2 SIGKILL uses cgroup.kill; else the
    /// cgroup is frozen while signalling so no new child escapes (as runc),
    /// and thawed again (for SIGKILL always, so frozen tasks can die).
    pub fn kill_all(&self, signal: i32) -> Result<(), Error> {
        if self.version == CgroupVersion::V2 && signal == libc::SIGKILL {
            let kill = self.v2_leaf().join("cgroup.kill");
            if kill.exists() {
                return fsutil::write(&kill, "1");
            }
        }
        let was_frozen = self.is_frozen().unwrap_or(false);
        let froze = !was_frozen && self.freezer_file().is_ok() && self.freeze().is_ok();
        let result = (|| {
            for pid in self.pids()? {
                // SAFETY: kill(2) with a pid read from cgroup.procs; ESRCH
                // (already gone) is fine.
                if unsafe { libc::kill(pid, signal) } != 0 {
                    let err = std::io::Error::last_os_error();
                    if err.raw_os_error() != Some(libc::ESRCH) {
                        return Err(Error::io("kill", format!("pid {pid}"))(err));
                    }
                }
            }
            Ok(())
        })();
        if froze || (was_frozen && signal == libc::SIGKILL) {
            self.thaw()?;
        }
        result
    }

    /// Removes the cgroup (descendants first), killing what is left in it;
    /// bounded retries, then [`Error::Busy`]. Missing directories are fine.
    pub fn destroy(&self) -> Result<(), Error> {
        let mut busy = Vec::new();
        for attempt in 1..=DESTROY_ATTEMPTS {
            if !self.pids().unwrap_or_default().is_empty() {
                let _ = self.kill_all(libc::SIGKILL);
            }
            busy.clear();
            for (_, leaf) in self.leaves() {
                for dir in subtree(leaf)?.into_iter().rev() {
                    match std::fs::remove_dir(&dir) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => busy.push(dir),
                        Err(e) => return Err(Error::io("remove cgroup", &dir)(e)),
                    }
                }
            }
            if busy.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10 * u64::from(attempt.min(20))));
        }
        Err(Error::Busy {
            path: busy.swap_remove(0),
            attempts: DESTROY_ATTEMPTS,
            pids: self.pids().unwrap_or_default(),
        })
    }

    /// OOM kills in the cgroup so far (v1 memory.oom_control `oom_kill`,
    /// v2 memory.events `oom_kill`).
    pub fn oom_kill_count(&self) -> Result<u64, Error> {
        let dir = self.dir_of("memory").ok_or(Error::NoController {
            op: "OOM events",
            controller: "memory",
        })?;
        let file = match self.version {
            CgroupVersion::V1 => dir.join("memory.oom_control"),
            CgroupVersion::V2 => dir.join("memory.events"),
        };
        Ok(fsutil::read_flat_keyed(&file)?
            .get("oom_kill")
            .copied()
            .unwrap_or(0))
    }

    /// Polls until the OOM-kill count exceeds `seen` (returns the new count)
    /// or `timeout` passes (None). The `events` stream calls this in a loop.
    pub fn wait_oom(&self, seen: u64, timeout: Duration) -> Result<Option<u64>, Error> {
        let start = Instant::now();
        loop {
            let n = self.oom_kill_count()?;
            if n > seen {
                return Ok(Some(n));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Current usage in runc's `events --stats` shape. Controllers the host
    /// lacks leave their section zero.
    pub fn stats(&self) -> Result<Stats, Error> {
        match self.version {
            CgroupVersion::V1 => self.stats_v1(),
            CgroupVersion::V2 => self.stats_v2(),
        }
    }

    fn stats_v1(&self) -> Result<Stats, Error> {
        let mut s = Stats::default();
        let opt =
            |d: Option<&Path>, f: &str| d.and_then(|d| std::fs::read_to_string(d.join(f)).ok());
        let acct = self.dir_of("cpuacct");
        if let Some(t) = opt(acct, "cpuacct.usage") {
            s.cpu.usage.total = t.trim().parse().unwrap_or(0);
        }
        if let Some(t) = opt(acct, "cpuacct.usage_percpu") {
            s.cpu.usage.percpu = stats::parse_percpu(&t);
        }
        if let Some(t) = opt(acct, "cpuacct.usage_percpu_sys") {
            s.cpu.usage.percpu_kernel = stats::parse_percpu(&t);
        }
        if let Some(t) = opt(acct, "cpuacct.usage_percpu_user") {
            s.cpu.usage.percpu_user = stats::parse_percpu(&t);
        }
        if let Some(t) = opt(acct, "cpuacct.stat") {
            (s.cpu.usage.user, s.cpu.usage.kernel) = stats::parse_cpuacct_stat(&t);
        }
        if let Some(t) = opt(self.dir_of("cpu"), "cpu.stat") {
            s.cpu.throttling = stats::parse_throttling(&t, false);
        }
        let mem = self.dir_of("memory");
        let entry = |prefix: &str| {
            let n = |f: &str| {
                opt(mem, &format!("{prefix}.{f}"))
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            stats::MemoryEntry {
                limit: n("limit_in_bytes"),
                usage: n("usage_in_bytes"),
                max: n("max_usage_in_bytes"),
                failcnt: n("failcnt"),
            }
        };
        if mem.is_some() {
            s.memory.usage = entry("memory");
            s.memory.swap = entry("memory.memsw");
            s.memory.kernel = entry("memory.kmem");
            s.memory.kernel_tcp = entry("memory.kmem.tcp");
            if let Some(t) = opt(mem, "memory.stat") {
                s.memory.raw = fsutil::parse_flat_keyed(&t);
                // runc reports the cgroup's own `cache`, not total_cache.
                s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
            }
        }
        if let Some(dir) = self.dir_of("cpuset") {
            s.cpuset = stats::cpuset_v1(|f| std::fs::read_to_string(dir.join(f)).ok());
        }
        let pids = self.dir_of("pids");
        if let Some(t) = opt(pids, "pids.current") {
            s.pids.current = t.trim().parse().unwrap_or(0);
        }
        if let Some(t) = opt(pids, "pids.max") {
            s.pids.limit = fsutil::parse_max(&t).unwrap_or(0);
        }
        // runc's order: CFQ's files (gone since Linux 5.0), BFQ's (filled
        // only under the bfq scheduler), the throttle layer's. The first
        // with per-device lines wins; the others hold just "Total 0".
        let blkio = self.dir_of("blkio");
        let pick = |names: &[&str]| {
            names
                .iter()
                .filter_map(|n| opt(blkio, n))
                .map(|t| stats::parse_blkio_v1(&t))
                .find(|entries| !entries.is_empty())
                .unwrap_or_default()
        };
        s.blkio.io_service_bytes_recursive = pick(&[
            "blkio.io_service_bytes_recursive",
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ]);
        s.blkio.io_serviced_recursive = pick(&[
            "blkio.io_serviced_recursive",
            "blkio.bfq.io_serviced_recursive",
            "blkio.throttle.io_serviced_recursive",
        ]);
        if let Some(dir) = self.dir_of("hugetlb") {
            for size in hugetlb_sizes(dir, ".limit_in_bytes") {
                let n = |f: &str| {
                    opt(Some(dir), &format!("hugetlb.{size}.{f}"))
                        .and_then(|t| t.trim().parse().ok())
                        .unwrap_or(0)
                };
                s.hugetlb.insert(
                    size.clone(),
                    stats::Hugetlb {
                        usage: n("usage_in_bytes"),
                        max: n("max_usage_in_bytes"),
                        failcnt: n("failcnt"),
                    },
                );
            }
        }
        Ok(s)
    }

    fn stats_v2(&self) -> Result<Stats, Error> {
        let mut s = Stats::default();
        let dir = self.v2_leaf();
        let opt = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let num = |f: &str| {
            opt(f)
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        if let Some(t) = opt("cpu.stat") {
            s.cpu.usage = stats::parse_cpu_stat_v2(&t);
            s.cpu.throttling = stats::parse_throttling(&t, true);
        }
        if let Some(t) = opt("memory.current") {
            let usage = t.trim().parse().unwrap_or(0);
            let events = opt("memory.events")
                .map(|t| fsutil::parse_flat_keyed(&t))
                .unwrap_or_default();
            let limit = opt("memory.max")
                .map(|t| stats::limit_of(&t))
                .unwrap_or(u64::MAX);
            s.memory.usage = stats::MemoryEntry {
                limit,
                usage,
                max: num("memory.peak"),
                failcnt: events.get("max").copied().unwrap_or(0),
            };
            // As runc: v2 swap figures include memory, to read like v1 memsw.
            if let Some(t) = opt("memory.swap.current") {
                let swap = t.trim().parse::<u64>().unwrap_or(0);
                let swap_max = opt("memory.swap.max")
                    .map(|t| stats::limit_of(&t))
                    .unwrap_or(u64::MAX);
                s.memory.swap = stats::MemoryEntry {
                    limit: swap_max.saturating_add(limit),
                    usage: swap + usage,
                    max: 0,
                    failcnt: 0,
                };
            }
            if let Some(t) = opt("memory.stat") {
                s.memory.raw = fsutil::parse_flat_keyed(&t);
                s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
            }
        }
        if let Some(t) = opt("pids.current") {
            s.pids.current = t.trim().parse().unwrap_or(0);
            s.pids.limit = opt("pids.max")
                .and_then(|t| fsutil::parse_max(&t))
                .unwrap_or(0);
        }
        if let Some(t) = opt("io.stat") {
            (
                s.blkio.io_service_bytes_recursive,
                s.blkio.io_serviced_recursive,
            ) = stats::parse_io_stat(&t);
        }
        for size in hugetlb_sizes(dir, ".max") {
            let events = opt(&format!("hugetlb.{size}.events"))
                .map(|t| fsutil::parse_flat_keyed(&t))
                .unwrap_or_default();
            s.hugetlb.insert(
                size.clone(),
                stats::Hugetlb {
                    usage: num(&format!("hugetlb.{size}.current")),
                    max: 0,
                    failcnt: events.get("max").copied().unwrap_or(0),
                },
            );
        }
        Ok(s)
    }
}

/// The dir and all directories below it, parents before children. A missing
/// dir yields nothing.
fn subtree(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut queue = vec![dir.to_path_buf()];
    while let Some(d) = queue.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read dir", &d)(e)),
        };
        out.push(d);
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                queue.push(e.path());
            }
        }
    }
    // Depth order: sort by component count so parents come first.
    out.sort_by_key(|p| p.components().count());
    Ok(out)
}

/// Page sizes with a `hugetlb.<size><suffix>` file in `dir`.
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut sizes: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_owned())
        })
        .collect();
    sizes.sort();
    sizes
}

/// A new v1 cpuset cgroup starts with empty cpus/mems, and no task can join
/// it until they are set (cgroup-v1/cpusets.rst); copy the parent's.
fn init_v1_cpuset(parent: &Path, dir: &Path) -> Result<(), Error> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let cur = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        if cur.trim().is_empty() {
            let from = fsutil::read(&parent.join(f))?;
            if !from.trim().is_empty() {
                fsutil::write(&dir.join(f), from.trim())?;
            }
        }
    }
    Ok(())
}

fn open_dir(dir: &Path) -> Result<OwnedFd, Error> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(Error::io("open cgroup directory", dir))?;
    Ok(f.into())
}
