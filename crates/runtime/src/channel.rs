//! The parent ⇄ child channel: a SOCK_SEQPACKET socketpair carrying small
//! typed JSON messages, optionally with one fd (SCM_RIGHTS). One message is
//! one packet, so there is no framing to get wrong; a closed peer reads as
//! `None`, which the other side turns into a clear error.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, sendmsg, socketpair,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Messages from the container's init (child) to the runtime (parent).
#[derive(Debug, Serialize, Deserialize)]
pub enum ToParent {
    /// The child made a user namespace: write its id maps, then reply `IdMapsWritten`.
    NeedIdMaps,
    /// The child forked into a new pid/time namespace; this is the real init's pid.
    InitPid(i32),
    /// Namespaces and mounts are ready: run the createRuntime hooks, then reply `Continue`.
    NeedRuntimeHooks,
    /// The pty master follows as the attached fd.
    ConsoleMaster,
    /// The init is ready and waits on the exec FIFO.
    Ready,
    /// The `exec` process loaded its seccomp filter; the listener fd follows
    /// as the attached fd. Reply `ListenerDelivered` once the listener at
    /// `linux.seccomp.listenerPath` has it.
    SeccompListener,
    /// A step failed; the child exits after sending this.
    Error { step: String, message: String },
}

/// Messages from the runtime (parent) to the child.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    IdMapsWritten,
    /// A detached, idmapped clone of the source of `mounts[index]` follows
    /// as the attached fd (made by the parent, which holds CAP_SYS_ADMIN
    /// over the source; the child only attaches it).
    IdmappedMount {
        index: usize,
    },
    /// Proceed (sent after the cgroup is joined, and after hooks ran). Carries
    /// the state JSON for hooks the child runs itself.
    Continue {
        state_json: String,
    },
    /// The seccomp listener received the fd sent with `SeccompListener`.
    ListenerDelivered,
}

pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair: (parent end, child end). Both are CLOEXEC.
pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        nix::sys::socket::AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Error::Sys {
        what: "socketpair".into(),
        source: e.into(),
    })?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

const MAX_MESSAGE: usize = 64 * 1024;

impl Channel {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send<T: Serialize>(&self, msg: &T) -> Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd<T: Serialize>(&self, msg: &T, fd: Option<RawFd>) -> Result<()> {
        let bytes = serde_json::to_vec(msg).expect("messages serialize");
        let iov = [IoSlice::new(&bytes)];
        let fds;
        let cmsgs: Vec<ControlMessage> = match fd {
            Some(f) => {
                fds = [f];
                vec![ControlMessage::ScmRights(&fds)]
            }
            None => vec![],
        };
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|e| Error::Sys {
            what: "sending on the init channel".into(),
            source: e.into(),
        })?;
        Ok(())
    }

    /// The next message, or `None` if the peer closed its end.
    pub fn recv<T: for<'de> Deserialize<'de>>(&self) -> Result<Option<T>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    pub fn recv_with_fd<T: for<'de> Deserialize<'de>>(
        &self,
    ) -> Result<Option<(T, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (len, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for c in msg.cmsgs().map_err(|e| Error::Sys {
                        what: "reading control message".into(),
                        source: e.into(),
                    })? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            for f in fds {
                                // SAFETY: SCM_RIGHTS installed this fd in our table; we own it.
                                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    return Err(Error::Sys {
                        what: "reading the init channel".into(),
                        source: e.into(),
                    });
                }
            }
        };
        if len == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..len])
            .map_err(|e| Error::Other(format!("malformed message on the init channel: {e}")))?;
        Ok(Some((msg, fd)))
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sends `fd` over a connected unix socket with a text payload, as runc does
/// for `--console-socket` (payload: the pty's name).
pub fn send_fd_to_socket(sock: RawFd, payload: &[u8], fd: RawFd) -> Result<()> {
    let iov = [IoSlice::new(payload)];
    let fds = [fd];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| Error::Sys {
        what: "sending the console fd".into(),
        source: e.into(),
    })?;
    Ok(())
}

/// Sends `payload` with `fd` attached in one sendmsg(2), building the
/// message on the stack: nothing is allocated, so no other syscall runs
/// (the seccomp listener handover runs under a filter that may notify on
/// memory syscalls).
pub fn send_fd_raw(sock: RawFd, payload: &[u8], fd: RawFd) -> std::io::Result<()> {
    // Room for one cmsghdr carrying one int, aligned as CMSG_SPACE wants.
    #[repr(C, align(8))]
    struct CmsgBuf([u8; 32]);
    let mut buf = CmsgBuf([0; 32]);
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr().cast_mut().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: an all-zero msghdr is valid (no name, no iov yet).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    assert!(msg.msg_controllen <= buf.0.len(), "cmsg buffer too small");
    // SAFETY: msg_control points to a zeroed, aligned buffer of at least
    // msg_controllen bytes, so CMSG_FIRSTHDR is non-null and in bounds, and
    // CMSG_DATA has room for one fd.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
    }
    loop {
        // SAFETY: msg and everything it points to live across the call.
        let r = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if r >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_fds_cross() {
        let (a, b) = pair().unwrap();
        a.send(&ToParent::InitPid(42)).unwrap();
        assert!(matches!(
            b.recv::<ToParent>().unwrap(),
            Some(ToParent::InitPid(42))
        ));
        let f = std::fs::File::open("/dev/null").unwrap();
        a.send_with_fd(&ToParent::ConsoleMaster, Some(f.as_raw_fd()))
            .unwrap();
        let (m, fd) = b.recv_with_fd::<ToParent>().unwrap().unwrap();
        assert!(matches!(m, ToParent::ConsoleMaster));
        assert!(fd.is_some());
        drop(a);
        assert!(b.recv::<ToParent>().unwrap().is_none());
    }

    #[test]
    fn raw_send_carries_payload_and_fd() {
        let (a, b) = pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        let bytes = serde_json::to_vec(&ToParent::ConsoleMaster).unwrap();
        send_fd_raw(a.raw_fd(), &bytes, f.as_raw_fd()).unwrap();
        let (m, fd) = b.recv_with_fd::<ToParent>().unwrap().unwrap();
        assert!(matches!(m, ToParent::ConsoleMaster));
        let fd = fd.expect("no fd");
        let st = nix::sys::stat::fstat(&fd).unwrap();
        assert_eq!(st.st_rdev, libc::makedev(1, 3));
    }
}
