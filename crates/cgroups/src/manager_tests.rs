//! The v1 and v2 backends against temporary directories laid out like each
//! hierarchy: what is written where, conversions, rollback.

use crate::{CgroupVersion, Hierarchy, Manager};
use oci_spec::runtime::LinuxResources;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

fn touch(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (f, content) in files {
        fs::write(dir.join(f), content).unwrap();
    }
}

fn read(p: PathBuf) -> String {
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const V1_FILES: &[(&str, &[(&str, &str)])] = &[
    (
        "cpu,cpuacct",
        &[
            ("cpu.shares", "1024"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.cfs_period_us", "100000"),
            (
                "cpu.stat",
                "nr_periods 4\nnr_throttled 2\nthrottled_time 900\n",
            ),
            ("cpuacct.usage", "5000\n"),
            ("cpuacct.usage_percpu", "3000 2000\n"),
            ("cpuacct.stat", "user 3\nsystem 1\n"),
        ],
    ),
    ("cpuset", &[("cpuset.cpus", ""), ("cpuset.mems", "")]),
    (
        "memory",
        &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ("memory.usage_in_bytes", "4096"),
            ("memory.max_usage_in_bytes", "8192"),
            ("memory.failcnt", "0"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
            ("memory.stat", "cache 100\ntotal_cache 200\n"),
        ],
    ),
    ("pids", &[("pids.max", "max"), ("pids.current", "2")]),
    ("devices", &[("devices.allow", ""), ("devices.deny", "")]),
    ("freezer", &[("freezer.state", "THAWED")]),
];

/// A v1 root with every controller mounted and the leaf `leaf` already made
/// (a tempdir gets no control files from mkdir, so the test plays kernel).
fn v1_tree(leaf: &str) -> (tempfile::TempDir, Hierarchy) {
    let dir = tempfile::tempdir().unwrap();
    for (mount, files) in V1_FILES {
        touch(&dir.path().join(mount), &[("cgroup.procs", "")]);
        touch(&dir.path().join(mount).join(leaf), files);
        touch(&dir.path().join(mount).join(leaf), &[("cgroup.procs", "")]);
    }
    // Every cpuset level above the leaf has cpus/mems, as a live hierarchy.
    let mut cur = dir.path().join("cpuset");
    touch(&cur, &[("cpuset.cpus", "0-1"), ("cpuset.mems", "0")]);
    let comps: Vec<_> = Path::new(leaf).components().collect();
    for c in &comps[..comps.len() - 1] {
        cur.push(c);
        touch(&cur, &[("cpuset.cpus", "0-1"), ("cpuset.mems", "0")]);
    }
    let h = Hierarchy::at(dir.path()).unwrap();
    (dir, h)
}

fn v2_tree(leaf: &str, controllers: &str) -> (tempfile::TempDir, Hierarchy) {
    let dir = tempfile::tempdir().unwrap();
    touch(
        dir.path(),
        &[
            ("cgroup.controllers", controllers),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", ""),
        ],
    );
    let leaf_dir = dir.path().join(leaf);
    // Intermediate cgroups (between root and leaf) have their own files.
    let mut cur = dir.path().to_path_buf();
    let comps: Vec<_> = Path::new(leaf).components().collect();
    for c in &comps[..comps.len() - 1] {
        cur.push(c);
        touch(
            &cur,
            &[
                ("cgroup.controllers", controllers),
                ("cgroup.subtree_control", ""),
            ],
        );
    }
    touch(
        &leaf_dir,
        &[
            ("cgroup.procs", ""),
            ("cgroup.freeze", "0"),
            ("cgroup.events", "populated 1\nfrozen 0\n"),
            ("cpu.weight", "100"),
            ("cpu.max", "max 100000"),
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("memory.low", "0"),
            ("pids.max", "max"),
            ("io.weight", "default 100"),
            ("io.max", ""),
        ],
    );
    let h = Hierarchy::at(dir.path()).unwrap();
    (dir, h)
}

#[test]
fn v1_paths_absolute_relative_default() {
    let (dir, h) = v1_tree("x");
    let root = dir.path().canonicalize().unwrap();
    let m = Manager::new(&h, "/a/b", "c1").unwrap();
    assert_eq!(m.paths()["memory"], root.join("memory/a/b"));
    assert_eq!(m.paths()["cpu"], root.join("cpu,cpuacct/a/b"));
    assert_eq!(
        m.paths()["cpuacct"],
        m.paths()["cpu"],
        "co-mounted controllers share a dir"
    );
    assert_eq!(
        Manager::new(&h, "", "c1").unwrap().paths()["pids"],
        root.join("pids/berth/c1")
    );
    let own: BTreeMap<String, String> =
        [("memory".to_string(), "/process_api/p1".to_string())].into();
    let h = h.with_own_cgroups(own);
    let m = Manager::new(&h, "rel/c", "c1").unwrap();
    assert_eq!(
        m.paths()["memory"],
        root.join("memory/process_api/p1/rel/c")
    );
    assert_eq!(m.paths()["pids"], root.join("pids/rel/c"));
    assert!(Manager::new(&h, "/a/../../etc", "c1").is_err());
}

#[test]
fn v2_relative_path_is_under_the_parent_of_own_cgroup() {
    let (dir, h) = v2_tree("x", "cpu memory pids");
    let h = h.with_own_cgroups([(String::new(), "/user.slice/session-2.scope".to_string())].into());
    let m = Manager::new(&h, "berth/c1", "c1").unwrap();
    assert_eq!(
        m.paths(),
        [(String::new(), dir.path().join("user.slice/berth/c1"))].into()
    );
    assert_eq!(m.cgroup_path(), "/user.slice/berth/c1");
    assert_eq!(m.version(), CgroupVersion::V2);
}

#[test]
fn manager_roundtrips_through_json() {
    let (_dir, h) = v1_tree("x");
    let m = Manager::new(&h, "/x", "c1").unwrap();
    let back: Manager = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back, m);
}

#[test]
fn v1_create_writes_each_controller_dir() {
    let (dir, h) = v1_tree("t/c1");
    let m = Manager::new(&h, "/t/c1", "c1").unwrap();
    let r = res(
        r#"{"memory":{"limit":33554432,"swap":33554432},"cpu":{"shares":512,"quota":20000,"period":50000,"cpus":"0"},
            "pids":{"limit":10},"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    );
    m.create(Some(&r)).unwrap();
    let root = dir.path();
    assert_eq!(
        read(root.join("memory/t/c1/memory.limit_in_bytes")),
        "33554432"
    );
    assert_eq!(
        read(root.join("memory/t/c1/memory.memsw.limit_in_bytes")),
        "33554432"
    );
    assert_eq!(read(root.join("cpu,cpuacct/t/c1/cpu.shares")), "512");
    assert_eq!(
        read(root.join("cpu,cpuacct/t/c1/cpu.cfs_quota_us")),
        "20000"
    );
    assert_eq!(
        read(root.join("cpu,cpuacct/t/c1/cpu.cfs_period_us")),
        "50000"
    );
    assert_eq!(read(root.join("cpuset/t/c1/cpuset.cpus")), "0");
    assert_eq!(read(root.join("pids/t/c1/pids.max")), "10");
    assert_eq!(read(root.join("devices/t/c1/devices.deny")), "a");
    assert_eq!(read(root.join("devices/t/c1/devices.allow")), "c 1:3 rwm");
    assert_eq!(
        read(root.join("cpuset/t/cpuset.cpus")),
        "0-1",
        "parent keeps its cpus"
    );
    assert!(!root.join("memory/t/c1/memory.swappiness").exists());
}

#[test]
fn v1_new_cpuset_dirs_inherit_parent_cpus() {
    let (dir, h) = v1_tree("x");
    let m = Manager::new(&h, "/fresh/c", "c").unwrap();
    // The kernel gives new cpuset dirs empty cpus/mems; play kernel.
    touch(
        &dir.path().join("cpuset/fresh/c"),
        &[("cpuset.cpus", ""), ("cpuset.mems", "")],
    );
    touch(
        &dir.path().join("cpuset/fresh"),
        &[("cpuset.cpus", ""), ("cpuset.mems", "")],
    );
    m.create(None).unwrap();
    assert_eq!(read(dir.path().join("cpuset/fresh/cpuset.cpus")), "0-1");
    assert_eq!(read(dir.path().join("cpuset/fresh/c/cpuset.mems")), "0");
    assert!(dir.path().join("memory/fresh/c").is_dir());
}

#[test]
fn v2_create_enables_controllers_and_converts() {
    let (dir, h) = v2_tree("berth/c1", "cpu io memory pids");
    let m = Manager::new(&h, "", "c1").unwrap();
    let r = res(
        r#"{"memory":{"limit":33554432,"swap":67108864},"cpu":{"shares":1024,"quota":20000,"period":100000},
            "pids":{"limit":-1},"blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}]}}"#,
    );
    m.create(Some(&r)).unwrap();
    let root = dir.path();
    let leaf = root.join("berth/c1");
    assert_eq!(read(leaf.join("memory.max")), "33554432");
    assert_eq!(read(leaf.join("memory.swap.max")), "33554432");
    assert_eq!(read(leaf.join("cpu.weight")), "39");
    assert_eq!(read(leaf.join("cpu.max")), "20000 100000");
    assert_eq!(read(leaf.join("pids.max")), "max");
    assert_eq!(
        read(leaf.join("io.weight")),
        "default 4950",
        "no io.bfq.weight here: io.weight converted"
    );
    assert_eq!(read(leaf.join("io.max")), "8:0 rbps=1000");
    // Each controller enabled with its own write; a regular file keeps the last.
    assert!(read(root.join("cgroup.subtree_control")).starts_with('+'));
    assert!(read(root.join("berth/cgroup.subtree_control")).starts_with('+'));
    assert!(m.clone_into_fd().unwrap().is_some());
}

#[test]
fn v2_missing_kernel_file_fails_before_any_write_and_removes_new_dirs() {
    let (dir, h) = v2_tree("x", "cpu memory pids");
    let m = Manager::new(&h, "/new/c1", "c1").unwrap();
    touch(
        &dir.path().join("new"),
        &[
            ("cgroup.controllers", "cpu memory pids"),
            ("cgroup.subtree_control", ""),
        ],
    );
    let err = m
        .create(Some(&res(r#"{"pids":{"limit":5}}"#)))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("linux.resources.pids.limit is not supported on cgroup v2: this kernel provides no pids.max"), "{err}");
    assert!(
        !dir.path().join("new/c1").exists(),
        "created dirs removed on error"
    );
    assert!(dir.path().join("new").exists(), "pre-existing dirs kept");
    // Unknown controller in unified: rejected before anything is created.
    let err = m
        .create(Some(&res(r#"{"unified":{"rdma.max":"x"}}"#)))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown controller \"rdma\""), "{err}");
    assert!(!dir.path().join("new/c1").exists());
}

#[test]
fn failed_write_rolls_back_earlier_ones() {
    let (dir, h) = v1_tree("c");
    let m = Manager::new(&h, "/c", "c").unwrap();
    // The kernel refusing pids.max is simulated by a directory in its place.
    let pids_max = dir.path().join("pids/c/pids.max");
    fs::remove_file(&pids_max).unwrap();
    fs::create_dir(&pids_max).unwrap();
    let err = m
        .update(&res(r#"{"cpu":{"shares":512},"pids":{"limit":5}}"#))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("linux.resources.pids.limit: writing \"5\" to "),
        "{err}"
    );
    assert_eq!(
        read(dir.path().join("cpu,cpuacct/c/cpu.shares")),
        "1024",
        "rolled back"
    );
}

#[test]
fn v1_update_refuses_limit_below_usage() {
    let (dir, h) = v1_tree("c");
    let m = Manager::new(&h, "/c", "c").unwrap();
    let err = m
        .update(&res(r#"{"memory":{"limit":1024}}"#))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "linux.resources.memory.limit: 1024 bytes is below the current usage of 4096 bytes"
    );
    assert_eq!(
        read(dir.path().join("memory/c/memory.limit_in_bytes")),
        "9223372036854771712"
    );
}

#[test]
fn v1_stats_and_oom_count_from_files() {
    let (_dir, h) = v1_tree("c");
    let m = Manager::new(&h, "/c", "c").unwrap();
    let s = m.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 5000);
    assert_eq!(s.cpu.usage.percpu, vec![3000, 2000]);
    assert_eq!(s.cpu.usage.user, 30_000_000);
    assert_eq!(s.cpu.throttling.throttled_periods, 2);
    assert_eq!(s.memory.usage.usage, 4096);
    assert_eq!(s.memory.usage.max, 8192);
    assert_eq!(s.memory.cache, 100);
    assert_eq!(s.pids.current, 2);
    assert_eq!(s.pids.limit, 0, "max → 0 as runc");
    assert_eq!(m.oom_kill_count().unwrap(), 3);
}

/// As this host under mq-deadline: BFQ's counters and the throttle layer's
/// (with no throttle limit set) list no device; the first that does wins.
#[test]
fn v1_block_io_from_the_first_file_with_devices() {
    let (dir, _) = v1_tree("c");
    touch(&dir.path().join("blkio"), &[("cgroup.procs", "")]);
    let blkio = dir.path().join("blkio/c");
    let h = Hierarchy::at(dir.path()).unwrap();
    touch(
        &blkio,
        &[
            ("cgroup.procs", ""),
            ("blkio.bfq.io_service_bytes_recursive", "Total 0\n"),
            ("blkio.throttle.io_service_bytes_recursive", "Total 0\n"),
        ],
    );
    let m = Manager::new(&h, "/c", "c").unwrap();
    assert!(
        m.stats()
            .unwrap()
            .blkio
            .io_service_bytes_recursive
            .is_empty()
    );
    touch(
        &blkio,
        &[(
            "blkio.throttle.io_service_bytes_recursive",
            "254:0 Read 4096\n254:0 Write 8192\n254:0 Total 12288\nTotal 12288\n",
        )],
    );
    let e = m.stats().unwrap().blkio.io_service_bytes_recursive;
    assert_eq!(e.len(), 3, "{e:?}");
    touch(
        &blkio,
        &[(
            "blkio.bfq.io_service_bytes_recursive",
            "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
        )],
    );
    let e = m.stats().unwrap().blkio.io_service_bytes_recursive;
    assert_eq!((e.len(), e[0].major, e[1].value), (2, 8, 2), "{e:?}");
}

#[test]
fn v2_stats_and_oom_count_from_files() {
    let (dir, h) = v2_tree("c", "cpu memory pids io");
    let leaf = dir.path().join("c");
    touch(
        &leaf,
        &[
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 2\nnr_throttled 1\nthrottled_usec 30\n",
            ),
            ("memory.current", "8192\n"),
            ("memory.max", "33554432\n"),
            ("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
            ("memory.stat", "anon 4096\nfile 1024\n"),
            ("pids.current", "3\n"),
            ("pids.max", "20\n"),
            ("io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.current", "0\n"),
        ],
    );
    let m = Manager::new(&h, "/c", "c").unwrap();
    let s = m.stats().unwrap();
    assert_eq!(
        (s.cpu.usage.total, s.cpu.throttling.throttled_time),
        (1_500_000, 30_000)
    );
    assert_eq!(
        (
            s.memory.usage.usage,
            s.memory.usage.limit,
            s.memory.usage.failcnt
        ),
        (8192, 33_554_432, 4)
    );
    assert_eq!(s.memory.cache, 1024);
    assert_eq!((s.pids.current, s.pids.limit), (3, 20));
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
    assert!(s.hugetlb.contains_key("2MB"));
    assert_eq!(m.oom_kill_count().unwrap(), 1);
}

#[test]
fn v1_freeze_uses_freezer_state() {
    let (dir, h) = v1_tree("c");
    let m = Manager::new(&h, "/c", "c").unwrap();
    // A regular file reads back what was written, so FROZEN is immediate.
    m.freeze().unwrap();
    assert_eq!(read(dir.path().join("freezer/c/freezer.state")), "FROZEN");
    assert!(m.is_frozen().unwrap());
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());
}

#[test]
fn pids_are_collected_recursively_and_deduplicated() {
    let (dir, h) = v1_tree("c");
    fs::write(dir.path().join("pids/c/cgroup.procs"), "10\n11\n").unwrap();
    fs::write(dir.path().join("memory/c/cgroup.procs"), "10\n").unwrap();
    touch(&dir.path().join("pids/c/sub"), &[("cgroup.procs", "12\n")]);
    let m = Manager::new(&h, "/c", "c").unwrap();
    assert_eq!(m.pids().unwrap(), vec![10, 11, 12]);
}
