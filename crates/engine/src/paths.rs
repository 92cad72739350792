//! Where an engine instance keeps its state (the shared paths convention
//! of DESIGN.md): `<root>/berth.db`, `<root>/containers/<id>/`,
//! `<root>/volumes/<name>/`, `<root>/init/` (the `--init` reaper), and a run dir (`/run/berth` for the default
//! root, `<root>/run` otherwise) holding the runtime root, the network run
//! dir and one directory per running container (monitor socket, exit file).

use std::path::{Path, PathBuf};

pub const DEFAULT_ROOT: &str = "/var/lib/berth";
pub const DEFAULT_RUN: &str = "/run/berth";

#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub run: PathBuf,
}

impl Paths {
    /// The paths of the instance rooted at `root`.
    pub fn new(root: &Path) -> Self {
        let run = if root == Path::new(DEFAULT_ROOT) {
            PathBuf::from(DEFAULT_RUN)
        } else {
            root.join("run")
        };
        Paths {
            root: root.to_path_buf(),
            run,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.root.join("berth.db")
    }
    pub fn runtime_root(&self) -> PathBuf {
        self.run.join("runtime")
    }
    pub fn net_run(&self) -> PathBuf {
        self.run.join("net")
    }
    /// The persistent directory of a container: bundle (config.json,
    /// rootfs mount point), logs, hosts files.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }
    pub fn rootfs(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("rootfs")
    }
    pub fn log_file(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("json.log")
    }
    /// The volatile directory of a running container: attach socket, exit
    /// file, monitor pid.
    pub fn container_run(&self, id: &str) -> PathBuf {
        self.run.join("containers").join(id)
    }
    pub fn attach_socket(&self, id: &str) -> PathBuf {
        self.container_run(id).join("attach.sock")
    }
    pub fn exit_file(&self, id: &str) -> PathBuf {
        self.container_run(id).join("exit")
    }
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volumes().join(name).join("_data")
    }
    /// The `--init` reaper binaries (see [`crate::init`]).
    pub fn init_dir(&self) -> PathBuf {
        self.root.join("init")
    }
    pub fn lock_dir(&self) -> PathBuf {
        self.run.join("locks")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_root_uses_run_berth() {
        let p = Paths::new(Path::new(DEFAULT_ROOT));
        assert_eq!(p.run, PathBuf::from("/run/berth"));
        assert_eq!(p.runtime_root(), PathBuf::from("/run/berth/runtime"));
    }

    #[test]
    fn other_root_keeps_run_inside() {
        let p = Paths::new(Path::new("/tmp/x"));
        assert_eq!(p.run, PathBuf::from("/tmp/x/run"));
        assert_eq!(p.db(), PathBuf::from("/tmp/x/berth.db"));
        assert_eq!(
            p.rootfs("abc"),
            PathBuf::from("/tmp/x/containers/abc/rootfs")
        );
    }
}
