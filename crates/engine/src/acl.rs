//! Search permission for one more user on a directory, through a POSIX
//! ACL (acl(5)): how a user-namespaced container's root, an unprivileged
//! host uid, reaches its rootfs through berth's owner-only directories
//! without opening them to every local user.
//!
//! The ACL travels as the `system.posix_acl_access` extended attribute, in
//! the kernel's format (include/uapi/linux/posix_acl_xattr.h): a
//! little-endian `u32` version (2), then `(u16 tag, u16 perm, u32 id)`
//! entries sorted by tag and id.

use std::path::Path;

const VERSION: u32 = 2;
const XATTR: &str = "system.posix_acl_access";

const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const UNDEFINED_ID: u32 = u32::MAX;
const EXECUTE: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub tag: u16,
    pub id: u32,
    pub perm: u16,
}

/// The minimal ACL a mode stands for (owner, group, other).
pub fn from_mode(mode: u32) -> Vec<Entry> {
    let e = |tag, shift: u32| Entry {
        tag,
        id: UNDEFINED_ID,
        perm: ((mode >> shift) & 7) as u16,
    };
    vec![e(USER_OBJ, 6), e(GROUP_OBJ, 3), e(OTHER, 0)]
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let (head, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or("ACL shorter than its header")?;
    if u32::from_le_bytes(*head) != VERSION {
        return Err(format!("ACL version {}", u32::from_le_bytes(*head)));
    }
    if rest.len() % 8 != 0 {
        return Err(format!("ACL of {} bytes", bytes.len()));
    }
    Ok(rest
        .chunks_exact(8)
        .map(|c| Entry {
            tag: u16::from_le_bytes([c[0], c[1]]),
            perm: u16::from_le_bytes([c[2], c[3]]),
            id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = VERSION.to_le_bytes().to_vec();
    for e in entries {
        out.extend(e.tag.to_le_bytes());
        out.extend(e.perm.to_le_bytes());
        out.extend(e.id.to_le_bytes());
    }
    out
}

/// `entries` with search (x) for `uid` added, the mask widened so that it
/// takes effect, and everything in the order the kernel wants. The owning
/// group's effective rights stay what they were (its entry is untouched;
/// the mask only gains x, and a fresh mask is the union of the group
/// class's entries).
pub fn with_user_search(entries: &[Entry], uid: u32) -> Vec<Entry> {
    let mut out: Vec<Entry> = entries.to_vec();
    match out.iter_mut().find(|e| e.tag == USER && e.id == uid) {
        Some(e) => e.perm |= EXECUTE,
        None => out.push(Entry {
            tag: USER,
            id: uid,
            perm: EXECUTE,
        }),
    }
    match out.iter_mut().find(|e| e.tag == MASK) {
        Some(m) => m.perm |= EXECUTE,
        None => {
            let union = out
                .iter()
                .filter(|e| matches!(e.tag, USER | GROUP_OBJ | GROUP))
                .fold(0, |p, e| p | e.perm);
            out.push(Entry {
                tag: MASK,
                id: UNDEFINED_ID,
                perm: union,
            });
        }
    }
    out.sort();
    out
}

/// Whether `uid` may already search a directory with this ACL through a
/// named entry (the owner and "other" cases are the mode's business).
fn grants(entries: &[Entry], uid: u32) -> bool {
    let named = entries
        .iter()
        .any(|e| e.tag == USER && e.id == uid && e.perm & EXECUTE != 0);
    let mask = entries
        .iter()
        .find(|e| e.tag == MASK)
        .is_none_or(|m| m.perm & EXECUTE != 0);
    named && mask
}

/// Lets `uid` search the directory `dir` (and nothing more), keeping the
/// ACL it has.
pub fn grant_search(dir: &Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut buf = vec![0u8; 4096];
    let current = match rustix::fs::getxattr(dir, XATTR, &mut buf) {
        Ok(n) => decode(&buf[..n]).map_err(std::io::Error::other)?,
        Err(rustix::io::Errno::NODATA) => from_mode(std::fs::metadata(dir)?.mode()),
        Err(e) => return Err(e.into()),
    };
    if grants(&current, uid) {
        return Ok(());
    }
    let new = encode(&with_user_search(&current, uid));
    rustix::fs::setxattr(dir, XATTR, &new, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mode_becomes_three_entries_and_round_trips() {
        let acl = from_mode(0o750);
        assert_eq!(
            acl.iter().map(|e| (e.tag, e.perm)).collect::<Vec<_>>(),
            [(USER_OBJ, 7), (GROUP_OBJ, 5), (OTHER, 0)]
        );
        assert_eq!(decode(&encode(&acl)).unwrap(), acl);
        assert!(decode(&[1, 0, 0, 0]).is_err());
        assert!(decode(&[2, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn search_for_one_user_adds_a_named_entry_and_a_mask() {
        let acl = with_user_search(&from_mode(0o700), 100000);
        assert_eq!(
            acl,
            vec![
                Entry {
                    tag: USER_OBJ,
                    id: UNDEFINED_ID,
                    perm: 7
                },
                Entry {
                    tag: USER,
                    id: 100000,
                    perm: 1
                },
                Entry {
                    tag: GROUP_OBJ,
                    id: UNDEFINED_ID,
                    perm: 0
                },
                Entry {
                    tag: MASK,
                    id: UNDEFINED_ID,
                    perm: 1
                },
                Entry {
                    tag: OTHER,
                    id: UNDEFINED_ID,
                    perm: 0
                },
            ]
        );
        assert!(grants(&acl, 100000));
        assert!(!grants(&acl, 200000));
        // A second user keeps the first; a repeat changes nothing.
        let two = with_user_search(&acl, 200000);
        assert!(grants(&two, 100000) && grants(&two, 200000));
        assert_eq!(with_user_search(&two, 200000), two);
        // An existing mask without x gains it; the group's entry stays.
        let masked = vec![
            Entry {
                tag: USER_OBJ,
                id: UNDEFINED_ID,
                perm: 7,
            },
            Entry {
                tag: GROUP_OBJ,
                id: UNDEFINED_ID,
                perm: 4,
            },
            Entry {
                tag: MASK,
                id: UNDEFINED_ID,
                perm: 4,
            },
            Entry {
                tag: OTHER,
                id: UNDEFINED_ID,
                perm: 0,
            },
        ];
        let out = with_user_search(&masked, 5);
        assert!(out.contains(&Entry {
            tag: MASK,
            id: UNDEFINED_ID,
            perm: 5
        }));
        assert!(out.contains(&Entry {
            tag: GROUP_OBJ,
            id: UNDEFINED_ID,
            perm: 4
        }));
    }

    #[test]
    fn the_kernel_takes_it() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("private");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.join("f"), "x").unwrap();
        grant_search(&dir, 100000).unwrap();
        grant_search(&dir, 100000).unwrap();
        let reach = |uid: &str| {
            std::process::Command::new("setpriv")
                .args([&format!("--reuid={uid}"), "--regid=65534", "--clear-groups"])
                .arg("stat")
                .arg(dir.join("f"))
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(reach("100000"), "the granted uid searches");
        assert!(!reach("100001"), "others still cannot");
        let listing = std::process::Command::new("setpriv")
            .args(["--reuid=100000", "--regid=65534", "--clear-groups", "ls"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(!listing.status.success(), "search, not read");
    }
}
