//! Which cgroup hierarchy the host mounts, and where.
//!
//! Pure parsers of `/proc/self/mountinfo` (proc(5)) and `/proc/self/cgroup`
//! (cgroups(7)) decide; [`Hierarchy::detect`] only reads those two files.

use crate::Error;
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where distributions mount cgroups.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// v1 controllers berth knows by name (cgroups(7)).
pub(crate) const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The cgroup API version a [`Hierarchy`] (and so a [`crate::Manager`]) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

impl CgroupVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        }
    }
}

/// The host's cgroup layout: the version, the root, the v1 mount point of
/// each controller, and the caller's own cgroup per controller (for relative
/// `linux.cgroupsPath`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    version: CgroupVersion,
    root: PathBuf,
    /// v1: controller name → mount point. Empty on v2.
    mounts: BTreeMap<String, PathBuf>,
    /// Controller → own cgroup path ("" for v2), from /proc/self/cgroup.
    own: BTreeMap<String, String>,
}

impl Hierarchy {
    /// Detects the hierarchy mounted at [`DEFAULT_ROOT`]. A hybrid host (v1
    /// controllers plus an empty cgroup2 at `root/unified`) is treated as v1.
    pub fn detect() -> Result<Hierarchy, Error> {
        let mountinfo = fsutil::read(Path::new("/proc/self/mountinfo"))?;
        let own = fsutil::read(Path::new("/proc/self/cgroup"))?;
        Hierarchy::from_proc(&mountinfo, &own, Path::new(DEFAULT_ROOT))
    }

    /// Pure: decides from the text of /proc/self/mountinfo and /proc/self/cgroup.
    pub fn from_proc(mountinfo: &str, proc_cgroup: &str, root: &Path) -> Result<Hierarchy, Error> {
        let mounts = parse_mountinfo(mountinfo);
        let own = parse_proc_cgroup(proc_cgroup);
        let mut v1 = BTreeMap::new();
        let mut v2_at_root = false;
        for m in &mounts {
            match m.fstype.as_str() {
                "cgroup2" if m.mount_point == root => v2_at_root = true,
                "cgroup" => {
                    for opt in m.super_options.split(',') {
                        if V1_CONTROLLERS.contains(&opt) {
                            v1.entry(opt.to_owned())
                                .or_insert_with(|| m.mount_point.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        if !v1.is_empty() {
            Ok(Hierarchy {
                version: CgroupVersion::V1,
                root: root.to_owned(),
                mounts: v1,
                own,
            })
        } else if v2_at_root {
            Ok(Hierarchy {
                version: CgroupVersion::V2,
                root: root.to_owned(),
                mounts: BTreeMap::new(),
                own,
            })
        } else {
            Err(Error::Detect(format!(
                "no cgroup2 filesystem at {} and no cgroup v1 controller mounted",
                root.display()
            )))
        }
    }

    /// Describes a hierarchy laid out under `root` (a real one or a
    /// temporary directory in tests): v2 when `root/cgroup.controllers`
    /// exists, else v1 with one subdirectory per controller (names like
    /// `cpu,cpuacct` name several). The caller's own cgroup is taken as `/`.
    pub fn at(root: &Path) -> Result<Hierarchy, Error> {
        if root.join("cgroup.controllers").exists() {
            return Ok(Hierarchy {
                version: CgroupVersion::V2,
                root: root.to_owned(),
                mounts: BTreeMap::new(),
                own: BTreeMap::new(),
            });
        }
        let mut mounts = BTreeMap::new();
        let entries = std::fs::read_dir(root).map_err(Error::io("read dir", root))?;
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let dir = root.join(&name);
            if !dir.join("cgroup.procs").exists() {
                continue;
            }
            // A symlink like cpu -> cpu,cpuacct resolves to the real mount.
            let real = std::fs::canonicalize(&dir).unwrap_or(dir);
            for c in name.split(',') {
                if V1_CONTROLLERS.contains(&c) {
                    mounts.entry(c.to_owned()).or_insert_with(|| real.clone());
                }
            }
        }
        if mounts.is_empty() {
            return Err(Error::Detect(format!(
                "{} has neither cgroup.controllers (v2) nor v1 controller directories",
                root.display()
            )));
        }
        Ok(Hierarchy {
            version: CgroupVersion::V1,
            root: root.to_owned(),
            mounts,
            own: BTreeMap::new(),
        })
    }

    /// Replaces the caller's own cgroups (the base of relative paths).
    pub fn with_own_cgroups(mut self, own: BTreeMap<String, String>) -> Hierarchy {
        self.own = own;
        self
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// v1: controller → mount point (empty on v2).
    pub fn mounts(&self) -> &BTreeMap<String, PathBuf> {
        &self.mounts
    }

    /// The caller's cgroup for `controller` ("" on v2), "/" when unknown.
    pub fn own_cgroup(&self, controller: &str) -> &str {
        self.own.get(controller).map(String::as_str).unwrap_or("/")
    }

    /// Controllers available: v1 the mounted ones, v2 those listed in the
    /// root's `cgroup.controllers`.
    pub fn controllers(&self) -> Result<BTreeSet<String>, Error> {
        match self.version {
            CgroupVersion::V1 => Ok(self.mounts.keys().cloned().collect()),
            CgroupVersion::V2 => {
                let text = fsutil::read(&self.root.join("cgroup.controllers"))?;
                Ok(text.split_whitespace().map(str::to_owned).collect())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub mount_point: PathBuf,
    pub fstype: String,
    pub super_options: String,
}

/// Parses proc(5) mountinfo lines: `id parent maj:min root mountpoint opts
/// [optional...] - fstype source superopts`.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            if sep < 6 || fields.len() < sep + 4 {
                return None;
            }
            Some(MountEntry {
                mount_point: PathBuf::from(unescape_octal(fields[4])),
                fstype: fields[sep + 1].to_owned(),
                super_options: fields[sep + 3].to_owned(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses cgroups(7) `/proc/<pid>/cgroup`: `id:controllers:path`; the v2
/// entry (`0::/path`) is stored under "".
pub(crate) fn parse_proc_cgroup(text: &str) -> BTreeMap<String, String> {
    let mut own = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if ctrls.is_empty() {
            own.insert(String::new(), path.to_owned());
        } else {
            for c in ctrls.split(',') {
                own.insert(c.to_owned(), path.to_owned());
            }
        }
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const UNIFIED: &str = "\
22 1 0:21 / / rw - ext4 /dev/sda1 rw
28 22 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn hybrid_is_v1_with_comounted_controllers() {
        let own = "4:memory:/process_api/x\n0::/\n";
        let h = Hierarchy::from_proc(HYBRID, own, Path::new(DEFAULT_ROOT)).unwrap();
        assert_eq!(h.version(), CgroupVersion::V1);
        assert_eq!(
            h.mounts()["cpu"],
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            h.mounts()["cpuacct"],
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(h.mounts()["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert!(!h.mounts().contains_key("name=systemd"));
        assert!(!h.mounts().contains_key("systemd"));
        assert_eq!(h.own_cgroup("memory"), "/process_api/x");
        assert_eq!(h.own_cgroup("cpu"), "/");
    }

    #[test]
    fn unified_only_is_v2() {
        let h = Hierarchy::from_proc(
            UNIFIED,
            "0::/user.slice/session-1.scope\n",
            Path::new(DEFAULT_ROOT),
        )
        .unwrap();
        assert_eq!(h.version(), CgroupVersion::V2);
        assert!(h.mounts().is_empty());
        assert_eq!(h.own_cgroup(""), "/user.slice/session-1.scope");
    }

    #[test]
    fn nothing_mounted_is_an_error() {
        let err = Hierarchy::from_proc(
            "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n",
            "",
            Path::new(DEFAULT_ROOT),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no cgroup2 filesystem"), "{err}");
    }

    #[test]
    fn mountinfo_octal_escapes() {
        let m = parse_mountinfo("1 2 0:1 / /a\\040b rw - cgroup cgroup rw,pids\n");
        assert_eq!(m[0].mount_point, PathBuf::from("/a b"));
        assert_eq!(m[0].super_options, "rw,pids");
    }

    #[test]
    fn at_reads_directory_layouts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cpu,cpuacct")).unwrap();
        std::fs::write(dir.path().join("cpu,cpuacct/cgroup.procs"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("pids")).unwrap();
        std::fs::write(dir.path().join("pids/cgroup.procs"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("not-a-controller")).unwrap();
        let h = Hierarchy::at(dir.path()).unwrap();
        assert_eq!(h.version(), CgroupVersion::V1);
        assert_eq!(
            h.controllers().unwrap(),
            ["cpu", "cpuacct", "pids"].map(String::from).into()
        );

        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(v2.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let h = Hierarchy::at(v2.path()).unwrap();
        assert_eq!(h.version(), CgroupVersion::V2);
        assert_eq!(
            h.controllers().unwrap(),
            ["cpu", "memory", "pids"].map(String::from).into()
        );
    }
}
