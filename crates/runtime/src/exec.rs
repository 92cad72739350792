//! `exec`: a new process inside a running container. The runtime forks a
//! child that joins the container's namespaces (user first, mount last),
//! forks once more so the process is inside the pid namespace, takes the
//! container's identity (user, capabilities, no_new_privs, seccomp) and
//! execs. Its seccomp filter is a new one: with SCMP_ACT_NOTIFY rules its
//! listener fd comes back over the channel and the runtime, in its own
//! namespaces, sends it to `listenerPath` (as runc does). The channel is
//! close-on-exec: end-of-file means the exec worked; anything else is the
//! error of a named step.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::channel::{self, Channel, ToChild, ToParent};
use crate::container::Runtime;
use crate::error::{Error, NixContext, Result};
use crate::namespaces::proc_name;
use crate::procfs::ProcRoot;
use crate::state::Status;
use crate::{process, seccomp, sys, tty};

#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
}

pub struct Executed {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub console: Option<OwnedFd>,
}

/// What `exec ID ARGS...` runs: the container's process with these changes
/// (as runc builds it from its flags).
#[derive(Debug, Default, Clone)]
pub struct ProcessOverrides {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `uid[:gid]`
    pub user: Option<String>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub tty: bool,
}

/// Builds the process for `exec` with arguments instead of `--process`.
pub fn process_from_overrides(spec: &Spec, o: &ProcessOverrides) -> Result<Process> {
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| Error::Other("the container has no process".into()))?;
    if o.args.is_empty() {
        return Err(Error::Process("exec needs a command".into()));
    }
    p.set_args(Some(o.args.clone()));
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(o.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    if let Some(u) = &o.user {
        let (uid, gid) = match u.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (u.as_str(), None),
        };
        let uid: u32 = uid
            .parse()
            .map_err(|_| Error::Process(format!("--user {u}: expected uid[:gid] numbers")))?;
        let gid: u32 = gid
            .map(|g| g.parse())
            .transpose()
            .map_err(|_| Error::Process(format!("--user {u}: expected uid[:gid] numbers")))?
            .unwrap_or(0);
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        p.set_user(user);
    }
    if !o.caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        for name in &o.caps {
            let name = if name.starts_with("CAP_") {
                name.clone()
            } else {
                format!("CAP_{name}")
            };
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| Error::Process(format!("--cap {name}: unknown capability")))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            c.set_bounding(add(c.bounding()));
            c.set_effective(add(c.effective()));
            c.set_permitted(add(c.permitted()));
        }
        p.set_capabilities(Some(c));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    p.set_terminal(Some(o.tty));
    Ok(p)
}

/// The namespaces of the container's init that differ from ours, opened.
fn container_namespaces(pid: i32, spec: &Spec) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    let order = [
        LinuxNamespaceType::User,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Time,
        LinuxNamespaceType::Mount,
    ];
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut out = vec![];
    for t in order {
        if !configured.iter().any(|n| n.typ() == t) {
            continue;
        }
        let theirs = format!("/proc/{pid}/ns/{}", proc_name(t));
        let mine = format!("/proc/self/ns/{}", proc_name(t));
        if std::fs::read_link(&theirs).ok() == std::fs::read_link(&mine).ok() {
            continue;
        }
        let f = std::fs::File::open(&theirs).map_err(|e| Error::Sys {
            what: format!("opening {theirs}"),
            source: e,
        })?;
        out.push((t, OwnedFd::from(f)));
    }
    Ok(out)
}

impl Runtime {
    pub fn exec(&self, id: &str, p: &Process, opts: &ExecOptions) -> Result<Executed> {
        let (_, st, status) = self.load(id)?;
        if !matches!(status, Status::Running | Status::Created) {
            return Err(Error::WrongState {
                op: "exec in",
                id: id.into(),
                status: status.to_string(),
                hint: "",
            });
        }
        if p.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::Process("process.args must not be empty".into()));
        }
        crate::process::check_rlimits(p.rlimits().as_deref().unwrap_or_default())?;
        let filter = st
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .map(seccomp::compile)
            .transpose()?;
        // The listener is reached from the runtime's namespaces, as for the
        // init; the exec'd process sends its fd back over the channel.
        let listener = match (&filter, seccomp_listener_path(&st.config)) {
            (Some(f), Some(path)) if f.notify() => Some(seccomp::connect_listener(&path)?),
            _ => None,
        };
        let nss = container_namespaces(st.pid, &st.config)?;
        let (parent_ch, child_ch) = channel::pair()?;
        let cgroup_fd = crate::cgroup::exec_clone_fd(&st)?;
        // SAFETY: berth-runtime is single-threaded here.
        let forked = unsafe { sys::clone3(0, cgroup_fd.as_ref().map(|f| f.as_fd())) }
            .ctx(|| "clone3 for exec".into())?;
        let (child_pid, _child_pidfd) = match forked {
            sys::Forked::Child => {
                drop(parent_ch);
                let e = exec_child(
                    &child_ch,
                    &nss,
                    p,
                    filter.as_ref(),
                    &st.config,
                    opts.preserve_fds,
                );
                let _ = child_ch.send(&ToParent::Error {
                    step: e.0.to_string(),
                    message: e.1.to_string(),
                });
                sys::exit_now(1)
            }
            sys::Forked::Parent { pid, pidfd } => (pid, pidfd),
        };
        drop(child_ch);
        drop(nss);
        crate::cgroup::add_exec(&st, child_pid)?;
        parent_ch.send(&ToChild::Continue {
            state_json: String::new(),
        })?;
        let mut pid = None;
        let mut pidfd = None;
        let mut console = None;
        // The listener fd may arrive before the pid it must be sent with.
        let mut listener_fd: Option<OwnedFd> = None;
        loop {
            if let (Some(p), Some(fd)) = (pid, listener_fd.take()) {
                deliver_listener_fd(listener.as_ref(), &st, status, p, &fd)?;
                parent_ch.send(&ToChild::ListenerDelivered)?;
            }
            match parent_ch.recv_with_fd::<ToParent>()? {
                Some((ToParent::SeccompListener, fd)) => {
                    listener_fd = Some(fd.ok_or_else(|| {
                        Error::Other("the exec process sent no seccomp listener fd".into())
                    })?);
                }
                Some((ToParent::InitPid(p), _)) => {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child_pid), None);
                    pidfd = Some(sys::pidfd_open(p).ctx(|| format!("pidfd_open {p}"))?);
                    pid = Some(p);
                }
                Some((ToParent::ConsoleMaster, fd)) => {
                    let fd = fd.ok_or_else(|| {
                        Error::Other("the exec process sent no terminal fd".into())
                    })?;
                    match &opts.console_socket {
                        Some(path) => crate::container::send_console(path, &fd)?,
                        None => console = Some(fd),
                    }
                }
                Some((ToParent::Error { step, message }, _)) => {
                    if let Some(p) = pid {
                        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(p), None);
                    } else {
                        let _ =
                            nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child_pid), None);
                    }
                    return Err(Error::Init {
                        step: format!("exec: {step}"),
                        message,
                    });
                }
                Some((other, _)) => {
                    return Err(Error::Other(format!(
                        "unexpected message from the exec process: {other:?}"
                    )));
                }
                // End of file: the process exec'd (the channel is close-on-exec).
                None => break,
            }
        }
        let (pid, pidfd) = match (pid, pidfd) {
            (Some(p), Some(f)) => (p, f),
            _ => {
                return Err(Error::Other(
                    "the exec process exited before reporting its pid".into(),
                ));
            }
        };
        if let Some(path) = &opts.pid_file {
            crate::container::write_pid_file(path, pid)?;
        }
        Ok(Executed {
            pid,
            pidfd,
            console,
        })
    }
}

/// Sends the exec'd process's seccomp listener fd to the listener, with
/// the containerProcessState naming that process.
fn deliver_listener_fd(
    sock: Option<&std::os::unix::net::UnixStream>,
    st: &crate::state::State,
    status: Status,
    pid: i32,
    fd: &OwnedFd,
) -> Result<()> {
    let sock = sock
        .ok_or_else(|| Error::Seccomp("SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath".into()))?;
    let doc = seccomp::process_state(
        &serde_json::to_string(&st.public(status)).expect("serializes"),
        Some(pid),
        seccomp_listener_metadata(&st.config).as_deref(),
    );
    seccomp::send_listener_fd(sock, doc.as_bytes(), fd.as_raw_fd())
}

fn seccomp_listener_path(spec: &Spec) -> Option<PathBuf> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_path().clone())
}

fn seccomp_listener_metadata(spec: &Spec) -> Option<String> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_metadata().clone())
}

type StepFail = (&'static str, Error);

fn step<T>(name: &'static str, r: Result<T>) -> std::result::Result<T, StepFail> {
    r.map_err(|e| (name, e))
}

fn exec_child(
    ch: &Channel,
    nss: &[(LinuxNamespaceType, OwnedFd)],
    p: &Process,
    filter: Option<&seccomp::Filter>,
    spec: &Spec,
    preserve_fds: i32,
) -> StepFail {
    match exec_child_steps(ch, nss, p, filter, spec, preserve_fds) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn exec_child_steps(
    ch: &Channel,
    nss: &[(LinuxNamespaceType, OwnedFd)],
    p: &Process,
    filter: Option<&seccomp::Filter>,
    spec: &Spec,
    preserve_fds: i32,
) -> std::result::Result<std::convert::Infallible, StepFail> {
    // SAFETY: prctl with integer arguments; not dumpable, so the container
    // cannot reach the host binary through /proc/PID/exe while we set up.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    match ch.recv::<ToChild>() {
        Ok(Some(ToChild::Continue { .. })) => {}
        _ => {
            return Err((
                "waiting for the cgroup",
                Error::Other("the runtime went away".into()),
            ));
        }
    }
    step("joining namespaces", crate::namespaces::join(nss))?;
    // Joining pid and time namespaces affects children only: fork.
    // SAFETY: single-threaded child.
    let forked = unsafe { sys::clone3(sys::CLONE_PARENT, None) };
    match step(
        "forking into the pid namespace",
        forked.ctx(|| "clone3".into()),
    )? {
        sys::Forked::Child => {}
        sys::Forked::Parent { pid, .. } => {
            let _ = ch.send(&ToParent::InitPid(pid));
            sys::exit_now(0)
        }
    }
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if p.terminal().unwrap_or(false) {
        step(
            "creating a session",
            nix::unistd::setsid().ctx(|| "setsid".into()),
        )?;
        let size = p
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        let pty = step("setting up the terminal", tty::setup(size))?;
        step(
            "sending the terminal",
            ch.send_with_fd(&ToParent::ConsoleMaster, Some(pty.master.as_raw_fd())),
        )?;
    }
    step(
        "setting rlimits",
        process::set_rlimits(p.rlimits().as_deref().unwrap_or_default()),
    )?;
    // The container's /proc is the container's: it may have mounted over
    // it. procfs goes through a private instance.
    let proc = ProcRoot::lazy();
    step(
        "setting oomScoreAdj",
        crate::init::set_oom_score_adj(p.oom_score_adj(), &proc),
    )?;
    let userns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| n.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    let may_setgroups = crate::init::may_setgroups(userns, &proc);
    drop(proc);
    // Built before the filter is loaded: the handover must not allocate.
    let listener_msg = serde_json::to_vec(&ToParent::SeccompListener).expect("serializes");
    let mut hand_over = |fd: OwnedFd| -> Result<()> {
        channel::send_fd_raw(ch.raw_fd(), &listener_msg, fd.as_raw_fd()).map_err(|source| {
            Error::Sys {
                what: "sending the seccomp listener fd to the runtime".into(),
                source,
            }
        })?;
        drop(fd);
        match ch.recv::<ToChild>()? {
            Some(ToChild::ListenerDelivered) => Ok(()),
            _ => Err(Error::Other(
                "the runtime did not deliver the seccomp listener fd".into(),
            )),
        }
    };
    crate::init::take_identity(p, filter, may_setgroups, &mut hand_over)
        .map_err(|e| (e.step, e.error))?;
    let env = process::with_home(p.env().clone().unwrap_or_default(), p.user().uid());
    let args = p.args().clone().unwrap_or_default();
    let exe = step(
        "finding the executable",
        process::find_executable(&args[0], &env, p.cwd()),
    )?;
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    step(
        "closing fds",
        sys::cloexec_from(3 + preserve_fds).ctx(|| "close_range".into()),
    )?;
    Err(("exec", process::exec(&exe, &args, &env)))
}
