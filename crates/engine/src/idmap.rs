//! Id maps: which host ids a user-namespaced container's ids are
//! (user_namespaces(7), "User and group ID mappings"), and the throw-away
//! user namespace that carries them to an idmapped mount.

use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

/// `size` consecutive ids starting at `container` inside the container are
/// the ids starting at `host` outside (user_namespaces(7), "User and group
/// ID mappings").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

/// A container's uid and gid maps.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdMap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

/// The kernel takes at most this many lines per map (user_namespaces(7)).
const MAX_RANGES: usize = 340;

impl IdRange {
    /// Parses `container:host:size` (Podman's `--uidmap` form).
    pub fn parse(s: &str) -> std::result::Result<IdRange, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let [c, h, n] = parts.as_slice() else {
            return Err(format!(
                "id mapping {s:?}: expected CONTAINER_ID:HOST_ID:SIZE"
            ));
        };
        let num = |what: &str, v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("id mapping {s:?}: {what} {v:?} is not a number"))
        };
        let r = IdRange {
            container: num("container id", c)?,
            host: num("host id", h)?,
            size: num("size", n)?,
        };
        if r.size == 0 {
            return Err(format!("id mapping {s:?}: the size must not be 0"));
        }
        Ok(r)
    }

    fn end_container(&self) -> u64 {
        u64::from(self.container) + u64::from(self.size)
    }

    fn end_host(&self) -> u64 {
        u64::from(self.host) + u64::from(self.size)
    }
}

/// Checks one map the way the kernel will: not empty, not too many lines,
/// no range past 2^32-1, no two ranges overlapping on either side.
fn validate_ranges(what: &str, ranges: &[IdRange]) -> std::result::Result<(), String> {
    if ranges.is_empty() {
        return Err(format!("the {what} map is empty"));
    }
    if ranges.len() > MAX_RANGES {
        return Err(format!(
            "the {what} map has {} ranges; the kernel takes at most {MAX_RANGES}",
            ranges.len()
        ));
    }
    for r in ranges {
        // 4294967295 is (uid_t)-1, never a valid id.
        if r.end_container() > u64::from(u32::MAX) || r.end_host() > u64::from(u32::MAX) {
            return Err(format!(
                "the {what} range {}:{}:{} goes past the largest id",
                r.container, r.host, r.size
            ));
        }
    }
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            let overlap = |a0: u64, a1: u64, b0: u64, b1: u64| a0 < b1 && b0 < a1;
            if overlap(
                a.container.into(),
                a.end_container(),
                b.container.into(),
                b.end_container(),
            ) || overlap(a.host.into(), a.end_host(), b.host.into(), b.end_host())
            {
                return Err(format!(
                    "the {what} ranges {}:{}:{} and {}:{}:{} overlap",
                    a.container, a.host, a.size, b.container, b.host, b.size
                ));
            }
        }
    }
    Ok(())
}

/// The host id that container id `id` maps to.
fn to_host(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.container && u64::from(id) < r.end_container())
        .map(|r| r.host + (id - r.container))
}

/// The container id that host id `id` is, if it is mapped.
fn to_container(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| id >= r.host && u64::from(id) < r.end_host())
        .map(|r| r.container + (id - r.host))
}

impl IdMap {
    pub fn validate(&self) -> std::result::Result<(), String> {
        validate_ranges("uid", &self.uids)?;
        validate_ranges("gid", &self.gids)
    }

    pub fn host_uid(&self, id: u32) -> Option<u32> {
        to_host(&self.uids, id)
    }

    pub fn host_gid(&self, id: u32) -> Option<u32> {
        to_host(&self.gids, id)
    }

    pub fn container_uid(&self, host: u32) -> Option<u32> {
        to_container(&self.uids, host)
    }

    pub fn container_gid(&self, host: u32) -> Option<u32> {
        to_container(&self.gids, host)
    }

    /// The host ids of the container's root (or its first mapped ids when
    /// root is not mapped): what host-side writes into the idmapped rootfs
    /// work as (see [`berth_image::snapshot::with_fs_ids`]).
    pub fn root_ids(&self) -> (u32, u32) {
        let uid = self
            .host_uid(0)
            .unwrap_or_else(|| self.uids.first().map_or(0, |r| r.host));
        let gid = self
            .host_gid(0)
            .unwrap_or_else(|| self.gids.first().map_or(0, |r| r.host));
        (uid, gid)
    }

    /// A user namespace holding these maps, for idmapped mounts.
    pub fn namespace(&self) -> Result<OwnedFd, berth_runtime::error::Error> {
        use berth_runtime::namespaces::id_mapping;
        let oci = |ranges: &[IdRange]| -> Vec<_> {
            ranges
                .iter()
                .map(|r| id_mapping(r.container, r.host, r.size))
                .collect()
        };
        berth_runtime::namespaces::detached_user_namespace(&oci(&self.uids), &oci(&self.gids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(c: u32, h: u32, n: u32) -> IdRange {
        IdRange {
            container: c,
            host: h,
            size: n,
        }
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(IdRange::parse("0:100000:65536"), Ok(r(0, 100000, 65536)));
        for bad in ["0:1", "a:1:2", "0:1:0", "0:1:2:3", "-1:0:1"] {
            assert!(IdRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_validate_like_the_kernel() {
        let ok = IdMap {
            uids: vec![r(0, 100000, 1000), r(1000, 5000, 1)],
            gids: vec![r(0, 100000, 65536)],
        };
        assert_eq!(ok.validate(), Ok(()));
        let host_overlap = IdMap {
            uids: vec![r(0, 100000, 1000), r(1000, 100500, 10)],
            ..ok.clone()
        };
        assert!(host_overlap.validate().unwrap_err().contains("overlap"));
        let container_overlap = IdMap {
            gids: vec![r(0, 1, 10), r(5, 100, 10)],
            ..ok.clone()
        };
        assert!(container_overlap.validate().unwrap_err().contains("gid"));
        let too_far = IdMap {
            uids: vec![r(0, u32::MAX - 10, 11)],
            ..ok.clone()
        };
        assert!(too_far.validate().unwrap_err().contains("largest"));
        let empty = IdMap { uids: vec![], ..ok };
        assert!(empty.validate().unwrap_err().contains("empty"));
    }

    #[test]
    fn ids_translate() {
        let m = IdMap {
            uids: vec![r(0, 100000, 1000), r(1000, 5000, 1)],
            gids: vec![r(1, 200000, 10)],
        };
        assert_eq!(m.host_uid(0), Some(100000));
        assert_eq!(m.host_uid(999), Some(100999));
        assert_eq!(m.host_uid(1000), Some(5000));
        assert_eq!(m.host_uid(1001), None);
        assert_eq!(m.root_ids(), (100000, 200000));
        assert_eq!(m.container_uid(100999), Some(999));
        assert_eq!(m.container_uid(5000), Some(1000));
        assert_eq!(m.container_uid(99999), None);
        assert_eq!(m.container_gid(200009), Some(10));
    }
}
