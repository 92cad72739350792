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
