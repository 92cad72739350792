//! Bridge networking: addresses, published ports (-p/-P), port, user
//! networks, container:ID and host modes.

mod common;

use common::Instance;

#[test]
fn bridge_ports_and_networks() {
    let Some(b) = Instance::new() else { return };
    // A static page served by busybox httpd, published on loopback.
    let port = 20000 + (std::process::id() % 20000) as u16;
    let publish = format!("127.0.0.1:{port}:80");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "mkdir /www; echo hi-from-web > /www/index.html; httpd -f -p 80 -h /www",
    ]);
    let ip = b.inspect("web", "{{.NetworkSettings.IPAddress}}");
    assert!(ip.starts_with("10.200."), "{ip}");
    assert_eq!(
        b.ok(&["port", "web", "80"]).trim(),
        format!("127.0.0.1:{port}")
    );
    assert!(b.ok(&["ps"]).contains(&format!("127.0.0.1:{port}->80/tcp")));
    let url = format!("http://127.0.0.1:{port}/");
    assert!(b.until(10, || {
        std::process::Command::new("busybox")
            .args(["wget", "-qO-", &url])
            .output()
            .is_ok_and(|o| o.stdout == b"hi-from-web\n")
    }));
    // Another container reaches it by address; one sharing its namespace by localhost.
    let from_peer = b.ok(&[
        "run",
        "--rm",
        "busybox",
        "wget",
        "-qO-",
        &format!("http://{ip}/"),
    ]);
    assert_eq!(from_peer, "hi-from-web\n");
    let shared = b.ok(&[
        "run",
        "--rm",
        "--network",
        "container:web",
        "busybox",
        "wget",
        "-qO-",
        "http://127.0.0.1/",
    ]);
    assert_eq!(shared, "hi-from-web\n");
    // /etc/hosts has the container's own name.
    let hosts = b.ok(&["exec", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&ip), "{hosts}");
    // --network none has only loopback; host sees the host's interfaces.
    let none = b.ok_none(&["busybox", "ip", "-o", "link"]);
    assert_eq!(none.lines().count(), 1, "{none}");
    let host = b.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(host.lines().count() > 1);
    // A user network with its own subnet.
    let third: u32 = b.subnet.split('.').nth(2).unwrap().parse().unwrap();
    // Far from the per-instance default subnets (consecutive thirds).
    let third = (third - 20 + 100) % 230 + 20 - 1;
    let subnet = format!("10.200.{}.0/24", third + 1);
    b.ok(&["network", "create", "--subnet", &subnet, "mynet"]);
    assert!(b.ok(&["network", "ls"]).contains("mynet"));
    let addr = b.ok(&[
        "run",
        "--rm",
        "--network",
        "mynet",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(addr.contains(&format!("10.200.{}.", third + 1)), "{addr}");
    b.ok(&["network", "rm", "mynet"]);
    let ev = b.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "type=network",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(ev, "create\ndestroy\n");
    // -P publishes the image's exposed ports (none for busybox): nothing to show.
    b.ok(&["run", "-d", "--name", "pa", "-P", "busybox", "sleep", "100"]);
    assert_eq!(b.ok(&["port", "pa"]), "");
    b.ok(&["rm", "-f", "pa"]);
    b.ok(&["rm", "-f", "web"]);
    assert!(b.ok(&["system", "check"]).contains("nothing to repair"));
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let Some(b) = Instance::new() else { return };
    let third: u32 = b.subnet.split('.').nth(2).unwrap().parse().unwrap();
    let net = format!("10.200.{}", (third - 20 + 115) % 230 + 20);
    b.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{net}.0/24"),
        "--ip-range",
        &format!("{net}.128/25"),
        "--label",
        "team=db",
        "cnet",
    ]);
    let info = b.ok(&["network", "inspect", "cnet"]);
    assert!(info.contains("team"), "{info}");
    b.ok(&["run", "-d", "--name", "a", "busybox", "sleep", "100"]);
    let ip = format!("{net}.200");
    b.ok(&[
        "network", "connect", "--ip", &ip, "--alias", "db", "cnet", "a",
    ]);
    let addrs = b.ok(&["exec", "a", "ip", "-o", "-4", "addr"]);
    assert!(addrs.contains(&format!("{ip}/24")), "{addrs}");
    // A second container on the network gets an address from --ip-range.
    let other = b.ok(&[
        "run",
        "--rm",
        "--network",
        "cnet",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    let host_part: u32 = other
        .split(&format!("{net}."))
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(host_part >= 128, "{other}");
    // --ip on run picks the address.
    let fixed = b.ok(&[
        "run",
        "--rm",
        "--network",
        "cnet",
        "--ip",
        &format!("{net}.150"),
        "--network-alias",
        "x",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(fixed.contains(&format!("{net}.150/24")), "{fixed}");
    // The connected container answers on its new address.
    let ping = b.ok(&[
        "run",
        "--rm",
        "--network",
        "cnet",
        "busybox",
        "ping",
        "-c1",
        "-W2",
        &ip,
    ]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let o = b.run(&["network", "rm", "cnet"]);
    assert!(!o.status.success(), "removed a network in use");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    b.ok(&["network", "disconnect", "cnet", "a"]);
    let addrs = b.ok(&["exec", "a", "ip", "-o", "-4", "addr"]);
    assert!(!addrs.contains(&ip), "{addrs}");
    b.ok(&["network", "rm", "cnet"]);
    b.ok(&["rm", "-f", "a"]);
    assert!(b.ok(&["system", "check"]).contains("nothing to repair"));
}

#[test]
fn containers_resolve_each_other_by_name_and_alias() {
    let Some(b) = Instance::new() else { return };
    let third: u32 = b.subnet.split('.').nth(2).unwrap().parse().unwrap();
    let net = format!("10.200.{}", (third - 20 + 130) % 230 + 20);
    b.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{net}.0/24"),
        "dnsnet",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "dnsnet",
        "--network-alias",
        "database",
        "busybox",
        "sleep",
        "100",
    ]);
    let ip = b.inspect("db", "{{.NetworkSettings.IPAddress}}");
    for name in ["db", "database"] {
        let out = b.ok(&[
            "run",
            "--rm",
            "--network",
            "dnsnet",
            "busybox",
            "nslookup",
            name,
        ]);
        assert!(out.contains(&ip), "{name} did not resolve to {ip}:\n{out}");
    }
    let resolv = b.ok(&[
        "run",
        "--rm",
        "--network",
        "dnsnet",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(resolv.contains(&format!("nameserver {net}.1")), "{resolv}");
    b.ok(&["rm", "-f", "db"]);
    b.ok(&["network", "rm", "dnsnet"]);
    assert!(b.ok(&["system", "check"]).contains("nothing to repair"));
}
