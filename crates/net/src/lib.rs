//! berth-net: container networking for berth (see the workspace's DESIGN.md
//! and docs/networking.md).
//!
//! The model (CNM-like): a **network** is a Linux bridge with a subnet; a
//! container's **sandbox** is a network namespace bind-mounted under the
//! run dir; an **endpoint** is a veth pair joining a sandbox to a network,
//! with an address handed out by **IPAM** (persisted in the engine's SQLite
//! database). Published ports, masquerade and isolation are nftables rules
//! in a table of berth's own; names resolve through a small per-network
//! DNS server.

pub mod conntrack;
pub mod dns;
pub mod error;
pub mod files;
pub mod firewall;
pub mod ipam;
pub mod manager;
pub mod mode;
pub mod netlink;
pub mod ports;
pub mod sandbox;
pub mod state;
pub mod sysctl;

pub use dns::Launcher;
pub use error::{NetError, Result};
pub use ipam::Subnet;
pub use manager::{
    AttachOptions, Config, ContainerFiles, Endpoint, NetworkInfo, NetworkManager, NetworkSpec,
    ReconcileReport,
};
pub use mode::NetworkMode;
pub use ports::{PortMapping, PortSpec, Proto};
pub use state::{EndpointRecord, NetworkRecord};
