//! A container's processes as seen from /proc: every process whose pid
//! namespace is the init's (proc(5): /proc/PID/ns/pid). Used by `top`,
//! liveness checks and, for a container without a cgroup of its own, by
//! `stats` (see [`crate::stats`]); independent of cgroups.

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

/// One process's resource use from /proc/PID/{stat,status,io}.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcUsage {
    /// user+system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size in bytes.
    pub rss: u64,
    /// Bytes the process caused to be read from / written to storage.
    pub read_bytes: u64,
    pub write_bytes: u64,
}

/// The first number after `key` in "Key: value" lines.
fn field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// What /proc says about `pid` (zeros for what cannot be read).
pub fn usage(pid: i32) -> ProcUsage {
    let mut u = ProcUsage::default();
    if let Some((_, _, f)) = stat(pid) {
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        u.cpu_ticks = ticks(11) + ticks(12);
    }
    if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        u.rss = field(&t, "VmRSS:") * 1024;
    }
    if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/io")) {
        u.read_bytes = field(&t, "read_bytes:");
        u.write_bytes = field(&t, "write_bytes:");
    }
    u
}

pub fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .map(|t| field(&t, "MemTotal:") * 1024)
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
    fn self_is_alive_and_measured() {
        let me = std::process::id() as i32;
        let (start, _, _) = stat(me).unwrap();
        assert!(alive(me, start));
        assert!(!alive(me, start + 1));
        assert!(usage(me).rss > 0);
        assert!(container_pids(me).contains(&me));
    }

    #[test]
    fn status_fields() {
        let t = "Name:\tx\nVmRSS:\t  1234 kB\nread_bytes: 77\n";
        assert_eq!(field(t, "VmRSS:"), 1234);
        assert_eq!(field(t, "read_bytes:"), 77);
        assert_eq!(field(t, "Nope:"), 0);
    }
}
