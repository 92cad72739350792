//! `berth-runtime`: a runc-compatible command line over the berth runtime
//! library. Argument parsing and output formatting only.

mod cgroups_cmds;
mod foreground;
mod log;
mod spec;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_runtime::{CreateOptions, Runtime, container::DEFAULT_ROOT};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-runtime",
    version,
    about = "berth's OCI runtime (runc-compatible command line)"
)]
struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Write errors and debug output to this file instead of stderr only.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of --log: text or json.
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Debug output.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd for cgroups (not supported: berth uses cgroupfs).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a default config.json in the current directory (or --bundle).
    Spec {
        #[arg(short, long)]
        bundle: Option<PathBuf>,
        /// A config for running as an unprivileged user.
        #[arg(long)]
        rootless: bool,
    },
    /// Create a container: set it up and leave it waiting before its process runs.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Create and start a container; wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits (runc's --keep).
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (name or number, default SIGTERM) to a container.
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a stopped container (or any with --force).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Show a container's processes.
    Ps {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
        /// Arguments for ps(1), default -ef.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print the OCI features JSON of this runtime.
    Features,
    /// Suspend every process of a container (freeze its cgroup).
    Pause { id: String },
    /// Resume a paused container.
    Resume { id: String },
    /// Change a running container's resource limits.
    Update(cgroups_cmds::UpdateArgs),
    /// Stream a container's events (OOM kills, periodic stats) as JSON lines.
    Events(cgroups_cmds::EventsArgs),
}

#[derive(clap::Args)]
struct CreateArgs {
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    id: String,
}

#[derive(clap::Args)]
struct ExecArgs {
    #[arg(short, long)]
    process: Option<PathBuf>,
    #[arg(short, long)]
    tty: bool,
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    #[arg(short, long)]
    detach: bool,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    cwd: Option<PathBuf>,
    #[arg(short, long)]
    env: Vec<String>,
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: i32,
    /// Accepted for runc compatibility.
    #[arg(long = "process-label", hide = true)]
    process_label: Option<String>,
    #[arg(long, hide = true)]
    apparmor: Option<String>,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logger = log::Logger::new(cli.log.clone(), &cli.log_format, cli.debug);
    // Commands that put processes in a container run from a sealed copy of
    // this binary, so the container can never reach the host file
    // (berth_runtime::selfexe, CVE-2019-5736).
    if matches!(cli.cmd, Cmd::Create(_) | Cmd::Run { .. } | Cmd::Exec(_))
        && let Err(e) = berth_runtime::selfexe::reexec_sealed()
    {
        logger.error(&e.to_string());
        return ExitCode::from(1);
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            logger.error(&error_text(&e));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    if cli.systemd_cgroup {
        bail!(
            "--systemd-cgroup is not supported: berth-runtime manages cgroups through cgroupfs; configure your engine's cgroup manager as cgroupfs"
        );
    }
    let rt = Runtime::new(&cli.root);
    match cli.cmd {
        Cmd::Spec { bundle, rootless } => spec::write(bundle.as_deref(), rootless).map(|_| 0),
        Cmd::Create(a) => {
            let created = rt.create(&a.id, &a.options())?;
            if created.console.is_some() {
                bail!("the process has a terminal: create needs --console-socket to hand it over");
            }
            Ok(0)
        }
        Cmd::Start { id } => rt.start(&id).map(|_| 0).map_err(Into::into),
        Cmd::Run {
            create,
            detach,
            keep,
        } => foreground::run(&rt, &create.id, &create.options(), detach, keep),
        Cmd::State { id } => {
            let st = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
            Ok(0)
        }
        Cmd::Kill { all, id, signal } => {
            let sig = berth_runtime::signal::parse(signal.as_deref().unwrap_or("TERM"))?;
            rt.kill(&id, sig, all)?;
            Ok(0)
        }
        Cmd::Delete { force, id } => {
            match rt.delete(&id, force) {
                // runc: deleting a missing container with --force succeeds.
                Err(berth_runtime::Error::NotFound(_)) if force => Ok(0),
                r => r.map(|_| 0).map_err(Into::into),
            }
        }
        Cmd::List { format, quiet } => list(&rt, &format, quiet).map(|_| 0),
        Cmd::Exec(a) => exec(&rt, a),
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, &id, &format, &ps_args).map(|_| 0),
        Cmd::Pause { id } => rt.pause(&id).map(|_| 0).map_err(Into::into),
        Cmd::Resume { id } => rt.resume(&id).map(|_| 0).map_err(Into::into),
        Cmd::Update(a) => cgroups_cmds::update(&rt, &a).map(|_| 0),
        Cmd::Events(a) => cgroups_cmds::events(&rt, &a).map(|_| 0),
        Cmd::Features => {
            println!("{}", serde_json::to_string_pretty(&spec::features())?);
            Ok(0)
        }
    }
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let all = rt.list()?;
    if quiet {
        for (st, _) in &all {
            println!("{}", st.id);
        }
        return Ok(());
    }
    if format == "json" {
        let v: Vec<_> = all.iter().map(|(st, status)| st.public(*status)).collect();
        println!("{}", serde_json::to_string(&v)?);
        return Ok(());
    }
    println!(
        "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for (st, status) in &all {
        let pid = if *status == berth_runtime::state::Status::Stopped {
            0
        } else {
            st.pid
        };
        println!(
            "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
            st.id,
            pid,
            status,
            st.bundle.display(),
            st.created,
            st.owner
        );
    }
    Ok(())
}

fn ps(rt: &Runtime, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    if format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("running ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}

fn exec(rt: &Runtime, a: ExecArgs) -> Result<u8> {
    use berth_runtime::exec::{ExecOptions, ProcessOverrides, process_from_overrides};
    let process: oci_spec::runtime::Process = match &a.process {
        Some(path) => {
            let text =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_slice(&text)
                .with_context(|| format!("parsing the process {}", path.display()))?
        }
        None => {
            let st = rt.load(&a.id)?.1;
            process_from_overrides(
                &st.config,
                &ProcessOverrides {
                    args: a.args.clone(),
                    env: a.env.clone(),
                    cwd: a.cwd.clone(),
                    user: a.user.clone(),
                    caps: a.cap.clone(),
                    no_new_privs: a.no_new_privs,
                    tty: a.tty,
                },
            )?
        }
    };
    let opts = ExecOptions {
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
    };
    if a.detach {
        let done = rt.exec(&a.id, &process, &opts)?;
        if done.console.is_some() {
            bail!("a detached exec with a terminal needs --console-socket");
        }
        return Ok(0);
    }
    let sfd = foreground::block_signals()?;
    let done = rt.exec(&a.id, &process, &opts)?;
    foreground::supervise(&done.pidfd, done.pid, &sfd, done.console.as_ref())
}

/// The error and its causes, each said once: berth's own errors already
/// include their cause in their message.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !text.contains(&s) {
            text = format!("{text}: {s}");
        }
        cur = c.source();
    }
    text
}
