//! Escape attempts from inside busybox containers. Each attack runs against
//! berth-runtime and, as oracles, runc and crun: berth must hold wherever
//! they hold. Attacks that busybox cannot make come from a small static C
//! program (`tests/helpers/attack.c`, built with `gcc -static` on first use)
//! copied into the container as `/bin/attack`. Where a defence can be
//! switched off in the config, a `*_control` test switches it off and shows
//! the same attack succeeding, which proves the attack test can fail.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Ctr, Rt, armed, config};
use serde_json::{Value, json};

// Where an oracle is known not to hold: the test prints the gap instead
// of failing (docs/security.md lists them).
fn oracle_gap(rt: &Rt, gap: &str) -> bool {
    known_gap(rt, &["crun"], gap)
}

// The same for gaps of the oracles in `who`.
fn known_gap(rt: &Rt, who: &[&str], gap: &str) -> bool {
    if who.contains(&rt.name) {
        eprintln!("known {} gap: {gap}", rt.name);
        return true;
    }
    false
}

// `probe errno` lines into a map.
fn probes(out: &str) -> HashMap<String, i32> {
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

// A config with berth's default profile: Docker's capability set in
// bounding/effective/permitted and the default seccomp filter.
fn default_profile(args: &[&str]) -> Value {
    let mut cfg = config(args);
    let caps: Vec<String> = berth_runtime::profiles::default_capabilities()
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    cfg["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    cfg["linux"]["seccomp"] =
        serde_json::to_value(berth_runtime::profiles::default_seccomp()).unwrap();
    cfg
}

fn run_probes(rt: &Rt, cfg: &Value) -> HashMap<String, i32> {
    let c = armed(rt, cfg);
    let out = c.run_ok();
    probes(&out)
}

const BLOCKED: [&str; 12] = [
    "keyctl",
    "add_key",
    "request_key",
    "unshare_user",
    "clone_newuser",
    "personality_no_aslr",
    "io_uring_setup",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "mount",
    "open_by_handle_at",
];

all3!(seccomp_default_profile_blocks, |rt: Rt| {
    let p = run_probes(&rt, &default_profile(&["/bin/attack", "sys"]));
    for name in BLOCKED {
        assert_ne!(p[name], 0, "{}: {name} succeeded: {p:?}", rt.name);
    }
    assert_eq!(p["clone3"], libc::ENOSYS, "{}: {p:?}", rt.name);
    assert_eq!(p["fork"], 0, "{}: {p:?}", rt.name);
    assert_eq!(p["getpid"], 0, "{}: {p:?}", rt.name);
});

all3!(seccomp_control_without_filter, |rt: Rt| {
    // The same probes without a filter: the kernel allows these to a
    // container's root, so only seccomp stops them above.
    let mut cfg = default_profile(&["/bin/attack", "sys"]);
    cfg["linux"].as_object_mut().unwrap().remove("seccomp");
    let p = run_probes(&rt, &cfg);
    for name in [
        "keyctl",
        "add_key",
        "unshare_user",
        "personality_no_aslr",
        "clone3",
    ] {
        assert_eq!(
            p[name], 0,
            "{}: {name} failed without seccomp: {p:?}",
            rt.name
        );
    }
});

all3!(default_profile_runs_a_normal_workload, |rt: Rt| {
    let script = "set -e; echo hello | tr a-z A-Z; ls / >/dev/null; ps >/dev/null; \
        (sleep 0.1 &) ; wait; mkdir -p /tmp/w && cd /tmp/w && echo data > f && cat f && sort f | uniq; \
        httpd -p 127.0.0.1:8080 -h /tmp/w; sleep 0.2; wget -q -O - http://127.0.0.1:8080/f; \
        chown nobody /tmp/w/f; chroot / true; echo ok";
    let mut cfg = default_profile(&["sh", "-c", script]);
    cfg["root"]["readonly"] = json!(false);
    let out = Ctr::new(&rt, &cfg).run_ok();
    assert_eq!(out, "HELLO\ndata\ndata\ndata\nok\n", "{}", rt.name);
});

// Capability masks from /proc/self/status.
fn cap_masks(status: &str) -> HashMap<String, u64> {
    status
        .lines()
        .filter(|l| l.starts_with("Cap"))
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), u64::from_str_radix(v.trim(), 16).ok()?))
        })
        .collect()
}

const CHOWN: u64 = 1 << 0;
const KILL: u64 = 1 << 5;
const NET_BIND: u64 = 1 << 10;
const SYS_ADMIN: u64 = 1 << 21;

fn caps_config(extra: &[&str]) -> Value {
    let mut cfg = config(&["sh", "-c", "cat /proc/self/status; /bin/attack caps"]);
    let mut bounding = vec!["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let mut inh = vec!["CAP_KILL"];
    bounding.extend(extra);
    inh.extend(extra);
    cfg["process"]["capabilities"] = json!({
        "bounding": bounding, "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"], "inheritable": inh, "ambient": inh,
    });
    cfg
}

all3!(capabilities_exactly_as_configured, |rt: Rt| {
    let c = armed(&rt, &caps_config(&[]));
    let out = c.run_ok();
    let m = cap_masks(&out);
    assert_eq!(m["CapBnd"], CHOWN | KILL | NET_BIND, "{}: {out}", rt.name);
    assert_eq!(m["CapInh"], KILL, "{}: {out}", rt.name);
    assert_eq!(m["CapAmb"], KILL, "{}: {out}", rt.name);
    // Ambient caps join permitted and effective across execve.
    assert_eq!(m["CapPrm"], CHOWN | KILL, "{}: {out}", rt.name);
    assert_eq!(m["CapEff"], CHOWN | KILL, "{}: {out}", rt.name);
    let p = probes(&out);
    assert_ne!(p["capset_inheritable_all"], 0, "{}: {out}", rt.name);
    assert_ne!(p["ambient_raise_sys_admin"], 0, "{}: {out}", rt.name);
    assert_ne!(p["bounding_has_sys_admin"], 0, "{}: {out}", rt.name);
});

all3!(capabilities_control_with_sys_admin, |rt: Rt| {
    let mut cfg = caps_config(&["CAP_SYS_ADMIN"]);
    cfg["process"]["capabilities"]["permitted"] = json!(["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]);
    let out = armed(&rt, &cfg).run_ok();
    let m = cap_masks(&out);
    assert_ne!(m["CapAmb"] & SYS_ADMIN, 0, "{}: {out}", rt.name);
    let p = probes(&out);
    assert_eq!(p["ambient_raise_sys_admin"], 0, "{}: {out}", rt.name);
    assert_eq!(p["bounding_has_sys_admin"], 0, "{}: {out}", rt.name);
});

fn exec_out(rt: &Rt, id: &str, args: &[&str]) -> std::process::Output {
    let mut a = vec!["exec", id];
    a.extend(args);
    rt.out(&a)
}

all3!(exec_gets_the_containers_capabilities, |rt: Rt| {
    let mut cfg = caps_config(&[]);
    cfg["process"]["args"] = json!(["sleep", "30"]);
    let c = armed(&rt, &cfg);
    c.create_ok();
    rt.ok(&["start", &c.id]);
    let o = exec_out(
        &rt,
        &c.id,
        &["sh", "-c", "cat /proc/self/status; /bin/attack caps"],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}: {out}", rt.name);
    if oracle_gap(
        &rt,
        "exec'd processes do not get the container's capability sets",
    ) {
        return;
    }
    let m = cap_masks(&out);
    assert_eq!(m["CapBnd"], CHOWN | KILL | NET_BIND, "{}: {out}", rt.name);
    assert_eq!(m["CapInh"], KILL, "{}: {out}", rt.name);
    assert_eq!(m["CapEff"], CHOWN | KILL, "{}: {out}", rt.name);
    assert_ne!(probes(&out)["ambient_raise_sys_admin"], 0, "{}", rt.name);
});

all3!(no_new_privs_in_init_and_exec, |rt: Rt| {
    let c = Ctr::new(&rt, &config(&["sleep", "30"]));
    c.create_ok();
    rt.ok(&["start", &c.id]);
    let o = exec_out(
        &rt,
        &c.id,
        &["grep", "NoNewPrivs", "/proc/1/status", "/proc/self/status"],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    if oracle_gap(&rt, "exec'd processes do not get no_new_privs") {
        return;
    }
    assert_eq!(
        out.lines().filter(|l| l.ends_with("\t1")).count(),
        2,
        "{}: {out}",
        rt.name
    );
});

// Runs `args` in a container through `rt` with a host fd (not CLOEXEC) at
// fd 7, a host cwd and a host environment variable; returns what the
// container saw.
fn run_with_host_leaks(rt: &Rt, c: &Ctr<'_>, args: &[&str]) -> String {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let secret = tempfile::NamedTempFile::new().unwrap();
    let fd = std::fs::File::open(secret.path()).unwrap();
    let raw = fd.as_raw_fd();
    let dir = tempfile::tempdir().unwrap();
    let outf = dir.path().join("out");
    let mut cmd = rt.cmd(args);
    cmd.env("BERTH_HOST_SECRET", "leaked")
        .current_dir(dir.path())
        .stdout(std::fs::File::create(&outf).unwrap())
        .stderr(std::process::Stdio::inherit());
    // SAFETY: dup2 is async-signal-safe; it makes fd 7 a copy of an open
    // file without FD_CLOEXEC, as a careless caller of the runtime would.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let st = cmd.status().unwrap();
    assert!(st.success(), "{} {args:?} failed", c.rt.name);
    let out = std::fs::read_to_string(&outf).unwrap();
    let host = secret.path().to_string_lossy().into_owned();
    assert!(!out.contains(&host), "{}: host file leaked: {out}", rt.name);
    out
}

const LEAK_PROBE: &str = "ls -l /proc/self/fd/ | grep -c -- '->'; readlink /proc/self/cwd; env";

all3!(no_host_fd_cwd_or_env_leaks, |rt: Rt| {
    let c = Ctr::new(&rt, &config(&["sh", "-c", LEAK_PROBE]));
    let out = run_with_host_leaks(
        &rt,
        &c,
        &["run", "--bundle", c.path().to_str().unwrap(), &c.id],
    );
    let mut lines = out.lines();
    // Only stdin, stdout and stderr.
    assert_eq!(lines.next(), Some("3"), "{}: {out}", rt.name);
    assert_eq!(lines.next(), Some("/"), "{}: {out}", rt.name);
    assert!(!out.contains("BERTH_HOST_SECRET"), "{}: {out}", rt.name);

    let c = Ctr::new(&rt, &config(&["sleep", "30"]));
    c.create_ok();
    rt.ok(&["start", &c.id]);
    let out = run_with_host_leaks(&rt, &c, &["exec", &c.id, "sh", "-c", LEAK_PROBE]);
    assert_eq!(out.lines().next(), Some("3"), "{}: exec: {out}", rt.name);
    assert!(
        !out.contains("BERTH_HOST_SECRET"),
        "{}: exec: {out}",
        rt.name
    );
});

all3!(fd_leak_control_with_preserve_fds, |rt: Rt| {
    // --preserve-fds 5 passes fds 3..=7: the probe sees the extra fd.
    let c = Ctr::new(
        &rt,
        &config(&["sh", "-c", "ls -l /proc/self/fd/ | grep -c -- '->'"]),
    );
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let f = std::fs::File::open("/etc/hostname").unwrap();
    let raw = f.as_raw_fd();
    let dir = tempfile::tempdir().unwrap();
    let outf = dir.path().join("out");
    let mut cmd = rt.cmd(&[
        "run",
        "--preserve-fds",
        "5",
        "--bundle",
        c.path().to_str().unwrap(),
        &c.id,
    ]);
    cmd.stdout(std::fs::File::create(&outf).unwrap());
    // SAFETY: dup2 is async-signal-safe; fds 3..=7 become open files.
    unsafe {
        cmd.pre_exec(move || {
            for fd in 3..=7 {
                if fd != raw && libc::dup2(raw, fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    assert!(cmd.status().unwrap().success(), "{}", rt.name);
    let n: u32 = std::fs::read_to_string(&outf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(n > 3, "{}: preserved fds not visible: {n}", rt.name);
});

// Mount destinations that are symlinks out of the rootfs (absolute and
// `..`-relative) must resolve inside it: nothing may appear on the host.
all3!(mount_destination_symlinks_stay_in_rootfs, |rt: Rt| {
    let host = tempfile::tempdir().unwrap();
    let mut cfg = config(&["true"]);
    let mounts = cfg["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/abs/sub", "type": "tmpfs", "source": "tmpfs"}));
    mounts.push(json!({"destination": "/rel/sub", "type": "tmpfs", "source": "tmpfs"}));
    mounts.push(json!({"destination": "/abs/file", "type": "bind", "source": "/etc/hostname", "options": ["bind", "ro"]}));
    let c = Ctr::new(&rt, &cfg);
    let root = c.bundle.rootfs();
    std::os::unix::fs::symlink(host.path(), root.join("abs")).unwrap();
    let up = "../".repeat(32);
    std::os::unix::fs::symlink(format!("{up}{}", host.path().display()), root.join("rel")).unwrap();
    let _ = c.run();
    let left: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "{}: created on the host: {left:?}",
        rt.name
    );
});

// A path that flips between a directory and a symlink to the host while
// the runtime resolves it: the mount must never land outside the rootfs.
all3!(mount_destination_symlink_race, |rt: Rt| {
    let host = tempfile::tempdir().unwrap();
    let mut cfg = config(&["true"]);
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/race/sub/x", "type": "tmpfs", "source": "tmpfs"}));
    let c = Ctr::new(&rt, &cfg);
    let root = c.bundle.rootfs();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (root, target, stop) = (root.clone(), host.path().to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            let (link, dir, tmp) = (root.join("race"), root.join("race.d"), root.join("race.l"));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::create_dir_all(dir.join("sub"));
                let _ = std::fs::rename(&dir, &link);
                let _ = std::os::unix::fs::symlink(&target, &tmp);
                let _ = std::fs::rename(&link, &dir);
                let _ = std::fs::rename(&tmp, &link);
                let _ = std::fs::remove_file(&link);
            }
        })
    };
    for _ in 0..10 {
        let _ = c.run();
        let _ = rt.out(&["delete", "--force", &c.id]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    let left: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "{}: created on the host: {left:?}",
        rt.name
    );
});

fn masked_config(masked: bool) -> Value {
    let mut cfg = config(&[
        "sh",
        "-c",
        "cat /etc/secret; echo; ls /secretdir | wc -l; stat -c '%F %t:%T' /etc/secret",
    ]);
    if masked {
        let list = cfg["linux"]["maskedPaths"].as_array_mut().unwrap();
        list.push(json!("/etc/secret"));
        list.push(json!("/secretdir"));
    }
    cfg
}

fn plant_secrets(c: &Ctr<'_>) {
    let root = c.bundle.rootfs();
    std::fs::write(root.join("etc/secret"), "image-secret").unwrap();
    std::fs::create_dir_all(root.join("secretdir")).unwrap();
    std::fs::write(root.join("secretdir/a"), "x").unwrap();
}

all3!(masked_paths_are_hosts_null_and_empty_tmpfs, |rt: Rt| {
    let c = Ctr::new(&rt, &masked_config(true));
    plant_secrets(&c);
    let out = c.run_ok();
    assert_eq!(out, "\n0\ncharacter special file 1:3\n", "{}", rt.name);
});

all3!(masked_paths_control_unmasked, |rt: Rt| {
    let c = Ctr::new(&rt, &masked_config(false));
    plant_secrets(&c);
    let out = c.run_ok();
    assert!(out.starts_with("image-secret\n1\n"), "{}: {out}", rt.name);
});

all3!(readonly_rootfs_and_paths, |rt: Rt| {
    let script = "touch /x 2>/dev/null && echo root-writable; \
        echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable; \
        touch /tmp/y 2>/dev/null && echo tmp-writable; echo done";
    let out = Ctr::new(&rt, &config(&["sh", "-c", script])).run_ok();
    assert_eq!(out, "done\n", "{}", rt.name);
    let mut cfg = config(&["sh", "-c", script]);
    cfg["root"]["readonly"] = json!(false);
    let out = Ctr::new(&rt, &cfg).run_ok();
    assert!(out.contains("root-writable"), "{}: control: {out}", rt.name);
});

// A rootfs whose /proc is a plain directory (no procfs mounted there): a
// sysctl must not be written into the image's fake file. The runtime
// refuses (runc) or writes the kernel's value (berth, through its own
// procfs: `hostname` then shows it).
all3!(sysctl_never_lands_in_a_fake_procfs, |rt: Rt| {
    let mut cfg = config(&["sh", "-c", "hostname; cat /proc/sys/kernel/hostname"]);
    cfg["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/proc");
    cfg["linux"]["maskedPaths"] = json!([]);
    cfg["linux"]["readonlyPaths"] = json!([]);
    cfg.as_object_mut().unwrap().remove("hostname");
    cfg["linux"]["sysctl"] = json!({"kernel.hostname": "sysctl-host"});
    let c = Ctr::new(&rt, &cfg);
    let fake = c.bundle.rootfs().join("proc/sys/kernel");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("hostname"), "untouched").unwrap();
    let (code, out, _) = c.run();
    let after = std::fs::read_to_string(fake.join("hostname")).unwrap();
    eprintln!("{}: exit {code}: {out:?}", rt.name);
    if oracle_gap(&rt, "sysctls are written into a fake /proc") {
        return;
    }
    assert_eq!(
        after, "untouched",
        "{}: wrote a sysctl into a non-procfs file",
        rt.name
    );
    if code == 0 {
        assert_eq!(
            out, "sysctl-host\nuntouched",
            "{}: not the kernel's",
            rt.name
        );
    }
});

// Live race on procfs writes (the CVE-2019-19921 / CVE-2025-52881 class):
// two containers share a host directory as a volume. The attacker swaps
// `evil` (a directory) and `evil.alt` (a symlink to /proc) in a loop; the
// victim mounts a directory of the volume, `fake` (a fake procfs tree whose
// files are canaries), at /shared/evil and has a sysctl and oomScoreAdj for
// the runtime to write. Whenever the runtime resolves /shared/evil while it
// is the symlink, a naive runtime mounts the fake over /proc and writes
// into the canaries on the host.

const CANARY: &str = "untouched";
const RACE_RUNS: usize = 40;

// The volume: the fake procfs tree and the two names the attacker swaps.
fn procfs_race_volume() -> tempfile::TempDir {
    let vol = tempfile::tempdir().unwrap();
    let fake = vol.path().join("fake");
    for f in ["sys/kernel/domainname", "self/oom_score_adj"] {
        let p = fake.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, CANARY).unwrap();
    }
    std::fs::create_dir(vol.path().join("evil")).unwrap();
    std::os::unix::fs::symlink("/proc", vol.path().join("evil.alt")).unwrap();
    vol
}

// Canary files of the fake tree that something wrote into.
fn touched_canaries(vol: &Path) -> Vec<String> {
    ["sys/kernel/domainname", "self/oom_score_adj"]
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(vol.join("fake").join(f)).unwrap_or_default();
            (text != CANARY).then(|| format!("fake/{f} = {text:?}"))
        })
        .collect()
}

fn with_volume(cfg: &mut Value, source: &Path, destination: &str) {
    cfg["mounts"].as_array_mut().unwrap().push(
        json!({"destination": destination, "type": "bind", "source": source, "options": ["rbind", "rw"]}),
    );
}

// The attacker container: the volume at /shared, swapping the two names.
fn start_flipper<'a>(rt: &'a Rt, vol: &Path) -> Ctr<'a> {
    let mut cfg = config(&[
        "/bin/attack",
        "flip",
        "/shared/evil",
        "/shared/evil.alt",
        "300",
    ]);
    with_volume(&mut cfg, vol, "/shared");
    let c = armed(rt, &cfg);
    c.create_ok();
    rt.ok(&["start", &c.id]);
    c
}

// What happened to the victim over the runs.
#[derive(Default, Debug)]
struct RaceOutcome {
    // Ran and saw the sysctl and oomScoreAdj in the real procfs.
    real_procfs: usize,
    // Refused to start; the distinct errors.
    refused: usize,
    errors: std::collections::BTreeSet<String>,
    // Ran with something else than the real procfs at /proc.
    fake_procfs: Vec<String>,
}

fn victim_race(rt: &Rt, vol: &Path) -> RaceOutcome {
    let mut cfg = config(&[
        "sh",
        "-c",
        "cat /proc/sys/kernel/domainname /proc/self/oom_score_adj",
    ]);
    with_volume(&mut cfg, vol, "/shared");
    with_volume(&mut cfg, &vol.join("fake"), "/shared/evil");
    cfg["linux"]["sysctl"] = json!({"kernel.domainname": "victim-ok"});
    cfg["process"]["oomScoreAdj"] = json!(123);
    let c = Ctr::new(rt, &cfg);
    let mut outcome = RaceOutcome::default();
    for _ in 0..RACE_RUNS {
        let (code, out, err) = c.run();
        let _ = rt.out(&["delete", "--force", &c.id]);
        match (code, out.as_str()) {
            (0, "victim-ok\n123\n") => outcome.real_procfs += 1,
            (0, _) => outcome.fake_procfs.push(out),
            _ => {
                outcome.refused += 1;
                // The error without the varying container id and paths.
                let line = err.lines().last().unwrap_or_default().replace(&c.id, "ID");
                outcome.errors.insert(line);
            }
        }
    }
    outcome
}

all3!(procfs_write_race_through_shared_volume, |rt: Rt| {
    let vol = procfs_race_volume();
    let flipper = start_flipper(&rt, vol.path());
    let outcome = victim_race(&rt, vol.path());
    drop(flipper);
    let touched = touched_canaries(vol.path());
    eprintln!("{}: {outcome:?}", rt.name);
    // runc 1.1.5 predates the CVE-2025-52881 fixes: its sysctl write
    // sometimes lands in the volume.
    let gap = "procfs writes redirected into a shared volume";
    if !touched.is_empty() && known_gap(&rt, &["runc", "crun"], gap) {
        return;
    }
    assert!(
        touched.is_empty(),
        "{}: the runtime wrote into the volume: {touched:?} ({outcome:?})",
        rt.name
    );
    if !outcome.fake_procfs.is_empty()
        && oracle_gap(
            &rt,
            "a volume is mounted over /proc through a swapped symlink",
        )
    {
        return;
    }
    assert!(
        outcome.fake_procfs.is_empty(),
        "{}: the container ran on a fake /proc: {outcome:?}",
        rt.name
    );
    if rt.is_berth() {
        assert!(
            outcome.errors.iter().all(|e| e.contains("procfs")),
            "refusals must say what was wrong: {outcome:?}"
        );
    }
});

// Control: the same race, with a plain path-based writer in place of the
// runtime (bind-mount the fake at /shared/evil, then write the procfs file
// by path): the write lands in the canary, so the test above can fail.
all3!(procfs_write_race_control_path_based_writer, |rt: Rt| {
    let vol = procfs_race_volume();
    let flipper = start_flipper(&rt, vol.path());
    let mut cfg = config(&[
        "/bin/attack",
        "mount-write",
        "/fakesrc",
        "/shared/evil",
        "/proc/sys/kernel/domainname",
        "control-wrote",
        "5000",
    ]);
    with_volume(&mut cfg, vol.path(), "/shared");
    with_volume(&mut cfg, &vol.path().join("fake"), "/fakesrc");
    for set in ["bounding", "effective", "permitted"] {
        let list = cfg["process"]["capabilities"][set].as_array_mut().unwrap();
        list.push(json!("CAP_SYS_ADMIN"));
    }
    let out = armed(&rt, &cfg).run_ok();
    drop(flipper);
    assert!(
        !out.contains("landed -1"),
        "{}: never landed: {out}",
        rt.name
    );
    assert_eq!(
        std::fs::read_to_string(vol.path().join("fake/sys/kernel/domainname")).unwrap(),
        "control-wrote",
        "{}: {out}",
        rt.name
    );
});

// An image whose /proc is a symlink into a volume would give the container
// a /proc of the attacker's choosing: every runtime refuses to mount procfs
// through a symlink.
all3!(proc_through_a_symlink_is_refused, |rt: Rt| {
    let vol = procfs_race_volume();
    let mut cfg = config(&["true"]);
    cfg["linux"]["sysctl"] = json!({"kernel.domainname": "victim-ok"});
    with_volume(&mut cfg, vol.path(), "/shared");
    let c = Ctr::new(&rt, &cfg);
    let proc_dir = c.bundle.rootfs().join("proc");
    std::fs::remove_dir(&proc_dir).unwrap();
    std::os::unix::fs::symlink("/shared/fake", &proc_dir).unwrap();
    let (code, _, err) = c.run();
    assert_ne!(
        code, 0,
        "{}: ran with /proc pointing into a volume",
        rt.name
    );
    assert!(touched_canaries(vol.path()).is_empty(), "{}", rt.name);
    if rt.is_berth() {
        assert!(err.contains("ordinary directory"), "{err}");
    }
});

// A container that can mount (CAP_SYS_ADMIN) covers its own /proc with a
// volume holding a fake tree. `exec` with oomScoreAdj must not write into
// it (the runtime, not yet the container's user, would write as itself):
// it sets the real oom_score_adj of the new process or refuses (runc 1.1.5
// refuses any exec once /proc/self/fd is gone).
all3!(exec_oom_score_adj_under_a_covered_proc, |rt: Rt| {
    let vol = procfs_race_volume();
    let mut cfg = config(&[
        "sh",
        "-c",
        "mount -o bind /shared/fake /proc 2>/shared/mount.err; exec sleep 30",
    ]);
    with_volume(&mut cfg, vol.path(), "/shared");
    for set in ["bounding", "effective", "permitted"] {
        let list = cfg["process"]["capabilities"][set].as_array_mut().unwrap();
        list.push(json!("CAP_SYS_ADMIN"));
    }
    let c = armed(&rt, &cfg);
    c.create_ok();
    rt.ok(&["start", &c.id]);
    let init = rt.state(&c.id)["pid"].as_i64().unwrap();
    // The shell execs sleep once the mount is done.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(format!("/proc/{init}/comm")).unwrap_or_default() != "sleep\n" {
        assert!(
            Instant::now() < deadline,
            "{}: the container never slept",
            rt.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let why = std::fs::read_to_string(vol.path().join("mount.err")).unwrap();
    assert!(why.is_empty(), "{}: covering /proc failed: {why}", rt.name);
    let p = json!({"args": ["sleep", "30"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"], "oomScoreAdj": 321});
    let dir = tempfile::tempdir().unwrap();
    let (pfile, pidfile) = (dir.path().join("process.json"), dir.path().join("pid"));
    std::fs::write(&pfile, p.to_string()).unwrap();
    let o = rt.out(&[
        "exec",
        "--detach",
        "--process",
        pfile.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
    ]);
    let touched = touched_canaries(vol.path());
    if !touched.is_empty() && oracle_gap(&rt, "exec writes oomScoreAdj into a covered /proc") {
        return;
    }
    assert!(
        touched.is_empty(),
        "{}: wrote into the volume: {touched:?}",
        rt.name
    );
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", pid.trim())).unwrap();
        assert_eq!(adj.trim(), "321", "{}: oomScoreAdj not applied", rt.name);
    } else {
        assert!(
            !rt.is_berth() || err.contains("procfs"),
            "unclear refusal: {err}"
        );
        eprintln!("{}: exec refused: {err}", rt.name);
    }
    // Control: a path-based write from the container's mount namespace
    // lands in the volume.
    let st = std::process::Command::new("nsenter")
        .args(["-t", &init.to_string(), "-m", "-r"])
        .args([
            "/bin/attack",
            "path-write",
            "/proc/self/oom_score_adj",
            "control",
        ])
        .status()
        .unwrap();
    assert!(st.success(), "{}", rt.name);
    assert_eq!(
        std::fs::read_to_string(vol.path().join("fake/self/oom_score_adj")).unwrap(),
        "control",
        "{}: a path-based write does not reach the volume",
        rt.name
    );
});

fn sha(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

// CVE-2019-5736 class: while `exec` joins the container, the runtime's
// process sits in the container's pid namespace before it executes the
// container's program. The container tries to open its /proc/PID/exe (the
// host binary) and to overwrite it. The runtime is run from a private copy
// so a successful attack cannot damage the real one.
fn exe_attack(rt: Rt, extra_caps: &[&str]) -> (String, bool) {
    let (rt, copy) = rt.with_copied_binary();
    let before = sha(&copy);
    let mut cfg = config(&[
        "sh",
        "-c",
        "/bin/attack exe BERTH-OWNED 15 >/tmp/result 2>&1; sleep 60",
    ]);
    cfg["root"]["readonly"] = json!(false);
    for set in ["bounding", "effective", "permitted"] {
        let list = cfg["process"]["capabilities"][set].as_array_mut().unwrap();
        list.extend(extra_caps.iter().map(|c| json!(c)));
    }
    let c = armed(&rt, &cfg);
    c.create_ok();
    rt.ok(&["start", &c.id]);
    let result = c.bundle.rootfs().join("tmp/result");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline && !text.contains("done 1") {
        for _ in 0..5 {
            let _ = exec_out(&rt, &c.id, &["true"]);
        }
        text = std::fs::read_to_string(&result).unwrap_or_default();
    }
    while Instant::now() < deadline && !text.contains("done 1") {
        std::thread::sleep(Duration::from_millis(200));
        text = std::fs::read_to_string(&result).unwrap_or_default();
    }
    eprintln!("{}: {text}", rt.name);
    (text, sha(&copy) == before)
}

all3!(runtime_binary_cannot_be_opened_or_overwritten, |rt: Rt| {
    let name = rt.name;
    let (text, unchanged) = exe_attack(rt, &[]);
    assert!(
        text.contains("done 1"),
        "{name}: the attack did not finish: {text}"
    );
    assert!(
        text.contains("grabbed 0"),
        "{name}: got a handle on the runtime: {text}"
    );
    assert!(
        !text.contains("write_exe 0"),
        "{name}: wrote the runtime binary: {text}"
    );
    assert!(unchanged, "{name}: the host binary changed");
});

all3!(runtime_binary_control_with_sys_ptrace, |rt: Rt| {
    // With CAP_SYS_PTRACE the container may open a non-dumpable process's
    // exe: the handle is grabbed, and only the sealed copy (runc, crun and
    // berth all run from one) keeps the host file safe.
    let name = rt.name;
    let (text, unchanged) = exe_attack(rt, &["CAP_SYS_PTRACE"]);
    assert!(
        text.contains("done 1"),
        "{name}: the attack did not finish: {text}"
    );
    if text.contains("grabbed 1") {
        assert!(
            !text.contains("write_exe 0"),
            "{name}: wrote the runtime binary: {text}"
        );
    }
    assert!(unchanged, "{name}: the host binary changed");
});

// Pid reuse: the container's init is gone and its pid now belongs to an
// unrelated host process (simulated by pointing the state at one). `kill`
// and `delete` go through a pidfd checked against the init's start time,
// so the host process must survive. berth only: the state format is
// berth's own.
#[test]
fn pid_reuse_cannot_misdirect_signals() {
    let Some(rt) = Rt::berth() else { return };
    let c = Ctr::new(&rt, &config(&["sleep", "30"]));
    c.create_ok();
    let mut victim = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let state_path = rt.root.path().join(&c.id).join("state.json");
    let mut st: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let real = st["init_process_pid"].as_i64().unwrap();
    st["init_process_pid"] = json!(victim.id());
    std::fs::write(&state_path, serde_json::to_vec(&st).unwrap()).unwrap();
    let _ = rt.out(&["kill", &c.id, "KILL"]);
    let _ = rt.out(&["delete", "--force", &c.id]);
    std::thread::sleep(Duration::from_millis(200));
    let alive = victim.try_wait().unwrap().is_none();
    let _ = victim.kill();
    let _ = victim.wait();
    // SAFETY: kill(2) on the container's real init, which this test created.
    unsafe { libc::kill(real as i32, libc::SIGKILL) };
    assert!(
        alive,
        "the runtime signalled a process that reused the init's pid"
    );
}
