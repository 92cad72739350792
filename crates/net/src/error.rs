//! One error type for the crate: every variant names what was wrong.

use std::net::Ipv4Addr;

use crate::ipam::Subnet;
use crate::ports::Proto;

/// Errors from berth-net.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid port mapping {spec:?}: {reason}")]
    InvalidPort { spec: String, reason: String },
    #[error("invalid subnet {spec:?}: {reason}")]
    InvalidSubnet { spec: String, reason: String },
    #[error("invalid address {spec:?}: {reason}")]
    InvalidAddress { spec: String, reason: String },
    #[error("invalid network name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error(
        "invalid network mode {0:?}: expected bridge, none, host, container:ID or a network name"
    )]
    InvalidMode(String),
    #[error("gateway {gateway} is outside subnet {subnet}")]
    GatewayOutsideSubnet { gateway: Ipv4Addr, subnet: Subnet },
    #[error("ip range {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet { range: Subnet, subnet: Subnet },
    #[error("subnet {subnet} overlaps {what}")]
    SubnetOverlap { subnet: Subnet, what: String },
    #[error("no free subnet of size /{prefix} left in pool {pool}")]
    SubnetPoolExhausted { pool: Subnet, prefix: u8 },
    #[error("network {0:?} not found")]
    NetworkNotFound(String),
    #[error("network {0:?} already exists")]
    NetworkExists(String),
    #[error("network {name:?} is in use by container(s) {containers:?}")]
    NetworkInUse {
        name: String,
        containers: Vec<String>,
    },
    #[error("network {0:?} is a predefined network and cannot be removed")]
    NetworkPredefined(String),
    #[error("container {container} is already connected to network {network:?}")]
    AlreadyConnected { container: String, network: String },
    #[error("container {container} is not connected to network {network:?}")]
    NotConnected { container: String, network: String },
    #[error("address {ip} on network {network:?}: {reason}")]
    AddressUnavailable {
        ip: Ipv4Addr,
        network: String,
        reason: String,
    },
    #[error("no free address left in network {network:?} ({range})")]
    PoolExhausted { network: String, range: Subnet },
    #[error("host port {host_ip}:{port}/{proto} is already {reason}")]
    HostPortInUse {
        host_ip: Ipv4Addr,
        port: u16,
        proto: Proto,
        reason: String,
    },
    #[error("no free host port found for {proto} on {host_ip}")]
    NoFreeHostPort { host_ip: Ipv4Addr, proto: Proto },
    #[error("database: {context}: {source}")]
    Db {
        context: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("netlink: {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nftables: {context}: {stderr}")]
    Nft { context: String, stderr: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dns: {0}")]
    Dns(String),
    #[error("{} error(s) during teardown: {}", .0.len(), join_errors(.0))]
    Teardown(Vec<NetError>),
    #[error("{error}; rollback also failed: {}", join_errors(.rollback))]
    RolledBack {
        #[source]
        error: Box<NetError>,
        rollback: Vec<NetError>,
    },
}

fn join_errors(errors: &[NetError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result alias for the crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// Maps an io error into `NetError::Io` naming `what` failed.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Io { what, source }
}

/// Maps a SQLite error into `NetError::Db` naming the operation.
pub(crate) fn db_err(context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> NetError {
    let context = context.into();
    move |source| NetError::Db { context, source }
}
