//! Containerfile / Dockerfile front end: parsing, variable expansion, stage
//! planning, `.dockerignore` matching, build-context resolution and layer-cache
//! keys. Everything here is pure (or reads only the build context); running RUN
//! steps is delegated to an [`Executor`] that the engine implements, and layer
//! commits are done by the caller with the content store.
//!
//! Reference: <https://docs.docker.com/reference/dockerfile/>.

pub mod ast;
pub mod cache;
pub mod config;
pub mod context;
pub mod error;
pub mod expand;
pub mod ignore;
pub mod parser;
pub mod plan;

pub use ast::{
    CommandForm, Containerfile, CopyArgs, Healthcheck, Heredoc, Instruction, InstructionKind,
};
pub use cache::{CacheKey, chain_cache_keys, step_cache_key};
pub use config::container_config;
pub use context::{
    ArchiveKind, BuildContext, InputEntry, InputKind, ResolvedSource, detect_archive, digest_inputs,
};
pub use error::ContainerfileError;
pub use expand::{Expander, expand_word};
pub use ignore::IgnoreMatcher;
pub use parser::parse;
pub use plan::{
    BaseImage, BaseImageInfo, BaseLookup, BuildOptions, BuildPlan, CopyFrom, ExecError, Executor,
    HealthConfig, ImageConfigDelta, InlineFile, RunRequest, StageConfig, StagePlan, Step,
    StepAction, join_path, parse_duration, plan_build,
};
