//! Build planning: stages, ARG/ENV scoping and expansion, `--target`
//! selection, and the step list each stage runs. Pure: base images are
//! described by the caller through a lookup, RUN steps are executed by an
//! [`Executor`] the engine supplies, and layers are committed by the caller.
//!
//! ARG/ENV rules (<https://docs.docker.com/reference/dockerfile/#arg>):
//! ARGs before the first FROM are global and visible only to FROM lines; a
//! stage sees an ARG from its declaration on (a bare `ARG NAME` inside a
//! stage takes the global value); `--build-arg` overrides defaults; ENV wins
//! over an ARG of the same name; ARG values reach RUN's environment but are
//! not stored in the image config.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use super::ast::{
    CommandForm, Containerfile, CopyArgs, Healthcheck, Heredoc, Instruction, InstructionKind,
};
use super::error::ContainerfileError;
use super::expand::Expander;
use super::parser::parse_instruction;

/// Options of `berth build` that affect planning.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--target STAGE`.
    pub target: Option<String>,
}

/// What the planner needs to know about an external base image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImageInfo {
    /// `Env` of the image config as `(key, value)`.
    pub env: Vec<(String, String)>,
    /// `WorkingDir` of the image config.
    pub workdir: Option<String>,
    /// `OnBuild` triggers of the image config; they run right after FROM.
    pub onbuild: Vec<String>,
}

/// Where a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum BaseImage {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference to pull.
    Image(String),
}

/// Where COPY reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CopyFrom {
    Context,
    Stage(usize),
    Image(String),
}

/// A Docker healthcheck as stored in the image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    pub interval_ns: Option<u64>,
    pub timeout_ns: Option<u64>,
    pub start_period_ns: Option<u64>,
    pub start_interval_ns: Option<u64>,
    pub retries: Option<u32>,
}

/// A change to the image config made by a config-only instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ImageConfigDelta {
    Env(Vec<(String, String)>),
    User(String),
    Cmd(Vec<String>),
    /// Setting ENTRYPOINT also clears a CMD inherited from the base image.
    Entrypoint(Vec<String>),
    ExposedPorts(Vec<String>),
    Labels(Vec<(String, String)>),
    Volumes(Vec<String>),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(HealthConfig),
    OnBuild(String),
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum StepAction {
    /// Run a command in a container on the current rootfs; produces a layer.
    Run {
        argv: Vec<String>,
        /// ENV and visible ARGs, sorted by key.
        env: Vec<(String, String)>,
        workdir: String,
        user: Option<String>,
        network: Option<String>,
        mounts: Vec<String>,
    },
    /// COPY/ADD; produces a layer.
    Copy {
        /// ADD: unpack local archives, accept URLs.
        add: bool,
        from: CopyFrom,
        /// Expanded, context- (or source-rootfs-) relative patterns.
        sources: Vec<String>,
        /// Absolute destination; a trailing `/` means "into this directory".
        dest: String,
        chown: Option<String>,
        chmod: Option<u32>,
        link: bool,
        checksum: Option<String>,
        /// Files given inline as here-documents (`COPY <<EOF /dest`).
        inline: Vec<InlineFile>,
    },
    /// WORKDIR: set the working directory and create it if missing.
    Workdir(String),
    /// A config-only change (no filesystem change).
    Config(ImageConfigDelta),
}

/// A file whose content is a here-document in the Containerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineFile {
    /// The heredoc name, used as the file name when the destination is a directory.
    pub name: String,
    pub content: String,
}

/// One step of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub line: usize,
    /// The instruction as written (continuations joined), for history.
    pub instruction: String,
    pub action: StepAction,
}

impl Step {
    /// Whether the step changes the filesystem (and so commits a layer).
    pub fn changes_filesystem(&self) -> bool {
        matches!(
            self.action,
            StepAction::Run { .. } | StepAction::Copy { .. } | StepAction::Workdir(_)
        )
    }
}

/// The image config a stage ends with (its base's values where unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StageConfig {
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    /// CMD was cleared by ENTRYPOINT and not set again afterwards.
    pub cmd_cleared: bool,
    pub exposed_ports: BTreeSet<String>,
    pub labels: BTreeMap<String, String>,
    pub volumes: BTreeSet<String>,
    pub shell: Option<Vec<String>>,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<HealthConfig>,
    pub onbuild: Vec<String>,
}

/// One stage of the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagePlan {
    pub index: usize,
    /// `AS name` (lower case).
    pub name: Option<String>,
    pub line: usize,
    pub base: BaseImage,
    pub platform: Option<String>,
    pub steps: Vec<Step>,
    pub config: StageConfig,
}

impl StagePlan {
    /// Stages this one needs built first (base and `COPY --from`).
    pub fn dependencies(&self) -> BTreeSet<usize> {
        let mut deps = BTreeSet::new();
        if let BaseImage::Stage(i) = self.base {
            deps.insert(i);
        }
        for s in &self.steps {
            if let StepAction::Copy {
                from: CopyFrom::Stage(i),
                ..
            } = s.action
            {
                deps.insert(i);
            }
        }
        deps
    }
}

/// The whole build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildPlan {
    /// Every stage in file order.
    pub stages: Vec<StagePlan>,
    /// Index of the stage whose result is the image.
    pub target: usize,
    /// Stages to build, in an order where dependencies come first; stages the
    /// target does not need are left out.
    pub order: Vec<usize>,
    /// `--build-arg`s that no ARG consumed (Docker warns about them).
    pub unused_build_args: Vec<String>,
}

/// Request to run one RUN step.
#[derive(Debug, Clone, Copy)]
pub struct RunRequest<'a> {
    /// The writable root filesystem prepared for this step (a snapshot on top
    /// of `parent_snapshot`).
    pub rootfs: &'a Path,
    /// Key of the snapshot the rootfs was prepared from (`None` for scratch).
    pub parent_snapshot: Option<&'a str>,
    /// The command; shell form already wrapped in the stage's SHELL.
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub workdir: &'a str,
    pub user: Option<&'a str>,
    /// `--network=` of the RUN (`default`, `none`, `host`).
    pub network: Option<&'a str>,
}

/// Failure of a RUN step.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("command {argv:?} exited with status {code}")]
    Exit { argv: Vec<String>, code: i32 },
    #[error("running {argv:?}: {message}")]
    Failed { argv: Vec<String>, message: String },
}

/// Runs RUN steps in a container; the engine implements this.
pub trait Executor {
    fn run(&mut self, request: &RunRequest<'_>) -> Result<(), ExecError>;
}

/// Platform ARGs that are predefined in the global scope.
const PLATFORM_ARGS: &[(&str, &str)] = &[
    ("TARGETPLATFORM", "linux/amd64"),
    ("TARGETOS", "linux"),
    ("TARGETARCH", "amd64"),
    ("TARGETVARIANT", ""),
    ("BUILDPLATFORM", "linux/amd64"),
    ("BUILDOS", "linux"),
    ("BUILDARCH", "amd64"),
    ("BUILDVARIANT", ""),
];

/// Proxy ARGs usable with `--build-arg` without an ARG line.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

const DEFAULT_SHELL: &[&str] = &["/bin/sh", "-c"];

/// Look up information about an external base image (the caller may pull it).
pub type BaseLookup<'a> = dyn FnMut(&str) -> Result<BaseImageInfo, String> + 'a;

/// Plan a build of `file`.
pub fn plan_build(
    file: &Containerfile,
    options: &BuildOptions,
    base_lookup: &mut BaseLookup<'_>,
) -> Result<BuildPlan, ContainerfileError> {
    let mut planner = Planner {
        escape: file.escape,
        options,
        used_args: BTreeSet::new(),
        global: BTreeMap::new(),
        stages: Vec::new(),
    };
    for (name, value) in PLATFORM_ARGS {
        planner
            .global
            .insert(name.to_string(), Some(value.to_string()));
    }
    let mut iter = file.instructions.iter().peekable();
    // Global scope: only ARG before the first FROM.
    while let Some(ins) = iter.next_if(|i| !matches!(i.kind, InstructionKind::From { .. })) {
        match &ins.kind {
            InstructionKind::Arg(args) => planner.global_arg(ins.line, args)?,
            other => {
                return Err(ContainerfileError::BeforeFrom {
                    line: ins.line,
                    instruction: other.keyword().to_string(),
                });
            }
        }
    }
    while let Some(from) = iter.next() {
        let mut body = Vec::new();
        while let Some(ins) = iter.next_if(|i| !matches!(i.kind, InstructionKind::From { .. })) {
            body.push(ins);
        }
        let stage = planner.stage(from, &body, base_lookup)?;
        planner.stages.push(stage);
    }
    if planner.stages.is_empty() {
        return Err(ContainerfileError::NoStages);
    }
    let target = match &options.target {
        None => planner.stages.len() - 1,
        Some(t) => planner
            .stage_index(&t.to_ascii_lowercase())
            .ok_or_else(|| ContainerfileError::UnknownTarget(t.clone()))?,
    };
    let order = needed_stages(&planner.stages, target);
    let unused_build_args = options
        .build_args
        .keys()
        .filter(|k| !planner.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok(BuildPlan {
        stages: planner.stages,
        target,
        order,
        unused_build_args,
    })
}

/// The target and every stage it transitively depends on, ascending (stages
/// can only depend on earlier ones, so this is a valid build order).
fn needed_stages(stages: &[StagePlan], target: usize) -> Vec<usize> {
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed.insert(i) {
            todo.extend(stages[i].dependencies());
        }
    }
    needed.into_iter().collect()
}

struct Planner<'o> {
    escape: char,
    options: &'o BuildOptions,
    used_args: BTreeSet<String>,
    /// Global ARGs: name → value (None: declared without value).
    global: BTreeMap<String, Option<String>>,
    stages: Vec<StagePlan>,
}

/// Mutable state while walking one stage.
struct StageState {
    env: Vec<(String, String)>,
    args: BTreeMap<String, Option<String>>,
    workdir: String,
    user: Option<String>,
    shell: Vec<String>,
    config: StageConfig,
}

impl StageState {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().rev().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        self.args.get(name).cloned().flatten()
    }

    fn set_env(&mut self, key: String, value: String) {
        if let Some(slot) = self.env.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.env.push((key, value));
        }
    }

    /// ENV plus declared ARGs that have a value and are not shadowed by ENV.
    fn run_env(&self) -> Vec<(String, String)> {
        let mut all: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &self.args {
            if let Some(v) = v {
                all.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &self.env {
            all.insert(k.clone(), v.clone());
        }
        all.into_iter().collect()
    }
}

impl Planner<'_> {
    fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(name))
    }

    fn expand_with(
        &self,
        line: usize,
        raw: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ContainerfileError> {
        Expander::new(self.escape, lookup)
            .word(raw)
            .map_err(|message| ContainerfileError::Expansion {
                line,
                word: raw.to_string(),
                message,
            })
    }

    fn expand(
        &self,
        st: &StageState,
        line: usize,
        raw: &str,
    ) -> Result<String, ContainerfileError> {
        self.expand_with(line, raw, &|n| st.lookup(n))
    }

    fn expand_json(
        &self,
        st: &StageState,
        line: usize,
        raw: &str,
    ) -> Result<String, ContainerfileError> {
        Expander::new(self.escape, &|n| st.lookup(n))
            .json_word(raw)
            .map_err(|message| ContainerfileError::Expansion {
                line,
                word: raw.to_string(),
                message,
            })
    }

    /// Value of an ARG: `--build-arg`, else the expanded default.
    fn arg_value(&mut self, name: &str, default: Option<String>) -> Option<String> {
        if let Some(v) = self.options.build_args.get(name) {
            self.used_args.insert(name.to_string());
            return Some(v.clone());
        }
        default
    }

    fn global_arg(
        &mut self,
        line: usize,
        args: &[(String, Option<String>)],
    ) -> Result<(), ContainerfileError> {
        for (name, default) in args {
            let default = match default {
                Some(raw) => {
                    let global = self.global.clone();
                    Some(self.expand_with(line, raw, &|n| global.get(n).cloned().flatten())?)
                }
                None => None,
            };
            let value = self.arg_value(name, default);
            self.global.insert(name.clone(), value);
        }
        Ok(())
    }

    fn stage(
        &mut self,
        from: &Instruction,
        body: &[&Instruction],
        base_lookup: &mut BaseLookup<'_>,
    ) -> Result<StagePlan, ContainerfileError> {
        let InstructionKind::From {
            image,
            alias,
            platform,
        } = &from.kind
        else {
            unreachable!("stage starts at FROM");
        };
        let global = self.global.clone();
        let lookup = |n: &str| global.get(n).cloned().flatten();
        let image = self.expand_with(from.line, image, &lookup)?;
        let platform = platform
            .as_ref()
            .map(|p| self.expand_with(from.line, p, &lookup))
            .transpose()?;
        if image.is_empty() {
            return Err(ContainerfileError::syntax(
                from.line,
                "FROM",
                "base image name expands to an empty string",
            ));
        }
        let index = self.stages.len();
        if alias.is_some()
            && self
                .stage_index(alias.as_deref().unwrap_or_default())
                .is_some()
        {
            return Err(ContainerfileError::syntax(
                from.line,
                "FROM",
                format!(
                    "duplicate stage name {:?}",
                    alias.as_deref().unwrap_or_default()
                ),
            ));
        }
        let lower = image.to_ascii_lowercase();
        let (base, info) = if lower == "scratch" {
            (BaseImage::Scratch, BaseImageInfo::default())
        } else if let Some(i) = self.stage_index(&lower) {
            let prev = &self.stages[i].config;
            (
                BaseImage::Stage(i),
                BaseImageInfo {
                    env: prev.env.clone(),
                    workdir: prev.workdir.clone(),
                    onbuild: prev.onbuild.clone(),
                },
            )
        } else {
            let info = base_lookup(&image).map_err(|message| {
                ContainerfileError::syntax(
                    from.line,
                    "FROM",
                    format!("base image {image:?}: {message}"),
                )
            })?;
            (BaseImage::Image(image.clone()), info)
        };
        let mut st = StageState {
            env: info.env.clone(),
            args: BTreeMap::new(),
            workdir: info.workdir.clone().unwrap_or_else(|| "/".into()),
            user: None,
            shell: DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
            config: StageConfig {
                env: info.env,
                workdir: info.workdir,
                ..Default::default()
            },
        };
        // A stage built on another stage inherits its config.
        if let BaseImage::Stage(i) = base {
            st.config = self.stages[i].config.clone();
            st.user = st.config.user.clone();
            if let Some(shell) = &st.config.shell {
                st.shell = shell.clone();
            }
        }
        // Triggers recorded by the base run first and are not inherited.
        st.config.onbuild.clear();
        let mut triggers = Vec::new();
        for trigger in &info.onbuild {
            let mut ins = parse_instruction(from.line, trigger, self.escape)?;
            ins.original = format!("ONBUILD {}", ins.original);
            triggers.push(ins);
        }
        let mut steps = Vec::new();
        for ins in triggers.iter().chain(body.iter().copied()) {
            if let Some(action) = self.step_action(&mut st, ins, index)? {
                steps.push(Step {
                    line: ins.line,
                    instruction: ins.original.clone(),
                    action,
                });
            }
        }
        st.config.env = st.env.clone();
        Ok(StagePlan {
            index,
            name: alias.clone(),
            line: from.line,
            base,
            platform,
            steps,
            config: st.config,
        })
    }

    fn argv(&self, st: &StageState, form: &CommandForm) -> Vec<String> {
        match form {
            CommandForm::Exec(v) => v.clone(),
            CommandForm::Shell(s) => {
                let mut v = st.shell.clone();
                v.push(s.clone());
                v
            }
        }
    }

    fn step_action(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        stage_index: usize,
    ) -> Result<Option<StepAction>, ContainerfileError> {
        let line = ins.line;
        let action = match &ins.kind {
            InstructionKind::From { .. } => unreachable!("FROM starts a stage"),
            InstructionKind::Arg(args) => {
                for (name, default) in args {
                    let default = match default {
                        Some(raw) => Some(self.expand(st, line, raw)?),
                        // A bare ARG re-declares the global one.
                        None => self.global.get(name).cloned().flatten(),
                    };
                    let value = self.arg_value(name, default);
                    st.args.insert(name.clone(), value);
                }
                return Ok(None);
            }
            InstructionKind::Run { command, flags } => {
                let network = flags
                    .iter()
                    .rev()
                    .find(|(n, _)| n == "network")
                    .map(|(_, v)| v.clone());
                let mounts = flags
                    .iter()
                    .filter(|(n, _)| n == "mount")
                    .map(|(_, v)| v.clone())
                    .collect();
                let mut env = st.run_env();
                for name in PROXY_ARGS {
                    if let Some(v) = self.options.build_args.get(*name)
                        && !env.iter().any(|(k, _)| k == name)
                    {
                        env.push((name.to_string(), v.clone()));
                    }
                }
                env.sort();
                let argv = if ins.heredocs.is_empty() {
                    self.argv(st, command)
                } else {
                    heredoc_run_argv(&st.shell, command, &ins.heredocs)
                };
                StepAction::Run {
                    argv,
                    env,
                    workdir: st.workdir.clone(),
                    user: st.user.clone(),
                    network,
                    mounts,
                }
            }
            InstructionKind::Copy(args) => self.copy_action(st, ins, args, false, stage_index)?,
            InstructionKind::Add(args) => self.copy_action(st, ins, args, true, stage_index)?,
            InstructionKind::Env(pairs) => {
                // Every pair is expanded against the environment as it was
                // before this instruction (`ENV abc=bye def=$abc` gives def
                // the old abc, as Docker documents).
                let mut out = Vec::new();
                for (k, v) in pairs {
                    out.push((self.expand(st, line, k)?, self.expand(st, line, v)?));
                }
                for (k, v) in &out {
                    st.set_env(k.clone(), v.clone());
                }
                StepAction::Config(ImageConfigDelta::Env(out))
            }
            InstructionKind::Workdir(raw) => {
                let dir = self.expand(st, line, raw.trim())?;
                let path = join_path(&st.workdir, &dir);
                st.workdir = path.clone();
                st.config.workdir = Some(path.clone());
                StepAction::Workdir(path)
            }
            InstructionKind::User(raw) => {
                let user = self.expand(st, line, raw)?;
                st.user = Some(user.clone());
                st.config.user = Some(user.clone());
                StepAction::Config(ImageConfigDelta::User(user))
            }
            InstructionKind::Cmd(form) => {
                let argv = self.argv(st, form);
                st.config.cmd = Some(argv.clone());
                st.config.cmd_cleared = false;
                StepAction::Config(ImageConfigDelta::Cmd(argv))
            }
            InstructionKind::Entrypoint(form) => {
                let argv = self.argv(st, form);
                st.config.entrypoint = Some(argv.clone());
                st.config.cmd = None;
                st.config.cmd_cleared = true;
                StepAction::Config(ImageConfigDelta::Entrypoint(argv))
            }
            InstructionKind::Expose(ports) => {
                let mut out = Vec::new();
                for raw in ports {
                    let p = self.expand(st, line, raw)?;
                    out.push(normalize_port(line, &p)?);
                }
                st.config.exposed_ports.extend(out.iter().cloned());
                StepAction::Config(ImageConfigDelta::ExposedPorts(out))
            }
            InstructionKind::Label(pairs) => {
                let mut out = Vec::new();
                for (k, v) in pairs {
                    let key = self.expand(st, line, k)?;
                    let value = self.expand(st, line, v)?;
                    st.config.labels.insert(key.clone(), value.clone());
                    out.push((key, value));
                }
                StepAction::Config(ImageConfigDelta::Labels(out))
            }
            InstructionKind::Maintainer(who) => {
                st.config.labels.insert("maintainer".into(), who.clone());
                StepAction::Config(ImageConfigDelta::Labels(vec![(
                    "maintainer".into(),
                    who.clone(),
                )]))
            }
            InstructionKind::Volume(vols) => {
                let mut out = Vec::new();
                for raw in vols {
                    let v = self.expand(st, line, raw)?;
                    if v.is_empty() {
                        return Err(ContainerfileError::syntax(
                            line,
                            "VOLUME",
                            "empty volume path",
                        ));
                    }
                    out.push(v);
                }
                st.config.volumes.extend(out.iter().cloned());
                StepAction::Config(ImageConfigDelta::Volumes(out))
            }
            InstructionKind::Shell(shell) => {
                st.shell = shell.clone();
                st.config.shell = Some(shell.clone());
                StepAction::Config(ImageConfigDelta::Shell(shell.clone()))
            }
            InstructionKind::StopSignal(raw) => {
                let sig = self.expand(st, line, raw)?;
                validate_signal(line, &sig)?;
                st.config.stop_signal = Some(sig.clone());
                StepAction::Config(ImageConfigDelta::StopSignal(sig))
            }
            InstructionKind::Healthcheck(hc) => {
                let cfg = health_config(line, hc)?;
                st.config.healthcheck = Some(cfg.clone());
                StepAction::Config(ImageConfigDelta::Healthcheck(cfg))
            }
            InstructionKind::Onbuild(inner) => {
                st.config.onbuild.push(inner.original.clone());
                StepAction::Config(ImageConfigDelta::OnBuild(inner.original.clone()))
            }
        };
        Ok(Some(action))
    }

    fn copy_action(
        &mut self,
        st: &StageState,
        ins: &Instruction,
        args: &CopyArgs,
        add: bool,
        stage_index: usize,
    ) -> Result<StepAction, ContainerfileError> {
        let line = ins.line;
        let keyword = if add { "ADD" } else { "COPY" };
        // Here-document sources become inline files.
        let mut inline = Vec::new();
        let mut raw_sources = Vec::new();
        for src in &args.sources {
            let Some(name) = heredoc_source_name(src) else {
                raw_sources.push(src.clone());
                continue;
            };
            let doc = ins
                .heredocs
                .iter()
                .find(|h| h.name == name)
                .ok_or_else(|| {
                    ContainerfileError::syntax(
                        line,
                        keyword,
                        format!("no here-document named {name}"),
                    )
                })?;
            let content = if doc.expand {
                self.expand_json(st, line, &doc.content)?
            } else {
                doc.content.clone()
            };
            inline.push(InlineFile {
                name: doc.name.clone(),
                content,
            });
        }
        let expand_one = |raw: &str| {
            if args.json {
                self.expand_json(st, line, raw)
            } else {
                self.expand(st, line, raw)
            }
        };
        let sources = raw_sources
            .iter()
            .map(|s| expand_one(s))
            .collect::<Result<Vec<_>, _>>()?;
        let dest_raw = expand_one(&args.dest)?;
        if sources.iter().any(|s| is_remote(s)) && !add {
            return Err(ContainerfileError::syntax(
                line,
                keyword,
                "COPY does not fetch URLs; use ADD",
            ));
        }
        if sources.len() + inline.len() > 1 && !dest_raw.ends_with('/') {
            return Err(ContainerfileError::syntax(
                line,
                keyword,
                "with more than one source the destination must be a directory ending in /",
            ));
        }
        let mut dest = join_path(&st.workdir, &dest_raw);
        if (dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/."))
            && !dest.ends_with('/')
        {
            dest.push('/');
        }
        let from = match &args.from {
            None => CopyFrom::Context,
            Some(raw) => {
                let name = self.expand(st, line, raw)?.to_ascii_lowercase();
                if let Ok(n) = name.parse::<usize>() {
                    if n >= stage_index {
                        return Err(ContainerfileError::UnknownStage {
                            line,
                            reference: name,
                        });
                    }
                    CopyFrom::Stage(n)
                } else if let Some(i) = self.stage_index(&name) {
                    CopyFrom::Stage(i)
                } else {
                    CopyFrom::Image(name)
                }
            }
        };
        let chown = args
            .chown
            .as_ref()
            .map(|c| self.expand(st, line, c))
            .transpose()?;
        let chmod = args
            .chmod
            .as_ref()
            .map(|c| {
                let c = self.expand(st, line, c)?;
                u32::from_str_radix(&c, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        ContainerfileError::syntax(
                            line,
                            keyword,
                            format!("invalid --chmod={c} (expected octal permission bits)"),
                        )
                    })
            })
            .transpose()?;
        Ok(StepAction::Copy {
            add,
            from,
            sources,
            dest,
            chown,
            chmod,
            link: args.link,
            checksum: args.checksum.clone(),
            inline,
        })
    }
}

/// Whether an ADD source is a URL to fetch rather than a context path.
pub fn is_remote(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` → `EOF`.
fn heredoc_source_name(word: &str) -> Option<String> {
    let rest = word.strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let name = rest.trim_matches(|c| c == '"' || c == '\'');
    (!name.is_empty()).then(|| name.to_string())
}

/// argv of a RUN with here-documents. `RUN <<EOF` alone runs the body as
/// the script (through its `#!` interpreter, fed on stdin, if it has one);
/// otherwise the shell gets the line and the bodies, and its own heredoc
/// support does the rest.
fn heredoc_run_argv(shell: &[String], command: &CommandForm, docs: &[Heredoc]) -> Vec<String> {
    let text = match command {
        CommandForm::Shell(s) => s.clone(),
        CommandForm::Exec(v) => return v.clone(),
    };
    let mut argv = shell.to_vec();
    let only_doc = docs.len() == 1
        && heredoc_source_name(text.trim()).as_deref() == Some(docs[0].name.as_str())
        && !text.trim().contains(char::is_whitespace);
    if only_doc {
        let doc = &docs[0];
        match doc.content.strip_prefix("#!") {
            Some(rest) => {
                let interpreter = rest.lines().next().unwrap_or_default().trim();
                argv.push(format!(
                    "{interpreter} <<'{name}'\n{}{name}\n",
                    doc.content,
                    name = doc.name
                ));
            }
            None => argv.push(doc.content.clone()),
        }
        return argv;
    }
    let mut script = text;
    script.push('\n');
    for doc in docs {
        script.push_str(&doc.content);
        script.push_str(&doc.name);
        script.push('\n');
    }
    argv.push(script);
    argv
}

/// Resolve `path` against `base` lexically (`..` stops at `/`), keeping a
/// trailing `/` off except for the root.
pub fn join_path(base: &str, path: &str) -> String {
    let combined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in combined.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `80` → `80/tcp`; `53/UDP` → `53/udp`; ranges `8000-8010/tcp` allowed.
fn normalize_port(line: usize, p: &str) -> Result<String, ContainerfileError> {
    let (port, proto) = match p.split_once('/') {
        Some((port, proto)) => (port, proto.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    let valid_num = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
    let ok_port = match port.split_once('-') {
        Some((a, b)) => valid_num(a) && valid_num(b),
        None => valid_num(port),
    };
    if !ok_port || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(ContainerfileError::syntax(
            line,
            "EXPOSE",
            format!("invalid port {p:?}"),
        ));
    }
    Ok(format!("{port}/{proto}"))
}

/// A signal name (`SIGTERM`, `TERM`, `SIGRTMIN+3`) or number.
fn validate_signal(line: usize, sig: &str) -> Result<(), ContainerfileError> {
    let name = sig.strip_prefix("SIG").unwrap_or(sig);
    let ok = match sig.parse::<u32>() {
        Ok(n) => (1..=64).contains(&n),
        Err(_) => {
            name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+' || c == '-')
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ContainerfileError::syntax(
            line,
            "STOPSIGNAL",
            format!("invalid signal {sig:?}"),
        ))
    }
}

/// Go-style duration (`1m30s`, `500ms`, `2h`) to nanoseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult: f64 = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total = total.checked_add((num * mult) as u64)?;
    }
    Some(total)
}

fn health_config(line: usize, hc: &Healthcheck) -> Result<HealthConfig, ContainerfileError> {
    let dur = |name: &str, v: &Option<String>| -> Result<Option<u64>, ContainerfileError> {
        v.as_ref()
            .map(|s| {
                parse_duration(s).ok_or_else(|| {
                    ContainerfileError::syntax(
                        line,
                        "HEALTHCHECK",
                        format!("invalid --{name}={s} (expected a duration like 30s)"),
                    )
                })
            })
            .transpose()
    };
    Ok(match hc {
        Healthcheck::None => HealthConfig {
            test: vec!["NONE".into()],
            interval_ns: None,
            timeout_ns: None,
            start_period_ns: None,
            start_interval_ns: None,
            retries: None,
        },
        Healthcheck::Check {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => HealthConfig {
            test: match test {
                CommandForm::Exec(v) => std::iter::once("CMD".to_string())
                    .chain(v.iter().cloned())
                    .collect(),
                CommandForm::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
            },
            interval_ns: dur("interval", interval)?,
            timeout_ns: dur("timeout", timeout)?,
            start_period_ns: dur("start-period", start_period)?,
            start_interval_ns: dur("start-interval", start_interval)?,
            retries: *retries,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;

    fn plan_with(text: &str, args: &[(&str, &str)], target: Option<&str>) -> BuildPlan {
        try_plan(text, args, target).unwrap()
    }

    fn try_plan(
        text: &str,
        args: &[(&str, &str)],
        target: Option<&str>,
    ) -> Result<BuildPlan, ContainerfileError> {
        let options = BuildOptions {
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            target: target.map(str::to_string),
        };
        plan_build(&parse(text)?, &options, &mut |image| {
            if image.starts_with("missing") {
                return Err("not found".into());
            }
            let onbuild = if image == "with-triggers" {
                vec!["RUN echo triggered".to_string(), "COPY . /app".to_string()]
            } else {
                Vec::new()
            };
            Ok(BaseImageInfo {
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                workdir: Some("/base".into()),
                onbuild,
            })
        })
    }

    fn run_argv(step: &Step) -> &[String] {
        match &step.action {
            StepAction::Run { argv, .. } => argv,
            other => panic!("not a RUN: {other:?}"),
        }
    }

    fn run_env(step: &Step) -> &[(String, String)] {
        match &step.action {
            StepAction::Run { env, .. } => env,
            other => panic!("not a RUN: {other:?}"),
        }
    }

    #[test]
    fn global_args_feed_from_only() {
        let text = "ARG BASE=alpine\nARG TAG=3\nFROM ${BASE}:${TAG} AS one\nRUN echo $TAG\nARG TAG\nRUN echo $TAG\n";
        let p = plan_with(text, &[], None);
        assert_eq!(p.stages[0].base, BaseImage::Image("alpine:3".into()));
        // Before the in-stage ARG the global TAG is not visible to RUN's env.
        assert!(
            !run_env(&p.stages[0].steps[0])
                .iter()
                .any(|(k, _)| k == "TAG")
        );
        assert!(run_env(&p.stages[0].steps[1]).contains(&("TAG".into(), "3".into())));
        let p = plan_with(text, &[("TAG", "edge")], None);
        assert_eq!(p.stages[0].base, BaseImage::Image("alpine:edge".into()));
        assert!(run_env(&p.stages[0].steps[1]).contains(&("TAG".into(), "edge".into())));
        assert!(p.unused_build_args.is_empty());
    }

    #[test]
    fn env_overrides_arg_and_sees_base_env() {
        let text = "FROM img\nARG V=fromarg\nENV V=fromenv P=$PATH:/x\nENV Q=$V\nWORKDIR $Q\n";
        let p = plan_with(text, &[("V", "cli"), ("UNUSED", "1")], None);
        let s = &p.stages[0];
        assert_eq!(
            s.steps[0].action,
            StepAction::Config(ImageConfigDelta::Env(vec![
                ("V".into(), "fromenv".into()),
                ("P".into(), "/usr/bin:/bin:/x".into())
            ]))
        );
        assert_eq!(
            s.steps[1].action,
            StepAction::Config(ImageConfigDelta::Env(vec![("Q".into(), "fromenv".into())]))
        );
        // Relative WORKDIR resolves against the base image's.
        assert_eq!(
            s.steps[2].action,
            StepAction::Workdir("/base/fromenv".into())
        );
        assert_eq!(p.unused_build_args, vec!["UNUSED".to_string()]);
        assert!(s.config.env.contains(&("V".into(), "fromenv".into())));
    }

    #[test]
    fn platform_args_predefined() {
        let p = plan_with("FROM img-$TARGETARCH\nARG TARGETOS\nRUN echo\n", &[], None);
        assert_eq!(p.stages[0].base, BaseImage::Image("img-amd64".into()));
        assert!(run_env(&p.stages[0].steps[0]).contains(&("TARGETOS".into(), "linux".into())));
    }

    #[test]
    fn shell_and_exec_forms() {
        let text = "FROM scratch\nRUN echo a\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nRUN echo b\nRUN [\"/x\", \"$HOME\"]\nCMD echo c\nENTRYPOINT [\"/e\"]\n";
        let p = plan_with(text, &[], None);
        let s = &p.stages[0];
        assert_eq!(run_argv(&s.steps[0]), ["/bin/sh", "-c", "echo a"]);
        assert_eq!(run_argv(&s.steps[2]), ["/bin/bash", "-eu", "-c", "echo b"]);
        // Exec form is not expanded.
        assert_eq!(run_argv(&s.steps[3]), ["/x", "$HOME"]);
        assert_eq!(s.config.entrypoint, Some(vec!["/e".to_string()]));
        // ENTRYPOINT after CMD clears it.
        assert_eq!(s.config.cmd, None);
        assert!(s.config.cmd_cleared);
        assert_eq!(s.base, BaseImage::Scratch);
    }

    #[test]
    fn copy_planning() {
        let text = "FROM img AS build\nWORKDIR /src\nCOPY . .\nCOPY a b ./out/\nFROM scratch\nCOPY --from=build --chown=app --chmod=640 /src/bin /usr/bin/\nCOPY --from=0 /x /y\nCOPY --from=busybox:latest /bin/sh /sh\nADD [\"$HOME x\", \"rel\"]\n";
        let p = plan_with(text, &[], None);
        let b = &p.stages[0];
        assert_eq!(
            b.steps[1].action,
            StepAction::Copy {
                add: false,
                from: CopyFrom::Context,
                sources: vec![".".into()],
                dest: "/src/".into(),
                chown: None,
                chmod: None,
                link: false,
                checksum: None,
                inline: vec![]
            }
        );
        match &b.steps[2].action {
            StepAction::Copy { dest, sources, .. } => {
                assert_eq!(dest, "/src/out/");
                assert_eq!(sources, &["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
        let f = &p.stages[1];
        match &f.steps[0].action {
            StepAction::Copy {
                from,
                chown,
                chmod,
                dest,
                ..
            } => {
                assert_eq!(*from, CopyFrom::Stage(0));
                assert_eq!(chown.as_deref(), Some("app"));
                assert_eq!(*chmod, Some(0o640));
                assert_eq!(dest, "/usr/bin/");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &f.steps[1].action,
            StepAction::Copy {
                from: CopyFrom::Stage(0),
                ..
            }
        ));
        assert!(
            matches!(&f.steps[2].action, StepAction::Copy { from: CopyFrom::Image(i), .. } if i == "busybox:latest")
        );
        match &f.steps[3].action {
            StepAction::Copy {
                add, sources, dest, ..
            } => {
                assert!(*add);
                assert_eq!(sources, &[" x"]);
                assert_eq!(dest, "/rel");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.order, vec![0, 1]);
    }

    #[test]
    fn target_selection_prunes_unneeded_stages() {
        let text = "FROM a AS deps\nRUN d\nFROM a AS unused\nRUN u\nFROM deps AS build\nRUN b\nFROM scratch AS final\nCOPY --from=build /o /o\nFROM scratch AS other\n";
        let p = plan_with(text, &[], Some("final"));
        assert_eq!(p.target, 3);
        assert_eq!(p.order, vec![0, 2, 3]);
        let p = plan_with(text, &[], None);
        assert_eq!(p.target, 4);
        assert_eq!(p.order, vec![4]);
        let p = plan_with(text, &[], Some("BUILD"));
        assert_eq!(p.order, vec![0, 2]);
        assert_eq!(p.stages[2].base, BaseImage::Stage(0));
    }

    #[test]
    fn config_recording() {
        let text = "FROM scratch\nEXPOSE 80 53/UDP 8000-8010\nLABEL a=1 \"b c\"=\"d e\"\nVOLUME /data\nSTOPSIGNAL SIGINT\nUSER 1000:1000\nHEALTHCHECK --interval=1m30s --timeout=500ms --retries=2 CMD [\"/check\"]\nONBUILD COPY . /app\nCMD [\"/app\"]\n";
        let c = plan_with(text, &[], None).stages[0].config.clone();
        assert_eq!(
            c.exposed_ports.into_iter().collect::<Vec<_>>(),
            ["53/udp", "80/tcp", "8000-8010/tcp"]
        );
        assert_eq!(c.labels.get("b c").map(String::as_str), Some("d e"));
        assert!(c.volumes.contains("/data"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        let hc = c.healthcheck.unwrap();
        assert_eq!(hc.test, ["CMD", "/check"]);
        assert_eq!(hc.interval_ns, Some(90_000_000_000));
        assert_eq!(hc.timeout_ns, Some(500_000_000));
        assert_eq!(hc.retries, Some(2));
        assert_eq!(c.onbuild, ["COPY . /app"]);
        assert_eq!(c.cmd, Some(vec!["/app".to_string()]));
    }

    #[test]
    fn durations() {
        let cases: &[(&str, Option<u64>)] = &[
            ("30s", Some(30_000_000_000)),
            ("1m30s", Some(90_000_000_000)),
            ("1.5s", Some(1_500_000_000)),
            ("2h", Some(7_200_000_000_000)),
            ("0", Some(0)),
            ("10", None),
            ("", None),
            ("5x", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s), *want, "{s}");
        }
    }

    #[test]
    fn join_path_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("/", "a", "/a"),
            ("/a", "b/c", "/a/b/c"),
            ("/a", "/x", "/x"),
            ("/a/b", "..", "/a"),
            ("/", "../..", "/"),
            ("/a", ".", "/a"),
        ];
        for (base, p, want) in cases {
            assert_eq!(join_path(base, p), *want, "{base} + {p}");
        }
    }

    #[test]
    fn planning_errors_name_the_line() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            (
                "RUN x\nFROM a\n",
                None,
                "line 1: RUN is not allowed before the first FROM",
            ),
            ("ARG A\n", None, "no FROM"),
            ("FROM a\n", Some("nope"), "\"nope\" not found"),
            ("FROM a\nCOPY --from=1 /a /b\n", None, "line 2: stage \"1\""),
            (
                "FROM a\nCOPY a b /c\n",
                None,
                "line 2: COPY: with more than one source",
            ),
            (
                "FROM a\nCOPY --chmod=999 a /b\n",
                None,
                "line 2: COPY: invalid --chmod=999",
            ),
            (
                "FROM a\nEXPOSE 99999\n",
                None,
                "line 2: EXPOSE: invalid port",
            ),
            ("FROM a\nSTOPSIGNAL sig term\n", None, "line 2: STOPSIGNAL"),
            ("FROM a\nSTOPSIGNAL 0\n", None, "invalid signal"),
            (
                "FROM a\nHEALTHCHECK --interval=soon CMD x\n",
                None,
                "line 2: HEALTHCHECK: invalid --interval=soon",
            ),
            (
                "FROM a\nENV X=${Y:?need Y}\n",
                None,
                "line 2: variable expansion failed",
            ),
            (
                "FROM missing-image\n",
                None,
                "line 1: FROM: base image \"missing-image\": not found",
            ),
            (
                "FROM a AS x\nFROM b AS x\n",
                None,
                "line 2: FROM: duplicate stage name",
            ),
            (
                "ARG B\nFROM ${B}\n",
                None,
                "line 2: FROM: base image name expands to an empty string",
            ),
        ];
        for (text, target, needle) in cases {
            let err = try_plan(text, &[], *target).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn steps_that_change_the_filesystem() {
        let p = plan_with(
            "FROM a\nENV A=1\nRUN x\nWORKDIR /w\nCOPY a /b\nLABEL x=y\n",
            &[],
            None,
        );
        let flags: Vec<bool> = p.stages[0]
            .steps
            .iter()
            .map(Step::changes_filesystem)
            .collect();
        assert_eq!(flags, [false, true, true, true, false]);
    }

    #[test]
    fn heredoc_runs() {
        let text = "FROM scratch\nRUN <<EOF\necho one\necho two\nEOF\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\nRUN cat <<A > /a && cat <<'B' > /b\n$x\nA\n$y\nB\n";
        let p = plan_with(text, &[], None);
        let s = &p.stages[0];
        assert_eq!(
            run_argv(&s.steps[0]),
            ["/bin/sh", "-c", "echo one\necho two\n"]
        );
        assert_eq!(
            run_argv(&s.steps[1]),
            [
                "/bin/sh",
                "-c",
                "/usr/bin/env python3 <<'EOF'\n#!/usr/bin/env python3\nprint(1)\nEOF\n"
            ]
        );
        assert_eq!(
            run_argv(&s.steps[2]),
            [
                "/bin/sh",
                "-c",
                "cat <<A > /a && cat <<'B' > /b\n$x\nA\n$y\nB\n"
            ]
        );
    }

    #[test]
    fn heredoc_copies() {
        let text = "FROM scratch\nARG NAME=berth\nCOPY <<conf /etc/app.conf\nname=$NAME\nconf\nCOPY <<\"a\" <<b /d/\nraw $NAME\na\nb=$NAME\nb\n";
        let p = plan_with(text, &[], None);
        let s = &p.stages[0];
        match &s.steps[0].action {
            StepAction::Copy {
                sources,
                inline,
                dest,
                ..
            } => {
                assert!(sources.is_empty());
                assert_eq!(dest, "/etc/app.conf");
                assert_eq!(
                    inline,
                    &[InlineFile {
                        name: "conf".into(),
                        content: "name=berth\n".into()
                    }]
                );
            }
            other => panic!("{other:?}"),
        }
        match &s.steps[1].action {
            StepAction::Copy { inline, .. } => {
                assert_eq!(inline[0].content, "raw $NAME\n");
                assert_eq!(inline[1].content, "b=berth\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn base_onbuild_triggers_run_first_and_are_not_inherited() {
        let p = plan_with("FROM with-triggers\nRUN echo mine\n", &[], None);
        let s = &p.stages[0];
        let text: Vec<&str> = s.steps.iter().map(|s| s.instruction.as_str()).collect();
        assert_eq!(
            text,
            [
                "ONBUILD RUN echo triggered",
                "ONBUILD COPY . /app",
                "RUN echo mine"
            ]
        );
        assert!(s.config.onbuild.is_empty());
        // Triggers recorded in one stage fire in a stage built FROM it.
        let p = plan_with(
            "FROM scratch AS a\nONBUILD RUN echo hi\nFROM a\nRUN x\n",
            &[],
            None,
        );
        assert_eq!(p.stages[0].config.onbuild, ["RUN echo hi"]);
        assert_eq!(p.stages[1].steps[0].instruction, "ONBUILD RUN echo hi");
        assert!(p.stages[1].config.onbuild.is_empty());
    }

    #[test]
    fn copy_refuses_urls_add_keeps_them() {
        let err = try_plan("FROM a\nCOPY https://x/y /y\n", &[], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2: COPY: COPY does not fetch URLs"),
            "{err}"
        );
        let p = plan_with("FROM a\nADD https://x/y.tgz /y\n", &[], None);
        match &p.stages[0].steps[0].action {
            StepAction::Copy { sources, add, .. } => {
                assert!(*add);
                assert!(is_remote(&sources[0]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn env_pairs_see_the_environment_before_the_instruction() {
        // The example from the Dockerfile reference.
        let text = "FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n";
        let env = plan_with(text, &[], None).stages[0].config.env.clone();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("abc"), Some("bye"));
        assert_eq!(get("def"), Some("hello"));
        assert_eq!(get("ghi"), Some("bye"));
    }
}
