//! The container's init, from clone3 to execve. Runs in the child; every
//! step is named so that a failure reaches the user as "container init
//! failed at step X: cause". Order follows the kernel's requirements:
//! namespaces and id maps, cgroup, mounts and pivot_root, masked paths,
//! rlimits, user and capabilities, no_new_privs, seccomp last.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::channel::{Channel, ToChild, ToParent};
use crate::config::Bundle;
use crate::error::{Error, NixContext, Result};
use crate::namespaces::Plan;
use crate::procfs::ProcRoot;
use crate::{capabilities, hooks, mounts, paths, process, rootfs, seccomp, sys, tty};

/// Everything the child needs, prepared by the parent before clone3.
pub struct InitArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    pub plan: &'a Plan,
    pub channel: &'a Channel,
    /// Namespaces to join, opened before the clone.
    pub joins: Vec<(LinuxNamespaceType, OwnedFd)>,
    pub fifo: PathBuf,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// The seccomp filter, compiled by the parent (`linux.seccomp`).
    pub filter: Option<seccomp::Filter>,
}

/// A failure in a named step.
pub struct StepError {
    pub step: &'static str,
    pub error: Error,
}

trait Step<T> {
    fn step(self, name: &'static str) -> std::result::Result<T, StepError>;
}

impl<T> Step<T> for Result<T> {
    fn step(self, step: &'static str) -> std::result::Result<T, StepError> {
        self.map_err(|error| StepError { step, error })
    }
}

/// Set once the init reported ready: errors after that have no listener.
static READY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The child's entry point: never returns.
pub fn child_main(args: InitArgs<'_>) -> ! {
    let channel = args.channel;
    let err = match run(args) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if READY.load(std::sync::atomic::Ordering::Relaxed) {
        // The creator has gone: the error can only reach the container's stderr.
        let msg = format!(
            "berth-runtime: container init failed at step {:?}: {}\n",
            err.step, err.error
        );
        let _ = nix::unistd::write(std::io::stderr(), msg.as_bytes());
    }
    let _ = channel.send(&ToParent::Error {
        step: err.step.to_string(),
        message: err.error.to_string(),
    });
    sys::exit_now(1)
}

fn expect_continue(ch: &Channel) -> Result<String> {
    match ch.recv::<ToChild>()? {
        Some(ToChild::Continue { state_json }) => Ok(state_json),
        Some(other) => Err(Error::Other(format!(
            "unexpected message from the runtime: {other:?}"
        ))),
        None => Err(Error::Other("the runtime went away".into())),
    }
}

fn prctl_pdeathsig(sig: i32) -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) } < 0 {
        return Err(Error::Sys {
            what: "prctl(PR_SET_PDEATHSIG)".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn set_dumpable(on: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong, 0, 0, 0) } < 0 {
        return Err(Error::Sys {
            what: "prctl(PR_SET_DUMPABLE)".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn become_root_in_userns(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let maps_root = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.is_some_and(|m| m.iter().any(|x| x.container_id() == 0))
    };
    if maps_root(linux.and_then(|l| l.gid_mappings().as_ref())) {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .ctx(|| "setresgid(0) in the user namespace".into())?;
    }
    if maps_root(linux.and_then(|l| l.uid_mappings().as_ref())) {
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .ctx(|| "setresuid(0) in the user namespace".into())?;
    }
    Ok(())
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", text)
        .ctx(|| "writing /proc/self/timens_offsets".into())
}

/// Forks the real init into the namespaces that only affect children; the
/// intermediate reports its pid and exits. CLONE_PARENT makes the init a
/// child of the runtime, which can then wait for it.
fn second_fork(ch: &Channel) -> Result<()> {
    // SAFETY: the child is single-threaded (a fork of the single-threaded runtime).
    match unsafe { sys::clone3(sys::CLONE_PARENT, None) }
        .ctx(|| "forking into the new pid/time namespace".into())?
    {
        sys::Forked::Child => Ok(()),
        sys::Forked::Parent { pid, .. } => {
            let _ = ch.send(&ToParent::InitPid(pid));
            sys::exit_now(0)
        }
    }
}

/// Sets `process.oomScoreAdj` through the runtime's private procfs.
pub(crate) fn set_oom_score_adj(adj: Option<i32>, proc: &ProcRoot) -> Result<()> {
    let Some(adj) = adj else { return Ok(()) };
    proc.write("self/oom_score_adj", &adj.to_string())
        .map_err(|e| Error::Other(format!("process.oomScoreAdj {adj}: {e}")))
}

/// Whether setgroups(2) is allowed: not in a user namespace whose
/// `setgroups` file says "deny". Read through the private procfs: a fake
/// "deny" would make the process keep the runtime's groups.
pub(crate) fn may_setgroups(userns: bool, proc: &ProcRoot) -> bool {
    !userns
        || proc
            .read("self/setgroups")
            .map(|s| s.trim() != "deny")
            .unwrap_or(true)
}

fn set_io_priority(p: &oci_spec::runtime::Process) -> Result<()> {
    let Some(prio) = p.io_priority() else {
        return Ok(());
    };
    let class = match prio.class() {
        oci_spec::runtime::IOPriorityClass::IoprioClassRt => 1,
        oci_spec::runtime::IOPriorityClass::IoprioClassBe => 2,
        oci_spec::runtime::IOPriorityClass::IoprioClassIdle => 3,
    };
    let value = (class << 13) | (prio.priority() & 0x1fff);
    // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, 0 = self, value).
    if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) } < 0 {
        return Err(Error::Sys {
            what: "setting process.ioPriority".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn set_hostname(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("sethostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        let c = CString::new(d).map_err(|_| Error::Other("domainname contains NUL".into()))?;
        // SAFETY: setdomainname reads len bytes of a C string we own.
        if unsafe { libc::setdomainname(c.as_ptr(), d.len()) } < 0 {
            return Err(Error::Sys {
                what: format!("setdomainname {d:?}"),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// Waits until `start` opens the exec FIFO: the open for writing blocks
/// until a reader appears. Reached through an fd of the state directory
/// taken before pivot_root (not through /proc, whose per-process files a
/// non-dumpable process in a user namespace may not open).
fn wait_for_start(state_dir: &OwnedFd, fifo_name: &std::ffi::CStr) -> Result<()> {
    let w = nix::fcntl::openat(
        state_dir.as_fd(),
        fifo_name,
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "opening the exec fifo".into())?;
    nix::unistd::write(&w, b"0").ctx(|| "writing the exec fifo".into())?;
    Ok(())
}

/// Receives the seccomp listener fd right after the filter is loaded.
/// Runs under the filter: it must not allocate, and may only make the
/// syscalls `seccomp::compile` keeps out of SCMP_ACT_NOTIFY rules.
pub(crate) type HandOver<'a> = &'a mut dyn FnMut(OwnedFd) -> Result<()>;

fn load_filter(f: &seccomp::Filter, hand_over: HandOver<'_>) -> std::result::Result<(), StepError> {
    if let Some(fd) = f.load().step("loading the seccomp filter")? {
        hand_over(fd).step("handing the seccomp listener its fd")?;
    }
    Ok(())
}

/// Gives the calling process the identity `p` asks for, in the order the
/// kernel requires (runc's): the seccomp filter first when no_new_privs is
/// off (loading it then needs CAP_SYS_ADMIN, which the next steps may
/// drop), the bounding set, groups/gid/uid, the capability sets, the
/// working directory and umask, then no_new_privs and the filter last.
/// Shared by the container's init and `exec`. When the filter has
/// SCMP_ACT_NOTIFY rules, its listener fd goes to `hand_over` as soon as it
/// exists, before any other syscall the listener might have to answer.
pub(crate) fn take_identity(
    p: &oci_spec::runtime::Process,
    filter: Option<&seccomp::Filter>,
    may_setgroups: bool,
    hand_over: HandOver<'_>,
) -> std::result::Result<(), StepError> {
    let nnp = p.no_new_privileges().unwrap_or(false);
    if let (Some(f), false) = (filter, nnp) {
        load_filter(f, hand_over)?;
    }
    if let Some(c) = p.capabilities() {
        capabilities::drop_bounding(c).step("dropping bounding capabilities")?;
    }
    process::switch_user(p, may_setgroups).step("switching user")?;
    let none = oci_spec::runtime::LinuxCapabilities::default();
    capabilities::apply(p.capabilities().as_ref().unwrap_or(&none)).step("setting capabilities")?;
    let cwd = p.cwd();
    nix::unistd::chdir(cwd)
        .ctx(|| format!("chdir {}", cwd.display()))
        .step("entering the working directory")?;
    if let Some(mask) = p.user().umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    if nnp {
        nix::sys::prctl::set_no_new_privs()
            .ctx(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())
            .step("setting no_new_privs")?;
        if let Some(f) = filter {
            load_filter(f, hand_over)?;
        }
    }
    Ok(())
}

fn run(mut a: InitArgs<'_>) -> std::result::Result<std::convert::Infallible, StepError> {
    let ch = a.channel;
    let spec = &a.bundle.spec;
    let process = spec.process().as_ref().expect("validated");
    prctl_pdeathsig(libc::SIGKILL).step("parent death signal")?;
    // Not dumpable: no process of the container can ptrace us or open our
    // /proc files (and so the host binary through /proc/PID/exe). With a
    // new user namespace this waits until the parent has written our id
    // maps through /proc/PID/{uid,gid}_map: a non-dumpable process's /proc
    // files belong to root, which an unprivileged parent is not. No process
    // of the container exists yet in that window.
    if !a.plan.new_user {
        set_dumpable(false).step("marking the init non-dumpable")?;
    }
    expect_continue(ch).step("waiting for the cgroup")?;
    crate::namespaces::join(&a.joins).step("joining namespaces")?;
    if a.plan.unshare_user {
        crate::namespaces::unshare(CloneFlags::CLONE_NEWUSER)
            .step("creating the user namespace")?;
    }
    let mut idmapped = std::collections::HashMap::new();
    if a.plan.new_user {
        ch.send(&ToParent::NeedIdMaps).step("asking for id maps")?;
        loop {
            match ch.recv_with_fd::<ToChild>().step("waiting for id maps")? {
                Some((ToChild::IdMapsWritten, _)) => break,
                Some((ToChild::IdmappedMount { index }, Some(fd))) => {
                    idmapped.insert(index, fd);
                }
                _ => {
                    return Err(StepError {
                        step: "waiting for id maps",
                        error: Error::Other("the runtime did not write the id maps".into()),
                    });
                }
            }
        }
        set_dumpable(false).step("marking the init non-dumpable")?;
        become_root_in_userns(spec).step("becoming root in the user namespace")?;
    }
    crate::namespaces::unshare(a.plan.unshare).step("creating namespaces")?;
    if a.plan.unshare_cgroup {
        crate::namespaces::unshare(CloneFlags::CLONE_NEWCGROUP)
            .step("creating the cgroup namespace")?;
    }
    if a.plan.unshare_time {
        crate::namespaces::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .step("creating the time namespace")?;
        write_time_offsets(spec).step("writing time offsets")?;
    }
    if a.plan.second_fork {
        second_fork(ch).step("forking the init")?;
        prctl_pdeathsig(libc::SIGKILL).step("parent death signal")?;
        set_dumpable(false).step("marking the init non-dumpable")?;
    }
    nix::unistd::setsid()
        .ctx(|| "setsid".into())
        .step("creating a session")?;
    if !a.no_new_keyring {
        let name = CString::new(format!("_ses.{}", a.id)).expect("ids have no NUL");
        sys::join_session_keyring(&name)
            .ctx(|| "joining a new session keyring".into())
            .step("creating a session keyring")?;
    }
    let has_ns = |t| {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| n.iter().any(|n| n.typ() == t))
    };
    let new_ns = |t| {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| n.iter().any(|n| n.typ() == t && n.path().is_none()))
    };
    if new_ns(LinuxNamespaceType::Network) {
        crate::namespaces::loopback_up().step("bringing up the loopback interface")?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let ctx = rootfs::Context {
        bundle: &a.bundle.dir,
        rootfs: &a.bundle.rootfs,
        spec,
        userns: has_ns(LinuxNamespaceType::User),
        cgroupns: new_ns(LinuxNamespaceType::Cgroup),
        idmapped,
    };
    let in_mntns = has_ns(LinuxNamespaceType::Mount);
    if !in_mntns {
        return Err(StepError {
            step: "checking namespaces",
            error: Error::Unsupported("a mount namespace is required".into()),
        });
    }
    let _root = rootfs::prepare(&ctx).step("preparing the rootfs")?;
    ch.send(&ToParent::NeedRuntimeHooks)
        .step("asking for createRuntime hooks")?;
    let state_json = expect_continue(ch).step("waiting for createRuntime hooks")?;
    let hooks = spec.hooks().as_ref();
    hooks::run_all(
        "createContainer",
        hooks
            .and_then(|h| h.create_container().as_deref())
            .unwrap_or_default(),
        &state_json,
    )
    .step("createContainer hooks")?;
    // Handles taken before pivot_root: the host's /dev/null (for masking),
    // and the state directory holding the exec fifo (to wait for `start`).
    let null = std::fs::File::open("/dev/null")
        .ctx(|| "opening /dev/null".into())
        .step("opening /dev/null")?;
    let null_tree = mounts::clone_tree(Path::new(&paths::fd_path(&null)), false)
        .step("taking the host's /dev/null")?;
    let seccomp_spec = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let filter = a.filter.take();
    // Only a filter with SCMP_ACT_NOTIFY rules has a listener to reach
    // (runc ignores listenerPath otherwise).
    let listener = seccomp_spec
        .and_then(|s| s.listener_path().as_ref())
        .filter(|_| filter.as_ref().is_some_and(|f| f.notify()))
        .map(|p| seccomp::connect_listener(p))
        .transpose()
        .step("connecting to the seccomp listener")?;
    let state_dir = a.fifo.parent().unwrap_or(Path::new("/"));
    let state_fd = nix::fcntl::open(
        state_dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("opening {}", state_dir.display()))
    .step("opening the state directory")?;
    let fifo_name = CString::new(a.fifo.file_name().unwrap_or_default().as_encoded_bytes())
        .expect("no NUL in the fifo name");
    if a.no_pivot {
        rootfs::move_root(&a.bundle.rootfs)
    } else {
        rootfs::pivot(&a.bundle.rootfs)
    }
    .step("pivot_root")?;
    // Every procfs write from here on goes through this handle, not the
    // container's /proc.
    let proc = ProcRoot::lazy();
    rootfs::write_sysctls(spec, &proc).step("writing sysctls")?;
    set_hostname(spec).step("setting the hostname")?;
    rootfs::finalize(spec, null_tree.as_fd()).step("masking and read-only paths")?;
    if process.terminal().unwrap_or(false) {
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        let pty = tty::setup(size).step("setting up the terminal")?;
        ch.send_with_fd(&ToParent::ConsoleMaster, Some(pty.master.as_raw_fd()))
            .step("sending the terminal")?;
    }
    set_oom_score_adj(process.oom_score_adj(), &proc).step("setting oomScoreAdj")?;
    let may_setgroups = may_setgroups(has_ns(LinuxNamespaceType::User), &proc);
    drop(proc);
    set_io_priority(process).step("setting the io priority")?;
    let cwd = process.cwd();
    let root_dir = OwnedFd::from(
        std::fs::File::open("/")
            .ctx(|| "opening /".into())
            .step("opening /")?,
    );
    paths::mkdir_all_in_root(root_dir.as_fd(), cwd, 0o755)
        .step("creating the working directory")?;
    process::set_rlimits(process.rlimits().as_deref().unwrap_or_default())
        .step("setting rlimits")?;
    let env = process::with_home(
        process.env().clone().unwrap_or_default(),
        process.user().uid(),
    );
    let args = process.args().clone().unwrap_or_default();
    let exe = process::find_executable(&args[0], &env, cwd).step("finding the executable")?;
    // Cleared before reporting ready: the creator exits once it hears it,
    // and would take the init with it. Were the creator already gone, the
    // send fails and the init exits.
    prctl_pdeathsig(0).step("clearing the parent death signal")?;
    ch.send(&ToParent::Ready).step("reporting ready")?;
    READY.store(true, std::sync::atomic::Ordering::Relaxed);
    // Wait for `start` while still root: the FIFO is reopened through
    // /proc/self/fd, which a non-dumpable process can only use as root.
    wait_for_start(&state_fd, &fifo_name).step("waiting for start")?;
    drop((state_fd, null, null_tree));
    hooks::run_all(
        "startContainer",
        hooks
            .and_then(|h| h.start_container().as_deref())
            .unwrap_or_default(),
        &state_json,
    )
    .step("startContainer hooks")?;
    // The listener's document is built before the filter is loaded: the
    // handover must not allocate.
    let listener_doc = seccomp::process_state(
        &state_json,
        None,
        seccomp_spec.and_then(|s| s.listener_metadata().as_deref()),
    );
    let mut hand_over = |fd: OwnedFd| -> Result<()> {
        let sock = listener.as_ref().ok_or_else(|| {
            Error::Seccomp("SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath".into())
        })?;
        seccomp::send_listener_fd(sock, listener_doc.as_bytes(), fd.as_raw_fd())
    };
    take_identity(process, filter.as_ref(), may_setgroups, &mut hand_over)?;
    drop(listener);
    unblock_signals();
    sys::cloexec_from(3 + a.preserve_fds)
        .ctx(|| "close_range".into())
        .step("closing fds")?;
    Err(StepError {
        step: "exec",
        error: process::exec(&exe, &args, &env),
    })
}

/// The runtime may have blocked signals it proxies; the container starts
/// with an empty mask.
fn unblock_signals() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// Used by tests and `exec`: the path where a container path lands on the host.
pub fn host_path(rootfs: &Path, p: &Path) -> PathBuf {
    rootfs.join(paths::relative(p))
}
