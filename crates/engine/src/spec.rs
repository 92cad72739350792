//! Building the OCI runtime spec (config.json) of a container from its
//! image config and the `run`/`create` flags. Pure: every input, including
//! the resolved user and the host paths of mounts, is in [`SpecInput`].

use std::collections::BTreeMap;

use oci_spec::runtime::Spec;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::model::ContainerConfig;

/// Docker's default capability set, as the runtime ships it
/// (crates/runtime/profiles/capabilities-default.txt), by name.
pub fn default_caps() -> Vec<String> {
    berth_runtime::profiles::default_capabilities()
        .iter()
        .map(|c| {
            let name = c.to_string();
            if name.starts_with("CAP_") {
                name
            } else {
                format!("CAP_{name}")
            }
        })
        .collect()
}

/// Every capability (for `--privileged` and `--cap-add ALL`), up to CAP_CHECKPOINT_RESTORE.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A mount with its host side resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    /// `bind` or `tmpfs`.
    pub kind: String,
    pub source: String,
    pub target: String,
    pub readonly: bool,
    pub options: Vec<String>,
}

/// A `--device` with its numbers read from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDevice {
    pub path: String,
    /// `c` or `b`.
    pub kind: String,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub perms: String,
}

/// What the spec is built from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    /// The image's config (Env, Cmd, Entrypoint, WorkingDir, User…).
    pub image: &'a berth_image::spec::ContainerConfig,
    /// The rootfs directory (absolute; mounted by the engine).
    pub rootfs: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub mounts: Vec<ResolvedMount>,
    pub devices: Vec<ResolvedDevice>,
    /// `None`: a new, empty network namespace; `Some("")`: the host's;
    /// `Some(path)`: join that namespace.
    pub netns: Option<String>,
    /// A seccomp profile already in OCI form.
    pub seccomp: Option<Value>,
    /// The caller's bounding set (bit n = capability n): capabilities
    /// outside it cannot be granted, even to `--privileged`.
    pub host_caps: u64,
    /// With `--init`: the host path of the reaper binary, which then runs
    /// as pid 1 in front of the command (see [`crate::init`]).
    pub init: Option<String>,
}

/// The caller's capability bounding set (CapBnd in /proc/self/status).
pub fn host_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

/// The process args: Docker's rules for Entrypoint and Cmd.
pub fn process_args(
    config: &ContainerConfig,
    image: &berth_image::spec::ContainerConfig,
) -> Vec<String> {
    let entrypoint = match &config.entrypoint {
        Some(e) => e.clone(),
        None => image.entrypoint.clone().unwrap_or_default(),
    };
    let cmd = if !config.cmd.is_empty() {
        config.cmd.clone()
    } else if config.entrypoint.is_some() {
        // An explicit --entrypoint drops the image's Cmd (as Docker does).
        vec![]
    } else {
        image.cmd.clone().unwrap_or_default()
    };
    entrypoint.into_iter().chain(cmd).collect()
}

/// The environment: PATH default, image env, HOSTNAME, user env, TERM with a tty.
pub fn process_env(input: &SpecInput<'_>, hostname: &str) -> Vec<String> {
    let mut env = vec![DEFAULT_PATH.to_string(), format!("HOSTNAME={hostname}")];
    env = crate::model::merge_env(&env, input.image.env.as_deref().unwrap_or_default());
    if input.config.tty {
        env = crate::model::merge_env(&env, &["TERM=xterm".into()]);
    }
    crate::model::merge_env(&env, &input.config.env)
}

/// The capability set after `--privileged`, `--cap-add` and `--cap-drop`.
pub fn capabilities(config: &ContainerConfig) -> Result<Vec<String>> {
    let norm = |c: &str| -> String {
        let up = c.to_ascii_uppercase();
        if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        }
    };
    if config.privileged {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let mut caps = default_caps();
    for c in &config.cap_add {
        let c = norm(c);
        if c == "CAP_ALL" {
            caps = ALL_CAPS.iter().map(|s| s.to_string()).collect();
            continue;
        }
        if !ALL_CAPS.contains(&c.as_str()) {
            return Err(Error::Invalid(format!(
                "unknown capability {c:?} in --cap-add"
            )));
        }
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for c in &config.cap_drop {
        let c = norm(c);
        if c == "CAP_ALL" {
            caps.clear();
            continue;
        }
        if !ALL_CAPS.contains(&c.as_str()) {
            return Err(Error::Invalid(format!(
                "unknown capability {c:?} in --cap-drop"
            )));
        }
        caps.retain(|x| x != &c);
    }
    Ok(caps)
}

/// The container's cgroup (`linux.cgroupsPath`): absolute, so it is the
/// same directory under every runtime (berth's, runc's or crun's cgroupfs
/// driver) and the engine can read its stats and OOM kills there.
pub fn cgroups_path(id: &str) -> String {
    format!("/berth/{id}")
}

/// `--memory`, `--cpus`, … as `linux.resources`.
/// The memory+swap limit, as Docker sets it: `--memory-swap` when given
/// (-1: unlimited; 0 means unset), else twice `--memory` where the host
/// accounts swap per cgroup (so the container may swap as much as its
/// memory limit), else none.
pub fn swap_limit(memory: Option<i64>, memory_swap: Option<i64>, accounting: bool) -> Option<i64> {
    match (memory, memory_swap.filter(|s| *s != 0)) {
        (_, Some(s)) => Some(s),
        (Some(m), None) if accounting && m > 0 => Some(m.saturating_mul(2)),
        _ => None,
    }
}

/// Whether the host accounts swap per cgroup: cgroup v1's
/// memory.memsw.* files exist; on v2 it is always on unless the kernel
/// was booted with `swapaccount=0`.
pub fn host_swap_accounting() -> bool {
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && !std::fs::read_to_string("/proc/cmdline")
            .unwrap_or_default()
            .split_whitespace()
            .any(|w| w == "swapaccount=0");
    v1 || v2
}

pub fn resources(config: &ContainerConfig, devices: &[ResolvedDevice]) -> Value {
    let mut r = serde_json::Map::new();
    let mut dev_rules = vec![json!({"allow": !config.privileged, "access": "rwm"})];
    if !config.privileged {
        dev_rules = vec![json!({"allow": false, "access": "rwm"})];
        // The standard devices every container gets (runc's defaults).
        for (maj, min) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
            (136, -1),
        ] {
            let mut d = json!({"allow": true, "type": "c", "major": maj, "access": "rwm"});
            if min >= 0 {
                d["minor"] = json!(min);
            }
            dev_rules.push(d);
        }
        for d in devices {
            dev_rules.push(json!({"allow": true, "type": d.kind, "major": d.major, "minor": d.minor, "access": d.perms}));
        }
    }
    r.insert("devices".into(), Value::Array(dev_rules));
    let mut mem = serde_json::Map::new();
    if let Some(m) = config.memory {
        mem.insert("limit".into(), json!(m));
    }
    // Resolved at create (Docker's default included, see [`swap_limit`]).
    if let Some(s) = config.memory_swap.filter(|s| *s != 0) {
        mem.insert("swap".into(), json!(s));
    }
    if !mem.is_empty() {
        r.insert("memory".into(), Value::Object(mem));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(c) = config.cpus {
        let period = 100_000u64;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!((c * period as f64).round() as i64));
    }
    if let Some(s) = config.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(s) = &config.cpuset_cpus {
        cpu.insert("cpus".into(), json!(s));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = config.pids_limit {
        r.insert("pids".into(), json!({"limit": p}));
    }
    Value::Object(r)
}

fn ulimit_type(name: &str) -> Result<String> {
    let known = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    if !known.contains(&name) {
        return Err(Error::Invalid(format!("unknown ulimit {name:?}")));
    }
    Ok(format!("RLIMIT_{}", name.to_ascii_uppercase()))
}

/// /sys for the container. sysfs can only be mounted by a user namespace
/// that owns the container's network namespace (sysfs(5) shows that
/// namespace's devices); a container in a user namespace of its own that
/// joins a network namespace made outside it gets the host's /sys bound
/// read-only instead, as runc and Podman do.
fn sys_mount(config: &ContainerConfig, own_netns: bool) -> Value {
    let mut opts = vec!["nosuid", "noexec", "nodev"];
    if !config.privileged {
        opts.push("ro");
    }
    if config.userns.map().is_some() && !own_netns {
        opts.insert(0, "rbind");
        json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": opts})
    } else {
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": opts})
    }
}

fn base_mounts(config: &ContainerConfig, own_netns: bool) -> Vec<Value> {
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        sys_mount(config, own_netns),
    ]
}

/// Builds the spec.
pub fn build(input: &SpecInput<'_>) -> Result<Spec> {
    let c = input.config;
    let mut args = process_args(c, input.image);
    if args.is_empty() {
        return Err(Error::Invalid(format!(
            "container {}: no command specified (the image has no Cmd or Entrypoint)",
            input.id
        )));
    }
    if input.init.is_some() {
        args = crate::init::wrap_args(args);
    }
    let hostname = c
        .hostname
        .clone()
        .unwrap_or_else(|| input.id[..12.min(input.id.len())].to_string());
    let env = process_env(input, &hostname);
    let cwd = c
        .workdir
        .clone()
        .or_else(|| input.image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::Invalid(format!(
            "the working directory {cwd:?} is not absolute"
        )));
    }
    let caps: Vec<String> = capabilities(c)?
        .into_iter()
        .filter(|cap| {
            ALL_CAPS
                .iter()
                .position(|a| a == cap)
                .is_none_or(|bit| input.host_caps & (1u64 << bit) != 0)
        })
        .collect();
    let mut rlimits = vec![];
    for u in &c.ulimits {
        rlimits.push(json!({"type": ulimit_type(&u.name)?, "soft": u.soft, "hard": u.hard}));
    }
    if !c.ulimits.iter().any(|u| u.name == "nofile") {
        // Docker gives containers the daemon's limit; berth gives the caller's hard limit.
        let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(_, h)| h);
        rlimits.push(json!({"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard}));
    }
    let mut user = json!({"uid": input.uid, "gid": input.gid});
    if !input.additional_gids.is_empty() {
        user["additionalGids"] = json!(input.additional_gids);
    }
    let mut process = json!({
        "terminal": c.tty,
        "user": user,
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": rlimits,
        "noNewPrivileges": c.no_new_privileges,
    });
    if c.tty {
        process["consoleSize"] = json!({"height": 24, "width": 80});
    }
    let mut mounts = base_mounts(c, input.netns.is_none());
    for m in &input.mounts {
        let mut opts: Vec<String> = match m.kind.as_str() {
            "tmpfs" => vec!["nosuid".into(), "nodev".into()],
            _ => vec!["rbind".into(), "rprivate".into()],
        };
        opts.extend(m.options.iter().cloned());
        if m.readonly {
            opts.push("ro".into());
        }
        mounts.push(json!({"destination": m.target, "type": if m.kind == "tmpfs" { "tmpfs" } else { "bind" }, "source": m.source, "options": opts}));
    }
    if let Some(reaper) = &input.init {
        // Last, so that no other mount hides it.
        mounts.push(
            json!({"destination": crate::init::CONTAINER_PATH, "type": "bind", "source": reaper,
                           "options": ["bind", "rprivate", "ro", "nosuid", "nodev"]}),
        );
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    match input.netns.as_deref() {
        None => namespaces.push(json!({"type": "network"})),
        Some("") => {}
        Some(path) => namespaces.push(json!({"type": "network", "path": path})),
    }
    if c.userns.map().is_some() {
        // Created first by the runtime, so the namespaces above are owned
        // by it (user_namespaces(7)).
        namespaces.push(json!({"type": "user"}));
    }
    let devices: Vec<Value> = input
        .devices
        .iter()
        .map(|d| json!({"path": d.path, "type": d.kind, "major": d.major, "minor": d.minor, "fileMode": d.mode, "uid": 0, "gid": 0}))
        .collect();
    // A network namespace the runtime makes gets what the engine's own
    // get (berth_net::sysctl::CONTAINER_NETNS), as Docker does.
    let sysctl: serde_json::Map<String, Value> = match input.netns {
        None => berth_net::sysctl::CONTAINER_NETNS
            .iter()
            .map(|(k, v)| {
                let v = match (*k, c.userns.map()) {
                    // Written from inside a user namespace, the range must
                    // be gids that namespace maps (EINVAL otherwise).
                    ("net/ipv4/ping_group_range", Some(map)) => {
                        let last = map
                            .gids
                            .iter()
                            .map(|r| u64::from(r.container) + u64::from(r.size) - 1)
                            .max()
                            .unwrap_or(0);
                        format!("0 {last}")
                    }
                    _ => v.to_string(),
                };
                (k.replace('/', "."), json!(v))
            })
            .collect(),
        Some(_) => serde_json::Map::new(),
    };
    let mut linux = json!({
        "sysctl": sysctl,
        "cgroupsPath": cgroups_path(input.id),
        "namespaces": namespaces,
        "resources": resources(c, &input.devices),
        "devices": devices,
    });
    if let Some(map) = c.userns.map() {
        let oci = |ranges: &[crate::idmap::IdRange]| -> Vec<Value> {
            ranges
                .iter()
                .map(|r| json!({"containerID": r.container, "hostID": r.host, "size": r.size}))
                .collect()
        };
        linux["uidMappings"] = json!(oci(&map.uids));
        linux["gidMappings"] = json!(oci(&map.gids));
    }
    if !c.privileged {
        linux["maskedPaths"] = json!(berth_runtime::profiles::DEFAULT_MASKED_PATHS);
        linux["readonlyPaths"] = json!(berth_runtime::profiles::DEFAULT_READONLY_PATHS);
        if let Some(s) = &input.seccomp
            && !c.seccomp_unconfined
        {
            linux["seccomp"] = s.clone();
        }
    }
    let mut annotations = BTreeMap::new();
    annotations.insert("org.berth.container.id".to_string(), input.id.to_string());
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": input.rootfs, "readonly": c.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    });
    serde_json::from_value(spec)
        .map_err(|e| Error::Other(format!("container {}: building config.json: {e}", input.id)))
}

/// berth's default seccomp profile (Docker's rules, crates/runtime/profiles),
/// resolved for the capabilities the container will hold: rules gated on a
/// capability (e.g. the mount family with CAP_SYS_ADMIN) follow `--cap-add`.
pub fn default_seccomp(config: &ContainerConfig) -> Result<Value> {
    let caps: Vec<oci_spec::runtime::Capability> = capabilities(config)?
        .iter()
        .filter_map(|c| serde_json::from_value(Value::String(c.clone())).ok())
        .collect();
    let profile = berth_runtime::profiles::Profile::builtin();
    let s = berth_runtime::profiles::seccomp_for(&profile, &caps, std::env::consts::ARCH);
    serde_json::to_value(s).map_err(|e| Error::Other(format!("default seccomp profile: {e}")))
}

/// Converts a Docker seccomp profile (or an OCI `linux.seccomp` object) to
/// the OCI form: `defaultAction`, `architectures`, `syscalls[{names, action, errnoRet, args}]`.
/// Docker-only keys (`archMap`, `includes`, `excludes`, `comment`) are dropped;
/// rules with `includes`/`excludes` conditions are kept unconditionally.
pub fn seccomp_from_profile(text: &str) -> Result<Value> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| Error::Invalid(format!("seccomp profile: {e}")))?;
    let default = v
        .get("defaultAction")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Invalid("seccomp profile: no defaultAction".into()))?;
    let mut out = json!({"defaultAction": default});
    if let Some(e) = v.get("defaultErrnoRet") {
        out["defaultErrnoRet"] = e.clone();
    }
    let arches: Vec<Value> = match (v.get("architectures"), v.get("archMap")) {
        (Some(Value::Array(a)), _) => a.clone(),
        (_, Some(Value::Array(m))) => m
            .iter()
            .flat_map(|e| {
                let mut v = vec![e["architecture"].clone()];
                if let Some(Value::Array(s)) = e.get("subArchitectures") {
                    v.extend(s.iter().cloned());
                }
                v
            })
            .collect(),
        _ => vec![],
    };
    if !arches.is_empty() {
        out["architectures"] = Value::Array(arches);
    }
    let mut rules = vec![];
    for s in v
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let names = match (s.get("names"), s.get("name")) {
            (Some(n @ Value::Array(_)), _) => n.clone(),
            (_, Some(Value::String(n))) => json!([n]),
            _ => continue,
        };
        let mut r = json!({"names": names, "action": s.get("action").cloned().unwrap_or(json!("SCMP_ACT_ALLOW"))});
        if let Some(e) = s.get("errnoRet") {
            r["errnoRet"] = e.clone();
        }
        if let Some(a @ Value::Array(list)) = s.get("args")
            && !list.is_empty()
        {
            r["args"] = a.clone();
        }
        rules.push(r);
    }
    out["syscalls"] = Value::Array(rules);
    Ok(out)
}

/// Resolves `-u user[:group]` against the rootfs's /etc/passwd and
/// /etc/group text. Numeric ids need no entry.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<(u32, u32, Vec<u32>)> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entries = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .filter(|f| f.len() >= 4)
            .collect()
    };
    let users = entries(passwd);
    let groups = entries(group);
    let (uid, name, mut gid) = if u.is_empty() {
        (0, "root".to_string(), 0)
    } else if let Ok(n) = u.parse::<u32>() {
        let e = users.iter().find(|f| f[2] == u);
        (
            n,
            e.map(|f| f[0].clone()).unwrap_or_default(),
            e.and_then(|f| f[3].parse().ok()).unwrap_or(0),
        )
    } else {
        let e = users.iter().find(|f| f[0] == u).ok_or_else(|| {
            Error::Invalid(format!(
                "unable to find user {u}: no matching entries in passwd file"
            ))
        })?;
        (
            e[2].parse().unwrap_or(0),
            u.to_string(),
            e[3].parse().unwrap_or(0),
        )
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let extra: Vec<u32> = groups
        .iter()
        .filter(|f| !name.is_empty() && f[3].split(',').any(|m| m == name))
        .filter_map(|f| f[2].parse().ok())
        .filter(|g| *g != gid)
        .collect();
    Ok((uid, gid, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> berth_image::spec::ContainerConfig {
        berth_image::spec::ContainerConfig {
            env: Some(vec!["A=1".into(), "PATH=/img".into()]),
            cmd: Some(vec!["sh".into()]),
            entrypoint: None,
            working_dir: Some("/srv".into()),
            ..Default::default()
        }
    }

    #[test]
    fn args_follow_docker_rules() {
        let img = image();
        let mut c = ContainerConfig::default();
        assert_eq!(process_args(&c, &img), vec!["sh"]);
        c.cmd = vec!["echo".into(), "hi".into()];
        assert_eq!(process_args(&c, &img), vec!["echo", "hi"]);
        c.entrypoint = Some(vec!["/bin/env".into()]);
        assert_eq!(process_args(&c, &img), vec!["/bin/env", "echo", "hi"]);
        c.cmd.clear();
        assert_eq!(process_args(&c, &img), vec!["/bin/env"]);
    }

    #[test]
    fn spec_has_flags() {
        let img = image();
        let c = ContainerConfig {
            env: vec!["A=2".into()],
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids_limit: Some(10),
            read_only: true,
            cap_drop: vec!["chown".into()],
            ..Default::default()
        };
        let spec = build(&input(&c, &img)).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["hostname"], "0123456789ab");
        assert_eq!(v["process"]["cwd"], "/srv");
        let env: Vec<String> = serde_json::from_value(v["process"]["env"].clone()).unwrap();
        assert!(env.contains(&"A=2".to_string()) && env.contains(&"PATH=/img".to_string()));
        assert!(!env.contains(&"A=1".to_string()));
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 10);
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["linux"]["cgroupsPath"], "/berth/0123456789abcdef");
        let caps: Vec<String> =
            serde_json::from_value(v["process"]["capabilities"]["bounding"].clone()).unwrap();
        assert!(!caps.contains(&"CAP_CHOWN".to_string()) && caps.contains(&"CAP_KILL".to_string()));
        let ns = v["linux"]["namespaces"].as_array().unwrap();
        assert!(
            ns.iter()
                .any(|n| n["type"] == "network" && n.get("path").is_none())
        );
    }

    /// The input for `c` on the test image, nothing else set.
    fn input<'a>(
        c: &'a ContainerConfig,
        img: &'a berth_image::spec::ContainerConfig,
    ) -> SpecInput<'a> {
        SpecInput {
            id: "0123456789abcdef",
            config: c,
            image: img,
            rootfs: "/r".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            mounts: vec![],
            devices: vec![],
            netns: None,
            seccomp: None,
            host_caps: u64::MAX,
            init: None,
        }
    }

    #[test]
    fn user_namespace_maps_and_sys_follow_the_network_namespace() {
        let img = image();
        let map = crate::idmap::IdMap {
            uids: vec![crate::idmap::IdRange {
                container: 0,
                host: 100000,
                size: 65536,
            }],
            gids: vec![crate::idmap::IdRange {
                container: 0,
                host: 200000,
                size: 65536,
            }],
        };
        let c = ContainerConfig {
            cmd: vec!["true".into()],
            userns: crate::userns::Userns::Private(map),
            ..Default::default()
        };
        let sys = |v: &Value| {
            v["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["destination"] == "/sys")
                .cloned()
                .unwrap()
        };
        // Its own network namespace, made after the user namespace: sysfs.
        let v = serde_json::to_value(build(&input(&c, &img)).unwrap()).unwrap();
        assert!(
            v["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "user")
        );
        assert_eq!(
            v["linux"]["uidMappings"],
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}])
        );
        assert_eq!(v["linux"]["gidMappings"][0]["hostID"], 200000);
        assert_eq!(sys(&v)["type"], "sysfs");
        assert_eq!(
            v["linux"]["sysctl"],
            json!({"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 65535"}),
            "gids the user namespace maps"
        );
        // The engine's network namespace: the host's /sys, bound read-only.
        let joined = SpecInput {
            netns: Some("/run/netns/x".into()),
            ..input(&c, &img)
        };
        let v = serde_json::to_value(build(&joined).unwrap()).unwrap();
        assert_eq!(sys(&v)["type"], "bind");
        assert_eq!(
            sys(&v)["options"],
            json!(["rbind", "nosuid", "noexec", "nodev", "ro"])
        );
        // Without --userns: no user namespace, no maps.
        let plain = ContainerConfig {
            cmd: vec!["true".into()],
            ..Default::default()
        };
        let v = serde_json::to_value(
            build(&SpecInput {
                netns: Some("/n".into()),
                ..input(&plain, &img)
            })
            .unwrap(),
        )
        .unwrap();
        assert!(v["linux"].get("uidMappings").is_none());
        assert_eq!(sys(&v)["type"], "sysfs");
        assert_eq!(
            v["linux"]["sysctl"],
            json!({}),
            "the engine set up that namespace"
        );
        let v = serde_json::to_value(build(&input(&plain, &img)).unwrap()).unwrap();
        assert_eq!(
            v["linux"]["sysctl"]["net.ipv4.ping_group_range"],
            "0 2147483647"
        );
    }

    #[test]
    fn default_caps_are_dockers_fourteen() {
        let caps = default_caps();
        assert_eq!(caps.len(), 14, "{caps:?}");
        assert!(caps.iter().all(|c| c.starts_with("CAP_")), "{caps:?}");
        assert!(caps.contains(&"CAP_NET_BIND_SERVICE".to_string()));
        assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn swap_follows_docker() {
        let m = 64 << 20;
        assert_eq!(swap_limit(Some(m), None, true), Some(2 * m));
        assert_eq!(swap_limit(Some(m), None, false), None);
        assert_eq!(swap_limit(Some(m), Some(m), true), Some(m));
        assert_eq!(swap_limit(Some(m), Some(-1), true), Some(-1));
        assert_eq!(swap_limit(Some(m), Some(0), true), Some(2 * m));
        assert_eq!(swap_limit(None, None, true), None);
    }

    #[test]
    fn init_runs_the_reaper_in_front_from_a_read_only_mount() {
        let img = image();
        let c = ContainerConfig {
            cmd: vec!["sleep".into(), "1".into()],
            init: true,
            ..Default::default()
        };
        let input = SpecInput {
            mounts: vec![ResolvedMount {
                kind: "bind".into(),
                source: "/srv".into(),
                target: "/dev/x".into(),
                readonly: false,
                options: vec![],
            }],
            init: Some("/var/lib/berth/init/berth-init-0123".into()),
            ..input(&c, &img)
        };
        let v = serde_json::to_value(build(&input).unwrap()).unwrap();
        assert_eq!(
            v["process"]["args"],
            json!(["/dev/init", "--", "sleep", "1"])
        );
        let mounts = v["mounts"].as_array().unwrap();
        let last = mounts.last().unwrap();
        assert_eq!(last["destination"], "/dev/init");
        assert_eq!(last["source"], "/var/lib/berth/init/berth-init-0123");
        let opts: Vec<String> = serde_json::from_value(last["options"].clone()).unwrap();
        assert!(opts.contains(&"ro".to_string()) && opts.contains(&"bind".to_string()));
    }

    #[test]
    fn users_resolve() {
        let passwd = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\napp:x:1000:1000::/:/bin/sh\n";
        let group = "root:x:0:\nnogroup:x:65534:\nwheel:x:10:app\n";
        assert_eq!(
            resolve_user("nobody", passwd, group).unwrap(),
            (65534, 65534, vec![])
        );
        assert_eq!(
            resolve_user("app", passwd, group).unwrap(),
            (1000, 1000, vec![10])
        );
        assert_eq!(
            resolve_user("1234:5", passwd, group).unwrap(),
            (1234, 5, vec![])
        );
        assert_eq!(resolve_user("app:root", passwd, group).unwrap().1, 0);
        assert!(resolve_user("ghost", passwd, group).is_err());
    }

    #[test]
    fn docker_seccomp_profiles_convert() {
        let p = r#"{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
                   "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","args":[],"comment":"x","includes":{}}]}"#;
        let v = seccomp_from_profile(p).unwrap();
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        );
        assert_eq!(v["syscalls"][0]["names"], json!(["read", "write"]));
        assert!(v["syscalls"][0].get("args").is_none());
    }
}
