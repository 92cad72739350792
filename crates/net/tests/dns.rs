//! Name resolution through the real per-network DNS server process
//! (`berth-net-dns`), queried from inside the test's sandboxes. The only
//! upstream it ever forwards to is this test's own responder on loopback.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use berth_net::dns::{self, parse_response, query_bytes};
use berth_net::{AttachOptions, NetworkSpec, sandbox};
use common::*;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

/// A loopback DNS responder answering every A query with 192.0.2.77.
fn fake_upstream() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, q.metadata.op_code);
            r.metadata.message_type = MessageType::Response;
            r.add_queries(q.queries.iter().cloned());
            if q.queries[0].query_type() == RecordType::A {
                r.add_answer(Record::from_rdata(
                    q.queries[0].name().clone(),
                    1,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 77))),
                ));
            }
            let _ = s.send_to(&r.to_vec().unwrap(), from);
        }
    });
    addr
}

/// Asks `server:53` for `name` from inside `ns`.
#[track_caller]
fn ask(ns: &std::path::Path, server: Ipv4Addr, name: &str) -> (ResponseCode, Vec<Ipv4Addr>) {
    let q = query_bytes(0x4b1d, name, RecordType::A).unwrap();
    let name = name.to_string();
    sandbox::run_in(ns, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.send_to(&q, (server, 53)).unwrap();
        let mut buf = [0u8; 1500];
        let n = s
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no answer for {name:?} from {server}: {e}"));
        parse_response(&buf[..n])
    })
    .unwrap()
}

#[test]
fn containers_resolve_each_other_by_name_and_alias() {
    if skip() {
        return;
    }
    let mut h = Harness::with_dns(Some(fake_upstream()));
    let net = h
        .mgr
        .create_network(&NetworkSpec {
            name: "app".into(),
            subnet: Some(h.subnet(1)),
            ..Default::default()
        })
        .unwrap();
    let (w, c) = (h.sandbox("web-id-0123456789abcdef"), h.sandbox("client-id"));
    let ew = h
        .mgr
        .attach(
            "web-id-0123456789abcdef",
            &w,
            "app",
            &AttachOptions {
                name: Some("web".into()),
                aliases: vec!["www".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let ec = h
        .mgr
        .attach(
            "client-id",
            &c,
            "app",
            &AttachOptions {
                name: Some("client".into()),
                ..Default::default()
            },
        )
        .unwrap();
    h.host_ifaces
        .extend([ew.host_iface.clone(), ec.host_iface.clone()]);
    let pid = dns::running_pid(&h.run_dir(), "app").expect("dns server runs");
    // A second attach did not start a second server.
    assert_eq!(
        std::fs::read_to_string(dns::pidfile(&h.run_dir(), "app"))
            .unwrap()
            .trim(),
        pid.to_string()
    );

    let gw = net.gateway;
    assert_eq!(ask(&c, gw, "web"), (ResponseCode::NoError, vec![ew.ip]));
    assert_eq!(ask(&c, gw, "WWW."), (ResponseCode::NoError, vec![ew.ip]));
    assert_eq!(
        ask(&c, gw, "web-id-01234"),
        (ResponseCode::NoError, vec![ew.ip]),
        "short id"
    );
    assert_eq!(ask(&w, gw, "client"), (ResponseCode::NoError, vec![ec.ip]));
    assert_eq!(ask(&c, gw, "nobody").0, ResponseCode::NXDomain);
    assert_eq!(
        ask(&c, gw, "elsewhere.test"),
        (ResponseCode::NoError, vec![Ipv4Addr::new(192, 0, 2, 77)]),
        "forwarded"
    );

    // busybox's resolver inside the sandbox, then a connection by the resolved name.
    let out = ns_cmd(&c, &["busybox", "nslookup", "web", &gw.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&ew.ip.to_string()), "{text}");
    tcp_server(&w, 8000, "by name");
    let (_, ips) = ask(&c, gw, "web");
    assert_eq!(tcp_get(Some(&c), sa(ips[0], 8000)).unwrap(), "by name");

    // Files for the container.
    let files = h.mgr.container_files("client-id", "client").unwrap();
    assert!(
        files.resolv_conf.contains(&format!("nameserver {gw}\n")),
        "{}",
        files.resolv_conf
    );
    assert!(
        files.hosts.contains(&format!("{}\tclient\n", ec.ip)),
        "{}",
        files.hosts
    );
    assert_eq!(files.hostname, "client\n");

    // Disconnecting removes the name; the last one out stops the server.
    h.mgr.release_all("web-id-0123456789abcdef").unwrap();
    assert_eq!(ask(&c, gw, "web").0, ResponseCode::NXDomain);
    h.mgr.release_all("client-id").unwrap();
    assert_eq!(dns::running_pid(&h.run_dir(), "app"), None);
    h.mgr.remove("app").unwrap();
    h.finish();
}

#[test]
fn default_network_has_no_names_and_internal_does_not_forward() {
    if skip() {
        return;
    }
    let mut h = Harness::with_dns(Some(fake_upstream()));
    let a = h.sandbox("a");
    let ea = h
        .mgr
        .attach(
            "a",
            &a,
            "bridge",
            &AttachOptions {
                name: Some("alpha".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let def = h.mgr.inspect("bridge").unwrap().network;
    assert_eq!(
        ask(&a, def.gateway, "alpha").0,
        ResponseCode::NXDomain,
        "no names on the default network (as Docker)"
    );
    assert_eq!(
        ask(&a, def.gateway, "elsewhere.test").1,
        [Ipv4Addr::new(192, 0, 2, 77)]
    );

    let inet = h
        .mgr
        .create_network(&NetworkSpec {
            name: "sealed".into(),
            subnet: Some(h.subnet(2)),
            internal: true,
            ..Default::default()
        })
        .unwrap();
    let p = h.sandbox("p");
    let ep = h
        .mgr
        .attach(
            "p",
            &p,
            "sealed",
            &AttachOptions {
                name: Some("pi".into()),
                ..Default::default()
            },
        )
        .unwrap();
    h.host_ifaces.extend([ea.host_iface, ep.host_iface]);
    assert_eq!(
        ask(&p, inet.gateway, "pi"),
        (ResponseCode::NoError, vec![ep.ip])
    );
    assert_eq!(
        ask(&p, inet.gateway, "elsewhere.test").0,
        ResponseCode::Refused,
        "internal: no forwarding"
    );
    h.finish();
}

#[test]
fn a_dns_server_that_cannot_start_rolls_the_attach_back() {
    if skip() {
        return;
    }
    let mut h = Harness::with_dns(Some(fake_upstream()));
    h.mgr
        .create_network(&NetworkSpec {
            name: "nodns".into(),
            subnet: Some(h.subnet(1)),
            ..Default::default()
        })
        .unwrap();
    let mut config = h.config.clone();
    config.dns = Some(berth_net::Launcher {
        argv: vec!["/bin/false".into()],
        upstreams: String::new(),
    });
    let mut broken = berth_net::NetworkManager::open(&h.db_path(), &h.run_dir(), config).unwrap();
    let ns = h.sandbox("c");
    let err = broken
        .attach("c", &ns, "nodns", &AttachOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("exited at start"), "{err}");
    h.host_ifaces
        .push(berth_net::state::host_iface_name("c", "nodns"));
    assert!(h.mgr.db().allocations("nodns").unwrap().is_empty());
    assert!(h.mgr.db().endpoints_of("c").unwrap().is_empty());
    // The real server starts fine afterwards.
    let e = h
        .mgr
        .attach("c", &ns, "nodns", &AttachOptions::default())
        .unwrap();
    h.host_ifaces.push(e.host_iface);
    assert!(dns::running_pid(&h.run_dir(), "nodns").is_some());
    h.finish();
}
