//! `--uidmap`/`--gidmap`/`--userns=auto`: containers whose root is an
//! unprivileged host id, on an idmapped rootfs (nothing chowned).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::Instance;

const MAP: &str = "0:400000:65536";

fn run(b: &Instance, extra: &[&str], script: &str) -> String {
    run_image(b, extra, "busybox", script)
}

fn run_image(b: &Instance, extra: &[&str], image: &str, script: &str) -> String {
    let mut args = extra.to_vec();
    args.extend_from_slice(&[image, "sh", "-c", script]);
    b.ok_none(&args)
}

#[test]
fn mapped_root_sees_the_image_owners_and_is_unprivileged_on_the_host() {
    let Some(b) = Instance::new() else { return };
    let out = run(
        &b,
        &["--uidmap", MAP],
        "cat /proc/self/uid_map /proc/self/gid_map; stat -c %u:%g /etc/passwd /bin/busybox; echo new > /new && stat -c %u:%g /new",
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words,
        [
            "0", "400000", "65536", "0", "400000", "65536", "0:0", "0:0", "0:0"
        ],
        "{out}"
    );
    // The container's processes are host uid 400000.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "s",
        "--network",
        "none",
        "--uidmap",
        MAP,
        "busybox",
        "sleep",
        "60",
    ]);
    let pid = b.inspect("s", "{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().collect::<Vec<_>>(),
        ["Uid:", "400000", "400000", "400000", "400000"]
    );
    assert_eq!(b.inspect("s", "{{.HostConfig.UsernsMode}}"), "private");
    // berth's state stays closed to other users: the container's root got
    // search rights (an ACL entry), nobody else did.
    let mode = std::fs::metadata(b.root()).unwrap().permissions().mode();
    assert_eq!(mode & 0o007, 0, "{mode:o}");
    let can_stat = |uid: &str| {
        std::process::Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                "--regid=65534",
                "--clear-groups",
                "stat",
            ])
            .arg(b.root().join("berth.db"))
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!can_stat("65534"), "another user reached berth.db");
    assert!(
        can_stat("400000"),
        "the container's root can search the root"
    );
    // A host file only host root may read stays closed to the container's
    // root — and open to a container without a user namespace (the control).
    let secret = b.root().join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bind = format!("{}:/secret", secret.display());
    let denied = b.run_none(&["--uidmap", MAP, "-v", &bind, "busybox", "cat", "/secret"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
        "{denied:?}"
    );
    assert_eq!(run(&b, &["-v", &bind], "cat /secret"), "s3cret");
}

#[test]
fn exec_joins_a_user_namespaced_container_on_a_bridge_network() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run", "-d", "--name", "web", "--uidmap", MAP, "busybox", "sleep", "60",
    ]);
    let out = b.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; ip -4 addr show eth0 | grep -c inet",
    ]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "0", "400000", "65536", "1"], "{out}");
}

/// The engine's network namespace belongs to the host's user namespace,
/// where the container's root has no CAP_NET_BIND_SERVICE: port 80 binds
/// only because every container netns lets any user bind low ports (as
/// Docker sets it). Served through a published port on loopback.
#[test]
fn mapped_root_serves_port_80_through_a_published_port() {
    let Some(b) = Instance::new() else { return };
    let port = 21000 + (std::process::id() % 20000) as u16;
    let publish = format!("127.0.0.1:{port}:80");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--uidmap",
        MAP,
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "mkdir /www; echo hi-from-userns > /www/index.html; httpd -f -p 80 -h /www",
    ]);
    let url = format!("http://127.0.0.1:{port}/");
    let served = b.until(10, || {
        std::process::Command::new("busybox")
            .args(["wget", "-qO-", &url])
            .output()
            .is_ok_and(|o| o.stdout == b"hi-from-userns\n")
    });
    assert!(served, "logs: {}", b.ok(&["logs", "web"]));
    // The knobs, in the engine's namespace and in one the runtime makes.
    let knobs =
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range";
    // Seen from the host: inside, host gids outside the map read 65534.
    let pid = b.inspect("web", "{{.State.Pid}}");
    let o = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["sh", "-c", knobs])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "2147483647"]
    );
    let out = run(&b, &["--uidmap", MAP], knobs);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "65535"]
    );
}

#[test]
fn changes_are_stored_with_the_containers_ids_and_commit_unshifted() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run", "--name", "w", "--network", "none", "--uidmap", MAP, "busybox", "sh", "-c",
        "mkdir -p /home/bob && echo hi > /home/bob/f && chown -R 1000:1001 /home/bob && echo x >> /etc/passwd",
    ]);
    b.ok(&["commit", "w", "shifted"]);
    // Without a user namespace the image shows the owners the container set.
    assert_eq!(
        run_image(&b, &[], "shifted", "stat -c %u:%g /home/bob/f /etc/passwd")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["1000:1001", "0:0"]
    );
}

#[test]
fn volumes_and_cp_keep_the_containers_view_of_owners() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "v",
        "--network",
        "none",
        "--uidmap",
        MAP,
        "-v",
        "vol:/etc",
        "busybox",
        "sleep",
        "60",
    ]);
    // The named volume was populated from the image and is writable by
    // the container's root.
    let out = b.ok(&[
        "exec",
        "v",
        "sh",
        "-c",
        "stat -c %u /etc/passwd; echo w > /etc/w && stat -c %u /etc/w",
    ]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);
    let data = b.root().join("volumes/vol/_data");
    assert_eq!(
        std::fs::metadata(data.join("w")).unwrap().uid(),
        400000,
        "host ids on disk"
    );
    // cp in: owned by the container's root; cp out: the container's owners.
    let src = b.root().join("in.txt");
    std::fs::write(&src, "in").unwrap();
    b.ok(&["cp", src.to_str().unwrap(), "v:/in.txt"]);
    assert_eq!(
        b.ok(&["exec", "v", "stat", "-c", "%u:%g", "/in.txt"])
            .trim(),
        "0:0"
    );
    let out_file = b.root().join("out.txt");
    b.ok(&["cp", "v:/etc/w", out_file.to_str().unwrap()]);
    let m = std::fs::metadata(&out_file).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "w\n");
}

#[test]
fn auto_gives_each_container_its_own_block() {
    let Some(b) = Instance::new() else { return };
    let sub = b.root().join("subids");
    std::fs::write(&sub, "someone:1:10\nberth:600000:131072\n").unwrap();
    let auto = |name: &str| {
        b.cmd(&[
            "create",
            "--name",
            name,
            "--network",
            "none",
            "--userns",
            "auto",
            "busybox",
            "true",
        ])
        .env("BERTH_SUBUID", &sub)
        .env("BERTH_SUBGID", &sub)
        .output()
        .unwrap()
    };
    assert!(auto("a").status.success());
    assert!(auto("c").status.success());
    let host = |n: &str| {
        let maps: serde_json::Value =
            serde_json::from_str(&b.inspect(n, "{{json .HostConfig.IDMappings}}")).unwrap();
        assert_eq!(maps["uids"], maps["gids"], "{maps}");
        maps["uids"][0]["host"].to_string()
    };
    let (ha, hc) = (host("a"), host("c"));
    assert_eq!([ha.as_str(), hc.as_str()], ["600000", "665536"]);
    let full = auto("d");
    assert!(!full.status.success());
    assert!(
        String::from_utf8_lossy(&full.stderr).contains("no free block"),
        "{full:?}"
    );
    // Removing a container frees its block.
    b.ok(&["rm", "a"]);
    assert!(auto("d").status.success());
    assert_eq!(host("d"), "600000");
    assert_eq!(
        b.ok(&["start", "-a", "d"]),
        "",
        "a container with an automatic block runs"
    );
}

#[test]
fn bad_maps_are_refused_clearly() {
    let Some(b) = Instance::new() else { return };
    for (args, want) in [
        (vec!["--uidmap", "0:1"], "CONTAINER_ID:HOST_ID:SIZE"),
        (
            vec!["--uidmap", "0:400000:10", "--uidmap", "5:500000:10"],
            "overlap",
        ),
        (
            vec!["--userns", "auto", "--uidmap", MAP],
            "cannot be combined",
        ),
        (vec!["--userns", "keep-id"], "unknown mode"),
    ] {
        let mut a = args.clone();
        a.extend(["busybox", "true"]);
        let o = b.run_none(&a);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let empty = b.root().join("empty-subids");
    std::fs::write(&empty, "").unwrap();
    let o = b
        .cmd(&["create", "--userns", "auto", "busybox", "true"])
        .env("BERTH_SUBUID", &empty)
        .env("BERTH_SUBGID", &empty)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("gives no ids to the user \"berth\""));
    assert_eq!(b.ok(&["ps", "-aq"]), "", "nothing was created");
}
