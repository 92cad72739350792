//! Device access rules (`linux.resources.devices`).
//!
//! Semantics (as runc's): the list is an allowlist applied in order on top
//! of "deny everything"; a later rule overrides an earlier one. On v1 that is
//! `a` written to `devices.deny`, then each rule to `devices.allow` or
//! `devices.deny` (Documentation/admin-guide/cgroup-v1/devices.rst). On v2 the
//! same list becomes an eBPF program (see `ebpf.rs`).
//!
//! [`default_devices`] is the list containers need (runc's defaults); the
//! runtime appends it after the spec's own rules, as runc does.

use crate::Error;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// Access bits, as the kernel's `BPF_DEVCG_ACC_*`.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;

/// Device kind a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    All,
    Block,
    Char,
}

/// A validated device rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    /// None = any.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bitmask of ACC_*.
    pub access: u8,
}

impl Rule {
    /// True when the rule matches every device and every access.
    pub fn is_wildcard(&self) -> bool {
        self.kind == Kind::All && self.major.is_none() && self.minor.is_none() && self.access == 7
    }

    /// The v1 `devices.allow`/`devices.deny` line: `c 1:3 rwm`, `a` for all.
    pub fn v1_line(&self) -> String {
        if self.is_wildcard() || self.kind == Kind::All {
            // The kernel ignores major/minor/access for type "a".
            return "a".to_owned();
        }
        let k = if self.kind == Kind::Block { 'b' } else { 'c' };
        let num = |n: Option<u32>| n.map_or("*".to_owned(), |v| v.to_string());
        format!(
            "{k} {}:{} {}",
            num(self.major),
            num(self.minor),
            access_string(self.access)
        )
    }
}

pub(crate) fn access_string(bits: u8) -> String {
    let mut s = String::new();
    if bits & ACC_READ != 0 {
        s.push('r');
    }
    if bits & ACC_WRITE != 0 {
        s.push('w');
    }
    if bits & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

fn number(field: &str, what: &str, v: Option<i64>) -> Result<Option<u32>, Error> {
    match v {
        None | Some(-1) => Ok(None),
        Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(Error::invalid(
            field,
            format!("{what} {n} is out of range (-1 means any)"),
        )),
    }
}

/// Validates one OCI rule; `field` names it in errors (`devices[3]`).
pub fn normalize(field: &str, d: &LinuxDeviceCgroup) -> Result<Rule, Error> {
    let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => Kind::All,
        LinuxDeviceType::B => Kind::Block,
        LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
        LinuxDeviceType::P => {
            return Err(Error::invalid(
                field,
                "type \"p\" (FIFO) is not a device the device controller governs",
            ));
        }
    };
    let access = match d.access().as_deref() {
        None | Some("") => 7,
        Some(a) => {
            let mut bits = 0;
            for ch in a.chars() {
                bits |= match ch {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    other => {
                        return Err(Error::invalid(
                            field,
                            format!("access {a:?} has {other:?}; only r, w and m are allowed"),
                        ));
                    }
                };
            }
            bits
        }
    };
    Ok(Rule {
        allow: d.allow(),
        kind,
        major: number(field, "major", d.major())?,
        minor: number(field, "minor", d.minor())?,
        access,
    })
}

/// Validates a whole list.
pub fn normalize_all(devices: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, Error> {
    devices
        .iter()
        .enumerate()
        .map(|(i, d)| normalize(&format!("devices[{i}]"), d))
        .collect()
}

fn rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut d = LinuxDeviceCgroup::default();
    d.set_allow(true);
    d.set_typ(Some(typ));
    d.set_major(major);
    d.set_minor(minor);
    d.set_access(Some(access.to_owned()));
    d
}

/// The devices every container needs (runc's default allow list): mknod of
/// any char/block node (access still needs a rule), /dev/null, zero, full,
/// random, urandom, tty, console, ptmx, /dev/pts/*, and /dev/net/tun.
pub fn default_devices() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),    // /dev/null
        rule(C, Some(1), Some(5), "rwm"),    // /dev/zero
        rule(C, Some(1), Some(7), "rwm"),    // /dev/full
        rule(C, Some(1), Some(8), "rwm"),    // /dev/random
        rule(C, Some(1), Some(9), "rwm"),    // /dev/urandom
        rule(C, Some(5), Some(0), "rwm"),    // /dev/tty
        rule(C, Some(5), Some(1), "rwm"),    // /dev/console
        rule(C, Some(5), Some(2), "rwm"),    // /dev/ptmx
        rule(C, Some(136), None, "rwm"),     // /dev/pts/*
        rule(C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(json: &str) -> LinuxDeviceCgroup {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn v1_lines() {
        let r = normalize(
            "d",
            &dev(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#),
        )
        .unwrap();
        assert_eq!(r.v1_line(), "c 1:3 rwm");
        let r = normalize(
            "d",
            &dev(r#"{"allow":true,"type":"c","major":136,"access":"rw"}"#),
        )
        .unwrap();
        assert_eq!(r.v1_line(), "c 136:* rw");
        let r = normalize("d", &dev(r#"{"allow":false,"access":"rwm"}"#)).unwrap();
        assert!(r.is_wildcard());
        assert_eq!(r.v1_line(), "a");
        let r = normalize(
            "d",
            &dev(r#"{"allow":true,"type":"b","major":-1,"minor":-1,"access":"m"}"#),
        )
        .unwrap();
        assert_eq!(r.v1_line(), "b *:* m");
    }

    #[test]
    fn bad_rules_name_the_entry() {
        let err = normalize_all(&[
            dev(r#"{"allow":true}"#),
            dev(r#"{"allow":true,"type":"c","access":"rx"}"#),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.resources.devices[1]: access \"rx\" has 'x'; only r, w and m are allowed"
        );
        let err = normalize("devices[0]", &dev(r#"{"allow":true,"type":"p"}"#)).unwrap_err();
        assert!(err.to_string().contains("FIFO"));
        let err = normalize(
            "devices[0]",
            &dev(r#"{"allow":true,"type":"c","major":-7}"#),
        )
        .unwrap_err();
        assert!(err.to_string().contains("major -7"));
    }

    #[test]
    fn defaults_cover_the_standard_nodes() {
        let rules = normalize_all(&default_devices()).unwrap();
        let lines: Vec<String> = rules.iter().map(Rule::v1_line).collect();
        for want in [
            "c *:* m",
            "b *:* m",
            "c 1:3 rwm",
            "c 1:9 rwm",
            "c 136:* rwm",
            "c 5:2 rwm",
        ] {
            assert!(lines.iter().any(|l| l == want), "missing {want}: {lines:?}");
        }
        assert!(rules.iter().all(|r| r.allow));
    }
}
