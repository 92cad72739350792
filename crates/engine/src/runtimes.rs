//! The two ways the engine drives an OCI runtime: berth's own runtime
//! library in-process (the default), or any runc-compatible binary (runc,
//! crun, runsc) through the runc command line: `create --bundle`, `start`,
//! `kill`, `delete --force`, `state`. With an external runtime the init is
//! reparented to the caller, which is made a child subreaper
//! (PR_SET_CHILD_SUBREAPER, prctl(2)) before `create`.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result, classify_exec_failure, io};

pub enum Backend {
    Builtin(berth_runtime::Runtime),
    External { binary: PathBuf, root: PathBuf },
}

/// A created container init.
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub console: Option<OwnedFd>,
}

impl Backend {
    /// `runtime`: None for berth's own (state under `builtin_root`).
    pub fn new(runtime: Option<&str>, builtin_root: &Path, external_root: &Path) -> Backend {
        match runtime {
            None => Backend::Builtin(berth_runtime::Runtime::new(builtin_root)),
            Some(b) if b == "berth" || b.is_empty() => {
                Backend::Builtin(berth_runtime::Runtime::new(builtin_root))
            }
            Some(b) => Backend::External {
                binary: PathBuf::from(b),
                root: external_root.to_path_buf(),
            },
        }
    }

    fn ext(&self, binary: &Path, root: &Path, args: &[&str]) -> Result<String> {
        let out = Command::new(binary)
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(io(format!("running {}", binary.display())))?;
        if !out.status.success() {
            return Err(Error::Other(format!(
                "{} {}: {}",
                binary.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates the container from the bundle `bundle`; the init inherits
    /// the caller's fds 0–2 (or gets a pty when the spec asks for one).
    pub fn create(&self, id: &str, bundle: &Path, command: &str) -> Result<Spawned> {
        match self {
            Backend::Builtin(rt) => {
                let opts = berth_runtime::CreateOptions {
                    bundle: bundle.to_path_buf(),
                    ..Default::default()
                };
                let c = rt
                    .create(id, &opts)
                    .map_err(|e| classify_exec_failure(id, command, e))?;
                Ok(Spawned {
                    pid: c.state.pid,
                    pidfd: c.pidfd,
                    console: c.console,
                })
            }
            Backend::External { binary, root } => {
                // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a process attribute.
                unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
                let pid_file = bundle.join("init.pid");
                let _ = std::fs::remove_file(&pid_file);
                // The runtime's own messages go to a log file: its stdio
                // are the container's.
                let log = bundle.join("runtime.log");
                let _ = std::fs::remove_file(&log);
                let status = Command::new(binary)
                    .arg("--root")
                    .arg(root)
                    .arg("--log")
                    .arg(&log)
                    .args(["create", "--bundle"])
                    .arg(bundle)
                    .arg("--pid-file")
                    .arg(&pid_file)
                    .arg(id)
                    .status()
                    .map_err(io(format!("running {}", binary.display())))?;
                if !status.success() {
                    let msg = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(Error::Other(format!(
                        "container {id}: {} create failed with {status}: {}",
                        binary.display(),
                        msg.trim()
                    )));
                }
                let pid: i32 = std::fs::read_to_string(&pid_file)
                    .map_err(io(format!("reading {}", pid_file.display())))?
                    .trim()
                    .parse()
                    .map_err(|_| Error::Other(format!("{}: bad pid file", binary.display())))?;
                let pidfd = pidfd_open(pid)?;
                Ok(Spawned {
                    pid,
                    pidfd,
                    console: None,
                })
            }
        }
    }

    pub fn start(&self, id: &str) -> Result<()> {
        match self {
            Backend::Builtin(rt) => Ok(rt.start(id)?),
            Backend::External { binary, root } => self.ext(binary, root, &["start", id]).map(drop),
        }
    }

    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        match self {
            Backend::Builtin(rt) => Ok(rt.kill(id, signal, all)?),
            Backend::External { binary, root } => {
                let sig = signal.to_string();
                let mut args = vec!["kill"];
                if all {
                    args.push("--all");
                }
                args.extend([id, sig.as_str()]);
                self.ext(binary, root, &args).map(drop)
            }
        }
    }

    /// Freezes (`pause`) or thaws (`resume`) every process of the container
    /// through its cgroup's freezer.
    pub fn freeze(&self, id: &str, frozen: bool) -> Result<()> {
        match self {
            Backend::Builtin(rt) if frozen => Ok(rt.pause(id)?),
            Backend::Builtin(rt) => Ok(rt.resume(id)?),
            Backend::External { binary, root } => {
                let op = if frozen { "pause" } else { "resume" };
                self.ext(binary, root, &[op, id]).map(drop)
            }
        }
    }

    /// Removes the runtime state (killing what is left); a missing
    /// container is not an error.
    pub fn delete(&self, id: &str) -> Result<()> {
        match self {
            Backend::Builtin(rt) => match rt.delete(id, true) {
                Ok(()) | Err(berth_runtime::Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            },
            Backend::External { binary, root } => {
                match self.ext(binary, root, &["delete", "--force", id]) {
                    Ok(_) => Ok(()),
                    Err(Error::Other(m)) if m.contains("not exist") || m.contains("not found") => {
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Whether the runtime knows the container.
    pub fn exists(&self, id: &str) -> bool {
        match self {
            Backend::Builtin(rt) => rt.state(id).is_ok(),
            Backend::External { binary, root } => self.ext(binary, root, &["state", id]).is_ok(),
        }
    }
}

pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Error::Io {
            what: format!("pidfd_open {pid}"),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
