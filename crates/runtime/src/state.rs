//! A container's state directory under the runtime root: `state.json` in the
//! shape runc keeps (so tools that read it find the familiar fields), the
//! exec FIFO that holds a created container before `start`, and the status
//! computed from the live process.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// The OCI status values (runtime spec, "State").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What berth-runtime keeps in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    /// Pid of the container's init in the runtime's pid namespace.
    #[serde(rename = "init_process_pid")]
    pub pid: i32,
    /// Start time of that process (field 22 of /proc/PID/stat), so a reused
    /// pid is never mistaken for the container.
    #[serde(rename = "init_process_start")]
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The config the container was created with (hooks for delete, the
    /// defaults of `exec`).
    pub config: Spec,
    /// The container's cgroup, when it has one (serialized by the cgroups layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<serde_json::Value>,
    /// runc's map of controller → cgroup directory.
    #[serde(default)]
    pub cgroup_paths: HashMap<String, PathBuf>,
    /// Set once `start` has been called.
    #[serde(default)]
    pub started: bool,
}

/// The OCI state document (`berth-runtime state`), plus runc's extra fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty", default)]
    pub annotations: HashMap<String, String>,
}

impl State {
    pub fn public(&self, status: Status) -> PublicState {
        PublicState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// The directory `<root>/<id>`.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub path: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path, id: &str) -> Self {
        Self {
            path: root.join(id),
        }
    }

    /// Creates the directory; fails with `Exists` if another container has
    /// the id (mkdir is the atomic claim).
    pub fn claim(root: &Path, id: &str) -> Result<Self> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .map_err(|source| Error::Write {
                path: root.to_path_buf(),
                source,
            })?;
        let dir = Self::new(root, id);
        match fs::DirBuilder::new().mode(0o711).create(&dir.path) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(source) => Err(Error::Write {
                path: dir.path.clone(),
                source,
            }),
        }
    }

    pub fn exists(&self) -> bool {
        self.path.join(STATE_FILE).exists()
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self, id: &str) -> Result<State> {
        let path = self.path.join(STATE_FILE);
        let bytes = fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound(id.to_string())
            } else {
                Error::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Other(format!("corrupt state {}: {e}", path.display())))
    }

    /// Write-new-then-rename, so a crash never leaves half a state file.
    pub fn save(&self, state: &State) -> Result<()> {
        let path = self.path.join(STATE_FILE);
        let tmp = self.path.join(".state.json.tmp");
        let werr = |source| Error::Write {
            path: tmp.clone(),
            source,
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(werr)?;
        let bytes = serde_json::to_vec(state).expect("state serializes");
        f.write_all(&bytes).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        fs::rename(&tmp, &path).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })
    }

    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Write {
                path: self.path.clone(),
                source,
            }),
        }
    }
}

/// What /proc/PID/stat says about a process, if it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

/// Parses /proc/PID/stat. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); start time is field 22 → index 19.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .as_deref()
        .and_then(parse_stat)
}

/// True while the container's init (same pid *and* start time) exists and
/// has not exited (a zombie has exited).
pub fn init_alive(state: &State) -> bool {
    matches!(proc_stat(state.pid), Some(s) if s.start_time == state.pid_start && s.state != 'Z' && s.state != 'X')
}

/// Current time as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Formats a Unix time as RFC 3339 (civil-from-days, Howard Hinnant's algorithm).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        let line =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_found() {
        let me = proc_stat(std::process::id() as i32).unwrap();
        assert!(me.start_time > 0);
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_798_761_600, 0), "2027-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn claim_is_exclusive() {
        let root = tempfile::tempdir().unwrap();
        StateDir::claim(root.path(), "a").unwrap();
        assert!(matches!(
            StateDir::claim(root.path(), "a"),
            Err(Error::Exists(_))
        ));
    }
}
