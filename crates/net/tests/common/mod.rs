//! Shared pieces of the integration tests: a per-test harness with its own
//! bridge prefix, nft table, subnet pool, database and run dir (so tests
//! run in parallel), cleanup on drop, leak checks, and traffic helpers
//! that run real sockets inside the test's own sandboxes.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use berth_net::netlink::Netlink;
use berth_net::{Config, Launcher, NetworkManager, Subnet, sandbox};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Skips (returns true) when not root.
pub fn skip() -> bool {
    if !berth_testutil::is_root() {
        eprintln!("skipping: needs root");
        return true;
    }
    false
}

/// A /20 of 10.199.0.0/16 for harness `n` of process `pid`, skipping any
/// that a route on the host (another test run, anything else) overlaps.
fn test_pool(n: u32, pid: u32) -> Subnet {
    let routes = berth_net::ipam::host_routes().unwrap();
    (0..16u32)
        .map(|k| ((pid + n * 5 + k) % 16) as u8)
        .map(|k| Subnet::new(Ipv4Addr::new(10, 199, k * 16, 0), 20).unwrap())
        .find(|p| {
            !routes.iter().any(|(_, r)| r.overlaps(p)) && !CLAIMED.lock().unwrap().contains(p)
        })
        .inspect(|p| CLAIMED.lock().unwrap().push(*p))
        .expect("a free /20 in 10.199.0.0/16 for the test")
}

static CLAIMED: std::sync::Mutex<Vec<Subnet>> = std::sync::Mutex::new(Vec::new());

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub mgr: NetworkManager,
    /// This harness's /20 of 10.199.0.0/16.
    pub pool: Subnet,
    /// Every host-side interface the test created, for the leak check.
    pub host_ifaces: Vec<String>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_dns(None)
    }

    /// `dns_upstream`: `Some(addr)` runs the real per-network DNS server
    /// (the `berth-net-dns` binary) forwarding to `addr`; tests only ever
    /// point it at a loopback responder of their own.
    pub fn with_dns(dns_upstream: Option<SocketAddr>) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < 16, "pool of test subnets exhausted");
        let pid = std::process::id() % 100_000;
        let dir = tempfile::Builder::new()
            .prefix("berth-net-test-")
            .tempdir()
            .unwrap();
        let pool = Subnet::new(Ipv4Addr::new(10, 199, (n * 16) as u8, 0), 20).unwrap();
        let config = Config {
            bridge_prefix: format!("bt{pid}x{n}"),
            nft_table: format!("berth_t{pid}_{n}"),
            default_network: "bridge".into(),
            default_subnet: None,
            default_subnet_pool: pool,
            pool_prefix: 24,
            mtu: 1500,
            dns: dns_upstream.map(|u| Launcher {
                argv: vec![env!("CARGO_BIN_EXE_berth-net-dns").into()],
                upstreams: u.to_string(),
            }),
        };
        let mgr = NetworkManager::open(
            &dir.path().join("berth.db"),
            &dir.path().join("run"),
            config.clone(),
        )
        .unwrap();
        Self {
            dir,
            config,
            mgr,
            pool,
            host_ifaces: Vec::new(),
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("berth.db")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// The k-th /24 of this harness's pool.
    pub fn subnet(&self, k: u8) -> Subnet {
        let o = self.pool.addr().octets();
        Subnet::new(Ipv4Addr::new(o[0], o[1], o[2] + k, 0), 24).unwrap()
    }

    /// A second manager on the same database and run dir (another "process").
    pub fn another(&self) -> NetworkManager {
        NetworkManager::open(&self.db_path(), &self.run_dir(), self.config.clone()).unwrap()
    }

    /// A sandbox for `name` (the container id).
    pub fn sandbox(&self, name: &str) -> PathBuf {
        self.mgr.create_sandbox(name).unwrap()
    }

    /// Asserts that nothing of this harness is left on the host.
    pub fn assert_no_leaks(&self) {
        let mut nl = Netlink::open().unwrap();
        let links: Vec<String> = nl
            .links_with_prefix(&self.config.bridge_prefix)
            .unwrap()
            .into_iter()
            .map(|l| l.0)
            .collect();
        assert!(links.is_empty(), "bridges left: {links:?}");
        for i in &self.host_ifaces {
            assert!(nl.link_index(i).unwrap().is_none(), "veth {i} left");
        }
        assert!(
            self.mgr.firewall().list().unwrap().is_none(),
            "nft table {} left",
            self.config.nft_table
        );
        let ns = sandbox::list(&self.run_dir()).unwrap();
        assert!(ns.is_empty(), "sandboxes left: {ns:?}");
        for n in self.mgr.list().unwrap() {
            assert!(
                self.mgr.db().allocations(&n.name).unwrap().is_empty(),
                "allocations left on {}",
                n.name
            );
        }
        assert!(
            self.mgr.db().all_endpoints().unwrap().is_empty(),
            "endpoints left"
        );
        let pids: Vec<_> = self
            .mgr
            .list()
            .unwrap()
            .iter()
            .filter_map(|n| berth_net::dns::running_pid(&self.run_dir(), &n.name))
            .collect();
        assert!(pids.is_empty(), "dns servers left: {pids:?}");
    }

    /// Full cleanup, then the leak check.
    pub fn finish(mut self) {
        self.mgr.reset().unwrap();
        self.assert_no_leaks();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Runs also when a test panics; after finish() this finds nothing to do.
        let _ = self.mgr.reset();
    }
}

const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// A TCP server inside `ns` on `port` that answers every connection with
/// `reply`, then closes. Runs until the process ends (the sandbox going
/// away takes its socket with it).
pub fn tcp_server(ns: &Path, port: u16, reply: &str) {
    let l = sandbox::run_in(ns, move || {
        TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).map_err(|e| {
            berth_net::NetError::Io {
                what: "test listener".into(),
                source: e,
            }
        })
    })
    .unwrap();
    let reply = reply.to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.write_all(reply.as_bytes());
        }
    });
}

/// A UDP echo server inside `ns`: replies `<reply>:<what it got>`.
pub fn udp_server(ns: &Path, port: u16, reply: &str) {
    let s = sandbox::run_in(ns, move || {
        UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).map_err(|e| {
            berth_net::NetError::Io {
                what: "test udp socket".into(),
                source: e,
            }
        })
    })
    .unwrap();
    let reply = reply.to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let msg = format!("{reply}:{}", String::from_utf8_lossy(&buf[..n]));
            let _ = s.send_to(msg.as_bytes(), from);
        }
    });
}

fn tcp_get_here(addr: SocketAddrV4) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.into(), IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn udp_ask_here(addr: SocketAddrV4, msg: &str) -> std::io::Result<String> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.send_to(msg.as_bytes(), addr)?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Connects to `addr` from `ns` (or from the host) and returns what the
/// server sent, or the error.
pub fn tcp_get(ns: Option<&Path>, addr: SocketAddrV4) -> Result<String, String> {
    match ns {
        None => tcp_get_here(addr).map_err(|e| e.to_string()),
        Some(ns) => sandbox::run_in(
            ns,
            move || Ok(tcp_get_here(addr).map_err(|e| e.to_string())),
        )
        .unwrap(),
    }
}

pub fn udp_ask(ns: Option<&Path>, addr: SocketAddrV4, msg: &str) -> Result<String, String> {
    let msg = msg.to_string();
    match ns {
        None => udp_ask_here(addr, &msg).map_err(|e| e.to_string()),
        Some(ns) => sandbox::run_in(ns, move || {
            Ok(udp_ask_here(addr, &msg).map_err(|e| e.to_string()))
        })
        .unwrap(),
    }
}

/// Runs a host command inside `ns` (nsenter), bounded by `timeout`.
pub fn ns_cmd(ns: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("timeout")
        .arg("10")
        .arg("nsenter")
        .arg(format!("--net={}", ns.display()))
        .arg("--")
        .args(args)
        .output()
        .unwrap()
}

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// A free TCP port on the host (kernel-chosen).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
