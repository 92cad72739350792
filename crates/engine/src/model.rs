//! The container model: what the user asked for ([`ContainerConfig`], kept
//! as JSON in the database) and what the engine observed ([`ContainerState`]).
//! Parsing of flag values lives here as pure functions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A mount requested with `-v`/`--mount`/`--tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// Host path (bind), volume name (volume; empty = anonymous), unused for tmpfs.
    pub source: String,
    pub target: String,
    pub readonly: bool,
    /// Extra options (tmpfs size=…, mode=…).
    pub options: Vec<String>,
}

/// `--restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RestartPolicy {
    #[default]
    No,
    OnFailure(u32),
    Always,
    UnlessStopped,
}

/// `--health-cmd` and friends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Healthcheck {
    /// `["CMD-SHELL", "cmd"]` or `["CMD", ...]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

/// A `--ulimit name=soft[:hard]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// A `--device host[:container[:perms]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub host: String,
    pub container: String,
    pub perms: String,
}

/// Everything `create`/`run` were asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContainerConfig {
    pub image: String,
    /// The command after the image name (replaces the image's Cmd).
    pub cmd: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
    pub mounts: Vec<MountSpec>,
    /// Raw `-p` values.
    pub publish: Vec<String>,
    pub publish_all: bool,
    /// `none`, `host`, `bridge`, a network name, `container:ID`.
    pub network: String,
    /// `--ip`: a static address on the first network.
    #[serde(default)]
    pub ip: Option<String>,
    /// `--network-alias`: extra DNS names on every network joined.
    #[serde(default)]
    pub network_aliases: Vec<String>,
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub pids_limit: Option<i64>,
    pub ulimits: Vec<Ulimit>,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `seccomp=FILE` contents (already read) or `unconfined`.
    pub seccomp_profile: Option<String>,
    pub seccomp_unconfined: bool,
    pub no_new_privileges: bool,
    pub devices: Vec<DeviceSpec>,
    pub init: bool,
    pub restart: RestartPolicy,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u32>,
    pub labels: BTreeMap<String, String>,
    pub healthcheck: Option<Healthcheck>,
    /// An external runc-compatible runtime binary; None = berth's own.
    pub runtime: Option<String>,
    pub log_max_size: Option<u64>,
    pub log_max_file: Option<u32>,
    /// `--userns`/`--uidmap`/`--gidmap` (`Auto` is resolved to `Private`
    /// when the container is created).
    #[serde(default)]
    pub userns: crate::userns::Userns,
}

/// The life-cycle status, with Docker's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "created" => Status::Created,
            "running" => Status::Running,
            "paused" => Status::Paused,
            "restarting" => Status::Restarting,
            "removing" => Status::Removing,
            "exited" => Status::Exited,
            "dead" => Status::Dead,
            _ => return None,
        })
    }
    /// A container whose processes may be alive.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

/// What the engine observed about a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    pub status: Status,
    pub pid: i32,
    /// The monitor's pid (0 for a foreground container or none).
    pub monitor_pid: i32,
    /// The monitor's start time in clock ticks (to recognise pid reuse).
    pub monitor_start: u64,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub restart_count: u32,
    /// Set by `stop`/`kill` so restart policies (except always) do not fire.
    pub stopped_by_user: bool,
    pub health: Option<HealthState>,
    /// Endpoints as recorded at start (for inspect and `port`).
    pub ports: Vec<PortBinding>,
    pub ip: String,
    /// The kernel's OOM killer killed a process of the container during its
    /// last run (the cgroup's `oom_kill` counter, read before teardown).
    #[serde(default)]
    pub oom_killed: bool,
}

impl Default for ContainerState {
    fn default() -> Self {
        ContainerState {
            status: Status::Created,
            pid: 0,
            monitor_pid: 0,
            monitor_start: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            restart_count: 0,
            stopped_by_user: false,
            health: None,
            ports: vec![],
            ip: String::new(),
            oom_killed: false,
        }
    }
}

/// Docker's zero time in inspect output.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    pub container_port: u16,
    pub proto: String,
    pub host_ip: String,
    pub host_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealthState {
    /// `starting`, `healthy`, `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i32,
    pub output: String,
}

/// One container row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub config: ContainerConfig,
    pub state: ContainerState,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// Parses `no`, `on-failure[:N]`, `always`, `unless-stopped`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy> {
    let bad = || {
        Error::Invalid(format!(
            "invalid restart policy {s:?}: want no, on-failure[:N], always or unless-stopped"
        ))
    };
    Ok(match s.split_once(':') {
        None if s == "no" || s.is_empty() => RestartPolicy::No,
        None if s == "always" => RestartPolicy::Always,
        None if s == "unless-stopped" => RestartPolicy::UnlessStopped,
        None if s == "on-failure" => RestartPolicy::OnFailure(0),
        Some(("on-failure", n)) => RestartPolicy::OnFailure(n.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

/// Whether a container that exited with `code` is restarted under `policy`
/// after `restarts` restarts so far (Docker's rules: a user stop disables
/// every policy until the next start; `on-failure:N` allows N restarts, 0 = unlimited).
pub fn should_restart(
    policy: RestartPolicy,
    code: i32,
    restarts: u32,
    stopped_by_user: bool,
) -> bool {
    if stopped_by_user {
        return false;
    }
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure(max) => code != 0 && (max == 0 || restarts < max),
    }
}

/// The delay before restart number `restarts + 1`: 100 ms doubling, capped at 10 s (Docker
/// caps at a minute; berth keeps tests fast).
pub fn restart_delay_ms(restarts: u32) -> u64 {
    (100u64 << restarts.min(7)).min(10_000)
}

/// Parses a size like `512m`, `1g`, `100k`, `1048576` (bytes).
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| {
        Error::Invalid(format!(
            "invalid size {s:?}: want a number with an optional k/m/g suffix"
        ))
    })?;
    if n < 0.0 {
        return Err(Error::Invalid(format!("invalid size {s:?}: negative")));
    }
    Ok((n * mult as f64) as i64)
}

/// Parses a duration like `30s`, `1m30s`, `500ms`, `2h` into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64> {
    let bad = || Error::Invalid(format!("invalid duration {s:?}: want e.g. 30s, 1m, 500ms"));
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit: String = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms".into()
        } else {
            c.to_string()
        };
        let v: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += v * match unit.as_str() {
            "ms" => 1.0,
            "s" => 1000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return Err(bad()),
        };
        any = true;
    }
    if !num.is_empty() {
        // A bare number is seconds.
        total += num.parse::<f64>().map_err(|_| bad())? * 1000.0;
        any = true;
    }
    if !any {
        return Err(bad());
    }
    Ok(total as u64)
}

/// Parses `-v SRC:DST[:ro|rw]`, `-v DST` (anonymous volume) — a source
/// starting with `/` or `.` is a bind, otherwise a named volume.
pub fn parse_volume_flag(s: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => {
            return Err(Error::Invalid(format!(
                "invalid volume {s:?}: want SRC:DST[:OPTS]"
            )));
        }
    };
    if !target.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid volume {s:?}: the container path {target:?} is not absolute"
        )));
    }
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" | "z" | "Z" => {}
            other => {
                return Err(Error::Invalid(format!(
                    "invalid volume {s:?}: unknown option {other:?}"
                )));
            }
        }
    }
    let kind = if source.starts_with('/') || source.starts_with('.') {
        "bind"
    } else {
        "volume"
    };
    Ok(MountSpec {
        kind: kind.into(),
        source: source.into(),
        target: target.into(),
        readonly,
        options: vec![],
    })
}

/// Parses `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…]`.
pub fn parse_mount_flag(s: &str) -> Result<MountSpec> {
    let mut m = MountSpec {
        kind: "volume".into(),
        source: String::new(),
        target: String::new(),
        readonly: false,
        options: vec![],
    };
    for kv in s.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => m.kind = v.into(),
            "source" | "src" => m.source = v.into(),
            "target" | "destination" | "dst" => m.target = v.into(),
            "readonly" | "ro" => m.readonly = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" => m.options.push(format!("size={v}")),
            "tmpfs-mode" => m.options.push(format!("mode={v}")),
            _ => {
                return Err(Error::Invalid(format!(
                    "invalid --mount {s:?}: unknown key {k:?}"
                )));
            }
        }
    }
    if !matches!(m.kind.as_str(), "bind" | "volume" | "tmpfs") {
        return Err(Error::Invalid(format!(
            "invalid --mount {s:?}: type must be bind, volume or tmpfs"
        )));
    }
    if !m.target.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid --mount {s:?}: target must be an absolute path"
        )));
    }
    if m.kind == "bind" && !m.source.starts_with('/') {
        return Err(Error::Invalid(format!(
            "invalid --mount {s:?}: a bind source must be an absolute path"
        )));
    }
    Ok(m)
}

/// Parses `--ulimit nofile=1024[:2048]`.
pub fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let bad = || Error::Invalid(format!("invalid ulimit {s:?}: want NAME=SOFT[:HARD]"));
    let (name, vals) = s.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let v = vals.parse().map_err(|_| bad())?;
            (v, v)
        }
    };
    Ok(Ulimit {
        name: name.into(),
        soft,
        hard,
    })
}

/// Parses `--device /dev/x[:/dev/y[:rwm]]`.
pub fn parse_device(s: &str) -> Result<DeviceSpec> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, c] if c.starts_with('/') => (*h, *c, "rwm"),
        [h, p] => (*h, *h, *p),
        [h, c, p] => (*h, *c, *p),
        _ => return Err(Error::Invalid(format!("invalid device {s:?}"))),
    };
    if !host.starts_with('/')
        || !container.starts_with('/')
        || perms.chars().any(|c| !"rwm".contains(c))
    {
        return Err(Error::Invalid(format!(
            "invalid device {s:?}: want /dev/HOST[:/dev/CTR[:rwm]]"
        )));
    }
    Ok(DeviceSpec {
        host: host.into(),
        container: container.into(),
        perms: perms.into(),
    })
}

/// Parses `KEY=VALUE` lines of an env file (comments and blank lines
/// skipped; a bare `KEY` takes the value from `lookup`).
pub fn parse_env_file(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            if l.contains('=') {
                Some(l.to_string())
            } else {
                lookup(l).map(|v| format!("{l}={v}"))
            }
        })
        .collect()
}

/// Merges `overrides` into `base` env (`KEY=V` lists; later wins).
pub fn merge_env(base: &[String], overrides: &[String]) -> Vec<String> {
    let mut out: Vec<String> = base.to_vec();
    for o in overrides {
        let key = o.split('=').next().unwrap_or(o);
        out.retain(|e| e.split('=').next() != Some(key));
        out.push(o.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!(parse_restart("no").unwrap(), RestartPolicy::No);
        assert_eq!(
            parse_restart("on-failure:3").unwrap(),
            RestartPolicy::OnFailure(3)
        );
        assert_eq!(parse_restart("always").unwrap(), RestartPolicy::Always);
        assert!(parse_restart("sometimes").is_err());
        assert!(should_restart(RestartPolicy::OnFailure(3), 1, 2, false));
        assert!(!should_restart(RestartPolicy::OnFailure(3), 1, 3, false));
        assert!(!should_restart(RestartPolicy::OnFailure(3), 0, 0, false));
        assert!(!should_restart(RestartPolicy::Always, 0, 0, true));
        assert!(should_restart(RestartPolicy::Always, 0, 100, false));
        assert_eq!(restart_delay_ms(0), 100);
        assert_eq!(restart_delay_ms(20), 10_000);
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration_ms("1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("500ms").unwrap(), 500);
        assert_eq!(parse_duration_ms("2").unwrap(), 2000);
        assert!(parse_duration_ms("x").is_err());
    }

    #[test]
    fn volume_flags() {
        let m = parse_volume_flag("/host:/ctr:ro").unwrap();
        assert_eq!((m.kind.as_str(), m.readonly), ("bind", true));
        let m = parse_volume_flag("data:/data").unwrap();
        assert_eq!(m.kind, "volume");
        let m = parse_volume_flag("/data").unwrap();
        assert_eq!((m.kind.as_str(), m.source.as_str()), ("volume", ""));
        assert!(parse_volume_flag("a:rel").is_err());
        let m = parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=1m").unwrap();
        assert_eq!(m.options, vec!["size=1m"]);
        assert!(parse_mount_flag("type=bind,source=rel,target=/x").is_err());
    }

    #[test]
    fn misc_flags() {
        assert_eq!(parse_ulimit("nofile=10:20").unwrap().hard, 20);
        assert_eq!(parse_device("/dev/null:/dev/n").unwrap().perms, "rwm");
        assert_eq!(parse_device("/dev/null:r").unwrap().container, "/dev/null");
        let env = parse_env_file("# c\nA=1\n\nB\n", |k| (k == "B").then(|| "2".into()));
        assert_eq!(env, vec!["A=1", "B=2"]);
        assert_eq!(
            merge_env(&["A=1".into(), "B=2".into()], &["A=3".into()]),
            vec!["B=2", "A=3"]
        );
    }
}
