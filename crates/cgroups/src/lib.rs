//! berth-cgroups: the resource-control layer of berth (see `docs/cgroups.md`
//! and `shared/DESIGN.md`).
//!
//! One [`Manager`] drives either a cgroup v1 hierarchy (one directory per
//! controller) or the cgroup v2 unified hierarchy, chosen by what the host
//! mounts ([`Hierarchy::detect`]). Resources come in as the OCI runtime spec's
//! `linux.resources` ([`oci_spec::runtime::LinuxResources`]); every request is
//! validated and turned into a list of file writes by pure functions
//! (`plan`), and only then applied.

mod cgpath;
pub mod convert;
pub mod devices;
mod ebpf;
mod error;
mod fsutil;
mod hierarchy;
mod manager;
#[cfg(test)]
mod manager_tests;
mod oom;
mod plan;
pub mod stats;
pub mod update;

pub use devices::default_devices;
pub use error::Error;
pub use hierarchy::{CgroupVersion, DEFAULT_ROOT, Hierarchy};
pub use manager::Manager;
pub use oom::OomWatcher;
pub use stats::{Event, Stats};
pub use update::{UpdateFlags, parse_bytes, parse_resources_json};

pub use convert::{blkio_weight_to_io_weight, shares_to_weight};
