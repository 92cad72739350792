//! Output formatting: tables, Go-template-style `--format` strings
//! (`{{.Field}}`, `{{json .}}`, `table` prefix), filters and inspect JSON.

use anyhow::{Result, bail};
use berth_engine::model::Status;
use berth_engine::{Container, Engine};
use serde_json::{Value, json};

/// Left-aligned columns separated by three spaces (Docker's look).
pub fn table(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Renders `{{.A}}`, `{{.A.B}}` and `{{json .X}}` against a JSON value;
/// `\t` and `\n` escapes are honoured.
pub fn template_value(t: &str, v: &Value) -> String {
    let t = t.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    let mut rest = t.as_str();
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let expr = rest[i + 2..i + j].trim();
        let (json_out, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        let mut cur = v;
        for part in path
            .trim_start_matches('.')
            .split('.')
            .filter(|p| !p.is_empty())
        {
            cur = cur.get(part).unwrap_or(&Value::Null);
        }
        out.push_str(&match (json_out, cur) {
            (true, c) => c.to_string(),
            (false, Value::String(s)) => s.clone(),
            (false, Value::Null) => "<no value>".into(),
            (false, c) => c.to_string(),
        });
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    out
}

pub fn status_text(c: &Container) -> String {
    let now = berth_engine::time::now_nanos();
    let ago = |t: &str| {
        berth_engine::time::human_duration(
            now - berth_engine::time::parse_rfc3339(t).unwrap_or(now),
        )
    };
    let health = c
        .state
        .health
        .as_ref()
        .map(|h| {
            format!(
                " ({})",
                if h.status == "starting" {
                    "health: starting"
                } else {
                    &h.status
                }
            )
        })
        .unwrap_or_default();
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}{health}", ago(&c.state.started_at)),
        Status::Paused => format!("Up {} (Paused)", ago(&c.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            ago(&c.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            ago(&c.state.finished_at)
        ),
        Status::Dead => "Dead".into(),
    }
}

fn ports_text(c: &Container) -> String {
    c.state
        .ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_ip, p.host_port, p.container_port, p.proto
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn command_text(c: &Container) -> String {
    let mut v = c.config.entrypoint.clone().unwrap_or_default();
    v.extend(c.config.cmd.iter().cloned());
    v.join(" ")
}

/// The fields `ps --format` knows.
pub fn ps_value(c: &Container, no_trunc: bool) -> Value {
    let now = berth_engine::time::now_nanos();
    let created = berth_engine::time::parse_rfc3339(&c.created).unwrap_or(now);
    json!({
        "ID": if no_trunc { c.id.clone() } else { c.short_id().to_string() },
        "Image": c.image,
        "Command": command_text(c),
        "CreatedAt": c.created,
        "RunningFor": format!("{} ago", berth_engine::time::human_duration(now - created)),
        "Status": status_text(c),
        "State": c.state.status.as_str(),
        "Ports": ports_text(c),
        "Names": c.name,
        "Labels": c.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "Mounts": c.config.mounts.iter().map(|m| m.source.clone()).collect::<Vec<_>>().join(","),
        "Networks": if c.config.network.is_empty() { "bridge".to_string() } else { c.config.network.clone() },
    })
}

pub fn ps(list: &[Container], fmt: Option<&str>, no_trunc: bool) -> String {
    match fmt {
        Some("json") => list
            .iter()
            .map(|c| format!("{}\n", ps_value(c, no_trunc)))
            .collect(),
        Some(t) => {
            let (header, t) = match t.strip_prefix("table") {
                Some(rest) => (true, rest.trim_start()),
                None => (false, t),
            };
            let mut rows: Vec<Vec<String>> = vec![];
            if header {
                let names = Value::Object(
                    [
                        "ID",
                        "Image",
                        "Command",
                        "CreatedAt",
                        "RunningFor",
                        "Status",
                        "State",
                        "Ports",
                        "Names",
                        "Labels",
                        "Mounts",
                        "Networks",
                    ]
                    .iter()
                    .map(|k| (k.to_string(), Value::String(header_name(k))))
                    .collect(),
                );
                rows.push(
                    template_value(t, &names)
                        .split('\t')
                        .map(str::to_string)
                        .collect(),
                );
            }
            for c in list {
                rows.push(
                    template_value(t, &ps_value(c, no_trunc))
                        .split('\t')
                        .map(str::to_string)
                        .collect(),
                );
            }
            if header {
                table(&rows)
            } else {
                rows.iter().map(|r| format!("{}\n", r.join("\t"))).collect()
            }
        }
        None => {
            let mut rows = vec![
                [
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
            ];
            for c in list {
                let v = ps_value(c, no_trunc);
                let mut cmd = command_text(c);
                if !no_trunc && cmd.chars().count() > 20 {
                    cmd = format!("{}…", cmd.chars().take(19).collect::<String>());
                }
                rows.push(vec![
                    v["ID"].as_str().unwrap_or_default().into(),
                    c.image.clone(),
                    format!("\"{cmd}\""),
                    v["RunningFor"].as_str().unwrap_or_default().into(),
                    v["Status"].as_str().unwrap_or_default().into(),
                    v["Ports"].as_str().unwrap_or_default().into(),
                    c.name.clone(),
                ]);
            }
            table(&rows)
        }
    }
}

fn header_name(k: &str) -> String {
    match k {
        "ID" => "CONTAINER ID".into(),
        "RunningFor" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        other => other.to_ascii_uppercase(),
    }
}

pub fn parse_filters(f: &[String]) -> Result<Vec<(String, String)>> {
    f.iter()
        .map(|x| match x.split_once('=') {
            Some((k, v))
                if ["status", "name", "id", "label", "exited", "ancestor"].contains(&k) =>
            {
                Ok((k.to_string(), v.to_string()))
            }
            _ => bail!(
                "invalid filter {x:?}: want status=, name=, id=, label=, exited= or ancestor="
            ),
        })
        .collect()
}

/// Docker's rule: values of one key are ORed, different keys ANDed.
pub fn matches_filters(c: &Container, filters: &[(String, String)]) -> bool {
    let keys: std::collections::BTreeSet<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.into_iter().all(|key| {
        filters
            .iter()
            .filter(|(k, _)| k == key)
            .any(|(_, v)| match key {
                "status" => c.state.status.as_str() == v,
                "name" => c.name.contains(v.as_str()),
                "id" => c.id.starts_with(v.as_str()),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => c.config.labels.get(lk).is_some_and(|x| x == lv),
                    None => c.config.labels.contains_key(v),
                },
                "exited" => c.state.status == Status::Exited && v.parse() == Ok(c.state.exit_code),
                "ancestor" => &c.image == v || c.image_id.contains(v.as_str()),
                _ => false,
            })
    })
}

/// `inspect` output with Docker's field names.
pub fn inspect(e: &Engine, c: &Container) -> Value {
    let args = {
        let mut v = c.config.entrypoint.clone().unwrap_or_default();
        v.extend(c.config.cmd.iter().cloned());
        v
    };
    let restart = match c.config.restart {
        berth_engine::model::RestartPolicy::No => json!({"Name": "no", "MaximumRetryCount": 0}),
        berth_engine::model::RestartPolicy::OnFailure(n) => {
            json!({"Name": "on-failure", "MaximumRetryCount": n})
        }
        berth_engine::model::RestartPolicy::Always => {
            json!({"Name": "always", "MaximumRetryCount": 0})
        }
        berth_engine::model::RestartPolicy::UnlessStopped => {
            json!({"Name": "unless-stopped", "MaximumRetryCount": 0})
        }
    };
    let mut ports = serde_json::Map::new();
    for p in &c.state.ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = ports.entry(key).or_insert_with(|| json!([]));
        if let Some(a) = entry.as_array_mut() {
            a.push(json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}));
        }
    }
    let mounts: Vec<Value> = c
        .config
        .mounts
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let name = if m.kind == "volume" && m.source.is_empty() { format!("{}-{i}", &c.id[..32]) } else { m.source.clone() };
            let source = match m.kind.as_str() {
                "volume" => e.paths.volume_data(&name).to_string_lossy().into_owned(),
                _ => m.source.clone(),
            };
            json!({"Type": m.kind, "Name": if m.kind == "volume" { name } else { String::new() }, "Source": source, "Destination": m.target, "RW": !m.readonly})
        })
        .collect();
    let health = c.state.health.as_ref().map(|h| {
        json!({"Status": h.status, "FailingStreak": h.failing_streak,
               "Log": h.log.iter().map(|l| json!({"Start": l.start, "End": l.end, "ExitCode": l.exit_code, "Output": l.output})).collect::<Vec<_>>()})
    });
    // Docker prints null, not [], when none were given.
    let ulimits = (!c.config.ulimits.is_empty()).then(|| {
        c.config
            .ulimits
            .iter()
            .map(|u| json!({"Name": u.name, "Hard": u.hard, "Soft": u.soft}))
            .collect::<Vec<_>>()
    });
    let devices: Vec<Value> = c
        .config
        .devices
        .iter()
        .map(|d| json!({"PathOnHost": d.host, "PathInContainer": d.container, "CgroupPermissions": d.perms}))
        .collect();
    let mut state = json!({
        "Status": c.state.status.as_str(),
        "Running": matches!(c.state.status, Status::Running | Status::Paused),
        "Paused": c.state.status == Status::Paused,
        "Restarting": c.state.status == Status::Restarting,
        "OOMKilled": c.state.oom_killed,
        "Dead": c.state.status == Status::Dead,
        "Pid": c.state.pid,
        "ExitCode": c.state.exit_code,
        "Error": c.state.error,
        "StartedAt": c.state.started_at,
        "FinishedAt": c.state.finished_at,
    });
    if let Some(h) = health {
        state["Health"] = h;
    }
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": state,
        "Image": c.image_id,
        "ResolvConfPath": e.paths.container_dir(&c.id).join("resolv.conf"),
        "HostnamePath": e.paths.container_dir(&c.id).join("hostname"),
        "HostsPath": e.paths.container_dir(&c.id).join("hosts"),
        "LogPath": e.paths.log_file(&c.id),
        "Name": format!("/{}", c.name),
        "RestartCount": c.state.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "NetworkMode": if c.config.network.is_empty() { "bridge" } else { &c.config.network },
            "UsernsMode": c.config.userns.mode_name(),
            "IDMappings": c.config.userns.map(),
            "RestartPolicy": restart,
            "AutoRemove": c.config.auto_remove,
            "Init": c.config.init,
            "Privileged": c.config.privileged,
            "ReadonlyRootfs": c.config.read_only,
            "CapAdd": c.config.cap_add,
            "CapDrop": c.config.cap_drop,
            "Memory": c.config.memory.unwrap_or(0),
            "MemorySwap": c.config.memory_swap.unwrap_or(0),
            "NanoCpus": c.config.cpus.map_or(0, |x| (x * 1e9) as i64),
            "CpuShares": c.config.cpu_shares.unwrap_or(0),
            "CpusetCpus": c.config.cpuset_cpus.clone().unwrap_or_default(),
            "PidsLimit": c.config.pids_limit,
            "Ulimits": ulimits,
            "Devices": devices,
            "Runtime": c.config.runtime.clone().unwrap_or_else(|| "berth".into()),
            "PublishAllPorts": c.config.publish_all,
            "LogConfig": {"Type": "json-file", "Config": {}},
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": c.config.hostname.clone().unwrap_or_else(|| c.id[..12].to_string()),
            "User": c.config.user.clone().unwrap_or_default(),
            "Tty": c.config.tty,
            "OpenStdin": c.config.interactive,
            "Env": c.config.env,
            "Cmd": c.config.cmd,
            "Image": c.image,
            "WorkingDir": c.config.workdir.clone().unwrap_or_default(),
            "Entrypoint": c.config.entrypoint,
            "Labels": c.config.labels,
            "StopSignal": c.config.stop_signal,
            "StopTimeout": c.config.stop_timeout,
        },
        "NetworkSettings": {
            "IPAddress": c.state.ip,
            "Ports": ports,
        },
    })
}

pub struct StatsRow {
    pub container: Container,
    pub cpu: f64,
    pub sample: berth_engine::stats::Sample,
}

/// `n` scaled by `base` into `units`, with `digits` significant digits and
/// no trailing zeros (Go's `%.Ng`, as Docker's go-units prints sizes).
fn significant(n: u64, base: f64, units: &[&str], digits: usize) -> String {
    let mut v = n as f64;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    let int_digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as usize + 1
    };
    let decimals = digits.saturating_sub(int_digits);
    let t = format!("{v:.decimals$}");
    let t = if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.')
    } else {
        &t
    };
    format!("{t}{}", units[i])
}

/// Memory as `docker stats` shows it: binary units, 4 significant digits
/// (`64.25MiB`, `32MiB`).
pub fn mem_size(n: u64) -> String {
    significant(n, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

/// Disk use as `docker system df` shows it: decimal units, 4 significant
/// digits (`1.078GB`).
pub fn disk_size(n: u64) -> String {
    significant(n, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 4)
}

/// Network and block I/O as `docker stats` shows them: decimal units,
/// 3 significant digits (`1.05kB`, `12.3MB`).
pub fn io_size(n: u64) -> String {
    significant(n, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 3)
}

/// The fields of one `stats` row, with Docker's names (`--format` templates
/// and `json`).
pub fn stats_value(r: &StatsRow) -> Value {
    let s = &r.sample;
    json!({
        "BlockIO": format!("{} / {}", io_size(s.block_read), io_size(s.block_write)),
        "CPUPerc": format!("{:.2}%", r.cpu),
        "Container": r.container.name,
        "ID": r.container.short_id(),
        "MemPerc": format!("{:.2}%", berth_engine::stats::memory_percent(s)),
        "MemUsage": format!("{} / {}", mem_size(s.memory), mem_size(s.memory_limit)),
        "Name": r.container.name,
        "NetIO": format!("{} / {}", io_size(s.net_rx), io_size(s.net_tx)),
        "PIDs": s.pids.to_string(),
    })
}

const STATS_COLUMNS: [(&str, &str); 9] = [
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

const STATS_DEFAULT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// `stats` output: the default table, `json` (one object a line), a
/// `table …` template (with a header) or a plain template (one line each).
pub fn stats(rows: &[StatsRow], fmt: Option<&str>) -> String {
    let fmt = fmt.unwrap_or(STATS_DEFAULT);
    if fmt == "json" {
        return rows
            .iter()
            .map(|r| format!("{}\n", stats_value(r)))
            .collect();
    }
    let (header, t) = match fmt.strip_prefix("table") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, fmt),
    };
    let cells = |v: &Value| -> Vec<String> {
        template_value(t, v)
            .split('\t')
            .map(str::to_string)
            .collect()
    };
    let mut out: Vec<Vec<String>> = vec![];
    if header {
        let names = Value::Object(
            STATS_COLUMNS
                .iter()
                .map(|(k, h)| (k.to_string(), Value::String(h.to_string())))
                .collect(),
        );
        out.push(cells(&names));
    }
    out.extend(rows.iter().map(|r| cells(&stats_value(r))));
    if header {
        table(&out)
    } else {
        out.iter().map(|r| format!("{}\n", r.join("\t"))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let v = json!({"ID": "abc", "State": {"Status": "running"}, "N": 3});
        assert_eq!(
            template_value("{{.ID}}\\t{{.State.Status}}", &v),
            "abc\trunning"
        );
        assert_eq!(
            template_value("{{json .State}}", &v),
            r#"{"Status":"running"}"#
        );
        assert_eq!(template_value("{{.N}} {{.X}}", &v), "3 <no value>");
        assert_eq!(
            table(&[
                vec!["A".into(), "B".into()],
                vec!["long".into(), "x".into()]
            ]),
            "A      B\nlong   x\n"
        );
        assert_eq!(disk_size(1_078_000_000), "1.078GB");
        assert_eq!(disk_size(1536), "1.536kB");
        assert_eq!(disk_size(0), "0B");
    }

    #[test]
    fn docker_stats_sizes() {
        assert_eq!(mem_size(0), "0B");
        assert_eq!(mem_size(32 << 20), "32MiB");
        assert_eq!(mem_size((64 << 20) + (1 << 18)), "64.25MiB");
        assert_eq!(mem_size(2_097_152_000), "1.953GiB");
        assert_eq!(mem_size(1000), "1000B");
        assert_eq!(io_size(0), "0B");
        assert_eq!(io_size(648), "648B");
        assert_eq!(io_size(1050), "1.05kB");
        assert_eq!(io_size(12_345_678), "12.3MB");
        assert_eq!(io_size(123_400_000), "123MB");
        assert_eq!(io_size(1_500_000_000), "1.5GB");
    }

    fn row(name: &str) -> StatsRow {
        let container = Container {
            id: "0123456789abcdef0123".into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            created: berth_engine::model::ZERO_TIME.into(),
            config: Default::default(),
            state: Default::default(),
        };
        StatsRow {
            container,
            cpu: 12.345,
            sample: berth_engine::stats::Sample {
                memory: 8 << 20,
                memory_limit: 32 << 20,
                net_rx: 1050,
                net_tx: 0,
                block_read: 4096,
                block_write: 2_000_000,
                pids: 3,
                ..Default::default()
            },
        }
    }

    #[test]
    fn stats_formats() {
        let rows = [row("web")];
        let t = stats(&rows, None);
        let cells = |l: &str| -> Vec<String> {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        };
        let lines: Vec<Vec<String>> = t.lines().map(cells).collect();
        assert_eq!(
            lines,
            [
                [
                    "CONTAINER ID",
                    "NAME",
                    "CPU %",
                    "MEM USAGE / LIMIT",
                    "MEM %",
                    "NET I/O",
                    "BLOCK I/O",
                    "PIDS"
                ],
                [
                    "0123456789ab",
                    "web",
                    "12.35%",
                    "8MiB / 32MiB",
                    "25.00%",
                    "1.05kB / 0B",
                    "4.1kB / 2MB",
                    "3"
                ]
            ]
        );
        assert_eq!(
            stats(&rows, Some("{{.Name}}: {{.MemPerc}} {{.PIDs}}")),
            "web: 25.00% 3\n"
        );
        assert_eq!(
            stats(&rows, Some("table {{.Container}}\\t{{.CPUPerc}}")),
            "CONTAINER   CPU %\nweb         12.35%\n"
        );
        let v: Value = serde_json::from_str(stats(&rows, Some("json")).trim()).unwrap();
        assert_eq!(v["MemUsage"], "8MiB / 32MiB");
        assert_eq!(v["BlockIO"], "4.1kB / 2MB");
        assert_eq!(v["PIDs"], "3");
        assert_eq!(v["ID"], "0123456789ab");
    }
}
