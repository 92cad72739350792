//! `linux.seccomp`: libseccomp compiles the rules into a BPF program
//! (seccomp_export_bpf(3)); berth loads that program itself with
//! seccomp(2), so that it chooses the filter flags: libseccomp before 2.6
//! cannot pass SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, the kernel has taken
//! it since Linux 5.19. Compiling happens early (errors reach the user
//! before anything runs); loading happens last, just before execve.

use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libc::c_ulong;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
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

/// The seccomp(2) filter flags (linux/seccomp.h) with their names.
const FLAG_NAMES: [(c_ulong, &str); 6] = [
    (libc::SECCOMP_FILTER_FLAG_TSYNC, "SECCOMP_FILTER_FLAG_TSYNC"),
    (libc::SECCOMP_FILTER_FLAG_LOG, "SECCOMP_FILTER_FLAG_LOG"),
    (
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ),
    (
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        "SECCOMP_FILTER_FLAG_NEW_LISTENER",
    ),
    (
        libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
        "SECCOMP_FILTER_FLAG_TSYNC_ESRCH",
    ),
    (
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ),
];

/// The names of the flags set in `bits`.
pub fn flag_names(bits: c_ulong) -> Vec<&'static str> {
    FLAG_NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The seccomp(2) flags a filter is loaded with: the spec's
/// `linux.seccomp.flags`, plus SECCOMP_FILTER_FLAG_NEW_LISTENER when the
/// filter can answer SCMP_ACT_NOTIFY (the syscall then returns the listener
/// fd).
///
/// - SECCOMP_FILTER_FLAG_TSYNC is accepted and adds nothing: the filter is
///   loaded by a single-threaded process just before execve, so there is no
///   other thread to synchronise (runc does the same).
/// - SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19, kernel commit
///   c2aa2dfef243): once the listener has *received* a notification, the
///   notifying process waits killable, so only a fatal signal ends the wait
///   (before that, any signal still interrupts it; without the flag a
///   signal ends the wait at any time, and a Go process gets SIGURG often).
///   It only means something for a listener, and the kernel refuses it
///   (EINVAL) without NEW_LISTENER: a spec asking for it without any
///   SCMP_ACT_NOTIFY rule is an error here, before anything runs (runc
///   passes it on and fails at load time).
///   <https://man7.org/linux/man-pages/man2/seccomp.2.html>
pub fn filter_flags(requested: &[LinuxSeccompFilterFlag], notify: bool) -> Result<c_ulong> {
    let mut bits = if notify {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    } else {
        0
    };
    for f in requested {
        bits |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if !notify => {
                return Err(Error::Seccomp(
                    "flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with SCMP_ACT_NOTIFY: it changes how a notifying process waits for the listener, and the kernel refuses it for a filter without one".into(),
                ));
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        };
    }
    Ok(bits)
}

/// The flags of `bits` that `accepts` (a probe of the kernel) refuses, by
/// name. WAIT_KILLABLE_RECV is probed together with NEW_LISTENER, without
/// which every kernel refuses it.
pub fn unsupported_flags(bits: c_ulong, accepts: impl Fn(c_ulong) -> bool) -> Vec<&'static str> {
    FLAG_NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .filter(|(b, _)| {
            let probe = if *b == libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
                b | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            } else {
                *b
            };
            !accepts(probe)
        })
        .map(|(_, n)| *n)
        .collect()
}

/// Whether this kernel knows the filter flags `bits`: seccomp(2) with them
/// and no program fails with EFAULT (flags checked, program unreadable)
/// rather than EINVAL (unknown flag). Installs nothing. libseccomp probes
/// the same way. <https://man7.org/linux/man-pages/man2/seccomp.2.html>
pub fn kernel_accepts(bits: c_ulong) -> bool {
    // SAFETY: a NULL program is never dereferenced by us; the kernel reports
    // EFAULT reading it, after validating the flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            bits,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// The `linux.seccomp.flags` values this runtime and kernel support, for
/// `features`.
pub fn supported_spec_flags() -> Vec<&'static str> {
    let known = [
        libc::SECCOMP_FILTER_FLAG_TSYNC,
        libc::SECCOMP_FILTER_FLAG_LOG,
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    ];
    known
        .into_iter()
        .filter(|b| unsupported_flags(*b, kernel_accepts).is_empty())
        .flat_map(flag_names)
        .collect()
}

/// Syscalls the runtime makes after loading the filter and before the
/// listener holds the notify fd: the fd goes out with sendmsg(2). A notify
/// rule on them would make the runtime wait for a listener that cannot
/// answer yet, forever (runc refuses `write` for the same reason).
const HANDOVER_SYSCALLS: [&str; 1] = ["sendmsg"];

/// A compiled filter, ready to load: libseccomp's BPF program and the
/// seccomp(2) flags.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: c_ulong,
}

/// Builds the filter. Syscall names unknown to this kernel/libseccomp are
/// skipped, as runc does; rules whose action equals the default are
/// skipped too (libseccomp refuses them).
pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    if matches!(s.default_action(), LinuxSeccompAction::ScmpActNotify) {
        return Err(Error::Seccomp(
            "SCMP_ACT_NOTIFY cannot be the default action: the runtime's own syscalls after loading the filter (handing the listener its fd) would wait for a listener that has no fd yet".into(),
        ));
    }
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
    // Leave no_new_privs to the runtime: it sets it itself when configured.
    ctx.set_ctl_nnp(false)
        .map_err(err("disabling automatic no_new_privs"))?;
    let mut notify = false;
    for rule in s.syscalls().as_deref().unwrap_or_default() {
        let act = action(rule.action(), rule.errno_ret(), s.default_errno_ret());
        if act == default {
            continue;
        }
        let notifies = matches!(rule.action(), LinuxSeccompAction::ScmpActNotify);
        if let Some(name) = rule
            .names()
            .iter()
            .find(|n| notifies && HANDOVER_SYSCALLS.contains(&n.as_str()))
        {
            return Err(Error::Seccomp(format!(
                "SCMP_ACT_NOTIFY cannot be used for {name}: the runtime hands the listener its fd with {name} after loading the filter, and would wait forever for a listener that has no fd yet"
            )));
        }
        notify |= notifies;
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
    let flags = filter_flags(s.flags().as_deref().unwrap_or_default(), notify)?;
    let missing = unsupported_flags(flags, kernel_accepts);
    if !missing.is_empty() {
        return Err(Error::Seccomp(format!(
            "this kernel does not support {} (SECCOMP_FILTER_FLAG_NEW_LISTENER is what SCMP_ACT_NOTIFY needs)",
            missing.join(", ")
        )));
    }
    let program = export(&ctx)?;
    Ok(Filter { program, flags })
}

/// The BPF program libseccomp generated for `ctx`, through a memfd
/// (seccomp_export_bpf(3) writes to a file descriptor).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let sys = |what: &str| {
        let what = format!("exporting the seccomp filter: {what}");
        move |source| Error::Sys { what, source }
    };
    // SAFETY: memfd_create with a static C string; the fd is ours.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(sys("memfd_create")(std::io::Error::last_os_error()));
    }
    // SAFETY: memfd_create returned a new fd we own.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file)
        .map_err(err("exporting the seccomp filter"))?;
    let mut bytes = vec![];
    file.rewind().map_err(sys("rewinding"))?;
    file.read_to_end(&mut bytes).map_err(sys("reading"))?;
    parse_program(&bytes)
}

/// The most instructions a classic BPF program may have (BPF_MAXINSNS).
const BPF_MAXINSNS: usize = 4096;

/// Decodes an array of `struct sock_filter` (u16 code, u8 jt, u8 jf, u32 k,
/// native byte order), as seccomp_export_bpf(3) writes it.
pub fn parse_program(bytes: &[u8]) -> Result<Vec<libc::sock_filter>> {
    const SIZE: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || !bytes.len().is_multiple_of(SIZE) {
        return Err(Error::Seccomp(format!(
            "libseccomp exported {} bytes, not a whole number of BPF instructions",
            bytes.len()
        )));
    }
    let n = bytes.len() / SIZE;
    if n > BPF_MAXINSNS {
        return Err(Error::Seccomp(format!(
            "the filter has {n} BPF instructions, more than the kernel's limit of {BPF_MAXINSNS}"
        )));
    }
    Ok(bytes
        .chunks_exact(SIZE)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

impl Filter {
    /// Whether loading returns a listener fd (a rule uses SCMP_ACT_NOTIFY).
    pub fn notify(&self) -> bool {
        self.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
    }

    /// The seccomp(2) flags the filter is loaded with.
    pub fn flags(&self) -> c_ulong {
        self.flags
    }

    /// Loads the filter into the calling thread with seccomp(2); returns
    /// the listener fd when a rule uses SCMP_ACT_NOTIFY. The caller needs
    /// no_new_privs or CAP_SYS_ADMIN. Allocates nothing, so the only
    /// syscall between this and handing the fd over is that handover.
    pub fn load(&self) -> Result<Option<OwnedFd>> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: prog points to our program, alive for the call; the kernel
        // copies it and does not write through the pointer.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            return Err(self.load_error(std::io::Error::last_os_error()));
        }
        if !self.notify() {
            return Ok(None);
        }
        // SAFETY: with NEW_LISTENER, seccomp(2) returns a new fd we own.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(r as RawFd) }))
    }

    /// An error naming what the kernel refused: EINVAL may mean a flag it
    /// does not know (probed again to name it) or a program it rejects.
    fn load_error(&self, e: std::io::Error) -> Error {
        if e.raw_os_error() == Some(libc::EINVAL) {
            let refused = unsupported_flags(self.flags, kernel_accepts);
            if !refused.is_empty() {
                return Error::Seccomp(format!(
                    "loading the filter: the kernel refused {}: {e}",
                    refused.join(", ")
                ));
            }
        }
        let flags = flag_names(self.flags);
        Error::Seccomp(format!(
            "loading the filter ({} instructions, flags [{}]): {e}",
            self.program.len(),
            flags.join(", ")
        ))
    }
}

/// The containerProcessState document the runtime spec defines for the
/// seccomp listener: the fd names, the process's pid, the listener
/// metadata and the container state (`state_json`). `pid` overrides the
/// state's pid (an `exec`'d process is not the init).
pub fn process_state(state_json: &str, pid: Option<i32>, metadata: Option<&str>) -> String {
    let state: serde_json::Value =
        serde_json::from_str(state_json).unwrap_or(serde_json::Value::Null);
    let pid = pid
        .map(serde_json::Value::from)
        .or_else(|| state.get("pid").cloned())
        .unwrap_or(0.into());
    let doc = serde_json::json!({
        "ociVersion": state.get("ociVersion").cloned().unwrap_or_else(|| "1.0.2".into()),
        "fds": ["seccompFd"],
        "pid": pid,
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
/// Makes one sendmsg(2) and allocates nothing (see [`HANDOVER_SYSCALLS`]).
pub fn send_listener_fd(
    sock: &std::os::unix::net::UnixStream,
    state_json: &[u8],
    fd: RawFd,
) -> Result<()> {
    crate::channel::send_fd_raw(std::os::fd::AsRawFd::as_raw_fd(sock), state_json, fd).map_err(
        |source| Error::Sys {
            what: "sending the seccomp listener fd".into(),
            source,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    fn flags(names: &[&str]) -> Vec<LinuxSeccompFilterFlag> {
        serde_json::from_value(serde_json::json!(names)).unwrap()
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
        assert!(!f.notify());
        assert_eq!(f.flags(), 0);
        assert!(f.program.len() > 4, "{} instructions", f.program.len());
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

    #[test]
    fn notify_cannot_cover_the_handover() {
        let e = compile(&seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/l",
            "syscalls": [{"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]
        })))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("sendmsg"), "{e}");
        let e = compile(&seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/l"
        })))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("default action"), "{e}");
    }

    #[test]
    fn flags_follow_the_spec_and_the_rules() {
        let all = flags(&[
            "SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        ]);
        assert_eq!(
            filter_flags(&all, false).unwrap(),
            libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
        assert_eq!(
            filter_flags(&[], true).unwrap(),
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
        );
        assert_eq!(filter_flags(&[], false).unwrap(), 0);
        let wait = flags(&["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
        assert_eq!(
            filter_flags(&wait, true).unwrap(),
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        );
        let e = filter_flags(&wait, false).unwrap_err().to_string();
        assert!(
            e.contains("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") && e.contains("SCMP_ACT_NOTIFY"),
            "{e}"
        );
    }

    #[test]
    fn refused_flags_are_named() {
        let bits = libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        // A kernel before 5.19: WAIT_KILLABLE_RECV unknown.
        let old = |b: c_ulong| b & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV == 0;
        assert_eq!(
            unsupported_flags(bits, old),
            ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
        );
        // WAIT_KILLABLE_RECV is probed with NEW_LISTENER, which it needs.
        let strict = |b: c_ulong| {
            b & libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV == 0
                || b & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
        };
        assert!(unsupported_flags(bits, strict).is_empty());
        assert_eq!(
            flag_names(bits),
            [
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_NEW_LISTENER",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
            ]
        );
    }

    #[test]
    fn this_kernel_knows_the_flags() {
        // Linux 5.19 or later (the development and CI hosts run 6.x).
        assert!(kernel_accepts(libc::SECCOMP_FILTER_FLAG_LOG));
        assert!(!kernel_accepts(1 << 20), "an unknown flag bit was accepted");
        assert!(supported_spec_flags().contains(&"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"));
    }

    #[test]
    fn program_bytes_decode() {
        let mut bytes = vec![];
        for (code, jt, jf, k) in [(0x20u16, 0u8, 0u8, 4u32), (0x06, 0, 0, 0x7fff_0000)] {
            bytes.extend(code.to_ne_bytes());
            bytes.extend([jt, jf]);
            bytes.extend(k.to_ne_bytes());
        }
        let p = parse_program(&bytes).unwrap();
        assert_eq!((p[0].code, p[0].k), (0x20, 4));
        assert_eq!((p[1].code, p[1].k), (0x06, 0x7fff_0000));
        assert!(parse_program(&bytes[..7]).is_err());
        assert!(parse_program(&[]).is_err());
        assert!(parse_program(&vec![0; 8 * (BPF_MAXINSNS + 1)]).is_err());
    }

    #[test]
    fn process_state_names_the_process() {
        let st = r#"{"ociVersion":"1.2.0","id":"c","status":"running","pid":10}"#;
        let doc: serde_json::Value =
            serde_json::from_str(&process_state(st, Some(42), Some("m"))).unwrap();
        assert_eq!(doc["pid"], 42);
        assert_eq!(doc["state"]["pid"], 10);
        assert_eq!(doc["metadata"], "m");
        assert_eq!(doc["fds"], serde_json::json!(["seccompFd"]));
        let doc: serde_json::Value = serde_json::from_str(&process_state(st, None, None)).unwrap();
        assert_eq!(doc["pid"], 10);
    }
}
