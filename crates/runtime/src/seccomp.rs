//! `linux.seccomp` compiled with libseccomp into a BPF filter. Compiling
//! happens early (errors reach the user before anything runs); loading
//! happens last, just before execve.

use std::os::fd::RawFd;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterAttr, ScmpFilterContext,
    ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

fn err(what: impl std::fmt::Display) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    let what = what.to_string();
    move |e| Error::Seccomp(format!("{what}: {e}"))
}

pub fn action(a: LinuxSeccompAction, errno: Option<u32>, default_errno: Option<u32>) -> ScmpAction {
    let errno = errno.or(default_errno).unwrap_or(libc::EPERM as u32) as i32;
    match a {
        LinuxSeccompAction::ScmpActKill => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    }
}

fn arch(a: Arch) -> Option<ScmpArch> {
    Some(match a {
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        _ => return None,
    })
}

fn op(o: LinuxSeccompOperator, index: u32, value: u64, value_two: u64) -> ScmpArgCompare {
    let cmp = match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value),
    };
    let datum = if matches!(o, LinuxSeccompOperator::ScmpCmpMaskedEq) {
        value_two
    } else {
        value
    };
    ScmpArgCompare::new(index, cmp, datum)
}

/// A compiled filter, ready to load.
pub struct Filter {
    ctx: ScmpFilterContext,
    pub notify: bool,
}

/// Builds the filter. Syscall names unknown to this kernel/libseccomp are
/// skipped, as runc does; rules whose action equals the default are
/// skipped too (libseccomp refuses them).
pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let default = action(s.default_action(), s.default_errno_ret(), None);
    let mut ctx = ScmpFilterContext::new(default).map_err(err("creating the filter"))?;
    for a in s.architectures().as_deref().unwrap_or_default() {
        if let Some(a) = arch(*a) {
            match ctx.add_arch(a) {
                Ok(_) => {}
                Err(e) => return Err(Error::Seccomp(format!("architecture {a:?}: {e}"))),
            }
        }
    }
    for f in s.flags().as_deref().unwrap_or_default() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx
                .set_ctl_log(true)
                .map(|_| ())
                .map_err(err("flag SECCOMP_FILTER_FLAG_LOG"))?,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx
                .set_ctl_ssb(true)
                .map(|_| ())
                .map_err(err("flag SECCOMP_FILTER_FLAG_SPEC_ALLOW"))?,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx
                .set_filter_attr(ScmpFilterAttr::CtlTsync, 1)
                .map(|_| ())
                .map_err(err("flag SECCOMP_FILTER_FLAG_TSYNC"))?,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx
                .set_filter_attr(ScmpFilterAttr::CtlWaitkill, 1)
                .map(|_| ())
                .map_err(err(
                    "flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (needs libseccomp >= 2.6)",
                ))?,
        }
    }
    // Leave no_new_privs to the runtime: it sets it itself when configured.
    ctx.set_ctl_nnp(false)
        .map_err(err("disabling automatic no_new_privs"))?;
    let mut notify = matches!(s.default_action(), LinuxSeccompAction::ScmpActNotify);
    for rule in s.syscalls().as_deref().unwrap_or_default() {
        let act = action(rule.action(), rule.errno_ret(), s.default_errno_ret());
        if act == default {
            continue;
        }
        notify |= matches!(rule.action(), LinuxSeccompAction::ScmpActNotify);
        let conds: Vec<ScmpArgCompare> = rule
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                op(
                    a.op(),
                    a.index() as u32,
                    a.value(),
                    a.value_two().unwrap_or(0),
                )
            })
            .collect();
        for name in rule.names() {
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let added = if conds.is_empty() {
                ctx.add_rule(act, sys)
            } else {
                ctx.add_rule_conditional(act, sys, &conds)
            };
            added.map_err(err(format!("rule for {name}")))?;
        }
    }
    if notify && s.listener_path().is_none() {
        return Err(Error::Seccomp(
            "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath".into(),
        ));
    }
    Ok(Filter { ctx, notify })
}

impl Filter {
    /// Loads the filter into the calling thread; returns the notify fd when
    /// a rule uses SCMP_ACT_NOTIFY.
    pub fn load(&self) -> Result<Option<RawFd>> {
        self.ctx.load().map_err(err("loading the filter"))?;
        if self.notify {
            Ok(Some(
                self.ctx
                    .get_notify_fd()
                    .map_err(err("getting the notify fd"))?,
            ))
        } else {
            Ok(None)
        }
    }
}

/// Sends the notify fd to the listener as the runtime spec says: connect to
/// `listenerPath`, send the container process state JSON with the fd.
/// The containerProcessState document the runtime spec defines for the
/// seccomp listener: the fd names, the process's pid, the listener
/// metadata and the container state.
pub fn process_state(state_json: &str, metadata: Option<&str>) -> String {
    let state: serde_json::Value =
        serde_json::from_str(state_json).unwrap_or(serde_json::Value::Null);
    let doc = serde_json::json!({
        "ociVersion": state.get("ociVersion").cloned().unwrap_or_else(|| "1.0.2".into()),
        "fds": ["seccompFd"],
        "pid": state.get("pid").cloned().unwrap_or(0.into()),
        "metadata": metadata.unwrap_or(""),
        "state": state,
    });
    doc.to_string()
}

/// Connects to the listener. Done before pivot_root: `listenerPath` is a
/// path of the runtime's mount namespace, not the container's.
pub fn connect_listener(path: &std::path::Path) -> Result<std::os::unix::net::UnixStream> {
    std::os::unix::net::UnixStream::connect(path).map_err(|e| Error::Sys {
        what: format!("connecting to the seccomp listener {}", path.display()),
        source: e,
    })
}

/// Sends the notify fd with the container process state over `sock`.
pub fn send_listener_fd(
    sock: &std::os::unix::net::UnixStream,
    state_json: &[u8],
    fd: RawFd,
) -> Result<()> {
    crate::channel::send_fd_to_socket(std::os::fd::AsRawFd::as_raw_fd(sock), state_json, fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn compiles_rules_and_skips_unknown_syscalls() {
        let s = seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["keyctl", "no_such_syscall_xyz"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}]},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}
            ]
        }));
        let f = compile(&s).unwrap();
        assert!(!f.notify);
    }

    #[test]
    fn unknown_action_is_a_parse_error() {
        let bad = serde_json::json!({"defaultAction": "SCMP_ACT_BOGUS"});
        assert!(serde_json::from_value::<LinuxSeccomp>(bad).is_err());
        let bad = serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}]});
        assert!(serde_json::from_value::<LinuxSeccomp>(bad).is_err());
    }

    #[test]
    fn notify_needs_a_listener() {
        let s = seccomp(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
        );
        assert!(compile(&s).is_err());
    }
}
