//! runc's cgroup commands: `pause`, `resume`, `update`, `events`. Parsing
//! and output only; the work is in `berth_runtime::cgroup` and
//! `berth_cgroups`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_cgroups::{Event, OomWatcher, UpdateFlags, parse_resources_json};
use berth_runtime::Runtime;

/// `update`'s flags, spelled as runc spells them.
#[derive(clap::Args)]
pub struct UpdateArgs {
    /// A linux.resources JSON file, or `-` for stdin.
    #[arg(short = 'r', long)]
    resources: Option<PathBuf>,
    /// Block IO weight (10..1000).
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<String>,
    /// CPU CFS period in µs.
    #[arg(long = "cpu-period")]
    cpu_period: Option<String>,
    /// CPU CFS quota in µs (-1: unlimited).
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    cpu_share: Option<String>,
    /// CPU realtime period in µs.
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<String>,
    /// CPU realtime runtime in µs.
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<String>,
    /// SCHED_IDLE for the cgroup (0 or 1).
    #[arg(long = "cpu-idle")]
    cpu_idle: Option<String>,
    /// CPUs the container may run on (list syntax, e.g. 0-2,4).
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// Kernel memory limit (refused: deprecated, unenforced by current kernels).
    #[arg(long = "kernel-memory")]
    kernel_memory: Option<String>,
    /// Kernel TCP memory limit (refused, as --kernel-memory).
    #[arg(long = "kernel-memory-tcp")]
    kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a unit: 512m, 1g; -1 unlimited).
    #[arg(long)]
    memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 unlimited).
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    /// Maximum number of processes (-1 unlimited).
    #[arg(long = "pids-limit")]
    pids_limit: Option<String>,
    id: String,
}

impl UpdateArgs {
    fn flags(&self) -> UpdateFlags {
        UpdateFlags {
            blkio_weight: self.blkio_weight.clone(),
            cpu_period: self.cpu_period.clone(),
            cpu_quota: self.cpu_quota.clone(),
            cpu_share: self.cpu_share.clone(),
            cpu_rt_period: self.cpu_rt_period.clone(),
            cpu_rt_runtime: self.cpu_rt_runtime.clone(),
            cpu_idle: self.cpu_idle.clone(),
            cpu_burst: None,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            memory: self.memory.clone(),
            memory_reservation: self.memory_reservation.clone(),
            memory_swap: self.memory_swap.clone(),
            pids_limit: self.pids_limit.clone(),
        }
    }
}

/// `update`: the `-r` document (if any) with the flags applied on top.
pub fn update(rt: &Runtime, a: &UpdateArgs) -> Result<()> {
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        bail!(
            "--kernel-memory / --kernel-memory-tcp: kernel memory limits are not supported (deprecated; current kernels no longer enforce them)"
        );
    }
    let base = match &a.resources {
        None => Default::default(),
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the resources JSON from stdin")?;
                s
            } else {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
            };
            parse_resources_json(&text)?
        }
    };
    let resources = a.flags().apply_to(base)?;
    rt.update(&a.id, &resources)?;
    Ok(())
}

/// `events` flags.
#[derive(clap::Args)]
pub struct EventsArgs {
    /// Print the container's stats once and exit.
    #[arg(long)]
    stats: bool,
    /// How often the stream reports stats (a duration: 5s, 500ms, 1m).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
    id: String,
}

/// Parses a Go-style duration as runc takes it: a number and a unit of
/// ns, us, ms, s, m or h (several may follow each other: 1m30s).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: missing unit (e.g. 5s)"))?;
        let (num, tail) = rest.split_at(end);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("{s:?}: {num:?} is not a number"))?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("{s:?}: unknown unit {unit:?}")),
        };
        total += Duration::from_secs_f64(value * secs);
        rest = next;
    }
    if total.is_zero() {
        return Err(format!("{s:?}: the interval must be positive"));
    }
    Ok(total)
}

/// One JSON line in one write: a reader never sees half a line (stdout's
/// line buffer would flush a long document in pieces).
fn emit(out: &mut impl Write, e: &Event) -> Result<()> {
    let mut line = serde_json::to_vec(e)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()?;
    Ok(())
}

/// `events`: with `--stats` one stats document; otherwise a stream of
/// JSON lines — an `oom` line for every OOM kill, a `stats` line every
/// interval — until the container is deleted.
pub fn events(rt: &Runtime, a: &EventsArgs) -> Result<()> {
    let m = rt.cgroup(&a.id)?;
    let mut out = std::io::stdout().lock();
    if a.stats {
        return emit(&mut out, &Event::stats(&a.id, m.stats()?));
    }
    // Without a memory controller there are no OOM events, only stats.
    let mut watcher = OomWatcher::new(&m).ok();
    let mut next = Instant::now() + a.interval;
    loop {
        let result: Result<()> = (|| {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                next += a.interval;
                return emit(&mut out, &Event::stats(&a.id, m.stats()?));
            }
            match watcher.as_mut() {
                Some(w) => {
                    if w.wait(left)?.is_some() {
                        emit(&mut out, &Event::oom(&a.id))?;
                    }
                }
                None => std::thread::sleep(left),
            }
            Ok(())
        })();
        if let Err(e) = result {
            // The usual end: the container was deleted under us.
            if let Err(berth_runtime::Error::NotFound(_)) = rt.load(&a.id) {
                bail!("container {:?} was deleted", a.id);
            }
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
    }
}
