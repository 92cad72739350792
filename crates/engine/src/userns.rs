//! `--userns`, `--uidmap`, `--gidmap`: a container in a user namespace of
//! its own, whose root is an unprivileged id on the host
//! (user_namespaces(7)). The rootfs is mounted idmapped
//! ([`berth_image::snapshot::idmap`]), so images are never chowned.
//!
//! `--userns=auto` gives each container a block of ids of its own, taken
//! from the subordinate ranges of the user `berth` in /etc/subuid and
//! /etc/subgid (subuid(5)), like Podman's `--userns=auto` does with the user
//! `containers`. Blocks are handed out inside the transaction that records
//! the container, so two containers never share one.

use crate::idmap::{IdMap, IdRange};
use serde::{Deserialize, Serialize};

/// The user that owns berth's subordinate id ranges.
pub const SUBID_USER: &str = "berth";

/// The default size of an automatic block: the 16-bit id space most images
/// expect.
pub const DEFAULT_AUTO_SIZE: u32 = 65536;

/// The user namespace a container gets.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Userns {
    /// The host's: container root is host root.
    #[default]
    Host,
    /// A block of `size` ids picked when the container is created (the
    /// record then holds `Private`).
    Auto { size: u32 },
    /// Its own namespace with these maps.
    Private(IdMap),
}

impl Userns {
    /// The maps of a private namespace.
    pub fn map(&self) -> Option<&IdMap> {
        match self {
            Userns::Private(m) => Some(m),
            _ => None,
        }
    }

    /// Docker's `HostConfig.UsernsMode`.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Userns::Host => "",
            Userns::Auto { .. } => "auto",
            Userns::Private(_) => "private",
        }
    }
}

/// Builds the request from the command line's `--userns`, `--uidmap` and
/// `--gidmap` (Podman's syntax). Maps alone imply a private namespace; a
/// uid map alone is used for gids too.
pub fn parse(userns: Option<&str>, uidmap: &[String], gidmap: &[String]) -> Result<Userns, String> {
    let parse_all = |v: &[String]| {
        v.iter()
            .map(|s| IdRange::parse(s))
            .collect::<Result<Vec<_>, _>>()
    };
    let uids = parse_all(uidmap)?;
    let gids = parse_all(gidmap)?;
    let explicit = !uids.is_empty() || !gids.is_empty();
    let mode = userns.unwrap_or(if explicit { "private" } else { "host" });
    let (name, opts) = mode.split_once(':').unwrap_or((mode, ""));
    match name {
        "host" | "" if !explicit && opts.is_empty() => Ok(Userns::Host),
        "auto" if !explicit => {
            let mut size = DEFAULT_AUTO_SIZE;
            for opt in opts.split(',').filter(|o| !o.is_empty()) {
                match opt.split_once('=') {
                    Some(("size", n)) => {
                        size = n
                            .parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| format!("--userns=auto: invalid size {n:?}"))?;
                    }
                    _ => {
                        return Err(format!(
                            "--userns=auto: unknown option {opt:?} (known: size=N)"
                        ));
                    }
                }
            }
            Ok(Userns::Auto { size })
        }
        "private" if explicit && opts.is_empty() => {
            let gids = if gids.is_empty() { uids.clone() } else { gids };
            let uids = if uids.is_empty() { gids.clone() } else { uids };
            let map = IdMap { uids, gids };
            map.validate()?;
            Ok(Userns::Private(map))
        }
        "host" | "auto" => Err(format!(
            "--userns={mode} cannot be combined with --uidmap/--gidmap"
        )),
        "private" => Err("--userns=private needs --uidmap (and optionally --gidmap)".into()),
        _ => Err(format!(
            "--userns: unknown mode {mode:?} (host, auto[:size=N], or --uidmap/--gidmap)"
        )),
    }
}

/// The ranges `/etc/subuid`-format `text` gives to `user` (by name or by
/// numeric uid), as (first host id, count).
pub fn subid_ranges(text: &str, user: &str, uid: Option<u32>) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            let mine = owner == user || uid.is_some_and(|u| owner == u.to_string());
            let (start, count) = (start.parse().ok()?, count.parse().ok()?);
            (mine && count > 0).then_some((start, count))
        })
        .collect()
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// The lowest host id `s` such that `[s, s+size)` lies inside one `pool`
/// range and overlaps none of `used` (each as start, count).
pub fn allocate(pool: &[(u32, u32)], used: &[(u32, u32)], size: u32) -> Option<u32> {
    let span = |(s, n): (u32, u32)| (u64::from(s), u64::from(s) + u64::from(n));
    let mut candidates: Vec<u64> = pool.iter().map(|r| span(*r).0).collect();
    candidates.extend(used.iter().map(|r| span(*r).1));
    candidates.sort_unstable();
    candidates.into_iter().find_map(|start| {
        let want = (start, start + u64::from(size));
        let inside = pool.iter().any(|r| {
            let (p0, p1) = span(*r);
            p0 <= want.0 && want.1 <= p1
        });
        let free = !used.iter().any(|r| overlaps(want, span(*r)));
        (inside && free)
            .then(|| u32::try_from(start).ok())
            .flatten()
    })
}

/// The host ranges (start, count) a map occupies.
fn host_ranges(ranges: &[IdRange]) -> Vec<(u32, u32)> {
    ranges.iter().map(|r| (r.host, r.size)).collect()
}

/// Picks a block of `size` uids and gids for a new container, given the
/// maps of the containers that exist and the contents of /etc/subuid and
/// /etc/subgid.
pub fn auto_map(
    size: u32,
    existing: &[&IdMap],
    subuid: &str,
    subgid: &str,
) -> Result<IdMap, String> {
    let uid = nix::unistd::User::from_name(SUBID_USER)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw());
    let pick = |what: &str, text: &str, used: Vec<(u32, u32)>| {
        let pool = subid_ranges(text, SUBID_USER, uid);
        if pool.is_empty() {
            return Err(format!(
                "--userns=auto: /etc/sub{what} gives no ids to the user {SUBID_USER:?}; add a line such as \"{SUBID_USER}:1000000000:1000000000\" to /etc/subuid and /etc/subgid"
            ));
        }
        allocate(&pool, &used, size).ok_or_else(|| {
            format!(
                "--userns=auto: no free block of {size} {what}s left in {SUBID_USER:?}'s ranges of /etc/sub{what} (remove containers or add ranges)"
            )
        })
    };
    let used_uids = existing.iter().flat_map(|m| host_ranges(&m.uids)).collect();
    let used_gids = existing.iter().flat_map(|m| host_ranges(&m.gids)).collect();
    let u = pick("uid", subuid, used_uids)?;
    let g = pick("gid", subgid, used_gids)?;
    let block = |host| {
        vec![IdRange {
            container: 0,
            host,
            size,
        }]
    };
    Ok(IdMap {
        uids: block(u),
        gids: block(g),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn requests_parse() {
        assert_eq!(parse(None, &[], &[]), Ok(Userns::Host));
        assert_eq!(parse(Some("host"), &[], &[]), Ok(Userns::Host));
        assert_eq!(
            parse(Some("auto"), &[], &[]),
            Ok(Userns::Auto { size: 65536 })
        );
        assert_eq!(
            parse(Some("auto:size=1000"), &[], &[]),
            Ok(Userns::Auto { size: 1000 })
        );
        let Ok(Userns::Private(m)) = parse(None, &s(&["0:100000:65536"]), &[]) else {
            panic!()
        };
        assert_eq!(m.uids, m.gids, "a uid map alone serves for gids");
        let Ok(Userns::Private(m)) = parse(None, &s(&["0:100000:10"]), &s(&["0:200000:10"])) else {
            panic!()
        };
        assert_eq!(m.gids[0].host, 200000);
        for (mode, u) in [
            (Some("auto"), s(&["0:1:1"])),
            (Some("auto:size=0"), vec![]),
            (Some("auto:bogus=1"), vec![]),
            (Some("host"), s(&["0:1:1"])),
            (Some("private"), vec![]),
            (Some("keep-id"), vec![]),
            (None, s(&["0:1"])),
            (None, s(&["0:100:10", "5:200:10"])),
        ] {
            assert!(parse(mode, &u, &[]).is_err(), "{mode:?} {u:?}");
        }
    }

    #[test]
    fn subid_files_parse() {
        let text = "alice:100000:65536\nberth:1000000:200000\n# junk\n1234:5:6\nberth:x:1\n";
        assert_eq!(subid_ranges(text, "berth", None), vec![(1000000, 200000)]);
        assert_eq!(subid_ranges(text, "nobody", Some(1234)), vec![(5, 6)]);
    }

    #[test]
    fn allocation_finds_the_first_free_block() {
        let pool = [(1000, 300)];
        assert_eq!(allocate(&pool, &[], 100), Some(1000));
        assert_eq!(allocate(&pool, &[(1000, 100)], 100), Some(1100));
        assert_eq!(allocate(&pool, &[(1100, 100)], 100), Some(1000));
        assert_eq!(
            allocate(&pool, &[(1000, 100), (1100, 100)], 100),
            Some(1200)
        );
        assert_eq!(allocate(&pool, &[(1050, 10)], 100), Some(1060));
        assert_eq!(
            allocate(&pool, &[(1000, 100), (1100, 100), (1200, 100)], 100),
            None
        );
        assert_eq!(allocate(&pool, &[], 301), None);
        // A second pool range is used when the first is full.
        assert_eq!(allocate(&[(0, 10), (50, 10)], &[(0, 10)], 10), Some(50));
    }

    #[test]
    fn auto_maps_avoid_existing_containers() {
        let sub = "berth:100000:200000\n";
        let first = auto_map(65536, &[], sub, sub).unwrap();
        assert_eq!(first.uids[0].host, 100000);
        let second = auto_map(65536, &[&first], sub, sub).unwrap();
        assert_eq!(second.uids[0].host, 165536);
        assert_eq!(second.gids[0].host, 165536);
        let third = auto_map(65536, &[&first, &second], sub, sub).unwrap();
        let err = auto_map(65536, &[&first, &second, &third], sub, sub).unwrap_err();
        assert!(err.contains("no free block"), "{err}");
        let err = auto_map(10, &[], "", sub).unwrap_err();
        assert!(err.contains("/etc/subuid"), "{err}");
    }
}
