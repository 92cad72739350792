//! Mount descriptions (containerd's `Mount`: type, source, options) and the
//! thin effects that perform them.

use std::path::Path;

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};

use crate::error::{Error, Result};

/// One mount to perform, like containerd's `mount.Mount`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// `overlay` or `bind`.
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// The page size: mount(2) copies at most one page of option data, so
/// longer overlay options fail with EINVAL (see mount(2), "data").
pub fn page_size() -> usize {
    rustix::param::page_size()
}

impl Mount {
    /// The overlay option string passed as mount(2) data.
    pub fn data(&self) -> String {
        self.options
            .iter()
            .filter(|o| !matches!(o.as_str(), "ro" | "rw" | "rbind" | "bind"))
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    }

    fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }

    /// Performs the mount on `target`.
    pub fn mount(&self, target: &Path) -> Result<()> {
        let err = |reason: String| Error::Mount {
            target: target.to_path_buf(),
            reason,
        };
        match self.kind.as_str() {
            "bind" => {
                let recursive = self.options.iter().any(|o| o == "rbind");
                let mut flags = MountFlags::BIND;
                if recursive {
                    flags |= MountFlags::REC;
                }
                rustix::mount::mount(self.source.as_str(), target, "", flags, None)
                    .map_err(|e| err(format!("bind {}: {e}", self.source)))?;
                if self.read_only() {
                    // A bind mount ignores MS_RDONLY until remounted (mount(2), "MS_BIND").
                    rustix::mount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")
                        .map_err(|e| err(format!("remount read-only: {e}")))?;
                }
                Ok(())
            }
            "overlay" => {
                let data = self.data();
                if data.len() < page_size() {
                    let mut flags = MountFlags::empty();
                    if self.read_only() {
                        flags |= MountFlags::RDONLY;
                    }
                    let c = std::ffi::CString::new(data)
                        .map_err(|_| err("NUL in overlay options".into()))?;
                    rustix::mount::mount("overlay", target, "overlay", flags, Some(c.as_c_str()))
                        .map_err(|e| err(format!("overlay: {e}")))
                } else {
                    // Too long for one page: the new mount API takes each
                    // layer separately; kernels before 6.8 lack `lowerdir+`,
                    // so fall back to short relative names, as Docker does.
                    self.mount_with_fsconfig(target).or_else(|fs_err| {
                        self.mount_relative(target).map_err(|rel_err| {
                            err(format!(
                                "overlay with {} bytes of options: fsconfig: {fs_err}; relative lowerdirs: {rel_err}",
                                data.len()
                            ))
                        })
                    })
                }
            }
            other => Err(err(format!("unknown mount type {other:?}"))),
        }
    }

    /// Options too long for one page go through the new mount API, adding
    /// each lower layer with `lowerdir+` (Linux 6.8+; overlayfs.rst,
    /// "Specifying layers via file descriptors/lowerdir+").
    fn mount_with_fsconfig(&self, target: &Path) -> rustix::io::Result<()> {
        let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        for opt in &self.options {
            match opt.split_once('=') {
                Some(("lowerdir", dirs)) => {
                    for d in dirs.split(':') {
                        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", d)?;
                    }
                }
                Some((k, v)) => rustix::mount::fsconfig_set_string(&fs, k, v)?,
                None if opt == "ro" || opt == "rw" => {}
                None => rustix::mount::fsconfig_set_flag(&fs, opt.as_str())?,
            }
        }
        rustix::mount::fsconfig_create(&fs)?;
        let attrs = if self.read_only() {
            MountAttrFlags::MOUNT_ATTR_RDONLY
        } else {
            MountAttrFlags::empty()
        };
        let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
        rustix::mount::move_mount(
            &mnt,
            "",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
    }
}

impl Mount {
    /// Mounts an overlay whose lower dirs all sit in one short-link
    /// directory (`<root>/snapshots/l/<short>`) with relative `l/<short>`
    /// names from a thread whose working directory is `<root>/snapshots`,
    /// shrinking the option string as Docker's overlay2 does. The thread
    /// unshares its fs context (unshare(2), `CLONE_FS`) so the chdir does not
    /// affect the rest of the process.
    pub fn mount_relative(&self, target: &Path) -> std::result::Result<(), String> {
        let lower = self
            .options
            .iter()
            .find_map(|o| o.strip_prefix("lowerdir="))
            .ok_or("no lowerdir option")?;
        let dirs: Vec<&Path> = lower.split(':').map(Path::new).collect();
        let base = dirs[0]
            .parent()
            .and_then(Path::parent)
            .ok_or("lowerdir has no short-link parent")?;
        let mut rel = Vec::new();
        for d in &dirs {
            let r = d
                .strip_prefix(base)
                .map_err(|_| format!("{} is not under {}", d.display(), base.display()))?;
            rel.push(r.to_string_lossy().into_owned());
        }
        let options: Vec<String> = self
            .options
            .iter()
            .map(|o| {
                if o.starts_with("lowerdir=") {
                    format!("lowerdir={}", rel.join(":"))
                } else {
                    o.clone()
                }
            })
            .collect();
        let relative = Mount {
            kind: self.kind.clone(),
            source: self.source.clone(),
            options,
        };
        let data = relative.data();
        if data.len() >= page_size() {
            return Err(format!(
                "{} bytes of options even with relative lowerdirs",
                data.len()
            ));
        }
        let target = std::path::absolute(target).map_err(|e| e.to_string())?;
        let flags = if self.read_only() {
            MountFlags::RDONLY
        } else {
            MountFlags::empty()
        };
        let c = std::ffi::CString::new(data).map_err(|_| "NUL in overlay options".to_string())?;
        std::thread::scope(|s| {
            s.spawn(|| -> std::result::Result<(), String> {
                // SAFETY: CLONE_FS only gives this short-lived thread its own
                // cwd/root/umask; no file descriptor table is unshared.
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }
                    .map_err(|e| format!("unshare(CLONE_FS): {e}"))?;
                rustix::process::chdir(base)
                    .map_err(|e| format!("chdir {}: {e}", base.display()))?;
                rustix::mount::mount("overlay", &target, "overlay", flags, Some(c.as_c_str()))
                    .map_err(|e| format!("overlay: {e}"))
            })
            .join()
            .map_err(|_| "mount thread panicked".to_string())?
        })
    }
}

/// Mounts each of `mounts` on `target` in order.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for m in mounts {
        m.mount(target)?;
    }
    Ok(())
}

/// Unmounts `target` (lazily if it is busy).
pub fn unmount(target: &Path) -> Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::BUSY) => rustix::mount::unmount(target, UnmountFlags::DETACH)
            .map_err(|e| Error::Mount {
                target: target.to_path_buf(),
                reason: format!("unmount: {e}"),
            }),
        Err(e) => Err(Error::Mount {
            target: target.to_path_buf(),
            reason: format!("unmount: {e}"),
        }),
    }
}

/// Unmounts on drop: for tests and short-lived mounts (`diff`, `commit`).
pub struct MountGuard {
    target: std::path::PathBuf,
}

impl MountGuard {
    /// Mounts `mounts` on `target` and returns a guard that unmounts it.
    pub fn new(mounts: &[Mount], target: &Path) -> Result<Self> {
        mount_all(mounts, target)?;
        Ok(MountGuard {
            target: target.to_path_buf(),
        })
    }
}

impl MountGuard {
    /// A guard for what is already mounted on `target`.
    pub fn from_mounted(target: &Path) -> Self {
        MountGuard {
            target: target.to_path_buf(),
        }
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = unmount(&self.target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_skips_mount_flags() {
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec!["ro".into(), "lowerdir=/a:/b".into(), "index=off".into()],
        };
        assert_eq!(m.data(), "lowerdir=/a:/b,index=off");
        assert!(m.read_only());
    }
}
