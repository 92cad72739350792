//! Container commands: run, create, start, stop, kill, restart, rm, ps,
//! logs, exec, attach, inspect, stats, top, cp, wait, pause, unpause,
//! rename, port, commit, diff, container prune.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_engine::engine::ExecRequest;
use berth_engine::model::{self, ContainerConfig, Healthcheck, Status};
use berth_engine::stats::Sample;
use berth_engine::{Container, Engine};
use clap::{Args, Subcommand};

use crate::format;

#[derive(Args, Clone, Default)]
pub struct CreateArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Assign a name.
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy ours).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// The container's hostname (default: its short id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Override the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Bind mount or volume: SRC:DST[:ro], NAME:DST, or DST (anonymous).
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=…,target=…[,readonly]
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount a tmpfs: DST[:OPTIONS].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Publish a port: [IP:][HOST:]CONTAINER[/PROTO].
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Publish every exposed port to a random host port.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// none, host, bridge, NAME or container:ID.
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// A static IPv4 address on the (first) network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Another DNS name for the container on its networks (repeatable).
    #[arg(long = "network-alias", alias = "alias")]
    pub network_alias: Vec<String>,
    /// Memory limit (e.g. 64m).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Memory+swap limit (-1 = unlimited).
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Relative CPU weight (default 1024).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (e.g. 0-1,3).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Most processes at once (-1 = unlimited).
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// NAME=SOFT[:HARD]
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Add a capability (e.g. NET_ADMIN, or ALL).
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop a capability (e.g. CHOWN, or ALL).
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Every capability, no seccomp, no masked paths.
    #[arg(long)]
    pub privileged: bool,
    /// host (default), or auto[:size=N]: a user namespace with a block of
    /// ids of its own from the ranges of the user `berth` in /etc/subuid.
    #[arg(long)]
    pub userns: Option<String>,
    /// CONTAINER_ID:HOST_ID:SIZE — a user namespace with this uid map (repeatable).
    #[arg(long)]
    pub uidmap: Vec<String>,
    /// CONTAINER_ID:HOST_ID:SIZE — its gid map (default: the uid map).
    #[arg(long)]
    pub gidmap: Vec<String>,
    /// seccomp=FILE|unconfined, no-new-privileges.
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// HOST[:CONTAINER[:PERMS]]
    #[arg(long)]
    pub device: Vec<String>,
    /// Run a tiny init as pid 1 that forwards signals to the command and
    /// reaps zombies.
    #[arg(long)]
    pub init: bool,
    /// no, on-failure[:N], always, unless-stopped.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Signal that stop sends first (default SIGTERM, or the image's).
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds stop waits before SIGKILL (default 10).
    #[arg(long)]
    pub stop_timeout: Option<u32>,
    /// KEY=VALUE
    #[arg(short, long)]
    pub label: Vec<String>,
    /// Command run in the container to check its health (exit 0: healthy).
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between checks (e.g. 30s).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Time one check may take.
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Failures in a row that make the container unhealthy.
    #[arg(long)]
    pub health_retries: Option<u32>,
    /// Grace time after start during which failures do not count.
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Disable the image's healthcheck.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// berth (default) or the path of a runc-compatible binary.
    #[arg(long)]
    pub runtime: Option<String>,
    /// max-size=SIZE, max-file=N
    #[arg(long)]
    pub log_opt: Vec<String>,
    /// Pull policy (images are local only).
    #[arg(long, hide = true)]
    pub pull: Option<String>,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Commands {
    /// Create and start a container.
    #[command(
        after_help = "Examples:\n  berth run --rm busybox echo hello\n  berth run -it busybox sh\n  berth run -d --name web --restart on-failure:3 busybox httpd -f -p 80\n  berth run --rm -v data:/data -e A=1 busybox sh -c 'echo $A > /data/a'\n  berth run --rm --init --memory 64m --cpus 0.5 busybox sh -c 'sleep 1 & wait'\n  berth run --rm --uidmap 0:100000:65536 busybox id"
    )]
    Run(CreateArgs),
    /// Create a container without starting it.
    #[command(
        after_help = "Examples:\n  berth create --name c1 busybox sleep 100\n  berth start c1"
    )]
    Create(CreateArgs),
    /// Start stopped containers.
    #[command(
        after_help = "Examples:\n  berth start c1\n  berth start -a c1   # attach and return its exit code"
    )]
    Start {
        /// Attach stdout/stderr and return the exit code.
        #[arg(short, long)]
        attach: bool,
        #[arg(short, long)]
        interactive: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers (stop signal, then SIGKILL).
    #[command(after_help = "Examples:\n  berth stop web\n  berth stop -t 0 web")]
    Stop {
        #[arg(short = 't', long = "time", alias = "timeout")]
        time: Option<u32>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to running containers.
    #[command(after_help = "Examples:\n  berth kill web\n  berth kill -s HUP web")]
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart containers.
    #[command(after_help = "Examples:\n  berth restart web")]
    Restart {
        #[arg(short = 't', long = "time")]
        time: Option<u32>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    #[command(after_help = "Examples:\n  berth rm c1\n  berth rm -f $(berth ps -aq)")]
    Rm {
        #[arg(short, long)]
        force: bool,
        /// Also remove anonymous volumes.
        #[arg(short, long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    #[command(
        alias = "ls",
        after_help = "Examples:\n  berth ps -a\n  berth ps -q --filter status=exited\n  berth ps --format '{{.ID}} {{.Names}} {{.Status}}'\n  berth ps --format json"
    )]
    Ps(PsArgs),
    /// Show a container's logs.
    #[command(
        after_help = "Examples:\n  berth logs web\n  berth logs -f --tail 10 web\n  berth logs --since 5m -t web"
    )]
    Logs {
        #[arg(short, long)]
        follow: bool,
        /// Number of lines from the end (or `all`).
        #[arg(short = 'n', long)]
        tail: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(short, long)]
        timestamps: bool,
        container: String,
    },
    /// Run a command in a running container.
    #[command(
        after_help = "Examples:\n  berth exec web ls /\n  berth exec -it web sh\n  berth exec -u nobody -w /tmp -e X=1 web env"
    )]
    Exec {
        #[arg(short, long)]
        interactive: bool,
        #[arg(short, long)]
        tty: bool,
        #[arg(short, long)]
        detach: bool,
        #[arg(short, long = "env")]
        env: Vec<String>,
        #[arg(short, long)]
        user: Option<String>,
        #[arg(short, long)]
        workdir: Option<String>,
        #[arg(long)]
        privileged: bool,
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Attach to a running container's output (and input).
    #[command(after_help = "Examples:\n  berth attach web\n  berth attach --no-stdin web")]
    Attach {
        #[arg(long)]
        no_stdin: bool,
        container: String,
    },
    /// Low-level information on containers (Docker's JSON field names).
    #[command(
        after_help = "Examples:\n  berth inspect web\n  berth inspect -f '{{.State.Status}}' web"
    )]
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Live resource usage (CPU, memory, network, block I/O, pids).
    #[command(after_help = "Examples:\n  berth stats\n  berth stats --no-stream web")]
    Stats {
        #[arg(long)]
        no_stream: bool,
        #[arg(short, long)]
        all: bool,
        #[arg(long)]
        format: Option<String>,
        containers: Vec<String>,
    },
    /// The processes of a container.
    #[command(after_help = "Examples:\n  berth top web")]
    Top { container: String },
    /// Copy files between a container and the host (symlink-safe).
    #[command(
        after_help = "Examples:\n  berth cp web:/etc/hostname .\n  berth cp ./conf web:/etc/app/"
    )]
    Cp { src: String, dst: String },
    /// Block until containers stop; print their exit codes.
    #[command(after_help = "Examples:\n  berth wait job")]
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Pause all processes of containers.
    #[command(after_help = "Examples:\n  berth pause web")]
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Resume paused containers.
    #[command(after_help = "Examples:\n  berth unpause web")]
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container.
    #[command(after_help = "Examples:\n  berth rename old new")]
    Rename { container: String, new_name: String },
    /// List port mappings.
    #[command(after_help = "Examples:\n  berth port web\n  berth port web 80/tcp")]
    Port {
        container: String,
        private_port: Option<String>,
    },
    /// Create an image from a container's changes.
    #[command(after_help = "Examples:\n  berth commit c1 myimage:v1")]
    Commit {
        #[arg(short, long)]
        author: Option<String>,
        #[arg(short, long)]
        message: Option<String>,
        container: String,
        repository: Option<String>,
    },
    /// Files changed in a container's filesystem (A/C/D).
    #[command(after_help = "Examples:\n  berth diff c1")]
    Diff { container: String },
}

#[derive(Args, Clone, Default)]
pub struct PsArgs {
    #[arg(short, long)]
    pub all: bool,
    #[arg(short, long)]
    pub quiet: bool,
    /// Show the last N created containers.
    #[arg(short = 'n', long)]
    pub last: Option<usize>,
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// status=, name=, id=, label=, exited=, ancestor=
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Go-template-style ({{.ID}} {{.Names}}…), `table …` or `json`.
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum ContainerCmd {
    /// Remove all stopped containers.
    #[command(after_help = "Examples:\n  berth container prune -f")]
    Prune {
        #[arg(short, long)]
        force: bool,
    },
    #[command(flatten)]
    All(Commands),
}

pub fn exes() -> Result<(PathBuf, PathBuf)> {
    let me = berth_runtime::selfexe::original_exe().context("locating the berth binary")?;
    let monitor = match std::env::var_os("BERTH_MONITOR") {
        Some(p) => PathBuf::from(p),
        None => me.with_file_name("berth-monitor"),
    };
    if !monitor.exists() {
        bail!(
            "the monitor binary {} is missing (set BERTH_MONITOR)",
            monitor.display()
        );
    }
    Ok((me, monitor))
}

fn to_config(a: &CreateArgs) -> Result<ContainerConfig> {
    let mut env = vec![];
    for f in &a.env_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading env file {}", f.display()))?;
        env.extend(model::parse_env_file(&text, |k| std::env::var(k).ok()));
    }
    for e in &a.env {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let mut mounts = vec![];
    for v in &a.volume {
        let mut m = model::parse_volume_flag(v)?;
        if m.kind == "bind" {
            m.source = std::fs::canonicalize(&m.source)
                .with_context(|| format!("bind source path does not exist: {}", m.source))?
                .to_string_lossy()
                .into_owned();
        }
        mounts.push(m);
    }
    for v in &a.mount {
        mounts.push(model::parse_mount_flag(v)?);
    }
    for t in &a.tmpfs {
        let (target, opts) = t.split_once(':').unwrap_or((t, ""));
        mounts.push(model::MountSpec {
            kind: "tmpfs".into(),
            source: String::new(),
            target: target.into(),
            readonly: false,
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    let mut seccomp_profile = None;
    let mut seccomp_unconfined = false;
    let mut no_new_privileges = false;
    for o in &a.security_opt {
        let (k, v) = o.split_once(['=', ':']).unwrap_or((o, ""));
        match (k, v) {
            ("seccomp", "unconfined") => seccomp_unconfined = true,
            ("seccomp", f) => {
                seccomp_profile = Some(
                    std::fs::read_to_string(f)
                        .with_context(|| format!("reading seccomp profile {f}"))?,
                )
            }
            ("no-new-privileges", "" | "true") => no_new_privileges = true,
            ("no-new-privileges", "false") => no_new_privileges = false,
            _ => bail!(
                "invalid --security-opt {o:?}: want seccomp=FILE|unconfined or no-new-privileges"
            ),
        }
    }
    let mut labels = BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let healthcheck = if a.no_healthcheck {
        Some(Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        })
    } else {
        match &a.health_cmd {
            Some(cmd) => Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), cmd.clone()],
                interval_ms: a
                    .health_interval
                    .as_deref()
                    .map(model::parse_duration_ms)
                    .transpose()?
                    .unwrap_or(30_000),
                timeout_ms: a
                    .health_timeout
                    .as_deref()
                    .map(model::parse_duration_ms)
                    .transpose()?
                    .unwrap_or(30_000),
                retries: a.health_retries.unwrap_or(3),
                start_period_ms: a
                    .health_start_period
                    .as_deref()
                    .map(model::parse_duration_ms)
                    .transpose()?
                    .unwrap_or(0),
            }),
            None => None,
        }
    };
    let (mut log_max_size, mut log_max_file) = (None, None);
    for o in &a.log_opt {
        match o.split_once('=') {
            Some(("max-size", v)) => log_max_size = Some(model::parse_size(v)? as u64),
            Some(("max-file", v)) => {
                log_max_file = Some(
                    v.parse()
                        .with_context(|| format!("invalid max-file {v:?}"))?,
                )
            }
            _ => bail!("invalid --log-opt {o:?}: want max-size=SIZE or max-file=N"),
        }
    }
    if a.rm && a.restart != "no" {
        bail!("conflicting options: --restart and --rm");
    }
    Ok(ContainerConfig {
        image: a.image.clone(),
        cmd: a.command.clone(),
        entrypoint: a.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            }
        }),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        tty: a.tty,
        interactive: a.interactive,
        auto_remove: a.rm,
        mounts,
        publish: a.publish.clone(),
        publish_all: a.publish_all,
        network: a.network.clone().unwrap_or_default(),
        ip: a.ip.clone(),
        network_aliases: a.network_alias.clone(),
        memory: a.memory.as_deref().map(model::parse_size).transpose()?,
        memory_swap: a
            .memory_swap
            .as_deref()
            .map(|s| {
                if s == "-1" {
                    Ok(-1)
                } else {
                    model::parse_size(s)
                }
            })
            .transpose()?,
        cpus: a.cpus,
        cpu_shares: a.cpu_shares,
        cpuset_cpus: a.cpuset_cpus.clone(),
        pids_limit: a.pids_limit,
        ulimits: a
            .ulimit
            .iter()
            .map(|u| model::parse_ulimit(u))
            .collect::<berth_engine::Result<_>>()?,
        read_only: a.read_only,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        privileged: a.privileged,
        seccomp_profile,
        seccomp_unconfined,
        no_new_privileges,
        devices: a
            .device
            .iter()
            .map(|d| model::parse_device(d))
            .collect::<berth_engine::Result<_>>()?,
        init: a.init,
        restart: model::parse_restart(&a.restart)?,
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        labels,
        healthcheck,
        runtime: a.runtime.clone().map(|r| {
            if r.contains('/') || r == "berth" {
                r
            } else {
                which(&r).unwrap_or(r)
            }
        }),
        log_max_size,
        log_max_file,
        userns: berth_engine::userns::parse(a.userns.as_deref(), &a.uidmap, &a.gidmap)
            .map_err(anyhow::Error::msg)?,
    })
}

fn which(name: &str) -> Option<String> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .map(|p| p.to_string_lossy().into_owned())
}

/// Runs the container: detached under a monitor, or in the foreground.
fn run_container(root: &Path, a: CreateArgs) -> Result<u8> {
    let config = to_config(&a)?;
    let mut e = Engine::open(root)?;
    let c = e.create(a.name.as_deref(), config)?;
    if a.detach {
        let (me, mon) = exes()?;
        if let Err(err) = e.start_detached(&c.id, &me, &mon) {
            if a.rm {
                let _ = e.remove(&c.id, true, true);
            }
            return Err(err.into());
        }
        println!("{}", c.id);
        return Ok(0);
    }
    match e.run_foreground(&c.id) {
        Ok(code) => Ok(code.clamp(0, 255) as u8),
        Err(err) => {
            if a.rm {
                let _ = e.remove(&c.id, true, true);
            }
            Err(err.into())
        }
    }
}

/// The per-container loop of multi-target commands: every target is
/// tried, errors are printed, and the exit code says whether any failed.
fn each(names: &[String], mut f: impl FnMut(&str) -> Result<()>) -> Result<u8> {
    let mut failed = false;
    for n in names {
        if let Err(e) = f(n) {
            eprintln!("berth: {e:#}");
            failed = true;
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub fn run_group(root: &Path, c: ContainerCmd) -> Result<u8> {
    match c {
        ContainerCmd::Prune { force: _ } => {
            let mut e = Engine::open(root)?;
            for id in e.prune_containers()? {
                println!("{id}");
            }
            Ok(0)
        }
        ContainerCmd::All(c) => run(root, c),
    }
}

pub fn run(root: &Path, cmd: Commands) -> Result<u8> {
    match cmd {
        Commands::Run(a) => run_container(root, a),
        Commands::Create(a) => {
            let config = to_config(&a)?;
            let mut e = Engine::open(root)?;
            let c = e.create(a.name.as_deref(), config)?;
            println!("{}", c.id);
            Ok(0)
        }
        Commands::Start {
            attach,
            interactive: _,
            containers,
        } => {
            let mut e = Engine::open(root)?;
            if attach {
                if containers.len() != 1 {
                    bail!("you cannot start and attach multiple containers at once");
                }
                let id = e.get(&containers[0])?.id;
                let code = e.run_foreground(&id)?;
                return Ok(code.clamp(0, 255) as u8);
            }
            let (me, mon) = exes()?;
            each(&containers, |n| {
                let c = e.get(n)?;
                let c = e.refresh(c)?;
                if !c.state.status.is_active() {
                    e.start_detached(&c.id, &me, &mon)?;
                }
                println!("{n}");
                Ok(())
            })
        }
        Commands::Stop { time, containers } => {
            let mut e = Engine::open(root)?;
            each(&containers, |n| {
                e.stop(n, time)?;
                println!("{n}");
                Ok(())
            })
        }
        Commands::Kill { signal, containers } => {
            let mut e = Engine::open(root)?;
            each(&containers, |n| {
                e.kill(n, &signal)?;
                println!("{n}");
                Ok(())
            })
        }
        Commands::Restart { time, containers } => {
            let mut e = Engine::open(root)?;
            let (me, mon) = exes()?;
            each(&containers, |n| {
                let c = e.stop(n, time)?;
                e.start_detached(&c.id, &me, &mon)?;
                println!("{n}");
                Ok(())
            })
        }
        Commands::Rm {
            force,
            volumes,
            containers,
        } => {
            let mut e = Engine::open(root)?;
            each(&containers, |n| {
                e.remove(n, force, volumes)?;
                println!("{n}");
                Ok(())
            })
        }
        Commands::Ps(a) => ps(root, a),
        Commands::Logs {
            follow,
            tail,
            since,
            until,
            timestamps,
            container,
        } => logs(root, &container, follow, tail, since, until, timestamps),
        Commands::Exec {
            interactive,
            tty,
            detach,
            env,
            user,
            workdir,
            privileged,
            container,
            command,
        } => {
            let mut e = Engine::open(root)?;
            let req = ExecRequest {
                cmd: command,
                env,
                user,
                workdir,
                tty,
                interactive,
                detach,
                privileged,
            };
            let code = e.exec(&container, &req)?;
            Ok(code.clamp(0, 255) as u8)
        }
        Commands::Attach {
            no_stdin,
            container,
        } => attach(root, &container, !no_stdin),
        Commands::Inspect {
            format: f,
            containers,
        } => {
            let mut e = Engine::open(root)?;
            let mut out = vec![];
            let mut failed = false;
            for n in &containers {
                match e.get(n).and_then(|c| e.refresh(c)) {
                    Ok(c) => out.push(format::inspect(&e, &c)),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = true;
                    }
                }
            }
            match f {
                Some(t) => {
                    for v in &out {
                        println!("{}", format::template_value(&t, v));
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&out)?),
            }
            Ok(if failed { 1 } else { 0 })
        }
        Commands::Stats {
            no_stream,
            all,
            format: f,
            containers,
        } => stats(root, no_stream, all, f, containers),
        Commands::Top { container } => {
            let mut e = Engine::open(root)?;
            let c = e.get(&container)?;
            let c = e.refresh(c)?;
            if !matches!(c.state.status, Status::Running | Status::Paused) {
                bail!("container {} is not running", c.name);
            }
            let mut rows = vec![[
                "PID".to_string(),
                "PPID".into(),
                "UID".into(),
                "TIME".into(),
                "CMD".into(),
            ]];
            rows.extend(berth_engine::procs::top_rows(c.state.pid));
            print!(
                "{}",
                format::table(&rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>())
            );
            Ok(0)
        }
        Commands::Cp { src, dst } => {
            let mut e = Engine::open(root)?;
            let split = |s: &str| -> Option<(String, String)> {
                if s.starts_with('/') || s.starts_with('.') {
                    return None;
                }
                s.split_once(':')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            };
            match (split(&src), split(&dst)) {
                (Some((c, p)), None) => e.copy_from(&c, &p, Path::new(&dst))?,
                (None, Some((c, p))) => e.copy_to(&c, Path::new(&src), &p)?,
                _ => bail!(
                    "copying between containers or host to host is not supported: one of SRC and DST must be CONTAINER:PATH"
                ),
            }
            Ok(0)
        }
        Commands::Wait { containers } => {
            let mut e = Engine::open(root)?;
            each(&containers, |n| {
                println!("{}", e.wait(n)?);
                Ok(())
            })
        }
        Commands::Pause { containers } => {
            let mut e = Engine::open(root)?;
            each(&containers, |n| {
                e.pause(n)?;
                println!("{n}");
                Ok(())
            })
        }
        Commands::Unpause { containers } => {
            let mut e = Engine::open(root)?;
            each(&containers, |n| {
                e.unpause(n)?;
                println!("{n}");
                Ok(())
            })
        }
        Commands::Rename {
            container,
            new_name,
        } => {
            let mut e = Engine::open(root)?;
            e.rename(&container, &new_name)?;
            Ok(0)
        }
        Commands::Port {
            container,
            private_port,
        } => {
            let mut e = Engine::open(root)?;
            let c = e.get(&container)?;
            let c = e.refresh(c)?;
            let want = private_port.map(|p| {
                if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                }
            });
            let mut any = false;
            for p in &c.state.ports {
                let key = format!("{}/{}", p.container_port, p.proto);
                if want.as_ref().is_some_and(|w| w != &key) {
                    continue;
                }
                any = true;
                if want.is_some() {
                    println!("{}:{}", p.host_ip, p.host_port);
                } else {
                    println!("{key} -> {}:{}", p.host_ip, p.host_port);
                }
            }
            if let (Some(w), false) = (want, any) {
                bail!("no public port {w} published for {}", c.name);
            }
            Ok(0)
        }
        Commands::Commit {
            author,
            message,
            container,
            repository,
        } => {
            let mut e = Engine::open(root)?;
            let c = e.get(&container)?;
            let opts = berth_image::CommitOptions {
                tag: repository,
                author,
                message,
                ..Default::default()
            };
            let id = e.images()?.commit_container(&c.id, &opts)?;
            e.event(
                "container",
                "commit",
                &c.id,
                &[("name", &c.name), ("image", &id)],
            );
            println!("{id}");
            Ok(0)
        }
        Commands::Diff { container } => {
            let mut e = Engine::open(root)?;
            let c = e.get(&container)?;
            for ch in e.images()?.container_changes(&c.id)? {
                let k = match ch.kind {
                    berth_image::layer::ChangeKind::Added => 'A',
                    berth_image::layer::ChangeKind::Modified => 'C',
                    berth_image::layer::ChangeKind::Deleted => 'D',
                };
                println!("{k} {}", ch.path);
            }
            Ok(0)
        }
    }
}

fn ps(root: &Path, a: PsArgs) -> Result<u8> {
    let mut e = Engine::open(root)?;
    let mut list = e.list()?;
    let filters = format::parse_filters(&a.filter)?;
    let all = a.all
        || a.last.is_some()
        || a.latest
        || filters.iter().any(|(k, _)| k == "status" || k == "exited");
    list.retain(|c| (all || c.state.status.is_active()) && format::matches_filters(c, &filters));
    if a.latest {
        list.truncate(1);
    }
    if let Some(n) = a.last {
        list.truncate(n);
    }
    if a.quiet {
        for c in &list {
            println!(
                "{}",
                if a.no_trunc {
                    c.id.as_str()
                } else {
                    c.short_id()
                }
            );
        }
        return Ok(0);
    }
    print!("{}", format::ps(&list, a.format.as_deref(), a.no_trunc));
    Ok(0)
}

fn logs(
    root: &Path,
    name: &str,
    follow: bool,
    tail: Option<String>,
    since: Option<String>,
    until: Option<String>,
    ts: bool,
) -> Result<u8> {
    let mut e = Engine::open(root)?;
    let c = e.get(name)?;
    let now = berth_engine::time::now_nanos();
    let parse_t = |s: &Option<String>| -> Result<Option<i64>> {
        s.as_deref()
            .map(|v| {
                berth_engine::time::parse_time_arg(v, now)
                    .ok_or_else(|| anyhow::anyhow!("invalid time {v:?}"))
            })
            .transpose()
    };
    let (since, until) = (parse_t(&since)?, parse_t(&until)?);
    let tail = match tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .with_context(|| format!("invalid --tail {n:?}"))?,
        ),
    };
    let path = e.paths.log_file(&c.id);
    let max_file = c.config.log_max_file.unwrap_or(1);
    let print = |l: &berth_engine::logs::LogLine| {
        let text = if ts {
            format!("{} {}", l.time, l.log)
        } else {
            l.log.clone()
        };
        if l.stream == "stderr" {
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(text.as_bytes());
            let _ = o.flush();
        }
    };
    let lines = berth_engine::logs::read_all(&path, max_file);
    for l in berth_engine::logs::select(lines, since, until, tail) {
        print(&l);
    }
    if !follow {
        return Ok(0);
    }
    // Follow: read new bytes from the current file; reopen on rotation;
    // stop once the container is no longer running and the file is drained.
    let mut f = std::fs::File::open(&path).ok();
    let mut pos = f
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    let mut partial = String::new();
    loop {
        let mut got = false;
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.len() < pos || f.is_none() {
                f = std::fs::File::open(&path).ok();
                pos = 0;
            }
            if let Some(file) = &mut f {
                use std::io::Seek;
                let _ = file.seek(std::io::SeekFrom::Start(pos));
                let mut buf = String::new();
                if let Ok(n) = file.read_to_string(&mut buf) {
                    pos += n as u64;
                    got = n > 0;
                    partial.push_str(&buf);
                    while let Some(i) = partial.find('\n') {
                        let line: String = partial.drain(..=i).collect();
                        if let Ok(l) = serde_json::from_str::<berth_engine::logs::LogLine>(&line)
                            && until.is_none_or(|u| {
                                berth_engine::time::parse_rfc3339(&l.time).unwrap_or(0) < u
                            })
                        {
                            print(&l);
                        }
                    }
                }
            }
        }
        if !got {
            match e.db.get(&c.id)? {
                Some(c) => {
                    let c = e.refresh(c)?;
                    if !c.state.status.is_active() {
                        return Ok(0);
                    }
                }
                None => return Ok(0),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn attach(root: &Path, name: &str, stdin: bool) -> Result<u8> {
    let mut e = Engine::open(root)?;
    let c = e.get(name)?;
    let c = e.refresh(c)?;
    if c.state.status != Status::Running {
        bail!(
            "cannot attach to container {}: it is {}",
            c.name,
            c.state.status.as_str()
        );
    }
    let sock = e.paths.attach_socket(&c.id);
    let mut s = berth_engine::io::connect_socket(&sock).with_context(|| {
        format!(
            "connecting to the monitor of {} at {}",
            c.name,
            sock.display()
        )
    })?;
    let _raw = (c.config.tty && stdin).then(berth_engine::engine::RawMode::enter);
    if stdin && c.config.interactive {
        let mut w = s.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut input = std::io::stdin();
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || w.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let mut buf = vec![];
    let mut chunk = [0u8; 32 * 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            // The monitor went away without an exit frame: ask the database.
            return Ok(e.wait(&c.id)?.clamp(0, 255) as u8);
        }
        buf.extend_from_slice(&chunk[..n]);
        for (kind, data) in berth_engine::io::parse_frames(&mut buf) {
            match kind {
                berth_engine::io::FRAME_STDOUT => {
                    let mut o = std::io::stdout().lock();
                    o.write_all(&data)?;
                    o.flush()?;
                }
                berth_engine::io::FRAME_STDERR => std::io::stderr().write_all(&data)?,
                berth_engine::io::FRAME_EXIT => {
                    let code = i32::from_be_bytes(data[..4].try_into().unwrap_or([0; 4]));
                    return Ok(code.clamp(0, 255) as u8);
                }
                _ => {}
            }
        }
    }
}

fn stats(
    root: &Path,
    no_stream: bool,
    all: bool,
    fmt: Option<String>,
    names: Vec<String>,
) -> Result<u8> {
    let mut e = Engine::open(root)?;
    // The previous sample of each container: CPU % is over the time between two.
    let mut prev: HashMap<String, Sample> = HashMap::new();
    loop {
        let list: Vec<Container> = if names.is_empty() {
            e.list()?
                .into_iter()
                .filter(|c| all || c.state.status.is_active())
                .collect()
        } else {
            names
                .iter()
                .map(|n| e.get(n).and_then(|c| e.refresh(c)))
                .collect::<berth_engine::Result<_>>()?
        };
        let fresh: Vec<&Container> = list.iter().filter(|c| !prev.contains_key(&c.id)).collect();
        if !fresh.is_empty() {
            for c in fresh {
                prev.insert(c.id.clone(), sample(c));
            }
            // A first interval for the new ones (Docker's --no-stream waits for two samples too).
            std::thread::sleep(Duration::from_millis(500));
        }
        let rows: Vec<format::StatsRow> = list
            .iter()
            .map(|c| {
                let cur = sample(c);
                let before = prev.insert(c.id.clone(), cur.clone()).unwrap_or_default();
                format::StatsRow {
                    container: c.clone(),
                    cpu: berth_engine::stats::cpu_percent(&before, &cur),
                    sample: cur,
                }
            })
            .collect();
        prev.retain(|id, _| list.iter().any(|c| &c.id == id));
        let text = format::stats(&rows, fmt.as_deref());
        if !no_stream {
            print!("\x1b[2J\x1b[H");
        }
        print!("{text}");
        std::io::stdout().flush()?;
        if no_stream {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn sample(c: &Container) -> Sample {
    if matches!(c.state.status, Status::Running | Status::Paused) {
        berth_engine::stats::sample(&c.id, c.state.pid)
    } else {
        Sample::default()
    }
}

pub fn monitor_exited(root: &Path, id: &str, code: i32) -> Result<u8> {
    let (me, mon) = exes()?;
    let mut e = Engine::open(root)?;
    e.monitor_exited(id, code, &me, &mon)?;
    Ok(0)
}

/// One health check: runs the test in the container with the timeout and
/// records the result (Docker's rules: `retries` consecutive failures make
/// it unhealthy; failures during the start period do not count).
pub fn healthcheck(root: &Path, id: &str) -> Result<u8> {
    let mut e = Engine::open(root)?;
    let c = e.get(id)?;
    let Some(h) = c.config.healthcheck.clone() else {
        return Ok(0);
    };
    let cmd: Vec<String> = match h.test.first().map(String::as_str) {
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")],
        Some("CMD") => h.test[1..].to_vec(),
        _ => return Ok(0),
    };
    let start = berth_engine::time::now_rfc3339();
    let me = berth_runtime::selfexe::original_exe()?;
    let mut child = std::process::Command::new(me)
        .arg("--root")
        .arg(root)
        .arg("exec")
        .arg(id)
        .args(&cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_millis(h.timeout_ms.max(100));
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut output);
    }
    let code = status.and_then(|s| s.code()).unwrap_or(-1);
    let started_at = berth_engine::time::parse_rfc3339(&c.state.started_at).unwrap_or(0);
    let in_start_period =
        berth_engine::time::now_nanos() - started_at < h.start_period_ms as i64 * 1_000_000;
    let result = model::HealthResult {
        start,
        end: berth_engine::time::now_rfc3339(),
        exit_code: code,
        output,
    };
    e.db.update_state(&c.id, |s| {
        let hs = s.health.get_or_insert_with(Default::default);
        if code == 0 {
            hs.status = "healthy".into();
            hs.failing_streak = 0;
        } else if !in_start_period {
            hs.failing_streak += 1;
            if hs.failing_streak >= h.retries.max(1) {
                hs.status = "unhealthy".into();
            }
        }
        hs.log.push(result.clone());
        if hs.log.len() > 5 {
            hs.log.remove(0);
        }
        Ok(())
    })?;
    Ok(0)
}

pub fn import_rootfs(root: &Path, tar: &Path, name: &str) -> Result<u8> {
    let mut e = Engine::open(root)?;
    let f = std::fs::File::open(tar).with_context(|| format!("opening {}", tar.display()))?;
    let opts = berth_image::ImportOptions {
        tag: Some(name.to_string()),
        ..Default::default()
    };
    let id = e.images()?.import_rootfs_tar(f, &opts)?;
    println!("{id}");
    Ok(0)
}
