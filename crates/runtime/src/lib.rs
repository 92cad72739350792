//! berth's OCI runtime as a library: an OCI bundle (config.json + rootfs)
//! becomes an isolated process. The `berth-runtime` binary is a thin
//! runc-compatible skin over [`container::Runtime`]. See docs/runtime.md.

pub mod capabilities;
pub mod cgroup;
pub mod channel;
pub mod config;
pub mod container;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod id;
pub mod init;
pub mod mountinfo;
pub mod mounts;
pub mod namespaces;
pub mod paths;
pub mod process;
pub mod procfs;
pub mod profiles;
pub mod rootfs;
pub mod seccomp;
pub mod selfexe;
pub mod signal;
pub mod state;
pub mod sys;
pub mod tty;

pub use container::{CreateOptions, Runtime};
pub use error::{Error, Result};
