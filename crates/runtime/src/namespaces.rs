//! Which namespaces a container gets and how: created by clone3's flags,
//! joined by path with setns(2), or unshared after joining. The plan is a
//! pure function of the config; the effects are a few syscalls.
//!
//! Kernel rules that shape the plan (namespaces(7), setns(2), unshare(2)):
//! - a user namespace must be joined or created before the others, so they
//!   are owned by it;
//! - joining a pid namespace, or creating one with unshare, only affects
//!   children: a second fork is needed to have the init inside;
//! - a time namespace's offsets can only be written before any process is in
//!   it, so it is always unshared, offsets written, then forked into;
//! - a cgroup namespace's root is the cgroup of the process that creates it,
//!   so it is unshared only after the process joined its cgroup.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespace, LinuxNamespaceType};

use crate::error::{Error, NixContext, Result};

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The /proc/PID/ns/ name of a namespace type.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Join order: user first (it decides what we may do next), mount last
/// (joining it changes our root and cwd).
const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Namespaces created by clone3 itself.
    pub clone: CloneFlags,
    /// Namespaces to join, in join order.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// A user namespace unshared by the child after joining (its maps are
    /// written by the parent).
    pub unshare_user: bool,
    /// Other namespaces unshared by the child after joining.
    pub unshare: CloneFlags,
    /// A cgroup namespace, unshared once the process is in its cgroup.
    pub unshare_cgroup: bool,
    /// A time namespace (always unshared, then forked into).
    pub unshare_time: bool,
    /// Whether the init is a second child (pid joined/unshared, or time).
    pub second_fork: bool,
    /// Whether any user namespace is new (the parent writes id maps).
    pub new_user: bool,
}

impl Plan {
    pub fn new(namespaces: &[LinuxNamespace]) -> Plan {
        let new: Vec<LinuxNamespaceType> = namespaces
            .iter()
            .filter(|n| n.path().is_none())
            .map(|n| n.typ())
            .collect();
        let mut join: Vec<(LinuxNamespaceType, PathBuf)> = namespaces
            .iter()
            .filter_map(|n| n.path().clone().map(|p| (n.typ(), p)))
            .collect();
        join.sort_by_key(|(t, _)| JOIN_ORDER.iter().position(|o| o == t));
        let is_new = |t| new.contains(&t);
        let mut plan = Plan {
            clone: CloneFlags::empty(),
            join: join.clone(),
            unshare_user: false,
            unshare: CloneFlags::empty(),
            unshare_cgroup: is_new(LinuxNamespaceType::Cgroup),
            unshare_time: is_new(LinuxNamespaceType::Time),
            second_fork: false,
            new_user: is_new(LinuxNamespaceType::User),
        };
        let ordinary = [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Pid,
        ];
        let flags = ordinary
            .iter()
            .filter(|t| is_new(**t))
            .fold(CloneFlags::empty(), |f, t| f | clone_flag(*t));
        if join.is_empty() {
            // Fast path: one clone3 creates everything; a new pid namespace
            // makes the child pid 1 directly.
            plan.clone = flags;
            if plan.new_user {
                plan.clone |= CloneFlags::CLONE_NEWUSER;
            }
        } else {
            plan.unshare_user = plan.new_user;
            plan.unshare = flags;
        }
        if plan.unshare_time && plan.clone.contains(CloneFlags::CLONE_NEWPID) {
            // The process forked after the time namespace must be pid 1, so
            // the pid namespace is unshared alongside, not cloned into.
            plan.clone.remove(CloneFlags::CLONE_NEWPID);
            plan.unshare |= CloneFlags::CLONE_NEWPID;
        }
        let pid_joined = join.iter().any(|(t, _)| *t == LinuxNamespaceType::Pid);
        plan.second_fork =
            plan.unshare_time || pid_joined || plan.unshare.contains(CloneFlags::CLONE_NEWPID);
        plan
    }
}

/// Opens every namespace path before any is joined: once a mount namespace
/// is joined, the other paths would resolve in the container's view.
pub fn open_joins(
    join: &[(LinuxNamespaceType, PathBuf)],
) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>> {
    join.iter()
        .map(|(t, p)| {
            let f = std::fs::File::open(p).map_err(|e| Error::Sys {
                what: format!("opening {} namespace {}", proc_name(*t), p.display()),
                source: e,
            })?;
            Ok((*t, OwnedFd::from(f)))
        })
        .collect()
}

/// Joins `fds`, given in join order (user first, mount last).
///
/// An unprivileged caller needs the user namespace first to be allowed
/// the rest. A privileged one may need the opposite: a container with a
/// user namespace of its own can sit in a network namespace made outside
/// it (by the engine), owned by the host's user namespace, and once inside
/// the container's user namespace the caller holds no capability over that
/// one (setns(2), EPERM). So every namespace but user and mount is tried
/// before the user namespace, and what is refused with EPERM is joined
/// after it — runc's nsexec does the same.
pub fn join(fds: &[(LinuxNamespaceType, OwnedFd)]) -> Result<()> {
    let setns = |t: LinuxNamespaceType, fd: &OwnedFd| nix::sched::setns(fd.as_fd(), clone_flag(t));
    let fail = |t: LinuxNamespaceType| move || format!("joining the {} namespace", proc_name(t));
    let has_user = fds.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let mut later = vec![];
    for (t, fd) in fds {
        let early = has_user && !matches!(t, LinuxNamespaceType::User | LinuxNamespaceType::Mount);
        if !early {
            later.push((*t, fd));
            continue;
        }
        match setns(*t, fd) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) => later.push((*t, fd)),
            Err(e) => return Err(e).ctx(fail(*t)),
        }
    }
    for (t, fd) in later {
        setns(t, fd).ctx(fail(t))?;
    }
    Ok(())
}

pub fn unshare(flags: CloneFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).ctx(|| format!("unshare({flags:?})"))
}

/// One id map line: `size` ids from `inner` inside the namespace are the
/// ids from `host` outside it.
pub fn id_mapping(inner: u32, host: u32, size: u32) -> LinuxIdMapping {
    oci_spec::runtime::LinuxIdMappingBuilder::default()
        .container_id(inner)
        .host_id(host)
        .size(size)
        .build()
        .expect("all fields set")
}

/// A user namespace holding the `uid`/`gid` maps and nothing else, kept
/// alive by the returned fd once the process that made it is gone: what an
/// idmapped mount needs (mount_setattr(2), `MOUNT_ATTR_IDMAP`, takes the
/// mapping from a user namespace). The maps are written like a container's
/// ([`write_id_maps`]), so this works rootless within /etc/subuid too.
pub fn detached_user_namespace(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (rd, wr) = std::io::pipe().map_err(|e| Error::Sys {
        what: "creating a pipe for a user namespace".into(),
        source: e,
    })?;
    // SAFETY: the child below only makes async-signal-safe system calls
    // (close, read, _exit), so it is sound even if the caller has other
    // threads whose locks the child's copy would inherit.
    let forked = unsafe { crate::sys::clone3(CloneFlags::CLONE_NEWUSER.bits() as u64, None) }
        .map_err(|e| Error::Sys {
            what: "creating a user namespace (clone3 CLONE_NEWUSER)".into(),
            source: e,
        })?;
    let pid = match forked {
        crate::sys::Forked::Child => {
            drop(wr);
            let mut b = [0u8; 1];
            // Returns at EOF, when the parent is done with us.
            let _ = std::io::Read::read(&mut &rd, &mut b);
            crate::sys::exit_now(0)
        }
        crate::sys::Forked::Parent { pid, .. } => pid,
    };
    drop(rd);
    let made = write_id_maps(pid, uid, gid).and_then(|()| {
        let p = format!("/proc/{pid}/ns/user");
        std::fs::File::open(&p)
            .map(OwnedFd::from)
            .map_err(|e| Error::Sys {
                what: format!("opening {p}"),
                source: e,
            })
    });
    drop(wr);
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    made
}

/// The text of a /proc/PID/{uid,gid}_map file.
pub fn id_map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Writes the id maps of `pid`'s new user namespace. As root we write them
/// directly; otherwise newuidmap/newgidmap (setuid helpers that check
/// /etc/subuid) do it. See user_namespaces(7), "Defining user and group ID mappings".
pub fn write_id_maps(pid: i32, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        write_map(pid, "uid_map", uid)?;
        write_map(pid, "gid_map", gid)
    } else {
        write_map_single_or_helper(pid, "uid_map", "newuidmap", uid)?;
        write_map_single_or_helper(pid, "gid_map", "newgidmap", gid)
    }
}

fn write_map(pid: i32, file: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, id_map_text(maps)).map_err(|e| Error::Sys {
        what: format!("writing {path}"),
        source: e,
    })
}

/// An unprivileged user may map only their own id, once, after denying
/// setgroups; anything else needs the setuid helpers.
fn write_map_single_or_helper(
    pid: i32,
    file: &str,
    helper: &str,
    maps: &[LinuxIdMapping],
) -> Result<()> {
    let own = if file == "uid_map" {
        // SAFETY: getuid cannot fail.
        unsafe { libc::getuid() }
    } else {
        // SAFETY: getgid cannot fail.
        unsafe { libc::getgid() }
    };
    if let [m] = maps
        && m.host_id() == own
        && m.size() == 1
    {
        if file == "gid_map" {
            let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
        }
        return write_map(pid, file, maps);
    }
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| Error::Sys {
        what: format!("running {helper} (install the uidmap package)"),
        source: e,
    })?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "{helper} {pid} failed: {} (are the ranges in /etc/sub{}id?)",
            String::from_utf8_lossy(&out.stderr).trim(),
            if file == "uid_map" { "u" } else { "g" }
        )));
    }
    Ok(())
}

/// Brings up the loopback interface of a new network namespace, as runc
/// and crun do: a container's servers bound to 127.0.0.1 must be reachable
/// from inside it (netdevice(7), SIOCSIFFLAGS).
pub fn loopback_up() -> Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "socket for configuring lo".into())?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: SIOCGIFFLAGS fills ifr_flags of the ifreq we own.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(Error::Sys {
            what: "reading the flags of lo".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: the union member written by SIOCGIFFLAGS above.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Error::Sys {
            what: "bringing lo up".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(t: LinuxNamespaceType, path: Option<&str>) -> LinuxNamespace {
        let mut n = LinuxNamespace::default();
        n.set_typ(t);
        n.set_path(path.map(PathBuf::from));
        n
    }

    #[test]
    fn all_new_goes_in_one_clone() {
        let p = Plan::new(&[
            ns(LinuxNamespaceType::Pid, None),
            ns(LinuxNamespaceType::Mount, None),
            ns(LinuxNamespaceType::User, None),
            ns(LinuxNamespaceType::Cgroup, None),
        ]);
        assert!(p.clone.contains(
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUSER
        ));
        assert!(
            !p.clone.contains(CloneFlags::CLONE_NEWCGROUP),
            "cgroup ns waits for the cgroup join"
        );
        assert!(p.unshare_cgroup && !p.second_fork && p.new_user && p.join.is_empty());
    }

    #[test]
    fn joined_namespaces_are_ordered_and_force_unshare() {
        let p = Plan::new(&[
            ns(LinuxNamespaceType::Mount, Some("/m")),
            ns(LinuxNamespaceType::Network, Some("/n")),
            ns(LinuxNamespaceType::User, Some("/u")),
            ns(LinuxNamespaceType::Pid, None),
        ]);
        let order: Vec<_> = p.join.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            order,
            [
                LinuxNamespaceType::User,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Mount
            ]
        );
        assert!(p.clone.is_empty());
        assert!(p.unshare.contains(CloneFlags::CLONE_NEWPID));
        assert!(p.second_fork);
    }

    #[test]
    fn time_namespace_needs_a_second_fork() {
        let p = Plan::new(&[
            ns(LinuxNamespaceType::Time, None),
            ns(LinuxNamespaceType::Pid, None),
        ]);
        assert!(p.unshare_time && p.second_fork);
        assert!(
            !p.clone.contains(CloneFlags::CLONE_NEWPID),
            "the forked child must be pid 1"
        );
        assert!(p.unshare.contains(CloneFlags::CLONE_NEWPID));
    }

    #[test]
    fn id_maps_render_one_line_each() {
        let m: LinuxIdMapping = serde_json::from_value(
            serde_json::json!({"containerID": 0, "hostID": 100000, "size": 65536}),
        )
        .unwrap();
        assert_eq!(id_map_text(&[m]), "0 100000 65536\n");
    }
}
