//! Resource control through the runtime's command line, checked from
//! inside busybox containers and through `events --stats`. Each test runs
//! against berth-runtime and runc (`both!`), in its own cgroup
//! `/berth-test/<unique>` that a guard removes even when the test fails,
//! and checks that nothing is left.
//!
//! `uml_v2_runtime` boots the cgroup-v2-only user-mode-linux kernel
//! (tests/uml/run.sh) and runs this binary's tests inside it.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_cgroups::{CgroupVersion, Hierarchy, Manager};
use common::{Ctr, Rt, config};
use serde_json::{Value, json};

/// The test's cgroup: removed on drop (with whatever the runtime left).
struct TestCg {
    path: String,
    m: Manager,
}

impl TestCg {
    fn new(id: &str) -> TestCg {
        let path = format!("/berth-test/{}", berth_testutil::unique_name("cg"));
        let h = Hierarchy::detect().expect("a cgroup hierarchy");
        let m = Manager::new(&h, &path, id).unwrap();
        TestCg { path, m }
    }

    fn exists(&self) -> bool {
        self.m.exists()
    }
}

impl Drop for TestCg {
    fn drop(&mut self) {
        if let Err(e) = self.m.destroy() {
            eprintln!("cleanup of {} failed: {e}", self.path);
        }
        // The shared parent goes when the last test is done with it; runc
        // also makes it in the hybrid host's name=systemd and unified trees.
        for mount in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(mount.path().join("berth-test"));
        }
        let _ = std::fs::remove_dir("/sys/fs/cgroup/berth-test");
    }
}

fn version() -> CgroupVersion {
    Hierarchy::detect().unwrap().version()
}

/// A config running `script` under `sh -c` with `resources`, a writable
/// root and the test's cgroup path.
fn cg_config(script: &str, resources: Value, cg: &TestCg) -> Value {
    let mut c = config(&["sh", "-c", script]);
    c["root"]["readonly"] = json!(false);
    c["linux"]["cgroupsPath"] = json!(cg.path);
    let mut r = resources;
    if r.get("devices").is_none() {
        r["devices"] = json!([{"allow": false, "access": "rwm"}]);
    }
    c["linux"]["resources"] = r;
    c
}

/// A container of the test: its bundle, id and cgroup.
fn ctr<'a>(rt: &'a Rt, script: &str, resources: Value) -> (Ctr<'a>, TestCg) {
    let c = Ctr::new(rt, &json!({}));
    let cg = TestCg::new(&c.id);
    c.write_config(&cg_config(script, resources, &cg));
    (c, cg)
}

fn start(c: &Ctr) {
    c.create_ok();
    c.rt.ok(&["start", &c.id]);
}

/// `events --stats`: the `data` of the one stats document.
fn stats(rt: &Rt, id: &str) -> Value {
    let out = rt.ok(&["events", "--stats", id]);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["type"], "stats", "{out}");
    assert_eq!(v["id"], id, "{out}");
    v["data"].clone()
}

fn cpu_ns(rt: &Rt, id: &str) -> u64 {
    stats(rt, id)["cpu"]["usage"]["total"].as_u64().unwrap()
}

/// Waits until `f` holds (polling), or fails after `secs`.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes the container and checks that its cgroup and state are gone.
fn delete_and_check(c: &Ctr, cg: &TestCg) {
    c.rt.ok(&["delete", "--force", &c.id]);
    assert!(
        !cg.exists(),
        "{}: cgroup {} left behind",
        c.rt.name,
        cg.path
    );
    assert!(!c.rt.root.path().join(&c.id).exists(), "state dir left");
}

/// Checks that a failed create left neither a container nor a cgroup.
fn assert_nothing_left(c: &Ctr, cg: &TestCg) {
    assert!(
        !c.rt.out(&["state", &c.id]).status.success(),
        "{}: a failed create left a container",
        c.rt.name
    );
    assert!(
        !cg.exists(),
        "{}: a failed create left cgroup {}",
        c.rt.name,
        cg.path
    );
}

fn has_controller(name: &str) -> bool {
    match version() {
        CgroupVersion::V1 => Path::new("/sys/fs/cgroup").join(name).is_dir(),
        CgroupVersion::V2 => std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == name),
    }
}

both!(memory_limit_oom_kills_and_events_report_it, |rt: &Rt| {
    // 32 MiB and no swap; dd's 64 MiB buffer cannot fit.
    let (c, cg) = ctr(
        rt,
        "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; echo $? > /rc; sleep 1000",
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    );
    c.create_ok();
    let events_out = tempfile::NamedTempFile::new().unwrap();
    let mut events = rt
        .cmd(&["events", "--interval", "1s", &c.id])
        .stdout(events_out.reopen().unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    rt.ok(&["start", &c.id]);
    let rc = c.bundle.rootfs().join("rc");
    wait_for(30, "dd to end", || rc.exists());
    // 137 = killed by SIGKILL (the OOM killer).
    wait_for(5, "rc written", || {
        std::fs::read_to_string(&rc).unwrap().trim() == "137"
    });
    let mut lines = String::new();
    wait_for(10, "the oom event", || {
        lines = std::fs::read_to_string(events_out.path()).unwrap();
        lines.lines().any(|l| l.contains(r#""type":"oom""#))
    });
    // SAFETY: kill(2) of the events process this test spawned.
    unsafe { libc::kill(events.id() as i32, libc::SIGKILL) };
    let _ = events.wait();
    let oom: Value = serde_json::from_str(
        lines
            .lines()
            .find(|l| l.contains(r#""type":"oom""#))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(oom["id"], c.id.as_str());
    let s = stats(rt, &c.id);
    assert_eq!(s["memory"]["usage"]["limit"], 32 << 20);
    delete_and_check(&c, &cg);
});

both!(pids_limit_stops_a_fork_bomb, |rt: &Rt| {
    let (c, cg) = ctr(
        rt,
        "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo all-forked",
        json!({"pids": {"limit": 10}}),
    );
    let (code, out, err) = c.run();
    assert!(
        !out.contains("all-forked"),
        "{}: forked past the limit",
        rt.name
    );
    assert_ne!(code, 0);
    assert!(err.contains("fork"), "{}: {err}", rt.name);
    delete_and_check(&c, &cg);
});

both!(cpu_quota_limits_a_busy_loop, |rt: &Rt| {
    // 20 % of one CPU.
    let (c, cg) = ctr(
        rt,
        "while :; do :; done",
        json!({"cpu": {"quota": 20000, "period": 100000}}),
    );
    start(&c);
    let before = cpu_ns(rt, &c.id);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ns(rt, &c.id) - before;
    let share = used as f64 / t0.elapsed().as_nanos() as f64;
    assert!(
        share < 0.30,
        "{}: the loop got {share:.2} of a CPU",
        rt.name
    );
    // The lower bound is loose: the host's CPUs may be busy with others.
    assert!(
        share > 0.02,
        "{}: the loop did not run ({share:.2})",
        rt.name
    );
    wait_for(10, "throttled periods", || {
        stats(rt, &c.id)["cpu"]["throttling"]["throttledPeriods"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    delete_and_check(&c, &cg);
});

both!(cpuset_pins_to_a_cpu, |rt: &Rt| {
    if !has_controller("cpuset") {
        eprintln!("skipped: no cpuset controller on this hierarchy");
        return;
    }
    let (c, cg) = ctr(
        rt,
        "grep Cpus_allowed_list /proc/self/status",
        json!({"cpu": {"cpus": "0"}}),
    );
    let out = c.run_ok();
    assert_eq!(
        out.split_whitespace().last(),
        Some("0"),
        "{}: {out}",
        rt.name
    );
    delete_and_check(&c, &cg);
});

both!(a_denied_device_cannot_be_used, |rt: &Rt| {
    // /dev/mem (1:1) is not among the devices every container gets. The
    // default rules allow mknod of any node (as runc's), so the node can
    // be made but neither read nor written; /dev/null stays usable.
    let c = Ctr::new(rt, &json!({}));
    let cg = TestCg::new(&c.id);
    let mut cfg = cg_config(
        "mknod /mem c 1 1 && echo made && head -c1 /mem >/dev/null && echo read; [ -c /mem ] && echo x > /mem && echo wrote; echo ok > /dev/null && echo null-ok",
        json!({}),
        &cg,
    );
    // CAP_MKNOD, so that only the device cgroup stands in the way.
    for set in ["bounding", "effective", "permitted"] {
        cfg["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    c.write_config(&cfg);
    let (_, out, err) = c.run();
    assert!(out.contains("made"), "{}: {out} {err}", rt.name);
    assert!(
        !out.contains("read"),
        "{}: /dev/mem readable: {out}",
        rt.name
    );
    assert!(
        !out.contains("wrote"),
        "{}: /dev/mem writable: {out}",
        rt.name
    );
    assert!(out.contains("null-ok"), "{}: {out} {err}", rt.name);
    assert!(
        err.contains("Operation not permitted"),
        "{}: {err}",
        rt.name
    );
    delete_and_check(&c, &cg);
});

/// An explicitly denied device can be neither created nor opened, even with
/// CAP_MKNOD: the denial is re-applied after the default wildcards (runc
/// lets the defaults' `c *:* m` re-allow mknod, so this is berth-only).
#[test]
fn an_explicitly_denied_device_cannot_be_created() {
    let Some(rt) = Rt::berth() else { return };
    let c = Ctr::new(&rt, &json!({}));
    let cg = TestCg::new(&c.id);
    let mut cfg = cg_config(
        "mknod /mem c 1 1 && echo made; echo ok > /dev/null && echo null-ok",
        json!({"devices": [{"allow": false, "access": "rwm"}, {"allow": false, "type": "c", "major": 1, "minor": 1, "access": "rwm"}]}),
        &cg,
    );
    for set in ["bounding", "effective", "permitted"] {
        cfg["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    c.write_config(&cfg);
    let (_, out, err) = c.run();
    assert!(!out.contains("made"), "/dev/mem created: {out} {err}");
    assert!(out.contains("null-ok"), "{out} {err}");
    delete_and_check(&c, &cg);
}

both!(pause_stops_progress_and_resume_restarts_it, |rt: &Rt| {
    let (c, cg) = ctr(rt, "while :; do :; done", json!({}));
    start(&c);
    rt.ok(&["pause", &c.id]);
    assert_eq!(rt.status(&c.id), "paused");
    let a = cpu_ns(rt, &c.id);
    std::thread::sleep(Duration::from_millis(700));
    let b = cpu_ns(rt, &c.id);
    assert!(
        b - a < 20_000_000,
        "{}: a paused loop ran {} ns",
        rt.name,
        b - a
    );
    // A paused container cannot be paused again nor exec'd into.
    assert!(!rt.out(&["pause", &c.id]).status.success());
    rt.ok(&["resume", &c.id]);
    assert_eq!(rt.status(&c.id), "running");
    // Progress again (generous bound: the host's CPUs may be busy).
    wait_for(10, "the resumed loop to run 200 ms", || {
        cpu_ns(rt, &c.id) - b > 200_000_000
    });
    assert!(!rt.out(&["resume", &c.id]).status.success());
    delete_and_check(&c, &cg);
});

both!(stats_show_real_numbers, |rt: &Rt| {
    let (c, cg) = ctr(
        rt,
        "sleep 1000 & i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; wait",
        json!({"pids": {"limit": 50}, "memory": {"limit": 268435456}}),
    );
    start(&c);
    // v1 counts user/kernel time in 10 ms ticks: wait for some.
    wait_for(20, "cpu time", || {
        let u = &stats(rt, &c.id)["cpu"]["usage"];
        u["total"].as_u64().unwrap_or(0) > 10_000_000
            && u["user"].as_u64().unwrap_or(0) + u["kernel"].as_u64().unwrap_or(0) > 0
    });
    let s = stats(rt, &c.id);
    assert!(s["pids"]["current"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["pids"]["limit"], 50, "{s}");
    assert!(s["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["memory"]["usage"]["limit"], 256 << 20, "{s}");
    assert!(
        s["cpu"]["usage"]["user"].as_u64().unwrap() > 0
            || s["cpu"]["usage"]["kernel"].as_u64().unwrap() > 0,
        "{s}"
    );
    // ps lists the cgroup's processes: sh and sleep.
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &c.id])).unwrap();
    assert!(pids.len() >= 2, "{pids:?}");
    delete_and_check(&c, &cg);
});

/// `update` with `-r -` (what containerd's shim does) and with flags.
fn update_stdin(rt: &Rt, id: &str, json: &str) -> std::process::Output {
    let mut child = rt
        .cmd(&["update", "--resources", "-", id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

both!(update_changes_a_running_containers_limits, |rt: &Rt| {
    let (c, cg) = ctr(
        rt,
        "sleep 1000",
        json!({"pids": {"limit": 20}, "memory": {"limit": 134217728}}),
    );
    start(&c);
    rt.ok(&["update", "--memory", "64m", "--pids-limit", "7", &c.id]);
    let s = stats(rt, &c.id);
    assert_eq!(
        (
            s["memory"]["usage"]["limit"].clone(),
            s["pids"]["limit"].clone()
        ),
        (json!(64u64 << 20), json!(7))
    );
    let o = update_stdin(
        rt,
        &c.id,
        r#"{"pids":{"limit":9},"cpu":{"quota":50000,"period":100000}}"#,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stats(rt, &c.id)["pids"]["limit"], 9);
    if rt.is_berth() {
        // Kernel memory limits are refused (runc 1.1 ignores them).
        let o = rt.out(&["update", "--kernel-memory", "10m", &c.id]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("--kernel-memory"));
        let st: Value = serde_json::from_str(
            &std::fs::read_to_string(rt.root.path().join(&c.id).join("state.json")).unwrap(),
        )
        .unwrap();
        let r = &st["config"]["linux"]["resources"];
        assert_eq!(r["pids"]["limit"], 9, "{r}");
        assert_eq!(r["memory"]["limit"], 64 << 20, "{r}");
        assert_eq!(r["cpu"]["quota"], 50000, "{r}");
    }
    delete_and_check(&c, &cg);
});

both!(delete_removes_the_cgroup_even_after_sigkill, |rt: &Rt| {
    let (c, cg) = ctr(
        rt,
        "sleep 1000 & sleep 1000",
        json!({"pids": {"limit": 10}}),
    );
    start(&c);
    assert!(cg.exists());
    rt.ok(&["kill", &c.id, "KILL"]);
    wait_for(10, "the container to stop", || {
        rt.status(&c.id) == "stopped"
    });
    c.rt.ok(&["delete", &c.id]);
    assert!(!cg.exists(), "{}: cgroup {} left", rt.name, cg.path);
});

both!(kill_all_reaches_every_process, |rt: &Rt| {
    let (c, cg) = ctr(rt, "sleep 1000 & sleep 1000 & wait", json!({}));
    start(&c);
    wait_for(10, "three processes", || {
        serde_json::from_str::<Vec<i32>>(&rt.ok(&["ps", "--format", "json", &c.id]))
            .unwrap()
            .len()
            == 3
    });
    rt.ok(&["kill", "--all", &c.id, "KILL"]);
    wait_for(10, "the container to stop", || {
        rt.status(&c.id) == "stopped"
    });
    delete_and_check(&c, &cg);
});

/// A create that must fail, naming `field` (berth); nothing may be left.
fn assert_create_refused(rt: &Rt, resources: Value, field: &str) {
    let (c, cg) = ctr(rt, "true", resources);
    let o = c.create();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}: create accepted it", rt.name);
    if rt.is_berth() {
        assert!(err.contains(field), "error does not name {field}: {err}");
    }
    assert_nothing_left(&c, &cg);
}

both!(cpuset_outside_the_host_is_refused, |rt: &Rt| {
    if !has_controller("cpuset") {
        eprintln!("skipped: no cpuset controller on this hierarchy");
        return;
    }
    assert_create_refused(rt, json!({"cpu": {"cpus": "0-1023"}}), "cpu.cpus");
});

both!(unified_keys_are_checked, |rt: &Rt| {
    match version() {
        // runc 1.1 on v1 refuses any unified key as well.
        CgroupVersion::V1 => {
            assert_create_refused(rt, json!({"unified": {"memory.high": "100000"}}), "unified")
        }
        CgroupVersion::V2 => {
            assert_create_refused(rt, json!({"unified": {"nosuch.max": "1"}}), "nosuch")
        }
    }
});

/// Fields this host's hierarchy cannot apply, and malformed keys, are
/// refused naming the field (berth; runc 1.1 silently skips controllers
/// it does not find mounted).
#[test]
fn unsupported_and_malformed_fields_are_refused() {
    let Some(rt) = Rt::berth() else { return };
    let mut cases = vec![(json!({"unified": {"memoryhigh": "1"}}), "memoryhigh")];
    match version() {
        CgroupVersion::V1 => {
            cases.push((json!({"unified": {"pids.max": "5"}}), "unified"));
            if !has_controller("hugetlb") {
                cases.push((
                    json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}),
                    "hugetlb",
                ));
            }
        }
        CgroupVersion::V2 => {
            cases.push((json!({"memory": {"swappiness": 10}}), "memory.swappiness"));
            cases.push((json!({"network": {"classID": 5}}), "network"));
        }
    }
    for (res, field) in cases {
        assert_create_refused(&rt, res, field);
    }
}

both!(limit_below_usage_is_refused, |rt: &Rt| {
    let (c, cg) = ctr(
        rt,
        "dd if=/dev/zero of=/dev/shm/f bs=1M count=8; sleep 1000",
        json!({"memory": {"limit": 134217728}}),
    );
    start(&c);
    wait_for(10, "memory use", || {
        stats(rt, &c.id)["memory"]["usage"]["usage"]
            .as_u64()
            .unwrap()
            > 8 << 20
    });
    let o = rt.out(&["update", "--memory", "1m", &c.id]);
    if !rt.is_berth() && version() == CgroupVersion::V2 {
        // runc 1.1 writes memory.max without a check on v2, and the kernel
        // then OOM-kills instead of refusing.
        return;
    }
    assert!(
        !o.status.success(),
        "{}: a limit below usage was accepted",
        rt.name
    );
    if rt.is_berth() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("memory.limit"), "{err}");
    }
    // The old limit is still in place.
    assert_eq!(stats(rt, &c.id)["memory"]["usage"]["limit"], 128 << 20);
    delete_and_check(&c, &cg);
});

#[test]
fn bad_update_input_names_the_field() {
    let Some(rt) = Rt::berth() else { return };
    let (c, cg) = ctr(&rt, "sleep 1000", json!({"pids": {"limit": 10}}));
    start(&c);
    for (args, field) in [
        (vec!["--memory", "lots"], "memory"),
        (vec!["--cpu-quota", "abc"], "cpu.quota"),
        (vec!["--blkio-weight", "5"], "blockIO.weight"),
    ] {
        let mut all = vec!["update"];
        all.extend(args.iter().copied());
        all.push(&c.id);
        let o = rt.out(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} accepted");
        assert!(err.contains(field), "{args:?}: {err}");
    }
    let o = update_stdin(&rt, &c.id, "{not json");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("resources JSON"));
    assert_eq!(stats(&rt, &c.id)["pids"]["limit"], 10);
    delete_and_check(&c, &cg);
}

#[test]
fn exec_joins_the_cgroup() {
    let Some(rt) = Rt::berth() else { return };
    let (c, cg) = ctr(&rt, "sleep 1000", json!({}));
    start(&c);
    let out = rt.ok(&["exec", &c.id, "cat", "/proc/self/cgroup"]);
    // Inside its cgroup namespace the container's cgroup is the root.
    assert!(
        out.lines().all(|l| l.ends_with(":/")),
        "exec'd process outside the container's cgroup: {out}"
    );
    delete_and_check(&c, &cg);
}

/// Every leaf of a JSON document: path → value (list elements under [i]).
fn leaves(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                leaves(x, format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            leaves(&a[0], format!("{path}[]"), out);
        }
        _ => out.push((path, v.clone())),
    }
}

fn is_set(v: &Value) -> bool {
    !(v.is_null() || *v == json!(0) || *v == json!([]) || *v == json!({}))
}

/// `events --stats` has runc's shape: the same sections, and every field
/// runc fills in is there (fields runc omits when zero may differ).
#[test]
fn stats_document_matches_runcs() {
    let (Some(b), Some(r)) = (Rt::berth(), Rt::runc()) else {
        return;
    };
    let script = "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 1000";
    let mut res = json!({"memory": {"limit": 134217728}, "pids": {"limit": 40}, "cpu": {"quota": 50000, "period": 100000}});
    if has_controller("cpuset") {
        res["cpu"]["cpus"] = json!("0");
    }
    let (cb, gb) = ctr(&b, script, res.clone());
    let (cr, gr) = ctr(&r, script, res);
    start(&cb);
    start(&cr);
    std::thread::sleep(Duration::from_millis(1500));
    let docs: Vec<Value> = [(&b, &cb), (&r, &cr)]
        .iter()
        .map(|(rt, c)| serde_json::from_str(rt.ok(&["events", "--stats", &c.id]).trim()).unwrap())
        .collect();
    let keys = |d: &Value| {
        d["data"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&docs[0]), keys(&docs[1]), "sections differ");
    let (mut lb, mut lr) = (vec![], vec![]);
    leaves(&docs[0], String::new(), &mut lb);
    leaves(&docs[1], String::new(), &mut lr);
    let berth_paths: std::collections::BTreeSet<&String> = lb.iter().map(|(p, _)| p).collect();
    for (path, value) in &lr {
        // Throttling counters depend on whether this particular run was
        // throttled; both omit them when zero.
        if is_set(value)
            && !path.starts_with(".data.memory.raw.")
            && !path.starts_with(".data.cpu.throttling.")
        {
            assert!(
                berth_paths.contains(path),
                "runc reports {path} = {value}, berth does not:\n{}",
                docs[0]
            );
        }
    }
    delete_and_check(&cb, &gb);
    delete_and_check(&cr, &gr);
}

/// The `events` stream prints a stats line every interval and ends, saying
/// why, when the container is deleted (runc would keep running).
#[test]
fn events_stream_ends_when_the_container_is_deleted() {
    let Some(rt) = Rt::berth() else { return };
    let (c, cg) = ctr(&rt, "sleep 1000", json!({"pids": {"limit": 10}}));
    start(&c);
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut events = rt
        .cmd(&["events", "--interval", "200ms", &c.id])
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    wait_for(10, "two stats lines", || {
        std::fs::read_to_string(out.path())
            .unwrap()
            .lines()
            // The last line may still be being written.
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "stats" && v["data"]["pids"]["limit"] == 10)
            .count()
            >= 2
    });
    delete_and_check(&c, &cg);
    let mut status = None;
    wait_for(10, "events to exit", || {
        status = events.try_wait().unwrap();
        status.is_some()
    });
    assert!(!status.unwrap().success());
    let text = std::fs::read_to_string(err.path()).unwrap();
    assert!(text.contains("deleted"), "{text}");
}

/// Rootless (here: uid 65534 via setpriv) without a delegated cgroup:
/// asking for limits is refused up front, naming linux.resources, and
/// leaves no state.
#[test]
fn rootless_limits_without_a_delegated_cgroup_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let Some(rt) = Rt::berth() else { return };
    if !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: setpriv missing");
        return;
    }
    let (c, cg) = ctr(&rt, "true", json!({"pids": {"limit": 5}}));
    for p in [c.path(), rt.root.path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let o = Command::new("/usr/bin/setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&rt.bin)
        .arg("--root")
        .arg(rt.root.path())
        .args(["create", "--bundle", c.path().to_str().unwrap(), &c.id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "rootless create with limits succeeded");
    assert!(
        err.contains("linux.resources") && err.contains("rootless"),
        "{err}"
    );
    assert_nothing_left(&c, &cg);
}

#[test]
fn features_report_cgroup_support() {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-runtime"))
        .arg("features")
        .output()
        .unwrap();
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["linux"]["cgroup"]["v1"], true);
    assert_eq!(f["linux"]["cgroup"]["v2"], true);
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);
}

/// Runs this binary's tests inside a cgroup-v2-only user-mode-linux kernel
/// against the same berth-runtime build, and fails if they fail there.
#[test]
fn uml_v2_runtime() {
    berth_testutil::run_self_in_uml(&[], 10);
}
