//! The image commands of `berth`: images/ls, inspect, tag, rmi, prune,
//! history, import, load, save, pull, push, login, logout and build. Thin:
//! argument parsing and output; the work is in `berth_image` and
//! `berth_engine::build`.

mod format;
mod progress;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_engine::build::{self, BuildRequest};
use berth_image::changes::Change;
use berth_image::registry::{Client, ClientOptions, Credentials};
use berth_image::{ArchiveFormat, ImageStore, ImageSummary, ImportOptions, RemoveEvent};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Where the engine keeps its state (see the shared paths convention).
#[derive(Debug, Clone)]
pub struct Paths {
    /// `--root` (`/var/lib/berth`): `berth.db`, content, snapshots.
    pub root: PathBuf,
    /// The run dir (`/run/berth` or `<root>/run`).
    pub run: PathBuf,
}

impl Paths {
    /// The convention's mapping of a root to its run dir.
    pub fn for_root(root: &Path) -> Paths {
        let run = if root == Path::new("/var/lib/berth") {
            PathBuf::from("/run/berth")
        } else {
            root.join("run")
        };
        Paths {
            root: root.to_path_buf(),
            run,
        }
    }

    fn db(&self) -> PathBuf {
        self.root.join("berth.db")
    }
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// List images.
    Images(ImagesArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Push an image to a registry.
    Push(PushArgs),
    /// Log in to a registry (credentials stored with mode 0600).
    Login(LoginArgs),
    /// Log out of a registry.
    Logout(LogoutArgs),
    /// Create an image from a root filesystem tarball.
    Import(ImportArgs),
    /// Load images from a docker-archive or OCI archive.
    Load(LoadArgs),
    /// Save images to a docker-archive or OCI archive.
    Save(SaveArgs),
    /// Add a name to an image.
    Tag(TagArgs),
    /// Remove images.
    Rmi(RmiArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Build an image from a Containerfile or Dockerfile.
    Build(BuildArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageSub),
}

#[derive(Subcommand, Debug)]
pub enum ImageSub {
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Show details of images as JSON.
    Inspect(InspectArgs),
    /// Remove images.
    #[command(alias = "remove")]
    Rm(RmiArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    Tag(TagArgs),
    History(HistoryArgs),
    Pull(PullArgs),
    Push(PushArgs),
    Load(LoadArgs),
    Save(SaveArgs),
    Import(ImportArgs),
    Build(BuildArgs),
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Show all images (builds keep no intermediate images, so this is the
    /// same list).
    #[arg(short, long)]
    pub all: bool,
    /// Only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter (`dangling=`, `label=`, `before=`, `since=`, `reference=`).
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Go template (`{{.Repository}}`, `{{.Tag}}`, `{{.ID}}`, `{{.Digest}}`,
    /// `{{.CreatedAt}}`, `{{.CreatedSince}}`, `{{.Size}}`) or `json`.
    #[arg(long)]
    pub format: Option<String>,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Do not truncate ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only images of this repository (a `reference=` filter).
    pub repository: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Require HTTPS and verify certificates (plain HTTP is used for
    /// localhost registries regardless).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Credentials file (default `<root>/auth.json`, or `$BERTH_AUTH_FILE`).
    #[arg(long, env = "BERTH_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// `user:password` for this request only.
    #[arg(long)]
    pub creds: Option<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    pub image: String,
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Local image.
    pub image: String,
    /// Destination (default: the image name itself).
    pub destination: Option<String>,
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    pub registry: String,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    #[arg(long, env = "BERTH_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    pub registry: String,
    #[arg(long, env = "BERTH_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Tarball path, or `-` for stdin.
    pub file: String,
    /// Name for the image.
    pub reference: Option<String>,
    /// Dockerfile instruction applied to the config (CMD, ENV, …).
    #[arg(short, long)]
    pub change: Vec<String>,
    /// History comment.
    #[arg(short, long)]
    pub message: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Archive to read (default stdin).
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    pub images: Vec<String>,
    /// File to write (default stdout, which must not be a terminal).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// `docker-archive` (default) or `oci-archive`.
    #[arg(long, default_value = "docker-archive")]
    pub format: String,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove tags even when the image is used by containers.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    pub image: String,
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Context directory.
    #[arg(default_value = ".")]
    pub context: PathBuf,
    /// Name (repeatable).
    #[arg(short, long)]
    pub tag: Vec<String>,
    /// Containerfile (default `Containerfile` or `Dockerfile` in the context).
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long)]
    pub no_cache: bool,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Runs an image command; returns the exit code.
pub fn run(cmd: Commands, paths: &Paths) -> Result<i32> {
    match cmd {
        Commands::Images(a) => images(&a, paths),
        Commands::Pull(a) => pull(&a, paths),
        Commands::Push(a) => push(&a, paths),
        Commands::Login(a) => login(&a, paths),
        Commands::Logout(a) => logout(&a, paths),
        Commands::Import(a) => import(&a, paths),
        Commands::Load(a) => load(&a, paths),
        Commands::Save(a) => save(&a, paths),
        Commands::Tag(a) => tag(&a, paths),
        Commands::Rmi(a) => rmi(&a, paths),
        Commands::History(a) => history(&a, paths),
        Commands::Build(a) => build_cmd(&a, paths),
        Commands::Image(sub) => match sub {
            ImageSub::Ls(a) => images(&a, paths),
            ImageSub::Inspect(a) => inspect(&a, paths),
            ImageSub::Rm(a) => rmi(&a, paths),
            ImageSub::Prune(a) => prune(&a, paths),
            ImageSub::Tag(a) => tag(&a, paths),
            ImageSub::History(a) => history(&a, paths),
            ImageSub::Pull(a) => pull(&a, paths),
            ImageSub::Push(a) => push(&a, paths),
            ImageSub::Load(a) => load(&a, paths),
            ImageSub::Save(a) => save(&a, paths),
            ImageSub::Import(a) => import(&a, paths),
            ImageSub::Build(a) => build_cmd(&a, paths),
        },
    }
}

fn open_store(paths: &Paths) -> Result<ImageStore> {
    berth_engine::fsutil::private_dir(&paths.root)?;
    ImageStore::open(&paths.root, &paths.db())
        .with_context(|| format!("opening the image store in {}", paths.root.display()))
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_string();
    }
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    hex[..hex.len().min(12)].to_string()
}

fn created_secs(created: Option<&str>) -> Option<i64> {
    created.and_then(berth_image::parse_rfc3339)
}

/// One `berth images` row per tag (or one `<none>` row).
fn image_rows(img: &ImageSummary, no_trunc: bool) -> Vec<Value> {
    let now = berth_image::metadata::now();
    let since = created_secs(img.created.as_deref())
        .map(|c| format::age(now - c))
        .unwrap_or_else(|| "N/A".into());
    let digest_of = |repo: &str| {
        img.repo_digests
            .iter()
            .find(|d| d.split_once('@').is_some_and(|(r, _)| r == repo))
            .and_then(|d| d.split_once('@'))
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let row = |repo: String, tag: String, digest: String| {
        json!({
            "Repository": repo, "Tag": tag, "Digest": digest,
            "ID": short_id(&img.id, no_trunc),
            "CreatedAt": img.created.clone().unwrap_or_default(),
            "CreatedSince": since, "Size": format::human_size(img.size),
            "Containers": img.containers, "Labels": img.labels,
        })
    };
    if img.repo_tags.is_empty() {
        return vec![row("<none>".into(), "<none>".into(), "<none>".into())];
    }
    img.repo_tags
        .iter()
        .map(|t| {
            let r = berth_image::Reference::parse(t).ok();
            let repo_full = r.as_ref().map(|r| r.repository()).unwrap_or_default();
            let familiar = berth_image::familiar_name(t);
            let (repo, tag) = match familiar.rsplit_once(':') {
                Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                _ => (familiar.clone(), "<none>".into()),
            };
            row(repo, tag, digest_of(&repo_full))
        })
        .collect()
}

fn row_matches(row: &Value, patterns: &[&str]) -> bool {
    let repo = row["Repository"].as_str().unwrap_or_default();
    let name = format!("{repo}:{}", row["Tag"].as_str().unwrap_or_default());
    patterns
        .iter()
        .any(|p| berth_image::filter::glob(p, &name) || berth_image::filter::glob(p, repo))
}

fn images(a: &ImagesArgs, paths: &Paths) -> Result<i32> {
    let store = open_store(paths)?;
    let mut filters: Vec<String> = a.filter.clone();
    if let Some(r) = &a.repository {
        filters.push(format!("reference={r}"));
    }
    let refs: Vec<&str> = filters.iter().map(String::as_str).collect();
    let list = store.list_filtered(&refs)?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for img in &list {
            if seen.insert(&img.id) {
                writeln!(out, "{}", short_id(&img.id, a.no_trunc))?;
            }
        }
        return Ok(0);
    }
    // Like Docker, a reference filter also narrows an image's rows to the
    // names that match it.
    let patterns: Vec<&str> = filters
        .iter()
        .filter_map(|f| f.strip_prefix("reference="))
        .collect();
    let rows: Vec<Value> = list
        .iter()
        .flat_map(|i| image_rows(i, a.no_trunc))
        .filter(|r| patterns.is_empty() || row_matches(r, &patterns))
        .collect();
    match a.format.as_deref() {
        Some("json") => {
            let docs: Vec<Value> = list
                .iter()
                .map(|i| serde_json::to_value(i).unwrap_or_default())
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&docs)?)?;
        }
        Some(t) if !format::is_table(t) => {
            for r in &rows {
                writeln!(out, "{}", format::render(t, r).map_err(anyhow::Error::msg)?)?;
            }
        }
        _ => {
            let mut header = vec!["REPOSITORY", "TAG"];
            if a.digests {
                header.push("DIGEST");
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"]);
            let mut table = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
            for r in &rows {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                let mut line = vec![s("Repository"), s("Tag")];
                if a.digests {
                    line.push(s("Digest"));
                }
                line.extend([s("ID"), s("CreatedSince"), s("Size")]);
                table.push(line);
            }
            write!(out, "{}", format::table(&table))?;
        }
    }
    Ok(0)
}

fn inspect(a: &InspectArgs, paths: &Paths) -> Result<i32> {
    let store = open_store(paths)?;
    let mut docs = Vec::new();
    let mut code = 0;
    for name in &a.images {
        match store.inspect(name) {
            Ok(i) => docs.push(serde_json::to_value(i)?),
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    match &a.format {
        Some(t) => {
            for d in &docs {
                writeln!(out, "{}", format::render(t, d).map_err(anyhow::Error::msg)?)?;
            }
        }
        None => writeln!(out, "{}", serde_json::to_string_pretty(&docs)?)?,
    }
    Ok(code)
}

fn tag(a: &TagArgs, paths: &Paths) -> Result<i32> {
    let store = open_store(paths)?;
    for t in &a.targets {
        store
            .tag(&a.source, t)
            .with_context(|| format!("tagging {} as {t}", a.source))?;
    }
    Ok(0)
}

fn rmi(a: &RmiArgs, paths: &Paths) -> Result<i32> {
    let store = open_store(paths)?;
    let mut code = 0;
    for name in &a.images {
        match store.remove(name, a.force) {
            Ok(events) => {
                for e in events {
                    match e {
                        RemoveEvent::Untagged(t) => {
                            println!("Untagged: {}", berth_image::familiar_name(&t))
                        }
                        RemoveEvent::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("Error: {name}: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn prune(a: &PruneArgs, paths: &Paths) -> Result<i32> {
    if !a.force {
        eprint!(
            "WARNING! This will remove all {} images.\nAre you sure you want to continue? [y/N] ",
            if a.all {
                "images without at least one container associated to them"
            } else {
                "dangling"
            }
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let store = open_store(paths)?;
    let report = store.prune(a.all)?;
    for t in &report.untagged {
        println!("untagged: {}", berth_image::familiar_name(t));
    }
    for d in &report.deleted {
        println!("deleted: {d}");
    }
    println!(
        "\nTotal reclaimed space: {}",
        format::human_size(report.gc.bytes_freed)
    );
    Ok(0)
}

fn history(a: &HistoryArgs, paths: &Paths) -> Result<i32> {
    let store = open_store(paths)?;
    let items = store.history(&a.image)?;
    let now = berth_image::metadata::now();
    let mut out = std::io::stdout().lock();
    let rows: Vec<Value> = items
        .iter()
        .map(|h| {
            let id = if h.id == "<missing>" {
                h.id.clone()
            } else {
                short_id(&h.id, a.no_trunc)
            };
            let mut by = h.created_by.clone();
            if !a.no_trunc && by.chars().count() > 45 {
                by = by.chars().take(44).collect::<String>() + "…";
            }
            json!({
                "ID": id,
                "CreatedAt": h.created.clone().unwrap_or_default(),
                "CreatedSince": created_secs(h.created.as_deref()).map(|c| format::age(now - c)).unwrap_or_else(|| "N/A".into()),
                "CreatedBy": by, "Size": format::human_size(h.size), "Comment": h.comment,
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(0);
    }
    if let Some(t) = a.format.as_deref().filter(|t| !format::is_table(t)) {
        for r in &rows {
            writeln!(out, "{}", format::render(t, r).map_err(anyhow::Error::msg)?)?;
        }
        return Ok(0);
    }
    let mut table = vec![
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
            .map(String::from)
            .to_vec(),
    ];
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
        table.push(vec![
            s("ID"),
            s("CreatedSince"),
            s("CreatedBy"),
            s("Size"),
            s("Comment"),
        ]);
    }
    write!(out, "{}", format::table(&table))?;
    Ok(0)
}

fn import(a: &ImportArgs, paths: &Paths) -> Result<i32> {
    let store = open_store(paths)?;
    let changes = a
        .change
        .iter()
        .map(|c| Change::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = ImportOptions {
        tag: a.reference.clone(),
        changes,
        message: a.message.clone(),
        created: None,
    };
    let id = if a.file == "-" {
        store.import_rootfs_tar(std::io::stdin().lock(), &opts)
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?;
        store.import_rootfs_tar(std::io::BufReader::new(f), &opts)
    }
    .with_context(|| format!("importing {}", a.file))?;
    println!("{id}");
    Ok(0)
}

fn load(a: &LoadArgs, paths: &Paths) -> Result<i32> {
    let store = open_store(paths)?;
    let loaded = match &a.input {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            store.load(std::io::BufReader::new(f))
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("no archive given: use -i FILE or pipe one to stdin");
            }
            store.load(std::io::stdin().lock())
        }
    }
    .context("loading the archive")?;
    for img in loaded {
        if img.tags.is_empty() {
            println!("Loaded image ID: {}", img.id);
        }
        for t in img.tags {
            if a.quiet {
                println!("{t}");
            } else {
                println!("Loaded image: {}", berth_image::familiar_name(&t));
            }
        }
    }
    Ok(0)
}

fn save(a: &SaveArgs, paths: &Paths) -> Result<i32> {
    if a.images.is_empty() {
        bail!("save needs at least one image");
    }
    let fmt = match a.format.as_str() {
        "docker-archive" | "docker" => ArchiveFormat::DockerArchive,
        "oci-archive" | "oci" => ArchiveFormat::OciArchive,
        other => bail!("unknown archive format {other:?} (docker-archive or oci-archive)"),
    };
    let store = open_store(paths)?;
    let refs: Vec<&str> = a.images.iter().map(String::as_str).collect();
    match &a.output {
        Some(p) => {
            // Write next to the target and rename, so a failure leaves no
            // half archive behind.
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a file in {}", dir.display()))?;
            let w = store.save(&refs, fmt, std::io::BufWriter::new(tmp))?;
            let tmp = w.into_inner().map_err(|e| e.into_error())?;
            tmp.persist(p)
                .with_context(|| format!("writing {}", p.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("refusing to write an archive to a terminal: use -o FILE or redirect stdout");
            }
            let mut w = store.save(
                &refs,
                fmt,
                std::io::BufWriter::new(std::io::stdout().lock()),
            )?;
            w.flush()?;
        }
    }
    Ok(0)
}

fn auth_path(explicit: Option<&PathBuf>, paths: &Paths) -> PathBuf {
    explicit
        .cloned()
        .unwrap_or_else(|| paths.root.join("auth.json"))
}

fn client(r: &RegistryArgs, paths: &Paths) -> Result<Client> {
    let c = Client::new(ClientOptions {
        tls_verify: r.tls_verify,
        credentials_path: Some(auth_path(r.authfile.as_ref(), paths)),
        ..Default::default()
    });
    Ok(c)
}

fn set_creds(c: &Client, r: &RegistryArgs, reference: &str) -> Result<()> {
    if let Some(creds) = &r.creds {
        let (u, p) = creds
            .split_once(':')
            .context("--creds wants user:password")?;
        let reg = berth_image::registry::Reference::parse(reference)?.registry;
        c.set_credentials(
            &reg,
            Credentials {
                username: u.into(),
                password: p.into(),
            },
        );
    }
    Ok(())
}

fn pull(a: &PullArgs, paths: &Paths) -> Result<i32> {
    let store = open_store(paths)?;
    let c = client(&a.registry, paths)?;
    set_creds(&c, &a.registry, &a.image)?;
    let bars = progress::Bars::new(a.quiet);
    if !a.quiet {
        eprintln!("Trying to pull {}...", a.image);
    }
    let got = store
        .pull(&c, &a.image, &bars)
        .with_context(|| format!("pulling {}", a.image))?;
    if !a.quiet {
        eprintln!("Digest: {}", got.digest);
        eprintln!("Status: downloaded image for {}", got.name);
    }
    println!("{}", got.id);
    Ok(0)
}

fn push(a: &PushArgs, paths: &Paths) -> Result<i32> {
    let store = open_store(paths)?;
    let dest = a.destination.clone().unwrap_or_else(|| a.image.clone());
    let c = client(&a.registry, paths)?;
    set_creds(&c, &a.registry, &dest)?;
    let bars = progress::Bars::new(a.quiet);
    let pushed = store
        .push(&c, &a.image, &dest, &bars)
        .with_context(|| format!("pushing {} to {dest}", a.image))?;
    if !a.quiet {
        eprintln!("Writing manifest to {dest}");
    }
    println!("{}", pushed.manifest_digest);
    Ok(0)
}

fn login(a: &LoginArgs, paths: &Paths) -> Result<i32> {
    let username = match &a.username {
        Some(u) => u.clone(),
        None => {
            eprint!("Username: ");
            let mut u = String::new();
            std::io::stdin().read_line(&mut u)?;
            u.trim().to_string()
        }
    };
    let password = if a.password_stdin {
        let mut p = String::new();
        std::io::stdin().read_to_string(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = &a.password {
        p.clone()
    } else {
        rpassword::prompt_password("Password: ")?
    };
    if username.is_empty() || password.is_empty() {
        bail!("login needs a username and a password");
    }
    let c = Client::new(ClientOptions {
        tls_verify: a.tls_verify,
        credentials_path: Some(auth_path(a.authfile.as_ref(), paths)),
        ..Default::default()
    });
    c.login(&a.registry, &Credentials { username, password })?;
    println!("Login Succeeded!");
    Ok(0)
}

fn logout(a: &LogoutArgs, paths: &Paths) -> Result<i32> {
    let c = Client::new(ClientOptions {
        credentials_path: Some(auth_path(a.authfile.as_ref(), paths)),
        ..Default::default()
    });
    if c.logout(&a.registry)? {
        println!("Removed login credentials for {}", a.registry);
        Ok(0)
    } else {
        eprintln!("Not logged into {}", a.registry);
        Ok(1)
    }
}

/// `KEY=VALUE` build args; a bare `KEY` takes the value from the environment.
fn parse_build_args(args: &[String]) -> Result<BTreeMap<String, String>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            Some(_) => bail!("--build-arg {a:?}: empty name"),
            None => Ok((a.clone(), std::env::var(a).unwrap_or_default())),
        })
        .collect()
}

fn build_cmd(a: &BuildArgs, paths: &Paths) -> Result<i32> {
    for t in &a.tag {
        berth_image::Reference::parse(t).with_context(|| format!("-t {t}"))?;
    }
    let store = open_store(paths)?;
    let req = BuildRequest {
        context: a.context.clone(),
        file: a.file.clone(),
        build_args: parse_build_args(&a.build_arg)?,
        target: a.target.clone(),
        no_cache: a.no_cache,
        runtime_root: paths.run.join("runtime"),
    };
    let registry = a.registry.clone();
    let quiet = a.quiet;
    let mut puller = |s: &ImageStore, name: &str| -> Result<String, String> {
        let c = client(&registry, paths).map_err(|e| e.to_string())?;
        if !quiet {
            eprintln!("Trying to pull {name}...");
        }
        // Lines, not bars: nothing may keep drawing from another thread
        // once RUN steps clone the container init (docs/images.md).
        s.pull(&c, name, &progress::Bars::lines(quiet))
            .map(|p| p.id)
            .map_err(|e| format!("pulling: {e}"))
    };
    let mut sink = std::io::sink();
    let mut stdout = std::io::stdout();
    let out: &mut dyn Write = if a.quiet { &mut sink } else { &mut stdout };
    let built = build::build(&store, &req, out, &mut puller)?;
    for t in &a.tag {
        store.tag(&built.id, t)?;
        if !a.quiet {
            println!(
                "Successfully tagged {}",
                berth_image::familiar_name(&berth_image::Reference::parse(t)?.to_string())
            );
        }
    }
    println!("{}", built.id);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_convention() {
        let p = Paths::for_root(Path::new("/var/lib/berth"));
        assert_eq!(p.run, Path::new("/run/berth"));
        let p = Paths::for_root(Path::new("/tmp/x"));
        assert_eq!(p.run, Path::new("/tmp/x/run"));
        assert_eq!(p.db(), Path::new("/tmp/x/berth.db"));
    }

    #[test]
    fn build_args() {
        let m = parse_build_args(&["A=1".into(), "B=".into(), "C=x=y".into()]).unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "");
        assert_eq!(m["C"], "x=y");
        assert!(parse_build_args(&["=1".into()]).is_err());
    }

    #[test]
    fn rows_per_tag_and_none() {
        let img = ImageSummary {
            id: format!("sha256:{}", "a".repeat(64)),
            repo_tags: vec![
                "docker.io/library/busybox:latest".into(),
                "localhost:5000/x/y:1".into(),
            ],
            repo_digests: vec![format!(
                "docker.io/library/busybox@sha256:{}",
                "b".repeat(64)
            )],
            created: None,
            size: 4_260_000,
            containers: 0,
            labels: Default::default(),
        };
        let rows = image_rows(&img, false);
        assert_eq!(rows[0]["Repository"], "busybox");
        assert_eq!(rows[0]["Tag"], "latest");
        assert_eq!(rows[0]["Digest"], format!("sha256:{}", "b".repeat(64)));
        assert_eq!(rows[1]["Repository"], "localhost:5000/x/y");
        assert_eq!(rows[1]["Tag"], "1");
        assert_eq!(rows[1]["Digest"], "<none>");
        assert_eq!(rows[0]["ID"], "a".repeat(12));
        assert_eq!(rows[0]["Size"], "4.26MB");
        let none = ImageSummary {
            repo_tags: vec![],
            ..img
        };
        assert_eq!(image_rows(&none, true)[0]["Tag"], "<none>");
    }
}
