//! Real clients as oracles: Podman (through conmon) and containerd (through
//! its runc shim) drive berth-runtime exactly as they drive runc. These tests
//! fail if berth-runtime misbehaves in a way the client notices.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_testutil::unique_name;

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// This host's hard RLIMIT_NOFILE is 20000: Podman's default of 1048576 is
/// (rightly) refused by berth-runtime, so the tests ask for less.
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

fn have(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn text(o: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A busybox image in Podman's store, removed on drop.
struct PodmanImage {
    name: String,
    _dir: tempfile::TempDir,
}

impl PodmanImage {
    fn new() -> Option<Self> {
        if !berth_testutil::is_root() || !have("podman") {
            eprintln!("skipped: needs root and podman");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        berth_testutil::busybox_rootfs(&root).unwrap();
        let tar = dir.path().join("rootfs.tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let name = format!("localhost/{}:latest", unique_name("berth-rt"));
        let o = Command::new("podman")
            .arg("import")
            .arg(&tar)
            .arg(&name)
            .output()
            .unwrap();
        assert!(o.status.success(), "podman import: {}", text(&o));
        Some(Self { name, _dir: dir })
    }

    fn podman(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .arg("--runtime")
            .arg(RUNTIME)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn run_args<'a>(&'a self, extra: &[&'a str], cmd: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["run", "--network", "none"];
        v.extend(ULIMITS);
        v.extend(extra);
        v.push(&self.name);
        v.extend(cmd);
        v
    }
}

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rmi", "-f", &self.name])
            .output();
    }
}

#[test]
fn podman_run_rm() {
    let Some(img) = PodmanImage::new() else {
        return;
    };
    let o = img.podman(&img.run_args(&["--rm"], &["sh", "-c", "echo hello; echo pid=$$; exit 3"]));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\npid=1\n");
}

/// Podman's idmapped volumes reach berth-runtime as the `idmap` and
/// `idmap=uids=…;gids=…` mount options (crun's syntax): a root-owned host
/// file shows as the container's root, or with the volume's own mapping.
#[test]
fn podman_idmapped_volumes() {
    let Some(img) = PodmanImage::new() else {
        return;
    };
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("f"), "x").unwrap();
    let stat = |opt: &str| {
        let v = format!("{}:/v:{opt}", vol.path().display());
        let o = img.podman(&img.run_args(
            &[
                "--rm",
                "--uidmap",
                "0:100000:65536",
                "--gidmap",
                "0:100000:65536",
                "-v",
                &v,
            ],
            &["stat", "-c", "%u:%g", "/v/f"],
        ));
        assert!(o.status.success(), "{opt}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(stat("idmap"), "0:0");
    assert_eq!(stat("idmap=uids=0-100007-1;gids=0-100009-1"), "7:9");
    // Without idmap the host's root is unmapped in the container.
    assert_eq!(stat("rw"), "65534:65534");
}

#[test]
fn podman_run_it_through_a_pty() {
    let Some(img) = PodmanImage::new() else {
        return;
    };
    if !have("script") {
        eprintln!("skipped: needs script(1)");
        return;
    }
    // The verdict travels as the exit code: podman's attach can lose the
    // first output of a short -it run under load (runc too: 4 of 25 runs
    // with the CPUs saturated), an exit code it cannot lose.
    let args = img.run_args(&["-it", "--rm"], &[]);
    let cmd = format!(
        "podman --runtime {RUNTIME} {} sh -c '[ -t 0 ] && [ -t 1 ] && [ \"$(tty)\" = /dev/pts/0 ] && exit 42'",
        args.join(" ")
    );
    let o = Command::new("timeout")
        .args(["60", "script", "-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(42),
        "no terminal inside as stdin, stdout and /dev/pts/0: {}",
        text(&o)
    );
}

#[test]
fn podman_detached_exec_stop_rm() {
    let Some(img) = PodmanImage::new() else {
        return;
    };
    let name = unique_name("berth-rt-d");
    let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    let o = img.podman(&img.run_args(&["-d", "--name", &name], &["sh", "-c", script]));
    assert!(o.status.success(), "{}", text(&o));
    let guard = scopeguard(&name);
    let o = img.podman(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo in; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("in\nsh -c"), "{out}");
    let o = img.podman(&["exec", &name, "sh", "-c", "exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let o = img.podman(&["stop", "-t", "10", &name]);
    assert!(o.status.success(), "{}", text(&o));
    let o = img.podman(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "0",
        "stopped by SIGTERM, not SIGKILL: {}",
        text(&o)
    );
    let o = img.podman(&["rm", &name]);
    assert!(o.status.success(), "{}", text(&o));
    drop(guard);
}

struct Cleanup(String);

fn scopeguard(name: &str) -> Cleanup {
    Cleanup(name.to_string())
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["--runtime", RUNTIME, "rm", "-f", &self.0])
            .output();
    }
}

/// A private containerd (own root, state and socket), killed on drop.
struct Containerd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    image: PathBuf,
}

impl Containerd {
    fn start() -> Option<Self> {
        if !berth_testutil::is_root() || !have("containerd") || !have("ctr") || !have("podman") {
            eprintln!(
                "skipped: needs root, containerd, ctr and podman (to make the image archive)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{0}/c.sock\"\n[ttrpc]\n  address = \"{0}/c.ttrpc\"\n[debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_apparmor = true\n",
            d.display()
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd {
            child,
            image: d.join("bb.tar"),
            dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                std::time::Instant::now() < deadline,
                "containerd did not start: {}",
                std::fs::read_to_string(c.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let img = PodmanImage::new()?;
        let o = Command::new("podman")
            .args(["save", "-q", "-o"])
            .arg(&c.image)
            .arg(&img.name)
            .output()
            .unwrap();
        assert!(o.status.success(), "podman save: {}", text(&o));
        let o = c.ctr(&[
            "images",
            "import",
            "--index-name",
            "localhost/bb:test",
            c.image.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "ctr import: {}", text(&o));
        Some(c)
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("c.sock"))
            .args(["--namespace", "berth-test"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn image_name(&self) -> String {
        let o = self.ctr(&["images", "ls", "-q"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .expect("an imported image")
            .to_string()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in ["c-run", "c-exec"] {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr(&["task", "rm", "-f", id]);
            let _ = self.ctr(&["containers", "rm", id]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // containerd leaves its shims' mounts under root/state; unmount them.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep {} /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l",
                self.dir.path().display()
            ))
            .status();
    }
}

fn runtime_path() -> &'static Path {
    Path::new(RUNTIME)
}

#[test]
fn containerd_run_and_exec() {
    let Some(c) = Containerd::start() else { return };
    let image = c.image_name();
    let rt = runtime_path().to_str().unwrap();
    let o = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        rt,
        &image,
        "c-run",
        "sh",
        "-c",
        "echo hello from ctr; echo pid=$$",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello from ctr\npid=1\n"
    );

    let o = c.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        rt,
        &image,
        "c-exec",
        "sleep",
        "100",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "c-exec",
        "sh",
        "-c",
        "echo exec ok; cat /proc/1/comm",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "exec ok\nsleep\n");
    let o = c.ctr(&["task", "ls"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("RUNNING"),
        "{}",
        text(&o)
    );
    let o = c.ctr(&["task", "kill", "-s", "SIGKILL", "c-exec"]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = c.ctr(&["task", "ls"]);
        if String::from_utf8_lossy(&o.stdout).contains("STOPPED") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task never stopped: {}",
            text(&o)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = c.ctr(&["task", "rm", "c-exec"]);
    assert!(o.status.success(), "{}", text(&o));
}
