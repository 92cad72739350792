//! Persistent state in the engine's SQLite database (tables prefixed
//! `net_`). Every mutation is one transaction; anything that hands out a
//! resource (addresses, host ports, bridge names, subnets) runs under
//! `BEGIN IMMEDIATE`, which takes SQLite's write lock up front, so two
//! processes can never both read "free" and both take it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use crate::error::{NetError, Result, db_err};
use crate::ipam::{self, Pool, Subnet};
use crate::ports::{self, PortMapping, PortRange, PortSpec, Proto};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS net_networks (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    ip_range TEXT NOT NULL,
    internal INTEGER NOT NULL,
    labels TEXT NOT NULL,
    mtu INTEGER NOT NULL,
    created INTEGER NOT NULL,
    predefined INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS net_endpoints (
    container_id TEXT NOT NULL,
    network TEXT NOT NULL REFERENCES net_networks(name),
    container_name TEXT,
    ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    host_iface TEXT NOT NULL UNIQUE,
    container_iface TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    is_primary INTEGER NOT NULL,
    PRIMARY KEY (container_id, network)
);
CREATE TABLE IF NOT EXISTS net_ip_allocations (
    network TEXT NOT NULL REFERENCES net_networks(name),
    ip TEXT NOT NULL,
    container_id TEXT NOT NULL,
    PRIMARY KEY (network, ip)
);
CREATE TABLE IF NOT EXISTS net_port_mappings (
    container_id TEXT NOT NULL,
    network TEXT NOT NULL,
    proto TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    container_port INTEGER NOT NULL,
    container_ip TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_aliases (
    container_id TEXT NOT NULL,
    network TEXT NOT NULL,
    alias TEXT NOT NULL,
    PRIMARY KEY (container_id, network, alias)
);
";

/// A network as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkRecord {
    pub name: String,
    pub id: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub ip_range: Subnet,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub mtu: u32,
    /// Unix seconds.
    pub created: u64,
    /// The default network (cannot be removed).
    pub predefined: bool,
}

impl NetworkRecord {
    pub fn pool(&self) -> Pool {
        Pool {
            subnet: self.subnet,
            gateway: self.gateway,
            range: self.ip_range,
        }
    }
}

/// What to create: the caller's request, already validated by [`Pool::new`].
#[derive(Clone, Debug)]
pub struct NewNetwork {
    pub name: String,
    pub pool: Pool,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub mtu: u32,
    pub predefined: bool,
    /// Bridge names are `<prefix><n>` with the smallest free `n` (0 for the
    /// predefined network).
    pub bridge_prefix: String,
    /// Prefixes the subnet must not overlap besides other networks (host routes).
    pub avoid: Vec<(String, Subnet)>,
}

/// An endpoint (one container on one network) as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EndpointRecord {
    pub container_id: String,
    pub container_name: Option<String>,
    pub network: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    /// Host side of the veth pair (on the bridge).
    pub host_iface: String,
    /// Name inside the sandbox (`eth0`, `eth1`, ...).
    pub container_iface: String,
    pub sandbox: PathBuf,
    /// Gives the container its default route.
    pub primary: bool,
    pub aliases: Vec<String>,
    pub ports: Vec<PortMapping>,
}

/// What a container asks for when it joins a network.
#[derive(Clone, Debug, Default)]
pub struct EndpointRequest {
    pub container_id: String,
    pub container_name: Option<String>,
    pub network: String,
    pub sandbox: PathBuf,
    pub ip: Option<Ipv4Addr>,
    pub aliases: Vec<String>,
    pub ports: Vec<PortSpec>,
}

/// A connection to the engine's database.
pub struct Db {
    conn: Connection,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A short stable hash (FNV-1a 64) for generated names and ids.
pub(crate) fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// Host-side veth name for a container on a network: `vb` + 11 hex digits
/// (13 chars; IFNAMSIZ allows 15).
pub fn host_iface_name(container_id: &str, network: &str) -> String {
    format!("vb{:011x}", fnv(&[container_id, network]) & 0xfff_ffff_ffff)
}

fn parse_col<T: std::str::FromStr>(s: String, idx: usize) -> rusqlite::Result<T> {
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Text,
            format!("unparsable value {s:?}").into(),
        )
    })
}

fn network_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NetworkRecord> {
    let labels: String = r.get(7)?;
    Ok(NetworkRecord {
        name: r.get(0)?,
        id: r.get(1)?,
        bridge: r.get(2)?,
        subnet: parse_col(r.get(3)?, 3)?,
        gateway: parse_col(r.get(4)?, 4)?,
        ip_range: parse_col(r.get(5)?, 5)?,
        internal: r.get(6)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        mtu: r.get(8)?,
        created: r.get(9)?,
        predefined: r.get(10)?,
    })
}

const NETWORK_COLS: &str =
    "name, id, bridge, subnet, gateway, ip_range, internal, labels, mtu, created, predefined";
const ENDPOINT_COLS: &str = "container_id, container_name, network, ip, mac, host_iface, container_iface, sandbox, is_primary";

fn endpoint_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EndpointRecord> {
    let sandbox: String = r.get(7)?;
    Ok(EndpointRecord {
        container_id: r.get(0)?,
        container_name: r.get(1)?,
        network: r.get(2)?,
        ip: parse_col(r.get(3)?, 3)?,
        mac: r.get(4)?,
        host_iface: r.get(5)?,
        container_iface: r.get(6)?,
        sandbox: PathBuf::from(sandbox),
        primary: r.get(8)?,
        aliases: Vec::new(),
        ports: Vec::new(),
    })
}

fn load_ports(conn: &Connection, container: &str, network: &str) -> Result<Vec<PortMapping>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT proto, host_ip, host_port, container_port FROM net_port_mappings
             WHERE container_id = ?1 AND network = ?2 ORDER BY rowid",
        )
        .map_err(db_err("prepare port query"))?;
    let rows = stmt
        .query_map(params![container, network], |r| {
            Ok(PortMapping {
                proto: parse_col(r.get(0)?, 0)?,
                host_ip: parse_col(r.get(1)?, 1)?,
                host_port: r.get(2)?,
                container_port: r.get(3)?,
            })
        })
        .map_err(db_err("query ports"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db_err("read ports"))
}

fn load_aliases(conn: &Connection, container: &str, network: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT alias FROM net_aliases WHERE container_id = ?1 AND network = ?2 ORDER BY alias",
        )
        .map_err(db_err("prepare alias query"))?;
    let rows = stmt
        .query_map(params![container, network], |r| r.get(0))
        .map_err(db_err("query aliases"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db_err("read aliases"))
}

fn all_published(tx: &Connection) -> Result<Vec<(String, PortMapping)>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT container_id, proto, host_ip, host_port, container_port FROM net_port_mappings",
        )
        .map_err(db_err("prepare published ports query"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                PortMapping {
                    proto: parse_col(r.get(1)?, 1)?,
                    host_ip: parse_col(r.get(2)?, 2)?,
                    host_port: r.get(3)?,
                    container_port: r.get(4)?,
                },
            ))
        })
        .map_err(db_err("query published ports"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db_err("read published ports"))
}

/// Chooses host ports for `specs`, checking each against ports already
/// published (in the database and earlier in this request) and against
/// processes bound on the host.
fn resolve_ports(
    published: &[(String, PortMapping)],
    specs: &[PortSpec],
) -> Result<Vec<PortMapping>> {
    let mut taken: Vec<PortMapping> = published.iter().map(|(_, m)| m.clone()).collect();
    let mut out = Vec::new();
    for spec in specs {
        let host_ip = spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let free = |port: u16, taken: &[PortMapping]| {
            let m = PortMapping {
                proto: spec.proto,
                host_ip,
                host_port: port,
                container_port: 0,
            };
            !taken.iter().any(|t| ports::conflicts(t, &m)) && ports::probe_host_port(&m).is_ok()
        };
        let mappings = spec.expand(|cand: Option<PortRange>| match cand {
            Some(r) => {
                (r.start..=r.end)
                    .find(|&p| free(p, &taken))
                    .ok_or(NetError::HostPortInUse {
                        host_ip,
                        port: r.start,
                        proto: spec.proto,
                        reason: format!("taken, as is every port up to {}", r.end),
                    })
            }
            None => (0..64)
                .find_map(|_| {
                    let p = ports::random_free_port(spec.proto, host_ip).ok()?;
                    free(p, &taken).then_some(p)
                })
                .ok_or(NetError::NoFreeHostPort {
                    host_ip,
                    proto: spec.proto,
                }),
        })?;
        for m in mappings {
            if let Some((owner, _)) = published.iter().find(|(_, t)| ports::conflicts(t, &m)) {
                return Err(NetError::HostPortInUse {
                    host_ip: m.host_ip,
                    port: m.host_port,
                    proto: m.proto,
                    reason: format!("published by container {owner}"),
                });
            }
            if out.iter().any(|t| ports::conflicts(t, &m)) {
                return Err(NetError::HostPortInUse {
                    host_ip: m.host_ip,
                    port: m.host_port,
                    proto: m.proto,
                    reason: "published twice in this request".into(),
                });
            }
            ports::probe_host_port(&m)?;
            taken.push(m.clone());
            out.push(m);
        }
    }
    Ok(out)
}

impl Db {
    /// Opens (creating if needed) the database at `path` in WAL mode and
    /// creates the `net_` tables.
    pub fn open(path: &Path) -> Result<Self> {
        let ctx = || format!("open {}", path.display());
        let conn = Connection::open(path).map_err(db_err(ctx()))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(db_err(ctx()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_err("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err("enable foreign keys"))?;
        conn.execute_batch(SCHEMA)
            .map_err(db_err("create net_ tables"))?;
        Ok(Self { conn })
    }

    fn immediate(&mut self, what: &str) -> Result<Transaction<'_>> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err(format!("begin transaction ({what})")))
    }

    /// Stores a new network after checking its name and that its subnet
    /// overlaps neither another network nor `avoid`; assigns its bridge.
    pub fn create_network(&mut self, new: &NewNetwork) -> Result<NetworkRecord> {
        let tx = self.immediate("create network")?;
        if get_network(&tx, &new.name)?.is_some() {
            return Err(NetError::NetworkExists(new.name.clone()));
        }
        let existing = list_networks(&tx)?;
        if let Some(o) = existing
            .iter()
            .find(|n| n.subnet.overlaps(&new.pool.subnet))
        {
            return Err(NetError::SubnetOverlap {
                subnet: new.pool.subnet,
                what: format!("network {:?} ({})", o.name, o.subnet),
            });
        }
        if let Some((dev, r)) = new.avoid.iter().find(|(_, r)| r.overlaps(&new.pool.subnet)) {
            return Err(NetError::SubnetOverlap {
                subnet: new.pool.subnet,
                what: format!("host route {r} on {dev}"),
            });
        }
        let used: BTreeSet<&str> = existing.iter().map(|n| n.bridge.as_str()).collect();
        let first = if new.predefined { 0 } else { 1 };
        let bridge = (first..)
            .map(|n| format!("{}{n}", new.bridge_prefix))
            .find(|b| !used.contains(b.as_str()))
            .expect("unbounded iterator");
        if bridge.len() > 15 {
            return Err(NetError::InvalidName {
                name: bridge,
                reason:
                    "bridge name longer than 15 characters (IFNAMSIZ): use a shorter bridge_prefix"
                        .into(),
            });
        }
        let rec = NetworkRecord {
            name: new.name.clone(),
            id: format!(
                "{:016x}{:016x}",
                fnv(&[&new.name, &now().to_string()]),
                fnv(&[&bridge])
            ),
            bridge,
            subnet: new.pool.subnet,
            gateway: new.pool.gateway,
            ip_range: new.pool.range,
            internal: new.internal,
            labels: new.labels.clone(),
            mtu: new.mtu,
            created: now(),
            predefined: new.predefined,
        };
        tx.execute(
            &format!("INSERT INTO net_networks ({NETWORK_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"),
            params![
                rec.name,
                rec.id,
                rec.bridge,
                rec.subnet.to_string(),
                rec.gateway.to_string(),
                rec.ip_range.to_string(),
                rec.internal,
                serde_json::to_string(&rec.labels).unwrap_or_else(|_| "{}".into()),
                rec.mtu,
                rec.created,
                rec.predefined,
            ],
        )
        .map_err(db_err(format!("insert network {}", rec.name)))?;
        tx.commit().map_err(db_err("commit network"))?;
        Ok(rec)
    }

    /// Picks a free subnet for a new network from `pool` (other networks'
    /// subnets and `avoid` excluded). Advisory: [`Db::create_network`]
    /// re-checks under the write lock.
    pub fn pick_subnet(
        &self,
        pool: Subnet,
        prefix: u8,
        avoid: &[(String, Subnet)],
    ) -> Result<Subnet> {
        let mut taken: Vec<Subnet> = list_networks(&self.conn)?
            .iter()
            .map(|n| n.subnet)
            .collect();
        taken.extend(avoid.iter().map(|(_, s)| *s));
        ipam::pick_subnet(pool, prefix, &taken)
    }

    pub fn network(&self, name: &str) -> Result<NetworkRecord> {
        get_network(&self.conn, name)?.ok_or_else(|| NetError::NetworkNotFound(name.to_string()))
    }

    /// Finds a network by name, full id or unique id prefix.
    pub fn find_network(&self, name_or_id: &str) -> Result<NetworkRecord> {
        if let Some(n) = get_network(&self.conn, name_or_id)? {
            return Ok(n);
        }
        let matches: Vec<_> = list_networks(&self.conn)?
            .into_iter()
            .filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id))
            .collect();
        match <[NetworkRecord; 1]>::try_from(matches) {
            Ok([n]) => Ok(n),
            Err(_) => Err(NetError::NetworkNotFound(name_or_id.to_string())),
        }
    }

    pub fn networks(&self) -> Result<Vec<NetworkRecord>> {
        list_networks(&self.conn)
    }

    /// Deletes a network that no endpoint uses.
    pub fn delete_network(&mut self, name: &str) -> Result<NetworkRecord> {
        let tx = self.immediate("delete network")?;
        let rec =
            get_network(&tx, name)?.ok_or_else(|| NetError::NetworkNotFound(name.to_string()))?;
        let users = endpoints_where(&tx, "network = ?1", name)?;
        if !users.is_empty() {
            return Err(NetError::NetworkInUse {
                name: name.to_string(),
                containers: users.into_iter().map(|e| e.container_id).collect(),
            });
        }
        tx.execute("DELETE FROM net_networks WHERE name = ?1", params![name])
            .map_err(db_err(format!("delete network {name}")))?;
        tx.commit().map_err(db_err("commit network delete"))?;
        Ok(rec)
    }

    /// Reserves everything an endpoint needs in one `BEGIN IMMEDIATE`
    /// transaction: an address (static or the next free), MAC, interface
    /// names, host ports and aliases. The kernel objects are made after
    /// this commits, so a crash in between leaves rows that
    /// reconciliation finds and frees.
    pub fn reserve_endpoint(&mut self, req: &EndpointRequest) -> Result<EndpointRecord> {
        let tx = self.immediate("reserve endpoint")?;
        let net = get_network(&tx, &req.network)?
            .ok_or_else(|| NetError::NetworkNotFound(req.network.clone()))?;
        let mine = endpoints_where(&tx, "container_id = ?1", &req.container_id)?;
        if mine.iter().any(|e| e.network == req.network) {
            return Err(NetError::AlreadyConnected {
                container: req.container_id.clone(),
                network: req.network.clone(),
            });
        }
        let used = allocated_ips(&tx, &req.network)?;
        let pool = net.pool();
        let ip = match req.ip {
            Some(ip) => {
                pool.check_static(ip, &used, &req.network)?;
                ip
            }
            None => pool
                .next_free(&used)
                .ok_or_else(|| NetError::PoolExhausted {
                    network: req.network.clone(),
                    range: pool.range,
                })?,
        };
        let ports = resolve_ports(&all_published(&tx)?, &req.ports)?;
        let container_iface = (0..)
            .map(|n| format!("eth{n}"))
            .find(|n| !mine.iter().any(|e| &e.container_iface == n))
            .expect("unbounded iterator");
        let mut aliases = req.aliases.clone();
        aliases.sort();
        aliases.dedup();
        let rec = EndpointRecord {
            container_id: req.container_id.clone(),
            container_name: req.container_name.clone(),
            network: req.network.clone(),
            ip,
            mac: ipam::format_mac(&ipam::mac_for(ip)),
            host_iface: host_iface_name(&req.container_id, &req.network),
            container_iface,
            sandbox: req.sandbox.clone(),
            primary: mine.iter().all(|e| !e.primary),
            aliases,
            ports,
        };
        insert_endpoint(&tx, &rec)?;
        tx.commit().map_err(db_err("commit endpoint"))?;
        Ok(rec)
    }

    /// Removes an endpoint's rows (allocation, ports, aliases) and returns
    /// what was removed; `None` if it was not there.
    pub fn delete_endpoint(
        &mut self,
        container: &str,
        network: &str,
    ) -> Result<Option<EndpointRecord>> {
        let tx = self.immediate("delete endpoint")?;
        let Some(rec) = get_endpoint(&tx, container, network)? else {
            return Ok(None);
        };
        for (table, what) in [
            ("net_endpoints", "endpoint"),
            ("net_ip_allocations", "ip allocation"),
            ("net_port_mappings", "port mappings"),
            ("net_aliases", "aliases"),
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE container_id = ?1 AND network = ?2"),
                params![container, network],
            )
            .map_err(db_err(format!("delete {what} of {container} on {network}")))?;
        }
        tx.commit().map_err(db_err("commit endpoint delete"))?;
        Ok(Some(rec))
    }

    pub fn endpoint(&self, container: &str, network: &str) -> Result<Option<EndpointRecord>> {
        get_endpoint(&self.conn, container, network)
    }

    /// A container's endpoints, primary first.
    pub fn endpoints_of(&self, container: &str) -> Result<Vec<EndpointRecord>> {
        full(
            &self.conn,
            endpoints_where(&self.conn, "container_id = ?1", container)?,
        )
    }

    pub fn endpoints_on(&self, network: &str) -> Result<Vec<EndpointRecord>> {
        full(
            &self.conn,
            endpoints_where(&self.conn, "network = ?1", network)?,
        )
    }

    pub fn all_endpoints(&self) -> Result<Vec<EndpointRecord>> {
        full(&self.conn, endpoints_where(&self.conn, "?1 = ?1", "")?)
    }

    /// Addresses allocated on `network`, with their owners.
    pub fn allocations(&self, network: &str) -> Result<Vec<(Ipv4Addr, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT ip, container_id FROM net_ip_allocations WHERE network = ?1")
            .map_err(db_err("prepare allocation query"))?;
        let rows = stmt
            .query_map(params![network], |r| {
                Ok((parse_col(r.get(0)?, 0)?, r.get(1)?))
            })
            .map_err(db_err("query allocations"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db_err("read allocations"))
    }

    /// Names on `network` for DNS: `name` matches a container name, an
    /// alias or a container id (full or 12-char prefix), case-insensitively.
    pub fn resolve(&self, network: &str, name: &str) -> Result<Vec<Ipv4Addr>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT e.ip FROM net_endpoints e
                 LEFT JOIN net_aliases a ON a.container_id = e.container_id AND a.network = e.network
                 WHERE e.network = ?1 AND (lower(e.container_name) = ?2 OR lower(a.alias) = ?2
                       OR e.container_id = ?2 OR (length(?2) >= 12 AND substr(e.container_id, 1, length(?2)) = ?2))",
            )
            .map_err(db_err("prepare resolve"))?;
        let rows = stmt
            .query_map(params![network, name], |r| parse_col(r.get(0)?, 0))
            .map_err(db_err("resolve name"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db_err("read resolved names"))
    }

    /// Every published port with its container address (for replaying the firewall).
    pub fn published(&self) -> Result<Vec<(String, PortMapping, Ipv4Addr)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT container_id, proto, host_ip, host_port, container_port, container_ip FROM net_port_mappings")
            .map_err(db_err("prepare published query"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    PortMapping {
                        proto: parse_col::<Proto>(r.get(1)?, 1)?,
                        host_ip: parse_col(r.get(2)?, 2)?,
                        host_port: r.get(3)?,
                        container_port: r.get(4)?,
                    },
                    parse_col(r.get(5)?, 5)?,
                ))
            })
            .map_err(db_err("query published"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db_err("read published"))
    }
}

fn get_network(conn: &Connection, name: &str) -> Result<Option<NetworkRecord>> {
    conn.query_row(
        &format!("SELECT {NETWORK_COLS} FROM net_networks WHERE name = ?1"),
        params![name],
        network_from_row,
    )
    .optional()
    .map_err(db_err(format!("look up network {name}")))
}

fn list_networks(conn: &Connection) -> Result<Vec<NetworkRecord>> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {NETWORK_COLS} FROM net_networks ORDER BY created, name"
        ))
        .map_err(db_err("prepare network list"))?;
    let rows = stmt
        .query_map([], network_from_row)
        .map_err(db_err("list networks"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db_err("read networks"))
}

fn endpoints_where(conn: &Connection, cond: &str, arg: &str) -> Result<Vec<EndpointRecord>> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {ENDPOINT_COLS} FROM net_endpoints WHERE {cond} ORDER BY is_primary DESC, container_iface, container_id"
        ))
        .map_err(db_err("prepare endpoint query"))?;
    let rows = stmt
        .query_map(params![arg], endpoint_from_row)
        .map_err(db_err("query endpoints"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db_err("read endpoints"))
}

fn full(conn: &Connection, mut eps: Vec<EndpointRecord>) -> Result<Vec<EndpointRecord>> {
    for e in &mut eps {
        e.ports = load_ports(conn, &e.container_id, &e.network)?;
        e.aliases = load_aliases(conn, &e.container_id, &e.network)?;
    }
    Ok(eps)
}

fn get_endpoint(
    conn: &Connection,
    container: &str,
    network: &str,
) -> Result<Option<EndpointRecord>> {
    let rec = conn
        .query_row(
            &format!(
                "SELECT {ENDPOINT_COLS} FROM net_endpoints WHERE container_id = ?1 AND network = ?2"
            ),
            params![container, network],
            endpoint_from_row,
        )
        .optional()
        .map_err(db_err(format!(
            "look up endpoint of {container} on {network}"
        )))?;
    match rec {
        Some(r) => Ok(full(conn, vec![r])?.pop()),
        None => Ok(None),
    }
}

fn allocated_ips(conn: &Connection, network: &str) -> Result<BTreeSet<Ipv4Addr>> {
    let mut stmt = conn
        .prepare_cached("SELECT ip FROM net_ip_allocations WHERE network = ?1")
        .map_err(db_err("prepare allocation query"))?;
    let rows = stmt
        .query_map(params![network], |r| parse_col(r.get(0)?, 0))
        .map_err(db_err("query allocations"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(db_err("read allocations"))
}

fn insert_endpoint(tx: &Transaction<'_>, rec: &EndpointRecord) -> Result<()> {
    let ctx = |what: &str| format!("insert {what} of {} on {}", rec.container_id, rec.network);
    tx.execute(
        "INSERT INTO net_ip_allocations (network, ip, container_id) VALUES (?1, ?2, ?3)",
        params![rec.network, rec.ip.to_string(), rec.container_id],
    )
    .map_err(db_err(ctx("ip allocation")))?;
    tx.execute(
        &format!("INSERT INTO net_endpoints ({ENDPOINT_COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)"),
        params![
            rec.container_id,
            rec.container_name,
            rec.network,
            rec.ip.to_string(),
            rec.mac,
            rec.host_iface,
            rec.container_iface,
            rec.sandbox.to_string_lossy(),
            rec.primary,
        ],
    )
    .map_err(db_err(ctx("endpoint")))?;
    for m in &rec.ports {
        tx.execute(
            "INSERT INTO net_port_mappings (container_id, network, proto, host_ip, host_port, container_port, container_ip)
             VALUES (?1,?2,?3,?4,?5,?6,?7)",
            params![
                rec.container_id,
                rec.network,
                m.proto.to_string(),
                m.host_ip.to_string(),
                m.host_port,
                m.container_port,
                rec.ip.to_string()
            ],
        )
        .map_err(db_err(ctx("port mapping")))?;
    }
    for a in &rec.aliases {
        tx.execute(
            "INSERT INTO net_aliases (container_id, network, alias) VALUES (?1, ?2, ?3)",
            params![rec.container_id, rec.network, a],
        )
        .map_err(db_err(ctx("alias")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("berth.db")).unwrap();
        (dir, db)
    }

    fn net(name: &str, subnet: &str) -> NewNetwork {
        NewNetwork {
            name: name.into(),
            pool: Pool::new(subnet.parse().unwrap(), None, None).unwrap(),
            internal: false,
            labels: BTreeMap::new(),
            mtu: 1500,
            predefined: false,
            bridge_prefix: "bt".into(),
            avoid: vec![],
        }
    }

    fn req(c: &str, n: &str) -> EndpointRequest {
        EndpointRequest {
            container_id: c.into(),
            network: n.into(),
            sandbox: "/run/x".into(),
            ..Default::default()
        }
    }

    #[test]
    fn networks_roundtrip_and_conflicts() {
        let (_d, mut db) = db();
        let a = db.create_network(&net("a", "10.199.1.0/24")).unwrap();
        assert_eq!(a.bridge, "bt1");
        assert_eq!(db.network("a").unwrap(), a);
        assert_eq!(db.find_network(&a.id[..8]).unwrap().name, "a");
        let b = db.create_network(&net("b", "10.199.2.0/24")).unwrap();
        assert_eq!(b.bridge, "bt2");
        assert!(matches!(
            db.create_network(&net("a", "10.199.9.0/24")),
            Err(NetError::NetworkExists(_))
        ));
        let err = db.create_network(&net("c", "10.199.0.0/16")).unwrap_err();
        assert!(err.to_string().contains("overlaps network \"a\""), "{err}");
        let mut avoid = net("d", "192.0.2.0/25");
        avoid.avoid = vec![("eth0".into(), "192.0.2.0/24".parse().unwrap())];
        assert!(
            db.create_network(&avoid)
                .unwrap_err()
                .to_string()
                .contains("host route 192.0.2.0/24 on eth0")
        );
        assert_eq!(
            db.pick_subnet("10.199.0.0/16".parse().unwrap(), 24, &[])
                .unwrap()
                .to_string(),
            "10.199.0.0/24"
        );
        assert_eq!(db.networks().unwrap().len(), 2);
        db.delete_network("a").unwrap();
        assert!(matches!(db.network("a"), Err(NetError::NetworkNotFound(_))));
        // bridge name freed for reuse
        assert_eq!(
            db.create_network(&net("e", "10.199.3.0/24"))
                .unwrap()
                .bridge,
            "bt1"
        );
    }

    #[test]
    fn endpoints_allocate_release_and_block_removal() {
        let (_d, mut db) = db();
        db.create_network(&net("n", "10.199.1.0/24")).unwrap();
        db.create_network(&net("m", "10.199.2.0/24")).unwrap();
        let mut r = req("c1", "n");
        r.container_name = Some("web".into());
        r.aliases = vec!["www".into(), "www".into()];
        r.ports = vec!["127.0.0.1::80".parse().unwrap()];
        let e1 = db.reserve_endpoint(&r).unwrap();
        assert_eq!(
            (
                e1.ip.to_string().as_str(),
                e1.container_iface.as_str(),
                e1.primary
            ),
            ("10.199.1.2", "eth0", true)
        );
        assert_eq!(e1.aliases, ["www"]);
        assert_eq!(e1.ports.len(), 1);
        assert!(e1.ports[0].host_port > 0);
        let e2 = db.reserve_endpoint(&req("c1", "m")).unwrap();
        assert_eq!((e2.container_iface.as_str(), e2.primary), ("eth1", false));
        assert!(matches!(
            db.reserve_endpoint(&req("c1", "n")),
            Err(NetError::AlreadyConnected { .. })
        ));
        let e3 = db.reserve_endpoint(&req("c2", "n")).unwrap();
        assert_eq!(e3.ip.to_string(), "10.199.1.3");
        let mut st = req("c3", "n");
        st.ip = Some("10.199.1.3".parse().unwrap());
        assert!(
            db.reserve_endpoint(&st)
                .unwrap_err()
                .to_string()
                .contains("already in use")
        );

        assert_eq!(db.resolve("n", "WEB.").unwrap(), vec![e1.ip]);
        assert_eq!(db.resolve("n", "www").unwrap(), vec![e1.ip]);
        assert_eq!(db.resolve("m", "web").unwrap(), Vec::<Ipv4Addr>::new());
        assert_eq!(db.endpoints_of("c1").unwrap()[0].ports, e1.ports);

        let err = db.delete_network("n").unwrap_err();
        assert!(matches!(err, NetError::NetworkInUse { .. }), "{err}");
        assert_eq!(db.delete_endpoint("c1", "n").unwrap().unwrap().ip, e1.ip);
        assert!(db.delete_endpoint("c1", "n").unwrap().is_none());
        assert!(db.published().unwrap().is_empty());
        // freed address is handed out again
        assert_eq!(db.reserve_endpoint(&req("c4", "n")).unwrap().ip, e1.ip);
    }

    #[test]
    fn published_port_conflicts_are_refused() {
        let (_d, mut db) = db();
        db.create_network(&net("n", "10.199.1.0/24")).unwrap();
        let free = ports::random_free_port(Proto::Tcp, Ipv4Addr::LOCALHOST).unwrap();
        let mut a = req("a", "n");
        a.ports = vec![format!("{free}:80").parse().unwrap()];
        db.reserve_endpoint(&a).unwrap();
        let mut b = req("b", "n");
        b.ports = vec![format!("127.0.0.1:{free}:80").parse().unwrap()];
        let err = db.reserve_endpoint(&b).unwrap_err().to_string();
        assert!(err.contains("published by container a"), "{err}");
        // nothing half-reserved
        assert!(db.endpoint("b", "n").unwrap().is_none());
        assert_eq!(db.allocations("n").unwrap().len(), 1);
        let mut c = req("c", "n");
        c.ports = vec![format!("{free}:80/udp").parse().unwrap()];
        db.reserve_endpoint(&c).unwrap();
    }

    #[test]
    fn parallel_connections_never_share_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        Db::open(&path)
            .unwrap()
            .create_network(&net("n", "10.199.1.0/24"))
            .unwrap();
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut db = Db::open(&path).unwrap();
                    db.reserve_endpoint(&req(&format!("c{i}"), "n")).unwrap().ip
                })
            })
            .collect();
        let ips: BTreeSet<Ipv4Addr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(ips.len(), 20);
    }
}
