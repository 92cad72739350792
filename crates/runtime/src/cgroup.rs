//! The runtime's side of resource control: creating the container's cgroup
//! before the init runs and finding its processes. Until the cgroups layer
//! is wired in, containers run in the runtime's own cgroup and processes are
//! found through their pid namespace.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::Spec;

use crate::error::Result;
use crate::state::State;

pub struct Cgroup;

impl Cgroup {
    pub fn create(_id: &str, _spec: &Spec) -> Result<Cgroup> {
        Ok(Cgroup)
    }
    pub fn clone_into_fd(&self) -> Result<Option<OwnedFd>> {
        Ok(None)
    }
    pub fn add(&self, _pid: i32) -> Result<()> {
        Ok(())
    }
    pub fn destroy(&self) -> Result<()> {
        Ok(())
    }
    pub fn to_state(&self) -> Option<serde_json::Value> {
        None
    }
    pub fn paths(&self) -> HashMap<String, PathBuf> {
        HashMap::new()
    }
}

/// Puts an `exec`'d process into the container's cgroup.
pub fn add_exec(_st: &State, _pid: i32) -> Result<()> {
    Ok(())
}

pub fn is_paused(_st: &State) -> bool {
    false
}

pub fn thaw(_st: &State) {}

pub fn destroy(_st: &State) -> Result<()> {
    Ok(())
}

/// The container's processes: those in the init's pid namespace when it has
/// its own, otherwise the init and its descendants.
pub fn pids(st: &State) -> Result<Vec<i32>> {
    let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init_ns = ns_of(st.pid);
    let own_ns = init_ns.is_some() && init_ns != std::fs::read_link("/proc/self/ns/pid").ok();
    let mut procs: Vec<(i32, i32)> = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        procs.push((pid, ppid));
    }
    let mut out: Vec<i32> = if own_ns {
        procs
            .iter()
            .map(|p| p.0)
            .filter(|p| ns_of(*p) == init_ns)
            .collect()
    } else {
        let mut set = vec![st.pid];
        let mut grew = true;
        while grew {
            grew = false;
            for (pid, ppid) in &procs {
                if set.contains(ppid) && !set.contains(pid) {
                    set.push(*pid);
                    grew = true;
                }
            }
        }
        set
    };
    out.sort_unstable();
    Ok(out)
}
