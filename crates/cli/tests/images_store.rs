//! `berth import/images/tag/inspect/history/rmi/prune/save/load` through the
//! real binary, each test with its own `--root`.

mod images_util;

use images_util::{Berth, busybox_tar, import_busybox};
use std::fs;

#[test]
fn import_list_tag_inspect_history_remove() {
    let b = Berth::new();
    let tmp = tempfile::tempdir().unwrap();
    let tar = busybox_tar(tmp.path());
    let id = b
        .ok(&[
            "import",
            tar.to_str().unwrap(),
            "bb:1",
            "-c",
            "CMD [\"sh\"]",
            "-c",
            "LABEL tier=base",
            "-m",
            "first",
        ])
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    let table = b.ok(&["images"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("REPOSITORY"));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("bb ") && row.contains(&id[7..19]),
        "{table}"
    );
    b.ok(&["tag", "bb:1", "localhost/other/bb:2", "bb:3"]);
    let fmt = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let mut names: Vec<&str> = fmt.lines().map(|l| l.split(' ').next().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["bb:1", "bb:3", "localhost/other/bb:2"]);
    assert_eq!(b.ids(), vec![id.clone()], "-q lists each image once");
    let filtered = b.ok(&[
        "images",
        "--filter",
        "reference=bb:3",
        "--format",
        "{{.Tag}}",
    ]);
    assert_eq!(filtered.trim(), "3");
    assert_eq!(
        b.ok(&["images", "--filter", "label=tier=base", "-q"])
            .trim(),
        &id[7..19]
    );
    assert_eq!(
        b.ok(&["images", "--filter", "dangling=true", "-q"]).trim(),
        ""
    );
    let inspect = b.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}} {{json .Config.Cmd}}",
        "bb:1",
    ]);
    assert_eq!(inspect.trim(), format!("{id} [\"sh\"]"));
    let doc: serde_json::Value =
        serde_json::from_str(&b.ok(&["image", "inspect", "bb:3"])).unwrap();
    assert_eq!(doc[0]["RepoTags"].as_array().unwrap().len(), 3);
    let hist = b.ok(&["history", "bb:1"]);
    assert!(
        hist.contains("berth import") && hist.contains("first"),
        "{hist}"
    );
    // rmi of one tag only untags; the last tag deletes.
    let out = b.ok(&["rmi", "bb:3"]);
    assert_eq!(out.trim(), "Untagged: bb:3");
    let err = b.fails(&["rmi", "nosuch:1"]);
    assert!(err.contains("nosuch"), "{err}");
    let out = b.ok(&["rmi", "bb:1", "localhost/other/bb:2"]);
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert!(b.ids().is_empty());
}

#[test]
fn prune_removes_dangling_then_all() {
    let b = Berth::new();
    let id = import_busybox(&b, "keep:1");
    // A second, untagged image: the same content with another message.
    let tmp = tempfile::tempdir().unwrap();
    let tar = busybox_tar(tmp.path());
    let dangling = b
        .ok(&["import", tar.to_str().unwrap(), "-m", "untagged"])
        .trim()
        .to_string();
    assert_eq!(b.ids().len(), 2);
    let out = b.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    assert_eq!(b.ids(), vec![id.clone()]);
    let out = b.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: keep:1"), "{out}");
    assert!(b.ids().is_empty());
}

#[test]
fn save_and_load_both_formats_with_several_images() {
    let a = Berth::new();
    let id1 = import_busybox(&a, "one:1");
    let tmp = tempfile::tempdir().unwrap();
    let tar = busybox_tar(tmp.path());
    let id2 = a
        .ok(&["import", tar.to_str().unwrap(), "two:2", "-c", "ENV X=1"])
        .trim()
        .to_string();
    for format in ["docker-archive", "oci-archive"] {
        let archive = tmp.path().join(format!("{format}.tar"));
        a.ok(&[
            "save",
            "--format",
            format,
            "-o",
            archive.to_str().unwrap(),
            "one:1",
            "two:2",
        ]);
        let b = Berth::new();
        let out = b.ok(&["load", "-i", archive.to_str().unwrap()]);
        assert!(
            out.contains("Loaded image: one:1") && out.contains("Loaded image: two:2"),
            "{format}: {out}"
        );
        let mut want = vec![id1.clone(), id2.clone()];
        want.sort();
        assert_eq!(
            b.ids(),
            want,
            "{format}: same image ids after the round trip"
        );
        // The loaded layers unpack and can be saved again.
        let again = tmp.path().join(format!("{format}-again.tar"));
        b.ok(&["save", "-o", again.to_str().unwrap(), "two:2"]);
        assert!(fs::metadata(&again).unwrap().len() > 100_000);
    }
    let err = a.fails(&["save", "--format", "zip", "-o", "/dev/null", "one:1"]);
    assert!(err.contains("zip"), "{err}");
}

#[test]
fn bad_archives_are_named_and_leave_the_store_unchanged() {
    let a = Berth::new();
    import_busybox(&a, "one:1");
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("good.tar");
    a.ok(&["save", "-o", archive.to_str().unwrap(), "one:1"]);
    let bytes = fs::read(&archive).unwrap();

    let b = Berth::new();
    let before = b.ids();
    // Truncated archive.
    let truncated = tmp.path().join("truncated.tar");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = b.fails(&["load", "-i", truncated.to_str().unwrap()]);
    assert!(err.contains("archive") && err.contains("EOF"), "{err}");
    // Not an archive at all.
    let junk = tmp.path().join("junk.tar");
    fs::write(&junk, b"this is not a tar archive at all").unwrap();
    let err = b.fails(&["load", "-i", junk.to_str().unwrap()]);
    assert!(err.contains("loading the archive"), "{err}");
    // A hostile rootfs tarball for import: an entry climbing out with `..`.
    let hostile = tmp.path().join("hostile.tar");
    {
        let f = fs::File::create(&hostile).unwrap();
        let mut t = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        let data = b"owned";
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`; write the raw name.
        h.as_old_mut().name[..12].copy_from_slice(b"../../escape");
        h.set_cksum();
        t.append(&h, &data[..]).unwrap();
        t.finish().unwrap();
    }
    let err = b.fails(&["import", hostile.to_str().unwrap(), "evil:1"]);
    assert!(err.contains("escape"), "names the culprit entry: {err}");
    assert!(!tmp.path().join("escape").exists());
    assert_eq!(b.ids(), before, "store unchanged");
}

#[test]
fn save_to_stdout_and_load_from_stdin() {
    let a = Berth::new();
    let id = import_busybox(&a, "pipe:1");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("piped.tar");
    let out = fs::File::create(&path).unwrap();
    let st = a.cmd(&["save", "pipe:1"]).stdout(out).status().unwrap();
    assert!(st.success());
    let b = Berth::new();
    let o = b
        .cmd(&["load", "-q"])
        .stdin(fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "docker.io/library/pipe:1"
    );
    assert_eq!(b.ids(), vec![id]);
}
