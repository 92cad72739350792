//! berth's default security profile for containers: a seccomp allow-list
//! and a capability set equal in effect to Docker's defaults. Both are data
//! in the repository (`crates/runtime/profiles/`), documented in
//! docs/security.md, and resolved here into OCI types.
//!
//! The seccomp file is a profile, not an OCI object: some rules apply only
//! to some architectures, or only when the container holds (or lacks) a
//! capability. [`seccomp_for`] resolves it for one capability set and one
//! architecture; [`default_seccomp`] does so for [`default_capabilities`] on
//! the host.

use std::collections::HashMap;
use std::str::FromStr;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSyscall,
};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The default seccomp profile, as shipped.
pub const SECCOMP_DEFAULT_JSON: &str = include_str!("../profiles/seccomp-default.json");
/// The default capability list, as shipped (one per line, `#` comments).
pub const CAPABILITIES_DEFAULT_TXT: &str = include_str!("../profiles/capabilities-default.txt");

/// Paths masked in every unprivileged container (runc's and Docker's
/// list): files with /dev/null, directories with an empty read-only tmpfs.
pub const DEFAULT_MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in every unprivileged container.
pub const DEFAULT_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// One rule of the profile: an OCI syscall rule plus the conditions under
/// which it applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileRule {
    /// Why the rule exists (documentation only).
    #[serde(default)]
    pub why: String,
    pub names: Vec<String>,
    pub action: LinuxSeccompAction,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<LinuxSeccompArg>,
    /// Applies only when the container holds one of these.
    #[serde(default)]
    pub requires_caps: Vec<String>,
    /// Applies only when the container holds none of these.
    #[serde(default)]
    pub unless_caps: Vec<String>,
    /// Applies only on these architectures (Rust `std::env::consts::ARCH` names).
    #[serde(default)]
    pub arches: Vec<String>,
}

/// The profile file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: LinuxSeccompAction,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Host architecture → the seccomp architectures a process may use there.
    pub arch_map: HashMap<String, Vec<Arch>>,
    pub rules: Vec<ProfileRule>,
}

impl Profile {
    /// Parses a profile in berth's format.
    pub fn parse(json: &str) -> Result<Profile> {
        serde_json::from_str(json)
            .map_err(|e| Error::Seccomp(format!("parsing the seccomp profile: {e}")))
    }

    /// The shipped default profile.
    pub fn builtin() -> Profile {
        Profile::parse(SECCOMP_DEFAULT_JSON).expect("the shipped profile is valid (unit-tested)")
    }
}

fn cap_name(c: &Capability) -> String {
    let s = c.to_string();
    if s.starts_with("CAP_") {
        s
    } else {
        format!("CAP_{s}")
    }
}

/// Whether a rule applies to a container with `caps` on `arch`.
pub fn rule_applies(rule: &ProfileRule, caps: &[Capability], arch: &str) -> bool {
    let held: Vec<String> = caps.iter().map(cap_name).collect();
    let holds = |c: &String| held.contains(c);
    (rule.requires_caps.is_empty() || rule.requires_caps.iter().any(holds))
        && !rule.unless_caps.iter().any(holds)
        && (rule.arches.is_empty() || rule.arches.iter().any(|a| a == arch))
}

/// Resolves `profile` into the OCI `linux.seccomp` object for a container
/// holding `caps` (its bounding set) on `arch`.
pub fn seccomp_for(profile: &Profile, caps: &[Capability], arch: &str) -> LinuxSeccomp {
    let syscalls: Vec<LinuxSyscall> = profile
        .rules
        .iter()
        .filter(|r| rule_applies(r, caps, arch))
        .map(|r| {
            let mut s = LinuxSyscall::default();
            s.set_names(r.names.clone());
            s.set_action(r.action);
            s.set_errno_ret(r.errno_ret);
            s.set_args((!r.args.is_empty()).then(|| r.args.clone()));
            s
        })
        .collect();
    let mut s = LinuxSeccomp::default();
    s.set_default_action(profile.default_action);
    s.set_default_errno_ret(profile.default_errno_ret);
    s.set_architectures(profile.arch_map.get(arch).cloned());
    s.set_syscalls(Some(syscalls));
    s
}

/// The default seccomp filter for a container with the default capabilities
/// on this host's architecture.
pub fn default_seccomp() -> LinuxSeccomp {
    seccomp_for(
        &Profile::builtin(),
        &default_capabilities(),
        std::env::consts::ARCH,
    )
}

/// Parses a capability list: one name per line, blank lines and `#`
/// comments ignored, `CAP_` prefix optional.
pub fn parse_capabilities(text: &str) -> Result<Vec<Capability>> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let name = l.strip_prefix("CAP_").unwrap_or(l);
            Capability::from_str(name)
                .or_else(|_| Capability::from_str(l))
                .map_err(|e| Error::Other(format!("capability list: {l:?}: {e}")))
        })
        .collect()
}

/// The default capability set (Docker's): bounding, effective, permitted
/// and (for root) what a container process gets.
pub fn default_capabilities() -> Vec<Capability> {
    parse_capabilities(CAPABILITIES_DEFAULT_TXT).expect("the shipped list is valid (unit-tested)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_with(s: &LinuxSeccomp, action: LinuxSeccompAction) -> Vec<String> {
        s.syscalls()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|r| r.action() == action)
            .flat_map(|r| r.names().clone())
            .collect()
    }

    fn allowed(s: &LinuxSeccomp) -> Vec<String> {
        names_with(s, LinuxSeccompAction::ScmpActAllow)
    }

    #[test]
    fn shipped_files_parse() {
        let p = Profile::builtin();
        assert_eq!(p.default_action, LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret, Some(libc::EPERM as u32));
        let caps = default_capabilities();
        assert_eq!(caps.len(), 14);
        assert!(caps.contains(&Capability::NetBindService));
        assert!(!caps.contains(&Capability::SysAdmin));
    }

    #[test]
    fn default_blocks_what_docker_blocks() {
        let s = seccomp_for(&Profile::builtin(), &default_capabilities(), "x86_64");
        let allowed = allowed(&s);
        for blocked in [
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "kexec_file_load",
            "mount",
            "umount2",
            "unshare",
            "setns",
            "init_module",
            "open_by_handle_at",
            "userfaultfd",
            "io_uring_setup",
            "swapon",
            "reboot",
            "settimeofday",
            "pivot_root",
        ] {
            assert!(!allowed.contains(&blocked.to_string()), "{blocked} allowed");
        }
        for ok in ["read", "execve", "socket", "chroot", "arch_prctl", "ptrace"] {
            assert!(allowed.contains(&ok.to_string()), "{ok} not allowed");
        }
        // clone3 fails with ENOSYS so libc falls back to the checked clone.
        let clone3 = s
            .syscalls()
            .as_deref()
            .unwrap()
            .iter()
            .find(|r| r.names().contains(&"clone3".to_string()))
            .unwrap();
        assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
    }

    #[test]
    fn capabilities_unlock_their_syscalls() {
        let mut caps = default_capabilities();
        caps.push(Capability::SysAdmin);
        caps.push(Capability::SysTime);
        let s = seccomp_for(&Profile::builtin(), &caps, "x86_64");
        let allowed = allowed(&s);
        for ok in ["mount", "unshare", "setns", "clone3", "settimeofday"] {
            assert!(allowed.contains(&ok.to_string()), "{ok} not allowed");
        }
        // No ENOSYS rule for clone3 once CAP_SYS_ADMIN is held.
        assert!(names_with(&s, LinuxSeccompAction::ScmpActErrno).is_empty());
        assert!(!allowed.contains(&"keyctl".to_string()));
    }

    #[test]
    fn arch_specific_rules() {
        let s = seccomp_for(&Profile::builtin(), &[], "aarch64");
        let allowed = allowed(&s);
        assert!(allowed.contains(&"cacheflush".to_string()));
        assert!(!allowed.contains(&"arch_prctl".to_string()));
        assert!(
            !allowed.contains(&"chroot".to_string()),
            "no CAP_SYS_CHROOT"
        );
    }

    #[test]
    fn default_profile_compiles() {
        crate::seccomp::compile(&default_seccomp()).unwrap();
    }

    #[test]
    fn capability_lists() {
        let caps = parse_capabilities("# c\nCAP_KILL\n\nchown # trailing\n").unwrap_err();
        assert!(caps.to_string().contains("chown"), "{caps}");
        let caps = parse_capabilities("CAP_KILL\nNET_RAW\n").unwrap();
        assert_eq!(caps, [Capability::Kill, Capability::NetRaw]);
        assert!(parse_capabilities("CAP_NOPE").is_err());
    }
}
