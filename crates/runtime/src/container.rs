//! The lifecycle operations of the runtime spec (create, start, state,
//! kill, delete) plus list, on top of a state root directory. Each is a
//! separate process invocation in the CLI; everything they share goes
//! through the state directory.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::channel::{self, ToChild, ToParent};
use crate::config::{self, Bundle};
use crate::error::{Error, NixContext, Result};
use crate::init::{self, InitArgs};
use crate::namespaces::{self, Plan};
use crate::state::{self, State, StateDir, Status};
use crate::{hooks, sys};

pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

/// Options of `create`.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
}

/// A created container, as seen by the process that created it.
pub struct Created {
    pub state: State,
    /// A pidfd of the init, for the creator to wait on (foreground `run`).
    pub pidfd: OwnedFd,
    /// The pty master when the process has a terminal and no console socket took it.
    pub console: Option<OwnedFd>,
}

pub struct Runtime {
    pub root: PathBuf,
}

fn owner() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn dir(&self, id: &str) -> Result<StateDir> {
        crate::id::validate(id)?;
        Ok(StateDir::new(&self.root, id))
    }

    /// Loads a container's state and computes its status.
    pub fn load(&self, id: &str) -> Result<(StateDir, State, Status)> {
        let dir = self.dir(id)?;
        if !dir.path.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        let state = dir.load(id)?;
        let status = self.status(&dir, &state);
        Ok((dir, state, status))
    }

    pub fn status(&self, dir: &StateDir, s: &State) -> Status {
        if !state::init_alive(s) {
            return Status::Stopped;
        }
        if crate::cgroup::is_paused(s) {
            return Status::Paused;
        }
        if dir.fifo().exists() {
            return Status::Created;
        }
        Status::Running
    }

    /// `create`: validates everything, then clones the init, which sets the
    /// container up and blocks before execve until `start`.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Created> {
        crate::id::validate(id)?;
        let bundle = config::load(&opts.bundle)?;
        let filter = preflight(&bundle)?;
        let dir = StateDir::claim(&self.root, id)?;
        match self.create_in(id, &dir, &bundle, opts, filter) {
            Ok(c) => Ok(c),
            Err(e) => {
                let _ = dir.remove();
                Err(e)
            }
        }
    }

    fn create_in(
        &self,
        id: &str,
        dir: &StateDir,
        bundle: &Bundle,
        opts: &CreateOptions,
        filter: Option<crate::seccomp::Filter>,
    ) -> Result<Created> {
        let spec = &bundle.spec;
        let linux = spec.linux().as_ref().expect("validated");
        let nss = linux.namespaces().clone().unwrap_or_default();
        let plan = Plan::new(&nss);
        nix::unistd::mkfifo(&dir.fifo(), nix::sys::stat::Mode::from_bits_truncate(0o622))
            .ctx(|| "creating the exec fifo".into())?;
        // Writable by the init whatever uid it has on the host (a user
        // namespace may not map host root); the umask must not narrow it.
        std::fs::set_permissions(
            dir.fifo(),
            std::os::unix::fs::PermissionsExt::from_mode(0o622),
        )
        .ctx(|| "chmod the exec fifo".into())?;
        let cgroup = crate::cgroup::Cgroup::create(id, spec)?;
        let joins = namespaces::open_joins(&plan.join)?;
        let (parent_ch, child_ch) = channel::pair()?;
        let clone_into = cgroup.clone_into_fd()?;
        // SAFETY: berth-runtime is single-threaded when it creates a container.
        let forked = unsafe {
            sys::clone3(
                plan.clone.bits() as u64,
                clone_into.as_ref().map(|f| f.as_fd()),
            )
        }
        .ctx(|| format!("clone3 with {:?}", plan.clone))?;
        let (child_pid, child_pidfd) = match forked {
            sys::Forked::Child => {
                drop(parent_ch);
                init::child_main(InitArgs {
                    id,
                    bundle,
                    plan: &plan,
                    channel: &child_ch,
                    joins,
                    fifo: dir.fifo(),
                    no_pivot: opts.no_pivot,
                    no_new_keyring: opts.no_new_keyring,
                    preserve_fds: opts.preserve_fds,
                    filter,
                })
            }
            sys::Forked::Parent { pid, pidfd } => (pid, pidfd),
        };
        drop(child_ch);
        drop(joins);
        let mut guard = ChildGuard {
            pidfd: Some(&child_pidfd),
            pid: child_pid,
            init: None,
            cgroup: Some(&cgroup),
        };
        cgroup.add(child_pid)?;
        parent_ch.send(&ToChild::Continue {
            state_json: String::new(),
        })?;
        let mut init_pid = child_pid;
        let mut console = None;
        let mut init_pidfd: Option<OwnedFd> = None;
        let mut state = State {
            oci_version: spec.version().clone(),
            id: id.to_string(),
            pid: init_pid,
            pid_start: 0,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: state::now_rfc3339(),
            owner: owner(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            config: spec.clone(),
            cgroup: cgroup.to_state(),
            cgroup_paths: cgroup.paths(),
            started: false,
        };
        loop {
            let msg = parent_ch.recv_with_fd::<ToParent>()?;
            match msg {
                Some((ToParent::NeedIdMaps, _)) => {
                    namespaces::write_id_maps(
                        child_pid,
                        linux.uid_mappings().as_deref().unwrap_or_default(),
                        linux.gid_mappings().as_deref().unwrap_or_default(),
                    )?;
                    send_idmapped_mounts(&parent_ch, bundle, child_pid)?;
                    parent_ch.send(&ToChild::IdMapsWritten)?;
                }
                Some((ToParent::InitPid(pid), _)) => {
                    // Reap the intermediate; the init (CLONE_PARENT) is our child too.
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child_pid), None);
                    init_pid = pid;
                    let fd = sys::pidfd_open(pid).ctx(|| format!("pidfd_open {pid}"))?;
                    init_pidfd = Some(fd);
                    guard.init = init_pidfd.as_ref().map(|f| f.as_raw_fd());
                }
                Some((ToParent::NeedRuntimeHooks, _)) => {
                    state.pid = init_pid;
                    let json =
                        serde_json::to_string(&state.public(Status::Creating)).expect("serializes");
                    let h = spec.hooks().as_ref();
                    hooks::run_all(
                        "prestart",
                        h.and_then(|h| h.prestart().as_deref()).unwrap_or_default(),
                        &json,
                    )?;
                    hooks::run_all(
                        "createRuntime",
                        h.and_then(|h| h.create_runtime().as_deref())
                            .unwrap_or_default(),
                        &json,
                    )?;
                    parent_ch.send(&ToChild::Continue { state_json: json })?;
                }
                Some((ToParent::ConsoleMaster, fd)) => {
                    let fd =
                        fd.ok_or_else(|| Error::Other("the init sent no terminal fd".into()))?;
                    match &opts.console_socket {
                        Some(path) => send_console(path, &fd)?,
                        None => console = Some(fd),
                    }
                }
                Some((ToParent::Ready, _)) => break,
                Some((ToParent::SeccompListener, _)) => {
                    return Err(Error::Other(
                        "the init sent its seccomp listener to the runtime; it sends it to the listener itself".into(),
                    ));
                }
                Some((ToParent::Error { step, message }, _)) => {
                    return Err(Error::Init { step, message });
                }
                None => {
                    return Err(Error::Init {
                        step: "unknown".into(),
                        message: "the container init exited without reporting an error".into(),
                    });
                }
            }
        }
        state.pid = init_pid;
        state.pid_start = state::proc_stat(init_pid)
            .map(|s| s.start_time)
            .ok_or_else(|| Error::Other(format!("the container init {init_pid} vanished")))?;
        dir.save(&state)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, init_pid)?;
        }
        guard.disarm();
        drop(guard);
        cgroup.keep();
        let pidfd = match init_pidfd {
            Some(fd) => fd,
            None => child_pidfd,
        };
        Ok(Created {
            state,
            pidfd,
            console,
        })
    }

    /// `start`: releases the init blocked on the exec FIFO, then runs the
    /// poststart hooks.
    pub fn start(&self, id: &str) -> Result<()> {
        let (dir, mut st, status) = self.load(id)?;
        if status != Status::Created {
            return Err(Error::WrongState {
                op: "start",
                id: id.into(),
                status: status.to_string(),
                hint: "; only a created container can be started",
            });
        }
        release_fifo(&dir.fifo(), &st)?;
        let _ = std::fs::remove_file(dir.fifo());
        st.started = true;
        dir.save(&st)?;
        let json = serde_json::to_string(&st.public(Status::Running)).expect("serializes");
        let hooks = st
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
            .unwrap_or_default();
        if let Err(e) = hooks::run_all("poststart", &hooks, &json) {
            // A failed poststart hook stops the container (as runc does).
            let _ = self.kill(id, libc::SIGKILL, false);
            return Err(e);
        }
        Ok(())
    }

    /// The OCI state document.
    pub fn state(&self, id: &str) -> Result<state::PublicState> {
        let (_, st, status) = self.load(id)?;
        Ok(st.public(status))
    }

    /// Sends `signal` to the init (or, with `all`, to every process of the
    /// container), through pidfds checked against the recorded start time.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let (_, st, status) = self.load(id)?;
        if status == Status::Stopped {
            return Err(Error::WrongState {
                op: "kill",
                id: id.into(),
                status: status.to_string(),
                hint: "",
            });
        }
        if all {
            return crate::cgroup::signal_all(&st, signal);
        }
        let fd = open_init(&st)?.ok_or_else(|| Error::WrongState {
            op: "kill",
            id: id.into(),
            status: "stopped".into(),
            hint: "",
        })?;
        sys::pidfd_send_signal(fd.as_fd(), signal).ctx(|| format!("signal {signal} to {}", st.pid))
    }

    /// `delete`: refuses a running container unless `force` (which kills it);
    /// then removes the cgroup and state directory and runs poststop hooks.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let dir = self.dir(id)?;
        if !dir.path.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        let st = match dir.load(id) {
            Ok(st) => st,
            // A state dir without state: a create that crashed midway.
            Err(Error::NotFound(_)) => return dir.remove(),
            Err(e) => return Err(e),
        };
        let status = self.status(&dir, &st);
        match status {
            Status::Stopped => {}
            Status::Created => kill_and_wait(&st)?,
            _ if force => {
                crate::cgroup::thaw(&st);
                kill_and_wait(&st)?;
            }
            _ => {
                return Err(Error::WrongState {
                    op: "delete",
                    id: id.into(),
                    status: status.to_string(),
                    hint: "; stop it first or use --force",
                });
            }
        }
        crate::cgroup::destroy(&st)?;
        dir.remove()?;
        let json = serde_json::to_string(&st.public(Status::Stopped)).expect("serializes");
        let hooks = st
            .config
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
            .unwrap_or_default();
        if let Err(e) = hooks::run_all("poststop", &hooks, &json) {
            eprintln!("warning: {e}");
        }
        Ok(())
    }

    /// Every container under the root, with its status.
    pub fn list(&self) -> Result<Vec<(State, Status)>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => {
                return Err(Error::Read {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        let mut out = vec![];
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if crate::id::validate(&id).is_err() {
                continue;
            }
            if let Ok((_, st, status)) = self.load(&id) {
                out.push((st, status));
            }
        }
        out.sort_by(|a, b| a.0.created.cmp(&b.0.created));
        Ok(out)
    }

    /// Pids of the container's processes.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        let (_, st, status) = self.load(id)?;
        if status == Status::Stopped {
            return Ok(vec![]);
        }
        crate::cgroup::pids(&st)
    }
}

/// For each bind mount with the `idmap`/`ridmap` option: a detached clone
/// of its source, idmapped with the child's new user namespace
/// (mount_setattr(2), MOUNT_ATTR_IDMAP), sent to the child to attach. Files
/// owned by host uid H then appear as the container id that H maps to, so
/// nothing needs to be chowned.
fn send_idmapped_mounts(ch: &channel::Channel, bundle: &Bundle, child: i32) -> Result<()> {
    let mounts = bundle.spec.mounts().as_deref().unwrap_or_default();
    let mut userns: Option<std::os::fd::OwnedFd> = None;
    for (index, m) in mounts.iter().enumerate() {
        let opts = crate::mounts::parse_options(m.options().as_deref().unwrap_or_default());
        if !(opts.idmap && opts.bind) {
            continue;
        }
        // The mount's own maps (runtime-spec 1.1) or the container's.
        let own_ns = match (m.uid_mappings(), m.gid_mappings(), &opts.idmap_value) {
            (Some(u), Some(g), _) if !u.is_empty() => {
                Some(namespaces::detached_user_namespace(u, g)?)
            }
            (_, _, Some(value)) => {
                let (u, g) = crate::mounts::parse_idmap_value(value).map_err(Error::Other)?;
                // crun's triplets are id map lines: FS (inside), HOST, SIZE.
                let lines = |r: &[crate::mounts::IdmapRange]| -> Vec<_> {
                    r.iter()
                        .map(|&(fs, host, n)| namespaces::id_mapping(fs, host, n))
                        .collect()
                };
                Some(namespaces::detached_user_namespace(&lines(&u), &lines(&g))?)
            }
            _ => None,
        };
        if own_ns.is_none() && userns.is_none() {
            let p = format!("/proc/{child}/ns/user");
            userns = Some(
                std::fs::File::open(&p)
                    .ctx(|| format!("opening {p}"))?
                    .into(),
            );
        }
        let ns = match (&own_ns, &userns) {
            (Some(fd), _) | (None, Some(fd)) => fd.as_fd(),
            (None, None) => unreachable!("opened above"),
        };
        let dest = m.destination().display().to_string();
        let source = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::Other(format!("mount {dest}: bind mount without source")))?;
        let source = crate::mounts::bind_source(&bundle.dir, source);
        let tree = crate::mounts::clone_tree(&source, opts.recursive)?;
        crate::mounts::set_attr(
            tree.as_fd(),
            opts.attr_set,
            opts.attr_clr,
            0,
            Some(ns),
            opts.attr_recursive || opts.recursive,
            &dest,
        )
        .map_err(|e| {
            Error::Unsupported(format!(
                "mount {dest}: idmapped mounts need kernel and filesystem support: {e}"
            ))
        })?;
        ch.send_with_fd(&ToChild::IdmappedMount { index }, Some(tree.as_raw_fd()))?;
    }
    Ok(())
}

/// Checks against the host that need no side effects: rlimits, LSM
/// fields, the seccomp filter — compiled here once; the init, a copy of
/// this process, loads the same program.
fn preflight(bundle: &Bundle) -> Result<Option<crate::seccomp::Filter>> {
    let p = bundle.spec.process().as_ref().expect("validated");
    crate::process::check_rlimits(p.rlimits().as_deref().unwrap_or_default())?;
    if p.apparmor_profile()
        .as_deref()
        .is_some_and(|s| !s.is_empty())
        && !Path::new("/sys/kernel/security/apparmor").exists()
    {
        return Err(Error::Unsupported(
            "process.apparmorProfile is set but AppArmor is not enabled on this host".into(),
        ));
    }
    if p.apparmor_profile()
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(Error::Unsupported(
            "process.apparmorProfile: AppArmor profiles are not supported by berth-runtime yet"
                .into(),
        ));
    }
    if p.selinux_label().as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::Unsupported(
            if Path::new("/sys/fs/selinux/enforce").exists() {
                "process.selinuxLabel: SELinux labels are not supported by berth-runtime yet".into()
            } else {
                "process.selinuxLabel is set but SELinux is not enabled on this host".into()
            },
        ));
    }
    if let Some(l) = bundle.spec.linux().as_ref() {
        if l.mount_label().as_deref().is_some_and(|s| !s.is_empty())
            && !Path::new("/sys/fs/selinux/enforce").exists()
        {
            return Err(Error::Unsupported(
                "linux.mountLabel is set but SELinux is not enabled on this host".into(),
            ));
        }
        if let Some(s) = l.seccomp() {
            return crate::seccomp::compile(s).map(Some);
        }
    }
    Ok(None)
}

/// Kills what `create` started if it fails midway.
struct ChildGuard<'a> {
    pidfd: Option<&'a OwnedFd>,
    pid: i32,
    init: Option<i32>,
    cgroup: Option<&'a crate::cgroup::Cgroup>,
}

impl ChildGuard<'_> {
    fn disarm(&mut self) {
        self.pidfd = None;
        self.cgroup = None;
    }
}

impl Drop for ChildGuard<'_> {
    fn drop(&mut self) {
        if let Some(fd) = self.pidfd {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
            if let Some(init) = self.init {
                // SAFETY: init is a dup'd raw pidfd number we still hold open.
                let _ = sys::pidfd_send_signal(
                    unsafe { std::os::fd::BorrowedFd::borrow_raw(init) },
                    libc::SIGKILL,
                );
            }
            reap_children();
        }
        if let Some(cg) = self.cgroup {
            let _ = cg.destroy();
        }
    }
}

/// Reaps every exited child without blocking (the init forked with
/// CLONE_PARENT is ours to reap).
fn reap_children() {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}

/// Hands the pty master to `--console-socket` as runc does.
pub(crate) fn send_console(path: &Path, fd: &OwnedFd) -> Result<()> {
    let sock = std::os::unix::net::UnixStream::connect(path).map_err(|e| Error::Sys {
        what: format!("connecting to the console socket {}", path.display()),
        source: e,
    })?;
    channel::send_fd_to_socket(sock.as_raw_fd(), b"/dev/ptmx", fd.as_raw_fd())
}

/// Write-new-then-rename, so a reader never sees half a pid.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string()).map_err(|source| Error::Write {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A pidfd of the init if it is still the process we created.
pub fn open_init(st: &State) -> Result<Option<OwnedFd>> {
    let fd = match sys::pidfd_open(st.pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => {
            return Err(Error::Sys {
                what: format!("pidfd_open {}", st.pid),
                source: e,
            });
        }
    };
    // The pidfd pins the process: if the start time still matches now, the
    // fd refers to our init and not to a process that reused its pid.
    Ok(state::init_alive(st).then_some(fd))
}

/// SIGKILL the init and wait (bounded) until it is gone.
fn kill_and_wait(st: &State) -> Result<()> {
    let Some(fd) = open_init(st)? else {
        return Ok(());
    };
    let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)) {
        Ok(n) if n > 0 => Ok(()),
        _ => Err(Error::Other(format!(
            "container init {} did not die after SIGKILL",
            st.pid
        ))),
    }
}

/// Opens the exec FIFO for reading (which lets the init's blocked open
/// complete) and reads the byte it writes; fails if the init dies instead.
fn release_fifo(fifo: &Path, st: &State) -> Result<()> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("opening {}", fifo.display()))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut buf = [0u8; 1];
        match nix::unistd::read(&fd, &mut buf) {
            Ok(1) => return Ok(()),
            Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
            Err(e) => {
                return Err(Error::Sys {
                    what: "reading the exec fifo".into(),
                    source: e.into(),
                });
            }
        }
        if !state::init_alive(st) {
            return Err(Error::Other(format!(
                "container {} exited before it could be started",
                st.id
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "container {} did not start within 30s",
                st.id
            )));
        }
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(20u16));
    }
}
