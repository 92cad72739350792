//! The engine's error type: each variant names the object and what was wrong.
//! [`Error::exit_code`] maps errors to Docker's CLI exit codes.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("no such volume: {0}")]
    NoSuchVolume(String),
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("the container name {0:?} is already in use")]
    NameInUse(String),
    #[error("container {id}: {message}")]
    Conflict { id: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("database {what}: {source}")]
    Db {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("runtime: {0}")]
    Runtime(#[from] berth_runtime::Error),
    #[error("image store: {0}")]
    Image(#[from] berth_image::Error),
    #[error("network: {0}")]
    Net(#[from] berth_net::NetError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The container's command could not be executed (126/127).
    #[error("container {id}: cannot run {command:?}: {message}")]
    Exec {
        id: String,
        command: String,
        message: String,
        code: u8,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Docker's CLI convention: 126 when the command cannot be invoked,
    /// 127 when it is not found, 125 for every other engine error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Exec { code, .. } => *code,
            _ => 125,
        }
    }
}

/// `map_err` helper for io errors: `.map_err(io("reading x"))`.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// `map_err` helper for SQLite errors.
pub fn db(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let what = what.into();
    move |source| Error::Db { what, source }
}

/// Classifies a runtime error raised while exec'ing the container's
/// command: "not found" → 127, "permission denied"/"exec format" → 126.
pub fn classify_exec_failure(id: &str, command: &str, err: berth_runtime::Error) -> Error {
    if let berth_runtime::Error::Init { step, message } = &err
        && (step.ends_with("exec") || step.ends_with("finding the executable"))
    {
        let m = message.to_ascii_lowercase();
        let code = if m.contains("no such file") || m.contains("not found") || m.contains("no such")
        {
            127
        } else {
            126
        };
        return Error::Exec {
            id: id.into(),
            command: command.into(),
            message: message.clone(),
            code,
        };
    }
    Error::Runtime(err)
}
