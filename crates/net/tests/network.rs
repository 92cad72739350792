//! Real networking: bridges, veths, sandboxes, nftables, traffic between
//! the test's own namespaces and the host's loopback/bridges. Root only.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use berth_net::{AttachOptions, NetError, NetworkSpec, PortSpec, Subnet};
use common::*;

fn spec(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        ..Default::default()
    }
}

#[test]
fn default_network_containers_talk_by_ip() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    let a = h.sandbox("ctr-a");
    let b = h.sandbox("ctr-b");
    let ea = h
        .mgr
        .attach("ctr-a", &a, "bridge", &AttachOptions::default())
        .unwrap();
    let eb = h
        .mgr
        .attach("ctr-b", &b, "bridge", &AttachOptions::default())
        .unwrap();
    h.host_ifaces
        .extend([ea.host_iface.clone(), eb.host_iface.clone()]);
    let net = h.mgr.inspect("bridge").unwrap();
    assert!(net.network.predefined);
    assert!(h.pool.contains_subnet(&net.network.subnet));
    assert_eq!(net.network.bridge, format!("{}0", h.config.bridge_prefix));
    assert_eq!(ea.gateway, Some(net.network.gateway));
    assert_eq!(ea.iface, "eth0");
    assert_ne!(ea.ip, eb.ip);

    // The sandbox sees its address, lo up and the default route.
    let out = ns_cmd(&a, &["ip", "-4", "-o", "addr"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("eth0    inet {}/24", ea.ip))
            || text.contains(&format!("inet {}/24", ea.ip)),
        "{text}"
    );
    assert!(
        text.contains("lo    inet 127.0.0.1/8") || text.contains("inet 127.0.0.1/8"),
        "{text}"
    );
    let routes = String::from_utf8_lossy(&ns_cmd(&a, &["ip", "route"]).stdout).into_owned();
    assert!(
        routes.contains(&format!("default via {} dev eth0", net.network.gateway)),
        "{routes}"
    );
    let link = String::from_utf8_lossy(&ns_cmd(&a, &["ip", "-o", "link", "show", "eth0"]).stdout)
        .into_owned();
    assert!(
        link.contains(&ea.mac) && link.contains("mtu 1500"),
        "{link}"
    );

    tcp_server(&b, 8080, "hello from b");
    udp_server(&b, 5353, "b");
    assert_eq!(tcp_get(Some(&a), sa(eb.ip, 8080)).unwrap(), "hello from b");
    assert_eq!(
        udp_ask(Some(&a), sa(eb.ip, 5353), "ping").unwrap(),
        "b:ping"
    );
    // Host → container over the bridge.
    assert_eq!(tcp_get(None, sa(eb.ip, 8080)).unwrap(), "hello from b");
    // busybox too (a real client binary inside the sandbox).
    let out = ns_cmd(
        &a,
        &["busybox", "nc", "-w", "3", &eb.ip.to_string(), "8080"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from b");

    // The bridge keeps its own MAC when ports leave (containers' ARP entries for the gateway stay valid).
    let bridge_mac = || {
        std::fs::read_to_string(format!("/sys/class/net/{}/address", net.network.bridge)).unwrap()
    };
    let expected = berth_net::ipam::format_mac(&berth_net::ipam::mac_for(net.network.gateway));
    assert_eq!(bridge_mac().trim(), expected);
    h.mgr.release_all("ctr-a").unwrap();
    assert_eq!(bridge_mac().trim(), expected);
    assert_eq!(tcp_get(None, sa(eb.ip, 8080)).unwrap(), "hello from b");
    h.mgr.release_all("ctr-b").unwrap();
    assert!(h.mgr.db().allocations("bridge").unwrap().is_empty());
    h.finish();
}

#[test]
fn published_ports_loopback_bridge_hairpin_udp() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    let net = h
        .mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(3)),
            ..spec("web")
        })
        .unwrap();
    let s = h.sandbox("srv");
    let c = h.sandbox("cli");
    let (tport, uport, lport) = (free_port(), free_port(), free_port());
    let opts = AttachOptions {
        ports: vec![
            format!("{tport}:80").parse().unwrap(),
            format!("{uport}:53/udp").parse().unwrap(),
            format!("127.0.0.1:{lport}:80").parse().unwrap(),
            "8080".parse().unwrap(),
        ],
        ..Default::default()
    };
    let es = h.mgr.attach("srv", &s, "web", &opts).unwrap();
    let ec = h
        .mgr
        .attach("cli", &c, "web", &AttachOptions::default())
        .unwrap();
    h.host_ifaces
        .extend([es.host_iface.clone(), ec.host_iface.clone()]);
    assert_eq!(es.ports.len(), 4);
    let random = es.ports[3].host_port;
    assert!(random > 0 && es.ports[3].container_port == 8080);
    tcp_server(&s, 80, "srv80");
    tcp_server(&s, 8080, "srv8080");
    udp_server(&s, 53, "srv53");

    let lo = Ipv4Addr::LOCALHOST;
    assert_eq!(
        tcp_get(None, sa(lo, tport)).unwrap(),
        "srv80",
        "host → 127.0.0.1"
    );
    assert_eq!(
        tcp_get(None, sa(net.gateway, tport)).unwrap(),
        "srv80",
        "host → bridge address"
    );
    assert_eq!(
        tcp_get(None, sa(lo, lport)).unwrap(),
        "srv80",
        "127.0.0.1-only mapping"
    );
    assert_eq!(
        tcp_get(None, sa(lo, random)).unwrap(),
        "srv8080",
        "random host port"
    );
    assert_eq!(
        udp_ask(None, sa(lo, uport), "q").unwrap(),
        "srv53:q",
        "udp on 127.0.0.1"
    );
    assert_eq!(
        tcp_get(Some(&c), sa(net.gateway, tport)).unwrap(),
        "srv80",
        "other container → published port"
    );
    assert_eq!(
        tcp_get(Some(&s), sa(net.gateway, tport)).unwrap(),
        "srv80",
        "hairpin: container → its own published port"
    );
    assert_eq!(
        udp_ask(Some(&s), sa(net.gateway, uport), "h").unwrap(),
        "srv53:h",
        "udp hairpin"
    );
    // The 127.0.0.1 mapping does not answer on the bridge address.
    assert!(tcp_get(None, sa(net.gateway, lport)).is_err());

    // Removing the container removes exactly its elements.
    let table = h.mgr.firewall().list().unwrap().unwrap();
    assert!(
        table.contains(&format!("tcp . {tport} : {} . 80", es.ip)),
        "{table}"
    );
    h.mgr.release_all("srv").unwrap();
    let table = h.mgr.firewall().list().unwrap().unwrap();
    assert!(!table.contains(&es.ip.to_string()), "{table}");
    assert!(
        table.contains(&format!("\"{}\"", net.bridge)),
        "network elements stay: {table}"
    );
    assert!(tcp_get(None, sa(lo, tport)).is_err());
    h.mgr.release_all("cli").unwrap();
    h.mgr.remove("web").unwrap();
    h.finish();
}

#[test]
fn networks_are_isolated_and_internal_has_no_way_out() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    h.mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(1)),
            ..spec("one")
        })
        .unwrap();
    h.mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(2)),
            ..spec("two")
        })
        .unwrap();
    let inet = h
        .mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(4)),
            internal: true,
            ..spec("priv")
        })
        .unwrap();
    let (a, b, p, q) = (
        h.sandbox("a"),
        h.sandbox("b"),
        h.sandbox("p"),
        h.sandbox("q"),
    );
    let ea = h
        .mgr
        .attach("a", &a, "one", &AttachOptions::default())
        .unwrap();
    let eb = h
        .mgr
        .attach("b", &b, "two", &AttachOptions::default())
        .unwrap();
    let ep = h
        .mgr
        .attach("p", &p, "priv", &AttachOptions::default())
        .unwrap();
    let eq = h
        .mgr
        .attach("q", &q, "priv", &AttachOptions::default())
        .unwrap();
    h.host_ifaces
        .extend([ea.host_iface, eb.host_iface, ep.host_iface, eq.host_iface]);
    for (ns, tag) in [(&a, "a"), (&b, "b"), (&p, "p"), (&q, "q")] {
        tcp_server(ns, 7000, tag);
    }
    // Each server answers the host, so the failures below are the firewall's doing.
    assert_eq!(tcp_get(None, sa(eb.ip, 7000)).unwrap(), "b");
    assert!(
        tcp_get(Some(&a), sa(eb.ip, 7000)).is_err(),
        "one → two must be blocked"
    );
    assert!(
        tcp_get(Some(&b), sa(ea.ip, 7000)).is_err(),
        "two → one must be blocked"
    );
    // A host service on network two's gateway is for network two only.
    let net_one = h.mgr.inspect("one").unwrap().network;
    let gw_two = h.mgr.inspect("two").unwrap().network.gateway;
    let host_srv = std::net::TcpListener::bind((gw_two, 0)).unwrap();
    let gw_port = host_srv.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in host_srv.incoming() {
            let Ok(mut s) = s else { return };
            let _ = std::io::Write::write_all(&mut s, b"gw");
        }
    });
    assert_eq!(tcp_get(Some(&b), sa(gw_two, gw_port)).unwrap(), "gw");
    assert!(
        tcp_get(Some(&a), sa(gw_two, gw_port)).is_err(),
        "one → two's gateway must be blocked"
    );
    assert_ne!(net_one.gateway, gw_two);
    // ... but a port b publishes is reachable from a (through the host, like any client).
    let mut h2 = h.another();
    let pb = h.sandbox("pub");
    let port = free_port();
    let epb = h2
        .attach(
            "pub",
            &pb,
            "two",
            &AttachOptions {
                ports: vec![format!("{port}:7000").parse().unwrap()],
                ..Default::default()
            },
        )
        .unwrap();
    h.host_ifaces.push(epb.host_iface);
    tcp_server(&pb, 7000, "published");
    assert!(
        tcp_get(Some(&a), sa(epb.ip, 7000)).is_err(),
        "directly: blocked"
    );
    assert_eq!(
        tcp_get(Some(&a), sa(net_one.gateway, port)).unwrap(),
        "published",
        "via a's own gateway"
    );
    assert_eq!(
        tcp_get(Some(&a), sa(gw_two, port)).unwrap(),
        "published",
        "via two's gateway (DNAT before the input check)"
    );
    h2.release_all("pub").unwrap();

    // Internal: no default route, no way to other networks, but peers on it talk.
    assert_eq!(ep.gateway, None);
    let routes = String::from_utf8_lossy(&ns_cmd(&p, &["ip", "route"]).stdout).into_owned();
    assert!(!routes.contains("default"), "{routes}");
    assert_eq!(tcp_get(Some(&p), sa(eq.ip, 7000)).unwrap(), "q");
    let err = tcp_get(Some(&p), sa(ea.ip, 7000)).unwrap_err();
    assert!(err.contains("unreachable"), "{err}");
    assert!(
        tcp_get(Some(&a), sa(ep.ip, 7000)).is_err(),
        "nothing gets into an internal network"
    );
    let table = h.mgr.firewall().list().unwrap().unwrap();
    assert!(!table.contains(&format!(
        "nat_subnets {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = {{ {}",
        inet.subnet
    )));
    for c in ["a", "b", "p", "q"] {
        h.mgr.release_all(c).unwrap();
    }
    h.finish();
}

#[test]
fn connect_and_disconnect_a_second_network() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    let range = Subnet::new(Ipv4Addr::from(u32::from(h.subnet(1).addr()) + 128), 25).unwrap();
    h.mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(1)),
            ip_range: Some(range),
            ..spec("front")
        })
        .unwrap();
    h.mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(2)),
            mtu: Some(1400),
            ..spec("back")
        })
        .unwrap();
    let (x, y) = (h.sandbox("x"), h.sandbox("y"));
    let ex = h
        .mgr
        .attach("x", &x, "front", &AttachOptions::default())
        .unwrap();
    let ey = h
        .mgr
        .attach("y", &y, "back", &AttachOptions::default())
        .unwrap();
    h.host_ifaces
        .extend([ex.host_iface.clone(), ey.host_iface.clone()]);
    assert!(range.contains(ex.ip), "{} from --ip-range {range}", ex.ip);
    tcp_server(&y, 9000, "y");
    assert!(tcp_get(Some(&x), sa(ey.ip, 9000)).is_err());

    let static_ip: Ipv4Addr = format!("{}", Ipv4Addr::from(u32::from(h.subnet(2).addr()) + 77))
        .parse()
        .unwrap();
    let ex2 = h
        .mgr
        .attach(
            "x",
            &x,
            "back",
            &AttachOptions {
                ip: Some(static_ip),
                ..Default::default()
            },
        )
        .unwrap();
    h.host_ifaces.push(ex2.host_iface.clone());
    assert_eq!(
        (ex2.iface.as_str(), ex2.ip, ex2.gateway),
        ("eth1", static_ip, None),
        "second network: eth1, no default route"
    );
    assert_eq!(tcp_get(Some(&x), sa(ey.ip, 9000)).unwrap(), "y");
    let link = String::from_utf8_lossy(&ns_cmd(&x, &["ip", "-o", "link", "show", "eth1"]).stdout)
        .into_owned();
    assert!(link.contains("mtu 1400"), "MTU from the network: {link}");
    let routes = String::from_utf8_lossy(&ns_cmd(&x, &["ip", "route"]).stdout).into_owned();
    assert_eq!(
        routes.matches("default").count(),
        1,
        "only the first network routes by default: {routes}"
    );
    assert!(matches!(
        h.mgr.attach("x", &x, "back", &AttachOptions::default()),
        Err(NetError::AlreadyConnected { .. })
    ));
    assert_eq!(h.mgr.endpoints("x").unwrap().len(), 2);

    h.mgr.detach("x", "back").unwrap();
    let links = String::from_utf8_lossy(&ns_cmd(&x, &["ip", "-o", "link"]).stdout).into_owned();
    assert!(!links.contains("eth1"), "{links}");
    assert!(tcp_get(Some(&x), sa(ey.ip, 9000)).is_err());
    assert!(
        h.mgr
            .db()
            .allocations("back")
            .unwrap()
            .iter()
            .all(|(ip, _)| *ip != static_ip)
    );
    assert!(matches!(
        h.mgr.detach("x", "back"),
        Err(NetError::NotConnected { .. })
    ));
    // Network in use cannot go; once free it can.
    assert!(matches!(
        h.mgr.remove("front"),
        Err(NetError::NetworkInUse { .. })
    ));
    h.mgr.release_all("x").unwrap();
    h.mgr.release_all("y").unwrap();
    let mut pruned = h.mgr.prune().unwrap();
    pruned.sort();
    assert_eq!(pruned, ["back", "front"]);
    h.finish();
}

#[test]
fn twenty_sandboxes_in_parallel_get_unique_addresses() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    h.mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(5)),
            ..spec("many")
        })
        .unwrap();
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let mut mgr = h.another();
            std::thread::spawn(move || {
                let id = format!("par{i}");
                let ns = mgr.create_sandbox(&id).unwrap();
                let ep = mgr
                    .attach(&id, &ns, "many", &AttachOptions::default())
                    .unwrap();
                (ns, ep)
            })
        })
        .collect();
    let eps: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    h.host_ifaces
        .extend(eps.iter().map(|(_, e)| e.host_iface.clone()));
    let ips: BTreeSet<Ipv4Addr> = eps.iter().map(|(_, e)| e.ip).collect();
    assert_eq!(ips.len(), 20, "{ips:?}");
    assert_eq!(h.mgr.db().allocations("many").unwrap().len(), 20);
    // Every one is really configured: the first reaches the last.
    tcp_server(&eps[19].0, 6000, "last");
    assert_eq!(
        tcp_get(Some(&eps[0].0), sa(eps[19].1.ip, 6000)).unwrap(),
        "last"
    );
    // Tear down in parallel too.
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let mut mgr = h.another();
            std::thread::spawn(move || mgr.release_all(&format!("par{i}")).unwrap())
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    h.finish();
}

#[test]
fn bad_input_is_refused_with_nothing_half_configured() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    h.mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(1)),
            ..spec("ok")
        })
        .unwrap();
    let err = h
        .mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(1)),
            ..spec("dup")
        })
        .unwrap_err();
    assert!(matches!(err, NetError::SubnetOverlap { .. }), "{err}");
    let err = h
        .mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(2)),
            gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..spec("gw")
        })
        .unwrap_err();
    assert!(
        matches!(err, NetError::GatewayOutsideSubnet { .. }),
        "{err}"
    );
    let err = h
        .mgr
        .create_network(&NetworkSpec {
            subnet: Some("192.0.2.0/25".parse().unwrap()),
            ..spec("hostroute")
        })
        .unwrap_err();
    assert!(err.to_string().contains("host route"), "{err}");
    assert!(matches!(
        h.mgr.create_network(&spec("ok")),
        Err(NetError::NetworkExists(_))
    ));
    assert!(matches!(
        h.mgr.create_network(&spec("host")),
        Err(NetError::InvalidName { .. })
    ));
    assert_eq!(
        h.mgr.list().unwrap().len(),
        1,
        "failed creates left no network"
    );

    let ns = h.sandbox("c");
    assert!(matches!(
        h.mgr.attach("c", &ns, "nosuch", &AttachOptions::default()),
        Err(NetError::NetworkNotFound(_))
    ));
    assert!("80:80:80:80".parse::<PortSpec>().is_err());
    // A host port some process holds.
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let err = h
        .mgr
        .attach(
            "c",
            &ns,
            "ok",
            &AttachOptions {
                ports: vec![format!("{held}:80").parse().unwrap()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, NetError::HostPortInUse { .. }), "{err}");
    // A port another container published.
    let d = h.sandbox("d");
    let p = free_port();
    let ed = h
        .mgr
        .attach(
            "d",
            &d,
            "ok",
            &AttachOptions {
                ports: vec![format!("{p}:80").parse().unwrap()],
                ..Default::default()
            },
        )
        .unwrap();
    h.host_ifaces.push(ed.host_iface);
    let err = h
        .mgr
        .attach(
            "c",
            &ns,
            "ok",
            &AttachOptions {
                ports: vec![format!("{p}:81").parse().unwrap()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("published by container d"),
        "{err}"
    );
    // A static address outside the subnet.
    let err = h
        .mgr
        .attach(
            "c",
            &ns,
            "ok",
            &AttachOptions {
                ip: Some(Ipv4Addr::new(10, 1, 1, 1)),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, NetError::AddressUnavailable { .. }), "{err}");
    // Nothing of "c" anywhere.
    assert!(h.mgr.db().endpoints_of("c").unwrap().is_empty());
    assert_eq!(h.mgr.db().allocations("ok").unwrap().len(), 1);
    let links = String::from_utf8_lossy(&ns_cmd(&ns, &["ip", "-o", "link"]).stdout).into_owned();
    assert!(!links.contains("eth0"), "{links}");
    h.mgr.release_all("d").unwrap();
    h.mgr.release_all("c").unwrap();
    h.finish();
}

#[test]
fn failure_in_the_middle_of_attach_rolls_back() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    h.mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(1)),
            ..spec("rb")
        })
        .unwrap();
    // The database reservation succeeds, the veth cannot go into a sandbox that does not exist.
    let missing = h.run_dir().join("netns").join("ghost");
    let p = free_port();
    let err = h
        .mgr
        .attach(
            "ghost",
            &missing,
            "rb",
            &AttachOptions {
                ports: vec![format!("{p}:80").parse().unwrap()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("open sandbox"), "{err}");
    assert!(
        h.mgr.db().allocations("rb").unwrap().is_empty(),
        "address freed"
    );
    assert!(h.mgr.db().published().unwrap().is_empty(), "port freed");
    let iface = berth_net::state::host_iface_name("ghost", "rb");
    assert!(
        berth_net::netlink::Netlink::open()
            .unwrap()
            .link_index(&iface)
            .unwrap()
            .is_none()
    );
    // The same port is immediately usable by someone else.
    let ns = h.sandbox("real");
    let e = h
        .mgr
        .attach(
            "real",
            &ns,
            "rb",
            &AttachOptions {
                ports: vec![format!("{p}:80").parse().unwrap()],
                ..Default::default()
            },
        )
        .unwrap();
    h.host_ifaces.extend([iface, e.host_iface]);
    h.mgr.release_all("real").unwrap();
    h.finish();
}

#[test]
fn reconcile_after_a_crash_frees_everything_of_dead_containers() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    let net = h
        .mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(1)),
            ..spec("crash")
        })
        .unwrap();
    let (live, dead) = (h.sandbox("live"), h.sandbox("dead"));
    let el = h
        .mgr
        .attach("live", &live, "crash", &AttachOptions::default())
        .unwrap();
    let p = free_port();
    let ed = h
        .mgr
        .attach(
            "dead",
            &dead,
            "crash",
            &AttachOptions {
                ports: vec![format!("{p}:80").parse().unwrap()],
                ..Default::default()
            },
        )
        .unwrap();
    // An engine killed with -9 in the middle of an attach: rows reserved, nothing else.
    let mut db = berth_net::state::Db::open(&h.db_path()).unwrap();
    db.reserve_endpoint(&berth_net::state::EndpointRequest {
        container_id: "half".into(),
        network: "crash".into(),
        sandbox: h.run_dir().join("netns/half"),
        ..Default::default()
    })
    .unwrap();
    // ... and a veth on our bridge that no row knows (killed after creating it, before recording).
    let mut nl = berth_net::netlink::Netlink::open().unwrap();
    let stray = "vbdeadbeef001";
    let out = std::process::Command::new("ip")
        .args([
            "link",
            "add",
            stray,
            "type",
            "veth",
            "peer",
            "name",
            "vbdeadbeef002",
        ])
        .status()
        .unwrap();
    assert!(out.success());
    let br = nl.link_index(&net.bridge).unwrap().unwrap();
    let si = nl.link_index(stray).unwrap().unwrap();
    nl.set_master(si, br).unwrap();
    // An orphan sandbox file from a container that is gone.
    h.sandbox("orphan");
    h.host_ifaces.extend([
        el.host_iface.clone(),
        ed.host_iface.clone(),
        stray.to_string(),
    ]);
    // Wipe the table as a reboot would, to see it rebuilt.
    h.mgr.firewall().delete_table().unwrap();

    let mut fresh = h.another();
    let report = fresh.reconcile(&["live"]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let mut released: Vec<_> = report.endpoints.iter().map(|(c, _)| c.as_str()).collect();
    released.sort();
    assert_eq!(released, ["dead", "half"]);
    assert_eq!(report.sandboxes, ["dead", "orphan"]);
    assert_eq!(report.orphan_links, [stray]);
    assert_eq!(
        h.mgr.db().allocations("crash").unwrap(),
        [(el.ip, "live".to_string())]
    );
    assert!(nl.link_index(&ed.host_iface).unwrap().is_none());
    let table = h.mgr.firewall().list().unwrap().expect("table rebuilt");
    assert!(
        table.contains(&format!("\"{}\"", net.bridge)) && !table.contains(&format!(". {p} :")),
        "{table}"
    );
    // The live container still works.
    tcp_server(&live, 7100, "alive");
    assert_eq!(tcp_get(None, sa(el.ip, 7100)).unwrap(), "alive");
    h.mgr.release_all("live").unwrap();
    h.finish();
}

/// The "engine" for the SIGKILL test: attaches a container, says so, and
/// waits to be killed. Does nothing unless started by that test.
#[test]
#[ignore = "helper process of engine_killed_with_sigkill_is_reconciled"]
fn sigkill_helper() {
    let Ok(dir) = std::env::var("BERTH_NET_KILL_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let var = |k: &str| std::env::var(k).unwrap();
    let config = berth_net::Config {
        bridge_prefix: var("BERTH_NET_KILL_PREFIX"),
        nft_table: var("BERTH_NET_KILL_TABLE"),
        default_subnet_pool: var("BERTH_NET_KILL_POOL").parse().unwrap(),
        ..Default::default()
    };
    let mut mgr =
        berth_net::NetworkManager::open(&dir.join("berth.db"), &dir.join("run"), config).unwrap();
    let ns = mgr.create_sandbox("victim").unwrap();
    let port = var("BERTH_NET_KILL_PORT");
    mgr.attach(
        "victim",
        &ns,
        "killnet",
        &AttachOptions {
            ports: vec![format!("{port}:80").parse().unwrap()],
            ..Default::default()
        },
    )
    .unwrap();
    std::fs::write(dir.join("ready"), "").unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[test]
fn engine_killed_with_sigkill_is_reconciled() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    h.mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(1)),
            ..spec("killnet")
        })
        .unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "sigkill_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BERTH_NET_KILL_DIR", h.dir.path())
        .env("BERTH_NET_KILL_PREFIX", &h.config.bridge_prefix)
        .env("BERTH_NET_KILL_TABLE", &h.config.nft_table)
        .env("BERTH_NET_KILL_POOL", h.pool.to_string())
        .env("BERTH_NET_KILL_PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = h.dir.path().join("ready");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "helper did not attach in time"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "helper died before attaching"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // What the dead engine left: a veth, an address, a published port, a sandbox.
    let iface = berth_net::state::host_iface_name("victim", "killnet");
    h.host_ifaces.push(iface.clone());
    let mut nl = berth_net::netlink::Netlink::open().unwrap();
    assert!(nl.link_index(&iface).unwrap().is_some());
    assert_eq!(h.mgr.db().allocations("killnet").unwrap().len(), 1);
    assert!(
        h.mgr
            .firewall()
            .list()
            .unwrap()
            .unwrap()
            .contains(&format!("tcp . {port} :"))
    );

    let report = h.mgr.reconcile(&[]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        report.endpoints,
        [("victim".to_string(), "killnet".to_string())]
    );
    assert_eq!(report.sandboxes, ["victim"]);
    assert!(nl.link_index(&iface).unwrap().is_none());
    assert!(h.mgr.db().allocations("killnet").unwrap().is_empty());
    assert!(
        !h.mgr
            .firewall()
            .list()
            .unwrap()
            .unwrap()
            .contains(&format!("tcp . {port} :"))
    );
    h.finish();
}

#[test]
fn failure_after_the_veth_exists_rolls_back_too() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    let net = h
        .mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(1)),
            ..spec("late")
        })
        .unwrap();
    // A sandbox that already has a default route: the veth gets created and
    // configured, then adding the default route fails ("File exists").
    let ns = h.sandbox("late");
    let ns_s = ns.to_str().unwrap();
    for cmd in [
        vec![
            "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
        ],
        vec!["ip", "addr", "add", "192.0.2.200/24", "dev", "d0"],
        vec!["ip", "link", "set", "d1", "up"],
        vec!["ip", "link", "set", "d0", "up"],
        vec!["ip", "route", "add", "default", "via", "192.0.2.1"],
    ] {
        let out = ns_cmd(&ns, &cmd);
        assert!(
            out.status.success(),
            "{cmd:?} in {ns_s}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let p = free_port();
    let err = h
        .mgr
        .attach(
            "late",
            &ns,
            "late",
            &AttachOptions {
                ports: vec![format!("{p}:80").parse().unwrap()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("default route"), "{err}");
    let iface = berth_net::state::host_iface_name("late", "late");
    h.host_ifaces.push(iface.clone());
    assert!(
        berth_net::netlink::Netlink::open()
            .unwrap()
            .link_index(&iface)
            .unwrap()
            .is_none(),
        "host veth deleted"
    );
    let links = String::from_utf8_lossy(&ns_cmd(&ns, &["ip", "-o", "link"]).stdout).into_owned();
    assert!(!links.contains("eth0"), "peer gone with it: {links}");
    assert!(h.mgr.db().allocations("late").unwrap().is_empty());
    assert!(h.mgr.db().published().unwrap().is_empty());
    let table = h.mgr.firewall().list().unwrap().unwrap();
    assert!(!table.contains(&format!(". {p} :")), "{table}");
    assert!(table.contains(&format!("\"{}\"", net.bridge)));
    h.mgr.release_all("late").unwrap();
    h.finish();
}

#[test]
fn twenty_first_runs_race_to_create_the_default_network() {
    if skip() {
        return;
    }
    let h = Harness::new();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let mut mgr = h.another();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let id = format!("first{i}");
                let ns = mgr.create_sandbox(&id).unwrap();
                barrier.wait();
                let ep = mgr
                    .attach(&id, &ns, "bridge", &AttachOptions::default())
                    .unwrap();
                (ns, ep)
            })
        })
        .collect();
    let eps: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let mut h = h;
    h.host_ifaces
        .extend(eps.iter().map(|(_, e)| e.host_iface.clone()));
    assert_eq!(h.mgr.list().unwrap().len(), 1, "one default network");
    let ips: BTreeSet<Ipv4Addr> = eps.iter().map(|(_, e)| e.ip).collect();
    assert_eq!(ips.len(), 20);
    for (ns, ep) in &eps {
        let out = ns_cmd(ns, &["ip", "-4", "-o", "addr", "show", "eth0"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("inet {}/", ep.ip)));
    }
    tcp_server(&eps[0].0, 6001, "first");
    assert_eq!(
        tcp_get(Some(&eps[19].0), sa(eps[0].1.ip, 6001)).unwrap(),
        "first"
    );
    for i in 0..20 {
        h.mgr.release_all(&format!("first{i}")).unwrap();
    }
    h.finish();
}

#[test]
fn a_udp_flow_follows_a_republished_port() {
    if skip() {
        return;
    }
    let mut h = Harness::new();
    let net = h
        .mgr
        .create_network(&NetworkSpec {
            subnet: Some(h.subnet(1)),
            ..spec("udp")
        })
        .unwrap();
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let publish = || AttachOptions {
        ports: vec![format!("127.0.0.1:{port}:53/udp").parse().unwrap()],
        ..Default::default()
    };
    let old = h.sandbox("old");
    let eo = h.mgr.attach("old", &old, "udp", &publish()).unwrap();
    udp_server(&old, 53, "old");
    // One client socket, so both datagrams are the same conntrack flow.
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let ask = |msg: &str| {
        client.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 64];
        client
            .recv(&mut buf)
            .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    assert_eq!(ask("1").unwrap(), "old:1");
    h.mgr.release_all("old").unwrap();
    // The new container has another address: a stale DNAT would miss it.
    let new = h.sandbox("new");
    let other = Ipv4Addr::from(u32::from(net.subnet.addr()) + 50);
    let en = h
        .mgr
        .attach(
            "new",
            &new,
            "udp",
            &AttachOptions {
                ip: Some(other),
                ..publish()
            },
        )
        .unwrap();
    h.host_ifaces.extend([eo.host_iface, en.host_iface]);
    udp_server(&new, 53, "new");
    assert_eq!(ask("2").unwrap(), "new:2");
    h.mgr.release_all("new").unwrap();
    h.finish();
}
