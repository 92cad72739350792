//! A small synchronous rtnetlink client: just the link, address and route
//! operations berth needs (bridges, veth pairs, addresses, default route).
//! A `Netlink` acts on the network namespace it was opened in; use
//! [`crate::sandbox::run_in`] to open one inside a sandbox.
//! Protocol reference: rtnetlink(7), netlink(7).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::{NetError, Result};

/// An rtnetlink socket bound to the namespace it was created in.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

fn nl_err(op: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let op = op.into();
    move |source| NetError::Netlink { op, source }
}

/// Whether `e` is the kernel saying errno `code`.
pub fn is_errno(e: &NetError, code: i32) -> bool {
    matches!(e, NetError::Netlink { source, .. } if source.raw_os_error() == Some(code))
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(nl_err("open socket"))?;
        socket.bind_auto().map_err(nl_err("bind socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(nl_err("connect socket"))?;
        // Extended acks make the kernel explain EINVAL and friends.
        let _ = socket.set_ext_ack(true);
        Ok(Self { socket, seq: 0 })
    }

    /// Sends one request and collects the replies until the ack (or the
    /// end of a dump). A negative ack becomes an error naming `op`.
    fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(nl_err(op.to_string()))?;
        let mut replies = Vec::new();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(nl_err(op.to_string()))?;
            let mut off = 0;
            while off < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| NetError::Netlink {
                        op: op.to_string(),
                        source: io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
                    })?;
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(_) => Err(NetError::Netlink {
                                op: op.to_string(),
                                source: e.to_io(),
                            }),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
    }

    /// Index of the link called `name`, if there is one.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            &format!("get link {name}"),
            RouteNetlinkMessage::GetLink(msg),
            0,
        ) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn require_index(&mut self, name: &str) -> Result<u32> {
        self.link_index(name)?.ok_or_else(|| NetError::Netlink {
            op: format!("find link {name}"),
            source: io::Error::from_raw_os_error(libc::ENODEV),
        })
    }

    /// Links whose name starts with `prefix`, with the index of their
    /// bridge (controller), if any.
    pub fn links_with_prefix(&mut self, prefix: &str) -> Result<Vec<(String, Option<u32>)>> {
        let msg = LinkMessage::default();
        let replies = self.request(
            "dump links",
            RouteNetlinkMessage::GetLink(msg),
            netlink_packet_core::NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for m in replies {
            let RouteNetlinkMessage::NewLink(l) = m else {
                continue;
            };
            let mut name = None;
            let mut master = None;
            for a in l.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n),
                    LinkAttribute::Controller(i) => master = Some(i),
                    _ => {}
                }
            }
            if let Some(n) = name.filter(|n| n.starts_with(prefix)) {
                out.push((n, master));
            }
        }
        Ok(out)
    }

    /// Creates a bridge (an existing one of that name is kept) and returns
    /// its index. The MAC is set explicitly: a bridge without one takes the
    /// lowest MAC of its ports and changes it when that port leaves, which
    /// leaves every container's ARP entry for the gateway stale.
    pub fn ensure_bridge(&mut self, name: &str, mtu: u32, mac: [u8; 6]) -> Result<u32> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match self.request(
            &format!("create bridge {name}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => {}
            Err(e) if is_errno(&e, libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
        self.require_index(name)
    }

    /// Creates a veth pair: `host` here, `peer` created directly inside the
    /// namespace `peer_netns` (an open nsfs fd) with the given MAC. Both ends get `mtu`.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_mac: [u8; 6],
        mtu: u32,
        peer_netns: RawFd,
    ) -> Result<u32> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        peer_msg
            .attributes
            .push(LinkAttribute::Address(peer_mac.to_vec()));
        peer_msg.attributes.push(LinkAttribute::NetNsFd(peer_netns));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(
            &format!("create veth {host} (peer {peer})"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        self.require_index(host)
    }

    fn set_link(
        &mut self,
        op: &str,
        index: u32,
        flags: LinkFlags,
        attrs: Vec<LinkAttribute>,
    ) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = flags;
        msg.header.change_mask = flags;
        msg.attributes = attrs;
        self.request(op, RouteNetlinkMessage::SetLink(msg), 0)
            .map(drop)
    }

    pub fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_link(
            &format!("set link {index} up"),
            index,
            LinkFlags::Up,
            vec![],
        )
    }

    /// Enslaves `index` to the bridge `master`.
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        self.set_link(
            &format!("attach link {index} to bridge {master}"),
            index,
            LinkFlags::empty(),
            vec![LinkAttribute::Controller(master)],
        )
    }

    /// Deletes the link `name`; returns false if it did not exist. Deleting
    /// one end of a veth pair deletes the other.
    pub fn delete_link(&mut self, name: &str) -> Result<bool> {
        let Some(index) = self.link_index(name)? else {
            return Ok(false);
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(
            &format!("delete link {name}"),
            RouteNetlinkMessage::DelLink(msg),
            0,
        ) {
            Ok(_) => Ok(true),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds `ip/prefix` to link `index` (already present is fine).
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(ip)));
        let bcast = u32::from(ip)
            | if prefix == 0 {
                u32::MAX
            } else {
                !(u32::MAX << (32 - prefix))
            };
        msg.attributes
            .push(AddressAttribute::Broadcast(Ipv4Addr::from(bcast)));
        match self.request(
            &format!("add address {ip}/{prefix} to link {index}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(()),
            Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Adds the default route via `gateway` out of link `index`.
    pub fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.request(
            &format!("add default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Configures a container-side interface: address, up, and the default
    /// route when `gateway` is given.
    pub fn configure_inside(
        &mut self,
        iface: &str,
        ip: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        let index = self.require_index(iface)?;
        self.add_address(index, ip, prefix)?;
        self.set_up(index)?;
        if let Some(gw) = gateway {
            self.add_default_route(index, gw)?;
        }
        Ok(())
    }
}
