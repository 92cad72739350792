//! `berth system …`, `info`, `version`, `events`, and `berth network …`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_engine::Engine;
use berth_engine::model::Status;
use clap::Subcommand;
use serde_json::json;

use crate::format;

#[derive(Subcommand)]
pub enum TopLevel {
    /// Engine-wide information.
    #[command(after_help = "Examples:\n  berth info\n  berth info -f '{{.Containers}}'")]
    Info {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Version information.
    #[command(after_help = "Examples:\n  berth version")]
    Version,
    /// Stream container, image, volume and network events.
    #[command(
        after_help = "Examples:\n  berth events --since 10m --until 0s\n  berth events --filter type=container --filter event=start"
    )]
    Events {
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// type=, event=, container=
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SystemCmd {
    /// Engine-wide information.
    Info {
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Disk usage of images, containers and volumes.
    #[command(after_help = "Examples:\n  berth system df")]
    Df,
    /// Remove stopped containers, unused networks and dangling images.
    #[command(after_help = "Examples:\n  berth system prune -f\n  berth system prune -f --volumes")]
    Prune {
        #[arg(short, long)]
        force: bool,
        #[arg(short, long)]
        all: bool,
        #[arg(long)]
        volumes: bool,
    },
    /// Find and repair what a crash left behind (mounts, snapshots,
    /// runtime state, endpoints, sandboxes, monitors).
    #[command(after_help = "Examples:\n  berth system check")]
    Check {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Stream events.
    Events {
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(short, long)]
        filter: Vec<String>,
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a bridge network.
    #[command(after_help = "Examples:\n  berth network create --subnet 10.200.7.0/24 mynet")]
    Create {
        #[arg(long)]
        subnet: Option<String>,
        #[arg(long)]
        gateway: Option<String>,
        /// Hand out addresses only from this sub-range of the subnet.
        #[arg(long = "ip-range")]
        ip_range: Option<String>,
        #[arg(long)]
        internal: bool,
        /// KEY=VALUE metadata (repeatable).
        #[arg(long)]
        label: Vec<String>,
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        name: String,
    },
    /// Connect a running container to a network.
    #[command(after_help = "Examples:\n  berth network connect --alias db mynet web")]
    Connect {
        /// A static address in the network's subnet.
        #[arg(long)]
        ip: Option<String>,
        /// Extra DNS names for the container on this network (repeatable).
        #[arg(long)]
        alias: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show network details.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove unused networks.
    Prune {
        #[arg(short, long)]
        force: bool,
    },
}

pub fn top_level(root: &Path, c: TopLevel) -> Result<u8> {
    match c {
        TopLevel::Info { format } => run(root, SystemCmd::Info { format }),
        TopLevel::Version => {
            println!("Client/Engine: berth {}", env!("CARGO_PKG_VERSION"));
            println!(" API version:  none (daemonless)");
            println!(" Runtime:      berth-runtime (in-process)");
            println!(" OS/Arch:      linux/{}", std::env::consts::ARCH);
            Ok(0)
        }
        TopLevel::Events {
            since,
            until,
            filter,
            format,
        } => events(root, since, until, filter, format),
    }
}

fn events(
    root: &Path,
    since: Option<String>,
    until: Option<String>,
    filter: Vec<String>,
    fmt: Option<String>,
) -> Result<u8> {
    let e = Engine::open(root)?;
    let now = berth_engine::time::now_nanos();
    let t = |s: &Option<String>| -> Result<Option<i64>> {
        s.as_deref()
            .map(|v| {
                berth_engine::time::parse_time_arg(v, now)
                    .with_context(|| format!("invalid time {v:?}"))
            })
            .transpose()
    };
    let since = t(&since)?;
    let until = t(&until)?;
    // Without --since, only new events (as Docker).
    let mut last = if since.is_none() {
        e.db.events(0, 0, i64::MAX)?.last().map_or(0, |ev| ev.seq)
    } else {
        0
    };
    let filters: Vec<(String, String)> = filter
        .iter()
        .filter_map(|f| {
            f.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    loop {
        let end = until.unwrap_or(i64::MAX);
        for ev in e.db.events(last, since.unwrap_or(0), end)? {
            last = ev.seq;
            let keep = filters.iter().all(|(k, v)| match k.as_str() {
                "type" => &ev.kind == v,
                "event" | "action" => &ev.action == v,
                "container" => {
                    ev.actor.starts_with(v.as_str()) || ev.attributes.get("name") == Some(v)
                }
                _ => true,
            });
            if !keep {
                continue;
            }
            let v = json!({"Type": ev.kind, "Action": ev.action, "Actor": {"ID": ev.actor, "Attributes": ev.attributes},
                           "time": ev.time_nano / 1_000_000_000, "timeNano": ev.time_nano});
            match fmt.as_deref() {
                Some("json") | Some("{{json .}}") => println!("{v}"),
                Some(t) => println!("{}", format::template_value(t, &v)),
                None => {
                    let attrs: Vec<String> = ev
                        .attributes
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    println!(
                        "{} {} {} {} ({})",
                        berth_engine::time::rfc3339_nanos(ev.time_nano),
                        ev.kind,
                        ev.action,
                        ev.actor,
                        attrs.join(", ")
                    );
                }
            }
        }
        if until.is_some_and(|u| berth_engine::time::now_nanos() >= u) {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn run(root: &Path, c: SystemCmd) -> Result<u8> {
    match c {
        SystemCmd::Info { format: f } => {
            let mut e = Engine::open(root)?;
            let list = e.list()?;
            let count = |s: Status| list.iter().filter(|c| c.state.status == s).count();
            let images = e.images()?.list()?.len();
            let driver = format!("{:?}", e.images()?.snapshotter().driver()).to_lowercase();
            let v = json!({
                "Containers": list.len(),
                "ContainersRunning": count(Status::Running),
                "ContainersPaused": count(Status::Paused),
                "ContainersStopped": list.len() - count(Status::Running) - count(Status::Paused),
                "Images": images,
                "Driver": driver,
                "LoggingDriver": "json-file",
                "CgroupVersion": if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "2" } else { "1" },
                "DefaultRuntime": "berth",
                "KernelVersion": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
                "OperatingSystem": "linux",
                "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
                "MemTotal": berth_engine::procs::host_memory(),
                "DockerRootDir": e.paths.root,
                "RunDir": e.paths.run,
                "ServerVersion": env!("CARGO_PKG_VERSION"),
            });
            match f {
                Some(t) => println!("{}", format::template_value(&t, &v)),
                None => {
                    for (k, val) in v.as_object().expect("object") {
                        println!(
                            "{k}: {}",
                            val.as_str().map_or(val.to_string(), str::to_string)
                        );
                    }
                }
            }
            Ok(0)
        }
        SystemCmd::Df => {
            let mut e = Engine::open(root)?;
            let images = e.images()?.list()?;
            let list = e.list()?;
            let vols = e.db.list_volumes()?;
            let isize: u64 = images.iter().map(|i| i.size).sum();
            let csize: u64 = list
                .iter()
                .map(|c| berth_engine::fsutil::du(&e.paths.container_dir(&c.id)))
                .sum();
            let vsize: u64 = vols
                .iter()
                .map(|v| berth_engine::fsutil::du(&e.paths.volumes().join(&v.name)))
                .sum();
            let active_c = list.iter().filter(|c| c.state.status.is_active()).count();
            let active_v = vols
                .iter()
                .filter(|v| e.volume_users(&v.name).is_ok_and(|u| !u.is_empty()))
                .count();
            let rows = vec![
                vec![
                    "TYPE".to_string(),
                    "TOTAL".into(),
                    "ACTIVE".into(),
                    "SIZE".into(),
                ],
                vec![
                    "Images".into(),
                    images.len().to_string(),
                    images
                        .iter()
                        .filter(|i| i.containers > 0)
                        .count()
                        .to_string(),
                    format::disk_size(isize),
                ],
                vec![
                    "Containers".into(),
                    list.len().to_string(),
                    active_c.to_string(),
                    format::disk_size(csize),
                ],
                vec![
                    "Local Volumes".into(),
                    vols.len().to_string(),
                    active_v.to_string(),
                    format::disk_size(vsize),
                ],
            ];
            print!("{}", format::table(&rows));
            Ok(0)
        }
        SystemCmd::Prune {
            force: _,
            all,
            volumes,
        } => {
            let mut e = Engine::open(root)?;
            for id in e.prune_containers()? {
                println!("Deleted container {id}");
            }
            for n in e.net()?.prune()? {
                println!("Deleted network {n}");
            }
            if volumes {
                for v in e.prune_volumes()? {
                    println!("Deleted volume {v}");
                }
            }
            let r = e.images()?.prune(all)?;
            for u in r.untagged {
                println!("Untagged {u}");
            }
            for d in r.deleted {
                println!("Deleted image {d}");
            }
            Ok(0)
        }
        SystemCmd::Check { quiet } => {
            let mut e = Engine::open(root)?;
            let r = e.check()?;
            if !quiet {
                for x in &r.repaired {
                    println!("repaired: {x}");
                }
                if r.repaired.is_empty() && r.errors.is_empty() {
                    println!("ok: nothing to repair");
                }
            }
            for x in &r.errors {
                eprintln!("error: {x}");
            }
            Ok(if r.errors.is_empty() { 0 } else { 1 })
        }
        SystemCmd::Events {
            since,
            until,
            filter,
            format,
        } => events(root, since, until, filter, format),
    }
}

pub fn network(root: &Path, c: NetworkCmd) -> Result<u8> {
    let mut e = Engine::open(root)?;
    match c {
        NetworkCmd::Connect {
            ip,
            alias,
            network,
            container,
        } => {
            let ip = ip.map(|i| i.parse()).transpose().context("invalid --ip")?;
            e.connect(&network, &container, ip, alias)?;
        }
        NetworkCmd::Disconnect {
            force: _,
            network,
            container,
        } => {
            e.disconnect(&network, &container)?;
        }
        NetworkCmd::Create {
            subnet,
            gateway,
            ip_range,
            internal,
            label,
            driver,
            name,
        } => {
            if driver != "bridge" {
                anyhow::bail!("unsupported network driver {driver:?}: only bridge");
            }
            let spec = berth_net::NetworkSpec {
                name,
                subnet: subnet.map(|s| s.parse()).transpose()?,
                gateway: gateway
                    .map(|g| g.parse())
                    .transpose()
                    .context("invalid --gateway")?,
                ip_range: ip_range
                    .map(|s| s.parse())
                    .transpose()
                    .context("invalid --ip-range")?,
                internal,
                labels: label
                    .iter()
                    .map(|l| match l.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (l.clone(), String::new()),
                    })
                    .collect(),
                ..Default::default()
            };
            let rec = e.net()?.create_network(&spec)?;
            e.event("network", "create", &rec.id, &[("name", &rec.name)]);
            println!("{}", rec.id);
        }
        NetworkCmd::Ls { quiet } => {
            let nets = e.net()?.list()?;
            if quiet {
                for n in nets {
                    println!("{}", n.name);
                }
            } else {
                let mut rows = vec![vec![
                    "NETWORK ID".to_string(),
                    "NAME".into(),
                    "DRIVER".into(),
                    "SUBNET".into(),
                ]];
                for n in nets {
                    rows.push(vec![
                        n.id.chars().take(12).collect(),
                        n.name.clone(),
                        "bridge".into(),
                        n.subnet.to_string(),
                    ]);
                }
                print!("{}", format::table(&rows));
            }
        }
        NetworkCmd::Inspect { names } => {
            let mut out = vec![];
            for n in names {
                let info = e.net()?.inspect(&n)?;
                out.push(serde_json::to_value(&info.network)?);
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        NetworkCmd::Rm { names } => {
            for n in names {
                e.net()?.remove(&n)?;
                e.event("network", "destroy", &n, &[("name", &n)]);
                println!("{n}");
            }
        }
        NetworkCmd::Prune { force: _ } => {
            for n in e.net()?.prune()? {
                println!("{n}");
            }
        }
    }
    Ok(0)
}
