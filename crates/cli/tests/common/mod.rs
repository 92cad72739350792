//! Shared test harness: a private berth instance (`--root` in a temp dir)
//! with a busybox image imported in-process, and a Drop guard that removes
//! every container and runs `system check` even when the test fails.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");
pub const MONITOR: &str = env!("CARGO_BIN_EXE_berth-monitor");

pub struct Instance {
    pub dir: tempfile::TempDir,
    /// Unique bridge prefix and nft table of this instance.
    pub bridge_prefix: String,
    pub nft_table: String,
    /// The default network's subnet (unique per test process).
    pub subnet: String,
}

/// Makes a tar of a busybox rootfs and imports it as `busybox`.
pub fn import_busybox(root: &Path) {
    let src = tempfile::tempdir().expect("tempdir");
    berth_testutil::busybox_rootfs(src.path()).expect("busybox rootfs");
    let mut data = vec![];
    {
        let mut b = tar::Builder::new(&mut data);
        b.follow_symlinks(false);
        b.append_dir_all(".", src.path()).expect("tar");
        b.finish().expect("tar");
    }
    let store = berth_image::ImageStore::open(root, &root.join("berth.db")).expect("image store");
    let opts = berth_image::ImportOptions {
        tag: Some("busybox".into()),
        changes: vec![],
        message: None,
        created: None,
    };
    store
        .import_rootfs_tar(&data[..], &opts)
        .expect("import busybox");
}

impl Instance {
    /// None (and a note) when not root: the tests need mounts and namespaces.
    pub fn new() -> Option<Instance> {
        if !berth_testutil::is_root() {
            eprintln!("skipping: needs root");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-cli-")
            .tempdir()
            .expect("tempdir");
        import_busybox(dir.path());
        let n = berth_testutil::unique_name("b");
        let serial: u32 = n.rsplit('-').next().unwrap().parse().unwrap();
        let pid = std::process::id();
        Some(Instance {
            dir,
            bridge_prefix: format!("bt{}x{serial}", pid % 100_000),
            nft_table: format!("berth_t{pid}_{serial}"),
            subnet: format!("10.200.{}.0/24", (pid as u32 * 7 + serial) % 230 + 20),
        })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.arg("--root").arg(self.root()).args(args);
        c.env("BERTH_MONITOR", MONITOR);
        c.env("BERTH_BRIDGE_PREFIX", &self.bridge_prefix);
        c.env("BERTH_NFT_TABLE", &self.nft_table);
        c.env("BERTH_DEFAULT_SUBNET", &self.subnet);
        c
    }

    /// Runs berth with stdin from /dev/null; returns the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("running berth")
    }

    /// Runs berth and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "berth {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `berth run --rm --network none ARGS`, the tests' usual one-shot
    /// container: its output.
    pub fn run_none(&self, args: &[&str]) -> Output {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// [`Instance::run_none`], asserting success; returns stdout.
    pub fn ok_none(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "--rm", "--network", "none"];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    pub fn inspect(&self, name: &str, field: &str) -> String {
        self.ok(&["inspect", "-f", field, name]).trim().to_string()
    }

    /// Polls `f` until it is true or `secs` pass.
    pub fn until(&self, secs: u64, mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Mount points under this instance's root.
    pub fn mounts(&self) -> Vec<String> {
        let root = self.root().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&root))
            .collect()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root().join("run")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let ids = self.run(&["ps", "-aq", "--no-trunc"]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let _ = self.run(&args);
        }
        let _ = self.run(&["system", "check", "-q"]);
        let nets = self.run(&["network", "ls", "-q"]);
        for n in String::from_utf8_lossy(&nets.stdout).split_whitespace() {
            let _ = self.run(&["network", "rm", n]);
        }
        // The default network's bridge and the nft table are this instance's own.
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}0", self.bridge_prefix)])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.nft_table])
            .stderr(Stdio::null())
            .status();
        // Last resort: nothing of ours stays mounted.
        for m in self.mounts().into_iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
    }
}
