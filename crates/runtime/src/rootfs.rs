//! The container's root filesystem, built inside its new mount namespace:
//! propagation, the rootfs bind, every entry of `mounts`, /dev, pivot_root,
//! then masked and read-only paths. Runs in the container's init before
//! execve.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::error::{Error, NixContext, Result};
use crate::mounts::{self, Options};
use crate::{mountinfo, paths};

/// What the rootfs setup needs to know besides the spec.
pub struct Context<'a> {
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub spec: &'a Spec,
    /// The container has a user namespace of its own: device nodes are
    /// bind-mounted from the host instead of created.
    pub userns: bool,
    /// The container has a cgroup namespace of its own.
    pub cgroupns: bool,
    /// Idmapped clones of bind sources, by index in `mounts`, prepared by
    /// the parent.
    pub idmapped: std::collections::HashMap<usize, OwnedFd>,
}

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn open_dir(p: &Path) -> Result<OwnedFd> {
    let f = std::fs::File::open(p).map_err(|e| Error::Sys {
        what: format!("opening {}", p.display()),
        source: e,
    })?;
    Ok(OwnedFd::from(f))
}

/// Sets up everything up to (not including) pivot_root; returns an fd of the rootfs.
pub fn prepare(ctx: &Context<'_>) -> Result<OwnedFd> {
    let linux = ctx.spec.linux().as_ref();
    let prop = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .map(|p| {
            mounts::propagation_flags(p).ok_or_else(|| {
                Error::Other(format!("linux.rootfsPropagation: unknown value {p:?}"))
            })
        })
        .transpose()?;
    // Mounts made in the container must not propagate to the host: start
    // from a slave (or the configured) copy of the host's tree.
    mounts::set_propagation("/", prop.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC))?;
    make_parent_private(ctx.rootfs)?;
    nix::mount::mount(
        Some(ctx.rootfs),
        ctx.rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind-mounting the rootfs {}", ctx.rootfs.display()))?;
    let root = open_dir(ctx.rootfs)?;
    let mut dev_is_bound = false;
    for (index, m) in ctx
        .spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let opts = mounts::parse_options(m.options().as_deref().unwrap_or_default());
        if paths::relative(m.destination()) == Path::new("dev") && opts.bind {
            dev_is_bound = true;
        }
        mount_entry(ctx, root.as_fd(), index, m, &opts)?;
    }
    if !dev_is_bound {
        create_devices(ctx, root.as_fd())?;
        dev_symlinks(root.as_fd())?;
    }
    Ok(root)
}

/// pivot_root(2) fails when the new root's parent mount is shared; make it
/// private (only in our namespace).
fn make_parent_private(rootfs: &Path) -> Result<()> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .ctx(|| "reading /proc/self/mountinfo".into())?;
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let best = mountinfo::parse(&text)
        .into_iter()
        .filter(|m| parent.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.len());
    if let Some(m) = best {
        mounts::set_propagation(&m.mount_point, MsFlags::MS_PRIVATE)?;
    }
    Ok(())
}

/// The procfs files a mount may cover: what lxcfs provides (runc's list).
/// Anything else inside procfs is refused, so that no mount, however its
/// destination resolves, can replace what the kernel puts there.
pub const PROCFS_OVERMOUNTS: [&str; 10] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

/// Whether a mount configured at `dest` may cover a file of procfs.
pub fn may_cover_procfs(dest: &Path) -> bool {
    let dest = Path::new("/").join(paths::relative(dest));
    PROCFS_OVERMOUNTS.iter().any(|p| Path::new(p) == dest)
}

/// Refuses a mount whose resolved target is on procfs (a destination
/// through a symlink to /proc, swapped in by the image or by another
/// container sharing a volume: CVE-2019-19921), unless it is one of
/// [`PROCFS_OVERMOUNTS`].
fn check_target(target: BorrowedFd<'_>, dest: &Path) -> Result<()> {
    if is_procfs(target) && !may_cover_procfs(dest) {
        return Err(Error::Other(format!(
            "mount {}: the destination resolves into procfs; only {} may be mounted over procfs files",
            dest.display(),
            PROCFS_OVERMOUNTS.join(", ")
        )));
    }
    Ok(())
}

/// procfs and sysfs go on an ordinary directory of the rootfs, reached
/// without symlinks (as runc and crun require): an image cannot move the
/// container's /proc somewhere it controls.
fn check_kernel_fs_target(
    root: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    dest: &Path,
    fstype: &str,
) -> Result<()> {
    let direct = paths::open_in_root_nofollow(root, dest)
        .and_then(|fd| paths::same_file(fd.as_fd(), target));
    match direct {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(Error::Other(format!(
            "mount {}: {fstype} must be mounted on an ordinary directory, and the path goes through a symlink",
            dest.display()
        ))),
    }
}

fn mount_entry(
    ctx: &Context<'_>,
    root: BorrowedFd<'_>,
    index: usize,
    m: &Mount,
    opts: &Options,
) -> Result<()> {
    let dest = m.destination();
    let fstype = m.typ().as_deref().unwrap_or("none");
    if opts.bind {
        let source = m.source().as_ref().ok_or_else(|| {
            Error::Other(format!(
                "mount {}: bind mount without source",
                dest.display()
            ))
        })?;
        let source = mounts::bind_source(ctx.bundle, source);
        let meta = std::fs::metadata(&source).map_err(|e| Error::Sys {
            what: format!("bind source {} for {}", source.display(), dest.display()),
            source: e,
        })?;
        let target = if meta.is_dir() {
            paths::mkdir_all_in_root(root, dest, 0o755)?
        } else {
            paths::ensure_file_in_root(root, dest)?
        };
        check_target(target.as_fd(), dest)?;
        if opts.idmap {
            let tree = ctx.idmapped.get(&index).ok_or_else(|| {
                Error::Unsupported(format!(
                    "mount {}: the idmap option needs a new user namespace (linux.namespaces and id mappings)",
                    dest.display()
                ))
            })?;
            return mounts::attach(tree.as_fd(), target.as_fd(), &dest.display().to_string());
        }
        return mounts::bind(mounts::Bind {
            source: &source,
            target: &target,
            dest,
            opts,
            userns: None,
        });
    }
    if fstype == "cgroup" || fstype == "cgroup2" {
        return mount_cgroup(ctx, root, dest, opts);
    }
    let target = paths::mkdir_all_in_root(root, dest, 0o755)?;
    check_target(target.as_fd(), dest)?;
    if fstype == "proc" || fstype == "sysfs" {
        check_kernel_fs_target(root, target.as_fd(), dest, fstype)?;
    }
    let source = m
        .source()
        .as_ref()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| fstype.to_string());
    let copy = if opts.tmpcopyup {
        Some(snapshot_dir(&target)?)
    } else {
        None
    };
    mounts::mount_fs(
        &source,
        &target,
        fstype,
        opts.flags,
        opts.data_string().as_deref(),
        dest,
    )?;
    if let Some(src) = copy {
        let top =
            paths::open_in_root(root, dest).ctx(|| format!("reopening {}", dest.display()))?;
        copy_tree(&src, Path::new(&paths::fd_path(&top)))?;
    }
    if !opts.propagation.is_empty() {
        let top =
            paths::open_in_root(root, dest).ctx(|| format!("reopening {}", dest.display()))?;
        for p in &opts.propagation {
            mounts::set_propagation(&paths::fd_path(&top), *p)?;
        }
    }
    Ok(())
}

/// For `tmpcopyup`: a handle on the directory's content before the tmpfs covers it.
fn snapshot_dir(target: &OwnedFd) -> Result<PathBuf> {
    // The covered directory stays reachable through an fd; keep it open via
    // a private bind so the copy can read it after the mount.
    let tmp = std::env::temp_dir().join(format!("berth-copyup-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    nix::mount::mount(
        Some(paths::fd_path(target).as_str()),
        &tmp,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| "tmpcopyup: binding the original directory".into())?;
    Ok(tmp)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dst)
        .output();
    let _ = nix::mount::umount2(src, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir(src);
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(Error::Other(format!(
            "tmpcopyup: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) => Err(Error::Sys {
            what: "tmpcopyup: running cp".into(),
            source: e,
        }),
    }
}

/// A cgroup mount. With a cgroup namespace the kernel shows only the
/// container's subtree; without one, the container's own cgroup directories
/// are bind-mounted (as runc does), so it never sees its neighbours.
fn mount_cgroup(
    ctx: &Context<'_>,
    root: BorrowedFd<'_>,
    dest: &Path,
    opts: &Options,
) -> Result<()> {
    let target = paths::mkdir_all_in_root(root, dest, 0o755)?;
    check_target(target.as_fd(), dest)?;
    let host = nix::sys::statfs::statfs("/sys/fs/cgroup").ctx(|| "statfs /sys/fs/cgroup".into())?;
    let flags = opts.flags - MsFlags::MS_RDONLY;
    if host.filesystem_type().0 as i64 == CGROUP2_SUPER_MAGIC {
        return mounts::mount_fs("cgroup2", &target, "cgroup2", opts.flags, None, dest);
    }
    // v1 (or hybrid): a tmpfs with one directory per hierarchy.
    mounts::mount_fs("tmpfs", &target, "tmpfs", flags, Some("mode=755"), dest)?;
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "reading mountinfo".into())?;
    let own =
        std::fs::read_to_string("/proc/self/cgroup").ctx(|| "reading /proc/self/cgroup".into())?;
    let own = mountinfo::parse_proc_cgroup(&own);
    for m in mountinfo::parse(&info) {
        if !(m.fs_type == "cgroup" || m.fs_type == "cgroup2")
            || !m.mount_point.starts_with("/sys/fs/cgroup/")
        {
            continue;
        }
        let name = m.mount_point.trim_start_matches("/sys/fs/cgroup/");
        if name.contains('/') {
            continue;
        }
        let sub = dest.join(name);
        let subfd = paths::mkdir_all_in_root(root, &sub, 0o755)?;
        let controllers: Vec<&str> = m
            .super_options
            .split(',')
            .filter(|o| *o != "rw" && *o != "ro")
            .collect();
        let own_path = own.iter().find(|(c, _)| {
            if m.fs_type == "cgroup2" {
                c.is_empty()
            } else {
                c.split(',').any(|x| controllers.contains(&x))
            }
        });
        if ctx.cgroupns {
            let (fstype, data) = if m.fs_type == "cgroup2" {
                ("cgroup2", None)
            } else {
                ("cgroup", Some(controllers.join(",")))
            };
            mounts::mount_fs("cgroup", &subfd, fstype, opts.flags, data.as_deref(), &sub)?;
        } else if let Some((_, path)) = own_path {
            let source = PathBuf::from(&m.mount_point).join(path.trim_start_matches('/'));
            let mut bopts = opts.clone();
            bopts.bind = true;
            bopts.recursive = false;
            bopts.propagation.clear();
            mounts::bind(mounts::Bind {
                source: &source,
                target: &subfd,
                dest: &sub,
                opts: &bopts,
                userns: None,
            })?;
        }
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let top =
            paths::open_in_root(root, dest).ctx(|| format!("reopening {}", dest.display()))?;
        mounts::set_attr(
            top.as_fd(),
            mounts::attr::RDONLY,
            0,
            0,
            None,
            false,
            &dest.display().to_string(),
        )?;
    }
    Ok(())
}

/// The devices every container gets (runtime spec, "Default Devices").
pub fn default_devices() -> Vec<(&'static str, u64, u64)> {
    vec![
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
}

struct DeviceNode {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn device_nodes(spec: &Spec) -> Vec<DeviceNode> {
    let configured: Vec<LinuxDevice> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let mut nodes: Vec<DeviceNode> = default_devices()
        .into_iter()
        .filter(|(p, _, _)| !configured.iter().any(|d| d.path() == Path::new(p)))
        .map(|(p, major, minor)| DeviceNode {
            path: p.into(),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    for d in configured {
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        nodes.push(DeviceNode {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    nodes
}

fn create_devices(ctx: &Context<'_>, root: BorrowedFd<'_>) -> Result<()> {
    for node in device_nodes(ctx.spec) {
        let rel = paths::relative(&node.path);
        let parent = paths::mkdir_all_in_root(root, rel.parent().unwrap_or(Path::new("")), 0o755)?;
        let name =
            CString::new(rel.file_name().unwrap_or_default().as_encoded_bytes()).expect("no NUL");
        if ctx.userns {
            // mknod is not allowed in a user namespace: bind the host's node.
            let target = paths::ensure_file_in_root(root, &node.path)?;
            let opts = Options {
                bind: true,
                ..Default::default()
            };
            mounts::bind(mounts::Bind {
                source: &node.path,
                target: &target,
                dest: &node.path,
                opts: &opts,
                userns: None,
            })?;
            continue;
        }
        let _ = nix::unistd::unlinkat(
            parent.as_fd(),
            name.as_c_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        nix::sys::stat::mknodat(
            parent.as_fd(),
            name.as_c_str(),
            node.kind,
            Mode::from_bits_truncate(node.mode),
            nix::sys::stat::makedev(node.major, node.minor),
        )
        .ctx(|| format!("mknod {}", node.path.display()))?;
        let dev = nix::fcntl::openat(
            parent.as_fd(),
            name.as_c_str(),
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("opening {}", node.path.display()))?;
        nix::unistd::fchownat(
            dev.as_fd(),
            c"",
            Some(node.uid.into()),
            Some(node.gid.into()),
            nix::fcntl::AtFlags::AT_EMPTY_PATH,
        )
        .ctx(|| format!("chown {}", node.path.display()))?;
        std::fs::set_permissions(
            paths::fd_path(&dev),
            std::os::unix::fs::PermissionsExt::from_mode(node.mode & 0o7777),
        )
        .ctx(|| format!("chmod {}", node.path.display()))?;
    }
    Ok(())
}

fn dev_symlinks(root: BorrowedFd<'_>) -> Result<()> {
    let dev = paths::mkdir_all_in_root(root, Path::new("/dev"), 0o755)?;
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore"));
    }
    for (name, target) in links {
        let cname = CString::new(name).expect("no NUL");
        if name == "ptmx" {
            let _ = nix::unistd::unlinkat(
                dev.as_fd(),
                cname.as_c_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
        match nix::unistd::symlinkat(target, dev.as_fd(), cname.as_c_str()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => {
                return Err(Error::Sys {
                    what: format!("symlink /dev/{name}"),
                    source: e.into(),
                });
            }
        }
    }
    Ok(())
}

/// pivot_root(".", ".") then lazily unmount the old root stacked under it
/// (pivot_root(2), "pivot_root(".", ".")").
pub fn pivot(rootfs: &Path) -> Result<()> {
    let old = open_dir(Path::new("/"))?;
    let new = open_dir(rootfs)?;
    nix::unistd::fchdir(&new).ctx(|| "chdir to the rootfs".into())?;
    crate::sys::pivot_root(c".", c".").ctx(|| "pivot_root".into())?;
    nix::unistd::fchdir(&old).ctx(|| "chdir to the old root".into())?;
    mounts::set_propagation(".", MsFlags::MS_SLAVE | MsFlags::MS_REC)?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmounting the old root".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

/// `--no-pivot`: move the rootfs over / and chroot (for ramdisk roots where
/// pivot_root is impossible). Weaker: the old root is still reachable by a
/// process that can escape the chroot.
pub fn move_root(rootfs: &Path) -> Result<()> {
    nix::unistd::chdir(rootfs).ctx(|| "chdir to the rootfs".into())?;
    nix::mount::mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .ctx(|| "moving the rootfs to /".into())?;
    nix::unistd::chroot(".").ctx(|| "chroot".into())?;
    nix::unistd::chdir("/").ctx(|| "chdir /".into())
}

/// After pivot_root: masked paths (files under the host's /dev/null, whose
/// detached mount `null_tree` was taken before pivot_root; directories under
/// an empty read-only tmpfs), read-only paths, and a read-only root.
pub fn finalize(spec: &Spec, null_tree: BorrowedFd<'_>) -> Result<()> {
    let root = open_dir(Path::new("/"))?;
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        mask(root.as_fd(), Path::new(p), null_tree)?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        readonly(root.as_fd(), Path::new(p))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let top = paths::open_in_root(root.as_fd(), Path::new("/")).ctx(|| "opening /".into())?;
        mounts::set_attr(top.as_fd(), mounts::attr::RDONLY, 0, 0, None, false, "/")?;
    }
    if let Some(p) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        let flags = mounts::propagation_flags(p)
            .ok_or_else(|| Error::Other(format!("linux.rootfsPropagation: unknown value {p:?}")))?;
        mounts::set_propagation("/", flags)?;
    }
    Ok(())
}

const TMPFS_MAGIC: i64 = 0x0102_1994;

fn mask(root: BorrowedFd<'_>, p: &Path, null_tree: BorrowedFd<'_>) -> Result<()> {
    let fd = match paths::open_in_root(root, p) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::Sys {
                what: format!("masking {}", p.display()),
                source: e,
            });
        }
    };
    let dir = paths::is_dir(fd.as_fd()).ctx(|| format!("stat {}", p.display()))?;
    if dir {
        mounts::mount_fs(
            "tmpfs",
            &fd,
            "tmpfs",
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=0,nr_inodes=1"),
            p,
        )?;
    } else {
        let what = p.display().to_string();
        let (copy, source) = null_copy(root, null_tree, &what)?;
        mounts::attach(copy.as_fd(), fd.as_fd(), &what)?;
        return verify_masked(root, p, false, source.as_fd());
    }
    verify_masked(root, p, dir, null_tree)
}

/// Reopens a masked path and checks that what now sits there is what the
/// runtime put there: the host's /dev/null (same device and inode as the
/// handle taken before pivot_root) or an empty read-only tmpfs. An image
/// cannot substitute its own file by planting symlinks or fake /proc
/// entries.
fn verify_masked(
    root: BorrowedFd<'_>,
    p: &Path,
    dir: bool,
    null_tree: BorrowedFd<'_>,
) -> Result<()> {
    let bad = |why: String| Error::Other(format!("masking {}: {why}", p.display()));
    let now = paths::open_in_root(root, p).ctx(|| format!("reopening masked {}", p.display()))?;
    let st = nix::sys::stat::fstat(&now).ctx(|| format!("stat masked {}", p.display()))?;
    if dir {
        let fs = nix::sys::statfs::fstatfs(&now).ctx(|| format!("statfs {}", p.display()))?;
        if fs.filesystem_type().0 as i64 != TMPFS_MAGIC {
            return Err(bad("not covered by a tmpfs".into()));
        }
        // Through the O_PATH handle itself, not /proc/self/fd.
        let d = nix::fcntl::openat(
            now.as_fd(),
            c".",
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("opening {}", p.display()))?;
        let entries = nix::dir::Dir::from_fd(d)
            .ctx(|| format!("listing {}", p.display()))?
            .iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name() != c"." && e.file_name() != c"..")
            .count();
        if entries != 0 {
            return Err(bad(format!("the tmpfs holds {entries} entries")));
        }
        return Ok(());
    }
    let null = nix::sys::stat::fstat(null_tree).ctx(|| "stat the host's /dev/null".into())?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || (st.st_dev, st.st_ino, st.st_rdev) != (null.st_dev, null.st_ino, null.st_rdev) {
        return Err(bad("the file there is not the host's /dev/null".into()));
    }
    Ok(())
}

/// A new mount of /dev/null to mask a file with, and the file it was cloned
/// from (what the masked path must then be). Normally a clone of the host's
/// /dev/null taken before pivot_root. Linux before 6.15 refuses to clone a
/// detached mount (open_tree(2) fails with EINVAL); there the container's
/// own /dev/null, which the runtime set up, is cloned instead, once checked
/// to be the null device (char 1:3).
fn null_copy(
    root: BorrowedFd<'_>,
    null_tree: BorrowedFd<'_>,
    what: &str,
) -> Result<(OwnedFd, OwnedFd)> {
    let host = null_tree
        .try_clone_to_owned()
        .ctx(|| "duplicating the /dev/null handle".into())?;
    match mounts::clone_fd(null_tree, false, what) {
        Ok(copy) => Ok((copy, host)),
        Err(Error::Sys { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
            let dev = paths::open_in_root(root, Path::new("/dev/null"))
                .ctx(|| "opening the container's /dev/null to mask paths with".into())?;
            let st = nix::sys::stat::fstat(dev.as_fd()).ctx(|| "stat /dev/null".into())?;
            if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
                return Err(Error::Other(
                    "maskedPaths: this kernel cannot clone the host's /dev/null (Linux < 6.15) and the container's /dev/null is not the null device".into(),
                ));
            }
            let copy = mounts::clone_fd(dev.as_fd(), false, what)?;
            Ok((copy, dev))
        }
        Err(e) => Err(e),
    }
}

fn readonly(root: BorrowedFd<'_>, p: &Path) -> Result<()> {
    let fd = match paths::open_in_root(root, p) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => {
            return Err(Error::Sys {
                what: format!("read-only path {}", p.display()),
                source: e,
            });
        }
    };
    let what = p.display().to_string();
    let copy = mounts::clone_fd(fd.as_fd(), true, &what)?;
    mounts::set_attr(copy.as_fd(), mounts::attr::RDONLY, 0, 0, None, true, &what)?;
    mounts::attach(copy.as_fd(), fd.as_fd(), &what)
}

/// Writes `linux.sysctl` through the runtime's private procfs (never the
/// container's `/proc`, which an image or a volume may have replaced).
pub fn write_sysctls(spec: &Spec, proc: &crate::procfs::ProcRoot) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctl {
        proc.write(&sysctl_path(key)?, value)
            .map_err(|e| Error::Other(format!("linux.sysctl {key}={value}: {e}")))?;
    }
    Ok(())
}

/// The path below /proc of a sysctl key: `net.ipv4.ip_forward` →
/// `sys/net/ipv4/ip_forward`. A key with `/` separators keeps its dots
/// (`net/ipv4/conf/eth0.100/forwarding`), as sysctl(8) reads it.
pub fn sysctl_path(key: &str) -> Result<String> {
    let sep = if key.contains('/') { '/' } else { '.' };
    let parts: Vec<&str> = key.split(sep).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Other(format!(
            "linux.sysctl: {key:?} is not a sysctl name"
        )));
    }
    Ok(format!("sys/{}", parts.join("/")))
}

/// Whether `fd` is on procfs (a mount target that must not be).
pub fn is_procfs(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statfs::fstatfs(fd)
        .map(|s| s.filesystem_type().0 == PROC_SUPER_MAGIC)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_become_proc_paths() {
        assert_eq!(
            sysctl_path("net.ipv4.ip_forward").unwrap(),
            "sys/net/ipv4/ip_forward"
        );
        assert_eq!(
            sysctl_path("net/ipv4/conf/eth0.100/forwarding").unwrap(),
            "sys/net/ipv4/conf/eth0.100/forwarding"
        );
        for bad in ["", "kernel..domainname", ".kernel", "kernel/"] {
            assert!(sysctl_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_lxcfs_files_may_cover_procfs() {
        assert!(may_cover_procfs(Path::new("/proc/meminfo")));
        assert!(may_cover_procfs(Path::new("proc/./cpuinfo")));
        assert!(!may_cover_procfs(Path::new("/proc")));
        assert!(!may_cover_procfs(Path::new("/proc/sys")));
        assert!(!may_cover_procfs(Path::new("/proc/self/attr/exec")));
        assert!(!may_cover_procfs(Path::new("/shared/evil")));
    }
}
