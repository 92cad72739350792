//! A small DNS server per network, listening on the bridge's gateway
//! address (UDP port 53). It answers the names of the containers on its
//! network (container name, `--alias`es, container id) from the
//! database, and forwards everything else to the host's resolvers.
//!
//! - Names of containers answer `A` with the container's address; other
//!   record types for such a name answer NOERROR with no records.
//! - An unknown single-label name answers NXDOMAIN without leaving the host.
//! - `--internal` networks and the predefined (default) network do not
//!   forward, and the default network answers no container names, as in Docker.
//!
//! The engine runs one per network as a detached process
//! ([`serve`], e.g. through the `berth-net-dns` binary); it writes
//! `<run_dir>/dns/<network>.pid` once it is listening.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{NetError, Result, io_err};
use crate::files;
use crate::state::Db;

/// TTL of answers for container names: short, containers come and go.
const TTL: u32 = 5;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send these bytes back.
    Answer(Vec<u8>),
    /// Not ours: forward the query unchanged upstream.
    Forward,
}

fn reply(query: &Message, code: ResponseCode, answers: Vec<Record>) -> Result<Vec<u8>> {
    let mut resp = Message::error_msg(query.metadata.id, query.metadata.op_code, code);
    resp.metadata.message_type = MessageType::Response;
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = !answers.is_empty() || code == ResponseCode::NXDomain;
    resp.add_queries(query.queries.iter().cloned());
    resp.add_answers(answers);
    resp.to_vec()
        .map_err(|e| NetError::Dns(format!("encode response: {e}")))
}

/// Decides how to answer `packet`. `lookup` maps a (lower-case, no
/// trailing dot) name to the addresses of containers on the network;
/// `forward` says whether non-local names may go upstream.
pub fn decide(
    packet: &[u8],
    mut lookup: impl FnMut(&str) -> Result<Vec<Ipv4Addr>>,
    forward: bool,
) -> Result<Decision> {
    let query =
        Message::from_vec(packet).map_err(|e| NetError::Dns(format!("malformed query: {e}")))?;
    if query.metadata.message_type != MessageType::Query || query.metadata.op_code != OpCode::Query
    {
        return Ok(Decision::Answer(reply(
            &query,
            ResponseCode::NotImp,
            vec![],
        )?));
    }
    let [q] = query.queries.as_slice() else {
        return Ok(Decision::Answer(reply(
            &query,
            ResponseCode::FormErr,
            vec![],
        )?));
    };
    let name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ips = lookup(&name)?;
    if !ips.is_empty() {
        let answers = if q.query_type() == RecordType::A {
            ips.iter()
                .map(|ip| Record::from_rdata(q.name().clone(), TTL, RData::A(A(*ip))))
                .collect()
        } else {
            vec![]
        };
        return Ok(Decision::Answer(reply(
            &query,
            ResponseCode::NoError,
            answers,
        )?));
    }
    if !name.contains('.') {
        return Ok(Decision::Answer(reply(
            &query,
            ResponseCode::NXDomain,
            vec![],
        )?));
    }
    if forward {
        Ok(Decision::Forward)
    } else {
        Ok(Decision::Answer(reply(
            &query,
            ResponseCode::Refused,
            vec![],
        )?))
    }
}

/// Sends `packet` to each upstream in turn until one answers.
pub fn forward(packet: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(sock) = UdpSocket::bind(bind) else {
            continue;
        };
        if sock.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err()
            || sock.send_to(packet, up).is_err()
        {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            // Only the upstream we asked, and only the reply to our id.
            if from == *up && n >= 2 && buf[..2] == packet[..2] {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }
    None
}

/// The host's resolvers from /etc/resolv.conf, port 53.
pub fn host_upstreams() -> Vec<SocketAddr> {
    files::host_resolv_conf()
        .nameservers
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Parses `host` or a comma-separated `IP[:PORT]` list.
pub fn parse_upstreams(spec: &str) -> Result<Vec<SocketAddr>> {
    if spec == "host" {
        return Ok(host_upstreams());
    }
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| NetError::Dns(format!("bad upstream {s:?}: expected IP or IP:PORT")))
        })
        .collect()
}

/// What a server answers and where it forwards.
#[derive(Clone, Debug)]
struct Policy {
    network: String,
    /// Answer container names (not on the predefined network).
    names: bool,
    /// Forward other names (not on `--internal` networks).
    forward: bool,
    upstreams: Vec<SocketAddr>,
}

impl Policy {
    fn decide(&self, db: &Db, packet: &[u8]) -> Result<Decision> {
        decide(
            packet,
            |name| {
                if self.names {
                    db.resolve(&self.network, name)
                } else {
                    Ok(vec![])
                }
            },
            self.forward,
        )
    }
}

fn servfail(packet: &[u8]) -> Option<Vec<u8>> {
    Message::from_vec(packet)
        .ok()
        .and_then(|q| reply(&q, ResponseCode::ServFail, vec![]).ok())
}

/// Sends `packet` over TCP (RFC 1035 4.2.2: two-byte length prefix) to
/// each upstream in turn until one answers.
pub fn forward_tcp(packet: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let Ok(mut s) = TcpStream::connect_timeout(up, UPSTREAM_TIMEOUT) else {
            continue;
        };
        if let Ok(resp) = tcp_exchange(&mut s, packet) {
            return Some(resp);
        }
    }
    None
}

fn tcp_exchange(s: &mut TcpStream, packet: &[u8]) -> io::Result<Vec<u8>> {
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    s.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    write_framed(s, packet)?;
    read_framed(s)
}

fn write_framed(s: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    let len =
        u16::try_from(bytes.len()).map_err(|_| io::Error::other("dns message over 64 KiB"))?;
    s.write_all(&len.to_be_bytes())?;
    s.write_all(bytes)
}

fn read_framed(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

/// Serves one TCP client until it closes or goes idle.
fn serve_tcp_client(mut s: TcpStream, db_path: &Path, policy: &Policy) -> Result<()> {
    let db = Db::open(db_path)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io_err("dns: tcp timeout"))?;
    while let Ok(query) = read_framed(&mut s) {
        let resp = match policy.decide(&db, &query)? {
            Decision::Answer(b) => b,
            Decision::Forward => {
                match forward_tcp(&query, &policy.upstreams).or_else(|| servfail(&query)) {
                    Some(b) => b,
                    None => return Ok(()),
                }
            }
        };
        write_framed(&mut s, &resp).map_err(io_err("dns: tcp reply"))?;
    }
    Ok(())
}

/// A bound DNS server for one network (UDP and TCP on the same address).
pub struct Server {
    sock: UdpSocket,
    tcp: TcpListener,
    db: Db,
    db_path: PathBuf,
    policy: Policy,
}

impl Server {
    /// Binds `addr` (UDP, then TCP on the same port) and serves
    /// `network`'s names from the database at `db_path`.
    pub fn bind(
        db_path: &Path,
        network: &str,
        addr: SocketAddr,
        upstreams: Vec<SocketAddr>,
    ) -> Result<Self> {
        let db = Db::open(db_path)?;
        let net = db.network(network)?;
        let sock = UdpSocket::bind(addr).map_err(io_err(format!(
            "dns: bind udp {addr} for network {network}"
        )))?;
        let bound = sock.local_addr().map_err(io_err("dns: local address"))?;
        let tcp = TcpListener::bind(bound).map_err(io_err(format!(
            "dns: bind tcp {bound} for network {network}"
        )))?;
        Ok(Self {
            sock,
            tcp,
            db,
            db_path: db_path.to_path_buf(),
            policy: Policy {
                network: network.to_string(),
                names: !net.predefined,
                forward: !net.internal && !upstreams.is_empty(),
                upstreams,
            },
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.sock.local_addr().map_err(io_err("dns: local address"))
    }

    /// Serves until the process ends. Errors on single queries are
    /// dropped (a malformed message must not stop the server).
    pub fn run(self) -> ! {
        let Server {
            sock,
            tcp,
            db,
            db_path,
            policy,
        } = self;
        let tcp_policy = policy.clone();
        std::thread::spawn(move || {
            for conn in tcp.incoming() {
                let Ok(conn) = conn else { continue };
                let (db_path, policy) = (db_path.clone(), tcp_policy.clone());
                std::thread::spawn(move || serve_tcp_client(conn, &db_path, &policy));
            }
        });
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if let Err(e) = handle_datagram(&sock, &db, &policy, &buf[..n], from) {
                eprintln!("berth-net-dns: {}: {e}", policy.network);
            }
        }
    }
}

/// Handles one datagram from `from`; forwarding happens on a thread so a
/// slow upstream does not hold up local answers.
fn handle_datagram(
    sock: &UdpSocket,
    db: &Db,
    policy: &Policy,
    packet: &[u8],
    from: SocketAddr,
) -> Result<()> {
    match policy.decide(db, packet)? {
        Decision::Answer(bytes) => {
            sock.send_to(&bytes, from)
                .map_err(io_err(format!("dns: reply to {from}")))?;
        }
        Decision::Forward => {
            let sock = sock.try_clone().map_err(io_err("dns: clone socket"))?;
            let (packet, upstreams) = (packet.to_vec(), policy.upstreams.clone());
            std::thread::spawn(move || {
                if let Some(bytes) = forward(&packet, &upstreams).or_else(|| servfail(&packet)) {
                    let _ = sock.send_to(&bytes, from);
                }
            });
        }
    }
    Ok(())
}

/// Where the DNS server of `network` records its pid.
pub fn pidfile(run_dir: &Path, network: &str) -> PathBuf {
    run_dir.join("dns").join(format!("{network}.pid"))
}

/// Where the DNS server of `network` writes its errors.
pub fn logfile(run_dir: &Path, network: &str) -> PathBuf {
    run_dir.join("dns").join(format!("{network}.log"))
}

/// Entry point of the detached per-network process: binds the network's
/// gateway on port 53, writes the pidfile, serves forever.
pub fn serve(
    db_path: &Path,
    network: &str,
    run_dir: &Path,
    upstreams: Vec<SocketAddr>,
) -> Result<Infallible> {
    let gateway = Db::open(db_path)?.network(network)?.gateway;
    let server = Server::bind(
        db_path,
        network,
        SocketAddr::new(IpAddr::V4(gateway), 53),
        upstreams,
    )?;
    let pf = pidfile(run_dir, network);
    let dir = pf.parent().expect("pidfile has a parent");
    fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
    let tmp = pf.with_extension(format!("pid.{}", std::process::id()));
    fs::write(&tmp, format!("{}\n", std::process::id()))
        .map_err(io_err(format!("write {}", tmp.display())))?;
    fs::rename(&tmp, &pf).map_err(io_err(format!("rename to {}", pf.display())))?;
    server.run()
}

fn alive_server(pid: u32, network: &str) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Field 3 (after the parenthesised comm) is the state; Z = zombie.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, None | Some("Z") | Some("X")) {
        return false;
    }
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    cmdline
        .split(|&b| b == 0)
        .any(|arg| arg == network.as_bytes())
}

/// The pid of `network`'s running DNS server, if any.
pub fn running_pid(run_dir: &Path, network: &str) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pidfile(run_dir, network))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    alive_server(pid, network).then_some(pid)
}

fn lock(run_dir: &Path, network: &str) -> Result<Flock<File>> {
    let dir = run_dir.join("dns");
    fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    let path = dir.join(format!("{network}.lock"));
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(format!("open {}", path.display())))?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| NetError::Io {
        what: format!("lock {}", path.display()),
        source: e.into(),
    })
}

/// How to start a server: `argv` followed by `DB_PATH NETWORK RUN_DIR UPSTREAMS`.
#[derive(Clone, Debug)]
pub struct Launcher {
    pub argv: Vec<OsString>,
    /// `host` (the host's resolv.conf) or `IP[:PORT],...`; empty: never forward.
    pub upstreams: String,
}

/// Starts `network`'s server unless it runs, and waits until it listens.
/// Serialised per network with a lock file so parallel attaches start one.
pub fn ensure_running(
    launcher: &Launcher,
    db_path: &Path,
    run_dir: &Path,
    network: &str,
) -> Result<u32> {
    let _guard = lock(run_dir, network)?;
    if let Some(pid) = running_pid(run_dir, network) {
        return Ok(pid);
    }
    let (prog, args) = launcher
        .argv
        .split_first()
        .ok_or_else(|| NetError::Dns("empty launcher command".into()))?;
    let log_path = logfile(run_dir, network);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err(format!("open {}", log_path.display())))?;
    let mut child = Command::new(prog)
        .args(args)
        .arg(db_path)
        .arg(network)
        .arg(run_dir)
        .arg(&launcher.upstreams)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Its own process group: a Ctrl-C at the engine's terminal must not stop it.
        .process_group(0)
        .spawn()
        .map_err(io_err(format!("start dns server {prog:?} for {network}")))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if running_pid(run_dir, network) == Some(pid) {
            // Reap it whenever it exits (only matters to long-lived callers).
            std::thread::spawn(move || child.wait());
            return Ok(pid);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(NetError::Dns(format!(
                "dns server for {network} exited at start ({status})"
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NetError::Dns(format!(
                "dns server for {network} did not start listening within 5s"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops `network`'s server if it runs and removes its files.
pub fn stop(run_dir: &Path, network: &str) -> Result<()> {
    let _guard = lock(run_dir, network)?;
    if let Some(pid) = running_pid(run_dir, network) {
        match kill(Pid::from_raw(pid as i32), Signal::SIGTERM) {
            Ok(()) | Err(nix::Error::ESRCH) => {}
            Err(e) => {
                return Err(NetError::Io {
                    what: format!("stop dns server {pid}"),
                    source: e.into(),
                });
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive_server(pid, network) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for p in [
        pidfile(run_dir, network),
        run_dir.join("dns").join(format!("{network}.lock")),
    ] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(NetError::Io {
                    what: format!("remove {}", p.display()),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// Builds a query for tests and tools.
pub fn query_bytes(id: u16, name: &str, rtype: RecordType) -> Result<Vec<u8>> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    let name =
        Name::from_ascii(name).map_err(|e| NetError::Dns(format!("bad name {name:?}: {e}")))?;
    m.add_query(hickory_proto::op::Query::query(name, rtype));
    m.to_vec()
        .map_err(|e| NetError::Dns(format!("encode query: {e}")))
}

/// Parses a response into (rcode, A addresses).
pub fn parse_response(bytes: &[u8]) -> Result<(ResponseCode, Vec<Ipv4Addr>)> {
    let m =
        Message::from_vec(bytes).map_err(|e| NetError::Dns(format!("malformed response: {e}")))?;
    let ips = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    Ok((m.metadata.response_code, ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Result<Vec<Ipv4Addr>> {
        Ok(match name {
            "web" | "www" => vec!["10.199.1.2".parse().unwrap()],
            _ => vec![],
        })
    }

    fn answer(d: Decision) -> (ResponseCode, Vec<Ipv4Addr>) {
        match d {
            Decision::Answer(b) => parse_response(&b).unwrap(),
            Decision::Forward => panic!("expected an answer"),
        }
    }

    #[test]
    fn local_names_answer_a_records() {
        let q = query_bytes(7, "WEB.", RecordType::A).unwrap();
        let (code, ips) = answer(decide(&q, lookup, true).unwrap());
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(ips, ["10.199.1.2".parse::<Ipv4Addr>().unwrap()]);
        let q = query_bytes(8, "www", RecordType::AAAA).unwrap();
        assert_eq!(
            answer(decide(&q, lookup, true).unwrap()),
            (ResponseCode::NoError, vec![])
        );
    }

    #[test]
    fn unknown_names() {
        let q = query_bytes(9, "nosuch", RecordType::A).unwrap();
        assert_eq!(
            answer(decide(&q, lookup, true).unwrap()).0,
            ResponseCode::NXDomain
        );
        let q = query_bytes(10, "example.test.", RecordType::A).unwrap();
        assert_eq!(decide(&q, lookup, true).unwrap(), Decision::Forward);
        assert_eq!(
            answer(decide(&q, lookup, false).unwrap()).0,
            ResponseCode::Refused
        );
        assert!(decide(b"\x00\x01garbage", lookup, true).is_err());
    }

    #[test]
    fn response_keeps_id_and_question() {
        let q = query_bytes(4242, "web", RecordType::A).unwrap();
        let Decision::Answer(b) = decide(&q, lookup, true).unwrap() else {
            panic!()
        };
        let m = Message::from_vec(&b).unwrap();
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.queries.len(), 1);
    }

    #[test]
    fn upstream_parsing() {
        let u = parse_upstreams("127.0.0.1:5353,192.0.2.1").unwrap();
        assert_eq!(
            u,
            [
                "127.0.0.1:5353".parse::<SocketAddr>().unwrap(),
                "192.0.2.1:53".parse().unwrap()
            ]
        );
        assert!(parse_upstreams("").unwrap().is_empty());
        assert!(parse_upstreams("nope").is_err());
    }

    /// A real server on loopback forwarding to a real (test-owned) upstream on loopback.
    #[test]
    fn server_answers_and_forwards_on_loopback() {
        use crate::ipam::Pool;
        use crate::state::{EndpointRequest, NewNetwork};
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("berth.db");
        let mut db = Db::open(&db_path).unwrap();
        db.create_network(&NewNetwork {
            name: "n".into(),
            pool: Pool::new("10.199.1.0/24".parse().unwrap(), None, None).unwrap(),
            internal: false,
            labels: Default::default(),
            mtu: 1500,
            predefined: false,
            bridge_prefix: "bt".into(),
            avoid: vec![],
        })
        .unwrap();
        db.reserve_endpoint(&EndpointRequest {
            container_id: "c1".into(),
            container_name: Some("web".into()),
            network: "n".into(),
            sandbox: "/x".into(),
            ..Default::default()
        })
        .unwrap();

        // The upstream: answers every query with 192.0.2.77.
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        let up_addr = up.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = up.recv_from(&mut buf) {
                let q = Message::from_vec(&buf[..n]).unwrap();
                let rec = Record::from_rdata(
                    q.queries[0].name().clone(),
                    1,
                    RData::A(A("192.0.2.77".parse().unwrap())),
                );
                let b = reply(&q, ResponseCode::NoError, vec![rec]).unwrap();
                up.send_to(&b, from).unwrap();
            }
        });

        let server =
            Server::bind(&db_path, "n", "127.0.0.1:0".parse().unwrap(), vec![up_addr]).unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            server.run();
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let ask = |name: &str| {
            client
                .send_to(&query_bytes(1, name, RecordType::A).unwrap(), addr)
                .unwrap();
            let mut buf = [0u8; 512];
            let n = client.recv(&mut buf).unwrap();
            parse_response(&buf[..n]).unwrap()
        };
        assert_eq!(
            ask("web"),
            (ResponseCode::NoError, vec!["10.199.1.2".parse().unwrap()])
        );
        assert_eq!(
            ask("elsewhere.test"),
            (ResponseCode::NoError, vec!["192.0.2.77".parse().unwrap()])
        );
        assert_eq!(ask("ghost").0, ResponseCode::NXDomain);
        // TCP on the same port (clients retry there after a truncated answer).
        let mut s = TcpStream::connect(addr).unwrap();
        let resp = tcp_exchange(&mut s, &query_bytes(2, "web", RecordType::A).unwrap()).unwrap();
        assert_eq!(
            parse_response(&resp).unwrap(),
            (ResponseCode::NoError, vec!["10.199.1.2".parse().unwrap()])
        );
        let resp = tcp_exchange(&mut s, &query_bytes(3, "ghost", RecordType::A).unwrap()).unwrap();
        assert_eq!(
            parse_response(&resp).unwrap().0,
            ResponseCode::NXDomain,
            "several queries on one connection"
        );
    }
}
