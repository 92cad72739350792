//! The instruction tree produced by the parser. Arguments are kept *raw*
//! (quotes and `$VAR` references intact) because Docker expands them per stage
//! with the ARG/ENV scope in force at each line; see [`crate::containerfile::plan`].

/// A parsed Containerfile: parser directives plus instructions in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    /// The `# syntax=` directive, if present (recorded, not acted upon).
    pub syntax: Option<String>,
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// One instruction with the 1-based line on which it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub line: usize,
    /// The instruction keyword in upper case followed by its (continuation
    /// joined) argument text, as written.
    pub original: String,
    pub kind: InstructionKind,
    /// Here-documents that followed the line (RUN/COPY/ADD), in order.
    pub heredocs: Vec<Heredoc>,
}

/// A here-document (`<<EOF` … `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// The body, each line ending in `\n`, leading tabs removed for `<<-`.
    pub content: String,
    pub strip_tabs: bool,
    /// `false` when the marker was quoted (`<<"EOF"`): no expansion.
    pub expand: bool,
}

/// Shell form (run through the stage's SHELL) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    Shell(String),
    Exec(Vec<String>),
}

/// Arguments of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    /// Raw source words (expanded at plan time).
    pub sources: Vec<String>,
    /// Raw destination word.
    pub dest: String,
    /// `--from=stage|index|image`.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=octal`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--checksum=` (ADD of remote URLs only).
    pub checksum: Option<String>,
    /// Whether the sources were written as a JSON array (no quote processing).
    pub json: bool,
}

/// HEALTHCHECK settings (durations kept as written, e.g. `30s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    Check {
        test: CommandForm,
        interval: Option<String>,
        timeout: Option<String>,
        start_period: Option<String>,
        start_interval: Option<String>,
        retries: Option<u32>,
    },
}

/// What an instruction says, with raw (unexpanded) words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    Run {
        command: CommandForm,
        /// `--mount=`, `--network=`, `--security=` as `(name, value)`.
        flags: Vec<(String, String)>,
    },
    Copy(CopyArgs),
    Add(CopyArgs),
    /// `(key, raw value)` pairs.
    Env(Vec<(String, String)>),
    /// `(name, raw default)` pairs.
    Arg(Vec<(String, Option<String>)>),
    Workdir(String),
    User(String),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    Volume(Vec<String>),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// A trigger recorded in the image config; the inner instruction is parsed
    /// for validation, `original` of the inner instruction is what gets stored.
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

impl InstructionKind {
    /// The upper-case keyword of this instruction.
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::From { .. } => "FROM",
            Self::Run { .. } => "RUN",
            Self::Copy(_) => "COPY",
            Self::Add(_) => "ADD",
            Self::Env(_) => "ENV",
            Self::Arg(_) => "ARG",
            Self::Workdir(_) => "WORKDIR",
            Self::User(_) => "USER",
            Self::Cmd(_) => "CMD",
            Self::Entrypoint(_) => "ENTRYPOINT",
            Self::Expose(_) => "EXPOSE",
            Self::Label(_) => "LABEL",
            Self::Volume(_) => "VOLUME",
            Self::Shell(_) => "SHELL",
            Self::StopSignal(_) => "STOPSIGNAL",
            Self::Healthcheck(_) => "HEALTHCHECK",
            Self::Onbuild(_) => "ONBUILD",
            Self::Maintainer(_) => "MAINTAINER",
        }
    }
}
