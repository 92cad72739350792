//! The crate's error type: every variant names what was wrong (the
//! `linux.resources` field, the file, the cgroup directory).

use std::path::PathBuf;

/// Errors from detecting hierarchies and managing cgroups.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on a cgroup file or directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The host's cgroup layout could not be understood.
    #[error("cgroup hierarchy: {0}")]
    Detect(String),
    /// `linux.cgroupsPath` or the container id cannot name a cgroup.
    #[error("linux.cgroupsPath {path:?}: {reason}")]
    BadPath { path: String, reason: String },
    /// A `linux.resources` field has a value berth refuses (out of range,
    /// malformed, below current usage, ...). Nothing was written.
    #[error("linux.resources.{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The field needs a controller this host does not provide.
    #[error(
        "linux.resources.{field}: the {controller} controller is not available on this host's cgroup {version} hierarchy"
    )]
    ControllerMissing {
        field: String,
        controller: String,
        version: &'static str,
    },
    /// The field has no equivalent on this cgroup version or kernel.
    #[error("linux.resources.{field} is not supported on cgroup {version}: {reason}")]
    Unsupported {
        field: String,
        version: &'static str,
        reason: String,
    },
    /// The kernel refused a write; earlier writes of the same request were
    /// rolled back.
    #[error(
        "linux.resources.{field}: writing {value:?} to {path} failed: {source} (earlier writes of this request were rolled back)"
    )]
    Apply {
        field: String,
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    /// A cgroup still holds processes after bounded kill-and-retry.
    #[error(
        "cgroup {path} is still busy after {attempts} kill-and-remove attempts (pids left: {pids:?})"
    )]
    Busy {
        path: PathBuf,
        attempts: u32,
        pids: Vec<i32>,
    },
    /// Waiting for a state (e.g. FROZEN) took too long.
    #[error("timed out after {millis} ms waiting for {what} in {path}")]
    Timeout {
        what: &'static str,
        path: PathBuf,
        millis: u128,
    },
    /// A cgroup file had content berth cannot parse.
    #[error("parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    /// An operation needs a controller the host does not provide.
    #[error(
        "{op} needs the {controller} controller, which this host's cgroup hierarchy does not provide"
    )]
    NoController {
        op: &'static str,
        controller: &'static str,
    },
    /// A bpf(2) call for the v2 device filter failed.
    #[error("bpf {op}: {source}{log}")]
    Bpf {
        op: &'static str,
        #[source]
        source: std::io::Error,
        log: String,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(
        field: impl Into<String>,
        version: &'static str,
        reason: impl Into<String>,
    ) -> Error {
        Error::Unsupported {
            field: field.into(),
            version,
            reason: reason.into(),
        }
    }
}
