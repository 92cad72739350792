//! The container process's identity and environment: user and groups,
//! rlimits, executable lookup, and the final execve.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType, Process};

use crate::error::{Error, NixContext, Result};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn rlimit_resource(t: PosixRlimitType) -> Option<libc::__rlimit_resource_t> {
    Some(match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// Checks rlimits against what this host allows before anything is created.
/// Raising a hard limit can fail even for root (above fs.nr_open, or below a
/// limit imposed on the whole machine): each raise is tried on the runtime
/// itself and undone, so the error names the limit up front.
pub fn check_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let Some(res) = rlimit_resource(r.typ()) else {
            return Err(Error::Process(format!(
                "rlimit {} is not known on Linux",
                rlimit_name(r.typ())
            )));
        };
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into an rlimit we own.
        if unsafe { libc::getrlimit(res, &mut cur) } < 0 || r.hard() <= cur.rlim_max {
            continue;
        }
        let want = libc::rlimit {
            rlim_cur: cur.rlim_cur,
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads an rlimit we own.
        if unsafe { libc::setrlimit(res, &want) } < 0 {
            return Err(Error::Process(format!(
                "process.rlimits: {} hard limit {} is above what this host allows (at most {}): {}",
                rlimit_name(r.typ()),
                r.hard(),
                cur.rlim_max,
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: as above; lowering our own hard limit back always works.
        unsafe { libc::setrlimit(res, &cur) };
    }
    Ok(())
}

/// The spec's name of an rlimit type (`RLIMIT_NOFILE`).
pub fn rlimit_name(t: PosixRlimitType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{t:?}"))
}

pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let res = rlimit_resource(r.typ()).expect("checked");
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads an rlimit we own.
        if unsafe { libc::setrlimit(res, &lim) } < 0 {
            return Err(Error::Sys {
                what: format!(
                    "setting {} to soft {} hard {}",
                    rlimit_name(r.typ()),
                    r.soft(),
                    r.hard()
                ),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// Switches to the process's user: supplementary groups, gid, uid. Keeps
/// the permitted capabilities across the uid change (PR_SET_KEEPCAPS), so the
/// configured sets can be applied afterwards.
pub fn switch_user(p: &Process, may_setgroups: bool) -> Result<()> {
    let u = p.user();
    nix::sys::prctl::set_keepcaps(true).ctx(|| "prctl(PR_SET_KEEPCAPS)".into())?;
    if may_setgroups {
        let groups: Vec<Gid> = u
            .additional_gids()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|g| Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&groups).ctx(|| format!("setgroups {groups:?}"))?;
    }
    let gid = Gid::from_raw(u.gid());
    let uid = Uid::from_raw(u.uid());
    nix::unistd::setresgid(gid, gid, gid)
        .ctx(|| format!("setting gid {gid} (is it mapped in the user namespace?)"))?;
    nix::unistd::setresuid(uid, uid, uid)
        .ctx(|| format!("setting uid {uid} (is it mapped in the user namespace?)"))?;
    nix::sys::prctl::set_keepcaps(false).ctx(|| "prctl(PR_SET_KEEPCAPS, 0)".into())?;
    Ok(())
}

/// The value of `key` in an environment list (`KEY=value`).
pub fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Finds `arg0` like execvp: a name with a `/` is used as is; otherwise each
/// directory of PATH (from the process env, or a default) is tried.
pub fn find_executable(arg0: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
    let executable = |p: &Path| -> std::result::Result<(), String> {
        let meta = std::fs::metadata(p).map_err(|e| e.to_string())?;
        if meta.is_dir() {
            return Err("is a directory".into());
        }
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).map_err(|e| e.desc().to_string())
    };
    if arg0.contains('/') {
        let p = if Path::new(arg0).is_absolute() {
            PathBuf::from(arg0)
        } else {
            cwd.join(arg0)
        };
        return executable(&p)
            .map(|_| p)
            .map_err(|why| Error::Process(format!("exec {arg0:?}: {why}")));
    }
    let path = env_get(env, "PATH").unwrap_or(DEFAULT_PATH);
    let mut denied = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        match executable(&p) {
            Ok(()) => return Ok(p),
            Err(why) if p.exists() => denied = Some(format!("exec {}: {why}", p.display())),
            Err(_) => {}
        }
    }
    Err(Error::Process(denied.unwrap_or_else(|| {
        format!("executable file {arg0:?} not found in $PATH ({path})")
    })))
}

/// Adds HOME from the container's /etc/passwd when the env lacks it.
pub fn with_home(mut env: Vec<String>, uid: u32) -> Vec<String> {
    if env_get(&env, "HOME").is_some() {
        return env;
    }
    let home = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 5 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".into());
    env.push(format!("HOME={home}"));
    env
}

pub fn cstrings(v: &[String]) -> Result<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_str())
                .map_err(|_| Error::Process(format!("{s:?} contains a NUL byte")))
        })
        .collect()
}

/// execve; returns only on failure.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> Error {
    let p = match CString::new(path.as_os_str().as_encoded_bytes()) {
        Ok(p) => p,
        Err(_) => return Error::Process("executable path contains NUL".into()),
    };
    let (args, env) = match (cstrings(args), cstrings(env)) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match nix::unistd::execve(&p, &args, &env) {
        Err(e) => Error::Sys {
            what: format!("exec {}", path.display()),
            source: e.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lookup_takes_the_last() {
        let env = vec!["PATH=/a".to_string(), "X=1".into(), "PATH=/b".into()];
        assert_eq!(env_get(&env, "PATH"), Some("/b"));
        assert_eq!(env_get(&env, "PAT"), None);
    }

    #[test]
    fn finds_executables_on_path() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(
            find_executable("sh", &env, Path::new("/"))
                .unwrap()
                .ends_with("sh")
        );
        let e = find_executable("no-such-binary-xyz", &env, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not found in $PATH"), "{e}");
        assert!(
            find_executable("/etc", &env, Path::new("/"))
                .unwrap_err()
                .to_string()
                .contains("directory")
        );
    }
}
