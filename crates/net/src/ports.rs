//! Published ports: parsing `-p` (pure), expanding ranges into single
//! mappings, and the host-side checks (is a host port free, pick a random
//! free one).
//!
//! Accepted forms (Docker's, IPv4 only):
//! `CPORT`, `HPORT:CPORT`, `HOSTIP:HPORT:CPORT`, `HOSTIP::CPORT`, each port
//! also a range `A-B`, each form with an optional `/tcp` or `/udp`.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl FromStr for Proto {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(format!("unknown protocol {other:?} (expected tcp or udp)")),
        }
    }
}

/// An inclusive port range; a single port is `start == end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        Self {
            start: port,
            end: port,
        }
    }

    pub fn len(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// One parsed `-p` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// `None` means all host addresses (0.0.0.0).
    pub host_ip: Option<Ipv4Addr>,
    /// `None` means "pick random free host ports".
    pub host_ports: Option<PortRange>,
    pub container_ports: PortRange,
    pub proto: Proto,
}

/// One published port after expansion: what the firewall DNATs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub proto: Proto,
    /// 0.0.0.0 means every host address.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip, self.host_port, self.container_port, self.proto
        )
    }
}

fn parse_port(spec: &str, s: &str, what: &str) -> Result<u16> {
    let bad = |reason: String| NetError::InvalidPort {
        spec: spec.to_string(),
        reason,
    };
    let n: u32 = s
        .parse()
        .map_err(|_| bad(format!("{what} {s:?} is not a number")))?;
    if n == 0 || n > 65535 {
        return Err(bad(format!("{what} {n} is out of range 1-65535")));
    }
    Ok(n as u16)
}

fn parse_range(spec: &str, s: &str, what: &str) -> Result<PortRange> {
    match s.split_once('-') {
        None => Ok(PortRange::single(parse_port(spec, s, what)?)),
        Some((a, b)) => {
            let (start, end) = (parse_port(spec, a, what)?, parse_port(spec, b, what)?);
            if end < start {
                return Err(NetError::InvalidPort {
                    spec: spec.to_string(),
                    reason: format!("{what} range {s:?} ends before it starts"),
                });
            }
            Ok(PortRange { start, end })
        }
    }
}

impl FromStr for PortSpec {
    type Err = NetError;

    fn from_str(spec: &str) -> Result<Self> {
        let bad = |reason: &str| NetError::InvalidPort {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if spec.is_empty() {
            return Err(bad("empty"));
        }
        if spec.starts_with('[') {
            return Err(bad("IPv6 host addresses are not supported"));
        }
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((rest, p)) => (rest, p.parse::<Proto>().map_err(|e| bad(&e))?),
            None => (spec, Proto::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (host_ip, host, container) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (Some(*ip), (!h.is_empty()).then_some(*h), *c),
            _ => {
                return Err(bad(
                    "too many ':' (expected [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO])",
                ));
            }
        };
        let host_ip = match host_ip {
            None | Some("") => None,
            Some(ip) => Some(
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| bad(&format!("host address {ip:?} is not IPv4")))?,
            ),
        };
        if container.is_empty() {
            return Err(bad("missing container port"));
        }
        let container_ports = parse_range(spec, container, "container port")?;
        let host_ports = match host {
            None => None,
            Some("") => return Err(bad("empty host port")),
            Some(h) => Some(parse_range(spec, h, "host port")?),
        };
        if let Some(h) = host_ports
            && container_ports.len() > 1
            && h.len() != container_ports.len()
        {
            return Err(bad(&format!(
                "host range has {} ports but container range has {}",
                h.len(),
                container_ports.len()
            )));
        }
        Ok(PortSpec {
            host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
            host_ports,
            container_ports,
            proto,
        })
    }
}

impl PortSpec {
    /// `-P`: each EXPOSEd port published on a random host port.
    pub fn publish_all(exposed: &[(u16, Proto)]) -> Vec<PortSpec> {
        exposed
            .iter()
            .map(|&(port, proto)| PortSpec {
                host_ip: None,
                host_ports: None,
                container_ports: PortRange::single(port),
                proto,
            })
            .collect()
    }

    /// Expands the spec into single mappings. `pick` chooses a host port
    /// for a container port: given the candidates (a host range of several
    /// ports for one container port, or `None` for "any"), it returns the
    /// port or an error. Pairwise ranges map one to one.
    pub fn expand(
        &self,
        mut pick: impl FnMut(Option<PortRange>) -> Result<u16>,
    ) -> Result<Vec<PortMapping>> {
        let host_ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut out = Vec::new();
        for (i, container_port) in
            (self.container_ports.start..=self.container_ports.end).enumerate()
        {
            let host_port = match self.host_ports {
                Some(h) if h.len() == self.container_ports.len() => h.start + i as u16,
                Some(h) => pick(Some(h))?,
                None => pick(None)?,
            };
            out.push(PortMapping {
                proto: self.proto,
                host_ip,
                host_port,
                container_port,
            });
        }
        Ok(out)
    }
}

/// Two mappings collide when they share protocol and host port and their
/// host addresses overlap (0.0.0.0 overlaps every address).
pub fn conflicts(a: &PortMapping, b: &PortMapping) -> bool {
    a.proto == b.proto
        && a.host_port == b.host_port
        && (a.host_ip == b.host_ip || a.host_ip.is_unspecified() || b.host_ip.is_unspecified())
}

/// Checks that no process on the host has `proto` `host_ip:port` bound,
/// by binding it ourselves for a moment (bind(2) fails with EADDRINUSE).
pub fn probe_host_port(m: &PortMapping) -> Result<()> {
    let addr = SocketAddrV4::new(m.host_ip, m.host_port);
    let res = match m.proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
    };
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(NetError::HostPortInUse {
            host_ip: m.host_ip,
            port: m.host_port,
            proto: m.proto,
            reason: "bound by a process on the host".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            Err(NetError::InvalidAddress {
                spec: m.host_ip.to_string(),
                reason: "not an address of this host".into(),
            })
        }
        Err(e) => Err(NetError::Io {
            what: format!("probe host port {m}"),
            source: e,
        }),
    }
}

/// Asks the kernel for a free ephemeral port on `host_ip` (bind to port 0).
pub fn random_free_port(proto: Proto, host_ip: Ipv4Addr) -> Result<u16> {
    let addr = SocketAddrV4::new(host_ip, 0);
    let port = match proto {
        Proto::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Proto::Udp => UdpSocket::bind(addr).and_then(|s| s.local_addr()),
    }
    .map_err(crate::error::io_err(format!(
        "find a free {proto} port on {host_ip}"
    )))?
    .port();
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: u16, b: u16) -> PortRange {
        PortRange { start: a, end: b }
    }

    #[test]
    fn parse_table() {
        let lo = Some(Ipv4Addr::LOCALHOST);
        type Case = (
            &'static str,
            Option<Ipv4Addr>,
            Option<PortRange>,
            PortRange,
            Proto,
        );
        let cases: &[Case] = &[
            ("80", None, None, r(80, 80), Proto::Tcp),
            ("80/udp", None, None, r(80, 80), Proto::Udp),
            ("8080:80", None, Some(r(8080, 8080)), r(80, 80), Proto::Tcp),
            (
                "127.0.0.1:8080:80/udp",
                lo,
                Some(r(8080, 8080)),
                r(80, 80),
                Proto::Udp,
            ),
            ("127.0.0.1::80", lo, None, r(80, 80), Proto::Tcp),
            (
                "0.0.0.0:8080:80",
                None,
                Some(r(8080, 8080)),
                r(80, 80),
                Proto::Tcp,
            ),
            (
                "8000-8009:9000-9009",
                None,
                Some(r(8000, 8009)),
                r(9000, 9009),
                Proto::Tcp,
            ),
            (
                "8000-8009:80",
                None,
                Some(r(8000, 8009)),
                r(80, 80),
                Proto::Tcp,
            ),
            ("7000-7002", None, None, r(7000, 7002), Proto::Tcp),
        ];
        for (spec, ip, host, container, proto) in cases {
            let p: PortSpec = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(
                p,
                PortSpec {
                    host_ip: *ip,
                    host_ports: *host,
                    container_ports: *container,
                    proto: *proto
                },
                "{spec}"
            );
        }
    }

    #[test]
    fn parse_errors_name_the_problem() {
        for (spec, needle) in [
            ("", "empty"),
            ("abc", "not a number"),
            ("0", "out of range"),
            ("70000", "out of range"),
            ("80/sctp", "unknown protocol"),
            ("1.2.3.4:5:6:7", "too many"),
            ("nothost:80:80", "not IPv4"),
            ("[::1]:80:80", "IPv6"),
            ("8080:", "missing container port"),
            (":80", "empty host port"),
            ("90-80", "ends before"),
            (
                "8000-8001:80-82",
                "host range has 2 ports but container range has 3",
            ),
        ] {
            let err = spec.parse::<PortSpec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{spec:?}: {err}");
            assert!(err.contains("invalid port mapping"), "{err}");
        }
    }

    #[test]
    fn expand_pairs_ranges_and_picks() {
        let p: PortSpec = "8000-8002:9000-9002/udp".parse().unwrap();
        let m = p.expand(|_| panic!("no pick for paired ranges")).unwrap();
        assert_eq!(
            m.iter()
                .map(|m| (m.host_port, m.container_port))
                .collect::<Vec<_>>(),
            [(8000, 9000), (8001, 9001), (8002, 9002)]
        );
        assert!(
            m.iter()
                .all(|m| m.proto == Proto::Udp && m.host_ip.is_unspecified())
        );

        let p: PortSpec = "80".parse().unwrap();
        let mut asked = Vec::new();
        let m = p
            .expand(|cand| {
                asked.push(cand);
                Ok(40000)
            })
            .unwrap();
        assert_eq!(asked, [None]);
        assert_eq!(m[0].host_port, 40000);

        let p: PortSpec = "127.0.0.1:8000-8005:80".parse().unwrap();
        let m = p.expand(|cand| Ok(cand.unwrap().start + 3)).unwrap();
        assert_eq!((m[0].host_ip, m[0].host_port), (Ipv4Addr::LOCALHOST, 8003));
    }

    #[test]
    fn publish_all_uses_random_ports() {
        let specs = PortSpec::publish_all(&[(80, Proto::Tcp), (53, Proto::Udp)]);
        assert_eq!(specs.len(), 2);
        assert!(
            specs
                .iter()
                .all(|s| s.host_ports.is_none() && s.host_ip.is_none())
        );
        assert_eq!(specs[1].proto, Proto::Udp);
    }

    #[test]
    fn conflict_rules() {
        let m = |ip: [u8; 4], port, proto| PortMapping {
            proto,
            host_ip: Ipv4Addr::from(ip),
            host_port: port,
            container_port: 1,
        };
        assert!(conflicts(
            &m([0, 0, 0, 0], 80, Proto::Tcp),
            &m([127, 0, 0, 1], 80, Proto::Tcp)
        ));
        assert!(conflicts(
            &m([127, 0, 0, 1], 80, Proto::Tcp),
            &m([127, 0, 0, 1], 80, Proto::Tcp)
        ));
        assert!(!conflicts(
            &m([127, 0, 0, 1], 80, Proto::Tcp),
            &m([127, 0, 0, 2], 80, Proto::Tcp)
        ));
        assert!(!conflicts(
            &m([0, 0, 0, 0], 80, Proto::Tcp),
            &m([0, 0, 0, 0], 80, Proto::Udp)
        ));
        assert!(!conflicts(
            &m([0, 0, 0, 0], 80, Proto::Tcp),
            &m([0, 0, 0, 0], 81, Proto::Tcp)
        ));
    }

    #[test]
    fn host_port_probe_sees_a_bound_port() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let m = PortMapping {
            proto: Proto::Tcp,
            host_ip: Ipv4Addr::LOCALHOST,
            host_port: port,
            container_port: 80,
        };
        assert!(matches!(
            probe_host_port(&m),
            Err(NetError::HostPortInUse { .. })
        ));
        drop(l);
        probe_host_port(&m).unwrap();
        let free = random_free_port(Proto::Udp, Ipv4Addr::LOCALHOST).unwrap();
        assert!(free > 0);
    }
}
