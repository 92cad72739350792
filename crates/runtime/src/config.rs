//! Loading and validating a bundle's `config.json`. All checks happen here,
//! before anything is created, so bad input leaves nothing behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// A validated bundle: the spec plus its resolved root filesystem path.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// Reads `<bundle>/config.json`, parses it and validates it.
pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir = std::fs::canonicalize(bundle).map_err(|source| Error::Read {
        path: bundle.to_path_buf(),
        source,
    })?;
    let path = dir.join("config.json");
    let bytes = std::fs::read(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let spec: Spec = serde_json::from_slice(&bytes).map_err(|e| Error::Config {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let invalid = |message: String| Error::Config {
        path: path.clone(),
        message,
    };
    validate(&spec).map_err(invalid)?;
    let root = spec.root().as_ref().expect("validated");
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs = std::fs::canonicalize(&rootfs)
        .map_err(|e| invalid(format!("root.path {}: {e}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(invalid(format!(
            "root.path {} is not a directory",
            rootfs.display()
        )));
    }
    Ok(Bundle { dir, rootfs, spec })
}

/// Every check that needs only the spec. Returns the first problem found,
/// naming the field.
pub fn validate(spec: &Spec) -> std::result::Result<(), String> {
    check_version(spec.version())?;
    if spec.root().is_none() {
        return Err("root is required".into());
    }
    let process = spec.process().as_ref().ok_or("process is required")?;
    validate_process(process)?;
    let linux = spec.linux().as_ref().ok_or("linux is required on Linux")?;
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let mut seen = HashSet::new();
    for ns in &namespaces {
        if !seen.insert(ns.typ()) {
            return Err(format!(
                "linux.namespaces: {} namespace listed twice",
                ns.typ()
            ));
        }
        if let Some(p) = ns.path()
            && !p.is_absolute()
        {
            return Err(format!(
                "linux.namespaces: path {} of the {} namespace is not absolute",
                p.display(),
                ns.typ()
            ));
        }
    }
    let has_new = |t: LinuxNamespaceType| {
        namespaces
            .iter()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    let has = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_new(LinuxNamespaceType::User) {
        let uid = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        let gid = linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if !uid || !gid {
            return Err(
                "linux.uidMappings and linux.gidMappings are required with a new user namespace"
                    .into(),
            );
        }
    } else if has_maps && !has(LinuxNamespaceType::User) {
        return Err(
            "linux.uidMappings/gidMappings need a user namespace in linux.namespaces".into(),
        );
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has_new(LinuxNamespaceType::Uts)
    {
        return Err("hostname needs a new uts namespace".into());
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty())
        && !has_new(LinuxNamespaceType::Uts)
    {
        return Err("domainname needs a new uts namespace".into());
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
        && !has_new(LinuxNamespaceType::Time)
    {
        return Err("linux.timeOffsets needs a new time namespace".into());
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            check_sysctl(key, &has)?;
        }
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if m.destination().as_os_str().is_empty() {
            return Err("mounts: a mount has an empty destination".into());
        }
        check_mount_maps(m, has_new(LinuxNamespaceType::User))?;
    }
    for d in linux.devices().as_deref().unwrap_or_default() {
        if !d.path().starts_with("/dev/") {
            return Err(format!(
                "linux.devices: {} is not under /dev",
                d.path().display()
            ));
        }
    }
    Ok(())
}

/// Accepts any 1.x version (the spec promises compatibility within a major).
pub fn check_version(version: &str) -> std::result::Result<(), String> {
    let mut parts = version.split(['.', '-', '+']);
    match (parts.next(), parts.next()) {
        (Some("1"), Some(minor)) if minor.parse::<u32>().is_ok() => Ok(()),
        _ if version.is_empty() => Err("ociVersion is required".into()),
        _ => Err(format!(
            "unsupported ociVersion {version:?}: berth-runtime supports 1.x"
        )),
    }
}

fn validate_process(p: &oci_spec::runtime::Process) -> std::result::Result<(), String> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err("process.args must not be empty".into());
    }
    if !p.cwd().is_absolute() {
        return Err(format!("process.cwd {} is not absolute", p.cwd().display()));
    }
    let mut seen = HashSet::new();
    for r in p.rlimits().as_deref().unwrap_or_default() {
        if !seen.insert(format!("{:?}", r.typ())) {
            return Err(format!("process.rlimits: {:?} listed twice", r.typ()));
        }
        if r.soft() > r.hard() {
            return Err(format!(
                "process.rlimits: {:?} soft limit {} is above its hard limit {}",
                r.typ(),
                r.soft(),
                r.hard()
            ));
        }
    }
    if p.scheduler().is_some() {
        return Err("process.scheduler is not supported by berth-runtime".into());
    }
    if p.exec_cpu_affinity().is_some() {
        return Err("process.execCPUAffinity is not supported by berth-runtime".into());
    }
    Ok(())
}

/// A mount's own `uidMappings`/`gidMappings` (runtime-spec 1.1, idmapped
/// mounts): both or neither, on a bind mount with `idmap`/`ridmap`, in a
/// container with a new user namespace (berth idmaps while writing the
/// container's maps).
fn check_mount_maps(m: &oci_spec::runtime::Mount, new_user: bool) -> Result<(), String> {
    let uid = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty());
    let gid = m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty());
    let dest = m.destination().display();
    let opts = crate::mounts::parse_options(m.options().as_deref().unwrap_or_default());
    if let Some(value) = &opts.idmap_value {
        crate::mounts::parse_idmap_value(value).map_err(|e| format!("mount {dest}: {e}"))?;
        if uid || gid {
            return Err(format!(
                "mount {dest}: give the mapping either as uidMappings/gidMappings or in the idmap= option, not both"
            ));
        }
    }
    if !opts.idmap {
        if uid || gid {
            return Err(format!(
                "mount {dest}: uidMappings/gidMappings need the idmap or ridmap option"
            ));
        }
        return Ok(());
    }
    if !uid && !gid && opts.idmap_value.is_none() {
        return Ok(());
    }
    if uid != gid {
        return Err(format!(
            "mount {dest}: uidMappings and gidMappings must be given together"
        ));
    }
    if !new_user {
        return Err(format!(
            "mount {dest}: idmapped mounts need a new user namespace in linux.namespaces"
        ));
    }
    Ok(())
}

/// The namespace a sysctl belongs to must be the container's own, as runc
/// checks: otherwise the write would change the host.
pub fn check_sysctl(
    key: &str,
    has_ns: &dyn Fn(LinuxNamespaceType) -> bool,
) -> std::result::Result<(), String> {
    let ipc_keys = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if key.contains("..") || key.contains('/') && key.split('/').any(|c| c == "..") {
        return Err(format!("linux.sysctl: invalid key {key:?}"));
    }
    let needs = if ipc_keys.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(format!(
            "linux.sysctl: {key} is not namespaced and would change the host"
        ));
    };
    if !has_ns(needs) {
        return Err(format!(
            "linux.sysctl: {key} needs a {needs} namespace of the container's own"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn mount_maps_need_both_idmap_and_a_user_namespace() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let mount = |opts: &[&str], uid: bool, gid: bool| -> oci_spec::runtime::Mount {
            let mut m = serde_json::json!({"destination": "/m", "type": "bind", "source": "/s", "options": opts});
            if uid {
                m["uidMappings"] = map.clone();
            }
            if gid {
                m["gidMappings"] = map.clone();
            }
            serde_json::from_value(m).unwrap()
        };
        assert_eq!(
            check_mount_maps(&mount(&["bind"], false, false), false),
            Ok(())
        );
        assert_eq!(
            check_mount_maps(&mount(&["idmap"], true, true), true),
            Ok(())
        );
        assert!(
            check_mount_maps(&mount(&["idmap"], true, false), true)
                .unwrap_err()
                .contains("together")
        );
        assert!(
            check_mount_maps(&mount(&["bind"], true, true), true)
                .unwrap_err()
                .contains("idmap")
        );
        assert!(
            check_mount_maps(&mount(&["ridmap"], true, true), false)
                .unwrap_err()
                .contains("user namespace")
        );
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
        })
    }

    #[test]
    fn accepts_a_minimal_spec() {
        validate(&spec(base())).unwrap();
    }

    #[test]
    fn versions() {
        for ok in ["1.0.0", "1.0.2-dev", "1.2.0", "1.1.0+dev"] {
            check_version(ok).unwrap();
        }
        for bad in ["", "0.9", "2.0.0", "one"] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_empty_args_and_relative_cwd() {
        let mut j = base();
        j["process"]["args"] = serde_json::json!([]);
        assert!(validate(&spec(j)).unwrap_err().contains("args"));
        let mut j = base();
        j["process"]["cwd"] = "tmp".into();
        assert!(validate(&spec(j)).unwrap_err().contains("cwd"));
    }

    #[test]
    fn refuses_duplicate_namespaces_and_hostname_without_uts() {
        let mut j = base();
        j["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "pid"}]);
        assert!(validate(&spec(j)).unwrap_err().contains("twice"));
        let mut j = base();
        j["hostname"] = "x".into();
        assert!(validate(&spec(j)).unwrap_err().contains("uts"));
    }

    #[test]
    fn user_namespace_needs_mappings() {
        let mut j = base();
        j["linux"]["namespaces"] = serde_json::json!([{"type": "user"}]);
        assert!(validate(&spec(j)).unwrap_err().contains("uidMappings"));
    }

    #[test]
    fn unknown_namespace_type_is_a_parse_error() {
        let mut j = base();
        j["linux"]["namespaces"] = serde_json::json!([{"type": "bogus"}]);
        assert!(serde_json::from_value::<Spec>(j).is_err());
    }

    #[test]
    fn sysctl_must_be_namespaced() {
        let has_net = |t| t == LinuxNamespaceType::Network;
        check_sysctl("net.ipv4.ip_forward", &has_net).unwrap();
        assert!(
            check_sysctl("kernel.msgmax", &has_net)
                .unwrap_err()
                .contains("ipc")
        );
        assert!(
            check_sysctl("vm.swappiness", &has_net)
                .unwrap_err()
                .contains("not namespaced")
        );
    }

    #[test]
    fn rlimit_soft_above_hard() {
        let mut j = base();
        j["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
        assert!(validate(&spec(j)).unwrap_err().contains("soft"));
    }
}
