//! The few kernel knobs berth turns (see
//! Documentation/networking/ip-sysctl.rst in the kernel tree).

use std::fs;

use crate::error::{NetError, Result};

fn write(path: &str, value: &str) -> Result<()> {
    if fs::read_to_string(path)
        .map(|v| v.trim() == value)
        .unwrap_or(false)
    {
        return Ok(());
    }
    fs::write(path, value).map_err(|source| NetError::Io {
        what: format!("write {value} to {path}"),
        source,
    })
}

/// Global IPv4 forwarding. Writing `ip_forward` resets every interface's
/// `forwarding` to the same value, so it is written only when it is off.
pub fn enable_ip_forward() -> Result<()> {
    write("/proc/sys/net/ipv4/ip_forward", "1")
}

/// Per-bridge settings: `forwarding` (off for `--internal` networks) and
/// `route_localnet`, which lets packets DNATed from 127.0.0.1 leave
/// through the bridge (otherwise the kernel drops them as martians).
pub fn configure_bridge(bridge: &str, forwarding: bool) -> Result<()> {
    let conf = format!("/proc/sys/net/ipv4/conf/{bridge}");
    write(
        &format!("{conf}/forwarding"),
        if forwarding { "1" } else { "0" },
    )?;
    write(&format!("{conf}/route_localnet"), "1")
}

/// Hairpin mode on a bridge port: with br_netfilter, a packet DNATed back
/// to the container it came from must be sent out of the port it came in.
pub fn set_hairpin(port: &str) -> Result<()> {
    write(&format!("/sys/class/net/{port}/brport/hairpin_mode"), "1")
}

/// What every container's own network namespace gets, as Docker sets it:
/// any user may bind ports below 1024 and open ICMP echo ("ping")
/// sockets. For a container in a user namespace of its own this is what
/// lets its root bind port 80 at all: the engine's namespace is owned by
/// the host's user namespace, where that root has no CAP_NET_BIND_SERVICE.
/// (ip-sysctl.rst: `ip_unprivileged_port_start`, `ping_group_range`.)
pub const CONTAINER_NETNS: [(&str, &str); 2] = [
    ("net/ipv4/ip_unprivileged_port_start", "0"),
    ("net/ipv4/ping_group_range", "0 2147483647"),
];

/// Writes [`CONTAINER_NETNS`] for the calling thread's network namespace
/// (/proc/sys/net follows the namespace of the task that opens it).
/// Kernels without a knob (before 4.11 for the port one) are skipped.
pub fn configure_container_netns() -> Result<()> {
    for (key, value) in CONTAINER_NETNS {
        let path = format!("/proc/sys/{key}");
        if std::path::Path::new(&path).exists() {
            write(&path, value)?;
        }
    }
    Ok(())
}
