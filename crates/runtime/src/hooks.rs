//! OCI hooks: programs run at the lifecycle points the runtime spec names,
//! with the container state JSON on stdin, their own env and args, and an
//! optional timeout.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};

/// Runs `hooks` in order; the first failure stops and is returned.
pub fn run_all(kind: &'static str, hooks: &[Hook], state_json: &str) -> Result<()> {
    for (index, hook) in hooks.iter().enumerate() {
        run(hook, state_json).map_err(|message| Error::Hook {
            kind,
            index,
            path: hook.path().display().to_string(),
            message,
        })?;
    }
    Ok(())
}

fn run(hook: &Hook, state_json: &str) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    if let Some((arg0, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
        cmd.args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores stdin may close it early: not an error.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    let timeout = hook.timeout().map(|t| Duration::from_secs(t.max(0) as u64));
    if let Some(t) = timeout
        && !wait_for(&child, t)
    {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("timed out after {}s", t.as_secs()));
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{}: {}", out.status, stderr.trim()));
    }
    Ok(())
}

/// Waits up to `t` for `child` to exit, through a pidfd; true if it did.
fn wait_for(child: &std::process::Child, t: Duration) -> bool {
    let Ok(pidfd) = crate::sys::pidfd_open(child.id() as i32) else {
        return true;
    };
    let mut fds = [nix::poll::PollFd::new(
        pidfd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = t.as_millis().min(u16::MAX as u128 * 1000) as u32;
    matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX)), Ok(n) if n > 0)
}
