//! `--init`: the reaper that runs as a container's pid 1 in front of its
//! command (crates/init, built static by build.rs and embedded here), as
//! Docker's docker-init and Podman's catatonit do. The engine writes it
//! once under `<root>/init/`, named after its content, and bind-mounts it
//! read-only at [`CONTAINER_PATH`]; the spec's args become
//! `[CONTAINER_PATH, "--", command...]` (see [`crate::spec::build`]).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, io};

/// The static reaper binary.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// Where containers see the reaper: on the tmpfs every container gets at
/// /dev, so its mount point leaves no trace in the container's own files
/// (`diff`, `commit`, `export`) and a `--read-only` rootfs is no obstacle.
pub const CONTAINER_PATH: &str = "/dev/init";

const PREFIX: &str = "berth-init-";

/// The file name of a reaper whose content is `data`.
pub fn file_name(data: &[u8]) -> String {
    let digest = berth_image::digest::Digest::sha256_of(data);
    format!("{PREFIX}{}", &digest.hex()[..16])
}

/// The process args that run `args` under the reaper.
pub fn wrap_args(args: Vec<String>) -> Vec<String> {
    [CONTAINER_PATH.to_string(), "--".to_string()]
        .into_iter()
        .chain(args)
        .collect()
}

/// Installed reapers in `names` other than `current` (left by an older
/// berth). Temporary files (with a dot) belong to installs under way.
fn stale<'a>(names: &'a [String], current: &str) -> Vec<&'a str> {
    names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with(PREFIX) && !n.contains('.') && *n != current)
        .collect()
}

/// Makes sure `dir` holds this berth's reaper (mode 0555) and returns its
/// path. Written once: to a temporary file, synced, then renamed, so a
/// crash never leaves a partial binary under the final name. Reapers of
/// older berth versions are removed (mounts in running containers keep
/// their file alive).
pub fn install(dir: &Path) -> Result<PathBuf> {
    let name = file_name(BINARY);
    let path = dir.join(&name);
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let tmp = dir.join(format!("{name}.tmp{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o555)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(BINARY)?;
            f.sync_all()
        });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(format!(
            "installing the --init reaper at {}",
            path.display()
        ))(e));
    }
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for old in stale(&names, &name) {
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_embedded_reaper_is_a_static_executable() {
        assert_eq!(&BINARY[..4], b"\x7fELF");
        // A static binary has no PT_INTERP program header (the dynamic
        // loader's path), so the string "ld-linux" is nowhere in it.
        let has = |needle: &[u8]| BINARY.windows(needle.len()).any(|w| w == needle);
        assert!(!has(b"/lib64/ld-linux") && !has(b"/lib/ld-linux"));
    }

    #[test]
    fn args_get_the_reaper_in_front() {
        assert_eq!(
            wrap_args(vec!["sh".into(), "-c".into(), "exit 7".into()]),
            vec!["/dev/init", "--", "sh", "-c", "exit 7"]
        );
    }

    #[test]
    fn names_follow_the_content() {
        assert_ne!(file_name(b"a"), file_name(b"b"));
        assert_eq!(file_name(b"a"), file_name(b"a"));
        assert!(file_name(b"a").starts_with("berth-init-"));
    }

    #[test]
    fn only_other_installed_reapers_are_stale() {
        let names: Vec<String> = [
            "berth-init-aaaa",
            "berth-init-bbbb",
            "berth-init-bbbb.tmp42",
            "other",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(stale(&names, "berth-init-bbbb"), vec!["berth-init-aaaa"]);
    }

    #[test]
    fn install_writes_once_read_only_and_removes_old_versions() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("berth-init-0000000000000000");
        std::fs::write(&old, b"old").unwrap();
        let p = install(dir.path()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), BINARY);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o555);
        assert!(!old.exists());
        let again = install(dir.path()).unwrap();
        assert_eq!(again, p);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
