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

/// The v1 device controller's state for one cgroup, as the kernel keeps it
/// (security/device_cgroup.c): a default behaviour plus exceptions. Used to
/// (a) turn an OCI rule list into exactly what v1 would enforce, so the v2
/// eBPF program matches v1 behaviour, and (b) move a live v1 cgroup from its
/// current state to the target with writes that never deny, even briefly,
/// what both states allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    pub default_allow: bool,
    /// Always Block or Char kinds, access never 0.
    pub exceptions: Vec<Rule>,
}

fn same_node(a: &Rule, b: &Rule) -> bool {
    a.kind == b.kind && a.major == b.major && a.minor == b.minor
}

impl DeviceState {
    pub fn deny_all() -> DeviceState {
        DeviceState {
            default_allow: false,
            exceptions: Vec::new(),
        }
    }

    /// The state after writing `rules` in order, starting from deny-all.
    pub fn from_rules(rules: &[Rule]) -> DeviceState {
        let mut s = DeviceState::deny_all();
        for r in rules {
            s.apply(r);
        }
        s
    }

    /// One write to devices.allow (rule.allow) or devices.deny, as the
    /// kernel's devcgroup_update_access: type "a" resets the behaviour and
    /// clears exceptions; otherwise a rule in the default's direction removes
    /// access bits from the *identical* exception (wildcard exceptions are
    /// not narrowed — a v1 quirk kept on purpose), and one against it adds
    /// (merging access into an identical exception).
    pub fn apply(&mut self, rule: &Rule) {
        if rule.kind == Kind::All {
            self.default_allow = rule.allow;
            self.exceptions.clear();
            return;
        }
        if rule.allow == self.default_allow {
            for ex in self.exceptions.iter_mut().filter(|e| same_node(e, rule)) {
                ex.access &= !rule.access;
            }
            self.exceptions.retain(|e| e.access != 0);
        } else if let Some(ex) = self.exceptions.iter_mut().find(|e| same_node(e, rule)) {
            ex.access |= rule.access;
        } else {
            self.exceptions.push(Rule {
                allow: !self.default_allow,
                ..*rule
            });
        }
    }

    fn matches(ex: &Rule, kind: Kind, major: u32, minor: u32) -> bool {
        ex.kind == kind
            && ex.major.is_none_or(|m| m == major)
            && ex.minor.is_none_or(|m| m == minor)
    }

    /// The kernel's permission check (match_exception /
    /// match_exception_partial) for a concrete request.
    pub fn allows(&self, kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        if self.default_allow {
            !self
                .exceptions
                .iter()
                .any(|ex| Self::matches(ex, kind, major, minor) && ex.access & access != 0)
        } else {
            self.exceptions
                .iter()
                .any(|ex| Self::matches(ex, kind, major, minor) && access & !ex.access == 0)
        }
    }

    /// Parses v1 `devices.list`: `a *:* rwm` alone means default-allow (the
    /// kernel prints nothing else in that mode, so its deny exceptions are
    /// unknown: `None`); otherwise default-deny with the listed exceptions.
    pub fn parse_list(text: &str) -> Option<DeviceState> {
        let mut s = DeviceState::deny_all();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let mut it = line.split_whitespace();
            let (t, node, acc) = (it.next()?, it.next()?, it.next()?);
            if t == "a" {
                return None;
            }
            let kind = match t {
                "b" => Kind::Block,
                "c" => Kind::Char,
                _ => return None,
            };
            let (maj, min) = node.split_once(':')?;
            let num = |v: &str| {
                if v == "*" {
                    Some(None)
                } else {
                    v.parse().ok().map(Some)
                }
            };
            let mut access = 0;
            for ch in acc.chars() {
                access |= match ch {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => return None,
                };
            }
            s.exceptions.push(Rule {
                allow: true,
                kind,
                major: num(maj)?,
                minor: num(min)?,
                access,
            });
        }
        Some(s)
    }

    /// The (file, line) writes that take a v1 cgroup from `current` (None:
    /// unknown) to `self`. Between two default-deny states, grants are added
    /// before anything is taken away, so nothing both states allow is ever
    /// refused mid-update; otherwise "a" resets first.
    pub fn v1_writes(&self, current: Option<&DeviceState>) -> Vec<(&'static str, String)> {
        let (grant, revoke) = if self.default_allow {
            ("devices.deny", "devices.allow")
        } else {
            ("devices.allow", "devices.deny")
        };
        let line = |r: &Rule, access: u8| Rule { access, ..*r }.v1_line();
        let mut out = Vec::new();
        match current {
            Some(cur) if !cur.default_allow && !self.default_allow => {
                for t in &self.exceptions {
                    match cur.exceptions.iter().find(|c| same_node(c, t)) {
                        Some(c) if c.access & t.access == t.access => {}
                        _ => out.push((grant, line(t, t.access))),
                    }
                }
                for c in &cur.exceptions {
                    let keep = self
                        .exceptions
                        .iter()
                        .find(|t| same_node(c, t))
                        .map_or(0, |t| t.access);
                    if c.access & !keep != 0 {
                        out.push((revoke, line(c, c.access & !keep)));
                    }
                }
            }
            _ => {
                out.push((
                    if self.default_allow {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    },
                    "a".to_owned(),
                ));
                for t in &self.exceptions {
                    out.push((grant, line(t, t.access)));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;

    fn rules(json: &str) -> Vec<Rule> {
        let d: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        normalize_all(&d).unwrap()
    }

    #[test]
    fn kernel_semantics() {
        // Partial allows for one node add up.
        let s = DeviceState::from_rules(&rules(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":3,"access":"r"},{"allow":true,"type":"c","major":1,"minor":3,"access":"w"}]"#,
        ));
        assert!(s.allows(Kind::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(!s.allows(Kind::Char, 1, 3, ACC_MKNOD));
        assert_eq!(s.exceptions.len(), 1);
        // A deny narrows only an identical exception, not a wildcard one.
        let s = DeviceState::from_rules(&rules(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"access":"rwm"},{"allow":true,"type":"c","major":5,"minor":1,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"},{"allow":false,"type":"c","major":5,"minor":1,"access":"w"}]"#,
        ));
        assert!(
            s.allows(Kind::Char, 1, 5, ACC_READ),
            "wildcard exception untouched"
        );
        assert!(s.allows(Kind::Char, 5, 1, ACC_READ));
        assert!(!s.allows(Kind::Char, 5, 1, ACC_WRITE));
        // Default allow with deny exceptions: any overlapping bit denies.
        let s = DeviceState::from_rules(&rules(
            r#"[{"allow":true},{"allow":false,"type":"b","major":8,"access":"w"}]"#,
        ));
        assert!(s.default_allow);
        assert!(!s.allows(Kind::Block, 8, 0, ACC_READ | ACC_WRITE));
        assert!(s.allows(Kind::Block, 8, 0, ACC_READ));
        assert!(s.allows(Kind::Char, 8, 0, ACC_WRITE));
    }

    #[test]
    fn list_parsing() {
        assert_eq!(DeviceState::parse_list("a *:* rwm\n"), None);
        let s = DeviceState::parse_list("c 1:3 rwm\nc 136:* rw\nb *:* m\n").unwrap();
        assert!(!s.default_allow);
        assert_eq!(
            s.exceptions.iter().map(Rule::v1_line).collect::<Vec<_>>(),
            ["c 1:3 rwm", "c 136:* rw", "b *:* m"]
        );
        assert_eq!(
            DeviceState::parse_list("").unwrap(),
            DeviceState::deny_all()
        );
    }

    #[test]
    fn transitions_grant_before_revoking() {
        let cur = DeviceState::parse_list("c 1:3 rwm\nc 1:5 rwm\nc 1:9 rw\n").unwrap();
        let target = DeviceState::from_rules(&rules(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":9,"access":"r"},{"allow":true,"type":"c","major":1,"minor":7,"access":"rwm"}]"#,
        ));
        let writes = target.v1_writes(Some(&cur));
        let w = |f: &str, l: &str| (f.to_owned(), l.to_owned());
        let got: Vec<(String, String)> =
            writes.into_iter().map(|(f, l)| (f.to_owned(), l)).collect();
        assert_eq!(
            got,
            vec![
                w("devices.allow", "c 1:7 rwm"),
                w("devices.deny", "c 1:5 rwm"),
                w("devices.deny", "c 1:9 w")
            ]
        );
        // Replaying the writes on the current state reaches the target.
        let mut s = cur.clone();
        for (f, l) in target.v1_writes(Some(&cur)) {
            let parsed = DeviceState::parse_list(&format!("{l}\n"))
                .unwrap()
                .exceptions[0];
            s.apply(&Rule {
                allow: f == "devices.allow",
                ..parsed
            });
        }
        for (maj, min) in [(1, 3), (1, 5), (1, 7), (1, 9)] {
            for acc in [ACC_READ, ACC_WRITE, ACC_MKNOD] {
                assert_eq!(
                    s.allows(Kind::Char, maj, min, acc),
                    target.allows(Kind::Char, maj, min, acc),
                    "{maj}:{min} {acc}"
                );
            }
        }
        // Unknown or default-allow current state: full reset.
        let got = target.v1_writes(None);
        assert_eq!(got[0], ("devices.deny", "a".to_owned()));
        assert_eq!(got.len(), 4);
        assert!(
            target.v1_writes(Some(&target)).is_empty(),
            "no writes when nothing changes"
        );
    }
}
