//! `berth`: the daemonless, Docker-compatible engine CLI. Thin: argument
//! parsing and output formatting; the work is in berth-engine.

mod containers;
mod format;
mod images;
mod system;
mod volumes;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A daemonless, Docker-compatible container engine",
    after_help = "Examples:\n  berth run --rm busybox echo hello\n  berth run -d --name web -p 8080:80 busybox httpd -f\n  berth ps -a\n  berth --root /tmp/b run --rm busybox true   # a separate instance"
)]
pub struct Cli {
    /// State directory of this berth instance.
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = berth_engine::paths::DEFAULT_ROOT)]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    #[command(flatten)]
    Container(containers::Commands),
    /// Manage containers (`berth container ls`, `berth container prune`, …).
    #[command(subcommand, name = "container")]
    Container2(containers::ContainerCmd),
    /// Manage volumes.
    #[command(subcommand, name = "volume")]
    Volume(volumes::VolumeCmd),
    /// Manage networks.
    #[command(subcommand, name = "network")]
    Network(system::NetworkCmd),
    /// Engine-wide information and maintenance.
    #[command(subcommand, name = "system")]
    System(system::SystemCmd),
    #[command(flatten)]
    Top(system::TopLevel),
    #[command(flatten)]
    Image(images::Commands),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  berth completion bash > /etc/bash_completion.d/berth\n  berth completion zsh > \"${fpath[1]}/_berth\""
    )]
    Completion { shell: clap_complete::Shell },
    /// (internal) the monitor's hand-off after the container exited.
    #[command(name = "__monitor-exited", hide = true)]
    MonitorExited { id: String, code: i32 },
    /// (internal) a network's DNS server, started by the engine on first use.
    #[command(name = "__net-dns", hide = true)]
    NetDns {
        db: PathBuf,
        network: String,
        run_dir: PathBuf,
        upstreams: String,
    },
    /// (internal, tests and benchmarks) import a rootfs tarball as an image;
    /// the public command is `berth import`.
    #[command(name = "__import-rootfs", hide = true)]
    ImportRootfs { tar: PathBuf, name: String },
    /// (internal) one health check run, started by the monitor.
    #[command(name = "__healthcheck", hide = true)]
    Healthcheck { id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that may start or join a container re-execute from a copy of
    // this binary that cannot be written, so no container process can reach
    // the host file through /proc/PID/exe (berth_runtime::selfexe).
    if matches!(
        cli.command,
        Command::Container(_)
            | Command::Container2(_)
            | Command::MonitorExited { .. }
            | Command::Healthcheck { .. }
    ) && let Err(e) = berth_runtime::selfexe::reexec_sealed()
    {
        eprintln!("berth: {e}");
        return ExitCode::from(125);
    }
    let root = cli.root.clone();
    let r = match cli.command {
        Command::Container(c) => containers::run(&root, c),
        Command::Container2(c) => containers::run_group(&root, c),
        Command::Volume(c) => volumes::run(&root, c),
        Command::Network(c) => system::network(&root, c),
        Command::System(c) => system::run(&root, c),
        Command::Top(c) => system::top_level(&root, c),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "berth", &mut std::io::stdout());
            Ok(0)
        }
        Command::NetDns {
            db,
            network,
            run_dir,
            upstreams,
        } => {
            // Started from a foreground `run`, which blocks the signals it
            // forwards: the server must still stop on SIGTERM.
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&nix::sys::signal::SigSet::empty()),
                None,
            );
            berth_net::dns::parse_upstreams(&upstreams)
                .and_then(|up| berth_net::dns::serve(&db, &network, &run_dir, up))
                .map(|never| match never {})
                .map_err(anyhow::Error::from)
        }
        Command::MonitorExited { id, code } => containers::monitor_exited(&root, &id, code),
        Command::Healthcheck { id } => containers::healthcheck(&root, &id),
        Command::Image(c) => images::run(c, &images::Paths::for_root(&root)).map(|code| code as u8),
        Command::ImportRootfs { tar, name } => containers::import_rootfs(&root, &tar, &name),
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e
                .downcast_ref::<berth_engine::Error>()
                .map_or(125, |e| e.exit_code());
            eprintln!("berth: {e:#}");
            ExitCode::from(code)
        }
    }
}
