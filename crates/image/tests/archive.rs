//! Archives: interop with podman and skopeo (images they write load into
//! berth with the same ids; images berth saves load into podman and run),
//! several images per archive, determinism, and hostile archives.

use std::fs;
use std::path::Path;
use std::process::Command;

use berth_image::layer::{DiffOptions, DiffSource, write_diff};
use berth_image::snapshot::Driver;
use berth_image::{ArchiveFormat, Error, ImageStore, ImportOptions, StoreOptions};

fn store(dir: &Path) -> ImageStore {
    let driver = if berth_testutil::is_root() {
        Driver::Overlay
    } else {
        Driver::Vfs
    };
    let opts = StoreOptions {
        driver: Some(driver),
        rootless: !berth_testutil::is_root(),
        ..Default::default()
    };
    ImageStore::open_with(&dir.join("root"), &dir.join("berth.db"), opts).unwrap()
}

fn rootfs_tar(extra: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    berth_testutil::busybox_rootfs(dir.path()).unwrap();
    fs::write(dir.path().join("etc/extra"), extra).unwrap();
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
        created: Some("2024-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    s.import_rootfs_tar(tar, &opts).unwrap()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool(name: &str) -> bool {
    let ok = berth_testutil::is_root()
        && Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: needs root and {name}");
    }
    ok
}

/// Removes a podman image on drop.
struct PodmanImage(String);

impl Drop for PodmanImage {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn loads_what_podman_saves() {
    if !tool("podman") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let name = format!(
        "localhost/{}:v1",
        berth_testutil::unique_name("berth-podman-save")
    );
    let tarfile = tmp.path().join("rootfs.tar");
    fs::write(&tarfile, rootfs_tar("from podman")).unwrap();
    let _guard = PodmanImage(name.clone());
    run(Command::new("podman")
        .args(["import", "-q"])
        .arg(&tarfile)
        .arg(&name));
    let podman_id =
        run(Command::new("podman").args(["image", "inspect", "--format", "{{.Id}}", &name]))
            .trim()
            .to_string();
    for format in ["docker-archive", "oci-archive"] {
        let archive = tmp.path().join(format!("{format}.tar"));
        run(Command::new("podman")
            .args(["save", "-q", "--format", format, "-o"])
            .arg(&archive)
            .arg(&name));
        let dir = tmp.path().join(format);
        let s = store(&dir);
        let loaded = s.load(fs::File::open(&archive).unwrap()).unwrap();
        assert_eq!(loaded.len(), 1, "{format}");
        assert_eq!(
            loaded[0].id,
            format!("sha256:{podman_id}"),
            "{format}: same image id as podman"
        );
        assert_eq!(loaded[0].tags, std::slice::from_ref(&name), "{format}");
        assert_eq!(s.resolve(&name).unwrap(), loaded[0].id);
        let chain = s.inspect(&name).unwrap().chain_id.unwrap();
        assert!(
            s.snapshotter().usage(&chain).unwrap().size > 500_000,
            "{format}: layer unpacked"
        );
    }
}

#[test]
fn loads_skopeo_oci_layouts_with_zstd() {
    if !tool("podman") || !tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s0 = store(&tmp.path().join("src"));
    import(&s0, &rootfs_tar("skopeo"), "localhost/skopeo-src:v1");
    let archive = tmp.path().join("d.tar");
    s0.save(
        &["localhost/skopeo-src:v1"],
        ArchiveFormat::DockerArchive,
        fs::File::create(&archive).unwrap(),
    )
    .unwrap();
    let layout = tmp.path().join("layout");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--dest-compress-format", "zstd"])
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("oci:{}:latest", layout.display())));
    let index = fs::read_to_string(layout.join("index.json")).unwrap();
    let s = store(&tmp.path().join("dst"));
    let loaded = s
        .load_oci_layout(&layout, Some("localhost/from-layout:z"))
        .unwrap();
    assert_eq!(loaded.len(), 1, "{index}");
    assert_eq!(
        loaded[0].id,
        s0.resolve("localhost/skopeo-src:v1").unwrap(),
        "same config, same id"
    );
    let (m, _) = s.read_image(&loaded[0].id).unwrap();
    assert_eq!(m.layers[0].media_type, berth_image::spec::OCI_LAYER_ZSTD);
    assert_eq!(s.resolve("localhost/from-layout:z").unwrap(), loaded[0].id);
}

#[test]
fn podman_loads_and_runs_what_berth_saves() {
    if !tool("podman") || !tool("runc") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    for (format, fmt_name) in [
        (ArchiveFormat::DockerArchive, "docker"),
        (ArchiveFormat::OciArchive, "oci"),
    ] {
        let name = format!(
            "localhost/{}:v1",
            berth_testutil::unique_name(&format!("berth-save-{fmt_name}"))
        );
        import(&s, &rootfs_tar(fmt_name), &name);
        let archive = tmp.path().join(format!("{fmt_name}.tar"));
        s.save(&[&name], format, fs::File::create(&archive).unwrap())
            .unwrap();
        let _guard = PodmanImage(name.clone());
        run(Command::new("podman")
            .args(["load", "-q", "-i"])
            .arg(&archive));
        let podman_id =
            run(Command::new("podman").args(["image", "inspect", "--format", "{{.Id}}", &name]));
        assert_eq!(
            format!("sha256:{}", podman_id.trim()),
            s.resolve(&name).unwrap(),
            "{fmt_name}: same id in podman"
        );
        // This host needs runc, explicit rlimits and no network for podman run.
        let out = run(Command::new("podman").args([
            "--runtime",
            "runc",
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            &name,
            "/bin/busybox",
            "cat",
            "/etc/extra",
        ]));
        assert_eq!(out, fmt_name, "{fmt_name}");
    }
}

#[test]
fn several_images_round_trip_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(&tmp.path().join("a"));
    let base = rootfs_tar("one");
    let a = import(&s, &base, "localhost/multi-a:1");
    s.tag("localhost/multi-a:1", "localhost/multi-a:2").unwrap();
    let b = import(&s, &rootfs_tar("two"), "busybox:multi");
    for format in [ArchiveFormat::DockerArchive, ArchiveFormat::OciArchive] {
        let refs = [&a[..], "busybox:multi"];
        let first = s.save(&refs, format, Vec::new()).unwrap();
        let second = s.save(&refs, format, Vec::new()).unwrap();
        assert_eq!(first, second, "{format:?}: deterministic");
        let dst = tempfile::tempdir().unwrap();
        let s2 = store(dst.path());
        let mut loaded = s2.load(&first[..]).unwrap();
        loaded.sort_by(|x, y| x.id.cmp(&y.id));
        let mut want = vec![
            (
                a.clone(),
                vec!["docker.io/library/busybox:multi".to_string()],
            ),
            (
                b.clone(),
                vec!["docker.io/library/busybox:multi".to_string()],
            ),
        ];
        want[0].1 = vec!["localhost/multi-a:1".into(), "localhost/multi-a:2".into()];
        want.sort();
        let got: Vec<(String, Vec<String>)> = loaded
            .into_iter()
            .map(|l| {
                let mut t = l.tags;
                t.sort();
                (l.id, t)
            })
            .collect();
        assert_eq!(got, want, "{format:?}");
        assert_eq!(s2.list().unwrap().len(), 2);
    }
    // gzip-compressed archives load too.
    let saved = s
        .save(&["busybox:multi"], ArchiveFormat::DockerArchive, Vec::new())
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &saved).unwrap();
    let dst = tempfile::tempdir().unwrap();
    assert_eq!(
        store(dst.path()).load(&gz.finish().unwrap()[..]).unwrap()[0].id,
        b
    );
}

fn archive(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_and_broken_archives_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let reg = tar::EntryType::Regular;
    let manifest = br#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["evil.tar"]}]"#;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (archive(&[("../escape", reg, b"x", "")]), "traversal"),
        (archive(&[("manifest.json", reg, manifest, ""), ("c.json", tar::EntryType::Symlink, b"", "/etc/passwd")]), "c.json"),
        (archive(&[("junk", reg, b"x", "")]), "neither manifest.json"),
        (archive(&[("manifest.json", reg, b"{not json", "")]), "manifest.json"),
        (
            archive(&[
                ("manifest.json", reg, br#"[{"Config":"0000000000000000000000000000000000000000000000000000000000000000.json","Layers":[]}]"#, ""),
                ("0000000000000000000000000000000000000000000000000000000000000000.json", reg, b"{}", ""),
            ]),
            "digest mismatch",
        ),
        (
            archive(&[("oci-layout", reg, br#"{"imageLayoutVersion":"1.0.0"}"#, ""), ("index.json", reg, br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":3}]}"#, "")]),
            "sha256:1111",
        ),
    ];
    for (bytes, needle) in cases {
        let err = s.load(&bytes[..]).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
        assert!(!matches!(err, Error::ImageNotFound(_)));
    }
    assert!(s.list().unwrap().is_empty());
    assert!(s.snapshotter().list().unwrap().is_empty());
    assert!(!Path::new("/escape").exists());
}
