//! RUN steps in a real container: berth's OCI runtime in-process. The step's
//! rootfs (a mounted snapshot) gets an OCI bundle next to it; the container
//! has its own pid, mount, ipc, uts and network namespace (no network:
//! RUN steps are offline), Docker's default capability set, and the step's
//! env, workdir and user. Its stdout/stderr go through a pipe that the build
//! streams to its output and keeps the tail of for error messages.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_image::containerfile::{ExecError, Executor, RunRequest};
use berth_runtime::{CreateOptions, Runtime};
use serde_json::{Value, json};

use super::inroot::Root;
use super::users;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How much of a failing step's output its error repeats.
const TAIL: usize = 4096;

/// The OCI config of one RUN step (pure).
pub fn run_spec(
    rootfs: &Path,
    argv: &[String],
    env: &[(String, String)],
    workdir: &str,
    uid: u32,
    gid: u32,
    hostname: &str,
) -> Value {
    let mut envs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        envs.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    let caps = json!(crate::spec::default_caps());
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": argv,
            "env": envs,
            "cwd": if workdir.is_empty() { "/" } else { workdir },
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            "noNewPrivileges": false
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger"]
        }
    })
}

/// Runs RUN steps with the in-process runtime, state under `runtime_root`.
pub struct RuntimeExecutor<'a> {
    pub runtime_root: PathBuf,
    /// Scratch space for bundles.
    pub tmp: PathBuf,
    /// Where the container's output is streamed.
    pub out: &'a mut dyn Write,
    /// The tail of the last step's output.
    pub tail: Vec<u8>,
}

fn failed(argv: &[String], message: impl Into<String>) -> ExecError {
    ExecError::Failed {
        argv: argv.to_vec(),
        message: message.into(),
    }
}

/// Points fds 0 (at /dev/null), 1 and 2 (at `w`) for the clone of the
/// container init, and restores them on drop. The build is single-threaded
/// while a step runs, so nothing else writes to these fds meanwhile.
struct StdioSwap {
    saved: [OwnedFd; 3],
}

impl StdioSwap {
    fn new(w: &OwnedFd) -> io::Result<StdioSwap> {
        let null = std::fs::File::open("/dev/null")?;
        let mut saved = Vec::new();
        for fd in 0..3 {
            // SAFETY: fcntl F_DUPFD_CLOEXEC on a standard fd returns a new fd we own.
            let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            if d < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `d` is a fresh fd owned by nobody else.
            saved.push(unsafe { OwnedFd::from_raw_fd(d) });
        }
        let _ = io::stdout().flush();
        for (fd, src) in [
            (0, null.as_raw_fd()),
            (1, w.as_raw_fd()),
            (2, w.as_raw_fd()),
        ] {
            // SAFETY: dup2 onto a standard fd; the source fds are open.
            if unsafe { libc::dup2(src, fd) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let saved: [OwnedFd; 3] = saved.try_into().map_err(|_| io::Error::other("dup"))?;
        Ok(StdioSwap { saved })
    }
}

impl Drop for StdioSwap {
    fn drop(&mut self) {
        for (fd, s) in self.saved.iter().enumerate() {
            // SAFETY: restores the saved standard fds.
            unsafe { libc::dup2(s.as_raw_fd(), fd as i32) };
        }
    }
}

impl Executor for RuntimeExecutor<'_> {
    fn run(&mut self, req: &RunRequest<'_>) -> Result<(), ExecError> {
        let argv = req.argv;
        if let Some(net) = req.network
            && net != "none"
            && net != "default"
        {
            return Err(failed(
                argv,
                format!("RUN --network={net} is not supported (build steps run without network)"),
            ));
        }
        let root = Root::open(req.rootfs).map_err(|e| failed(argv, format!("open rootfs: {e}")))?;
        let (uid, gid) = match req.user {
            None | Some("") => (0, 0),
            Some(u) => users::resolve(
                u,
                &root.read_to_string("/etc/passwd"),
                &root.read_to_string("/etc/group"),
            )
            .map_err(|e| failed(argv, e))?,
        };
        root.mkdir_all(req.workdir, None)
            .map_err(|e| failed(argv, format!("create workdir {}: {e}", req.workdir)))?;
        let bundle = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&self.tmp)
            .map_err(|e| failed(argv, format!("bundle dir: {e}")))?;
        let id = format!(
            "build-{}-{}",
            std::process::id(),
            bundle
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().replace(['.', '-'], ""))
                .unwrap_or_default()
        );
        let spec = run_spec(
            req.rootfs,
            argv,
            req.env,
            req.workdir,
            uid,
            gid,
            "berth-build",
        );
        std::fs::write(
            bundle.path().join("config.json"),
            serde_json::to_vec_pretty(&spec).expect("json"),
        )
        .map_err(|e| failed(argv, format!("write bundle: {e}")))?;
        let rt = Runtime::new(&self.runtime_root);
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| failed(argv, format!("pipe: {e}")))?;
        let created = {
            let _swap = StdioSwap::new(&w).map_err(|e| failed(argv, format!("stdio: {e}")))?;
            rt.create(
                &id,
                &CreateOptions {
                    bundle: bundle.path().to_path_buf(),
                    ..Default::default()
                },
            )
        };
        drop(w);
        let created = created.map_err(|e| failed(argv, e.to_string()))?;
        let pid = created.state.pid;
        let result = (|| {
            rt.start(&id).map_err(|e| failed(argv, e.to_string()))?;
            self.tail.clear();
            let mut reader = std::fs::File::from(r);
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let _ = self.out.write_all(&buf[..n]);
                        let _ = self.out.flush();
                        self.tail.extend_from_slice(&buf[..n]);
                        if self.tail.len() > 2 * TAIL {
                            self.tail.drain(..self.tail.len() - TAIL);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(failed(argv, format!("reading output: {e}"))),
                }
            }
            wait_exit(pid).map_err(|e| failed(argv, format!("wait for {pid}: {e}")))
        })();
        drop(created);
        let _ = rt.delete(&id, true);
        match result? {
            0 => Ok(()),
            code => Err(ExecError::Exit {
                argv: argv.to_vec(),
                code,
            }),
        }
    }
}

/// Waits for the init (our child: the runtime clones it with
/// CLONE_PARENT) and returns a shell-style exit code.
fn wait_exit(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_has_offline_namespaces_env_and_user() {
        let s = run_spec(
            Path::new("/r"),
            &["/bin/sh".into(), "-c".into(), "true".into()],
            &[("A".into(), "1".into())],
            "/work",
            1000,
            50,
            "h",
        );
        assert_eq!(
            s["process"]["env"],
            json!([format!("PATH={DEFAULT_PATH}"), "A=1"])
        );
        assert_eq!(s["process"]["user"], json!({"uid": 1000, "gid": 50}));
        assert_eq!(s["process"]["cwd"], "/work");
        let ns: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert!(ns.contains(&"network"), "RUN gets its own empty netns");
        let with_path = run_spec(
            Path::new("/r"),
            &[],
            &[("PATH".into(), "/x".into())],
            "",
            0,
            0,
            "h",
        );
        assert_eq!(with_path["process"]["env"], json!(["PATH=/x"]));
        assert_eq!(with_path["process"]["cwd"], "/");
    }
}
