//! Layer apply/diff against real files: round trips with every file kind,
//! whiteouts both ways, determinism, and hostile layers.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use berth_image::error::Error;
use berth_image::layer::{
    self, ApplyOptions, ChangeKind, DiffOptions, DiffSource, Limits, WhiteoutMode, changes,
    write_diff,
};

fn tar_of(src: DiffSource<'_>) -> Vec<u8> {
    write_diff(src, Vec::new(), &DiffOptions::default())
        .unwrap()
        .0
}

/// Appends an entry whose name (and link name) bytes are written verbatim,
/// the way a hostile tool would, bypassing the tar crate's own checks.
fn raw(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn build(f: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().unwrap()
}

/// Options for the current user: unprivileged runs cannot chown to the
/// tar's 0:0, so they apply in rootless mode.
fn base() -> ApplyOptions {
    ApplyOptions {
        rootless: !berth_testutil::is_root(),
        ..Default::default()
    }
}

fn opts(mode: WhiteoutMode) -> ApplyOptions {
    ApplyOptions {
        whiteouts: mode,
        ..base()
    }
}

fn rich_tree(root: &Path) {
    berth_testutil::busybox_rootfs(root).unwrap();
    fs::write(root.join("etc/hello"), "hello\n").unwrap();
    fs::hard_link(root.join("etc/hello"), root.join("etc/hello-link")).unwrap();
    symlink("/etc/hello", root.join("etc/abs-link")).unwrap();
    fs::write(root.join("bin/suid"), "x").unwrap();
    fs::set_permissions(root.join("bin/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir(root.join("sticky")).unwrap();
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        0o644.into(),
        0,
    )
    .unwrap();
    if berth_testutil::is_root() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("dev/null"),
            rustix::fs::FileType::CharacterDevice,
            0o666.into(),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        std::os::unix::fs::chown(root.join("etc/hello"), Some(1000), Some(1001)).unwrap();
    }
    rustix::fs::setxattr(
        root.join("etc/hello"),
        "user.berth",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let mut sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    std::io::Seek::seek(&mut sparse, std::io::SeekFrom::Start(4 << 20)).unwrap();
    sparse.write_all(b"middle").unwrap();
    drop(sparse);
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        root.join("etc/hello"),
        &t,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    rustix::fs::utimensat(
        rustix::fs::CWD,
        root.join("etc"),
        &t,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
}

/// Tar keeps whole-second mtimes: truncate the source's so a round trip
/// can be compared exactly.
fn whole_second_mtimes(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            whole_second_mtimes(&p);
        }
        let ts = rustix::fs::Timespec {
            tv_sec: m.mtime(),
            tv_nsec: 0,
        };
        let t = rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &t,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

#[test]
fn round_trip_preserves_every_kind_of_file() {
    let src = tempfile::tempdir().unwrap();
    rich_tree(src.path());
    whole_second_mtimes(src.path());
    let tar = tar_of(DiffSource::Dirs {
        lower: None,
        upper: src.path(),
    });
    let dst = tempfile::tempdir().unwrap();
    let stats = layer::apply(&tar[..], dst.path(), &opts(WhiteoutMode::Delete)).unwrap();
    assert_eq!(stats.diff_id, berth_image::Digest::sha256_of(&tar));
    assert_eq!(stats.tar_size, tar.len() as u64);
    let d = dst.path();
    assert_eq!(fs::read_to_string(d.join("etc/hello")).unwrap(), "hello\n");
    let (a, b) = (
        fs::metadata(d.join("etc/hello")).unwrap(),
        fs::metadata(d.join("etc/hello-link")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard link kept");
    assert_eq!(a.mtime(), 1_000_000_000);
    assert_eq!(
        fs::metadata(d.join("etc")).unwrap().mtime(),
        1_000_000_000,
        "dir mtime restored after children"
    );
    assert_eq!(
        fs::read_link(d.join("etc/abs-link")).unwrap(),
        Path::new("/etc/hello")
    );
    assert_eq!(
        fs::metadata(d.join("bin/suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::metadata(d.join("sticky")).unwrap().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::symlink_metadata(d.join("fifo")).unwrap().mode() & libc::S_IFMT,
        libc::S_IFIFO
    );
    let mut v = [0u8; 8];
    let n = rustix::fs::getxattr(d.join("etc/hello"), "user.berth", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"v");
    let sparse = fs::metadata(d.join("sparse")).unwrap();
    assert_eq!(sparse.len(), 8 << 20);
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "sparse file stays sparse: {} blocks",
        sparse.blocks()
    );
    if berth_testutil::is_root() {
        assert_eq!((a.uid(), a.gid()), (1000, 1001));
        assert_eq!(
            fs::metadata(d.join("dev/null")).unwrap().rdev(),
            rustix::fs::makedev(1, 3)
        );
    }
    // Nothing differs between source and result, as berth's own diff sees it.
    let diff = changes(
        DiffSource::Dirs {
            lower: Some(src.path()),
            upper: d,
        },
        &[],
    )
    .unwrap();
    assert!(diff.is_empty(), "{diff:?}");
}

#[test]
fn equal_trees_give_equal_digests() {
    let a = tempfile::tempdir().unwrap();
    rich_tree(a.path());
    let t1 = tar_of(DiffSource::Dirs {
        lower: None,
        upper: a.path(),
    });
    let b = tempfile::tempdir().unwrap();
    layer::apply(&t1[..], b.path(), &opts(WhiteoutMode::Delete)).unwrap();
    let t2 = tar_of(DiffSource::Dirs {
        lower: None,
        upper: b.path(),
    });
    assert_eq!(
        berth_image::Digest::sha256_of(&t1),
        berth_image::Digest::sha256_of(&t2)
    );
    // Sorted: each directory before its contents, names in byte order.
    let mut ar = tar::Archive::new(&t1[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    let bin = names.iter().position(|n| n == "bin/").unwrap();
    assert!(names.iter().position(|n| n == "bin/busybox").unwrap() > bin);
}

#[test]
fn vfs_whiteouts_and_opaque_dirs_delete() {
    let dir = tempfile::tempdir().unwrap();
    let base = build(|b| {
        raw(b, b"a/", tar::EntryType::Directory, b"", b"");
        raw(b, b"a/keep", tar::EntryType::Regular, b"", b"1");
        raw(b, b"a/gone", tar::EntryType::Regular, b"", b"2");
        raw(b, b"o/", tar::EntryType::Directory, b"", b"");
        raw(b, b"o/old", tar::EntryType::Regular, b"", b"3");
    });
    layer::apply(&base[..], dir.path(), &opts(WhiteoutMode::Delete)).unwrap();
    let top = build(|b| {
        raw(b, b"a/.wh.gone", tar::EntryType::Regular, b"", b"");
        raw(b, b"o/", tar::EntryType::Directory, b"", b"");
        raw(b, b"o/new", tar::EntryType::Regular, b"", b"4");
        raw(b, b"o/.wh..wh..opq", tar::EntryType::Regular, b"", b"");
    });
    layer::apply(&top[..], dir.path(), &opts(WhiteoutMode::Delete)).unwrap();
    assert!(dir.path().join("a/keep").exists());
    assert!(!dir.path().join("a/gone").exists());
    assert!(!dir.path().join("o/old").exists());
    assert_eq!(fs::read_to_string(dir.path().join("o/new")).unwrap(), "4");
}

#[test]
fn overlay_whiteouts_round_trip() {
    if !berth_testutil::is_root() {
        eprintln!("skipped: overlay whiteouts need CAP_MKNOD and trusted xattrs (root)");
        return;
    }
    let upper = tempfile::tempdir().unwrap();
    let top = build(|b| {
        raw(b, b"a/", tar::EntryType::Directory, b"", b"");
        raw(b, b"a/.wh.gone", tar::EntryType::Regular, b"", b"");
        raw(b, b"o/", tar::EntryType::Directory, b"", b"");
        raw(b, b"o/.wh..wh..opq", tar::EntryType::Regular, b"", b"");
        raw(b, b"o/new", tar::EntryType::Regular, b"", b"4");
    });
    layer::apply(&top[..], upper.path(), &opts(WhiteoutMode::Overlay)).unwrap();
    let st = fs::symlink_metadata(upper.path().join("a/gone")).unwrap();
    assert_eq!((st.mode() & libc::S_IFMT, st.rdev()), (libc::S_IFCHR, 0));
    let mut v = [0u8; 4];
    let n = rustix::fs::lgetxattr(upper.path().join("o"), "trusted.overlay.opaque", &mut v[..])
        .unwrap();
    assert_eq!(&v[..n], b"y");
    // And back: the upper dir diff carries OCI whiteouts.
    let tar = tar_of(DiffSource::OverlayUpper(upper.path()));
    let mut ar = tar::Archive::new(&tar[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a/", "a/.wh.gone", "o/", "o/.wh..wh..opq", "o/new"]);
    let ch = changes(DiffSource::OverlayUpper(upper.path()), &[]).unwrap();
    assert!(
        ch.iter()
            .any(|c| c.kind == ChangeKind::Deleted && c.path == "/a/gone"),
        "{ch:?}"
    );
}

#[test]
fn compressed_layers_are_sniffed() {
    let plain = build(|b| raw(b, b"f", tar::EntryType::Regular, b"", b"data"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    for input in [&plain, &gz, &zst] {
        let dir = tempfile::tempdir().unwrap();
        let stats = layer::apply(&input[..], dir.path(), &opts(WhiteoutMode::Delete)).unwrap();
        assert_eq!(
            stats.diff_id,
            berth_image::Digest::sha256_of(&plain),
            "diff id is of the uncompressed tar"
        );
        assert_eq!(fs::read_to_string(dir.path().join("f")).unwrap(), "data");
    }
}

fn assert_hostile(tar: &[u8], opts: &ApplyOptions, needle: &str) {
    let outside = tempfile::tempdir().unwrap();
    let dir = outside.path().join("snapshot");
    fs::create_dir(&dir).unwrap();
    let err = layer::apply(tar, &dir, opts).unwrap_err();
    assert!(
        matches!(
            err,
            Error::HostileEntry { .. } | Error::LimitExceeded { .. }
        ),
        "unexpected error kind: {err}"
    );
    assert!(
        err.to_string().contains(needle),
        "{err} should mention {needle}"
    );
    let escaped: Vec<_> = fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(escaped, ["snapshot"], "nothing written beside the snapshot");
}

#[test]
fn traversal_is_refused() {
    let t = build(|b| raw(b, b"../escaped", tar::EntryType::Regular, b"", b"x"));
    assert_hostile(&t, &base(), "../escaped");
    let t = build(|b| raw(b, b"a/../../escaped", tar::EntryType::Regular, b"", b"x"));
    assert_hostile(&t, &base(), "traversal");
}

#[test]
fn absolute_names_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let t = build(|b| raw(b, b"/abs-file", tar::EntryType::Regular, b"", b"x"));
    layer::apply(&t[..], dir.path(), &base()).unwrap();
    assert!(dir.path().join("abs-file").exists());
    assert!(!Path::new("/abs-file").exists());
}

#[test]
fn symlink_escapes_are_refused() {
    let host = tempfile::tempdir().unwrap();
    let target = host.path().to_str().unwrap().as_bytes().to_vec();
    let t = build(|b| {
        raw(b, b"link", tar::EntryType::Symlink, &target, b"");
        raw(b, b"link/pwned", tar::EntryType::Regular, b"", b"x");
    });
    assert_hostile(&t, &base(), "outside the snapshot");
    let t = build(|b| {
        raw(b, b"up", tar::EntryType::Symlink, b"../..", b"");
        raw(b, b"up/pwned", tar::EntryType::Regular, b"", b"x");
    });
    assert_hostile(&t, &base(), "outside the snapshot");
    assert_eq!(
        fs::read_dir(host.path()).unwrap().count(),
        0,
        "host dir untouched"
    );
    // A symlink that stays inside is followed as usual.
    let dir = tempfile::tempdir().unwrap();
    let t = build(|b| {
        raw(b, b"real/", tar::EntryType::Directory, b"", b"");
        raw(b, b"alias", tar::EntryType::Symlink, b"real", b"");
        raw(b, b"alias/file", tar::EntryType::Regular, b"", b"x");
    });
    layer::apply(&t[..], dir.path(), &base()).unwrap();
    assert!(dir.path().join("real/file").exists());
}

#[test]
fn hard_link_escapes_are_refused() {
    let t = build(|b| {
        raw(
            b,
            b"passwd",
            tar::EntryType::Link,
            b"../../../../etc/passwd",
            b"",
        )
    });
    assert_hostile(&t, &base(), "traversal");
    let t = build(|b| {
        raw(b, b"etc", tar::EntryType::Symlink, b"/etc", b"");
        raw(b, b"passwd", tar::EntryType::Link, b"etc/passwd", b"");
    });
    assert_hostile(&t, &base(), "outside the snapshot");
    let t = build(|b| raw(b, b"x", tar::EntryType::Link, b"missing", b""));
    assert_hostile(&t, &base(), "not in the layer");
}

#[test]
fn replacing_a_symlink_does_not_follow_it() {
    let host = tempfile::tempdir().unwrap();
    let victim = host.path().join("victim");
    fs::write(&victim, "original").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = build(|b| {
        raw(
            b,
            b"f",
            tar::EntryType::Symlink,
            victim.to_str().unwrap().as_bytes(),
            b"",
        );
        raw(b, b"f", tar::EntryType::Regular, b"", b"overwritten");
    });
    layer::apply(&t[..], dir.path(), &base()).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
    assert_eq!(
        fs::read_to_string(dir.path().join("f")).unwrap(),
        "overwritten"
    );
}

#[test]
fn device_nodes_are_refused_rootless() {
    let t = build(|b| raw(b, b"dev/sda", tar::EntryType::Block, b"", b""));
    let rootless = ApplyOptions {
        rootless: true,
        ..Default::default()
    };
    assert_hostile(&t, &rootless, "rootless");
    let t = build(|b| raw(b, b"dev/mem", tar::EntryType::Char, b"", b""));
    assert_hostile(&t, &rootless, "dev/mem");
}

#[test]
fn tar_bombs_hit_the_limits() {
    let many = build(|b| {
        for i in 0..2000 {
            raw(
                b,
                format!("f{i}").as_bytes(),
                tar::EntryType::Regular,
                b"",
                b"x",
            );
        }
    });
    let limits = Limits {
        max_entries: 1000,
        ..Default::default()
    };
    let o = ApplyOptions { limits, ..base() };
    assert_hostile(&many, &o, "entries per layer");
    let big = build(|b| raw(b, b"big", tar::EntryType::Regular, b"", &vec![7u8; 1 << 20]));
    let o = ApplyOptions {
        limits: Limits {
            max_bytes: 64 << 10,
            ..Default::default()
        },
        ..base()
    };
    assert_hostile(&big, &o, "bytes");
    let deep = build(|b| {
        raw(
            b,
            "d/".repeat(40).as_bytes(),
            tar::EntryType::Directory,
            b"",
            b"",
        )
    });
    let o = ApplyOptions {
        limits: Limits {
            max_depth: 16,
            ..Default::default()
        },
        ..base()
    };
    assert_hostile(&deep, &o, "deeper");
}

#[test]
fn overlay_xattrs_in_a_layer_are_not_trusted() {
    if !berth_testutil::is_root() {
        eprintln!("skipped: trusted xattrs need root");
        return;
    }
    let mut b = tar::Builder::new(Vec::new());
    let rec = b"30 SCHILY.xattr.trusted.overlay.opaque=y\n";
    let mut pax = rec.to_vec();
    pax.truncate(rec.len());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    let len = pax.len();
    let fixed = format!("{} SCHILY.xattr.trusted.overlay.opaque=y\n", len);
    h.set_size(fixed.len() as u64);
    h.set_path("PaxHeaders/d").unwrap();
    h.set_cksum();
    b.append(&h, fixed.as_bytes()).unwrap();
    raw(&mut b, b"d/", tar::EntryType::Directory, b"", b"");
    let t = b.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    layer::apply(&t[..], dir.path(), &opts(WhiteoutMode::Overlay)).unwrap();
    let mut v = [0u8; 4];
    assert!(
        rustix::fs::lgetxattr(dir.path().join("d"), "trusted.overlay.opaque", &mut v[..]).is_err()
    );
}

#[test]
fn non_utf8_names_are_an_error_not_a_silent_loss() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("d")).unwrap();
    fs::write(
        dir.path()
            .join("d")
            .join(std::ffi::OsStr::from_bytes(b"bad\xff")),
        "x",
    )
    .unwrap();
    let err = write_diff(
        DiffSource::Dirs {
            lower: None,
            upper: dir.path(),
        },
        Vec::new(),
        &DiffOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    // Whiteouts still remove directories holding such names.
    let t = build(|b| raw(b, b".wh.d", tar::EntryType::Regular, b"", b""));
    layer::apply(&t[..], dir.path(), &opts(WhiteoutMode::Delete)).unwrap();
    assert!(!dir.path().join("d").exists());
}
