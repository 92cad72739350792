//! Resource limits end to end: `stats` figures from the container's cgroup,
//! OOM kills recorded in `inspect`, and every resource flag checked for its
//! effect (the host cgroup files, what the container sees, what the kernel
//! refuses), under berth's runtime and, where it matters, runc.
//! `uml_v2_resources` runs them again on a cgroup-v2-only kernel.

mod common;

use berth_cgroups::{CgroupVersion, Hierarchy, Manager};
use common::Instance;
use serde_json::Value;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;

/// The host directory of the container's cgroup for `controller` (v2: the
/// one directory), where the engine puts it (`/berth/<id>`).
fn cgroup_dir(b: &Instance, name: &str, controller: &str) -> (CgroupVersion, PathBuf) {
    let id = b.inspect(name, "{{.Id}}");
    let h = Hierarchy::detect().expect("a cgroup hierarchy");
    let m = Manager::new(&h, &format!("/berth/{id}"), &id).unwrap();
    let key = match h.version() {
        CgroupVersion::V1 => controller,
        CgroupVersion::V2 => "",
    };
    let dir = m.paths()[key].clone();
    assert!(dir.is_dir(), "{} missing", dir.display());
    (h.version(), dir)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_string()
}

/// `stats --no-stream --format json` of one container.
fn stats_json(b: &Instance, name: &str) -> Value {
    let out = b.ok(&["stats", "--no-stream", "--format", "json", name]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Bytes of a `docker stats` size ("64.25MiB", "1.05kB", "0B").
fn size(s: &str) -> u64 {
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("size {s:?}"));
    let mult = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => MIB as f64,
        "GiB" => (1u64 << 30) as f64,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => panic!("unit of {s:?}"),
    };
    (n * mult) as u64
}

/// "used / limit" → (used, limit) in bytes.
fn pair(v: &Value, field: &str) -> (u64, u64) {
    let text = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"));
    let (a, b) = text.split_once(" / ").unwrap();
    (size(a), size(b))
}

fn runc() -> Option<&'static str> {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// 64 MiB written into a tmpfs inside the container: page cache charged to
/// the container's memory cgroup but in no process's RSS, so only the
/// cgroup sees it.
fn memory_in_tmpfs(b: &Instance, name: &str, runtime: &[&str]) {
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--memory",
        "256m",
        "--tmpfs",
        "/data:size=100m",
    ];
    args.extend_from_slice(runtime);
    args.extend([
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/data/f bs=1M count=64 2>/dev/null; echo ready; while true; do sleep 1; done",
    ]);
    b.ok(&args);
    assert!(b.until(30, || b.ok(&["logs", name]).contains("ready")));
    // --memory alone: as much swap again, as Docker (swap is accounted
    // here: cgroup v1 with memsw, or v2).
    assert_eq!(
        b.inspect(name, "{{.HostConfig.MemorySwap}}"),
        (512 * MIB).to_string()
    );
    let (version, mem) = cgroup_dir(b, name, "memory");
    match version {
        CgroupVersion::V1 => assert_eq!(
            read(&mem, "memory.memsw.limit_in_bytes"),
            (512 * MIB).to_string()
        ),
        CgroupVersion::V2 => assert_eq!(read(&mem, "memory.swap.max"), (256 * MIB).to_string()),
    }
    let v = stats_json(b, name);
    let (used, limit) = pair(&v, "MemUsage");
    assert!(used >= 64 * MIB, "{v}");
    assert_eq!(limit, 256 * MIB, "{v}");
    let perc: f64 = v["MemPerc"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!((25.0..100.0).contains(&perc), "{v}");
    // sh and sleep.
    let pids: u64 = v["PIDs"].as_str().unwrap().parse().unwrap();
    assert!(pids >= 1, "{v}");
    assert_eq!(v["Name"], name);
    assert_eq!(v["NetIO"], "0B / 0B", "--network none has only lo");
    // The same figures through a template and the default table.
    let t = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.MemUsage}}",
        name,
    ]);
    let (n, mem) = t.trim().split_once('|').unwrap();
    assert_eq!(n, name);
    assert!(mem.ends_with(" / 256MiB"), "{t}");
    let table = b.ok(&["stats", "--no-stream"]);
    let header = table.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.contains(name) && l.contains("/ 256MiB")),
        "{table}"
    );
}

#[test]
fn stats_read_memory_from_the_cgroup() {
    let Some(b) = Instance::new() else { return };
    memory_in_tmpfs(&b, "mem", &[]);
}

#[test]
fn stats_read_memory_from_the_cgroup_under_runc() {
    let Some(b) = Instance::new() else { return };
    let Some(runc) = runc() else {
        eprintln!("skipping: runc not installed");
        return;
    };
    memory_in_tmpfs(&b, "mem-runc", &["--runtime", runc]);
}

/// The shell builds a 100 MB string in a 32 MiB cgroup: the OOM killer
/// kills it (the biggest process, the container's init).
fn oom_killed(b: &Instance, name: &str, runtime: &[&str]) {
    let mut args = vec![
        "run",
        "--name",
        name,
        "--network",
        "none",
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
    ];
    args.extend_from_slice(runtime);
    args.extend([
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    let o = b.run(&args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(137), "{out}");
    assert!(!out.contains("survived"));
    assert_eq!(b.inspect(name, "{{.State.OOMKilled}}"), "true");
    assert_eq!(b.inspect(name, "{{.State.ExitCode}}"), "137");
    let ev = b.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "event=oom",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(ev, "oom\n");
}

#[test]
fn over_the_memory_limit_is_oom_killed() {
    let Some(b) = Instance::new() else { return };
    oom_killed(&b, "oom", &[]);
    b.ok(&[
        "run",
        "--name",
        "fine",
        "--network",
        "none",
        "--memory",
        "32m",
        "busybox",
        "true",
    ]);
    assert_eq!(b.inspect("fine", "{{.State.OOMKilled}}"), "false");
}

#[test]
fn over_the_memory_limit_is_oom_killed_under_runc() {
    let Some(b) = Instance::new() else { return };
    let Some(runc) = runc() else {
        eprintln!("skipping: runc not installed");
        return;
    };
    oom_killed(&b, "oom-runc", &["--runtime", runc]);
}

/// Every CPU, pid, ulimit and device flag on one busy container.
#[test]
fn resource_flags_take_effect() {
    let Some(b) = Instance::new() else { return };
    // The UML kernel is built without cpusets.
    let has_cpuset = Hierarchy::detect()
        .and_then(|h| h.controllers())
        .is_ok_and(|c| c.contains("cpuset"));
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "lim",
        "--network",
        "none",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "10",
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        "--ulimit",
        "nofile=100:200",
        "--device",
        "/dev/null:/dev/mynull",
    ];
    if has_cpuset {
        args.extend(["--cpuset-cpus", "0"]);
    } else {
        eprintln!("no cpuset controller here: --cpuset-cpus not checked");
    }
    args.extend(["busybox", "sh", "-c", "while true; do :; done"]);
    b.ok(&args);
    // --cpus: a CFS quota of half a period, which throttles the busy loop.
    let (v, cpu) = cgroup_dir(&b, "lim", "cpu");
    match v {
        CgroupVersion::V1 => {
            assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
            assert_eq!(read(&cpu, "cpu.shares"), "512");
        }
        CgroupVersion::V2 => {
            assert_eq!(read(&cpu, "cpu.max"), "50000 100000");
            assert_eq!(
                read(&cpu, "cpu.weight"),
                berth_cgroups::shares_to_weight(512).to_string()
            );
        }
    }
    let throttled = || {
        berth_cgroups::stats::parse_throttling(&read(&cpu, "cpu.stat"), v == CgroupVersion::V2)
            .throttled_periods
            > 0
    };
    assert!(b.until(30, throttled), "the busy loop was never throttled");
    let s = stats_json(&b, "lim");
    let perc: f64 = s["CPUPerc"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(perc > 0.0 && perc < 100.0, "{s}");
    // --cpuset-cpus: the kernel lets the container run on CPU 0 only.
    if has_cpuset {
        let (_, cpuset) = cgroup_dir(&b, "lim", "cpuset");
        assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
        assert_eq!(
            b.ok(&[
                "exec",
                "lim",
                "sh",
                "-c",
                "grep Cpus_allowed_list /proc/self/status"
            ]),
            "Cpus_allowed_list:\t0\n"
        );
    }
    // --memory / --memory-swap.
    let (_, mem) = cgroup_dir(&b, "lim", "memory");
    match v {
        CgroupVersion::V1 => {
            assert_eq!(read(&mem, "memory.limit_in_bytes"), (64 * MIB).to_string());
            assert_eq!(
                read(&mem, "memory.memsw.limit_in_bytes"),
                (64 * MIB).to_string()
            );
        }
        CgroupVersion::V2 => {
            assert_eq!(read(&mem, "memory.max"), (64 * MIB).to_string());
            assert_eq!(read(&mem, "memory.swap.max"), "0");
        }
    }
    assert_eq!(pair(&s, "MemUsage").1, 64 * MIB, "{s}");
    // --ulimit: soft and hard RLIMIT_NOFILE.
    assert_eq!(
        b.ok(&["exec", "lim", "sh", "-c", "ulimit -n; ulimit -Hn"]),
        "100\n200\n"
    );
    // --device: the host's /dev/null (1:3) under another name, writable.
    assert_eq!(
        b.ok(&[
            "exec",
            "lim",
            "sh",
            "-c",
            "echo x > /dev/mynull && stat -c '%t:%T' /dev/mynull"
        ]),
        "1:3\n"
    );
    // --pids-limit: forking stops at 10 tasks in the cgroup.
    let (_, pids) = cgroup_dir(&b, "lim", "pids");
    assert_eq!(read(&pids, "pids.max"), "10");
    let o = b.run(&[
        "exec",
        "lim",
        "sh",
        "-c",
        // The sleeps must not hold exec's stdout and stderr open.
        "for i in $(seq 1 20); do sleep 1000 >/dev/null 2>&1 & done; echo all-forked",
    ]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        !o.status.success() && !out.contains("all-forked"),
        "{out}{err}"
    );
    assert!(err.contains("can't fork"), "{err}");
    let current: u64 = read(&pids, "pids.current").parse().unwrap();
    assert!(current <= 10, "{current}");
    // The init and the sleeps that could be forked, now the init's.
    let n: u64 = stats_json(&b, "lim")["PIDs"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((2..=10).contains(&n), "{n}");
    // inspect: Docker's HostConfig names and units.
    let i: Value = serde_json::from_str(&b.ok(&["inspect", "lim"])).unwrap();
    let hc = &i[0]["HostConfig"];
    assert_eq!(hc["Memory"], 64 * MIB, "{hc}");
    assert_eq!(hc["MemorySwap"], 64 * MIB, "{hc}");
    assert_eq!(hc["NanoCpus"], 500_000_000, "{hc}");
    assert_eq!(hc["CpuShares"], 512, "{hc}");
    assert_eq!(hc["CpusetCpus"], if has_cpuset { "0" } else { "" }, "{hc}");
    assert_eq!(hc["PidsLimit"], 10, "{hc}");
    assert_eq!(
        hc["Ulimits"],
        serde_json::json!([{"Name": "nofile", "Soft": 100, "Hard": 200}])
    );
    assert_eq!(
        hc["Devices"],
        serde_json::json!([{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rwm"}])
    );
    assert_eq!(i[0]["State"]["OOMKilled"], false);
    b.ok(&["rm", "-f", "lim"]);
    assert!(
        !cpu.exists() && !pids.exists(),
        "the cgroup outlived the container"
    );
}

/// The same tests on a cgroup-v2-only kernel: this binary again, inside
/// user-mode Linux (tests/uml/run.sh).
#[test]
fn uml_v2_resources() {
    berth_testutil::run_self_in_uml(&[], 5);
}
