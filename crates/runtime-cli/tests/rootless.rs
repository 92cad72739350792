//! Rootless: an unprivileged user runs, execs into and deletes a container
//! with berth-runtime, in a user namespace mapped from /etc/subuid through
//! newuidmap/newgidmap, without cgroups or in a cgroup subtree delegated to
//! it. Nothing it does needs root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");
const USER: &str = "berth-rootless-t";
const SUB_START: u32 = 300_000;

/// A throw-away unprivileged user with subordinate ids; removed on drop.
struct TestUser {
    uid: u32,
    home: tempfile::TempDir,
}

/// Runs to completion with output through files: a detached container
/// inherits stdio and would hold a pipe open.
fn run(cmd: &mut Command) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let status = cmd
        .stdin(Stdio::null())
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

fn remove_sub_lines() {
    for f in ["/etc/subuid", "/etc/subgid"] {
        if let Ok(text) = std::fs::read_to_string(f) {
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with(&format!("{USER}:")))
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(f, kept);
        }
    }
}

impl TestUser {
    fn new() -> Option<TestUser> {
        let have = |b: &str| {
            Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !berth_testutil::is_root() || !have("useradd") || !have("runuser") || !have("newuidmap")
        {
            eprintln!("skipped: needs root, useradd, runuser and newuidmap (uidmap)");
            return None;
        }
        let _ = run(Command::new("userdel").arg(USER));
        let o = run(Command::new("useradd").args(["-M", "-s", "/bin/sh", USER]));
        assert!(
            o.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        remove_sub_lines();
        for f in ["/etc/subuid", "/etc/subgid"] {
            let mut text = std::fs::read_to_string(f).unwrap_or_default();
            text.push_str(&format!("{USER}:{SUB_START}:65536\n"));
            std::fs::write(f, text).unwrap();
        }
        let uid: u32 = String::from_utf8(run(Command::new("id").args(["-u", USER])).stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Some(TestUser { uid, home })
    }

    /// Runs berth-runtime as the user.
    fn rt(&self, args: &[&str]) -> Output {
        let root = self.home.path().join("state");
        run(Command::new("runuser")
            .args(["-u", USER, "--", RUNTIME, "--root"])
            .arg(&root)
            .args(args)
            .env("HOME", self.home.path()))
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.rt(args);
        assert!(
            o.status.success(),
            "berth-runtime {args:?} as {USER}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = self.rt(&["delete", "--force", "rl"]);
        let _ = run(Command::new("userdel").arg(USER));
        remove_sub_lines();
    }
}

/// A cgroup subtree delegated to `uid`, as systemd's `Delegate=yes` does:
/// `/berth-rootless-<pid>` in every hierarchy, owned by the user, with a
/// `launcher` leaf to start the runtime from (cgroup v2 lets a process move
/// only between cgroups under a common ancestor it may write to; v1 wants
/// a writable target). Removed on drop.
struct Delegated {
    path: String,
    dirs: Vec<std::path::PathBuf>,
}

impl Delegated {
    fn new(uid: u32) -> Delegated {
        let path = format!("/berth-rootless-{}", std::process::id());
        let h = berth_cgroups::Hierarchy::detect().unwrap();
        let m = berth_cgroups::Manager::new(&h, &path, "delegated").unwrap();
        m.create(None).unwrap();
        // Made like a container's cgroup (v1 cpuset copies its parent's
        // cpus and mems; v2 enables the controllers in the parent).
        let launcher = berth_cgroups::Manager::new(&h, &format!("{path}/launcher"), "l").unwrap();
        launcher.create(None).unwrap();
        let dirs: Vec<_> = m.paths().into_values().collect();
        for d in &dirs {
            chown_tree(d, uid);
        }
        Delegated { path, dirs }
    }

    /// A shell prefix that moves the shell into the launcher leaf.
    fn enter(&self) -> String {
        self.dirs
            .iter()
            .map(|d| format!("echo $$ > {}/launcher/cgroup.procs; ", d.display()))
            .collect()
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        // Dropped before the user (declared after it), so a failed test's
        // container may still run in `ctr`: destroy kills what is left.
        let h = berth_cgroups::Hierarchy::detect().unwrap();
        for leaf in ["/ctr", "/launcher", ""] {
            let path = format!("{}{leaf}", self.path);
            let m = berth_cgroups::Manager::new(&h, &path, "cleanup").unwrap();
            if let Err(e) = m.destroy() {
                eprintln!("cleanup of {path} failed: {e}");
            }
        }
    }
}

fn chown_tree(p: &Path, uid: u32) {
    let o = run(Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{uid}"))
        .arg(p));
    assert!(o.status.success());
}

#[test]
fn an_unprivileged_user_runs_execs_and_deletes() {
    let Some(u) = TestUser::new() else { return };
    let bundle = u.home.path().join("bundle");
    berth_testutil::busybox_rootfs(&bundle.join("rootfs")).unwrap();
    chown_tree(u.home.path(), u.uid);
    // The rootless default config, with the user's subordinate ids mapped too.
    let o = run(Command::new("runuser")
        .args(["-u", USER, "--", RUNTIME, "spec", "--rootless", "--bundle"])
        .arg(&bundle));
    assert!(
        o.status.success(),
        "spec --rootless: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let maps = json!([{"containerID": 0, "hostID": u.uid, "size": 1}, {"containerID": 1, "hostID": SUB_START, "size": 65536}]);
    cfg["linux"]["uidMappings"] = maps.clone();
    cfg["linux"]["gidMappings"] = maps;
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["args"] = json!(["sleep", "100"]);
    std::fs::write(&path, cfg.to_string()).unwrap();

    let b = bundle.to_str().unwrap();
    u.ok(&["run", "-d", "--bundle", b, "rl"]);
    let st: Value = serde_json::from_str(&u.ok(&["state", "rl"])).unwrap();
    assert_eq!(st["status"], "running");
    let out = u.ok(&["exec", "rl", "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let map: Vec<String> = lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        map,
        [format!("0 {} 1", u.uid), format!("1 {SUB_START} 65536")],
        "{out}"
    );
    // A second mapped id works (newuidmap wrote the range).
    assert_eq!(
        u.ok(&["exec", "--user", "1000:1000", "rl", "id", "-u"])
            .trim(),
        "1000"
    );
    // The init really runs as the user on the host.
    let pid = st["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let host_uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(host_uid, u.uid.to_string());
    u.ok(&["kill", "rl", "KILL"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let st: Value = serde_json::from_str(&u.ok(&["state", "rl"])).unwrap();
        if st["status"] == "stopped" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never stopped");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    u.ok(&["delete", "rl"]);
    assert!(!u.rt(&["state", "rl"]).status.success());
    // Resource limits need a delegated cgroup: a clear error, nothing left.
    cfg["linux"]["resources"] = json!({"pids": {"limit": 10}});
    std::fs::write(&path, cfg.to_string()).unwrap();
    let o = u.rt(&["create", "--bundle", b, "rl"]);
    assert!(
        !o.status.success(),
        "limits without a delegated cgroup accepted"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cgroup"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !u.rt(&["state", "rl"]).status.success(),
        "state left behind"
    );
    // In a delegated cgroup the same limits apply, and delete removes the
    // container's cgroup.
    let d = Delegated::new(u.uid);
    cfg["linux"]["cgroupsPath"] = json!(format!("{}/ctr", d.path));
    std::fs::write(&path, cfg.to_string()).unwrap();
    let root = u.home.path().join("state");
    let o = run(Command::new("sh").arg("-c").arg(format!(
        "{}exec runuser -u {USER} -- {RUNTIME} --root {} create --bundle {b} rl",
        d.enter(),
        root.display()
    )));
    assert!(
        o.status.success(),
        "rootless create in a delegated cgroup: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let pid = serde_json::from_str::<Value>(&u.ok(&["state", "rl"])).unwrap()["pid"].to_string();
    let pids_dir = d
        .dirs
        .iter()
        .find(|p| p.join("ctr/pids.max").exists())
        .expect("a pids controller")
        .join("ctr");
    assert_eq!(
        std::fs::read_to_string(pids_dir.join("pids.max"))
            .unwrap()
            .trim(),
        "10"
    );
    let procs = std::fs::read_to_string(pids_dir.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid), "init {pid} not in {procs}");
    u.ok(&["delete", "--force", "rl"]);
    assert!(!pids_dir.exists(), "the container's cgroup was left");
}
