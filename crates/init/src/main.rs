//! berth-init: the reaper that `berth run --init` puts in front of a
//! container's command, as pid 1 of its pid namespace (the job of Docker's
//! docker-init and Podman's catatonit).
//!
//! Usage: `berth-init [--] COMMAND [ARG...]`. It blocks every signal, forks
//! COMMAND (searched in PATH as execvp(3) does) into a process group of its
//! own, which becomes the terminal's foreground group when there is one, and
//! then waits for signals with sigwaitinfo(2):
//! - SIGCHLD: reaps every exited child. Orphans anywhere in the container
//!   are re-parented to pid 1, which must collect them or they stay zombies.
//!   When COMMAND itself has exited, berth-init exits with its code (128 +
//!   the signal number when a signal killed it).
//! - any other signal: forwarded to COMMAND's pid. Not to its process group
//!   (tini and catatonit do the same by default): a shell or supervisor that
//!   traps SIGTERM decides how its own children stop, and signals typed on a
//!   terminal (Ctrl-C) already reach the whole foreground group.
//!
//! A COMMAND that cannot be run makes it exit 127 (not found) or 126 (found
//! but not runnable), as a shell does, after a message on stderr naming it.
//!
//! This one file is built twice: as an ordinary Cargo binary (for its tests)
//! and by crates/engine/build.rs, straight through rustc, as the static and
//! stripped binary that the engine embeds and bind-mounts into containers,
//! whose images may have no libc at all. So it uses nothing but std, and
//! declares the few libc functions that std does not wrap.

use std::ffi::{CString, OsStr, OsString, c_char, c_int, c_long, c_ulong};
use std::io::Read;
use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

// The numbers below are those of the generic Linux ABI; a few architectures
// (mips, sparc, alpha, parisc) number signals and sigprocmask differently.
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x"
)))]
compile_error!("berth-init knows the signal numbers of the generic Linux ABI only");

/// rt_sigaction(2)'s syscall number.
#[cfg(target_arch = "x86_64")]
const SYS_RT_SIGACTION: c_long = 13;
#[cfg(any(target_arch = "x86", target_arch = "arm", target_arch = "s390x"))]
const SYS_RT_SIGACTION: c_long = 174;
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "loongarch64"
))]
const SYS_RT_SIGACTION: c_long = 134;
#[cfg(target_arch = "powerpc64")]
const SYS_RT_SIGACTION: c_long = 173;

const SIGKILL: c_int = 9;
const SIGSTOP: c_int = 19;
const SIGCHLD: c_int = 17;
/// Signals are 1..NSIG (glibc's NSIG: 64 signals).
const NSIG: c_int = 65;
/// The kernel's sigset_t size, rt_sigaction(2)'s last argument.
const KERNEL_SIGSET_SIZE: usize = 8;
const SIG_SETMASK: c_int = 2;
const WNOHANG: c_int = 1;
const PR_SET_CHILD_SUBREAPER: c_int = 36;

const ESRCH: c_int = 3;
const ENOENT: c_int = 2;
const EINTR: c_int = 4;
const EACCES: c_int = 13;
const ENODEV: c_int = 19;
const ENOTDIR: c_int = 20;
const ETIMEDOUT: c_int = 110;
const ESTALE: c_int = 116;

/// glibc's `sigset_t`: 1024 bits.
#[repr(C)]
struct SigSet([c_ulong; SIGSET_WORDS]);
const SIGSET_WORDS: usize = 1024 / c_ulong::BITS as usize;

unsafe extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwaitinfo(set: *const SigSet, info: *mut u8) -> c_int;
    fn waitpid(pid: i32, status: *mut c_int, options: c_int) -> i32;
    fn fork() -> i32;
    fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char)
    -> c_int;
    fn kill(pid: i32, sig: c_int) -> c_int;
    fn setpgid(pid: i32, pgid: i32) -> c_int;
    fn tcsetpgrp(fd: c_int, pgrp: i32) -> c_int;
    fn prctl(option: c_int, ...) -> c_int;
    fn syscall(number: c_long, ...) -> c_long;
    fn write(fd: c_int, buf: *const u8, len: usize) -> isize;
    fn _exit(code: c_int) -> !;
    static environ: *const *const c_char;
}

fn main() {
    let Some(cmd) = command(std::env::args_os().skip(1).collect()) else {
        eprintln!("usage: berth-init [--] COMMAND [ARG...]");
        std::process::exit(2);
    };
    std::process::exit(run(&cmd));
}

/// Starts `cmd` and supervises it; returns the exit code to exit with.
fn run(cmd: &[OsString]) -> i32 {
    let all = SigSet::full();
    // SAFETY: both sets are valid sigset_t; a null old set is allowed.
    unsafe { sigprocmask(SIG_SETMASK, &all, std::ptr::null_mut()) };
    // An ignored SIGCHLD (which a parent may hand down through execve)
    // would make the kernel reap children by itself, and waitpid(2) would
    // never report the command's status.
    default_disposition(SIGCHLD);
    if std::process::id() != 1 {
        // Outside a new pid namespace orphans would go to the real init:
        // ask for them (PR_SET_CHILD_SUBREAPER, see prctl(2)).
        // SAFETY: plain integer arguments.
        unsafe { prctl(PR_SET_CHILD_SUBREAPER, 1 as c_ulong) };
    }
    let exec = match Exec::new(cmd) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("berth-init: {e}");
            return 126;
        }
    };
    match spawn(&exec) {
        Ok(child) => supervise(child, &all),
        Err(e) => {
            eprintln!("berth-init: starting {:?}: {e}", cmd[0]);
            1
        }
    }
}

/// The command line: the arguments after an optional leading `--`.
fn command(mut args: Vec<OsString>) -> Option<Vec<OsString>> {
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    (!args.is_empty()).then_some(args)
}

/// The paths execvp(3) tries for `cmd`: itself when it has a slash, else
/// `dir/cmd` for each PATH entry (an empty entry is the current directory).
fn candidates(cmd: &OsStr, path: &OsStr) -> Vec<PathBuf> {
    if cmd.as_bytes().contains(&b'/') {
        return vec![PathBuf::from(cmd)];
    }
    if cmd.is_empty() {
        return vec![];
    }
    path.as_bytes()
        .split(|b| *b == b':')
        .map(|dir| match dir {
            b"" => PathBuf::from(".").join(cmd),
            d => PathBuf::from(OsStr::from_bytes(d)).join(cmd),
        })
        .collect()
}

/// PATH when the environment has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a failed execve(2) of one candidate weighs, as in execvp(3): while
/// searching PATH, "not there" errors move on to the next entry, and a
/// permission error is remembered (it wins over a later "not found");
/// any other error, or any error without a search, is final. `so_far` is
/// the error to report if nothing else is found (ENOENT at first).
fn after_exec_error(searching: bool, so_far: c_int, errno: c_int) -> ControlFlow<c_int, c_int> {
    if !searching {
        return ControlFlow::Break(errno);
    }
    match errno {
        EACCES => ControlFlow::Continue(EACCES),
        ENOENT | ENOTDIR | ENODEV | ESTALE | ETIMEDOUT => ControlFlow::Continue(so_far),
        _ => ControlFlow::Break(errno),
    }
}

/// A shell's exit code for a command it could not run.
fn exec_failure_code(errno: c_int) -> i32 {
    if errno == ENOENT { 127 } else { 126 }
}

/// The message for a command that could not be run.
fn exec_failure_message(cmd: &OsStr, searching: bool, errno: c_int) -> String {
    let why = if searching && errno == ENOENT {
        "executable file not found in $PATH".to_string()
    } else {
        std::io::Error::from_raw_os_error(errno).to_string()
    };
    format!("berth-init: cannot run {:?}: {why}", cmd)
}

/// The exit code for a waitpid(2) status of an exited or killed process:
/// its exit status, or 128 + the signal that killed it.
fn exit_code(status: c_int) -> i32 {
    match status & 0x7f {
        0 => (status >> 8) & 0xff,
        sig => 128 + sig,
    }
}

/// Everything the child needs, allocated before fork(2) so that the child
/// only makes async-signal-safe calls.
struct Exec {
    argv: Vec<CString>,
    /// Pointers into `argv`, null-terminated, for execve(2).
    argv_ptrs: Vec<*const c_char>,
    candidates: Vec<CString>,
    searching: bool,
}

impl Exec {
    fn new(cmd: &[OsString]) -> Result<Exec, String> {
        let cstring = |s: &OsStr| {
            CString::new(s.as_bytes()).map_err(|_| format!("argument {s:?} contains a NUL byte"))
        };
        let argv: Vec<CString> = cmd.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?;
        let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
        let candidates = candidates(&cmd[0], &path)
            .iter()
            .map(|p| cstring(p.as_os_str()))
            .collect::<Result<_, _>>()?;
        let argv_ptrs = argv
            .iter()
            .map(|a: &CString| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        Ok(Exec {
            argv,
            argv_ptrs,
            candidates,
            searching: !cmd[0].as_bytes().contains(&b'/'),
        })
    }
}

/// Forks the command; returns its pid. An exec failure is reported by the
/// child over a close-on-exec socket (EOF means the exec succeeded) and
/// printed here; the child then exits 126 or 127, which `supervise` sees.
fn spawn(exec: &Exec) -> std::io::Result<i32> {
    let (mut ours, theirs) = UnixStream::pair()?;
    // SAFETY: this process is single-threaded, so the child may run any
    // code; `exec_child` still only makes async-signal-safe calls.
    let pid = unsafe { fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        drop(ours);
        exec_child(exec, theirs.as_raw_fd());
    }
    // Also done by the child; doing it on both sides means neither
    // depends on the other having run first (EACCES once it has exec'd).
    // SAFETY: plain integer arguments.
    unsafe { setpgid(pid, pid) };
    drop(theirs);
    let mut report = vec![];
    ours.read_to_end(&mut report)?;
    if let Ok(errno) = <[u8; 4]>::try_from(report.as_slice()) {
        let cmd = OsStr::from_bytes(exec.argv[0].as_bytes());
        eprintln!(
            "{}",
            exec_failure_message(cmd, exec.searching, c_int::from_ne_bytes(errno))
        );
    }
    Ok(pid)
}

/// In the child: own process group (the terminal's foreground one),
/// default signal dispositions, empty signal mask, then exec.
fn exec_child(exec: &Exec, report: c_int) -> ! {
    // SAFETY: setpgid, tcsetpgrp and sigprocmask take plain values and a
    // valid sigset_t. tcsetpgrp from a background group would raise
    // SIGTTOU, but every signal is still blocked here (tcsetpgrp(3)); with
    // no terminal on stdin it fails harmlessly.
    unsafe {
        setpgid(0, 0);
        tcsetpgrp(0, std::process::id() as i32);
    }
    for sig in (1..NSIG).filter(|s| *s != SIGKILL && *s != SIGSTOP) {
        default_disposition(sig);
    }
    // SAFETY: a valid, empty sigset_t; a null old set is allowed.
    unsafe { sigprocmask(SIG_SETMASK, &SigSet::empty(), std::ptr::null_mut()) };
    let mut err = ENOENT;
    for path in &exec.candidates {
        // SAFETY: path and argv are NUL-terminated strings and a
        // null-terminated array of them; environ is the process environment.
        unsafe { execve(path.as_ptr(), exec.argv_ptrs.as_ptr(), environ) };
        match after_exec_error(exec.searching, err, errno()) {
            ControlFlow::Continue(e) => err = e,
            ControlFlow::Break(e) => {
                err = e;
                break;
            }
        }
    }
    let bytes = err.to_ne_bytes();
    // SAFETY: writes 4 bytes from a live buffer, then exits without running
    // the parent's atexit handlers or flushing its buffers.
    unsafe {
        write(report, bytes.as_ptr(), bytes.len());
        _exit(exec_failure_code(err))
    }
}

/// Sets `sig`'s disposition to the default one (an ignored signal stays
/// ignored across execve(2); a handled one is reset by it anyway).
///
/// Through the raw rt_sigaction(2) syscall because glibc's wrappers refuse
/// its two internal signals (32 and 33), and those can arrive ignored:
/// glibc's own posix_spawn(3), which Rust's `Command` uses, sets them to
/// SIG_IGN in the children of a process that handles them.
fn default_disposition(sig: c_int) {
    // The kernel's struct sigaction is at most 4 words on the supported
    // architectures (handler, flags, restorer, mask); all zero means
    // SIG_DFL, no flags, nothing blocked while handling.
    let action = [0 as c_ulong; 4];
    // SAFETY: `action` is a readable kernel sigaction; no old action is
    // asked for.
    unsafe {
        syscall(
            SYS_RT_SIGACTION,
            sig as c_long,
            action.as_ptr(),
            std::ptr::null_mut::<c_ulong>(),
            KERNEL_SIGSET_SIZE,
        )
    };
}

/// Waits for signals until the child `child` has exited; returns its code.
fn supervise(child: i32, set: &SigSet) -> i32 {
    loop {
        let sig = wait_signal(set);
        if sig == SIGCHLD {
            if let Some(code) = reap(child) {
                return code;
            }
        } else {
            forward(child, sig);
        }
    }
}

/// The next pending signal of `set`.
///
/// The signals are blocked rather than handled, and that is enough for pid
/// 1 of a pid namespace to get them: the kernel drops a signal sent to such
/// an init only if its disposition is the default one *and* it is not
/// blocked (pid_namespaces(7); kernel/signal.c, sig_ignored()).
fn wait_signal(set: &SigSet) -> c_int {
    loop {
        // SAFETY: `set` is a valid sigset_t; a null siginfo is allowed.
        let sig = unsafe { sigwaitinfo(set, std::ptr::null_mut()) };
        if sig > 0 {
            return sig;
        }
        if errno() != EINTR {
            eprintln!(
                "berth-init: sigwaitinfo: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
    }
}

/// Reaps every exited child; returns `child`'s exit code if it was one.
fn reap(child: i32) -> Option<i32> {
    let mut code = None;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
        // 0: children left but none exited; -1: none left (ECHILD).
        if pid <= 0 {
            return code;
        }
        if pid == child {
            code = Some(exit_code(status));
        }
    }
}

fn forward(child: i32, sig: c_int) {
    // SAFETY: plain integer arguments.
    if unsafe { kill(child, sig) } < 0 && errno() != ESRCH {
        eprintln!(
            "berth-init: forwarding signal {sig} to {child}: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl SigSet {
    fn full() -> SigSet {
        let mut s = SigSet([0; SIGSET_WORDS]);
        // SAFETY: `s` is a valid sigset_t to fill.
        unsafe { sigfillset(&mut s) };
        s
    }

    fn empty() -> SigSet {
        let mut s = SigSet([0; SIGSET_WORDS]);
        // SAFETY: `s` is a valid sigset_t to clear.
        unsafe { sigemptyset(&mut s) };
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn command_drops_one_leading_double_dash() {
        assert_eq!(
            command(os(&["--", "sh", "-c", "x"])),
            Some(os(&["sh", "-c", "x"]))
        );
        assert_eq!(command(os(&["sh", "--"])), Some(os(&["sh", "--"])));
        assert_eq!(command(os(&["--", "--"])), Some(os(&["--"])));
        assert_eq!(command(os(&["--"])), None);
        assert_eq!(command(vec![]), None);
    }

    #[test]
    fn candidates_follow_path_unless_the_command_has_a_slash() {
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            candidates(OsStr::new("sh"), OsStr::new("/usr/bin:/bin")),
            p(&["/usr/bin/sh", "/bin/sh"])
        );
        assert_eq!(
            candidates(OsStr::new("sh"), OsStr::new(":/bin:")),
            p(&["./sh", "/bin/sh", "./sh"])
        );
        assert_eq!(
            candidates(OsStr::new("./run.sh"), OsStr::new("/bin")),
            p(&["./run.sh"])
        );
        assert_eq!(
            candidates(OsStr::new("/bin/sh"), OsStr::new("/usr/bin")),
            p(&["/bin/sh"])
        );
        assert!(candidates(OsStr::new(""), OsStr::new("/bin")).is_empty());
    }

    /// Folds a sequence of execve errors as the child does.
    fn fold(searching: bool, errors: &[c_int]) -> c_int {
        let mut err = ENOENT;
        for e in errors {
            match after_exec_error(searching, err, *e) {
                ControlFlow::Continue(x) => err = x,
                ControlFlow::Break(x) => return x,
            }
        }
        err
    }

    #[test]
    fn exec_errors_fold_like_execvp() {
        assert_eq!(fold(true, &[]), ENOENT);
        assert_eq!(fold(true, &[ENOENT, ENOTDIR, ENOENT]), ENOENT);
        // A permission error is remembered past later misses.
        assert_eq!(fold(true, &[EACCES, ENOENT]), EACCES);
        assert_eq!(fold(true, &[ENOENT, EACCES]), EACCES);
        // Anything else stops the search (ENOEXEC: not an executable format).
        assert_eq!(fold(true, &[ENOENT, 8, ENOENT]), 8);
        // Without a search the error is the one execve gave.
        assert_eq!(fold(false, &[ENOTDIR]), ENOTDIR);
    }

    #[test]
    fn exec_failures_exit_like_a_shell() {
        assert_eq!(exec_failure_code(ENOENT), 127);
        assert_eq!(exec_failure_code(EACCES), 126);
        assert_eq!(exec_failure_code(ENOTDIR), 126);
        assert_eq!(exec_failure_code(8), 126);
    }

    #[test]
    fn exec_failure_messages_name_the_command() {
        let m = exec_failure_message(OsStr::new("nope"), true, ENOENT);
        assert_eq!(
            m,
            "berth-init: cannot run \"nope\": executable file not found in $PATH"
        );
        let m = exec_failure_message(OsStr::new("/etc/passwd"), false, EACCES);
        assert!(
            m.starts_with("berth-init: cannot run \"/etc/passwd\": "),
            "{m}"
        );
        assert!(m.contains("ermission denied"), "{m}");
    }

    #[test]
    fn wait_statuses_become_exit_codes() {
        // Encodings as in <bits/waitstatus.h>: exit code in bits 8..16,
        // terminating signal in bits 0..7 (bit 7: core dumped).
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(7 << 8), 7);
        assert_eq!(exit_code(255 << 8), 255);
        assert_eq!(exit_code(15), 143);
        assert_eq!(exit_code(9), 137);
        assert_eq!(exit_code(0x80 | 11), 139);
    }

    #[test]
    fn wait_statuses_match_std() {
        use std::os::unix::process::ExitStatusExt;
        for status in [0, 3 << 8, 2, 0x80 | 6] {
            let s = std::process::ExitStatus::from_raw(status);
            let want = s.code().unwrap_or_else(|| 128 + s.signal().unwrap());
            assert_eq!(exit_code(status), want, "status {status:#x}");
        }
    }
}
