//! A container's processes as seen from /proc: every process whose pid
//! namespace is the init's (proc(5): /proc/PID/ns/pid). Used by `top`,
//! `stats`, `pause` and liveness checks; independent of cgroups.

use std::path::Path;

/// Start time (clock ticks after boot, field 22 of /proc/PID/stat) and state letter.
pub fn stat(pid: i32) -> Option<(u64, char, Vec<String>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field may contain spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
    let state = f.first()?.chars().next()?;
    let start = f.get(19)?.parse().ok()?;
    Some((start, state, f))
}

/// Whether `pid` is alive and still the process that started at `start` (0 = any).
pub fn alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match stat(pid) {
        Some((s, state, _)) => state != 'Z' && (start == 0 || s == start),
        None => false,
    }
}

fn pidns(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// Host pids of the processes in `init`'s pid namespace (init first).
pub fn container_pids(init: i32) -> Vec<i32> {
    let Some(ns) = pidns(init) else { return vec![] };
    let mut out = vec![init];
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if pid != init && pidns(pid).as_ref() == Some(&ns) {
                out.push(pid);
            }
        }
    }
    out
}

/// One sample of a container's resource use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// user+system CPU time of all processes, in clock ticks.
    pub cpu_ticks: u64,
    /// Sum of resident set sizes (bytes).
    pub memory: u64,
    pub pids: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
}

fn status_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sums /proc/PID/{stat,status,io} over the container's processes and
/// reads the init's /proc/PID/net/dev (the container's network namespace).
pub fn sample(init: i32) -> Sample {
    let mut s = Sample::default();
    for pid in container_pids(init) {
        if let Some((_, _, f)) = stat(pid) {
            let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            s.cpu_ticks += ut + st;
        }
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            s.memory += status_kb(&t, "VmRSS:") * 1024;
        }
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/io")) {
            s.block_read += status_kb(&t, "read_bytes:");
            s.block_write += status_kb(&t, "write_bytes:");
        }
        s.pids += 1;
    }
    if let Ok(t) = std::fs::read_to_string(format!("/proc/{init}/net/dev")) {
        let (rx, tx) = parse_net_dev(&t);
        s.net_rx = rx;
        s.net_tx = tx;
    }
    s
}

/// Received and transmitted bytes over every interface but `lo`.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0;
    let mut tx = 0;
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

/// Total CPU ticks of the host (first line of /proc/stat).
pub fn host_cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            t.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum()
            })
        })
        .unwrap_or(0)
}

pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .map(|t| status_kb(&t, "MemTotal:") * 1024)
        .unwrap_or(0)
}

/// Whether `path` is a mount point (its device differs from its parent's,
/// or it appears in /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = path.to_string_lossy();
    text.lines().any(|l| l.split(' ').nth(4) == Some(&p))
}

/// `ps -ef`-like rows for `top`: PID, PPID, USER(uid), TIME, CMD.
pub fn top_rows(init: i32) -> Vec<[String; 5]> {
    let tck = 100u64;
    container_pids(init)
        .into_iter()
        .filter_map(|pid| {
            let (_, _, f) = stat(pid)?;
            let ppid = f.get(1)?.clone();
            let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            let secs = ticks / tck;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("?")
                .to_string();
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .map(|b| {
                    b.split(|c| *c == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            Some([
                pid.to_string(),
                ppid,
                uid,
                format!(
                    "{:02}:{:02}:{:02}",
                    secs / 3600,
                    secs % 3600 / 60,
                    secs % 60
                ),
                cmd,
            ])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_skips_lo() {
        let t = "Inter-|   Receive\n face |bytes\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 2000 3 0 0 0 0 0 0 500 2 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(t), (2000, 500));
    }

    #[test]
    fn self_is_alive_and_sampled() {
        let me = std::process::id() as i32;
        let (start, _, _) = stat(me).unwrap();
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
        let s = sample(me);
        assert!(s.memory > 0 && s.pids >= 1);
    }
}
