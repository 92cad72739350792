//! berth-engine: containers, volumes, the state database, the
//! per-container monitor, logs, exec and stats; it ties the runtime, image
//! and network layers together (see ../../../shared/DESIGN.md and docs/cli.md).
//!
//! # Process model
//!
//! A foreground `berth run` is the parent of the container's init and runs
//! the [`io::Loop`] itself. A detached container gets a monitor: the CLI
//! double-forks; the grandchild mounts the rootfs, creates and starts the
//! container (so the init is its child) and then execs the small
//! `berth-monitor` binary, which keeps the pid and the child. The monitor
//! copies output to the json-file log and to attached clients, and when the
//! init exits writes `<run>/containers/<id>/exit` and execs
//! `berth __monitor-exited ID CODE`, which records the exit in the database,
//! cleans up, and applies the restart policy (restarting in the same
//! process, which execs `berth-monitor` again).

pub mod acl;
pub mod build;
pub mod db;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod idmap;
pub mod init;
pub mod io;
pub mod logs;
pub mod model;
pub mod paths;
pub mod procs;
pub mod runtimes;
pub mod spec;
pub mod stats;
pub mod time;
pub mod userns;

pub use engine::Engine;
pub use error::{Error, Result};
pub use model::{Container, ContainerConfig, Status};
pub use paths::Paths;
