//! Errors of the Containerfile front end. Every variant that comes from the
//! file itself names the (1-based) line of the instruction.

use std::path::PathBuf;

/// An error while parsing or planning a Containerfile, or resolving its context.
#[derive(Debug, thiserror::Error)]
pub enum ContainerfileError {
    #[error("line {line}: unknown instruction: {name}")]
    UnknownInstruction { line: usize, name: String },
    #[error("line {line}: {instruction}: {message}")]
    Syntax {
        line: usize,
        instruction: String,
        message: String,
    },
    #[error("line {line}: invalid parser directive: {message}")]
    Directive { line: usize, message: String },
    #[error("line {line}: {instruction} is not allowed before the first FROM")]
    BeforeFrom { line: usize, instruction: String },
    #[error("the Containerfile has no FROM instruction")]
    NoStages,
    #[error("line {line}: variable expansion failed in {word:?}: {message}")]
    Expansion {
        line: usize,
        word: String,
        message: String,
    },
    #[error("build target stage {0:?} not found")]
    UnknownTarget(String),
    #[error("line {line}: stage {reference:?} is not defined before this instruction")]
    UnknownStage { line: usize, reference: String },
    #[error("line {line}: COPY source {path:?} is outside the build context")]
    OutsideContext { line: usize, path: String },
    #[error(
        "line {line}: COPY source {path:?} not found in the build context (or excluded by .dockerignore)"
    )]
    SourceNotFound { line: usize, path: String },
    #[error("line {line}: invalid pattern {pattern:?}: {message}")]
    BadPattern {
        line: usize,
        pattern: String,
        message: String,
    },
    #[error("invalid .dockerignore pattern {pattern:?}: {message}")]
    BadIgnorePattern { pattern: String, message: String },
    #[error("reading build context path {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ContainerfileError {
    pub(crate) fn syntax(line: usize, instruction: &str, message: impl Into<String>) -> Self {
        Self::Syntax {
            line,
            instruction: instruction.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
