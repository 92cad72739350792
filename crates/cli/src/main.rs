//! `berth` (image commands only in this branch; the integrator's main.rs
//! adds the container commands and maps its paths onto [`images::Paths`]).

mod images;

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "berth", version, about = "berth container engine")]
struct Cli {
    /// State directory.
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Image(images::Commands),
}

fn main() {
    let cli = Cli::parse();
    let paths = images::Paths::for_root(&cli.root);
    let code = match cli.command {
        Command::Image(cmd) => match images::run(cmd, &paths) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("Error: {e:#}");
                125
            }
        },
    };
    std::process::exit(code);
}
