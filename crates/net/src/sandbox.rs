//! Sandboxes: network namespaces kept alive as bind-mounted nsfs files
//! (`<run_dir>/netns/<id>`), the way `ip netns add` does it. The OCI
//! runtime joins one through `linux.namespaces[{type: "network", path}]`.
//!
//! Namespace work happens on short-lived helper threads: `unshare(2)` and
//! `setns(2)` with `CLONE_NEWNET` affect only the calling thread, so the
//! caller's own namespace never changes (see unshare(2), setns(2)).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{NetError, Result, io_err};
use crate::netlink::Netlink;

/// Where sandboxes of `run_dir` live.
pub fn netns_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("netns")
}

/// Runs `f` on a helper thread that has joined the network namespace at
/// `path`; sockets opened by `f` stay bound to that namespace afterwards.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let ns = File::open(path).map_err(io_err(format!("open sandbox {}", path.display())))?;
    let shown = path.display().to_string();
    std::thread::spawn(move || -> Result<T> {
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetError::Io {
            what: format!("join sandbox {shown}"),
            source: io::Error::from(e),
        })?;
        f()
    })
    .join()
    .map_err(|_| NetError::Io {
        what: "sandbox helper thread".into(),
        source: io::Error::other("panicked"),
    })?
}

/// Creates the sandbox `<run_dir>/netns/<id>`: a new network namespace
/// with `lo` up, pinned by a bind mount. Fails if it already exists.
pub fn create(run_dir: &Path, id: &str) -> Result<PathBuf> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(NetError::InvalidName {
            name: id.into(),
            reason: "not a valid sandbox id".into(),
        });
    }
    let dir = netns_dir(run_dir);
    fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let path = dir.join(id);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(format!("create sandbox file {}", path.display())))?;
    let target = path.clone();
    let made = std::thread::spawn(move || -> Result<()> {
        let sys = |what: &str| {
            let what = what.to_string();
            move |e: nix::Error| NetError::Io {
                what,
                source: io::Error::from(e),
            }
        };
        unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare(CLONE_NEWNET)"))?;
        // /proc/thread-self: this thread's namespace, not the process's.
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(&format!("bind-mount netns onto {}", target.display())))?;
        let mut nl = Netlink::open()?;
        let lo = nl.link_index("lo")?.ok_or_else(|| NetError::Netlink {
            op: "find lo".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
        nl.set_up(lo)?;
        crate::sysctl::configure_container_netns()
    })
    .join()
    .map_err(|_| NetError::Io {
        what: "sandbox helper thread".into(),
        source: io::Error::other("panicked"),
    })?;
    if let Err(e) = made {
        let _ = remove(&path);
        return Err(e);
    }
    Ok(path)
}

/// Removes a sandbox: unmounts the nsfs bind mount (lazily, in case
/// something still has it open) and unlinks the file. Missing is fine.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => {
            return Err(NetError::Io {
                what: format!("unmount sandbox {}", path.display()),
                source: e.into(),
            });
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::Io {
            what: format!("remove sandbox {}", path.display()),
            source: e,
        }),
    }
}

/// Sandbox ids present under `run_dir` (for reconciliation).
pub fn list(run_dir: &Path) -> Result<Vec<String>> {
    let dir = netns_dir(run_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(NetError::Io {
                what: format!("list {}", dir.display()),
                source: e,
            });
        }
    };
    let mut ids = Vec::new();
    for e in entries {
        let e = e.map_err(io_err(format!("list {}", dir.display())))?;
        ids.push(e.file_name().to_string_lossy().into_owned());
    }
    ids.sort();
    Ok(ids)
}
