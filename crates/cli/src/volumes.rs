//! `berth volume create|ls|inspect|rm|prune`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use berth_engine::Engine;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Create a volume.
    #[command(
        after_help = "Examples:\n  berth volume create data\n  berth run --rm -v data:/data busybox ls /data"
    )]
    Create {
        #[arg(short, long)]
        label: Vec<String>,
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list", after_help = "Examples:\n  berth volume ls -q")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show volume details as JSON.
    #[command(after_help = "Examples:\n  berth volume inspect data")]
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes.
    #[command(alias = "remove", after_help = "Examples:\n  berth volume rm data")]
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no container uses.
    #[command(after_help = "Examples:\n  berth volume prune -f")]
    Prune {
        #[arg(short, long)]
        force: bool,
    },
}

pub fn run(root: &Path, c: VolumeCmd) -> Result<u8> {
    let mut e = Engine::open(root)?;
    match c {
        VolumeCmd::Create { label, name } => {
            let labels: BTreeMap<String, String> = label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let v = e.create_volume(name.as_deref(), labels)?;
            println!("{}", v.name);
        }
        VolumeCmd::Ls { quiet } => {
            let vols = e.db.list_volumes()?;
            if quiet {
                for v in vols {
                    println!("{}", v.name);
                }
            } else {
                let mut rows = vec![vec!["DRIVER".to_string(), "VOLUME NAME".into()]];
                rows.extend(vols.into_iter().map(|v| vec!["local".to_string(), v.name]));
                print!("{}", crate::format::table(&rows));
            }
        }
        VolumeCmd::Inspect { names } => {
            let mut out = vec![];
            let mut failed = false;
            for n in names {
                match e.db.get_volume(&n)? {
                    Some(v) => out.push(json!({
                        "CreatedAt": v.created, "Driver": "local", "Labels": v.labels,
                        "Mountpoint": e.paths.volume_data(&v.name), "Name": v.name, "Options": {}, "Scope": "local",
                    })),
                    None => {
                        eprintln!("berth: no such volume: {n}");
                        failed = true;
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(if failed { 1 } else { 0 });
        }
        VolumeCmd::Rm { force, names } => {
            let mut failed = false;
            for n in names {
                match e.remove_volume(&n, force) {
                    Ok(()) => println!("{n}"),
                    Err(err) => {
                        eprintln!("berth: {err}");
                        failed = true;
                    }
                }
            }
            return Ok(if failed { 1 } else { 0 });
        }
        VolumeCmd::Prune { force: _ } => {
            let gone = e.prune_volumes()?;
            for n in &gone {
                println!("{n}");
            }
        }
    }
    Ok(0)
}
