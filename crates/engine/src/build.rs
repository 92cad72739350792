//! `berth build`: runs a Containerfile / Dockerfile plan
//! ([`berth_image::containerfile`]) against the image store. Each
//! filesystem step (RUN, COPY/ADD, WORKDIR) prepares a snapshot on its
//! parent, mounts it, changes it (RUN in a real container through
//! [`run::RuntimeExecutor`], COPY/ADD through in-root file operations),
//! diffs it into a layer blob and commits the snapshot under the layer's
//! chain id. Config-only steps add a history entry. Every step's resulting
//! state is cached by its cache key (parent key + instruction + input
//! content), so an unchanged rebuild reuses everything and yields the same
//! image id, and a changed input re-runs exactly the steps after it.

pub mod cache;
pub mod copy;
pub mod inroot;
pub mod run;
pub mod users;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_image::containerfile::{
    self, BaseImage, BaseImageInfo, BuildContext, BuildOptions, ContainerfileError, CopyFrom,
    Executor, RunRequest, Step, StepAction,
};
use berth_image::snapshot::MountGuard;
use berth_image::spec::{ContainerConfig, History, ImageConfig, RootFs};
use berth_image::{ImageStore, chain_id, rfc3339};
use serde_json::Value;

use cache::{Cache, LayerState};

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The context directory.
    pub context: PathBuf,
    /// `-f`; default `Containerfile`, else `Dockerfile`, in the context.
    pub file: Option<PathBuf>,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// The runtime state root for RUN containers (`<run>/runtime`).
    pub runtime_root: PathBuf,
}

/// A build failure, naming the step or input at fault.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Containerfile(#[from] ContainerfileError),
    #[error("{0}")]
    Store(#[from] berth_image::Error),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no Containerfile or Dockerfile in {0} (use -f)")]
    NoFile(PathBuf),
    #[error("base image {name}: {message}")]
    Base { name: String, message: String },
    #[error(
        "step {step}/{total} (line {line}: {instruction}) failed: {message}{}",
        output_suffix(output)
    )]
    Step {
        step: usize,
        total: usize,
        line: usize,
        instruction: String,
        message: String,
        output: String,
    },
}

fn output_suffix(output: &str) -> String {
    if output.trim().is_empty() {
        String::new()
    } else {
        format!("\noutput of the step (last lines):\n{}", output.trim_end())
    }
}

/// Gets a base image into the store when it is missing (a registry pull);
/// returns its id.
pub type Puller<'a> = dyn FnMut(&ImageStore, &str) -> Result<String, String> + 'a;

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub id: String,
    /// Steps answered from the cache, and steps run.
    pub cached: usize,
    pub executed: usize,
}

/// The result of one stage.
#[derive(Clone)]
struct StageResult {
    state: LayerState,
    config: Value,
    key: String,
    architecture: String,
    os: String,
}

/// Finds the Containerfile of a build.
pub fn containerfile_path(context: &Path, file: Option<&Path>) -> Result<PathBuf, BuildError> {
    if let Some(f) = file {
        return Ok(if f.is_absolute() || f.exists() {
            f.to_path_buf()
        } else {
            context.join(f)
        });
    }
    ["Containerfile", "Dockerfile"]
        .iter()
        .map(|n| context.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| BuildError::NoFile(context.to_path_buf()))
}

fn now_rfc3339() -> String {
    // SOURCE_DATE_EPOCH (reproducible-builds.org) pins history times.
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(berth_image::metadata::now);
    rfc3339(secs)
}

fn short(key: &str) -> &str {
    let hex = key.split_once(':').map_or(key, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

struct Builder<'s, 'o, 'p> {
    store: &'s ImageStore,
    req: &'s BuildRequest,
    out: &'o mut dyn Write,
    puller: &'p mut Puller<'p>,
    cache: Cache<'s>,
    ctx: BuildContext,
    /// Image name → id of external images used.
    images: HashMap<String, String>,
    results: HashMap<usize, StageResult>,
    step_no: usize,
    total: usize,
    counter: usize,
    cached: usize,
    executed: usize,
}

/// Ensures image `name` is in the store (pulling it with `puller`).
fn ensure_image(
    store: &ImageStore,
    puller: &mut Puller<'_>,
    images: &mut HashMap<String, String>,
    name: &str,
) -> Result<String, BuildError> {
    if let Some(id) = images.get(name) {
        return Ok(id.clone());
    }
    let id = match store.resolve(name) {
        Ok(id) => id,
        Err(berth_image::Error::ImageNotFound(_)) => {
            puller(store, name).map_err(|message| BuildError::Base {
                name: name.to_string(),
                message,
            })?
        }
        Err(e) => return Err(e.into()),
    };
    images.insert(name.to_string(), id.clone());
    Ok(id)
}

fn base_info(store: &ImageStore, id: &str) -> Result<BaseImageInfo, berth_image::Error> {
    let (_, cfg) = store.read_image(id)?;
    let c = cfg.config.unwrap_or_default();
    let env = c
        .env
        .unwrap_or_default()
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect();
    let onbuild = c
        .extra
        .get("OnBuild")
        .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        .unwrap_or_default();
    Ok(BaseImageInfo {
        env,
        workdir: c.working_dir.filter(|w| !w.is_empty()),
        onbuild,
    })
}

/// Runs the build; streams progress to `out`; returns the image id.
pub fn build(
    store: &ImageStore,
    req: &BuildRequest,
    out: &mut dyn Write,
    puller: &mut Puller<'_>,
) -> Result<Built, BuildError> {
    let file = containerfile_path(&req.context, req.file.as_deref())?;
    let text = std::fs::read_to_string(&file).map_err(|source| BuildError::Read {
        path: file.clone(),
        source,
    })?;
    let cf = containerfile::parse(&text)?;
    let ctx = BuildContext::open_for(&req.context, &file)?;
    let mut images = HashMap::new();
    let mut lookup_err = None;
    let plan = {
        let mut lookup = |name: &str| -> Result<BaseImageInfo, String> {
            let r = ensure_image(store, puller, &mut images, name)
                .and_then(|id| base_info(store, &id).map_err(BuildError::from));
            r.map_err(|e| {
                let m = e.to_string();
                lookup_err = Some(e);
                m
            })
        };
        containerfile::plan_build(
            &cf,
            &BuildOptions {
                build_args: req.build_args.clone(),
                target: req.target.clone(),
            },
            &mut lookup,
        )
    };
    let plan = match (plan, lookup_err) {
        (Ok(p), _) => p,
        (Err(_), Some(e)) => return Err(e),
        (Err(e), None) => return Err(e.into()),
    };
    for a in &plan.unused_build_args {
        writeln!(
            out,
            "[Warning] one or more build args were not consumed: {a}"
        )
        .ok();
    }
    std::fs::create_dir_all(&req.runtime_root).map_err(|source| BuildError::Read {
        path: req.runtime_root.clone(),
        source,
    })?;
    let _op = store.begin_operation()?;
    let total = plan
        .order
        .iter()
        .map(|i| plan.stages[*i].steps.len() + 1)
        .sum();
    let mut b = Builder {
        store,
        req,
        out,
        puller,
        cache: Cache::open(store)?,
        ctx,
        images,
        results: HashMap::new(),
        step_no: 0,
        total,
        counter: 0,
        cached: 0,
        executed: 0,
    };
    for &si in &plan.order {
        let result = b.stage(&plan.stages[si])?;
        b.results.insert(si, result);
    }
    let fin = b.results.remove(&plan.target).expect("target built");
    let config: ContainerConfig =
        serde_json::from_value(fin.config.clone()).map_err(|e| BuildError::Step {
            step: b.total,
            total: b.total,
            line: 0,
            instruction: "config".into(),
            message: format!("image config: {e}"),
            output: String::new(),
        })?;
    let cfg = ImageConfig {
        created: fin.state.history.last().and_then(|h| h.created.clone()),
        author: None,
        architecture: fin.architecture.clone(),
        os: fin.os.clone(),
        variant: None,
        config: Some(config),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: fin.state.diff_ids.clone(),
        },
        history: fin.state.history.clone(),
        extra: BTreeMap::new(),
    };
    let id = store.create_image(&cfg, fin.state.layers.clone(), None)?;
    writeln!(b.out, "COMMIT\n--> {}", short(&id)).ok();
    Ok(Built {
        id,
        cached: b.cached,
        executed: b.executed,
    })
}

impl Builder<'_, '_, '_> {
    fn stage(&mut self, stage: &containerfile::StagePlan) -> Result<StageResult, BuildError> {
        self.step_no += 1;
        let from = match &stage.base {
            BaseImage::Scratch => "scratch".to_string(),
            BaseImage::Stage(i) => format!("stage {i}"),
            BaseImage::Image(n) => n.clone(),
        };
        let name = stage
            .name
            .as_ref()
            .map(|n| format!(" AS {n}"))
            .unwrap_or_default();
        writeln!(
            self.out,
            "STEP {}/{}: FROM {from}{name}",
            self.step_no, self.total
        )
        .ok();
        let mut cur = match &stage.base {
            BaseImage::Scratch => StageResult {
                state: LayerState::default(),
                config: Value::Null,
                key: "scratch".into(),
                architecture: "amd64".into(),
                os: "linux".into(),
            },
            BaseImage::Stage(i) => self.results.get(i).cloned().expect("dependency built"),
            BaseImage::Image(n) => self.image_base(n)?,
        };
        for step in &stage.steps {
            self.step_no += 1;
            writeln!(
                self.out,
                "STEP {}/{}: {}",
                self.step_no, self.total, step.instruction
            )
            .ok();
            let (state, key) =
                self.step(step, &cur)
                    .map_err(|(message, output)| BuildError::Step {
                        step: self.step_no,
                        total: self.total,
                        line: step.line,
                        instruction: step.instruction.clone(),
                        message,
                        output,
                    })?;
            cur.state = state;
            cur.key = key;
        }
        cur.config = containerfile::container_config(&cur.config, &stage.config);
        Ok(cur)
    }

    fn image_base(&mut self, name: &str) -> Result<StageResult, BuildError> {
        let id = ensure_image(self.store, self.puller, &mut self.images, name)?;
        let rec = self.store.image(&id)?;
        let (m, cfg) = self.store.read_image(&id)?;
        Ok(StageResult {
            state: LayerState {
                layers: m.layers.into_iter().map(oci_layer).collect(),
                diff_ids: cfg.rootfs.diff_ids.clone(),
                history: cfg.history.clone(),
                chain: rec.chain_id,
            },
            config: serde_json::to_value(cfg.config.unwrap_or_default()).unwrap_or(Value::Null),
            key: rec.manifest_digest,
            architecture: cfg.architecture,
            os: cfg.os,
        })
    }

    /// Runs (or reuses) one step; errors carry the message and output tail.
    fn step(
        &mut self,
        step: &Step,
        cur: &StageResult,
    ) -> Result<(LayerState, String), (String, String)> {
        let plain = |e: &dyn std::fmt::Display| (e.to_string(), String::new());
        let inputs = self.inputs(step).map_err(|e| plain(&e))?;
        let key = containerfile::step_cache_key(&cur.key, step, inputs.as_deref());
        if !self.req.no_cache
            && let Some(state) = self.cache.lookup(&key).map_err(|e| plain(&e))?
        {
            writeln!(self.out, "--> Using cache {}", short(&key)).ok();
            self.cached += 1;
            return Ok((state, key));
        }
        let mut state = cur.state.clone();
        let created = now_rfc3339();
        if step.changes_filesystem() {
            let (desc, diff_id, chain) = self.fs_step(step, &cur.state)?;
            state.layers.push(desc);
            state.diff_ids.push(diff_id);
            state.chain = Some(chain);
        }
        state.history.push(History {
            created: Some(created),
            created_by: Some(step.instruction.clone()),
            author: None,
            comment: Some("berth build".into()),
            empty_layer: !step.changes_filesystem(),
        });
        self.cache.store(&key, &state).map_err(|e| plain(&e))?;
        self.executed += 1;
        writeln!(self.out, "--> {}", short(&key)).ok();
        Ok((state, key))
    }

    /// The input digest of a COPY/ADD (None for other steps).
    fn inputs(&mut self, step: &Step) -> Result<Option<String>, BuildError> {
        let StepAction::Copy {
            from,
            sources,
            inline,
            ..
        } = &step.action
        else {
            return Ok(None);
        };
        Ok(Some(match from {
            CopyFrom::Context if sources.is_empty() && !inline.is_empty() => "inline".into(),
            CopyFrom::Context => {
                let local: Vec<String> = sources.iter().filter(|s| !is_url(s)).cloned().collect();
                let resolved = self.ctx.resolve_sources(step.line, &local)?;
                self.ctx.inputs_digest(&resolved)?
            }
            CopyFrom::Stage(i) => self
                .results
                .get(i)
                .map(|r| r.key.clone())
                .unwrap_or_default(),
            CopyFrom::Image(n) => {
                let id = ensure_image(self.store, self.puller, &mut self.images, n)?;
                self.store.image(&id)?.manifest_digest
            }
        }))
    }

    fn next_key(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("build-{kind}:{}:{}", std::process::id(), self.counter)
    }

    /// Prepares a snapshot on `parent`, mounts it, applies the step, and
    /// commits it as a layer.
    fn fs_step(
        &mut self,
        step: &Step,
        parent: &LayerState,
    ) -> Result<(berth_image::spec::Descriptor, berth_image::Digest, String), (String, String)>
    {
        let plain = |e: &dyn std::fmt::Display| (e.to_string(), String::new());
        let snaps = self.store.snapshotter();
        let active = self.next_key("step");
        let mounts = snaps
            .prepare(&active, parent.chain.as_deref())
            .map_err(|e| plain(&e))?;
        let applied = (|| {
            let dir = tempfile::Builder::new()
                .prefix("rootfs-")
                .tempdir_in(self.store.root().join("tmp"))
                .map_err(|e| plain(&e))?;
            let guard = MountGuard::new(&mounts, dir.path()).map_err(|e| plain(&e))?;
            let r = self.apply(step, dir.path(), parent);
            drop(guard);
            r
        })();
        let layer = applied.and_then(|()| {
            let (desc, diff_id) = self.store.snapshot_layer(&active).map_err(|e| plain(&e))?;
            let chain = chain_id(parent.chain.as_deref(), &diff_id);
            if snaps.stat(&chain).is_ok() {
                snaps.remove(&active).map_err(|e| plain(&e))?;
            } else {
                snaps.commit(&chain, &active).map_err(|e| plain(&e))?;
            }
            Ok((desc, diff_id, chain))
        });
        if layer.is_err() && snaps.stat(&active).is_ok() {
            let _ = snaps.remove(&active);
        }
        layer
    }

    fn apply(
        &mut self,
        step: &Step,
        rootfs: &Path,
        parent: &LayerState,
    ) -> Result<(), (String, String)> {
        let plain = |e: &dyn std::fmt::Display| (e.to_string(), String::new());
        match &step.action {
            StepAction::Workdir(dir) => inroot::Root::open(rootfs)
                .and_then(|r| r.mkdir_all(dir, None))
                .map(|_| ())
                .map_err(|e| plain(&format!("create {dir}: {e}"))),
            StepAction::Run {
                argv,
                env,
                workdir,
                user,
                network,
                mounts,
            } => {
                if !mounts.is_empty() {
                    return Err(plain(&"RUN --mount is not supported"));
                }
                let mut exec = run::RuntimeExecutor {
                    runtime_root: self.req.runtime_root.clone(),
                    tmp: self.store.root().join("tmp"),
                    out: &mut *self.out,
                    tail: Vec::new(),
                };
                let r = exec.run(&RunRequest {
                    rootfs,
                    parent_snapshot: parent.chain.as_deref(),
                    argv,
                    env,
                    workdir,
                    user: user.as_deref(),
                    network: network.as_deref(),
                });
                r.map_err(|e| {
                    (
                        e.to_string(),
                        String::from_utf8_lossy(&exec.tail).into_owned(),
                    )
                })
            }
            StepAction::Copy {
                add,
                from,
                sources,
                dest,
                chown,
                chmod,
                inline,
                ..
            } => {
                let root = inroot::Root::open(rootfs).map_err(|e| plain(&e))?;
                let owner = match chown {
                    None => (0, 0),
                    Some(spec) => users::resolve(
                        spec,
                        &root.read_to_string("/etc/passwd"),
                        &root.read_to_string("/etc/group"),
                    )
                    .map_err(|e| plain(&format!("--chown={spec}: {e}")))?,
                };
                let opts = copy::CopyOptions {
                    owner,
                    chmod: *chmod,
                };
                if !inline.is_empty() {
                    let files: Vec<(String, String)> = inline
                        .iter()
                        .map(|f| (f.name.clone(), f.content.clone()))
                        .collect();
                    copy::write_inline(rootfs, &files, dest, &opts).map_err(|e| plain(&e))?;
                }
                if let Some(url) = sources.iter().find(|s| is_url(s)) {
                    return Err(plain(&format!(
                        "ADD {url}: remote sources are not supported (no network during builds)"
                    )));
                }
                if sources.is_empty() {
                    return Ok(());
                }
                match from {
                    CopyFrom::Context => {
                        let resolved = self
                            .ctx
                            .resolve_sources(step.line, sources)
                            .map_err(|e| plain(&e))?;
                        let srcs: Vec<copy::Source> = resolved
                            .iter()
                            .map(|r| copy::Source {
                                path: r.path.clone(),
                                rel: Some(r.rel.clone()),
                                unpack: *add && !r.is_dir && r.archive.is_some(),
                            })
                            .collect();
                        copy::copy(rootfs, &srcs, dest, &opts, Some(self.ctx.ignore()))
                            .map_err(|e| plain(&format!("copy to {dest}: {e}")))
                    }
                    CopyFrom::Stage(i) => {
                        let chain = self.results.get(i).and_then(|r| r.state.chain.clone());
                        self.copy_from_snapshot(
                            chain,
                            &format!("stage {i}"),
                            sources,
                            dest,
                            rootfs,
                            &opts,
                        )
                    }
                    CopyFrom::Image(n) => {
                        let chain = self
                            .images
                            .get(n)
                            .and_then(|id| self.store.image(id).ok())
                            .and_then(|r| r.chain_id);
                        self.copy_from_snapshot(chain, n, sources, dest, rootfs, &opts)
                    }
                }
            }
            StepAction::Config(_) => Ok(()),
        }
    }

    /// `COPY --from`: mounts a read-only view of the source's top snapshot
    /// and copies the named paths (resolved inside it; `*`/`?`/`[]` in the
    /// last component match names).
    fn copy_from_snapshot(
        &mut self,
        chain: Option<String>,
        what: &str,
        sources: &[String],
        dest: &str,
        rootfs: &Path,
        opts: &copy::CopyOptions,
    ) -> Result<(), (String, String)> {
        let plain = |e: &dyn std::fmt::Display| (e.to_string(), String::new());
        let chain = chain.ok_or_else(|| plain(&format!("{what} has an empty filesystem")))?;
        let view = self.next_key("view");
        let snaps = self.store.snapshotter();
        let mounts = snaps.view(&view, Some(&chain)).map_err(|e| plain(&e))?;
        let r = (|| {
            let dir = tempfile::Builder::new()
                .prefix("from-")
                .tempdir_in(self.store.root().join("tmp"))
                .map_err(|e| plain(&e))?;
            let _guard = MountGuard::new(&mounts, dir.path()).map_err(|e| plain(&e))?;
            let root = inroot::Root::open(dir.path()).map_err(|e| plain(&e))?;
            let mut srcs = Vec::new();
            for pattern in sources {
                let found = resolve_in_view(&root, pattern)
                    .map_err(|e| plain(&format!("COPY --from={what} {pattern}: {e}")))?;
                srcs.extend(found.into_iter().map(|path| copy::Source {
                    path,
                    rel: None,
                    unpack: false,
                }));
            }
            copy::copy(rootfs, &srcs, dest, opts, None)
                .map_err(|e| plain(&format!("copy to {dest}: {e}")))
        })();
        let _ = snaps.remove(&view);
        r
    }
}

/// The OCI media type of a base layer: the new image has an OCI manifest
/// (the layer bytes are the same).
fn oci_layer(mut d: berth_image::spec::Descriptor) -> berth_image::spec::Descriptor {
    use berth_image::spec::{
        DOCKER_LAYER_FOREIGN, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, OCI_LAYER, OCI_LAYER_GZIP,
    };
    d.media_type = match d.media_type.as_str() {
        DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN => OCI_LAYER_GZIP.to_string(),
        DOCKER_LAYER_TAR => OCI_LAYER.to_string(),
        _ => d.media_type,
    };
    d
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@")
}

/// Host paths of what `pattern` names inside a mounted view.
fn resolve_in_view(root: &inroot::Root, pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    let comps = inroot::components(pattern);
    let Some((last, parent)) = comps.split_last() else {
        return Ok(vec![inroot::host_path(&root.open_path("/")?)?]);
    };
    if !last.contains(['*', '?', '[']) {
        return Ok(vec![inroot::host_path(&root.open_path(pattern)?)?]);
    }
    let dir = inroot::host_path(&root.open_path(&parent.join("/"))?)?;
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| berth_image::filter::glob(last, n))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no match",
        ));
    }
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}
