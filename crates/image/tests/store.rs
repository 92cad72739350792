//! The ImageStore facade end to end, on both snapshot drivers: import,
//! list/inspect/history/tag, containers sharing an image snapshot, commit
//! with whiteouts, rmi/prune/GC, and bad input leaving the store unchanged.

use std::fs;
use std::path::Path;

use berth_image::changes::Change;
use berth_image::content::Expected;
use berth_image::layer::{ChangeKind, DiffOptions, DiffSource, write_diff};
use berth_image::snapshot::{Driver, MountGuard};
use berth_image::spec::{self, Descriptor};
use berth_image::{
    CommitOptions, Digest, Error, ImageStore, ImportOptions, RemoveEvent, StoreOptions,
};

fn store(dir: &Path, driver: Driver) -> ImageStore {
    let opts = StoreOptions {
        driver: Some(driver),
        rootless: !berth_testutil::is_root(),
        ..Default::default()
    };
    ImageStore::open_with(&dir.join("root"), &dir.join("berth.db"), opts).unwrap()
}

fn busybox_tar() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    berth_testutil::busybox_rootfs(dir.path()).unwrap();
    fs::write(dir.path().join("etc/motd"), "welcome\n").unwrap();
    write_diff(
        DiffSource::Dirs {
            lower: None,
            upper: dir.path(),
        },
        Vec::new(),
        &DiffOptions::default(),
    )
    .unwrap()
    .0
}

fn import(s: &ImageStore, tar: &[u8], tag: &str) -> String {
    let opts = ImportOptions {
        tag: Some(tag.into()),
        changes: vec![Change::parse(r#"CMD ["/bin/sh"]"#).unwrap()],
        created: Some("2024-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    s.import_rootfs_tar(tar, &opts).unwrap()
}

/// Snapshot keys and blob digests: the store's whole state.
fn state(s: &ImageStore) -> (Vec<String>, Vec<Digest>, usize) {
    let snaps = s
        .snapshotter()
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect();
    (snaps, s.content().list().unwrap(), s.list().unwrap().len())
}

fn import_list_inspect_tag(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), driver);
    let tar = busybox_tar();
    let id = import(&s, &tar, "busybox");
    let list = s.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].repo_tags, ["docker.io/library/busybox:latest"]);
    assert_eq!(list[0].short_id(), &id["sha256:".len()..][..12]);
    assert!(list[0].repo_digests[0].starts_with("docker.io/library/busybox@sha256:"));
    assert_eq!(s.resolve("busybox").unwrap(), id);
    assert_eq!(s.resolve("docker.io/library/busybox:latest").unwrap(), id);
    assert_eq!(
        s.resolve(&id.trim_start_matches("sha256:")[..12]).unwrap(),
        id,
        "short id"
    );
    assert!(matches!(s.resolve("nothere"), Err(Error::ImageNotFound(_))));
    let ins = s.inspect("busybox").unwrap();
    assert_eq!(
        ins.config.cmd.as_deref(),
        Some(&["/bin/sh".to_string()][..])
    );
    assert_eq!(ins.root_fs.layers.len(), 1);
    assert_eq!(ins.created.as_deref(), Some("2024-01-01T00:00:00Z"));
    let json = serde_json::to_value(&ins).unwrap();
    assert_eq!(json["RootFS"]["Type"], "layers");
    assert_eq!(json["Id"], id);
    let hist = s.history("busybox").unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].id, id);
    assert_eq!(hist[0].created_by, "berth import");
    s.tag("busybox", "localhost/mine:v1").unwrap();
    assert_eq!(s.resolve("localhost/mine:v1").unwrap(), id);
    assert!(s.tag("busybox", "bad name").is_err());
    // Equal content: equal layer and (with a fixed created time) equal id.
    let again = import(&s, &tar, "busybox:again");
    assert_eq!(again, id);
    assert_eq!(s.list().unwrap().len(), 1);
}

fn containers_share_the_image_snapshot(driver: Driver) {
    if !berth_testutil::is_root() {
        eprintln!("skipped: mounting needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), driver);
    let id = import(&s, &busybox_tar(), "busybox");
    let (m1, m2) = (
        s.prepare_container_rootfs("busybox", "c1").unwrap(),
        s.prepare_container_rootfs(&id, "c2").unwrap(),
    );
    let (p1, p2) = (tmp.path().join("c1"), tmp.path().join("c2"));
    fs::create_dir_all(&p1).unwrap();
    fs::create_dir_all(&p2).unwrap();
    let g1 = MountGuard::new(&m1, &p1).unwrap();
    let g2 = MountGuard::new(&m2, &p2).unwrap();
    fs::write(p1.join("etc/motd"), "changed").unwrap();
    fs::remove_file(p1.join("bin/busybox")).unwrap();
    assert_eq!(
        fs::read_to_string(p2.join("etc/motd")).unwrap(),
        "welcome\n"
    );
    assert!(p2.join("bin/busybox").exists());
    drop(g2);
    assert_eq!(s.list().unwrap()[0].containers, 2);
    // In use: rmi refuses, prune -a keeps it.
    assert!(matches!(
        s.remove("busybox", false),
        Err(Error::Conflict(_))
    ));
    assert!(s.prune(true).unwrap().deleted.is_empty());
    // Commit the deletion: the new image hides the file with a whiteout.
    let changes = s.container_changes("c1").unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.kind == ChangeKind::Deleted && c.path == "/bin/busybox"),
        "{changes:?}"
    );
    drop(g1);
    let opts = CommitOptions {
        tag: Some("committed".into()),
        message: Some("removed busybox".into()),
        changes: vec![Change::parse("ENV A=1").unwrap()],
        ..Default::default()
    };
    let new_id = s.commit_container("c1", &opts).unwrap();
    let (m, cfg) = s.read_image(&new_id).unwrap();
    assert_eq!(m.layers.len(), 2);
    assert_eq!(cfg.config.unwrap().env.unwrap(), ["A=1"]);
    let top = s.content().reader(&m.layers[1].digest).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(top));
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"bin/.wh.busybox".to_string()), "{names:?}");
    let m3 = s.prepare_container_rootfs("committed", "c3").unwrap();
    let p3 = tmp.path().join("c3");
    fs::create_dir_all(&p3).unwrap();
    let g3 = MountGuard::new(&m3, &p3).unwrap();
    assert!(
        !p3.join("bin/busybox").exists(),
        "whiteout hides the lower file"
    );
    assert_eq!(fs::read_to_string(p3.join("etc/motd")).unwrap(), "changed");
    drop(g3);
    assert_eq!(
        s.history("committed").unwrap()[0].comment,
        "removed busybox"
    );
    for c in ["c1", "c2", "c3"] {
        s.release_container(c).unwrap();
    }
    assert_eq!(
        s.list()
            .unwrap()
            .iter()
            .map(|i| i.containers)
            .sum::<usize>(),
        0
    );
}

fn rmi_prune_and_gc(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), driver);
    let tar = busybox_tar();
    let id = import(&s, &tar, "busybox");
    s.tag("busybox", "other:1").unwrap();
    // One of two tags: only untagged.
    assert_eq!(
        s.remove("other:1", false).unwrap(),
        [RemoveEvent::Untagged("docker.io/library/other:1".into())]
    );
    s.tag("busybox", "other:1").unwrap();
    // By id with two tags: needs force.
    assert!(matches!(s.remove(&id, false), Err(Error::Conflict(_))));
    // A second image sharing the layer.
    let opts = ImportOptions {
        tag: Some("second".into()),
        created: Some("2025-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    let second = s.import_rootfs_tar(&tar[..], &opts).unwrap();
    assert_ne!(second, id);
    let (_, blobs_before, _) = state(&s);
    let ev = s.remove(&id, true).unwrap();
    assert!(ev.contains(&RemoveEvent::Deleted(id.clone())), "{ev:?}");
    // The shared layer and snapshot survive; the first image's config and
    // manifest are gone.
    let (snaps, blobs, n) = state(&s);
    assert_eq!(n, 1);
    assert_eq!(
        snaps.len(),
        1,
        "layer snapshot shared with the second image"
    );
    assert_eq!(
        blobs.len(),
        blobs_before.len() - 2,
        "config and manifest of the removed image freed"
    );
    assert!(s.content().has(&Digest::parse(&second).unwrap()));
    // Dangling prune keeps tagged images; prune -a removes them.
    assert!(s.prune(false).unwrap().deleted.is_empty());
    let report = s.prune(true).unwrap();
    assert_eq!(report.deleted, [second]);
    assert!(report.gc.bytes_freed > 0);
    let (snaps, blobs, n) = state(&s);
    assert!(
        snaps.is_empty() && blobs.is_empty() && n == 0,
        "{snaps:?} {blobs:?}"
    );
}

fn bad_input_leaves_the_store_unchanged(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), driver);
    import(&s, &busybox_tar(), "busybox");
    let before = state(&s);
    // A hostile rootfs tarball.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..9].copy_from_slice(b"../escape");
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let err = s
        .import_rootfs_tar(&b.into_inner().unwrap()[..], &ImportOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("../escape"), "{err}");
    assert_eq!(state(&s).0, before.0, "no snapshot left behind");
    // A malformed manifest.
    let bad = s
        .ingest(br#"{"schemaVersion":2,"config":"nope"}"#, None)
        .unwrap();
    let err = s.register_image(&bad, Some("bad")).unwrap_err();
    assert!(err.to_string().contains(&bad.to_string()), "{err}");
    // A config whose diff id does not match the layer.
    let layer = busybox_tar();
    let layer_d = s.ingest(&layer, None).unwrap();
    let wrong = Digest::sha256_of(b"not the layer");
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{wrong}"]}}}}"#
    );
    let cfg_d = s.ingest(cfg.as_bytes(), None).unwrap();
    let m = spec::Manifest {
        schema_version: 2,
        media_type: Some(spec::OCI_MANIFEST.into()),
        config: Descriptor::new(spec::OCI_CONFIG, cfg_d, cfg.len() as u64),
        layers: vec![Descriptor::new(
            spec::OCI_LAYER,
            layer_d.clone(),
            layer.len() as u64,
        )],
        annotations: None,
    };
    let m_d = s.ingest(&serde_json::to_vec(&m).unwrap(), None).unwrap();
    let err = s.register_image(&m_d, Some("mismatch")).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&layer_d.to_string()), "{err}");
    // A missing layer blob.
    let missing = Digest::sha256_of(b"missing");
    let m2 = spec::Manifest {
        layers: vec![Descriptor::new(spec::OCI_LAYER, missing.clone(), 3)],
        ..m
    };
    let m2_d = s.ingest(&serde_json::to_vec(&m2).unwrap(), None).unwrap();
    assert!(matches!(s.register_image(&m2_d, None), Err(Error::BlobNotFound(d)) if d == missing));
    // A truncated blob is refused at ingest.
    let err = s.ingest(
        &layer[..100],
        Some(Expected {
            digest: layer_d.clone(),
            size: Some(layer.len() as u64),
        }),
    );
    assert!(matches!(err, Err(Error::SizeMismatch { .. })));
    let after = state(&s);
    assert_eq!(
        (after.0, after.2),
        (before.0, before.2),
        "snapshots and images unchanged"
    );
    // The stray blobs of the failed registrations are garbage.
    s.gc().unwrap();
    assert_eq!(state(&s).1, before.1);
}

fn filters_and_indexes(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), driver);
    let tar = busybox_tar();
    let old = import(&s, &tar, "busybox:old");
    let opts = ImportOptions {
        tag: Some("localhost/app:1".into()),
        created: Some("2025-01-01T00:00:00Z".into()),
        changes: vec![Change::parse("LABEL team=infra").unwrap()],
        ..Default::default()
    };
    let new = s.import_rootfs_tar(&tar[..], &opts).unwrap();
    let ids = |f: &[&str]| {
        s.list_filtered(f)
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&["reference=busybox"]), std::slice::from_ref(&old));
    assert_eq!(ids(&["label=team=infra"]), std::slice::from_ref(&new));
    assert_eq!(ids(&["since=busybox:old"]), std::slice::from_ref(&new));
    assert_eq!(ids(&["before=localhost/app:1"]), std::slice::from_ref(&old));
    assert!(ids(&["dangling=true"]).is_empty());
    assert!(s.list_filtered(&["nope=1"]).is_err());
    // A multi-platform index: the linux/amd64 entry is picked; the index
    // digest is what the image records (its repo digest) and GC keeps it.
    let (m, _) = s.read_image(&new).unwrap();
    let rec = s.image(&new).unwrap();
    let amd = Descriptor {
        platform: Some(spec::Platform::linux_amd64()),
        ..Descriptor::new(
            spec::OCI_MANIFEST,
            Digest::parse(&rec.manifest_digest).unwrap(),
            s.content()
                .size(&Digest::parse(&rec.manifest_digest).unwrap())
                .unwrap(),
        )
    };
    let arm = Descriptor {
        platform: Some(spec::Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            ..Default::default()
        }),
        ..Descriptor::new(
            spec::OCI_MANIFEST,
            Digest::sha256_of(b"absent arm64 manifest"),
            10,
        )
    };
    let index = spec::Index {
        schema_version: 2,
        media_type: Some(spec::OCI_INDEX.into()),
        manifests: vec![arm, amd],
        annotations: None,
    };
    let idx_d = s
        .ingest(&serde_json::to_vec(&index).unwrap(), None)
        .unwrap();
    assert_eq!(
        s.register_image(&idx_d, Some("localhost/multi:1")).unwrap(),
        new
    );
    assert_eq!(
        s.inspect("localhost/multi:1").unwrap().repo_digests,
        [
            format!("localhost/app@{idx_d}"),
            format!("localhost/multi@{idx_d}")
        ]
    );
    s.gc().unwrap();
    assert!(s.content().has(&idx_d));
    assert!(s.content().has(&m.layers[0].digest));
}

fn concurrent_stores_share_one_database(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let tar = std::sync::Arc::new(busybox_tar());
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let (dir, tar) = (tmp.path().to_path_buf(), tar.clone());
            std::thread::spawn(move || {
                let s = store(&dir, driver);
                let id = import(&s, &tar, &format!("localhost/race:{i}"));
                s.gc().unwrap();
                id
            })
        })
        .collect();
    let ids: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "equal content, one image: {ids:?}"
    );
    let s = store(tmp.path(), driver);
    assert_eq!(s.list().unwrap()[0].repo_tags.len(), 3);
    assert_eq!(
        s.snapshotter().list().unwrap().len(),
        1,
        "one shared layer snapshot"
    );
    let (m, _) = s.read_image(&ids[0]).unwrap();
    assert!(s.content().has(&m.layers[0].digest));
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn recover_cleans_crash_leftovers(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), driver);
    let id = import(&s, &busybox_tar(), "busybox");
    let before = state(&s);
    let pid = dead_pid();
    // A crashed extraction, a crashed pull's lease and blob, a half-written
    // ingest file and a snapshot directory without a record.
    s.snapshotter()
        .prepare(&format!("extract:{pid}:0"), None)
        .unwrap();
    s.db()
        .add_lease(
            &format!("op:{pid}:0"),
            &berth_image::metadata::LeaseTarget::Content("*".into()),
        )
        .unwrap();
    let stray = s.ingest(b"pulled but never registered", None).unwrap();
    let ingest = tmp.path().join(format!("root/content/ingest/{pid}-0-0"));
    fs::write(&ingest, "partial").unwrap();
    let orphan = tmp.path().join("root/snapshots/0123456789abcdef");
    fs::create_dir_all(orphan.join("fs")).unwrap();
    let old = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, &orphan, &old, rustix::fs::AtFlags::empty()).unwrap();
    let report = s.recover().unwrap();
    assert_eq!(report.ingest_removed, 1);
    assert_eq!(report.orphan_snapshot_dirs, 1);
    assert!(report.gc.blobs_removed.contains(&stray), "{report:?}");
    assert!(!ingest.exists() && !orphan.exists());
    assert_eq!(state(&s), before, "only the leftovers went");
    assert_eq!(s.resolve("busybox").unwrap(), id);
}

fn truncated_compressed_layer_is_named(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), driver);
    let tar = busybox_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let cut = &gz[..gz.len() / 2];
    let layer_d = s.ingest(cut, None).unwrap();
    let diff_id = Digest::sha256_of(&tar);
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let cfg_d = s.ingest(cfg.as_bytes(), None).unwrap();
    let m = spec::Manifest {
        schema_version: 2,
        media_type: Some(spec::OCI_MANIFEST.into()),
        config: Descriptor::new(spec::OCI_CONFIG, cfg_d, cfg.len() as u64),
        layers: vec![Descriptor::new(
            spec::OCI_LAYER_GZIP,
            layer_d.clone(),
            cut.len() as u64,
        )],
        annotations: None,
    };
    let m_d = s.ingest(&serde_json::to_vec(&m).unwrap(), None).unwrap();
    let err = s.register_image(&m_d, Some("truncated")).unwrap_err();
    assert!(err.to_string().contains(&layer_d.to_string()), "{err}");
    assert!(s.snapshotter().list().unwrap().is_empty());
    assert!(s.list().unwrap().is_empty());
}

fn derived_images_from_scratch_and_config_only(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), driver);
    // FROM scratch, then a config-only step (ENV), as a builder would.
    let opts = CommitOptions {
        created_by: Some("ENV A=1".into()),
        changes: vec![Change::parse("ENV A=1").unwrap()],
        tag: Some("localhost/scratchy:1".into()),
        ..Default::default()
    };
    let id = s.derive_image(None, None, &opts).unwrap();
    let (m, cfg) = s.read_image(&id).unwrap();
    assert!(m.layers.is_empty());
    assert_eq!(cfg.config.unwrap().env.unwrap(), ["A=1"]);
    let hist = s.history("localhost/scratchy:1").unwrap();
    assert!(hist[0].empty_layer && hist[0].created_by == "ENV A=1");
    // A RUN-like step: a snapshot on the image gets a file, becomes a layer.
    let base = import(&s, &busybox_tar(), "busybox");
    s.snapshotter()
        .prepare("build-step", s.image(&base).unwrap().chain_id.as_deref())
        .unwrap();
    let (dir, _) = s.snapshotter().apply_target("build-step").unwrap();
    fs::write(dir.join("built"), "artifact").unwrap();
    let step = CommitOptions {
        created_by: Some("RUN make".into()),
        ..Default::default()
    };
    let child = s
        .derive_image(Some(&base), Some("build-step"), &step)
        .unwrap();
    s.snapshotter().remove("build-step").unwrap();
    let (m, cfg) = s.read_image(&child).unwrap();
    assert_eq!((m.layers.len(), cfg.rootfs.diff_ids.len()), (2, 2));
    let top = s.image(&child).unwrap().chain_id.unwrap();
    let (_, parent_cfg) = s.read_image(&base).unwrap();
    assert_eq!(
        s.snapshotter().stat(&top).unwrap().parent,
        Some(berth_image::chain_id(None, &parent_cfg.rootfs.diff_ids[0]))
    );
    let ch = s.snapshotter().changes(&top).unwrap();
    assert!(ch.iter().any(|c| c.path == "/built"), "{ch:?}");
}

fn operation_leases_protect_a_pull_in_progress(driver: Driver) {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path(), driver);
    let tar = busybox_tar();
    // A pull: blobs land first, the image is registered last.
    let op = s.begin_operation().unwrap();
    let layer = s.ingest(&tar, None).unwrap();
    let diff_id = Digest::sha256_of(&tar);
    let cfg = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    let cfg_d = s.ingest(cfg.as_bytes(), None).unwrap();
    assert!(
        s.gc().unwrap().blobs_removed.is_empty(),
        "collector keeps the pull's blobs"
    );
    let m = spec::Manifest {
        schema_version: 2,
        media_type: Some(spec::DOCKER_MANIFEST.into()),
        config: Descriptor::new(spec::DOCKER_CONFIG, cfg_d, cfg.len() as u64),
        layers: vec![Descriptor::new(
            spec::DOCKER_LAYER_TAR,
            layer.clone(),
            tar.len() as u64,
        )],
        annotations: None,
    };
    let mut w = s.content().writer(None).unwrap();
    std::io::Write::write_all(&mut w, &serde_json::to_vec(&m).unwrap()).unwrap();
    let (m_d, _) = w.commit().unwrap();
    let id = s
        .register_image(&m_d, Some("registry.local:5000/pulled:1"))
        .unwrap();
    drop(op);
    assert!(
        s.gc().unwrap().blobs_removed.is_empty(),
        "registered: reachable from the image"
    );
    assert_eq!(
        s.inspect("registry.local:5000/pulled:1")
            .unwrap()
            .manifest_media_type,
        spec::DOCKER_MANIFEST
    );
    // Without a lease, unreferenced blobs go.
    let stray = s.ingest(b"stray", None).unwrap();
    assert_eq!(s.gc().unwrap().blobs_removed, [stray]);
    assert_eq!(s.resolve("registry.local:5000/pulled:1").unwrap(), id);
}

macro_rules! both_drivers {
    ($($name:ident),*) => {
        mod overlay {
            $(#[test] fn $name() { if berth_testutil::is_root() { super::$name(berth_image::snapshot::Driver::Overlay) } })*
        }
        mod vfs {
            $(#[test] fn $name() { super::$name(berth_image::snapshot::Driver::Vfs) })*
        }
    };
}

both_drivers!(
    import_list_inspect_tag,
    containers_share_the_image_snapshot,
    rmi_prune_and_gc,
    bad_input_leaves_the_store_unchanged,
    filters_and_indexes,
    concurrent_stores_share_one_database,
    recover_cleans_crash_leftovers,
    truncated_compressed_layer_is_named,
    derived_images_from_scratch_and_config_only,
    operation_leases_protect_a_pull_in_progress
);
