//! IPv4 address management, pure logic: subnets, choosing a network's
//! subnet from a pool, choosing a container's address, validating static
//! addresses. Persistence (and the "never twice" guarantee under
//! concurrency) lives in [`crate::state`], which calls these functions
//! inside one `BEGIN IMMEDIATE` transaction.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::error::{NetError, Result};

/// An IPv4 prefix such as `10.199.3.0/24`; the address is always the
/// network address (host bits zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// A subnet from an address and prefix length; host bits must be zero.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self> {
        let spec = format!("{addr}/{prefix}");
        if prefix > 32 {
            return Err(NetError::InvalidSubnet {
                spec,
                reason: "prefix length must be 0..=32".into(),
            });
        }
        let net = Self { addr, prefix };
        if u32::from(addr) & !net.mask() != 0 {
            return Err(NetError::InvalidSubnet {
                spec,
                reason: format!(
                    "host bits are set (did you mean {}/{prefix}?)",
                    Ipv4Addr::from(u32::from(addr) & net.mask())
                ),
            });
        }
        Ok(net)
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask as a u32 (`/24` → `0xffffff00`).
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn network(&self) -> u32 {
        u32::from(self.addr)
    }

    pub fn broadcast(&self) -> u32 {
        self.network() | !self.mask()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network()
    }

    /// True when the two prefixes share at least one address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let p = self.prefix.min(other.prefix);
        let m = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        self.network() & m == other.network() & m
    }

    /// True when `other` lies entirely inside `self`.
    pub fn contains_subnet(&self, other: &Subnet) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The first usable host address, the conventional gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network() + 1)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl serde::Serialize for Subnet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for Subnet {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| NetError::InvalidSubnet {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| bad("expected ADDRESS/PREFIX, e.g. 10.199.1.0/24"))?;
        if addr.contains(':') {
            return Err(bad("IPv6 subnets are not supported"));
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| bad("prefix length is not a number"))?;
        Subnet::new(addr, prefix)
    }
}

/// Parses a dotted IPv4 address, naming the flag it came from in errors.
pub fn parse_ip(spec: &str, what: &str) -> Result<Ipv4Addr> {
    spec.parse().map_err(|_| NetError::InvalidAddress {
        spec: spec.to_string(),
        reason: format!("{what} is not an IPv4 address"),
    })
}

/// The addresses of a network as IPAM sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// Containers get addresses only from here (`--ip-range`); defaults to the subnet.
    pub range: Subnet,
}

impl Pool {
    /// Validates a network's address plan: a subnet at least /30 (network,
    /// gateway, one container, broadcast), gateway and range inside it, the
    /// gateway not the network or broadcast address.
    pub fn new(subnet: Subnet, gateway: Option<Ipv4Addr>, range: Option<Subnet>) -> Result<Self> {
        if subnet.prefix() > 30 {
            return Err(NetError::InvalidSubnet {
                spec: subnet.to_string(),
                reason: "too small: need at least a /30".into(),
            });
        }
        let gateway = gateway.unwrap_or_else(|| subnet.first_host());
        let g = u32::from(gateway);
        if !subnet.contains(gateway) || g == subnet.network() || g == subnet.broadcast() {
            return Err(NetError::GatewayOutsideSubnet { gateway, subnet });
        }
        let range = range.unwrap_or(subnet);
        if !subnet.contains_subnet(&range) {
            return Err(NetError::RangeOutsideSubnet { range, subnet });
        }
        Ok(Self {
            subnet,
            gateway,
            range,
        })
    }

    /// True when `ip` may be given to a container at all (ignoring who has it).
    fn assignable(&self, ip: u32) -> bool {
        ip != self.subnet.network()
            && ip != self.subnet.broadcast()
            && ip != u32::from(self.gateway)
    }

    /// The lowest free address of the range, skipping network, broadcast,
    /// gateway and `used`.
    pub fn next_free(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        (self.range.network()..=self.range.broadcast())
            .filter(|&ip| self.assignable(ip))
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
    }

    /// Checks a static `--ip`: inside the subnet (it may lie outside
    /// `--ip-range`, as Docker allows), not a reserved address, not taken.
    pub fn check_static(
        &self,
        ip: Ipv4Addr,
        used: &BTreeSet<Ipv4Addr>,
        network: &str,
    ) -> Result<()> {
        let reason = if !self.subnet.contains(ip) {
            format!("outside the network's subnet {}", self.subnet)
        } else if u32::from(ip) == self.subnet.network() {
            "it is the subnet's network address".into()
        } else if u32::from(ip) == self.subnet.broadcast() {
            "it is the subnet's broadcast address".into()
        } else if ip == self.gateway {
            "it is the network's gateway".into()
        } else if used.contains(&ip) {
            "already in use".into()
        } else {
            return Ok(());
        };
        Err(NetError::AddressUnavailable {
            ip,
            network: network.to_string(),
            reason,
        })
    }
}

/// Picks the first `/prefix` subnet of `pool` that overlaps none of `taken`
/// (other networks' subnets and the host's routes).
pub fn pick_subnet(pool: Subnet, prefix: u8, taken: &[Subnet]) -> Result<Subnet> {
    if prefix < pool.prefix() || prefix > 30 {
        return Err(NetError::InvalidSubnet {
            spec: format!("{pool} split into /{prefix}"),
            reason: "the pool's subnet size must be between the pool's prefix and /30".into(),
        });
    }
    let step = 1u64 << (32 - prefix);
    let mut at = u64::from(pool.network());
    let end = u64::from(pool.broadcast());
    while at <= end {
        let candidate = Subnet::new(Ipv4Addr::from(at as u32), prefix)?;
        if !taken.iter().any(|t| t.overlaps(&candidate)) {
            return Ok(candidate);
        }
        at += step;
    }
    Err(NetError::SubnetPoolExhausted { pool, prefix })
}

/// Parses `/proc/net/route` into the destination prefixes of the host's
/// IPv4 routes, skipping the default route (it "overlaps" everything). The
/// file's addresses are hex in host byte order of a little-endian u32 as
/// the kernel prints them (see proc(5), `/proc/net/route`).
pub fn parse_proc_net_route(text: &str) -> Vec<(String, Subnet)> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(dest), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16))
        else {
            continue;
        };
        // The kernel prints the raw network-order word with %08X, so the
        // native-endian bytes of the parsed number are the address bytes.
        let dest = Ipv4Addr::from(dest.to_ne_bytes());
        let prefix = mask.count_ones() as u8;
        if prefix == 0 {
            continue;
        }
        if let Ok(s) = Subnet::new(dest, prefix) {
            out.push((f[0].to_string(), s));
        }
    }
    out
}

/// The host's routed prefixes (interface, prefix) from `/proc/net/route`.
pub fn host_routes() -> Result<Vec<(String, Subnet)>> {
    let text = std::fs::read_to_string("/proc/net/route")
        .map_err(crate::error::io_err("read /proc/net/route"))?;
    Ok(parse_proc_net_route(&text))
}

/// A locally administered unicast MAC derived from the address, as Docker
/// does (`02:42:` + the four address bytes): stable for an address and
/// unique within a network because addresses are.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().unwrap()
    }

    fn ip(x: &str) -> Ipv4Addr {
        x.parse().unwrap()
    }

    #[test]
    fn subnet_parse_and_errors() {
        assert_eq!(s("10.199.1.0/24").to_string(), "10.199.1.0/24");
        assert_eq!(s("0.0.0.0/0").mask(), 0);
        for (bad, needle) in [
            ("10.199.1.1/24", "host bits"),
            ("10.199.1.0", "ADDRESS/PREFIX"),
            ("10.199.1.0/33", "0..=32"),
            ("fd00::/64", "IPv6"),
            ("10.1.x.0/24", "IPv4"),
            ("10.1.0.0/x", "not a number"),
        ] {
            let err = bad.parse::<Subnet>().unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn overlap_and_containment() {
        assert!(s("10.0.0.0/8").overlaps(&s("10.199.0.0/24")));
        assert!(s("10.199.0.0/24").overlaps(&s("10.0.0.0/8")));
        assert!(!s("10.199.0.0/24").overlaps(&s("10.199.1.0/24")));
        assert!(s("10.199.0.0/16").contains_subnet(&s("10.199.5.0/24")));
        assert!(!s("10.199.5.0/24").contains_subnet(&s("10.199.0.0/16")));
        assert!(s("10.199.5.0/24").contains(ip("10.199.5.255")));
        assert!(!s("10.199.5.0/24").contains(ip("10.199.6.0")));
    }

    #[test]
    fn pool_validation() {
        let p = Pool::new(s("10.199.1.0/24"), None, None).unwrap();
        assert_eq!(p.gateway, ip("10.199.1.1"));
        assert_eq!(p.range, s("10.199.1.0/24"));
        assert!(matches!(
            Pool::new(s("10.199.1.0/24"), Some(ip("10.199.2.1")), None),
            Err(NetError::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            Pool::new(s("10.199.1.0/24"), Some(ip("10.199.1.255")), None),
            Err(NetError::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            Pool::new(s("10.199.1.0/24"), None, Some(s("10.199.0.0/23"))),
            Err(NetError::RangeOutsideSubnet { .. })
        ));
        assert!(Pool::new(s("10.199.1.0/31"), None, None).is_err());
        assert!(Pool::new(s("10.199.1.0/30"), None, None).is_ok());
    }

    #[test]
    fn next_free_skips_reserved_and_used() {
        let p = Pool::new(s("10.199.1.0/29"), None, None).unwrap();
        let mut used = BTreeSet::new();
        // .0 network, .1 gateway → first is .2
        assert_eq!(p.next_free(&used), Some(ip("10.199.1.2")));
        used.insert(ip("10.199.1.2"));
        used.insert(ip("10.199.1.4"));
        assert_eq!(p.next_free(&used), Some(ip("10.199.1.3")));
        for x in 3..=6 {
            used.insert(Ipv4Addr::new(10, 199, 1, x));
        }
        // .7 is broadcast: exhausted
        assert_eq!(p.next_free(&used), None);
    }

    #[test]
    fn next_free_honours_range_and_custom_gateway() {
        let p = Pool::new(
            s("10.199.1.0/24"),
            Some(ip("10.199.1.130")),
            Some(s("10.199.1.128/30")),
        )
        .unwrap();
        let used = BTreeSet::new();
        // range .128-.131: .128 is assignable (not the subnet's network address), .130 is the gateway
        assert_eq!(p.next_free(&used), Some(ip("10.199.1.128")));
        let used: BTreeSet<_> = [ip("10.199.1.128"), ip("10.199.1.129")].into();
        assert_eq!(p.next_free(&used), Some(ip("10.199.1.131")));
    }

    #[test]
    fn static_address_checks() {
        let p = Pool::new(s("10.199.1.0/24"), None, Some(s("10.199.1.0/28"))).unwrap();
        let used: BTreeSet<_> = [ip("10.199.1.5")].into();
        assert!(
            p.check_static(ip("10.199.1.200"), &used, "n").is_ok(),
            "outside range but in subnet is fine"
        );
        for (bad, why) in [
            ("10.199.2.5", "outside"),
            ("10.199.1.0", "network address"),
            ("10.199.1.255", "broadcast"),
            ("10.199.1.1", "gateway"),
            ("10.199.1.5", "in use"),
        ] {
            let err = p.check_static(ip(bad), &used, "n").unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn pick_subnet_avoids_taken() {
        let pool = s("10.199.0.0/16");
        assert_eq!(pick_subnet(pool, 24, &[]).unwrap(), s("10.199.0.0/24"));
        let taken = [s("10.199.0.0/24"), s("10.199.1.128/25"), s("10.199.2.0/23")];
        assert_eq!(pick_subnet(pool, 24, &taken).unwrap(), s("10.199.4.0/24"));
        let full = [s("10.199.0.0/16")];
        assert!(matches!(
            pick_subnet(pool, 24, &full),
            Err(NetError::SubnetPoolExhausted { .. })
        ));
        assert!(pick_subnet(pool, 8, &[]).is_err());
    }

    #[test]
    fn proc_net_route_parsing() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
br0\t0000C70A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse_proc_net_route(text);
        assert_eq!(
            routes,
            vec![
                ("eth0".to_string(), s("192.0.2.0/24")),
                ("br0".to_string(), s("10.199.0.0/16"))
            ]
        );
    }

    #[test]
    fn mac_is_local_unicast_and_derived() {
        let mac = mac_for(ip("10.199.1.2"));
        assert_eq!(format_mac(&mac), "02:42:0a:c7:01:02");
        assert_eq!(mac[0] & 0x01, 0, "unicast");
        assert_eq!(mac[0] & 0x02, 0x02, "locally administered");
    }
}
