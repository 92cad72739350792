//! The runtime's side of resource control, on top of `berth-cgroups`: the
//! container's cgroup is created (limits applied) before the init is
//! cloned into it, recorded in state.json as the serialised
//! [`Manager`], and used afterwards for `pause`/`resume`, `update`,
//! `kill --all`, `ps`, `events` and `delete`.
//!
//! Rootless (euid ≠ 0) without a writable (delegated) parent cgroup, a
//! container runs in the caller's cgroup when it asks for no limits, and
//! is refused when it does; its processes are then found through its pid
//! namespace (see [`pids`]).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use berth_cgroups::{CgroupVersion, Hierarchy, Manager, default_devices};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxMemory,
    LinuxResources, Spec,
};

use crate::container::Runtime;
use crate::error::{Error, Result};
use crate::state::{State, Status};

/// A cgroups-layer error as a runtime error (the message names the field
/// or file that was wrong).
fn cg_err(e: berth_cgroups::Error) -> Error {
    Error::Other(format!("cgroup: {e}"))
}

/// The container's cgroup while `create` runs. Removed on drop unless
/// [`Cgroup::keep`] was called, so a failed create leaves nothing behind.
pub struct Cgroup {
    manager: Option<Manager>,
    keep: std::cell::Cell<bool>,
}

impl Cgroup {
    /// Creates the container's cgroup with the spec's `linux.resources`
    /// (validated first: nothing is created when they are wrong).
    pub fn create(id: &str, spec: &Spec) -> Result<Cgroup> {
        let linux = spec.linux().as_ref();
        let resources = linux
            .and_then(|l| l.resources().clone())
            .unwrap_or_default();
        let cgroups_path = linux
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let h = Hierarchy::detect().map_err(cg_err)?;
        let m = Manager::new(&h, &cgroups_path, id).map_err(cg_err)?;
        // SAFETY: geteuid cannot fail.
        let rootless = unsafe { libc::geteuid() } != 0;
        if rootless && !m.paths().values().all(|d| writable_parent(d)) {
            if requests_limits(&resources) {
                return Err(Error::Unsupported(format!(
                    "linux.resources: limits were requested but this rootless runtime cannot write the cgroup {} (no delegated cgroup); remove linux.resources or delegate a cgroup to this user",
                    m.cgroup_path()
                )));
            }
            return Ok(Cgroup {
                manager: None,
                keep: false.into(),
            });
        }
        let mut full = resources;
        if rootless {
            // Device rules need privilege the user does not have (v1's
            // devices.deny wants CAP_SYS_ADMIN; v2's filter is an eBPF
            // program). They are moot too: a user namespace cannot make
            // device nodes, and bound host devices keep their permissions.
            full.set_devices(None);
            return Self::create_in(m, full);
        }
        full.set_devices(Some(device_rules(
            full.devices().as_deref().unwrap_or_default(),
            linux
                .and_then(|l| l.devices().as_deref())
                .unwrap_or_default(),
        )));
        Self::create_in(m, full)
    }

    fn create_in(m: Manager, resources: LinuxResources) -> Result<Cgroup> {
        m.create(Some(&resources)).map_err(cg_err)?;
        Ok(Cgroup {
            manager: Some(m),
            keep: false.into(),
        })
    }

    /// v2: a directory fd of the cgroup for clone3(CLONE_INTO_CGROUP).
    pub fn clone_into_fd(&self) -> Result<Option<OwnedFd>> {
        match &self.manager {
            Some(m) => m.clone_into_fd().map_err(cg_err),
            None => Ok(None),
        }
    }

    /// Moves `pid` into the cgroup. Only v1 needs it: on v2 the child was
    /// cloned straight into the cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        match &self.manager {
            Some(m) if m.version() == CgroupVersion::V1 => m.add_pid(pid).map_err(cg_err),
            _ => Ok(()),
        }
    }

    /// Kills what is left in the cgroup and removes it.
    pub fn destroy(&self) -> Result<()> {
        match &self.manager {
            Some(m) => m.destroy().map_err(cg_err),
            None => Ok(()),
        }
    }

    /// The create succeeded: the cgroup stays.
    pub fn keep(&self) {
        self.keep.set(true);
    }

    /// The serialised [`Manager`] for state.json.
    pub fn to_state(&self) -> Option<serde_json::Value> {
        self.manager
            .as_ref()
            .map(|m| serde_json::to_value(m).expect("a Manager serialises"))
    }

    /// runc's `cgroup_paths`.
    pub fn paths(&self) -> HashMap<String, PathBuf> {
        self.manager
            .as_ref()
            .map(|m| m.paths().into_iter().collect())
            .unwrap_or_default()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.keep.get()
            && let Err(e) = self.destroy()
        {
            eprintln!("warning: removing the cgroup of a failed create: {e}");
        }
    }
}

/// True when the nearest existing ancestor of `dir` is writable by us.
fn writable_parent(dir: &Path) -> bool {
    let mut p = dir;
    while let Some(parent) = p.parent() {
        if parent.exists() {
            return nix::unistd::access(parent, nix::unistd::AccessFlags::W_OK).is_ok();
        }
        p = parent;
    }
    false
}

/// Whether `r` asks for any limit (device rules do not count: a rootless
/// container cannot reach host devices it was not given anyway).
pub fn requests_limits(r: &LinuxResources) -> bool {
    r.memory().is_some_and(|m| m != LinuxMemory::default())
        || r.cpu().as_ref().is_some_and(|c| *c != LinuxCpu::default())
        || r.pids().is_some_and(|p| p.limit() != 0)
        || r.block_io()
            .as_ref()
            .is_some_and(|b| *b != LinuxBlockIo::default())
        || r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
        || r.network().is_some()
        || r.rdma().as_ref().is_some_and(|h| !h.is_empty())
        || r.unified().as_ref().is_some_and(|u| !u.is_empty())
}

/// The device rules a container gets: the spec's rules, then the devices
/// every container needs (runc's order), then access to each device node of
/// `linux.devices` (the runtime creates those nodes, so they must be
/// usable). When the config denies particular devices, the defaults'
/// wildcards that allow creating any node (`c *:* m`, `b *:* m`) are left
/// out: a v1 device cgroup cannot subtract one device from a wildcard, so
/// this is the only way a denied device also cannot be created.
pub fn device_rules(
    spec_rules: &[LinuxDeviceCgroup],
    nodes: &[LinuxDevice],
) -> Vec<LinuxDeviceCgroup> {
    let mut rules = spec_rules.to_vec();
    let denies_devices = spec_rules
        .iter()
        .any(|r| !r.allow() && (r.major().is_some() || r.minor().is_some()));
    let mknod_wildcard = |r: &LinuxDeviceCgroup| {
        r.allow()
            && r.major().is_none()
            && r.minor().is_none()
            && r.access().as_deref() == Some("m")
    };
    rules.extend(
        default_devices()
            .into_iter()
            .filter(|r| !(denies_devices && mknod_wildcard(r))),
    );
    for d in nodes {
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(d.typ())
                .major(d.major())
                .minor(d.minor())
                .access("rwm")
                .build()
                .expect("all fields set"),
        );
    }
    rules
}

/// The container's cgroup as recorded in its state, if it has one.
pub fn manager(st: &State) -> Result<Option<Manager>> {
    st.cgroup
        .as_ref()
        .map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| {
                Error::Other(format!(
                    "container {}: the cgroup recorded in state.json is unreadable: {e}",
                    st.id
                ))
            })
        })
        .transpose()
}

fn require_manager(st: &State, op: &str) -> Result<Manager> {
    manager(st)?.ok_or_else(|| {
        Error::Unsupported(format!(
            "cannot {op} container {:?}: it has no cgroup of its own (rootless without a delegated cgroup)",
            st.id
        ))
    })
}

/// v2: the cgroup's directory fd, so the `exec` child is cloned straight
/// into it (CLONE_INTO_CGROUP); None on v1 or without a cgroup.
pub fn exec_clone_fd(st: &State) -> Result<Option<OwnedFd>> {
    match manager(st)? {
        Some(m) => m.clone_into_fd().map_err(cg_err),
        None => Ok(None),
    }
}

/// v1: puts an `exec`'d process into the container's cgroups before it
/// runs anything (its children inherit them). On v2 it was cloned there.
pub fn add_exec(st: &State, pid: i32) -> Result<()> {
    match manager(st)? {
        Some(m) if m.version() == CgroupVersion::V1 => m.add_pid(pid).map_err(cg_err),
        _ => Ok(()),
    }
}

/// True when the container's cgroup is frozen.
pub fn is_paused(st: &State) -> bool {
    matches!(manager(st), Ok(Some(m)) if m.exists() && m.is_frozen().unwrap_or(false))
}

/// Thaws the cgroup (before a forced delete, so SIGKILL can be acted on).
pub fn thaw(st: &State) {
    if let Ok(Some(m)) = manager(st)
        && m.exists()
    {
        let _ = m.thaw();
    }
}

/// Removes the cgroup, killing whatever is still in it (bounded retries,
/// then an error naming the busy directory and the pids left).
pub fn destroy(st: &State) -> Result<()> {
    match manager(st)? {
        Some(m) => m.destroy().map_err(cg_err),
        None => Ok(()),
    }
}

/// Sends `signal` to every process of the container: through the cgroup
/// (frozen meanwhile, so no new child escapes) when it has one.
pub fn signal_all(st: &State, signal: i32) -> Result<()> {
    match manager(st)? {
        Some(m) => m.kill_all(signal).map_err(cg_err),
        None => {
            for pid in pids(st)? {
                // SAFETY: kill(2) with a pid of the container; ESRCH (gone) is fine.
                unsafe { libc::kill(pid, signal) };
            }
            Ok(())
        }
    }
}

/// The container's processes: its cgroup's when it has one; otherwise
/// those in the init's pid namespace when it has its own, or else the init
/// and its descendants.
pub fn pids(st: &State) -> Result<Vec<i32>> {
    if let Some(m) = manager(st)? {
        return m.pids().map_err(cg_err);
    }
    let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init_ns = ns_of(st.pid);
    let own_ns = init_ns.is_some() && init_ns != std::fs::read_link("/proc/self/ns/pid").ok();
    let mut procs: Vec<(i32, i32)> = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        procs.push((pid, ppid));
    }
    let mut out: Vec<i32> = if own_ns {
        procs
            .iter()
            .map(|p| p.0)
            .filter(|p| ns_of(*p) == init_ns)
            .collect()
    } else {
        let mut set = vec![st.pid];
        let mut grew = true;
        while grew {
            grew = false;
            for (pid, ppid) in &procs {
                if set.contains(ppid) && !set.contains(pid) {
                    set.push(*pid);
                    grew = true;
                }
            }
        }
        set
    };
    out.sort_unstable();
    Ok(out)
}

/// Fields of an `update` request that need others to be meaningful get
/// them from the current config: on v2 a swap limit is written relative
/// to the memory limit (`memory.swap.max` = swap − limit).
pub fn complete_update(request: &LinuxResources, current: &LinuxResources) -> LinuxResources {
    let mut r = request.clone();
    if let Some(mut mem) = r
        .memory()
        .filter(|m| m.swap().is_some() && m.limit().is_none())
    {
        mem.set_limit(current.memory().and_then(|m| m.limit()));
        r.set_memory(Some(mem));
    }
    r
}

/// The resources after an update: every field the request sets replaces
/// the current one (per field, as runc's `update` does); lists and maps
/// given in the request replace the current ones, `unified` keys merge.
pub fn merge_resources(current: &LinuxResources, request: &LinuxResources) -> LinuxResources {
    let mut out = current.clone();
    macro_rules! merge_fields {
        ($cur:expr, $req:expr, $ty:ty, [$(($get:ident, $set:ident)),*]) => {{
            let mut m: $ty = $cur.unwrap_or_default();
            $(if let Some(v) = $req.$get().clone() { m.$set(Some(v)); })*
            m
        }};
    }
    if let Some(req) = request.memory() {
        out.set_memory(Some(merge_fields!(
            current.memory(),
            req,
            LinuxMemory,
            [
                (limit, set_limit),
                (reservation, set_reservation),
                (swap, set_swap),
                (kernel, set_kernel),
                (kernel_tcp, set_kernel_tcp),
                (swappiness, set_swappiness),
                (disable_oom_killer, set_disable_oom_killer),
                (use_hierarchy, set_use_hierarchy),
                (check_before_update, set_check_before_update)
            ]
        )));
    }
    if let Some(req) = request.cpu() {
        out.set_cpu(Some(merge_fields!(
            current.cpu().clone(),
            req,
            LinuxCpu,
            [
                (shares, set_shares),
                (quota, set_quota),
                (burst, set_burst),
                (period, set_period),
                (realtime_runtime, set_realtime_runtime),
                (realtime_period, set_realtime_period),
                (cpus, set_cpus),
                (mems, set_mems),
                (idle, set_idle)
            ]
        )));
    }
    if let Some(p) = request.pids() {
        out.set_pids(Some(*p));
    }
    if let Some(req) = request.block_io() {
        out.set_block_io(Some(merge_fields!(
            current.block_io().clone(),
            req,
            LinuxBlockIo,
            [
                (weight, set_weight),
                (leaf_weight, set_leaf_weight),
                (weight_device, set_weight_device),
                (throttle_read_bps_device, set_throttle_read_bps_device),
                (throttle_write_bps_device, set_throttle_write_bps_device),
                (throttle_read_iops_device, set_throttle_read_iops_device),
                (throttle_write_iops_device, set_throttle_write_iops_device)
            ]
        )));
    }
    if let Some(h) = request.hugepage_limits() {
        out.set_hugepage_limits(Some(h.clone()));
    }
    if let Some(n) = request.network() {
        out.set_network(Some(n.clone()));
    }
    if let Some(r) = request.rdma() {
        out.set_rdma(Some(r.clone()));
    }
    if let Some(d) = request.devices() {
        out.set_devices(Some(d.clone()));
    }
    if let Some(u) = request.unified() {
        let mut all = current.unified().clone().unwrap_or_default();
        all.extend(u.clone());
        out.set_unified(Some(all));
    }
    out
}

impl Runtime {
    /// `pause`: freezes every process of a running (or created) container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let (_, st, status) = self.load(id)?;
        if !matches!(status, Status::Running | Status::Created) {
            return Err(Error::WrongState {
                op: "pause",
                id: id.into(),
                status: status.to_string(),
                hint: "; only a running or created container can be paused",
            });
        }
        require_manager(&st, "pause")?.freeze().map_err(cg_err)
    }

    /// `resume`: thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let (_, st, status) = self.load(id)?;
        if status != Status::Paused {
            return Err(Error::WrongState {
                op: "resume",
                id: id.into(),
                status: status.to_string(),
                hint: "; only a paused container can be resumed",
            });
        }
        require_manager(&st, "resume")?.thaw().map_err(cg_err)
    }

    /// `update`: applies new limits to a live container and records them in
    /// its stored config. Device rules given get the defaults appended as
    /// at create.
    pub fn update(&self, id: &str, request: &LinuxResources) -> Result<()> {
        let (dir, mut st, status) = self.load(id)?;
        if status == Status::Stopped {
            return Err(Error::WrongState {
                op: "update",
                id: id.into(),
                status: status.to_string(),
                hint: "",
            });
        }
        let m = require_manager(&st, "update")?;
        let mut linux = st.config.linux().clone().unwrap_or_default();
        let current = linux.resources().clone().unwrap_or_default();
        let mut apply = complete_update(request, &current);
        if let Some(d) = request.devices() {
            apply.set_devices(Some(device_rules(
                d,
                linux.devices().as_deref().unwrap_or_default(),
            )));
        }
        m.update(&apply).map_err(cg_err)?;
        linux.set_resources(Some(merge_resources(&current, request)));
        st.config.set_linux(Some(linux));
        dir.save(&st)
    }

    /// The container's cgroup, for `events` (stats and OOM notifications).
    pub fn cgroup(&self, id: &str) -> Result<Manager> {
        let (_, st, status) = self.load(id)?;
        if status == Status::Stopped {
            return Err(Error::WrongState {
                op: "get events of",
                id: id.into(),
                status: status.to_string(),
                hint: "",
            });
        }
        require_manager(&st, "get events of")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn limits_requested() {
        assert!(!requests_limits(&res("{}")));
        assert!(!requests_limits(&res(
            r#"{"devices":[{"allow":false,"access":"rwm"}]}"#
        )));
        assert!(requests_limits(&res(r#"{"pids":{"limit":5}}"#)));
        assert!(requests_limits(&res(r#"{"memory":{"limit":1048576}}"#)));
        assert!(requests_limits(&res(r#"{"unified":{"memory.high":"1"}}"#)));
        assert!(!requests_limits(&res(r#"{"unified":{}}"#)));
    }

    #[test]
    fn device_rules_follow_runc_order() {
        let spec: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":false,"access":"rwm"}]"#).unwrap();
        let nodes: Vec<LinuxDevice> =
            serde_json::from_str(r#"[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]"#)
                .unwrap();
        let rules = device_rules(&spec, &nodes);
        assert_eq!(rules.len(), 1 + default_devices().len() + 1);
        assert!(!rules[0].allow());
        let last = rules.last().unwrap();
        assert!(last.allow());
        assert_eq!((last.major(), last.minor()), (Some(10), Some(229)));
        assert_eq!(last.access().as_deref(), Some("rwm"));
    }

    #[test]
    fn merge_is_per_field() {
        let cur = res(
            r#"{"memory":{"limit":1000,"reservation":500},"cpu":{"shares":100,"cpus":"0"},"pids":{"limit":9},"unified":{"a.b":"1"}}"#,
        );
        let req = res(r#"{"memory":{"limit":2000},"cpu":{"quota":5000},"unified":{"c.d":"2"}}"#);
        let m = merge_resources(&cur, &req);
        let mem = m.memory().unwrap();
        assert_eq!((mem.limit(), mem.reservation()), (Some(2000), Some(500)));
        let cpu = m.cpu().clone().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.cpus().as_deref()),
            (Some(100), Some(5000), Some("0"))
        );
        assert_eq!(m.pids().unwrap().limit(), 9);
        assert_eq!(m.unified().as_ref().unwrap().len(), 2);
    }

    #[test]
    fn swap_update_takes_the_current_limit() {
        let cur = res(r#"{"memory":{"limit":1000}}"#);
        let r = complete_update(&res(r#"{"memory":{"swap":3000}}"#), &cur);
        assert_eq!(r.memory().unwrap().limit(), Some(1000));
        let r = complete_update(&res(r#"{"memory":{"swap":3000,"limit":2000}}"#), &cur);
        assert_eq!(r.memory().unwrap().limit(), Some(2000));
        let r = complete_update(&res(r#"{"pids":{"limit":3}}"#), &cur);
        assert!(r.memory().is_none());
    }
}
