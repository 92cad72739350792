//! Forgetting connection-tracking entries of a container address when its
//! endpoint goes away. Without this, a UDP "connection" to a published port
//! keeps its DNAT to the old address until conntrack times it out (30 s to
//! minutes), so a new container publishing the same port does not get the
//! traffic. Speaks ctnetlink directly (NETLINK_NETFILTER): dump the table,
//! delete the entries that involve the address. Message layout: the
//! kernel's include/uapi/linux/netfilter/nfnetlink_conntrack.h.

use std::io;
use std::net::Ipv4Addr;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::error::{NetError, Result};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ZONE: u16 = 7;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDR: usize = 16;
const NFGENMSG: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;

/// One netlink attribute: type (flags masked off), value, and the whole
/// attribute as it was on the wire.
struct Nla<'a> {
    kind: u16,
    value: &'a [u8],
    raw: &'a [u8],
}

/// The attributes in `buf` (stops at the first malformed one).
fn nlas(buf: &[u8]) -> Vec<Nla<'_>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= buf.len() {
        let len = usize::from(u16::from_ne_bytes([buf[off], buf[off + 1]]));
        if len < 4 || off + len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[off + 2], buf[off + 3]]) & NLA_TYPE_MASK;
        out.push(Nla {
            kind,
            value: &buf[off + 4..off + len],
            raw: &buf[off..off + len],
        });
        off += (len + 3) & !3;
    }
    out
}

fn find<'a>(attrs: &'a [Nla<'a>], kind: u16) -> Option<&'a Nla<'a>> {
    attrs.iter().find(|a| a.kind == kind)
}

/// (source, destination) of a CTA_TUPLE_* value.
fn tuple_addrs(tuple: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let outer = nlas(tuple);
    let ip = nlas(find(&outer, CTA_TUPLE_IP)?.value);
    let addr = |k| {
        let v = find(&ip, k)?.value;
        Some(Ipv4Addr::new(
            *v.first()?,
            *v.get(1)?,
            *v.get(2)?,
            *v.get(3)?,
        ))
    };
    Some((addr(CTA_IP_V4_SRC)?, addr(CTA_IP_V4_DST)?))
}

/// For one dumped entry (its attributes after the nfgenmsg header): the
/// attributes that identify it for deletion (original tuple, zone) if any
/// address of either direction is one of `ips`.
pub(crate) fn delete_key(attrs: &[u8], ips: &[Ipv4Addr]) -> Option<Vec<u8>> {
    let a = nlas(attrs);
    let orig = find(&a, CTA_TUPLE_ORIG)?;
    let (os, od) = tuple_addrs(orig.value)?;
    let (rs, rd) = find(&a, CTA_TUPLE_REPLY)
        .and_then(|r| tuple_addrs(r.value))
        .unwrap_or((os, od));
    if ![os, od, rs, rd].iter().any(|x| ips.contains(x)) {
        return None;
    }
    let mut key = orig.raw.to_vec();
    while key.len() % 4 != 0 {
        key.push(0);
    }
    if let Some(z) = find(&a, CTA_ZONE) {
        key.extend_from_slice(z.raw);
        while key.len() % 4 != 0 {
            key.push(0);
        }
    }
    Some(key)
}

fn message(msg_type: u16, flags: u16, seq: u32, attrs: &[u8]) -> Vec<u8> {
    let len = (NLMSG_HDR + NFGENMSG + attrs.len()) as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | msg_type).to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, version (NFNETLINK_V0), resource id (big endian)
    m.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

fn ct_err(op: &str, source: io::Error) -> NetError {
    NetError::Netlink {
        op: format!("conntrack: {op}"),
        source,
    }
}

/// Reads replies to `seq` until the ack / end of dump, handing each
/// message's payload (after nfgenmsg) to `each`.
fn read_until_done(sock: &Socket, seq: u32, op: &str, mut each: impl FnMut(&[u8])) -> Result<()> {
    loop {
        let (data, _) = sock.recv_from_full().map_err(|e| ct_err(op, e))?;
        let mut off = 0;
        while off + NLMSG_HDR <= data.len() {
            let len = u32::from_ne_bytes(data[off..off + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
            let mseq = u32::from_ne_bytes(data[off + 8..off + 12].try_into().expect("4 bytes"));
            if len < NLMSG_HDR || off + len > data.len() {
                return Err(ct_err(
                    op,
                    io::Error::new(io::ErrorKind::InvalidData, "truncated message"),
                ));
            }
            let body = &data[off + NLMSG_HDR..off + len];
            off += (len + 3) & !3;
            if mseq != seq {
                continue;
            }
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = i32::from_ne_bytes(
                        body.get(..4)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or([0; 4]),
                    );
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(ct_err(op, io::Error::from_raw_os_error(-code)))
                    };
                }
                _ if body.len() >= NFGENMSG => each(&body[NFGENMSG..]),
                _ => {}
            }
        }
    }
}

/// Deletes every IPv4 conntrack entry (in the caller's network namespace)
/// whose original or reply direction involves one of `ips`. Returns how
/// many were deleted. Entries that expire meanwhile are not an error.
pub fn forget(ips: &[Ipv4Addr]) -> Result<usize> {
    if ips.is_empty() {
        return Ok(0);
    }
    let mut sock = match Socket::new(NETLINK_NETFILTER) {
        Ok(s) => s,
        // No netfilter netlink at all: nothing can be tracked.
        Err(e) if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => return Ok(0),
        Err(e) => return Err(ct_err("open socket", e)),
    };
    sock.bind_auto().map_err(|e| ct_err("bind", e))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| ct_err("connect", e))?;
    sock.send(
        &message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, &[]),
        0,
    )
    .map_err(|e| ct_err("dump", e))?;
    let mut keys = Vec::new();
    match read_until_done(&sock, 1, "dump", |attrs| {
        keys.extend(delete_key(attrs, ips))
    }) {
        Ok(()) => {}
        // ctnetlink not loaded: no conntrack entries exist.
        Err(NetError::Netlink { source, .. })
            if matches!(
                source.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            return Ok(0);
        }
        Err(e) => return Err(e),
    }
    let mut deleted = 0;
    for (i, key) in keys.iter().enumerate() {
        let seq = 2 + i as u32;
        sock.send(
            &message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, key),
            0,
        )
        .map_err(|e| ct_err("delete", e))?;
        match read_until_done(&sock, seq, "delete", |_| {}) {
            Ok(()) => deleted += 1,
            Err(NetError::Netlink { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn tuple(kind: u16, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let ip = [nla(CTA_IP_V4_SRC, &src), nla(CTA_IP_V4_DST, &dst)].concat();
        let proto = nla(1, &[17]); // CTA_PROTO_NUM = udp
        nla(
            kind | 0x8000,
            &[nla(CTA_TUPLE_IP | 0x8000, &ip), nla(2 | 0x8000, &proto)].concat(),
        )
    }

    #[test]
    fn matches_either_direction_and_keeps_the_original_tuple() {
        // 127.0.0.1:x → 127.0.0.1:p, DNATed to 10.199.1.2 (reply from it).
        let orig = tuple(CTA_TUPLE_ORIG, [127, 0, 0, 1], [127, 0, 0, 1]);
        let reply = tuple(CTA_TUPLE_REPLY, [10, 199, 1, 2], [10, 199, 1, 1]);
        let entry = [orig.clone(), reply, nla(CTA_ZONE, &[0, 0])].concat();
        let key = delete_key(&entry, &["10.199.1.2".parse().unwrap()]).unwrap();
        assert!(key.starts_with(&orig), "the original tuple, byte for byte");
        assert_eq!(key.len(), orig.len() + 8, "plus the zone");
        assert!(delete_key(&entry, &["10.199.1.3".parse().unwrap()]).is_none());
        assert!(delete_key(&[], &["10.199.1.2".parse().unwrap()]).is_none());
    }

    #[test]
    fn message_layout() {
        let m = message(
            IPCTNL_MSG_CT_DELETE,
            NLM_F_REQUEST | NLM_F_ACK,
            7,
            &[1, 2, 3, 4],
        );
        assert_eq!(m.len(), 24);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 24);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0102);
        assert_eq!(m[16], libc::AF_INET as u8);
    }
}
