//! nftables: one table of berth's own (`inet <table>`), changed only in
//! atomic batches through `nft -f -` (a batch is one netlink transaction:
//! all of it applies or none, see nft(8) "-f").
//!
//! The rules are static; what varies lives in named sets and maps, so a
//! network or a container adds and deletes exactly its own *elements* and
//! never has to find rules by handle:
//!
//! - `bridges`, `same_bridge` (bridge . bridge pairs), `internal`,
//!   `subnets`, `nat_subnets`: per-network elements;
//! - `dnat_any` (proto . port → ip . port) and `dnat_ip`
//!   (host ip . proto . port → ip . port): per-container published ports.
//!
//! The whole table can be regenerated from the database ([`Firewall::replay`]).

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::error::{NetError, Result};
use crate::ipam::Subnet;
use crate::ports::PortMapping;

/// A network's view for the firewall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwNetwork {
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub internal: bool,
}

/// A container's published port for the firewall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwPort {
    pub mapping: PortMapping,
    pub container_ip: Ipv4Addr,
}

/// berth's nftables table.
#[derive(Clone, Debug)]
pub struct Firewall {
    table: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Delete,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Delete => "delete",
        }
    }
}

impl Firewall {
    /// `table` must be a plain identifier (letters, digits, `_`, `-`).
    pub fn new(table: &str) -> Result<Self> {
        let ok = !table.is_empty()
            && table.len() <= 64
            && table
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            && table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(NetError::InvalidName {
                name: table.into(),
                reason: "not a valid nftables table name".into(),
            });
        }
        Ok(Self {
            table: table.to_string(),
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The table's skeleton and its static rules. Declaring an existing
    /// table, set or chain is a no-op and the chains are flushed before
    /// their rules are added, so the script is idempotent and leaves set
    /// and map elements alone.
    pub fn base_script(&self) -> String {
        let t = &self.table;
        let mut s = format!(
            "table inet {t} {{
  set bridges {{ type ifname; }}
  set internal {{ type ifname; }}
  set same_bridge {{ type ifname . ifname; }}
  set subnets {{ type ipv4_addr; flags interval; }}
  set nat_subnets {{ type ipv4_addr; flags interval; }}
  set gateways {{ type ipv4_addr; }}
  set gateway_on {{ type ipv4_addr . ifname; }}
  map dnat_any {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  map dnat_ip {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
  chain input {{ type filter hook input priority filter; policy accept; }}
  chain forward {{ type filter hook forward priority filter; policy accept; }}
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
  chain output {{ type nat hook output priority -100; policy accept; }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
}}
"
        );
        for chain in ["input", "forward", "prerouting", "output", "postrouting"] {
            s += &format!("flush chain inet {t} {chain}\n");
        }
        let rules = [
            // A network's gateway (its DNS server) serves only its own containers.
            (
                "input",
                "iifname @bridges ip daddr @gateways ip daddr . iifname != @gateway_on drop comment \"other networks' gateways\"",
            ),
            // --internal: nothing leaves or enters the bridge except to itself.
            (
                "forward",
                "iifname @internal iifname . oifname != @same_bridge drop comment \"internal network: no way out\"",
            ),
            (
                "forward",
                "oifname @internal iifname . oifname != @same_bridge drop comment \"internal network: no way in\"",
            ),
            // Published ports are reachable from other networks (and hairpin).
            (
                "forward",
                "ct status dnat accept comment \"published ports\"",
            ),
            // Isolation: no routing between two different berth bridges.
            (
                "forward",
                "iifname @bridges oifname @bridges iifname . oifname != @same_bridge drop comment \"isolate networks\"",
            ),
            // Published ports, on any local address (incl. 127.0.0.1, the bridges' gateways).
            (
                "prerouting",
                "fib daddr type local meta l4proto { tcp, udp } dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip",
            ),
            (
                "prerouting",
                "fib daddr type local meta l4proto { tcp, udp } dnat ip to meta l4proto . th dport map @dnat_any",
            ),
            (
                "output",
                "fib daddr type local meta l4proto { tcp, udp } dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip",
            ),
            (
                "output",
                "fib daddr type local meta l4proto { tcp, udp } dnat ip to meta l4proto . th dport map @dnat_any",
            ),
            // 127.0.0.1 → container: needs route_localnet on the bridge, and a routable source.
            (
                "postrouting",
                "ip saddr 127.0.0.0/8 oifname @bridges masquerade comment \"localhost to published port\"",
            ),
            // Hairpin and container → other container's published port: replies must come back through us.
            (
                "postrouting",
                "ct status dnat ip saddr @subnets oifname @bridges masquerade comment \"hairpin\"",
            ),
            // Outbound traffic of non-internal networks.
            (
                "postrouting",
                "ip saddr @nat_subnets oifname != @bridges masquerade comment \"outbound\"",
            ),
        ];
        for (chain, rule) in rules {
            s += &format!("add rule inet {t} {chain} {rule}\n");
        }
        s
    }

    /// The element lines of one network.
    pub fn network_lines(&self, op: Op, n: &FwNetwork) -> Vec<String> {
        let (t, v, b) = (&self.table, op.verb(), &n.bridge);
        let mut lines = vec![
            format!("{v} element inet {t} bridges {{ \"{b}\" }}"),
            format!("{v} element inet {t} same_bridge {{ \"{b}\" . \"{b}\" }}"),
            format!("{v} element inet {t} subnets {{ {} }}", n.subnet),
            format!("{v} element inet {t} gateways {{ {} }}", n.gateway),
            format!(
                "{v} element inet {t} gateway_on {{ {} . \"{b}\" }}",
                n.gateway
            ),
        ];
        if n.internal {
            lines.push(format!("{v} element inet {t} internal {{ \"{b}\" }}"));
        } else {
            lines.push(format!(
                "{v} element inet {t} nat_subnets {{ {} }}",
                n.subnet
            ));
        }
        lines
    }

    /// The element lines of published ports (deletion names only the key).
    pub fn port_lines(&self, op: Op, ports: &[FwPort]) -> Vec<String> {
        let (t, v) = (&self.table, op.verb());
        ports
            .iter()
            .map(|p| {
                let m = &p.mapping;
                let value = match op {
                    Op::Add => format!(" : {} . {}", p.container_ip, m.container_port),
                    Op::Delete => String::new(),
                };
                if m.host_ip.is_unspecified() {
                    format!(
                        "{v} element inet {t} dnat_any {{ {} . {}{value} }}",
                        m.proto, m.host_port
                    )
                } else {
                    format!(
                        "{v} element inet {t} dnat_ip {{ {} . {} . {}{value} }}",
                        m.host_ip, m.proto, m.host_port
                    )
                }
            })
            .collect()
    }

    /// Runs `script` as one atomic batch.
    pub fn apply(&self, context: &str, script: &str) -> Result<()> {
        let nft_err = |stderr: String| NetError::Nft {
            context: format!("{context} (table {})", self.table),
            stderr,
        };
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| nft_err(format!("cannot run nft: {e} (install Debian's nftables)")))?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes())
            .map_err(|e| nft_err(format!("writing the batch to nft: {e}")))?;
        let out = child
            .wait_with_output()
            .map_err(|e| nft_err(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(nft_err(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    /// Applies `lines` as one batch; the table skeleton is (re)declared in
    /// the same batch when `with_base` is set.
    fn batch(&self, context: &str, with_base: bool, lines: &[String]) -> Result<()> {
        let mut script = if with_base {
            self.base_script()
        } else {
            String::new()
        };
        for l in lines {
            script += l;
            script.push('\n');
        }
        self.apply(context, &script)
    }

    /// Deletes elements; if the batch fails because some are already gone,
    /// deletes them one at a time, ignoring the missing ones.
    fn delete_tolerant(&self, context: &str, lines: &[String]) -> Result<()> {
        if lines.is_empty() || self.batch(context, false, lines).is_ok() {
            return Ok(());
        }
        let mut errors = Vec::new();
        for l in lines {
            match self.batch(context, false, std::slice::from_ref(l)) {
                Ok(()) => {}
                Err(NetError::Nft { stderr, .. })
                    if stderr.contains("No such file or directory") => {}
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(NetError::Teardown(errors)),
        }
    }

    /// Makes sure the table exists with its rules and adds a network's elements.
    pub fn add_network(&self, n: &FwNetwork) -> Result<()> {
        self.batch(
            &format!("add network on {}", n.bridge),
            true,
            &self.network_lines(Op::Add, n),
        )
    }

    pub fn remove_network(&self, n: &FwNetwork) -> Result<()> {
        self.delete_tolerant(
            &format!("remove network on {}", n.bridge),
            &self.network_lines(Op::Delete, n),
        )
    }

    /// Publishes ports (one batch: all or none).
    pub fn add_ports(&self, ports: &[FwPort]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        self.batch("publish ports", true, &self.port_lines(Op::Add, ports))
    }

    pub fn remove_ports(&self, ports: &[FwPort]) -> Result<()> {
        self.delete_tolerant("unpublish ports", &self.port_lines(Op::Delete, ports))
    }

    /// Rebuilds the table from scratch in one batch: declare (so the
    /// delete cannot fail), delete, then re-create with every element.
    pub fn replay(&self, networks: &[FwNetwork], ports: &[FwPort]) -> Result<()> {
        self.apply("replay table", &self.replay_script(networks, ports))
    }

    /// The batch of [`Firewall::replay`]. With no network and no port the
    /// table holds nothing, so it is only removed: a `system check` of an
    /// instance without networks leaves no table on the host.
    pub fn replay_script(&self, networks: &[FwNetwork], ports: &[FwPort]) -> String {
        let mut script = format!("table inet {t}\ndelete table inet {t}\n", t = self.table);
        if networks.is_empty() && ports.is_empty() {
            return script;
        }
        script += &self.base_script();
        for n in networks {
            for l in self.network_lines(Op::Add, n) {
                script += &l;
                script.push('\n');
            }
        }
        for l in self.port_lines(Op::Add, ports) {
            script += &l;
            script.push('\n');
        }
        script
    }

    /// Deletes the table if it exists.
    pub fn delete_table(&self) -> Result<()> {
        self.apply(
            "delete table",
            &format!("table inet {t}\ndelete table inet {t}\n", t = self.table),
        )
    }

    /// `nft list table` output, or `None` when the table does not exist.
    pub fn list(&self) -> Result<Option<String>> {
        let out = Command::new("nft")
            .args(["list", "table", "inet", &self.table])
            .output()
            .map_err(|e| NetError::Nft {
                context: "list table".into(),
                stderr: e.to_string(),
            })?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Proto;

    fn fw() -> Firewall {
        Firewall::new("berth_t").unwrap()
    }

    #[test]
    fn table_names_are_checked() {
        assert!(Firewall::new("berth").is_ok());
        for bad in ["", "1abc", "a b", "a;b", "a}"] {
            assert!(Firewall::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn network_elements() {
        let n = FwNetwork {
            bridge: "bt1".into(),
            subnet: "10.199.1.0/24".parse().unwrap(),
            gateway: "10.199.1.1".parse().unwrap(),
            internal: false,
        };
        let lines = fw().network_lines(Op::Add, &n);
        assert_eq!(
            lines,
            [
                "add element inet berth_t bridges { \"bt1\" }",
                "add element inet berth_t same_bridge { \"bt1\" . \"bt1\" }",
                "add element inet berth_t subnets { 10.199.1.0/24 }",
                "add element inet berth_t gateways { 10.199.1.1 }",
                "add element inet berth_t gateway_on { 10.199.1.1 . \"bt1\" }",
                "add element inet berth_t nat_subnets { 10.199.1.0/24 }",
            ]
        );
        let internal = FwNetwork {
            internal: true,
            ..n
        };
        let lines = fw().network_lines(Op::Delete, &internal);
        assert_eq!(lines[5], "delete element inet berth_t internal { \"bt1\" }");
        assert!(
            !lines.iter().any(|l| l.contains("nat_subnets")),
            "internal networks are never masqueraded"
        );
    }

    #[test]
    fn port_elements() {
        let p = |ip: [u8; 4], proto| FwPort {
            mapping: PortMapping {
                proto,
                host_ip: Ipv4Addr::from(ip),
                host_port: 8080,
                container_port: 80,
            },
            container_ip: "10.199.1.2".parse().unwrap(),
        };
        let ports = [p([0, 0, 0, 0], Proto::Tcp), p([127, 0, 0, 1], Proto::Udp)];
        assert_eq!(
            fw().port_lines(Op::Add, &ports),
            [
                "add element inet berth_t dnat_any { tcp . 8080 : 10.199.1.2 . 80 }",
                "add element inet berth_t dnat_ip { 127.0.0.1 . udp . 8080 : 10.199.1.2 . 80 }",
            ]
        );
        assert_eq!(
            fw().port_lines(Op::Delete, &ports),
            [
                "delete element inet berth_t dnat_any { tcp . 8080 }",
                "delete element inet berth_t dnat_ip { 127.0.0.1 . udp . 8080 }"
            ]
        );
    }

    #[test]
    fn base_script_declares_before_flushing() {
        let s = fw().base_script();
        let decl = s.find("chain forward {").unwrap();
        let flush = s.find("flush chain inet berth_t forward").unwrap();
        let rule = s.find("add rule inet berth_t forward").unwrap();
        assert!(decl < flush && flush < rule);
        assert_eq!(s.matches("masquerade").count(), 3);
    }

    #[test]
    fn replay_of_nothing_only_removes_the_table() {
        let fw = Firewall::new("berth_t").unwrap();
        assert_eq!(
            fw.replay_script(&[], &[]),
            "table inet berth_t\ndelete table inet berth_t\n"
        );
    }
}
