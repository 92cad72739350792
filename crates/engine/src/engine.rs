//! The engine facade: container life cycle (create, start in the
//! foreground or under a monitor, stop, kill, remove, exec), volumes,
//! events, reconciliation and `system check`.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_image::ImageStore;
use berth_net::{AttachOptions, NetworkManager, NetworkMode, PortSpec};

use crate::db::{Db, VolumeRecord};
use crate::error::{Error, Result, io};
use crate::model::{Container, ContainerConfig, ContainerState, PortBinding, Status};
use crate::paths::Paths;
use crate::runtimes::{Backend, Spawned};
use crate::spec::{ResolvedDevice, ResolvedMount, SpecInput};
use crate::{fsutil, procs, time};

/// How the container's stdio is wired when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// The calling CLI stays attached (foreground `run`).
    Foreground,
    /// Under a monitor (detached).
    Detached,
}

/// A started container as seen by the process that started it.
pub struct Started {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub streams: crate::io::Streams,
}

/// `exec` options.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
    pub privileged: bool,
}

/// What `system check` found and repaired.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub repaired: Vec<String>,
    pub errors: Vec<String>,
}

pub struct Engine {
    pub paths: Paths,
    pub db: Db,
    images: Option<ImageStore>,
    net: Option<NetworkManager>,
}

/// What network setup hands to the spec: the netns choice (see
/// [`SpecInput::netns`]), the hosts/resolv.conf/hostname bind mounts, the
/// published ports and the primary IP.
type NetSetup = (Option<String>, Vec<ResolvedMount>, Vec<PortBinding>, String);

/// A held per-container lock (flock(2) on `<run>/locks/<id>`).
pub struct Lock(#[allow(dead_code)] std::fs::File);

fn random_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Replaces a `--userns=auto` request with a block of ids no other
/// container holds (called inside the insert transaction). The ranges come
/// from /etc/subuid and /etc/subgid, or the files named by `BERTH_SUBUID`
/// and `BERTH_SUBGID`.
fn resolve_auto_userns(
    c: &mut Container,
    others: &dyn Fn() -> Result<Vec<ContainerConfig>>,
) -> Result<()> {
    let crate::userns::Userns::Auto { size } = c.config.userns else {
        return Ok(());
    };
    let others = others()?;
    let read = |var: &str, default: &str| {
        let path = std::env::var(var).unwrap_or_else(|_| default.to_string());
        std::fs::read_to_string(&path).map_err(io(format!("--userns=auto: reading {path}")))
    };
    let subuid = read("BERTH_SUBUID", "/etc/subuid")?;
    let subgid = read("BERTH_SUBGID", "/etc/subgid")?;
    let existing: Vec<&crate::idmap::IdMap> =
        others.iter().filter_map(|o| o.userns.map()).collect();
    let map = crate::userns::auto_map(size, &existing, &subuid, &subgid).map_err(Error::Invalid)?;
    c.config.userns = crate::userns::Userns::Private(map);
    Ok(())
}

/// A Docker-like `adjective_name`.
pub fn random_name(id: &str) -> String {
    const ADJ: [&str; 16] = [
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nifty", "proud", "quirky", "sharp", "vivid", "witty",
    ];
    const NOUN: [&str; 16] = [
        "turing", "hopper", "lovelace", "ritchie", "thompson", "torvalds", "knuth", "dijkstra",
        "liskov", "hamilton", "shannon", "curie", "noether", "euler", "gauss", "babbage",
    ];
    let n = u64::from_str_radix(&id[..8.min(id.len())], 16).unwrap_or(0);
    format!(
        "{}_{}_{}",
        ADJ[(n % 16) as usize],
        NOUN[(n / 16 % 16) as usize],
        &id[8..12.min(id.len())]
    )
}

/// Container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as Docker.
pub fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

/// Parses a signal name (`TERM`, `SIGKILL`) or number.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::Invalid(format!("invalid signal {s:?}")))
}

fn dup2(from: RawFd, to: RawFd) {
    // SAFETY: dup2 on fds we own; `to` is one of 0..=2.
    unsafe { libc::dup2(from, to) };
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::Io {
        what: "pipe".into(),
        source: e.into(),
    })
}

fn dev_null() -> Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(io("opening /dev/null"))
}

/// Runs `f` with fds 0–2 temporarily replaced (so a child cloned by `f`
/// inherits them), then restores ours.
fn with_stdio<T>(fds: [RawFd; 3], f: impl FnOnce() -> T) -> T {
    // SAFETY: dup of our own stdio fds.
    let saved: Vec<RawFd> = (0..3)
        .map(|i| unsafe { libc::fcntl(i, libc::F_DUPFD_CLOEXEC, 3) })
        .collect();
    for (i, fd) in fds.iter().enumerate() {
        if *fd != i as RawFd {
            dup2(*fd, i as RawFd);
        }
    }
    let r = f();
    for (i, s) in saved.iter().enumerate() {
        if *s >= 0 {
            dup2(*s, i as RawFd);
            // SAFETY: closing the duplicate we made above.
            unsafe { libc::close(*s) };
        }
    }
    r
}

fn net_config() -> berth_net::Config {
    let mut c = berth_net::Config::default();
    if let Ok(p) = std::env::var("BERTH_BRIDGE_PREFIX") {
        c.bridge_prefix = p;
    }
    if let Ok(t) = std::env::var("BERTH_NFT_TABLE") {
        c.nft_table = t;
    }
    if let Ok(s) = std::env::var("BERTH_DEFAULT_SUBNET")
        && let Ok(s) = s.parse()
    {
        c.default_subnet = Some(s);
    }
    // Each network's DNS server (names and aliases of its containers, other
    // names forwarded to the host's resolvers) runs as `berth __net-dns`.
    if let Ok(exe) = berth_runtime::selfexe::original_exe()
        && exe.file_name().is_some_and(|n| n == "berth")
    {
        c.dns = Some(berth_net::Launcher {
            argv: vec![exe.into_os_string(), "__net-dns".into()],
            upstreams: "host".into(),
        });
    }
    c
}

impl Engine {
    /// Opens (creating if needed) the instance rooted at `root`.
    pub fn open(root: &Path) -> Result<Engine> {
        let paths = Paths::new(root);
        fsutil::private_dir(&paths.root)?;
        fsutil::private_dir(&paths.run)?;
        for d in [
            paths.root.join("containers"),
            paths.volumes(),
            paths.lock_dir(),
            paths.run.join("containers"),
        ] {
            std::fs::create_dir_all(&d).map_err(io(format!("creating {}", d.display())))?;
        }
        let db = Db::open(&paths.db())?;
        Ok(Engine {
            paths,
            db,
            images: None,
            net: None,
        })
    }

    /// The image store. The snapshot driver picked by the first open
    /// (which probes overlay support with a test mount) is remembered in
    /// `<root>/snapshot-driver`, so later commands skip the probe.
    pub fn images(&mut self) -> Result<&ImageStore> {
        if self.images.is_none() {
            let marker = self.paths.root.join("snapshot-driver");
            let driver = match std::fs::read_to_string(&marker)
                .ok()
                .as_deref()
                .map(str::trim)
            {
                Some("overlay") => Some(berth_image::snapshot::Driver::Overlay),
                Some("vfs") => Some(berth_image::snapshot::Driver::Vfs),
                _ => None,
            };
            let probed = driver.is_none();
            let opts = berth_image::StoreOptions {
                driver,
                ..Default::default()
            };
            let store = ImageStore::open_with(&self.paths.root, &self.paths.db(), opts)?;
            if probed {
                let name = match store.snapshotter().driver() {
                    berth_image::snapshot::Driver::Overlay => "overlay",
                    berth_image::snapshot::Driver::Vfs => "vfs",
                };
                let _ = fsutil::write_atomic(&marker, name.as_bytes());
            }
            self.images = Some(store);
        }
        Ok(self.images.as_ref().expect("just opened"))
    }

    pub fn net(&mut self) -> Result<&mut NetworkManager> {
        if self.net.is_none() {
            self.net = Some(NetworkManager::open(
                &self.paths.db(),
                &self.paths.net_run(),
                net_config(),
            )?);
        }
        Ok(self.net.as_mut().expect("just opened"))
    }

    pub fn lock(&self, id: &str) -> Result<Lock> {
        let p = self.paths.lock_dir().join(id);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io(format!("opening lock {}", p.display())))?;
        // SAFETY: flock on a valid fd.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::Io {
                what: format!("locking {}", p.display()),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Lock(f))
    }

    /// Records an event for `berth events` (best effort: a failure to log
    /// an event never fails the operation).
    pub fn event(&mut self, kind: &str, action: &str, actor: &str, attrs: &[(&str, &str)]) {
        let a: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let _ = self.db.add_event(kind, action, actor, &a);
    }

    pub fn get(&self, name_or_id: &str) -> Result<Container> {
        let id = self.db.resolve(name_or_id)?;
        self.db
            .get(&id)?
            .ok_or_else(|| Error::NoSuchContainer(name_or_id.into()))
    }

    fn backend(&self, c: &Container) -> Backend {
        Backend::new(
            c.config.runtime.as_deref(),
            &self.paths.runtime_root(),
            &self.paths.run.join("ext-runtime"),
        )
    }

    // ---- create ----

    /// `create`: records the container and prepares its writable snapshot.
    pub fn create(&mut self, name: Option<&str>, config: ContainerConfig) -> Result<Container> {
        let image_id = self
            .images()?
            .resolve(&config.image)
            .map_err(|_| Error::NoSuchImage(config.image.clone()))?;
        let mut config = config;
        let (_, img) = self.images()?.read_image(&image_id)?;
        apply_image_defaults(&mut config, &img.config.unwrap_or_default());
        // Recorded as Docker does, so inspect shows the limit in force.
        config.memory_swap = crate::spec::swap_limit(
            config.memory,
            config.memory_swap,
            crate::spec::host_swap_accounting(),
        );
        let id = random_id();
        let name = match name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n);
                if !valid_name(n) {
                    return Err(Error::Invalid(format!(
                        "invalid container name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                n.to_string()
            }
            None => random_name(&id),
        };
        if let Some(r) = &config.runtime
            && r != "berth"
            && !Path::new(r).exists()
        {
            return Err(Error::Invalid(format!("runtime {r:?} not found")));
        }
        let c = Container {
            id: id.clone(),
            name: name.clone(),
            image: config.image.clone(),
            image_id: image_id.clone(),
            created: time::now_rfc3339(),
            config,
            state: ContainerState::default(),
        };
        let mut c = c;
        self.db.insert_container_with(&mut c, resolve_auto_userns)?;
        let dir = self.paths.container_dir(&id);
        let prepared = std::fs::create_dir_all(dir.join("rootfs"))
            .map_err(io(format!("creating {}", dir.display())))
            .and_then(|_| Ok(self.images()?.prepare_container_rootfs(&image_id, &id)?));
        if let Err(e) = prepared {
            let _ = self.images().map(|i| i.release_container(&id));
            let _ = std::fs::remove_dir_all(&dir);
            let _ = self.db.delete_container(&id);
            return Err(e);
        }
        self.event(
            "container",
            "create",
            &id,
            &[("name", &name), ("image", &c.image)],
        );
        Ok(c)
    }

    // ---- start ----

    /// Mounts the container's rootfs (idempotent).
    fn mount_rootfs(&mut self, c: &Container, volatile: bool) -> Result<PathBuf> {
        let (id, image_id) = (c.id.as_str(), c.image_id.as_str());
        let target = self.paths.rootfs(id);
        std::fs::create_dir_all(&target).map_err(io(format!("creating {}", target.display())))?;
        if !procs::is_mount_point(&target) {
            let mut mounts = self.images()?.prepare_container_rootfs(image_id, id)?;
            if volatile {
                // An --rm container's upper layer is thrown away: mount it
                // "volatile" (overlayfs docs, "Volatile mount") so that its
                // unmount does not sync the upper filesystem.
                for m in mounts.iter_mut().filter(|m| m.kind == "overlay") {
                    m.options.push("volatile".into());
                }
            }
            match c.config.userns.map() {
                Some(map) => {
                    let ns = map.namespace().map_err(|e| {
                        Error::Other(format!(
                            "container {id}: a user namespace for the idmapped rootfs: {e}"
                        ))
                    })?;
                    berth_image::snapshot::mount_all_idmapped(
                        &mounts,
                        &target,
                        std::os::fd::AsFd::as_fd(&ns),
                        map.root_ids(),
                    )?
                }
                None => berth_image::snapshot::mount_all(&mounts, &target)?,
            }
        }
        Ok(target)
    }

    fn unmount_rootfs(&self, id: &str) -> Result<()> {
        let target = self.paths.rootfs(id);
        while procs::is_mount_point(&target) {
            berth_image::snapshot::unmount(&target)?;
        }
        Ok(())
    }

    /// Creates a named volume if needed; returns its data dir and whether it is new.
    fn ensure_volume(&mut self, name: &str, anonymous: bool) -> Result<PathBuf> {
        let rec = VolumeRecord {
            name: name.to_string(),
            created: time::now_rfc3339(),
            labels: BTreeMap::new(),
            anonymous,
        };
        let data = self.paths.volume_data(name);
        std::fs::create_dir_all(&data).map_err(io(format!("creating {}", data.display())))?;
        if self.db.insert_volume(&rec)? {
            self.event("volume", "create", name, &[]);
        }
        Ok(data)
    }

    /// Resolves `-v`/`--mount` entries to host paths, creating and (on
    /// first use, like Docker) populating named volumes from the image.
    fn resolve_mounts(&mut self, c: &Container, rootfs: &Path) -> Result<Vec<ResolvedMount>> {
        let mut out = vec![];
        for (i, m) in c.config.mounts.iter().enumerate() {
            let source = match m.kind.as_str() {
                "bind" => {
                    if !Path::new(&m.source).exists() {
                        return Err(Error::Invalid(format!(
                            "bind source path does not exist: {}",
                            m.source
                        )));
                    }
                    m.source.clone()
                }
                "volume" => {
                    let (name, anon) = if m.source.is_empty() {
                        (format!("{}-{i}", &c.id[..32]), true)
                    } else {
                        (m.source.clone(), false)
                    };
                    let data = self.ensure_volume(&name, anon)?;
                    let empty = std::fs::read_dir(&data)
                        .map(|mut d| d.next().is_none())
                        .unwrap_or(false);
                    let marker = data.parent().expect("volume dir").join(".populated");
                    if empty && !marker.exists() {
                        let src = fsutil::resolve_in_root(rootfs, &m.target, true)?;
                        if let Some(map) = c.config.userns.map() {
                            // The volume lives in the container's host ids
                            // (like Docker with userns-remap): its root gets
                            // the owner of the image's directory as the
                            // idmapped rootfs shows it, or the container's root.
                            use std::os::unix::fs::MetadataExt;
                            let owner = std::fs::metadata(&src).map(|m| (m.uid(), m.gid())).ok();
                            let root = (map.host_uid(0), map.host_gid(0));
                            let (u, g) = owner.map_or(root, |(u, g)| (Some(u), Some(g)));
                            std::os::unix::fs::chown(&data, u, g)
                                .map_err(io(format!("chown {}", data.display())))?;
                        }
                        if src.is_dir() {
                            for e in std::fs::read_dir(&src)
                                .map_err(io(format!("reading {}", src.display())))?
                                .flatten()
                            {
                                fsutil::copy_tree(&e.path(), &data.join(e.file_name()))?;
                            }
                        }
                        let _ = std::fs::write(&marker, "");
                    }
                    data.to_string_lossy().into_owned()
                }
                _ => "tmpfs".into(),
            };
            out.push(ResolvedMount {
                kind: if m.kind == "tmpfs" {
                    "tmpfs".into()
                } else {
                    "bind".into()
                },
                source,
                target: m.target.clone(),
                readonly: m.readonly,
                options: m.options.clone(),
            });
        }
        Ok(out)
    }

    fn resolve_devices(c: &ContainerConfig) -> Result<Vec<ResolvedDevice>> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        c.devices
            .iter()
            .map(|d| {
                let m = std::fs::metadata(&d.host).map_err(io(format!("device {}", d.host)))?;
                let kind = if m.file_type().is_char_device() {
                    "c"
                } else if m.file_type().is_block_device() {
                    "b"
                } else {
                    return Err(Error::Invalid(format!("{} is not a device", d.host)));
                };
                let rdev = m.rdev();
                Ok(ResolvedDevice {
                    path: d.container.clone(),
                    kind: kind.into(),
                    major: libc::major(rdev) as i64,
                    minor: libc::minor(rdev) as i64,
                    mode: m.mode() & 0o777,
                    perms: d.perms.clone(),
                })
            })
            .collect()
    }

    /// Sets up networking; returns the spec's netns choice and the hosts
    /// files to bind into the container.
    fn setup_network(&mut self, c: &Container, hostname: &str) -> Result<NetSetup> {
        let values: Vec<&str> = if c.config.network.is_empty() {
            vec![]
        } else {
            c.config.network.split(',').collect()
        };
        let mode = NetworkMode::parse(&values, "bridge")?;
        let dir = self.paths.container_dir(&c.id);
        let mut ports = vec![];
        let mut ip = String::new();
        let (netns, hosts, resolv) = match &mode {
            NetworkMode::None => (
                None,
                format!(
                    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
                ),
                String::new(),
            ),
            NetworkMode::Host => (
                Some(String::new()),
                std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
                std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
            ),
            NetworkMode::Container(other) => {
                let o = self.get(other)?;
                if !o.state.status.is_active() {
                    return Err(Error::Conflict {
                        id: o.name,
                        message: "cannot join the network of a container that is not running"
                            .into(),
                    });
                }
                let odir = self.paths.container_dir(&o.id);
                (
                    Some(format!("/proc/{}/ns/net", o.state.pid)),
                    std::fs::read_to_string(odir.join("hosts")).unwrap_or_default(),
                    std::fs::read_to_string(odir.join("resolv.conf")).unwrap_or_default(),
                )
            }
            NetworkMode::Networks(nets) => {
                let mut specs: Vec<PortSpec> = vec![];
                for p in &c.config.publish {
                    specs.push(p.parse()?);
                }
                if c.config.publish_all {
                    let exposed = self.exposed_ports(c)?;
                    specs.extend(PortSpec::publish_all(&exposed));
                }
                let static_ip: Option<std::net::Ipv4Addr> = c
                    .config
                    .ip
                    .as_deref()
                    .map(|ip| {
                        ip.parse()
                            .map_err(|_| Error::Invalid(format!("--ip {ip}: not an IPv4 address")))
                    })
                    .transpose()?;
                let id = c.id.clone();
                let name = c.name.clone();
                let nm = self.net()?;
                let sandbox = nm.create_sandbox(&id)?;
                let r = (|| -> Result<String> {
                    for (i, n) in nets.iter().enumerate() {
                        let opts = AttachOptions {
                            name: Some(name.clone()),
                            ports: if i == 0 { specs.clone() } else { vec![] },
                            ip: if i == 0 { static_ip } else { None },
                            aliases: c.config.network_aliases.clone(),
                        };
                        let ep = nm.attach(&id, &sandbox, n, &opts)?;
                        if i == 0 {
                            ip = ep.ip.to_string();
                            ports = ep
                                .ports
                                .iter()
                                .map(|m| PortBinding {
                                    container_port: m.container_port,
                                    proto: m.proto.to_string(),
                                    host_ip: m.host_ip.to_string(),
                                    host_port: m.host_port,
                                })
                                .collect();
                        }
                    }
                    Ok(sandbox.to_string_lossy().into_owned())
                })();
                let path = match r {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = nm.release_all(&id);
                        return Err(e);
                    }
                };
                let files = nm.container_files(&id, hostname)?;
                (Some(path), files.hosts, files.resolv_conf)
            }
        };
        let mut mounts = vec![];
        for (file, content, target) in [
            ("hosts", hosts, "/etc/hosts"),
            ("resolv.conf", resolv, "/etc/resolv.conf"),
            ("hostname", format!("{hostname}\n"), "/etc/hostname"),
        ] {
            let p = dir.join(file);
            fsutil::write_atomic(&p, content.as_bytes())?;
            mounts.push(ResolvedMount {
                kind: "bind".into(),
                source: p.to_string_lossy().into_owned(),
                target: target.into(),
                readonly: false,
                options: vec![],
            });
        }
        Ok((netns, mounts, ports, ip))
    }

    fn exposed_ports(&mut self, c: &Container) -> Result<Vec<(u16, berth_net::Proto)>> {
        let (_, cfg) = self.images()?.read_image(&c.image_id)?;
        let mut out = vec![];
        for k in cfg
            .config
            .and_then(|c| c.exposed_ports)
            .unwrap_or_default()
            .keys()
        {
            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            if let (Ok(p), Ok(proto)) = (p.parse(), proto.parse()) {
                out.push((p, proto));
            }
        }
        Ok(out)
    }

    /// Writes config.json for the container and returns the command name.
    fn write_bundle(&mut self, c: &Container) -> Result<(String, Vec<PortBinding>, String)> {
        let rootfs = self.mount_rootfs(c, c.config.auto_remove)?;
        let (_, img) = self.images()?.read_image(&c.image_id)?;
        let img_cfg = img.config.unwrap_or_default();
        let user = c
            .config
            .user
            .clone()
            .or(img_cfg.user.clone())
            .unwrap_or_default();
        let passwd =
            std::fs::read_to_string(fsutil::resolve_in_root(&rootfs, "/etc/passwd", true)?)
                .unwrap_or_default();
        let group = std::fs::read_to_string(fsutil::resolve_in_root(&rootfs, "/etc/group", true)?)
            .unwrap_or_default();
        let (uid, gid, extra) = crate::spec::resolve_user(&user, &passwd, &group)?;
        let hostname = c
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| c.id[..12].to_string());
        let mut mounts = self.resolve_mounts(c, &rootfs)?;
        let devices = Self::resolve_devices(&c.config)?;
        let seccomp = match &c.config.seccomp_profile {
            Some(text) => Some(crate::spec::seccomp_from_profile(text)?),
            None => Some(crate::spec::default_seccomp(&c.config)?),
        };
        let init = if c.config.init {
            let path = crate::init::install(&self.paths.init_dir())?;
            Some(path.to_string_lossy().into_owned())
        } else {
            None
        };
        let (netns, files, ports, ip) = self.setup_network(c, &hostname)?;
        if let Some(map) = c.config.userns.map() {
            self.open_to_mapped_root(c, map, &rootfs, &files, &mounts)?;
        }
        // Hosts files first so a user -v over /etc/hosts wins.
        let mut all = files;
        all.append(&mut mounts);
        let input = SpecInput {
            id: &c.id,
            config: &c.config,
            image: &img_cfg,
            rootfs: rootfs.to_string_lossy().into_owned(),
            uid,
            gid,
            additional_gids: extra,
            mounts: all,
            devices,
            netns,
            seccomp,
            host_caps: crate::spec::host_bounding_set(),
            init,
        };
        let spec = crate::spec::build(&input)?;
        let cmd = crate::spec::process_args(&c.config, &img_cfg)
            .first()
            .cloned()
            .unwrap_or_default();
        let text = serde_json::to_vec_pretty(&spec)
            .map_err(|e| Error::Other(format!("serializing config.json: {e}")))?;
        fsutil::write_atomic(&self.paths.container_dir(&c.id).join("config.json"), &text)?;
        Ok((cmd, ports, ip))
    }

    /// Gives a user-namespaced container's root, an unprivileged host uid,
    /// what it needs from berth's directories: search rights on the way to
    /// what it looks up by path while the runtime sets it up (the rootfs,
    /// bind sources, the runtime's state), and ownership of its hosts,
    /// resolv.conf and hostname files, writable as without --userns.
    fn open_to_mapped_root(
        &self,
        c: &Container,
        map: &crate::idmap::IdMap,
        rootfs: &Path,
        files: &[ResolvedMount],
        mounts: &[ResolvedMount],
    ) -> Result<()> {
        let bases = [self.paths.root.as_path(), self.paths.run.as_path()];
        let state = self.paths.runtime_root().join(&c.id);
        let binds = files.iter().chain(mounts).filter(|m| m.kind == "bind");
        // Bind sources outside berth's directories are the user's business.
        for p in [rootfs, state.as_path()]
            .into_iter()
            .chain(binds.map(|m| Path::new(&m.source)))
            .filter(|p| bases.iter().any(|b| p.starts_with(b)))
        {
            fsutil::ensure_reachable(&bases, p, map.root_ids().0)?;
        }
        for f in files {
            std::os::unix::fs::chown(&f.source, map.host_uid(0), map.host_gid(0))
                .map_err(io(format!("chown {}", f.source)))?;
        }
        Ok(())
    }

    /// Whether the container has network endpoints to release.
    fn uses_networks(c: &Container) -> bool {
        let values: Vec<&str> = if c.config.network.is_empty() {
            vec![]
        } else {
            c.config.network.split(',').collect()
        };
        matches!(
            NetworkMode::parse(&values, "bridge"),
            Ok(NetworkMode::Networks(_))
        )
    }

    /// Undoes what a start set up (runtime state, rootfs mount, network).
    fn teardown(&mut self, c: &Container) -> Vec<String> {
        let mut errors = vec![];
        if let Err(e) = self.backend(c).delete(&c.id) {
            errors.push(format!("deleting the runtime state: {e}"));
        }
        if let Err(e) = self.unmount_rootfs(&c.id) {
            errors.push(format!("unmounting the rootfs: {e}"));
        }
        let id = c.id.clone();
        if Self::uses_networks(c) {
            match self.net() {
                Ok(nm) => {
                    if let Err(e) = nm.release_all(&id) {
                        errors.push(format!("releasing the network: {e}"));
                    }
                }
                Err(e) => errors.push(format!("opening the network state: {e}")),
            }
        }
        let _ = std::fs::remove_dir_all(self.paths.container_run(&c.id));
        errors
    }

    /// Mounts, configures and starts the container with this process as the
    /// parent of its init. In `Detached` mode the init's stdio are pipes
    /// (or a pty) for a monitor; in `Foreground` mode stdin is ours when
    /// interactive and stdout/stderr are pipes the caller copies.
    pub fn spawn(&mut self, id: &str, mode: IoMode) -> Result<Started> {
        let c = self.get(id)?;
        let mine = c.state.monitor_pid == std::process::id() as i32;
        if c.state.status.is_active()
            && !mine
            && procs::alive(c.state.monitor_pid, c.state.monitor_start)
        {
            return Err(Error::Conflict {
                id: c.name,
                message: "is already running".into(),
            });
        }
        let backend = self.backend(&c);
        let _ = backend.delete(&c.id);
        std::fs::create_dir_all(self.paths.container_run(&c.id))
            .map_err(io("creating the run dir"))?;
        let _ = std::fs::remove_file(self.paths.exit_file(&c.id));
        let r = self.spawn_in(&c, &backend, mode);
        match r {
            Ok(s) => Ok(s),
            Err(e) => {
                self.teardown(&c);
                let msg = e.to_string();
                let _ = self.db.update_state(&c.id, |s| {
                    s.status = if s.started_at == crate::model::ZERO_TIME {
                        Status::Created
                    } else {
                        Status::Exited
                    };
                    s.error = msg;
                    s.pid = 0;
                    s.monitor_pid = 0;
                    s.exit_code = e.exit_code() as i32;
                    Ok(())
                });
                Err(e)
            }
        }
    }

    fn spawn_in(&mut self, c: &Container, backend: &Backend, mode: IoMode) -> Result<Started> {
        let (cmd, ports, ip) = self.write_bundle(c)?;
        let null = dev_null()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let mut streams = crate::io::Streams::default();
        let mut stdin_read: Option<OwnedFd> = None;
        if c.config.interactive && !c.config.tty && mode == IoMode::Detached {
            let (r, w) = pipe()?;
            streams.stdin = Some(w);
            stdin_read = Some(r);
        }
        let stdin_fd: RawFd = match (&stdin_read, c.config.interactive && !c.config.tty) {
            (Some(r), _) => r.as_raw_fd(),
            (None, true) => 0,
            (None, false) => null.as_raw_fd(),
        };
        let bundle = self.paths.container_dir(&c.id);
        let spawned: Result<Spawned> =
            with_stdio([stdin_fd, out_w.as_raw_fd(), err_w.as_raw_fd()], || {
                backend.create(&c.id, &bundle, &cmd)
            });
        drop(stdin_read);
        drop((out_w, err_w));
        let spawned = spawned?;
        streams.stdout = Some(out_r);
        streams.stderr = Some(err_r);
        streams.pty = spawned.console;
        let me = std::process::id() as i32;
        let my_start = procs::stat(me).map(|s| s.0).unwrap_or(0);
        let pid = spawned.pid;
        self.db.update_state(&c.id, |s| {
            s.status = Status::Running;
            s.pid = pid;
            s.monitor_pid = me;
            s.monitor_start = my_start;
            s.exit_code = 0;
            s.oom_killed = false;
            s.error.clear();
            s.started_at = time::now_rfc3339();
            s.finished_at = crate::model::ZERO_TIME.into();
            s.stopped_by_user = false;
            s.ports = ports;
            s.ip = ip;
            if let Some(h) = &c.config.healthcheck
                && h.test.first().is_some_and(|t| t != "NONE")
            {
                s.health = Some(crate::model::HealthState {
                    status: "starting".into(),
                    ..Default::default()
                });
            }
            Ok(())
        })?;
        backend.start(&c.id)?;
        self.event("container", "start", &c.id, &[("name", &c.name)]);
        Ok(Started {
            pid,
            pidfd: spawned.pidfd,
            streams,
        })
    }

    /// Records the exit and cleans up (runtime state, mounts, network).
    pub fn finish(&mut self, id: &str, code: i32) -> Result<Container> {
        let _l = self.lock(id)?;
        let c = self.get(id)?;
        // Before teardown: deleting the runtime state removes the cgroup.
        let oom_killed = oom_kills(&c.id) > 0;
        let errors = self.teardown(&c);
        let st = self.db.update_state(id, |s| {
            if s.status.is_active() || s.status == Status::Removing {
                s.status = Status::Exited;
                s.exit_code = code;
                s.finished_at = time::now_rfc3339();
                s.oom_killed = oom_killed;
            }
            s.pid = 0;
            s.monitor_pid = 0;
            s.monitor_start = 0;
            if !errors.is_empty() {
                s.error = errors.join("; ");
            }
            if let Some(h) = &mut s.health {
                h.status = "unhealthy".into();
            }
            Ok(())
        })?;
        if oom_killed {
            self.event("container", "oom", id, &[("name", &c.name)]);
        }
        let code_s = code.to_string();
        self.event(
            "container",
            "die",
            id,
            &[("name", &c.name), ("exitCode", &code_s)],
        );
        Ok(Container { state: st, ..c })
    }

    /// Foreground `run`/`start -a`: starts the container with this process
    /// as its parent, copies its I/O, forwards signals, records the exit.
    /// Returns the exit code.
    pub fn run_foreground(&mut self, id: &str) -> Result<i32> {
        let c = self.get(id)?;
        let sfd = block_signals()?;
        let started = self.spawn(id, IoMode::Foreground)?;
        let log = crate::logs::LogWriter::open(
            &self.paths.log_file(&c.id),
            c.config.log_max_size.unwrap_or(0),
            c.config.log_max_file.unwrap_or(1),
        )
        .ok();
        let raw = if c.config.tty {
            Some(RawMode::enter())
        } else {
            None
        };
        if let (Some(p), Some((r, cols))) = (&started.streams.pty, berth_runtime::tty::get_size(0))
        {
            let _ = berth_runtime::tty::set_size(p.as_raw_fd(), r, cols);
        }
        let lp = crate::io::Loop {
            pid: started.pid,
            pidfd: started.pidfd,
            streams: started.streams,
            log,
            listener: None,
            local: true,
            forward_stdin: c.config.interactive && c.config.tty,
            signals: Some(sfd),
            tick_ms: None,
        };
        let code = lp.run(|| {});
        drop(raw);
        let c = self.finish(id, code)?;
        if c.config.auto_remove {
            self.remove(id, true, true)?;
        }
        Ok(code)
    }

    /// Detached start: a monitor process (double-forked, then exec'ing
    /// `berth-monitor`) becomes the parent of the container's init. Returns
    /// once the container runs, or with the error that stopped it.
    pub fn start_detached(&mut self, id: &str, berth_exe: &Path, monitor_exe: &Path) -> Result<()> {
        let (r, w) = pipe()?;
        // SAFETY: the CLI is single-threaded; the child only execs or _exits.
        match unsafe { nix::unistd::fork() }.map_err(|e| Error::Io {
            what: "fork".into(),
            source: e.into(),
        })? {
            nix::unistd::ForkResult::Child => {
                drop(r);
                let _ = nix::unistd::setsid();
                // SAFETY: as above; the grandchild becomes the monitor.
                match unsafe { nix::unistd::fork() } {
                    Ok(nix::unistd::ForkResult::Child) => {}
                    _ => berth_runtime::sys::exit_now(0),
                }
                let err = monitor_main(&self.paths.root, id, berth_exe, monitor_exe, Some(w));
                eprintln!("{err}");
                berth_runtime::sys::exit_now(125)
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let _ = nix::sys::wait::waitpid(child, None);
                let mut msg = String::new();
                let mut f = std::fs::File::from(r);
                let _ = std::io::Read::read_to_string(&mut f, &mut msg);
                match msg.strip_prefix("ok") {
                    Some(_) => Ok(()),
                    None if msg.is_empty() => Err(Error::Other(format!(
                        "container {id}: the monitor died before starting it"
                    ))),
                    None => {
                        let code: u8 = msg[..3].parse().unwrap_or(125);
                        let text = msg[4..].to_string();
                        if code == 125 {
                            Err(Error::Other(text))
                        } else {
                            Err(Error::Exec {
                                id: id.into(),
                                command: String::new(),
                                message: text,
                                code,
                            })
                        }
                    }
                }
            }
        }
    }

    /// After the monitor saw the init exit with `code`: record it, clean up,
    /// and either restart (then exec the monitor again; does not return on
    /// success) or remove an `--rm` container.
    pub fn monitor_exited(
        &mut self,
        id: &str,
        code: i32,
        berth_exe: &Path,
        monitor_exe: &Path,
    ) -> Result<()> {
        let c = self.finish(id, code)?;
        let _ = std::fs::remove_file(self.paths.exit_file(id));
        let restart = crate::model::should_restart(
            c.config.restart,
            code,
            c.state.restart_count,
            c.state.stopped_by_user,
        );
        if restart {
            // Still this process's job: keep it recorded as the monitor so
            // that a concurrent `ps` does not take the container for orphaned.
            let me = std::process::id() as i32;
            let my_start = procs::stat(me).map(|s| s.0).unwrap_or(0);
            self.db.update_state(id, |s| {
                s.status = Status::Restarting;
                s.monitor_pid = me;
                s.monitor_start = my_start;
                Ok(())
            })?;
            std::thread::sleep(Duration::from_millis(crate::model::restart_delay_ms(
                c.state.restart_count,
            )));
            let again = self.get(id)?;
            if again.state.stopped_by_user || again.state.status != Status::Restarting {
                self.db.update_state(id, |s| {
                    if s.status == Status::Restarting {
                        s.status = Status::Exited;
                    }
                    Ok(())
                })?;
                return Ok(());
            }
            self.db.update_state(id, |s| {
                s.restart_count += 1;
                Ok(())
            })?;
            self.event("container", "restart", id, &[("name", &c.name)]);
            let e = monitor_main(&self.paths.root, id, berth_exe, monitor_exe, None);
            return Err(e);
        }
        if c.config.auto_remove {
            self.remove(id, true, true)?;
        }
        Ok(())
    }

    // ---- stop / kill / remove ----

    /// Brings an active container whose monitor died back in line: if the
    /// init is gone, records the exit (from the exit file when the monitor
    /// wrote one) and cleans up. Returns the refreshed container.
    pub fn refresh(&mut self, c: Container) -> Result<Container> {
        if !c.state.status.is_active() || procs::alive(c.state.monitor_pid, c.state.monitor_start) {
            return Ok(c);
        }
        let init_alive =
            c.state.pid > 0 && procs::alive(c.state.pid, 0) && self.backend(&c).exists(&c.id);
        if init_alive {
            return Ok(c);
        }
        let code = std::fs::read_to_string(self.paths.exit_file(&c.id))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(255);
        self.finish(&c.id, code)
    }

    pub fn list(&mut self) -> Result<Vec<Container>> {
        let all = self.db.list()?;
        all.into_iter().map(|c| self.refresh(c)).collect()
    }

    fn wait_inactive(&mut self, id: &str, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = match self.db.get(id)? {
                Some(c) => c,
                None => return Ok(true),
            };
            let c = self.refresh(c)?;
            if !c.state.status.is_active() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `stop`: the stop signal, then SIGKILL after `timeout` seconds.
    pub fn stop(&mut self, name_or_id: &str, timeout: Option<u32>) -> Result<Container> {
        let c = self.get(name_or_id)?;
        let c = self.refresh(c)?;
        self.db.update_state(&c.id, |s| {
            s.stopped_by_user = true;
            Ok(())
        })?;
        if !c.state.status.is_active() {
            return Ok(c);
        }
        if c.state.status == Status::Restarting {
            self.wait_inactive(&c.id, Duration::from_secs(15))?;
            return self.get(&c.id);
        }
        let sig = parse_signal(c.config.stop_signal.as_deref().unwrap_or("SIGTERM"))?;
        let b = self.backend(&c);
        if c.state.status == Status::Paused {
            let _ = self.unpause(&c.id);
        }
        let _ = b.kill(&c.id, sig, false);
        let t = timeout.or(c.config.stop_timeout).unwrap_or(10);
        if !self.wait_inactive(&c.id, Duration::from_secs(t as u64))? {
            let _ = b.kill(&c.id, libc::SIGKILL, true);
            let _ = b.kill(&c.id, libc::SIGKILL, false);
            if !self.wait_inactive(&c.id, Duration::from_secs(10))? {
                return Err(Error::Conflict {
                    id: c.name,
                    message: "did not stop after SIGKILL".into(),
                });
            }
        }
        self.event("container", "stop", &c.id, &[("name", &c.name)]);
        self.get(&c.id)
    }

    pub fn kill(&mut self, name_or_id: &str, signal: &str) -> Result<Container> {
        let c = self.get(name_or_id)?;
        let c = self.refresh(c)?;
        if !matches!(c.state.status, Status::Running | Status::Paused) {
            return Err(Error::Conflict {
                id: c.name,
                message: "is not running".into(),
            });
        }
        let sig = parse_signal(signal)?;
        if sig == libc::SIGKILL || sig == libc::SIGTERM {
            self.db.update_state(&c.id, |s| {
                s.stopped_by_user = true;
                Ok(())
            })?;
        }
        self.backend(&c).kill(&c.id, sig, false)?;
        self.event(
            "container",
            "kill",
            &c.id,
            &[("name", &c.name), ("signal", signal)],
        );
        Ok(c)
    }

    /// `rm`: `force` kills a running container first; `volumes` also removes
    /// its anonymous volumes.
    pub fn remove(&mut self, name_or_id: &str, force: bool, volumes: bool) -> Result<()> {
        let c = self.get(name_or_id)?;
        let c = self.refresh(c)?;
        if c.state.status.is_active() {
            if !force {
                return Err(Error::Conflict {
                    id: c.name,
                    message: "cannot remove a running container: stop it first or use --force"
                        .into(),
                });
            }
            self.db.update_state(&c.id, |s| {
                s.stopped_by_user = true;
                Ok(())
            })?;
            let b = self.backend(&c);
            if c.state.status == Status::Paused {
                let _ = self.unpause(&c.id);
            }
            let _ = b.kill(&c.id, libc::SIGKILL, true);
            let _ = b.kill(&c.id, libc::SIGKILL, false);
            if !self.wait_inactive(&c.id, Duration::from_secs(15))? {
                return Err(Error::Conflict {
                    id: c.name,
                    message: "could not be stopped for removal".into(),
                });
            }
        }
        let _l = self.lock(&c.id)?;
        if self.db.get(&c.id)?.is_none() {
            return Ok(());
        }
        self.db.update_state(&c.id, |s| {
            s.status = Status::Removing;
            Ok(())
        })?;
        let mut errors = self.teardown(&c);
        let id = c.id.clone();
        if let Err(e) = self.images().and_then(|i| Ok(i.release_container(&id)?)) {
            errors.push(format!("releasing the snapshot: {e}"));
        }
        let dir = self.paths.container_dir(&c.id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errors.push(format!("removing {}: {e}", dir.display()));
        }
        if !errors.is_empty() {
            let msg = errors.join("; ");
            let _ = self.db.update_state(&c.id, |s| {
                s.status = Status::Dead;
                s.error = msg.clone();
                Ok(())
            });
            return Err(Error::Conflict {
                id: c.name,
                message: format!("removal failed: {msg}"),
            });
        }
        self.db.delete_container(&c.id)?;
        let _ = std::fs::remove_file(self.paths.lock_dir().join(&c.id));
        if volumes {
            for (i, m) in c.config.mounts.iter().enumerate() {
                if m.kind == "volume" && m.source.is_empty() {
                    let _ = self.remove_volume(&format!("{}-{i}", &c.id[..32]), true);
                }
            }
        }
        self.event("container", "destroy", &c.id, &[("name", &c.name)]);
        Ok(())
    }

    /// Waits until the container is not running; returns its exit code.
    pub fn wait(&mut self, name_or_id: &str) -> Result<i32> {
        let c = self.get(name_or_id)?;
        let id = c.id.clone();
        let mut last = c.state.exit_code;
        loop {
            let Some(c) = self.db.get(&id)? else {
                return Ok(last);
            };
            let c = self.refresh(c)?;
            last = c.state.exit_code;
            if matches!(
                c.state.status,
                Status::Exited | Status::Dead | Status::Created
            ) {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn rename(&mut self, name_or_id: &str, new_name: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        if !valid_name(new_name) {
            return Err(Error::Invalid(format!(
                "invalid container name {new_name:?}"
            )));
        }
        self.db.rename(&c.id, new_name)?;
        self.event(
            "container",
            "rename",
            &c.id,
            &[("name", new_name), ("oldName", &c.name)],
        );
        Ok(())
    }

    /// `network connect`: attaches a running container to one more network
    /// (a new veth in its sandbox, an address, DNS name and aliases), then
    /// rewrites its /etc/hosts in place (the file is bind-mounted, so the
    /// container sees the change).
    pub fn connect(
        &mut self,
        network: &str,
        name_or_id: &str,
        ip: Option<std::net::Ipv4Addr>,
        aliases: Vec<String>,
    ) -> Result<()> {
        let c = self.get(name_or_id)?;
        if !c.state.status.is_active() {
            return Err(Error::Conflict {
                id: c.name,
                message: "is not running: start it before connecting it to a network".into(),
            });
        }
        let nm = self.net()?;
        let sandbox = nm.sandbox_path(&c.id);
        if !sandbox.exists() {
            return Err(Error::Conflict {
                id: c.name,
                message: "has no network sandbox of its own (--network none, host or container:)"
                    .into(),
            });
        }
        let opts = berth_net::AttachOptions {
            name: Some(c.name.clone()),
            ip,
            aliases,
            ports: vec![],
        };
        nm.attach(&c.id, &sandbox, network, &opts)?;
        self.refresh_hosts(&c)?;
        self.event("network", "connect", network, &[("container", &c.id)]);
        Ok(())
    }

    /// `network disconnect`: removes the container's endpoint on `network`.
    pub fn disconnect(&mut self, network: &str, name_or_id: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        self.net()?.detach(&c.id, network)?;
        if c.state.status.is_active() {
            self.refresh_hosts(&c)?;
        }
        self.event("network", "disconnect", network, &[("container", &c.id)]);
        Ok(())
    }

    /// Rewrites the container's hosts file in place (not by rename: the
    /// container holds a bind mount of this very inode).
    fn refresh_hosts(&mut self, c: &Container) -> Result<()> {
        let hostname = c
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| c.id[..12].to_string());
        let files = self.net()?.container_files(&c.id, &hostname)?;
        let p = self.paths.container_dir(&c.id).join("hosts");
        std::fs::write(&p, files.hosts.as_bytes()).map_err(|e| {
            Error::Other(format!(
                "container {}: rewriting {}: {e}",
                c.name,
                p.display()
            ))
        })
    }

    /// `pause`: freezes every process of the container (cgroup freezer).
    pub fn pause(&mut self, name_or_id: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        if c.state.status != Status::Running {
            return Err(Error::Conflict {
                id: c.name,
                message: format!("is {}, not running", c.state.status.as_str()),
            });
        }
        self.backend(&c).freeze(&c.id, true)?;
        self.db.update_state(&c.id, |s| {
            s.status = Status::Paused;
            Ok(())
        })?;
        self.event("container", "pause", &c.id, &[("name", &c.name)]);
        Ok(())
    }

    pub fn unpause(&mut self, name_or_id: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        if c.state.status != Status::Paused {
            return Err(Error::Conflict {
                id: c.name,
                message: "is not paused".into(),
            });
        }
        self.backend(&c).freeze(&c.id, false)?;
        self.db.update_state(&c.id, |s| {
            if s.status == Status::Paused {
                s.status = Status::Running;
            }
            Ok(())
        })?;
        self.event("container", "unpause", &c.id, &[("name", &c.name)]);
        Ok(())
    }

    // ---- exec ----

    /// Runs a process in a running container; returns its exit code (0
    /// right away with `detach`).
    pub fn exec(&mut self, name_or_id: &str, req: &ExecRequest) -> Result<i32> {
        let c = self.get(name_or_id)?;
        let c = self.refresh(c)?;
        if c.state.status != Status::Running {
            return Err(Error::Conflict {
                id: c.name,
                message: format!("is {}, not running", c.state.status.as_str()),
            });
        }
        if let Backend::External { binary, root } = self.backend(&c) {
            return exec_external(&binary, &root, &c, req);
        }
        let rt = berth_runtime::Runtime::new(self.paths.runtime_root());
        let st = rt.state(&c.id)?;
        let _ = st;
        let (_, state, _) = rt.load(&c.id)?;
        let root = PathBuf::from(format!("/proc/{}/root", c.state.pid));
        let user = match &req.user {
            Some(u) => {
                let passwd =
                    std::fs::read_to_string(fsutil::resolve_in_root(&root, "/etc/passwd", true)?)
                        .unwrap_or_default();
                let group =
                    std::fs::read_to_string(fsutil::resolve_in_root(&root, "/etc/group", true)?)
                        .unwrap_or_default();
                let (uid, gid, _) = crate::spec::resolve_user(u, &passwd, &group)?;
                Some(format!("{uid}:{gid}"))
            }
            None => None,
        };
        let mut env = req.env.clone();
        if req.tty {
            env.push("TERM=xterm".into());
        }
        let overrides = berth_runtime::exec::ProcessOverrides {
            args: req.cmd.clone(),
            env,
            cwd: req.workdir.clone().map(PathBuf::from),
            user,
            caps: if req.privileged {
                crate::spec::ALL_CAPS
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            } else {
                vec![]
            },
            no_new_privs: false,
            tty: req.tty,
        };
        let process = berth_runtime::exec::process_from_overrides(&state.config, &overrides)?;
        let null = dev_null()?;
        let sfd = if req.detach {
            None
        } else {
            Some(block_signals()?)
        };
        let stdin_fd = if req.interactive && !req.tty && !req.detach {
            0
        } else {
            null.as_raw_fd()
        };
        let (out_fd, err_fd) = if req.detach {
            (null.as_raw_fd(), null.as_raw_fd())
        } else {
            (1, 2)
        };
        let cmd = req.cmd.first().cloned().unwrap_or_default();
        let executed = with_stdio([stdin_fd, out_fd, err_fd], || {
            rt.exec(&c.id, &process, &Default::default())
        })
        .map_err(|e| crate::error::classify_exec_failure(&c.id, &cmd, e))?;
        self.event(
            "container",
            "exec_start",
            &c.id,
            &[("name", &c.name), ("execID", &cmd)],
        );
        if req.detach {
            return Ok(0);
        }
        let raw = if req.tty {
            Some(RawMode::enter())
        } else {
            None
        };
        if let (Some(p), Some((r, cols))) = (&executed.console, berth_runtime::tty::get_size(0)) {
            let _ = berth_runtime::tty::set_size(p.as_raw_fd(), r, cols);
        }
        let lp = crate::io::Loop {
            pid: executed.pid,
            pidfd: executed.pidfd,
            streams: crate::io::Streams {
                pty: executed.console,
                ..Default::default()
            },
            log: None,
            listener: None,
            local: true,
            forward_stdin: req.interactive && req.tty,
            signals: sfd,
            tick_ms: None,
        };
        let code = lp.run(|| {});
        drop(raw);
        Ok(code)
    }

    // ---- volumes ----

    pub fn create_volume(
        &mut self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<VolumeRecord> {
        let name = match name {
            Some(n) => {
                if !valid_name(n) {
                    return Err(Error::Invalid(format!("invalid volume name {n:?}")));
                }
                n.to_string()
            }
            None => random_id(),
        };
        let rec = VolumeRecord {
            name: name.clone(),
            created: time::now_rfc3339(),
            labels,
            anonymous: false,
        };
        let data = self.paths.volume_data(&name);
        std::fs::create_dir_all(&data).map_err(io(format!("creating {}", data.display())))?;
        if self.db.insert_volume(&rec)? {
            self.event("volume", "create", &name, &[]);
        }
        self.db.get_volume(&name)?.ok_or(Error::NoSuchVolume(name))
    }

    /// Containers (names) that use volume `name`.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .db
            .list()?
            .into_iter()
            .filter(|c| {
                c.config.mounts.iter().enumerate().any(|(i, m)| {
                    m.kind == "volume"
                        && (m.source == name
                            || (m.source.is_empty() && format!("{}-{i}", &c.id[..32]) == name))
                })
            })
            .map(|c| c.name)
            .collect())
    }

    pub fn remove_volume(&mut self, name: &str, force: bool) -> Result<()> {
        if self.db.get_volume(name)?.is_none() {
            return Err(Error::NoSuchVolume(name.into()));
        }
        let users = self.volume_users(name)?;
        if !users.is_empty() && !force {
            return Err(Error::Conflict {
                id: name.into(),
                message: format!("volume is in use by {}", users.join(", ")),
            });
        }
        let dir = self.paths.volumes().join(name);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(Error::Io {
                what: format!("removing {}", dir.display()),
                source: e,
            });
        }
        self.db.delete_volume(name)?;
        self.event("volume", "destroy", name, &[]);
        Ok(())
    }

    /// Removes volumes no container uses; returns their names.
    pub fn prune_volumes(&mut self) -> Result<Vec<String>> {
        let mut out = vec![];
        for v in self.db.list_volumes()? {
            if self.volume_users(&v.name)?.is_empty() {
                self.remove_volume(&v.name, false)?;
                out.push(v.name);
            }
        }
        Ok(out)
    }

    /// Removes every stopped container; returns their ids.
    pub fn prune_containers(&mut self) -> Result<Vec<String>> {
        let mut out = vec![];
        for c in self.list()? {
            if matches!(
                c.state.status,
                Status::Exited | Status::Created | Status::Dead
            ) {
                self.remove(&c.id, false, false)?;
                out.push(c.id);
            }
        }
        Ok(out)
    }

    // ---- system check ----

    /// Finds and repairs what a crash left: containers whose monitor died
    /// (their init is killed and the exit recorded), mounts, runtime state,
    /// directories and snapshots of containers that no longer exist,
    /// network endpoints and sandboxes of dead containers.
    pub fn check(&mut self) -> Result<CheckReport> {
        let mut rep = CheckReport::default();
        for c in self.db.list()? {
            let monitor_alive = procs::alive(c.state.monitor_pid, c.state.monitor_start);
            match c.state.status {
                s if s.is_active() && !monitor_alive => {
                    let b = self.backend(&c);
                    let _ = b.kill(&c.id, libc::SIGKILL, true);
                    let _ = b.kill(&c.id, libc::SIGKILL, false);
                    let code = std::fs::read_to_string(self.paths.exit_file(&c.id))
                        .ok()
                        .and_then(|t| t.trim().parse().ok())
                        .unwrap_or(137);
                    match self.finish(&c.id, code) {
                        Ok(_) => rep.repaired.push(format!(
                            "container {}: monitor gone; recorded exit {code} and cleaned up",
                            c.name
                        )),
                        Err(e) => rep.errors.push(format!("container {}: {e}", c.name)),
                    }
                    if c.config.auto_remove {
                        match self.remove(&c.id, true, true) {
                            Ok(()) => rep
                                .repaired
                                .push(format!("container {}: removed (--rm)", c.name)),
                            Err(e) => rep.errors.push(format!("container {}: {e}", c.name)),
                        }
                    }
                }
                Status::Removing | Status::Dead => match self.remove(&c.id, true, true) {
                    Ok(()) => rep.repaired.push(format!(
                        "container {}: finished an interrupted removal",
                        c.name
                    )),
                    Err(e) => rep.errors.push(format!("container {}: {e}", c.name)),
                },
                Status::Exited | Status::Created => {
                    let _l = self.lock(&c.id)?;
                    let again = self.db.get(&c.id)?;
                    if again.is_some_and(|a| !a.state.status.is_active()) {
                        let mounted = procs::is_mount_point(&self.paths.rootfs(&c.id));
                        let has_rt = self.backend(&c).exists(&c.id);
                        if mounted || has_rt {
                            let errs = self.teardown(&c);
                            rep.repaired.push(format!(
                                "container {}: removed a leftover mount/runtime state",
                                c.name
                            ));
                            rep.errors.extend(errs);
                        }
                    }
                }
                _ => {}
            }
        }
        let live: Vec<String> = self.db.list()?.into_iter().map(|c| c.id).collect();
        // Container directories, mounts and snapshots of containers that are gone.
        if let Ok(rd) = std::fs::read_dir(self.paths.root.join("containers")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if live.contains(&id) {
                    continue;
                }
                let _ = self.unmount_rootfs(&id);
                let _ = self.images().map(|i| i.release_container(&id));
                let _ = std::fs::remove_dir_all(e.path());
                rep.repaired
                    .push(format!("removed the leftovers of deleted container {id}"));
            }
        }
        let rt = berth_runtime::Runtime::new(self.paths.runtime_root());
        if let Ok(list) = rt.list() {
            for (st, _) in list {
                if !live.contains(&st.id) {
                    let _ = rt.delete(&st.id, true);
                    rep.repaired.push(format!(
                        "removed runtime state of deleted container {}",
                        st.id
                    ));
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.paths.run.join("containers")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !live.contains(&id) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let active: Vec<String> = self
            .db
            .list()?
            .into_iter()
            .filter(|c| c.state.status.is_active())
            .map(|c| c.id)
            .collect();
        let refs: Vec<&str> = active.iter().map(String::as_str).collect();
        match self.net() {
            Ok(nm) => {
                let r = nm.reconcile(&refs);
                for (c, n) in r.endpoints {
                    rep.repaired
                        .push(format!("released endpoint of {c} on {n}"));
                }
                for s in r.sandboxes {
                    rep.repaired.push(format!("removed sandbox {s}"));
                }
                for l in r.orphan_links {
                    rep.repaired.push(format!("removed link {l}"));
                }
                rep.errors.extend(r.errors.iter().map(|e| e.to_string()));
            }
            Err(e) => rep.errors.push(e.to_string()),
        }
        match self.images().and_then(|i| Ok(i.recover()?)) {
            Ok(r) => {
                if r.orphan_snapshot_dirs > 0 {
                    rep.repaired.push(format!(
                        "removed {} orphaned snapshot directories",
                        r.orphan_snapshot_dirs
                    ));
                }
            }
            Err(e) => rep.errors.push(e.to_string()),
        }
        Ok(rep)
    }
}

/// Runs in the monitor process (a detached grandchild or a restarting
/// monitor): starts the container and execs `berth-monitor`. Returns only on error.
pub fn monitor_main(
    root: &Path,
    id: &str,
    berth_exe: &Path,
    monitor_exe: &Path,
    sync: Option<OwnedFd>,
) -> Error {
    let report = |sync: &Option<OwnedFd>, msg: &str| {
        if let Some(s) = sync {
            let _ = nix::unistd::write(s, msg.as_bytes());
        }
    };
    let mut engine = match Engine::open(root) {
        Ok(e) => e,
        Err(e) => {
            report(&sync, &format!("125 {e}"));
            return e;
        }
    };
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a process attribute.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let started = match engine.spawn(id, IoMode::Detached) {
        Ok(s) => s,
        Err(e) => {
            report(&sync, &format!("{:03} {e}", e.exit_code()));
            return e;
        }
    };
    let c = match engine.get(id) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let fd = |o: &Option<OwnedFd>| o.as_ref().map_or(-1, |f| f.as_raw_fd());
    let keep = |o: &Option<OwnedFd>| {
        if let Some(f) = o {
            // SAFETY: clearing FD_CLOEXEC on an fd we own so it survives exec.
            unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFD, 0) };
        }
    };
    let s = &started.streams;
    for o in [&s.stdout, &s.stderr, &s.pty, &s.stdin] {
        keep(o);
    }
    let health_ms = c
        .config
        .healthcheck
        .as_ref()
        .filter(|h| h.test.first().is_some_and(|t| t != "NONE"))
        .map_or(0, |h| h.interval_ms.max(100));
    let args: Vec<String> = vec![
        berth_exe.to_string_lossy().into_owned(),
        root.to_string_lossy().into_owned(),
        id.to_string(),
        started.pid.to_string(),
        fd(&s.stdout).to_string(),
        fd(&s.stderr).to_string(),
        fd(&s.pty).to_string(),
        fd(&s.stdin).to_string(),
        engine.paths.log_file(id).to_string_lossy().into_owned(),
        c.config.log_max_size.unwrap_or(0).to_string(),
        c.config.log_max_file.unwrap_or(1).to_string(),
        engine
            .paths
            .attach_socket(id)
            .to_string_lossy()
            .into_owned(),
        engine.paths.exit_file(id).to_string_lossy().into_owned(),
        health_ms.to_string(),
    ];
    // The monitor's own stdio: /dev/null (the CLI that started us may be gone).
    if let Ok(null) = dev_null() {
        for i in 0..3 {
            dup2(null.as_raw_fd(), i);
        }
    }
    report(&sync, "ok");
    drop(sync);
    drop(engine);
    let err = exec(monitor_exe, &args);
    Error::Other(format!("exec {}: {err}", monitor_exe.display()))
}

/// OOM kills in the container's cgroup during this run (0 without a cgroup
/// or a memory controller: nothing to report).
fn oom_kills(id: &str) -> u64 {
    crate::stats::container_cgroup(id)
        .and_then(|m| m.oom_kill_count().ok())
        .unwrap_or(0)
}

fn exec(path: &Path, args: &[String]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(path).args(args).exec()
}

/// Blocks the signals a foreground container receives from us and returns
/// a signalfd to read them (the runtime unblocks them in the init).
pub fn block_signals() -> Result<nix::sys::signalfd::SignalFd> {
    use nix::sys::signal::{SigSet, Signal};
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        mask.add(s);
    }
    mask.thread_block().map_err(|e| Error::Io {
        what: "blocking signals".into(),
        source: e.into(),
    })?;
    nix::sys::signalfd::SignalFd::new(&mask).map_err(|e| Error::Io {
        what: "signalfd".into(),
        source: e.into(),
    })
}

/// The terminal in raw mode while a `-t` container is attached.
pub use berth_runtime::tty::RawMode;

impl Engine {
    /// The container's filesystem for `cp`: `/proc/PID/root` of a running
    /// container (volumes included), else its rootfs mounted for the copy
    /// (the bool says whether the caller must unmount it again).
    pub fn rootfs_for_copy(&mut self, c: &Container) -> Result<(PathBuf, bool)> {
        if c.state.status.is_active() && c.state.pid > 0 {
            return Ok((PathBuf::from(format!("/proc/{}/root", c.state.pid)), false));
        }
        let _l = self.lock(&c.id)?;
        let mounted = procs::is_mount_point(&self.paths.rootfs(&c.id));
        let p = self.mount_rootfs(c, false)?;
        Ok((p, !mounted))
    }

    pub fn release_rootfs_for_copy(&mut self, c: &Container, mounted_by_us: bool) {
        if mounted_by_us {
            let _l = self.lock(&c.id);
            let _ = self.unmount_rootfs(&c.id);
        }
    }

    /// Copies `src` from the container to `dst` on the host.
    pub fn copy_from(&mut self, name_or_id: &str, src: &str, dst: &Path) -> Result<()> {
        let c = self.get(name_or_id)?;
        let (root, ours) = self.rootfs_for_copy(&c)?;
        let r = (|| {
            let from = fsutil::resolve_in_root(&root, src, !src.ends_with("/."))?;
            if std::fs::symlink_metadata(&from).is_err() {
                return Err(Error::Invalid(format!(
                    "could not find {src} in container {}",
                    c.name
                )));
            }
            let target = if dst.is_dir() {
                dst.join(
                    Path::new(src.trim_end_matches("/."))
                        .file_name()
                        .unwrap_or_default(),
                )
            } else {
                dst.to_path_buf()
            };
            match c.config.userns.map() {
                // The host sees the container's files with host ids; the
                // copy gets the owners the container sees (as docker cp).
                Some(map) => fsutil::copy_tree_owned(&from, &target, &|u, g| {
                    let overflow = 65534;
                    (
                        Some(map.container_uid(u).unwrap_or(overflow)),
                        Some(map.container_gid(g).unwrap_or(overflow)),
                    )
                }),
                None => fsutil::copy_tree(&from, &target),
            }
        })();
        self.release_rootfs_for_copy(&c, ours);
        r
    }

    /// Copies `src` on the host into the container at `dst`.
    pub fn copy_to(&mut self, name_or_id: &str, src: &Path, dst: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        let (root, ours) = self.rootfs_for_copy(&c)?;
        let r = (|| {
            let to = fsutil::resolve_in_root(&root, dst, true)?;
            let target = if to.is_dir() {
                let name = src
                    .file_name()
                    .ok_or_else(|| Error::Invalid(format!("{} has no file name", src.display())))?;
                fsutil::resolve_in_root(
                    &root,
                    &format!("{}/{}", dst.trim_end_matches('/'), name.to_string_lossy()),
                    false,
                )?
            } else {
                to
            };
            if std::fs::symlink_metadata(src).is_err() {
                return Err(Error::Invalid(format!("{} does not exist", src.display())));
            }
            match c.config.userns.map() {
                // Host root has no id in the idmapped rootfs: write as the
                // container's root, owners translated into the container.
                Some(map) => berth_image::snapshot::with_fs_ids(map.root_ids(), || {
                    fsutil::copy_tree_owned(src, &target, &|u, g| {
                        (map.host_uid(u), map.host_gid(g))
                    })
                })
                .map_err(io(format!("copying into container {}", c.name)))?,
                None => fsutil::copy_tree(src, &target),
            }
        })();
        self.release_rootfs_for_copy(&c, ours);
        r
    }
}

/// Docker's image defaults recorded at create time: the image's
/// StopSignal and Healthcheck when no flag set them, and an anonymous
/// volume for each image `Volumes` path no mount covers.
pub fn apply_image_defaults(
    config: &mut ContainerConfig,
    img: &berth_image::spec::ContainerConfig,
) {
    if config.stop_signal.is_none() {
        config.stop_signal = img.stop_signal.clone().filter(|s| !s.is_empty());
    }
    if config.healthcheck.is_none()
        && let Some(h) = img.extra.get("Healthcheck")
    {
        let test: Vec<String> = h
            .get("Test")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default();
        let ms = |k: &str, default: u64| {
            h.get(k)
                .and_then(serde_json::Value::as_u64)
                .filter(|n| *n > 0)
                .map_or(default, |ns| ns / 1_000_000)
        };
        if !test.is_empty() {
            config.healthcheck = Some(crate::model::Healthcheck {
                test,
                interval_ms: ms("Interval", 30_000),
                timeout_ms: ms("Timeout", 30_000),
                retries: h
                    .get("Retries")
                    .and_then(serde_json::Value::as_u64)
                    .filter(|n| *n > 0)
                    .unwrap_or(3) as u32,
                start_period_ms: ms("StartPeriod", 0),
            });
        }
    }
    for path in img
        .volumes
        .as_ref()
        .map(|v| v.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !config
            .mounts
            .iter()
            .any(|m| m.target.trim_end_matches('/') == path.trim_end_matches('/'))
        {
            config.mounts.push(crate::model::MountSpec {
                kind: "volume".into(),
                source: String::new(),
                target: path,
                readonly: false,
                options: vec![],
            });
        }
    }
}

/// `exec` through an external runc-compatible runtime's `exec` command
/// (our stdio are passed through; runc proxies a terminal itself).
fn exec_external(binary: &Path, root: &Path, c: &Container, req: &ExecRequest) -> Result<i32> {
    let mut cmd = std::process::Command::new(binary);
    cmd.arg("--root").arg(root).arg("exec");
    if req.tty {
        cmd.arg("--tty");
    }
    if req.detach {
        cmd.arg("--detach");
    }
    for e in &req.env {
        cmd.arg("--env").arg(e);
    }
    if let Some(w) = &req.workdir {
        cmd.arg("--cwd").arg(w);
    }
    if let Some(u) = &req.user {
        let root_dir = PathBuf::from(format!("/proc/{}/root", c.state.pid));
        let passwd =
            std::fs::read_to_string(fsutil::resolve_in_root(&root_dir, "/etc/passwd", true)?)
                .unwrap_or_default();
        let group =
            std::fs::read_to_string(fsutil::resolve_in_root(&root_dir, "/etc/group", true)?)
                .unwrap_or_default();
        let (uid, gid, _) = crate::spec::resolve_user(u, &passwd, &group)?;
        cmd.arg("--user").arg(format!("{uid}:{gid}"));
    }
    if req.privileged {
        for cap in crate::spec::ALL_CAPS {
            cmd.arg("--cap").arg(cap);
        }
    }
    cmd.arg(&c.id).args(&req.cmd);
    if !req.interactive {
        cmd.stdin(std::process::Stdio::null());
    }
    let status = cmd
        .status()
        .map_err(io(format!("running {}", binary.display())))?;
    Ok(status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_defaults_fill_gaps_only() {
        let mut img = berth_image::spec::ContainerConfig {
            stop_signal: Some("SIGQUIT".into()),
            volumes: Some(
                [
                    ("/data".to_string(), serde_json::json!({})),
                    ("/logs".to_string(), serde_json::json!({})),
                ]
                .into(),
            ),
            ..Default::default()
        };
        img.extra.insert(
            "Healthcheck".into(),
            serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000u64, "Retries": 5}),
        );
        let mut c = ContainerConfig {
            mounts: vec![crate::model::parse_volume_flag("mine:/data").unwrap()],
            ..Default::default()
        };
        apply_image_defaults(&mut c, &img);
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        let h = c.healthcheck.unwrap();
        assert_eq!((h.interval_ms, h.retries, h.timeout_ms), (2000, 5, 30_000));
        assert_eq!(c.mounts.len(), 2);
        assert_eq!(
            (c.mounts[1].target.as_str(), c.mounts[1].source.as_str()),
            ("/logs", "")
        );
        let mut c = ContainerConfig {
            stop_signal: Some("INT".into()),
            ..Default::default()
        };
        apply_image_defaults(&mut c, &img);
        assert_eq!(c.stop_signal.as_deref(), Some("INT"));
    }

    #[test]
    fn names_and_signals() {
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-x") && !valid_name("") && !valid_name("a/b"));
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("NOPE").is_err());
        let n = random_name(&random_id());
        assert!(valid_name(&n), "{n}");
    }
}
