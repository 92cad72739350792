//! Shared fixtures: a runtime under test (berth-runtime or, for the oracle
//! mode, runc) with its own state root, and busybox bundles with a config
//! derived from `berth-runtime spec`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use berth_testutil::{Bundle, unique_name};
use serde_json::{Value, json};

pub struct Rt {
    pub bin: PathBuf,
    pub root: tempfile::TempDir,
    pub name: &'static str,
    /// Files the runtime needs kept alive (crun's wrapper, binary copies).
    pub extra: Option<tempfile::TempDir>,
}

impl Rt {
    pub fn berth() -> Option<Rt> {
        if !berth_testutil::is_root() {
            eprintln!("skipped: needs root");
            return None;
        }
        Some(Rt {
            bin: env!("CARGO_BIN_EXE_berth-runtime").into(),
            root: tempfile::tempdir().unwrap(),
            name: "berth",
            extra: None,
        })
    }

    /// runc as an oracle: the same tests must pass against it.
    pub fn runc() -> Option<Rt> {
        if !berth_testutil::is_root() || !Path::new("/usr/sbin/runc").exists() {
            eprintln!("skipped: needs root and runc");
            return None;
        }
        Some(Rt {
            bin: "/usr/sbin/runc".into(),
            root: tempfile::tempdir().unwrap(),
            name: "runc",
            extra: None,
        })
    }

    /// crun as a second oracle. crun 1.8 refuses this host's hybrid cgroup
    /// layout, so it runs in a private mount namespace where the empty
    /// cgroup2 at /sys/fs/cgroup/unified is unmounted.
    pub fn crun() -> Option<Rt> {
        if !berth_testutil::is_root() || !Path::new("/usr/bin/crun").exists() {
            eprintln!("skipped: needs root and crun");
            return None;
        }
        let extra = tempfile::tempdir().unwrap();
        let bin = extra.path().join("crun");
        write_crun_wrapper(&bin, Path::new("/usr/bin/crun"));
        Some(Rt {
            bin,
            root: tempfile::tempdir().unwrap(),
            name: "crun",
            extra: Some(extra),
        })
    }

    /// The same runtime, run from a private copy of its binary (for attacks
    /// that try to overwrite the runtime). Returns the runtime and the copy.
    pub fn with_copied_binary(self) -> (Rt, PathBuf) {
        let extra = tempfile::tempdir().unwrap();
        let real = if self.name == "crun" {
            PathBuf::from("/usr/bin/crun")
        } else {
            self.bin.clone()
        };
        let copy = extra.path().join(format!("{}-copy", self.name));
        std::fs::copy(&real, &copy).unwrap();
        let bin = if self.name == "crun" {
            let w = extra.path().join("crun-wrapper");
            write_crun_wrapper(&w, &copy);
            w
        } else {
            copy.clone()
        };
        (
            Rt {
                bin,
                root: self.root,
                name: self.name,
                extra: Some(extra),
            },
            copy,
        )
    }

    pub fn is_berth(&self) -> bool {
        self.name == "berth"
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs a command to completion. Output goes through files, not pipes:
    /// a created container inherits the command's stdio and would hold a
    /// pipe open long after the command exits.
    pub fn out(&self, args: &[&str]) -> Output {
        let dir = tempfile::tempdir().unwrap();
        let (o, e) = (dir.path().join("out"), dir.path().join("err"));
        let status = self
            .cmd(args)
            .stdout(std::fs::File::create(&o).unwrap())
            .stderr(std::fs::File::create(&e).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(&o).unwrap(),
            stderr: std::fs::read(&e).unwrap(),
        }
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "{} {args:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }
}

fn write_crun_wrapper(path: &Path, crun: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let script = format!(
        "#!/bin/sh\nexec unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"' {} \"$@\"\n",
        crun.display()
    );
    std::fs::write(path, script).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The default config with a non-terminal process running `args`.
pub fn config(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-runtime"))
        .args(["spec", "--bundle"])
        .arg(tmp_spec_dir())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut c: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp_spec_dir().join("config.json")).unwrap())
            .unwrap();
    std::fs::remove_dir_all(tmp_spec_dir()).ok();
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(args);
    c
}

fn tmp_spec_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "berth-spec-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A bundle plus a container id; deletes the container (force) on drop.
pub struct Ctr<'a> {
    pub rt: &'a Rt,
    pub id: String,
    pub bundle: Bundle,
}

impl<'a> Ctr<'a> {
    pub fn new(rt: &'a Rt, config: &Value) -> Ctr<'a> {
        let bundle = Bundle::new().unwrap();
        let mut config = config.clone();
        if rt.name == "crun" {
            // crun 1.8 knows spec versions up to 1.0.x only.
            config["ociVersion"] = serde_json::json!("1.0.2");
        }
        let config = &config;
        std::fs::write(
            bundle.path().join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
        Ctr {
            rt,
            id: unique_name("t"),
            bundle,
        }
    }

    pub fn path(&self) -> &Path {
        self.bundle.path()
    }

    pub fn write_config(&self, config: &Value) {
        std::fs::write(
            self.bundle.path().join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
    }

    /// `run` in the foreground: (exit code, stdout, stderr).
    pub fn run(&self) -> (i32, String, String) {
        let o = self
            .rt
            .out(&["run", "--bundle", self.path().to_str().unwrap(), &self.id]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Runs and returns stdout, asserting success.
    pub fn run_ok(&self) -> String {
        let (code, out, err) = self.run();
        assert_eq!(code, 0, "{} run failed: {err}\nstdout: {out}", self.rt.name);
        out
    }

    pub fn create(&self) -> Output {
        self.rt.out(&[
            "create",
            "--bundle",
            self.path().to_str().unwrap(),
            &self.id,
        ])
    }

    pub fn create_ok(&self) {
        let o = self.create();
        assert!(
            o.status.success(),
            "{} create failed: {}",
            self.rt.name,
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Ctr<'_> {
    fn drop(&mut self) {
        let _ = self.rt.out(&["delete", "--force", &self.id]);
    }
}

/// Generates one test per runtime: `name::berth` and `name::runc`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn berth() {
                if let Some(rt) = common::Rt::berth() {
                    ($body)(&rt)
                }
            }
            #[test]
            fn runc() {
                if let Some(rt) = common::Rt::runc() {
                    ($body)(&rt)
                }
            }
        }
    };
}

/// The probe helper (`tests/helpers/attack.c`), compiled with `gcc -static`
/// once per test binary.
pub fn attack_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/attack.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("berth-attack-{}", std::process::id()));
        let st = Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("gcc is needed to build the attack helper");
        assert!(st.success(), "building {}", src.display());
        out
    })
}

/// A container whose rootfs has the helper as `/bin/attack`.
pub fn armed<'a>(rt: &'a Rt, cfg: &Value) -> Ctr<'a> {
    let c = Ctr::new(rt, cfg);
    std::fs::copy(attack_binary(), c.bundle.rootfs().join("bin/attack")).unwrap();
    c
}

/// Accepts one connection on a seccomp listener socket and reads what the
/// runtime sends: the containerProcessState document and the notify fd.
/// `gave_up` is asked while waiting; a reason from it (the runtime exited,
/// say) fails the test instead of waiting on.
pub fn accept_listener(
    listener: &std::os::unix::net::UnixListener,
    gave_up: impl Fn() -> Option<String>,
) -> (Value, Option<std::os::fd::OwnedFd>) {
    try_accept_listener(listener, gave_up)
        .unwrap_or_else(|why| panic!("nothing connected to the seccomp listener: {why}"))
}

/// [`accept_listener`] that returns `gave_up`'s reason instead of failing.
pub fn try_accept_listener(
    listener: &std::os::unix::net::UnixListener,
    gave_up: impl Fn() -> Option<String>,
) -> Result<(Value, Option<std::os::fd::OwnedFd>), String> {
    use std::os::fd::{AsRawFd, FromRawFd};
    listener.set_nonblocking(true).unwrap();
    // Only a guard against hanging forever; no result depends on it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(why) = gave_up() {
                    return Err(why);
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "nothing connected to the seccomp listener"
                );
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("accept on the seccomp listener: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS installed this fd for us.
            fd = Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let n = msg.bytes;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let doc = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    Ok((doc, fd))
}

/// Generates one test per runtime: `name::berth`, `name::runc`, `name::crun`.
#[macro_export]
macro_rules! all3 {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn berth() {
                if let Some(rt) = common::Rt::berth() {
                    ($body)(rt)
                }
            }
            #[test]
            fn runc() {
                if let Some(rt) = common::Rt::runc() {
                    ($body)(rt)
                }
            }
            #[test]
            fn crun() {
                if let Some(rt) = common::Rt::crun() {
                    ($body)(rt)
                }
            }
        }
    };
}
