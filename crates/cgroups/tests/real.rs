//! The cgroup suite against the real kernel: the `suite_*` tests run on
//! whatever this host mounts (cgroup v1 on the development host), and
//! `uml_v2_suite` boots a cgroup-v2-only user-mode-linux kernel
//! (tests/uml/run.sh) that runs this same binary's `suite_*` tests inside.
//!
//! Every test works in its own `/berth-test-<pid>-<n>` cgroup subtree and
//! removes it (a Drop guard), and puts real busybox processes in it.

use berth_cgroups::{CgroupVersion, Error, Hierarchy, Manager};
use berth_testutil::{BUSYBOX, is_root, unique_name};
use oci_spec::runtime::LinuxResources;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

/// A test-owned cgroup `/berth-test-<unique>/c`; the whole subtree is
/// destroyed on drop, even when the test fails.
struct TestCg {
    m: Manager,
    top: Manager,
    h: Hierarchy,
}

impl Drop for TestCg {
    fn drop(&mut self) {
        if let Err(e) = self.m.destroy().and_then(|()| self.top.destroy()) {
            eprintln!("cleanup failed: {e}");
        }
    }
}

impl std::ops::Deref for TestCg {
    type Target = Manager;
    fn deref(&self) -> &Manager {
        &self.m
    }
}

/// The host's hierarchy, or None (with the reason printed) when the suite
/// cannot run here.
fn hierarchy() -> Option<Hierarchy> {
    if !is_root() {
        eprintln!("skipping: cgroup tests need root");
        return None;
    }
    if !Path::new(BUSYBOX).exists() {
        eprintln!("skipping: {BUSYBOX} missing (apt-get install busybox-static)");
        return None;
    }
    match Hierarchy::detect() {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn test_cg(resources: Option<&LinuxResources>) -> Option<TestCg> {
    let h = hierarchy()?;
    let top_name = format!("/{}", unique_name("berth-test"));
    let top = Manager::new(&h, &top_name, "top").unwrap();
    let m = Manager::new(&h, &format!("{top_name}/c"), "c").unwrap();
    let cg = TestCg { m, top, h };
    cg.m.create(resources).unwrap();
    Some(cg)
}

/// A child process killed and reaped on drop.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `busybox sh -c script` already inside the cgroup: between fork and
/// exec the child writes "0" (itself) into each cgroup.procs.
fn spawn_in(m: &Manager, script: &str) -> Kid {
    let files: Vec<CString> = m
        .procs_files()
        .iter()
        .map(|p| CString::new(p.as_os_str().as_encoded_bytes()).unwrap())
        .collect();
    let mut cmd = Command::new(BUSYBOX);
    cmd.args(["sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure only calls async-signal-safe open/write/close on
    // buffers allocated before fork.
    unsafe {
        cmd.pre_exec(move || {
            for f in &files {
                let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
            }
            Ok(())
        });
    }
    Kid(cmd.spawn().expect("spawn busybox in cgroup"))
}

/// Waits for the child, returning (status, stdout, stderr).
fn finish(mut kid: Kid, timeout: Duration) -> (std::process::ExitStatus, String, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = kid.0.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            kid.0
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            kid.0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status, out, err);
        }
        assert!(
            start.elapsed() < timeout,
            "child did not finish within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cpu_ns(m: &Manager) -> u64 {
    m.stats().unwrap().cpu.usage.total
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn suite_memory_limit_is_enforced_and_oom_kill_reported() {
    // 32 MiB of memory and no swap (memory+swap = memory).
    let Some(cg) = test_cg(Some(&res(
        r#"{"memory":{"limit":33554432,"swap":33554432}}"#,
    ))) else {
        return;
    };
    assert_eq!(cg.oom_kill_count().unwrap(), 0);
    // The events stream's watcher, blocked before the kill happens.
    let mut watcher = berth_cgroups::OomWatcher::new(&cg).unwrap();
    let waiter = std::thread::spawn(move || watcher.wait(Duration::from_secs(30)));
    // busybox dd reads 64 MiB from /dev/zero into one buffer, touching it all.
    let kid = spawn_in(&cg, "exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    let (status, _, err) = finish(kid, Duration::from_secs(30));
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "dd should be OOM-killed: {status:?} {err}"
    );
    assert_eq!(waiter.join().unwrap().unwrap(), Some(1));
    assert_eq!(cg.wait_oom(0, Duration::from_secs(5)).unwrap(), Some(1));
    let stats = cg.stats().unwrap();
    assert_eq!(stats.memory.usage.limit, 32 << 20);
    // A process that fits is not killed.
    let (status, _, err) = finish(
        spawn_in(&cg, "exec dd if=/dev/zero of=/dev/null bs=8M count=1"),
        Duration::from_secs(30),
    );
    assert!(status.success(), "{err}");
    assert_eq!(cg.oom_kill_count().unwrap(), 1);
}

#[test]
fn suite_pids_limit_stops_a_fork_bomb() {
    let Some(cg) = test_cg(Some(&res(r#"{"pids":{"limit":8}}"#))) else {
        return;
    };
    let script =
        "i=0; while [ $i -lt 40 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done; echo done";
    let (status, out, err) = finish(spawn_in(&cg, script), Duration::from_secs(30));
    assert!(status.success() || out.contains("done") || !err.is_empty());
    assert!(
        err.contains("fork") || err.contains("Resource temporarily unavailable"),
        "no fork failure reported: {err}"
    );
    let pids = cg.pids().unwrap();
    assert!(
        !pids.is_empty() && pids.len() <= 8,
        "pids in cgroup: {pids:?}"
    );
    assert_eq!(cg.stats().unwrap().pids.limit, 8);
}

#[test]
fn suite_cpu_quota_limits_a_busy_loop() {
    let Some(cg) = test_cg(Some(&res(r#"{"cpu":{"quota":20000,"period":100000}}"#))) else {
        return;
    };
    let _kid = spawn_in(&cg, "while :; do :; done");
    std::thread::sleep(Duration::from_millis(300));
    let (t0, c0) = (Instant::now(), cpu_ns(&cg));
    std::thread::sleep(Duration::from_millis(1500));
    let (wall, used) = (t0.elapsed().as_nanos() as f64, (cpu_ns(&cg) - c0) as f64);
    let share = used / wall;
    assert!(
        share > 0.005 && share < 0.30,
        "busy loop used {:.0}% of a CPU under a 20% quota",
        share * 100.0
    );
    assert!(cg.stats().unwrap().cpu.throttling.throttled_periods > 0);
}

#[test]
fn suite_cpuset_pins_and_rejects_cpus_outside_the_host() {
    let Some(h) = hierarchy() else { return };
    if !h.controllers().unwrap().contains("cpuset") {
        eprintln!("skipping: this kernel has no cpuset controller (covered by unit tests)");
        return;
    }
    let Some(cg) = test_cg(Some(&res(r#"{"cpu":{"cpus":"0","mems":"0"}}"#))) else {
        return;
    };
    let (status, out, err) = finish(
        spawn_in(&cg, "grep Cpus_allowed_list /proc/self/status"),
        Duration::from_secs(10),
    );
    assert!(status.success(), "{err}");
    assert_eq!(out.split_whitespace().nth(1), Some("0"), "{out}");
    let err = cg.update(&res(r#"{"cpu":{"cpus":"0-4095"}}"#)).unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { field, .. } if field == "cpu.cpus"),
        "{err}"
    );
}

#[test]
fn suite_denied_device_cannot_be_opened_or_created() {
    let rules = r#"{"devices":[{"allow":false,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#;
    let Some(cg) = test_cg(Some(&res(rules))) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero");
    // The test process (outside the cgroup) makes a /dev/zero-like node.
    let cpath = CString::new(zero.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mknod(2) with a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(cpath.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 5)) };
    assert_eq!(rc, 0, "mknod: {}", std::io::Error::last_os_error());
    let d = dir.path().display();
    let script = format!(
        "echo x > /dev/null && echo null-ok; head -c1 {d}/zero >/dev/null && echo zero-ok; mknod {d}/z2 c 1 5 && echo mknod-ok; true"
    );
    let (_, out, err) = finish(spawn_in(&cg, &script), Duration::from_secs(10));
    assert!(
        out.contains("null-ok"),
        "allowed /dev/null failed: {out} {err}"
    );
    assert!(!out.contains("zero-ok"), "denied device was opened: {out}");
    assert!(
        !out.contains("mknod-ok"),
        "denied device was created: {out}"
    );
    assert!(err.contains("Operation not permitted"), "{err}");
    // Outside the cgroup the node works.
    assert!(std::fs::File::open(&zero).is_ok());
    // An update that allows it takes effect (v2: the program is replaced).
    cg.update(&res(r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"access":"rwm"}]}"#)).unwrap();
    let (_, out, err) = finish(spawn_in(&cg, &script), Duration::from_secs(10));
    assert!(
        out.contains("zero-ok") && out.contains("mknod-ok"),
        "{out} {err}"
    );
    if cg.version() == CgroupVersion::V2 {
        assert_eq!(
            cg.device_programs().unwrap(),
            1,
            "the old program was replaced, not stacked"
        );
    }
    // A default-allow list that denies one node: everything but /dev/zero.
    cg.update(&res(
        r#"{"devices":[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"}]}"#,
    ))
    .unwrap();
    let _ = std::fs::remove_file(dir.path().join("z2"));
    let (_, out, err) = finish(spawn_in(&cg, &script), Duration::from_secs(10));
    assert!(out.contains("null-ok"), "{out} {err}");
    assert!(
        !out.contains("zero-ok") && !out.contains("mknod-ok"),
        "{out} {err}"
    );
}

#[test]
fn suite_pause_stops_progress_and_resume_restarts_it() {
    let Some(cg) = test_cg(None) else { return };
    let _kid = spawn_in(&cg, "while :; do :; done");
    std::thread::sleep(Duration::from_millis(200));
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    let c0 = cpu_ns(&cg);
    std::thread::sleep(Duration::from_millis(400));
    let frozen_delta = cpu_ns(&cg) - c0;
    assert!(
        frozen_delta < 5_000_000,
        "frozen loop used {frozen_delta} ns"
    );
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    let c1 = cpu_ns(&cg);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        cpu_ns(&cg) - c1 > 10_000_000,
        "thawed loop made no progress"
    );
}

#[test]
fn suite_stats_show_real_numbers() {
    let Some(cg) = test_cg(Some(&res(
        r#"{"pids":{"limit":50},"memory":{"limit":268435456}}"#,
    ))) else {
        return;
    };
    let _a = spawn_in(&cg, "exec sleep 30");
    let _b = spawn_in(
        &cg,
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 30",
    );
    wait_for("two processes", Duration::from_secs(5), || {
        cg.pids().unwrap().len() == 2
    });
    wait_for("cpu time", Duration::from_secs(10), || {
        cpu_ns(&cg) > 10_000_000
    });
    let s = cg.stats().unwrap();
    assert_eq!((s.pids.current, s.pids.limit), (2, 50));
    assert!(s.memory.usage.usage > 0);
    assert_eq!(s.memory.usage.limit, 256 << 20);
    assert!(s.cpu.usage.user + s.cpu.usage.kernel > 0 || s.cpu.usage.total > 10_000_000);
    let json = serde_json::to_value(&s).unwrap();
    for key in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
        assert!(json.get(key).is_some(), "missing {key} in {json}");
    }
}

#[test]
fn suite_update_changes_limits_and_refuses_bad_input() {
    let Some(cg) = test_cg(Some(&res(
        r#"{"pids":{"limit":100},"memory":{"limit":134217728}}"#,
    ))) else {
        return;
    };
    let _kid = spawn_in(&cg, "exec sleep 30");
    cg.update(&res(r#"{"pids":{"limit":2},"memory":{"limit":67108864}}"#))
        .unwrap();
    let s = cg.stats().unwrap();
    assert_eq!((s.pids.limit, s.memory.usage.limit), (2, 64 << 20));
    // The new pids limit bites: one sleep + sh + one more is too many.
    let (_, _, err) = finish(
        spawn_in(&cg, "sleep 1 & sleep 1 & wait"),
        Duration::from_secs(10),
    );
    assert!(
        err.contains("fork") || err.contains("Resource temporarily unavailable"),
        "{err}"
    );
    // Bad input: nothing is applied, the error names the field.
    let before = cg.stats().unwrap();
    let err = cg
        .update(&res(r#"{"pids":{"limit":7},"memory":{"limit":4096}}"#))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("linux.resources.memory.limit: 4096 bytes is below the current usage"),
        "{err}"
    );
    let err = cg
        .update(&res(r#"{"pids":{"limit":7},"cpu":{"shares":1}}"#))
        .unwrap_err();
    assert!(
        err.to_string().starts_with("linux.resources.cpu.shares"),
        "{err}"
    );
    let err = cg
        .update(&res(r#"{"pids":{"limit":7},"unified":{"nosuch.max":"1"}}"#))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("linux.resources.unified[\"nosuch.max\"]"),
        "{err}"
    );
    assert_eq!(
        cg.stats().unwrap().pids.limit,
        before.pids.limit,
        "half-applied update"
    );
    // A write the kernel refuses (no such block device) after one it took:
    // the earlier pids.max write is rolled back.
    let bogus = r#"{"pids":{"limit":7},"blockIO":{"throttleReadBpsDevice":[{"major":259,"minor":999,"rate":1000}]}}"#;
    let err = cg.update(&res(bogus)).unwrap_err().to_string();
    assert!(
        err.starts_with("linux.resources.blockIO.throttleReadBpsDevice[0]: writing \"259:999"),
        "{err}"
    );
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(
        cg.stats().unwrap().pids.limit,
        before.pids.limit,
        "pids.max not rolled back"
    );
}

#[test]
fn suite_destroy_kills_what_is_left_and_removes_the_cgroup() {
    let Some(cg) = test_cg(Some(&res(r#"{"pids":{"limit":20}}"#))) else {
        return;
    };
    let kid = spawn_in(&cg, "sleep 60 & sleep 60 & exec sleep 60");
    wait_for("three processes", Duration::from_secs(5), || {
        cg.pids().unwrap().len() == 3
    });
    // Frozen cgroups too: destroy thaws so SIGKILL lands.
    cg.freeze().unwrap();
    cg.destroy().unwrap();
    let (status, _, _) = finish(kid, Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!cg.exists());
    for dir in cg.paths().values() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    cg.destroy().unwrap();
    assert!(cg.pids().unwrap().is_empty());
}

#[test]
fn suite_kill_all_signals_every_process() {
    let Some(cg) = test_cg(None) else { return };
    let kid = spawn_in(&cg, "sleep 60 & exec sleep 60");
    wait_for("two processes", Duration::from_secs(5), || {
        cg.pids().unwrap().len() == 2
    });
    cg.kill_all(libc::SIGTERM).unwrap();
    let (status, _, _) = finish(kid, Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    wait_for("empty cgroup", Duration::from_secs(5), || {
        cg.pids().unwrap().is_empty()
    });
}

#[test]
fn suite_version_specific_fields_are_refused_clearly() {
    let Some(cg) = test_cg(None) else { return };
    let (field, json) = match cg.version() {
        CgroupVersion::V1 => ("unified", r#"{"unified":{"memory.high":"1000000"}}"#),
        CgroupVersion::V2 => ("memory.swappiness", r#"{"memory":{"swappiness":10}}"#),
    };
    let err = cg.update(&res(json)).unwrap_err().to_string();
    assert!(
        err.contains(field) && err.contains("not supported on cgroup"),
        "{err}"
    );
    let h = &cg.h;
    let other = Manager::new(h, &format!("{}/never", cg.top.cgroup_path()), "x").unwrap();
    let err = other
        .create(Some(&res(r#"{"cpu":{"quota":5}}"#)))
        .unwrap_err();
    assert!(
        err.to_string().starts_with("linux.resources.cpu.quota"),
        "{err}"
    );
    assert!(
        other.paths().values().all(|d| !d.exists()),
        "nothing created for rejected input"
    );
}

/// v2: clone3(CLONE_INTO_CGROUP) with `clone_into_fd` starts the child
/// inside the cgroup.
#[test]
fn suite_clone_into_cgroup() {
    let Some(cg) = test_cg(None) else { return };
    let Some(fd) = cg.clone_into_fd().unwrap() else {
        eprintln!("skipping: cgroup v1 has no CLONE_INTO_CGROUP");
        return;
    };
    use std::os::fd::AsRawFd;
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let path = CString::new(BUSYBOX).unwrap();
    let argv0 = CString::new("sleep").unwrap();
    let argv1 = CString::new("30").unwrap();
    let argv = [argv0.as_ptr(), argv1.as_ptr(), std::ptr::null()];
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM: the child gets a copy of this address
    // space and only calls execv/_exit (async-signal-safe) on data prepared
    // before the call.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: child side, see above.
        unsafe {
            libc::execv(path.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
    let pid = pid as i32;
    let in_cg = cg.pids().unwrap().contains(&pid);
    // SAFETY: kill/waitpid on the child we just created.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    assert!(in_cg, "clone3 child {pid} not in {:?}", cg.paths());
}

/// Runs the `suite_*` tests above inside a cgroup-v2-only user-mode-linux
/// kernel and fails if they fail there.
#[test]
fn uml_v2_suite() {
    berth_testutil::run_self_in_uml(&["suite_"], 10);
}

/// Unmounts on drop.
struct Mounted(CString);

impl Drop for Mounted {
    fn drop(&mut self) {
        // SAFETY: umount2(2) on a path we mounted, NUL-terminated.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A directory that can never be removed (a mount point: rmdir gives
/// EBUSY, like a cgroup with a process stuck in the kernel) makes destroy
/// give up after its bounded retries with an error naming it.
#[test]
fn destroy_reports_a_cgroup_that_stays_busy() {
    if !is_root() {
        eprintln!("skipping: needs root to mount");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("cgroup.controllers"), "memory pids\n").unwrap();
    let h = Hierarchy::at(root.path()).unwrap();
    let m = Manager::new(&h, "/stuck", "stuck").unwrap();
    let leaf = root.path().join("stuck");
    std::fs::create_dir(&leaf).unwrap();
    let target = CString::new(leaf.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mount(2) of a fresh tmpfs on a directory this test made.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "mount: {}", std::io::Error::last_os_error());
    let guard = Mounted(target);
    let start = Instant::now();
    let err = m.destroy().unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "retries are bounded"
    );
    match &err {
        Error::Busy { path, attempts, .. } => {
            assert_eq!(path, &leaf);
            assert!(*attempts > 1);
        }
        other => panic!("expected Busy, got {other}"),
    }
    assert!(err.to_string().contains("still busy"), "{err}");
    drop(guard);
    m.destroy().unwrap();
    assert!(!leaf.exists());
}
