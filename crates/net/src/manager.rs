//! The facade the engine uses: networks, endpoints, sandboxes,
//! reconciliation. Validation happens before anything is touched; a
//! failure in the middle of a setup rolls back what was done; a teardown
//! keeps going past errors and reports them all.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::conntrack;
use crate::dns::{self, Launcher};
use crate::error::{NetError, Result};
use crate::files;
use crate::firewall::{Firewall, FwNetwork, FwPort};
use crate::ipam::{self, Pool, Subnet};
use crate::netlink::Netlink;
use crate::ports::{PortMapping, PortSpec, Proto};
use crate::sandbox;
use crate::state::{Db, EndpointRecord, EndpointRequest, NetworkRecord, NewNetwork};
use crate::sysctl;

/// Knobs of the networking layer; [`Config::default`] gives berth's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bridges are `<prefix>0` (default network), `<prefix>1`, ...
    pub bridge_prefix: String,
    /// nftables table (family inet) berth owns.
    pub nft_table: String,
    /// Name of the predefined network (`--network bridge` means this one).
    pub default_network: String,
    /// The default network's subnet; `None` picks one from the pool.
    pub default_subnet: Option<Subnet>,
    /// Where subnets of networks created without `--subnet` come from.
    pub default_subnet_pool: Subnet,
    /// Size of those subnets.
    pub pool_prefix: u8,
    pub mtu: u32,
    /// How to start the per-network DNS server; `None`: no DNS server
    /// (containers get the host's non-loopback resolvers).
    pub dns: Option<Launcher>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bridge_prefix: "berth".into(),
            nft_table: "berth".into(),
            default_network: "bridge".into(),
            default_subnet: None,
            default_subnet_pool: Subnet::new(Ipv4Addr::new(10, 123, 0, 0), 16).expect("valid pool"),
            pool_prefix: 24,
            mtu: 1500,
            dns: None,
        }
    }
}

/// `network create` arguments.
#[derive(Clone, Debug, Default)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Subnet>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    pub mtu: Option<u32>,
}

/// How a container joins a network (`--ip`, `--alias`, `-p`).
#[derive(Clone, Debug, Default)]
pub struct AttachOptions {
    /// Container name: resolvable by the other containers of the network.
    pub name: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub aliases: Vec<String>,
    pub ports: Vec<PortSpec>,
}

/// A container's connection to a network, as set up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub network: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: String,
    /// `None` on `--internal` networks and for non-primary endpoints.
    pub gateway: Option<Ipv4Addr>,
    /// Interface name inside the sandbox.
    pub iface: String,
    /// Host side of the veth pair.
    pub host_iface: String,
    pub ports: Vec<PortMapping>,
    pub aliases: Vec<String>,
}

/// `network inspect`: the network and who is on it.
#[derive(Clone, Debug, Serialize)]
pub struct NetworkInfo {
    #[serde(flatten)]
    pub network: NetworkRecord,
    pub containers: Vec<EndpointRecord>,
}

/// What [`NetworkManager::reconcile`] cleaned.
#[derive(Debug, Default)]
pub struct ReconcileReport {
    /// (container, network) endpoints released.
    pub endpoints: Vec<(String, String)>,
    /// Sandbox ids removed.
    pub sandboxes: Vec<String>,
    /// Host interfaces deleted that the database did not know.
    pub orphan_links: Vec<String>,
    pub errors: Vec<NetError>,
}

/// The files to write into a container (`/etc/hosts`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerFiles {
    pub hosts: String,
    pub resolv_conf: String,
    pub hostname: String,
}

/// Networking for one engine: its database, run dir, bridges and nft table.
pub struct NetworkManager {
    db: Db,
    db_path: PathBuf,
    run_dir: PathBuf,
    config: Config,
    fw: Firewall,
}

fn valid_name(name: &str) -> Result<()> {
    let bad = |reason: &str| NetError::InvalidName {
        name: name.into(),
        reason: reason.into(),
    };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return Err(bad("must start with a letter or digit"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        return Err(bad("only letters, digits, '_', '.' and '-' are allowed"));
    }
    if ["none", "host", "bridge", "default"].contains(&name) {
        return Err(bad("reserved name"));
    }
    Ok(())
}

/// Container names and aliases: what Docker accepts, `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_container_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NetError::InvalidName {
            name: name.into(),
            reason: "container names and aliases are [a-zA-Z0-9][a-zA-Z0-9_.-]*".into(),
        })
    }
}

fn fw_network(n: &NetworkRecord) -> FwNetwork {
    FwNetwork {
        bridge: n.bridge.clone(),
        subnet: n.subnet,
        gateway: n.gateway,
        internal: n.internal,
    }
}

fn fw_ports(e: &EndpointRecord) -> Vec<FwPort> {
    e.ports
        .iter()
        .map(|m| FwPort {
            mapping: m.clone(),
            container_ip: e.ip,
        })
        .collect()
}

fn teardown_result(mut errors: Vec<NetError>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(NetError::Teardown(errors)),
    }
}

impl NetworkManager {
    /// Opens the database at `db_path` (creating the `net_` tables) and
    /// uses `run_dir` for sandboxes and DNS server state.
    pub fn open(db_path: &Path, run_dir: &Path, config: Config) -> Result<Self> {
        if config.bridge_prefix.is_empty() || config.bridge_prefix.len() > 12 {
            return Err(NetError::InvalidName {
                name: config.bridge_prefix.clone(),
                reason: "bridge prefix must be 1 to 12 characters (bridge names max 15)".into(),
            });
        }
        let fw = Firewall::new(&config.nft_table)?;
        Ok(Self {
            db: Db::open(db_path)?,
            db_path: db_path.to_path_buf(),
            run_dir: run_dir.to_path_buf(),
            config,
            fw,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn firewall(&self) -> &Firewall {
        &self.fw
    }

    /// Direct access to the stored state (read-mostly callers, tests).
    pub fn db(&self) -> &Db {
        &self.db
    }

    // ---- networks ----

    fn create(&mut self, spec: &NetworkSpec, predefined: bool) -> Result<NetworkRecord> {
        // Every routed prefix on the host, our own bridges' included: those
        // are networks in the database anyway, or leftovers that would clash.
        let avoid: Vec<(String, Subnet)> = ipam::host_routes()?;
        let subnet = match spec.subnet {
            Some(s) => s,
            None => self.db.pick_subnet(
                self.config.default_subnet_pool,
                self.config.pool_prefix,
                &avoid,
            )?,
        };
        let pool = Pool::new(subnet, spec.gateway, spec.ip_range)?;
        let rec = self.db.create_network(&NewNetwork {
            name: spec.name.clone(),
            pool,
            internal: spec.internal,
            labels: spec.labels.clone(),
            mtu: spec.mtu.unwrap_or(self.config.mtu),
            predefined,
            bridge_prefix: self.config.bridge_prefix.clone(),
            avoid,
        })?;
        if let Err(e) = self.bring_up(&rec) {
            let mut rollback = Vec::new();
            if let Err(r) = self.bring_down(&rec) {
                rollback.push(r);
            }
            if let Err(r) = self.db.delete_network(&rec.name) {
                rollback.push(r);
            }
            return Err(if rollback.is_empty() {
                e
            } else {
                NetError::RolledBack {
                    error: Box::new(e),
                    rollback,
                }
            });
        }
        Ok(rec)
    }

    /// `network create`: validates, stores, and brings up the bridge and
    /// its firewall elements (all or nothing).
    pub fn create_network(&mut self, spec: &NetworkSpec) -> Result<NetworkRecord> {
        valid_name(&spec.name)?;
        if let Some(mtu) = spec.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(NetError::InvalidName {
                name: spec.name.clone(),
                reason: format!("mtu {mtu} out of range 68-65535"),
            });
        }
        self.create(spec, false)
    }

    /// The default network, created on first use.
    pub fn ensure_default(&mut self) -> Result<NetworkRecord> {
        let name = self.config.default_network.clone();
        if let Ok(n) = self.db.network(&name) {
            return Ok(n);
        }
        let spec = NetworkSpec {
            name: name.clone(),
            subnet: self.config.default_subnet,
            ..Default::default()
        };
        match self.create(&spec, true) {
            Err(NetError::NetworkExists(_)) => self.db.network(&name),
            other => other,
        }
    }

    /// Bridge up with its gateway address, sysctls, firewall elements.
    /// Idempotent: also used to restore networks after a reboot.
    fn bring_up(&mut self, n: &NetworkRecord) -> Result<()> {
        let mut nl = Netlink::open()?;
        let idx = nl.ensure_bridge(&n.bridge, n.mtu, ipam::mac_for(n.gateway))?;
        nl.add_address(idx, n.gateway, n.subnet.prefix())?;
        nl.set_up(idx)?;
        if !n.internal {
            sysctl::enable_ip_forward()?;
        }
        sysctl::configure_bridge(&n.bridge, !n.internal)?;
        self.fw.add_network(&fw_network(n))
    }

    fn bring_down(&self, n: &NetworkRecord) -> Result<()> {
        let mut errors = Vec::new();
        if self.config.dns.is_some()
            && let Err(e) = dns::stop(&self.run_dir, &n.name)
        {
            errors.push(e);
        }
        match std::fs::remove_file(dns::logfile(&self.run_dir, &n.name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => errors.push(NetError::Io {
                what: "remove dns log".into(),
                source: e,
            }),
            _ => {}
        }
        if let Err(e) = self.fw.remove_network(&fw_network(n)) {
            errors.push(e);
        }
        if let Err(e) = Netlink::open().and_then(|mut nl| nl.delete_link(&n.bridge)) {
            errors.push(e);
        }
        teardown_result(errors)
    }

    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        self.db.networks()
    }

    /// `network inspect NAME|ID`.
    pub fn inspect(&self, name_or_id: &str) -> Result<NetworkInfo> {
        let network = self.db.find_network(name_or_id)?;
        let containers = self.db.endpoints_on(&network.name)?;
        Ok(NetworkInfo {
            network,
            containers,
        })
    }

    /// `network rm`: refused while containers use it or for the default network.
    pub fn remove(&mut self, name_or_id: &str) -> Result<()> {
        let n = self.db.find_network(name_or_id)?;
        if n.predefined {
            return Err(NetError::NetworkPredefined(n.name));
        }
        let rec = self.db.delete_network(&n.name)?;
        self.bring_down(&rec)
    }

    /// `network prune`: removes every unused user-defined network; returns their names.
    pub fn prune(&mut self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        for n in self.db.networks()? {
            if n.predefined || !self.db.endpoints_on(&n.name)?.is_empty() {
                continue;
            }
            match self.remove(&n.name) {
                Ok(()) => removed.push(n.name),
                Err(NetError::NetworkInUse { .. }) => {}
                Err(e) => errors.push(e),
            }
        }
        teardown_result(errors)?;
        Ok(removed)
    }

    // ---- sandboxes ----

    /// Creates the sandbox of a container: `<run_dir>/netns/<container_id>`.
    pub fn create_sandbox(&self, container_id: &str) -> Result<PathBuf> {
        sandbox::create(&self.run_dir, container_id)
    }

    pub fn sandbox_path(&self, container_id: &str) -> PathBuf {
        sandbox::netns_dir(&self.run_dir).join(container_id)
    }

    // ---- endpoints ----

    /// Connects the container whose sandbox is `sandbox_path` to `network`:
    /// reserves address/ports in the database, then creates the veth pair
    /// (peer straight into the sandbox), configures it, publishes ports and
    /// makes sure the network's DNS server runs. Any failure undoes it all.
    pub fn attach(
        &mut self,
        container_id: &str,
        sandbox_path: &Path,
        network: &str,
        opts: &AttachOptions,
    ) -> Result<Endpoint> {
        let net = if network == self.config.default_network {
            self.ensure_default()?
        } else {
            self.db.network(network)?
        };
        if let Some(n) = &opts.name {
            valid_container_name(n)?;
        }
        for a in &opts.aliases {
            valid_container_name(a)?;
        }
        let rec = self.db.reserve_endpoint(&EndpointRequest {
            container_id: container_id.into(),
            container_name: opts.name.clone(),
            network: net.name.clone(),
            sandbox: sandbox_path.to_path_buf(),
            ip: opts.ip,
            aliases: opts.aliases.clone(),
            ports: opts.ports.clone(),
        })?;
        match self.setup_endpoint(&net, &rec) {
            Ok(ep) => Ok(ep),
            Err(e) => {
                let rollback = self.teardown_endpoint(&net, &rec, false);
                Err(match rollback {
                    Ok(()) => e,
                    Err(r) => NetError::RolledBack {
                        error: Box::new(e),
                        rollback: vec![r],
                    },
                })
            }
        }
    }

    fn setup_endpoint(&mut self, net: &NetworkRecord, rec: &EndpointRecord) -> Result<Endpoint> {
        let ns = File::open(&rec.sandbox).map_err(crate::error::io_err(format!(
            "open sandbox {}",
            rec.sandbox.display()
        )))?;
        let mut nl = Netlink::open()?;
        // The bridge goes away only with its network or a reboot; bring the
        // network back up (bridge, sysctls, nft elements) only then.
        if nl.link_index(&net.bridge)?.is_none() {
            self.bring_up(net)?;
        }
        let mac = ipam::mac_for(rec.ip);
        let host = nl.create_veth(
            &rec.host_iface,
            &rec.container_iface,
            mac,
            net.mtu,
            ns.as_raw_fd(),
        )?;
        let bridge = nl
            .link_index(&net.bridge)?
            .ok_or_else(|| NetError::Netlink {
                op: format!("find bridge {}", net.bridge),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            })?;
        nl.set_master(host, bridge)?;
        sysctl::set_hairpin(&rec.host_iface)?;
        nl.set_up(host)?;
        let gateway = (rec.primary && !net.internal).then_some(net.gateway);
        let (iface, ip, prefix) = (rec.container_iface.clone(), rec.ip, net.subnet.prefix());
        sandbox::run_in(&rec.sandbox, move || {
            Netlink::open()?.configure_inside(&iface, ip, prefix, gateway)
        })?;
        self.fw.add_ports(&fw_ports(rec))?;
        if let Some(l) = &self.config.dns {
            dns::ensure_running(l, &self.db_path, &self.run_dir, &net.name)?;
        }
        Ok(Endpoint {
            network: net.name.clone(),
            ip: rec.ip,
            prefix,
            mac: rec.mac.clone(),
            gateway,
            iface: rec.container_iface.clone(),
            host_iface: rec.host_iface.clone(),
            ports: rec.ports.clone(),
            aliases: rec.aliases.clone(),
        })
    }

    /// Undoes an endpoint: ports, veth, then the database rows (so a crash
    /// half-way leaves rows that the next reconcile finishes). Keeps going
    /// past errors. Stops the network's DNS server when it was the last one.
    fn teardown_endpoint(
        &mut self,
        net: &NetworkRecord,
        rec: &EndpointRecord,
        stop_dns: bool,
    ) -> Result<()> {
        let mut errors = Vec::new();
        if let Err(e) = self.fw.remove_ports(&fw_ports(rec)) {
            errors.push(e);
        }
        if let Err(e) = Netlink::open().and_then(|mut nl| nl.delete_link(&rec.host_iface)) {
            errors.push(e);
        }
        // After the DNAT elements and the veth are gone, so nothing re-creates
        // them. Only UDP flows outlive their endpoint in a way that matters
        // (a TCP peer sees resets), and a conntrack dump walks the whole
        // table (~10 ms), so only endpoints that published UDP pay for it.
        if rec.ports.iter().any(|p| p.proto == Proto::Udp)
            && let Err(e) = conntrack::forget(&[rec.ip])
        {
            errors.push(e);
        }
        if let Err(e) = self.db.delete_endpoint(&rec.container_id, &rec.network) {
            errors.push(e);
        }
        if stop_dns && self.config.dns.is_some() {
            match self.db.endpoints_on(&net.name) {
                Ok(rest) if rest.is_empty() => {
                    if let Err(e) = dns::stop(&self.run_dir, &net.name) {
                        errors.push(e);
                    }
                }
                Ok(_) => {}
                Err(e) => errors.push(e),
            }
        }
        teardown_result(errors)
    }

    /// `network disconnect`: removes the container's endpoint on `network`.
    pub fn detach(&mut self, container_id: &str, network: &str) -> Result<()> {
        let net = self.db.network(network)?;
        let rec =
            self.db
                .endpoint(container_id, &net.name)?
                .ok_or_else(|| NetError::NotConnected {
                    container: container_id.into(),
                    network: network.into(),
                })?;
        self.teardown_endpoint(&net, &rec, true)
    }

    /// Releases everything of a container: all endpoints, and its sandbox
    /// under the run dir. Keeps going past errors.
    pub fn release_all(&mut self, container_id: &str) -> Result<()> {
        let mut errors = Vec::new();
        match self.db.endpoints_of(container_id) {
            Ok(eps) => {
                for rec in eps {
                    let r = self
                        .db
                        .network(&rec.network)
                        .and_then(|net| self.teardown_endpoint(&net, &rec, true));
                    if let Err(e) = r {
                        errors.push(e);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        if let Err(e) = sandbox::remove(&self.sandbox_path(container_id)) {
            errors.push(e);
        }
        teardown_result(errors)
    }

    /// The container's endpoints as set up (primary first).
    pub fn endpoints(&self, container_id: &str) -> Result<Vec<Endpoint>> {
        let mut out = Vec::new();
        for rec in self.db.endpoints_of(container_id)? {
            let net = self.db.network(&rec.network)?;
            out.push(Endpoint {
                network: rec.network.clone(),
                ip: rec.ip,
                prefix: net.subnet.prefix(),
                mac: rec.mac.clone(),
                gateway: (rec.primary && !net.internal).then_some(net.gateway),
                iface: rec.container_iface.clone(),
                host_iface: rec.host_iface.clone(),
                ports: rec.ports.clone(),
                aliases: rec.aliases.clone(),
            });
        }
        Ok(out)
    }

    /// `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` for a container.
    pub fn container_files(&self, container_id: &str, hostname: &str) -> Result<ContainerFiles> {
        let eps = self.db.endpoints_of(container_id)?;
        let own: Vec<(Ipv4Addr, Vec<String>)> =
            eps.iter().map(|e| (e.ip, e.aliases.clone())).collect();
        let dns_server = match (&self.config.dns, eps.first()) {
            (Some(_), Some(primary)) => Some(self.db.network(&primary.network)?.gateway),
            _ => None,
        };
        Ok(ContainerFiles {
            hosts: files::etc_hosts(hostname, &own, &[]),
            resolv_conf: files::resolv_conf(dns_server, &files::host_resolv_conf()),
            hostname: files::hostname_file(hostname),
        })
    }

    /// Removes everything this manager owns: every endpoint, every
    /// network (the default one too), the sandboxes and the nft table
    /// (`system reset`; tests). Keeps going past errors.
    pub fn reset(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        match self.db.all_endpoints() {
            Ok(eps) => {
                for rec in eps {
                    let r = self
                        .db
                        .network(&rec.network)
                        .and_then(|net| self.teardown_endpoint(&net, &rec, true));
                    if let Err(e) = r {
                        errors.push(e);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        match sandbox::list(&self.run_dir) {
            Ok(ids) => {
                for id in ids {
                    if let Err(e) = sandbox::remove(&self.sandbox_path(&id)) {
                        errors.push(e);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        match self.db.networks() {
            Ok(nets) => {
                for n in nets {
                    let r = self
                        .db
                        .delete_network(&n.name)
                        .and_then(|rec| self.bring_down(&rec));
                    if let Err(e) = r {
                        errors.push(e);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        if let Err(e) = self.fw.delete_table() {
            errors.push(e);
        }
        teardown_result(errors)
    }

    // ---- reconciliation ----

    /// Repairs state after a crash or reboot, given the containers that
    /// still exist: releases endpoints of the others (addresses, ports,
    /// veths), removes their sandboxes, deletes veths on berth bridges
    /// that no endpoint owns, brings every network back up, and rebuilds
    /// the nft table from the database.
    pub fn reconcile(&mut self, live_containers: &[&str]) -> ReconcileReport {
        let live: BTreeSet<&str> = live_containers.iter().copied().collect();
        let mut report = ReconcileReport::default();
        match self.db.all_endpoints() {
            Ok(eps) => {
                for rec in eps
                    .into_iter()
                    .filter(|e| !live.contains(e.container_id.as_str()))
                {
                    let r = self
                        .db
                        .network(&rec.network)
                        .and_then(|net| self.teardown_endpoint(&net, &rec, true));
                    match r {
                        Ok(()) => report.endpoints.push((rec.container_id, rec.network)),
                        Err(e) => report.errors.push(e),
                    }
                }
            }
            Err(e) => report.errors.push(e),
        }
        match sandbox::list(&self.run_dir) {
            Ok(ids) => {
                for id in ids.into_iter().filter(|id| !live.contains(id.as_str())) {
                    match sandbox::remove(&self.sandbox_path(&id)) {
                        Ok(()) => report.sandboxes.push(id),
                        Err(e) => report.errors.push(e),
                    }
                }
            }
            Err(e) => report.errors.push(e),
        }
        let networks = match self.db.networks() {
            Ok(n) => n,
            Err(e) => {
                report.errors.push(e);
                return report;
            }
        };
        for n in &networks {
            if let Err(e) = self.bring_up(n) {
                report.errors.push(e);
            }
        }
        if self.config.dns.is_some() {
            for n in &networks {
                if let Err(e) = self.reconcile_dns(n) {
                    report.errors.push(e);
                }
            }
        }
        match self.orphan_links(&networks) {
            Ok(links) => report.orphan_links = links,
            Err(e) => report.errors.push(e),
        }
        let ports: Result<Vec<FwPort>> = self.db.published().map(|p| {
            p.into_iter()
                .map(|(_, mapping, container_ip)| FwPort {
                    mapping,
                    container_ip,
                })
                .collect()
        });
        match ports {
            Ok(ports) => {
                let nets: Vec<FwNetwork> = networks.iter().map(fw_network).collect();
                if let Err(e) = self.fw.replay(&nets, &ports) {
                    report.errors.push(e);
                }
            }
            Err(e) => report.errors.push(e),
        }
        report
    }

    /// A network's DNS server runs exactly while it has endpoints.
    fn reconcile_dns(&self, n: &NetworkRecord) -> Result<()> {
        let launcher = self.config.dns.as_ref().expect("checked by caller");
        if self.db.endpoints_on(&n.name)?.is_empty() {
            dns::stop(&self.run_dir, &n.name)
        } else {
            dns::ensure_running(launcher, &self.db_path, &self.run_dir, &n.name).map(drop)
        }
    }

    /// Deletes `vb*` links enslaved to one of our bridges that no endpoint
    /// in the database owns (left by a crash between veth creation and
    /// rollback).
    fn orphan_links(&self, networks: &[NetworkRecord]) -> Result<Vec<String>> {
        let known: BTreeSet<String> = self
            .db
            .all_endpoints()?
            .into_iter()
            .map(|e| e.host_iface)
            .collect();
        let mut nl = Netlink::open()?;
        let mut bridges = BTreeSet::new();
        for n in networks {
            if let Some(i) = nl.link_index(&n.bridge)? {
                bridges.insert(i);
            }
        }
        let mut deleted = Vec::new();
        for (name, master) in nl.links_with_prefix("vb")? {
            if master.is_some_and(|m| bridges.contains(&m))
                && !known.contains(&name)
                && nl.delete_link(&name)?
            {
                deleted.push(name);
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names() {
        for ok in ["front", "a.b-c_d", "9lives"] {
            valid_name(ok).unwrap();
        }
        for bad in [
            "",
            "-x",
            "a b",
            "host",
            "none",
            "bridge",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
    }
}
