//! `linux.cgroupsPath` semantics (runc's cgroupfs driver):
//!
//! - absolute `/a/b`: relative to the hierarchy root (each v1 controller's
//!   mount point, or the v2 root);
//! - relative `a/b`: relative to the caller's own cgroup — on v1 per
//!   controller, on v2 relative to the *parent* of the caller's cgroup,
//!   because v2's "no internal processes" rule forbids enabling controllers
//!   for children of a cgroup that holds processes (the caller's does);
//! - empty: `/berth/<container id>`.
//!
//! Components `.` and `..`, control characters and systemd's
//! `slice:prefix:name` form are rejected.

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CgPath {
    /// Normalised, starts with '/'.
    Absolute(String),
    /// Normalised, no leading '/'.
    Relative(String),
}

fn bad(path: &str, reason: impl Into<String>) -> Error {
    Error::BadPath {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

pub(crate) fn parse(cgroups_path: &str, container_id: &str) -> Result<CgPath, Error> {
    if container_id.is_empty()
        || container_id.contains('/')
        || container_id.chars().any(char::is_control)
        || container_id == "."
        || container_id == ".."
    {
        return Err(bad(
            cgroups_path,
            format!("container id {container_id:?} cannot name a cgroup"),
        ));
    }
    if cgroups_path.is_empty() {
        return Ok(CgPath::Absolute(format!("/berth/{container_id}")));
    }
    if cgroups_path.contains(':') {
        return Err(bad(
            cgroups_path,
            "systemd-style \"slice:prefix:name\" paths need the systemd cgroup driver, which berth does not implement; use a path like /berth/<id>",
        ));
    }
    if cgroups_path.chars().any(char::is_control) {
        return Err(bad(cgroups_path, "contains a control character"));
    }
    let mut parts = Vec::new();
    for comp in cgroups_path.split('/') {
        match comp {
            "" => {}
            "." | ".." => {
                return Err(bad(
                    cgroups_path,
                    format!("component {comp:?} is not allowed"),
                ));
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(bad(
            cgroups_path,
            "names the hierarchy root; a container needs its own cgroup",
        ));
    }
    let joined = parts.join("/");
    if cgroups_path.starts_with('/') {
        Ok(CgPath::Absolute(format!("/{joined}")))
    } else {
        Ok(CgPath::Relative(joined))
    }
}

/// Joins a cgroup path (starting with '/') and a relative one.
pub(crate) fn join(base: &str, rel: &str) -> String {
    let base = base.trim_end_matches('/');
    format!("{base}/{rel}")
}

/// The parent of a cgroup path ("/" for top-level ones).
pub(crate) fn parent(p: &str) -> &str {
    match p.trim_end_matches('/').rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_berth_id() {
        assert_eq!(
            parse("", "c1").unwrap(),
            CgPath::Absolute("/berth/c1".into())
        );
    }

    #[test]
    fn absolute_and_relative_are_normalised() {
        assert_eq!(
            parse("/a//b/", "c").unwrap(),
            CgPath::Absolute("/a/b".into())
        );
        assert_eq!(parse("x/y", "c").unwrap(), CgPath::Relative("x/y".into()));
    }

    #[test]
    fn rejects_escapes_and_bad_input() {
        for p in ["/a/../b", "..", "./a", "/", "a\nb", "system.slice:berth:c1"] {
            assert!(parse(p, "c").is_err(), "{p:?} accepted");
        }
        for id in ["", "a/b", "..", "x\0"] {
            let err = parse("", id).unwrap_err();
            assert!(err.to_string().contains("container id"), "{err}");
        }
        let err = parse("/a/../b", "c").unwrap_err().to_string();
        assert!(err.contains("\"..\""), "{err}");
    }

    #[test]
    fn join_and_parent() {
        assert_eq!(join("/", "a/b"), "/a/b");
        assert_eq!(join("/u/s", "a"), "/u/s/a");
        assert_eq!(parent("/u/s"), "/u");
        assert_eq!(parent("/u"), "/");
        assert_eq!(parent("/"), "/");
    }
}
