//! Containerfile / Dockerfile front end: parsing, variable expansion, stage
//! planning, `.dockerignore` matching, build-context resolution and layer-cache
//! keys. Everything here is pure (or reads only the build context); running RUN
//! steps is delegated to an [`Executor`] that the engine implements, and layer
//! commits are done by the caller with the content store.
//!
//! Reference: <https://docs.docker.com/reference/dockerfile/>.
//!
//! How a build runs (the engine/store side does the effects):
//! 1. [`parse`] the file; [`plan_build`] with `--build-arg`/`--target` and a
//!    lookup that pulls each external base and returns its env/workdir/ONBUILD.
//! 2. For each stage in [`BuildPlan::order`], start from its base (scratch,
//!    an earlier stage's result, or the pulled image) and walk its steps,
//!    keeping `parent` = the base's manifest digest (or the earlier stage's
//!    last key, or `"scratch"`).
//! 3. For each step compute [`step_cache_key`]: for a COPY/ADD from the
//!    context, resolve with [`BuildContext::resolve_sources`] and pass
//!    [`BuildContext::inputs_digest`]; for `COPY --from`, a digest of the
//!    source files in that stage/image. If the store has a layer for the
//!    key, reuse it; otherwise prepare a snapshot on the parent, run the RUN
//!    through an [`Executor`] (or copy / unpack files, or mkdir WORKDIR),
//!    commit, and remember key → layer. Config-only steps change no files.
//! 4. The image config is [`container_config`] of the base config and the
//!    target stage's [`StagePlan::config`].

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
