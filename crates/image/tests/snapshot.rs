//! The snapshotter conformance suite (containerd's idea): every test runs
//! against both drivers, overlay and vfs. Mounting needs root; the tests
//! that mount are skipped otherwise.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use berth_image::layer::{ChangeKind, DiffOptions};
use berth_image::metadata::Db;
use berth_image::snapshot::{
    Kind, MountGuard, OverlaySnapshotter, Snapshotter, VfsSnapshotter, mount_all_idmapped,
};

type Make = fn(&Path) -> Box<dyn Snapshotter>;

fn overlay(root: &Path) -> Box<dyn Snapshotter> {
    let db = Db::open(&root.join("berth.db")).unwrap();
    Box::new(OverlaySnapshotter::new(root, db).unwrap())
}

fn vfs(root: &Path) -> Box<dyn Snapshotter> {
    let db: Arc<Db> = Db::open(&root.join("berth.db")).unwrap();
    Box::new(VfsSnapshotter::new(root, db).unwrap())
}

/// A committed snapshot holding `files`, on top of `parent`.
fn layer(s: &dyn Snapshotter, name: &str, parent: Option<&str>, files: &[(&str, &str)]) {
    let key = format!("extract-{name}");
    s.prepare(&key, parent).unwrap();
    let (dir, _) = s.apply_target(&key).unwrap();
    for (path, content) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    s.commit(name, &key).unwrap();
}

fn mountpoint(root: &Path, name: &str) -> std::path::PathBuf {
    let p = root.join("mnt").join(name);
    fs::create_dir_all(&p).unwrap();
    p
}

fn root_or_skip() -> bool {
    if !berth_testutil::is_root() {
        eprintln!("skipped: mounting needs root");
        return false;
    }
    true
}

fn lifecycle(make: Make) {
    let tmp = tempfile::tempdir().unwrap();
    let s = make(tmp.path());
    layer(&*s, "base", None, &[("a", "1")]);
    assert_eq!(s.stat("base").unwrap().kind, Kind::Committed);
    assert!(
        s.stat("extract-base").is_err(),
        "active key is renamed on commit"
    );
    layer(&*s, "top", Some("base"), &[("b", "2")]);
    assert_eq!(s.stat("top").unwrap().parent.as_deref(), Some("base"));
    // Errors: duplicate key, missing or uncommitted parent, removing a parent.
    assert!(s.prepare("top", None).is_err());
    assert!(
        s.prepare("x", Some("missing"))
            .unwrap_err()
            .to_string()
            .contains("missing")
    );
    s.prepare("act", Some("top")).unwrap();
    assert!(
        s.prepare("y", Some("act"))
            .unwrap_err()
            .to_string()
            .contains("not committed")
    );
    assert!(s.remove("base").unwrap_err().to_string().contains("child"));
    assert!(
        s.commit("base", "act").is_err(),
        "commit onto an existing name"
    );
    assert_eq!(s.list().unwrap().len(), 3);
    s.remove("act").unwrap();
    s.remove("top").unwrap();
    s.remove("base").unwrap();
    assert!(s.list().unwrap().is_empty());
    let left: Vec<_> = fs::read_dir(tmp.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["l"], "directories removed with their snapshots");
    assert_eq!(
        fs::read_dir(tmp.path().join("snapshots/l"))
            .unwrap()
            .count(),
        0,
        "short links removed"
    );
}

fn usage(make: Make) {
    let tmp = tempfile::tempdir().unwrap();
    let s = make(tmp.path());
    let big = "x".repeat(1 << 20);
    layer(&*s, "base", None, &[("big", &big), ("small", "s")]);
    let u = s.usage("base").unwrap();
    assert!(u.size >= 1 << 20, "{u:?}");
    assert_eq!(u.inodes, 2);
}

fn mounts_and_copy_on_write(make: Make) {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = make(tmp.path());
    layer(
        &*s,
        "base",
        None,
        &[("etc/shared", "image"), ("etc/doomed", "x")],
    );
    layer(&*s, "top", Some("base"), &[("etc/top", "t")]);
    let m1 = s.prepare("c1", Some("top")).unwrap();
    let m2 = s.prepare("c2", Some("top")).unwrap();
    let (p1, p2) = (mountpoint(tmp.path(), "c1"), mountpoint(tmp.path(), "c2"));
    let g1 = MountGuard::new(&m1, &p1).unwrap();
    let g2 = MountGuard::new(&m2, &p2).unwrap();
    assert_eq!(fs::read_to_string(p1.join("etc/shared")).unwrap(), "image");
    assert_eq!(fs::read_to_string(p2.join("etc/top")).unwrap(), "t");
    fs::write(p1.join("etc/shared"), "changed in c1").unwrap();
    fs::write(p1.join("new"), "n").unwrap();
    fs::remove_file(p1.join("etc/doomed")).unwrap();
    assert_eq!(
        fs::read_to_string(p2.join("etc/shared")).unwrap(),
        "image",
        "invisible to the other container"
    );
    assert!(!p2.join("new").exists());
    assert!(p2.join("etc/doomed").exists());
    // The image's view is unchanged too.
    let vm = s.view("v", Some("top")).unwrap();
    let pv = mountpoint(tmp.path(), "v");
    let gv = MountGuard::new(&vm, &pv).unwrap();
    assert_eq!(fs::read_to_string(pv.join("etc/shared")).unwrap(), "image");
    assert!(pv.join("etc/doomed").exists());
    assert_eq!(
        fs::write(pv.join("w"), "x").unwrap_err().raw_os_error(),
        Some(libc::EROFS),
        "views are read-only"
    );
    drop((g2, gv));
    // The container's changes, as `diff` shows them, and as a layer.
    let ch = s.changes("c1").unwrap();
    let has = |k: ChangeKind, p: &str| ch.iter().any(|c| c.kind == k && c.path == p);
    assert!(has(ChangeKind::Modified, "/etc/shared"), "{ch:?}");
    assert!(has(ChangeKind::Added, "/new"), "{ch:?}");
    assert!(has(ChangeKind::Deleted, "/etc/doomed"), "{ch:?}");
    assert!(
        !ch.iter().any(|c| c.path == "/etc/top" || c.path == "/a"),
        "untouched files are not changes: {ch:?}"
    );
    drop(g1);
    let mut tar = Vec::new();
    s.diff("c1", &mut tar, &DiffOptions::default()).unwrap();
    let mut ar = tar::Archive::new(&tar[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"etc/.wh.doomed".to_string()), "{names:?}");
    assert!(names.contains(&"new".to_string()), "{names:?}");
    assert!(
        !names.contains(&"etc/top".to_string()),
        "lower content is not in the diff: {names:?}"
    );
}

/// A rootfs mounted with every layer idmapped: the image's root-owned files
/// show as the mapped host ids, a process with a mapped uid writes, and
/// the snapshot stores what it wrote with the container's ids (uid 0 on
/// disk), so `diff` needs no translation.
fn idmapped_mount(make: Make) {
    if !root_or_skip() {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().unwrap();
    // The writer below runs as uid 100000 and must reach the mountpoint.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let s = make(tmp.path());
    layer(&*s, "base", None, &[("etc/shared", "image")]);
    let m = s.prepare("c1", Some("base")).unwrap();
    let p = mountpoint(tmp.path(), "c1");
    fs::set_permissions(p.parent().unwrap(), fs::Permissions::from_mode(0o755)).unwrap();
    let map = |host: u32| vec![berth_runtime::namespaces::id_mapping(0, host, 65536)];
    let ns =
        berth_runtime::namespaces::detached_user_namespace(&map(100000), &map(200000)).unwrap();
    mount_all_idmapped(&m, &p, std::os::fd::AsFd::as_fd(&ns), (100000, 200000)).unwrap();
    let guard = MountGuard::from_mounted(&p);
    let meta = fs::metadata(p.join("etc/shared")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100000, 200000));
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=100000",
            "--regid=200000",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(format!(
            "echo new > {0}/new && echo more >> {0}/etc/shared",
            p.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = fs::metadata(p.join("new")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100000, 200000));
    drop(guard);
    let mut tar = Vec::new();
    s.diff("c1", &mut tar, &DiffOptions::default()).unwrap();
    let mut ar = tar::Archive::new(&tar[..]);
    let mut owners = std::collections::BTreeMap::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        owners.insert(
            e.path().unwrap().to_string_lossy().into_owned(),
            (h.uid().unwrap(), h.gid().unwrap()),
        );
    }
    assert_eq!(owners.get("new"), Some(&(0, 0)), "{owners:?}");
    assert_eq!(owners.get("etc/shared"), Some(&(0, 0)), "{owners:?}");
}

fn many_layers_mount(make: Make) {
    if !root_or_skip() {
        return;
    }
    // A long root path makes the full overlay option string far longer than
    // a page, as a deep /var/lib path and 120 layers would.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp
        .path()
        .join("a-rather-long-directory-name-to-stress-mount-options".repeat(2));
    fs::create_dir_all(&root).unwrap();
    let s = make(&root);
    let mut parent: Option<String> = None;
    for i in 0..120 {
        let name = format!("layer-{i}");
        layer(
            &*s,
            &name,
            parent.as_deref(),
            &[(&format!("f{i}"), &i.to_string())],
        );
        parent = Some(name);
    }
    let m = s.prepare("c", parent.as_deref()).unwrap();
    let p = mountpoint(&root, "c");
    let _g = MountGuard::new(&m, &p).unwrap();
    for i in [0, 57, 119] {
        assert_eq!(
            fs::read_to_string(p.join(format!("f{i}"))).unwrap(),
            i.to_string()
        );
    }
}

fn missing_snapshot_errors(make: Make) {
    let tmp = tempfile::tempdir().unwrap();
    let s = make(tmp.path());
    for err in [
        s.stat("nope").unwrap_err(),
        s.mounts("nope").unwrap_err(),
        s.remove("nope").unwrap_err(),
    ] {
        assert!(err.to_string().contains("nope"), "{err}");
    }
    layer(&*s, "base", None, &[]);
    assert!(
        s.mounts("base").is_err(),
        "committed snapshots have no mounts"
    );
    assert!(s.apply_target("base").is_err());
    assert_eq!(
        fs::metadata(tmp.path().join("nothing")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// overlay only: the fallback for kernels without `lowerdir+` mounts 120
/// layers with relative short links whose absolute form exceeds a page.
#[test]
fn overlay_relative_short_links_fit_a_page() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = overlay(tmp.path());
    let mut parent: Option<String> = None;
    for i in 0..120 {
        let name = format!("layer-{i}");
        layer(
            &*s,
            &name,
            parent.as_deref(),
            &[(&format!("f{i}"), &i.to_string())],
        );
        parent = Some(name);
    }
    let m = s.prepare("c", parent.as_deref()).unwrap();
    assert!(
        m[0].data().len() >= berth_image::snapshot::mount::page_size(),
        "absolute form is over a page"
    );
    let p = mountpoint(tmp.path(), "c");
    let cwd = std::env::current_dir().unwrap();
    m[0].mount_relative(&p).unwrap();
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = berth_image::snapshot::unmount(self.0);
        }
    }
    let _u = Unmount(&p);
    assert_eq!(fs::read_to_string(p.join("f0")).unwrap(), "0");
    assert_eq!(fs::read_to_string(p.join("f119")).unwrap(), "119");
    assert_eq!(
        std::env::current_dir().unwrap(),
        cwd,
        "the process keeps its cwd"
    );
}

macro_rules! conformance {
    ($($name:ident),*) => {
        mod overlay_driver {
            $(#[test] fn $name() { super::$name(super::overlay) })*
        }
        mod vfs_driver {
            $(#[test] fn $name() { super::$name(super::vfs) })*
        }
    };
}

conformance!(
    lifecycle,
    usage,
    mounts_and_copy_on_write,
    idmapped_mount,
    many_layers_mount,
    missing_snapshot_errors
);
