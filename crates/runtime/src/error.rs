//! The runtime's error type: every variant names what was wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {id:?}: {why}")]
    InvalidId { id: String, why: &'static str },
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("cannot {op} container {id:?}: it is {status}{hint}")]
    WrongState {
        op: &'static str,
        id: String,
        status: String,
        hint: &'static str,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{0}")]
    Process(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("container init failed at step {step:?}: {message}")]
    Init { step: String, message: String },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        source: std::io::Error,
    },
    #[error("hook {kind}[{index}] ({path}) failed: {message}")]
    Hook {
        kind: &'static str,
        index: usize,
        path: String,
        message: String,
    },
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("invalid signal {0:?}")]
    Signal(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `map_err` helper: a syscall failure with a description of what was tried.
pub fn sys(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Sys { what, source }
}

/// Converts a nix result into a runtime result describing what was tried.
pub trait NixContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> NixContext<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Sys {
            what: what(),
            source: e.into(),
        })
    }
}

impl<T> NixContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            what: what(),
            source,
        })
    }
}
