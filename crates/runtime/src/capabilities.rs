//! Capability sets (capabilities(7)). The bounding set is reduced while we
//! are still privileged; the others are set after the uid switch.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

/// Converts OCI capability names; names this kernel does not know are
/// skipped (as runc does), anything else unknown is an error at parse time.
pub fn to_caps(set: &Capabilities) -> HashSet<Capability> {
    let supported = caps::runtime::thread_all_supported();
    set.iter()
        .filter_map(|c| {
            let name = c.to_string();
            let name = if name.starts_with("CAP_") {
                name
            } else {
                format!("CAP_{name}")
            };
            Capability::from_str(&name).ok()
        })
        .filter(|c| supported.contains(c))
        .collect()
}

fn err(what: &str) -> impl FnOnce(caps::errors::CapsError) -> Error + '_ {
    move |e| Error::Other(format!("capabilities: {what}: {e}"))
}

/// Drops from the bounding set everything not listed (needs CAP_SETPCAP).
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let keep = c.bounding().as_ref().map(to_caps).unwrap_or_default();
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(err("dropping from the bounding set"))?;
        }
    }
    Ok(())
}

/// Sets effective, permitted, inheritable exactly, then raises ambient.
pub fn apply(c: &LinuxCapabilities) -> Result<()> {
    let get = |s: &Option<Capabilities>| s.as_ref().map(to_caps).unwrap_or_default();
    let permitted = get(c.permitted());
    // The effective set must be a subset of permitted.
    let effective: HashSet<_> = get(c.effective())
        .intersection(&permitted)
        .copied()
        .collect();
    // Order matters (capabilities(7), "Programmatically adjusting
    // capability sets"): inheritable while CAP_SETPCAP is still effective,
    // then effective (must stay within permitted), then permitted.
    caps::set(None, CapSet::Inheritable, &get(c.inheritable()))
        .map_err(err("setting inheritable"))?;
    caps::set(None, CapSet::Effective, &effective).map_err(err("setting effective"))?;
    caps::set(None, CapSet::Permitted, &permitted).map_err(err("setting permitted"))?;
    caps::clear(None, CapSet::Ambient).map_err(err("clearing ambient"))?;
    for cap in get(c.ambient()) {
        // Ambient needs the cap in both permitted and inheritable
        // (capabilities(7)); refuse instead of silently skipping.
        caps::raise(None, CapSet::Ambient, cap).map_err(err(&format!("raising ambient {cap}")))?;
    }
    Ok(())
}
