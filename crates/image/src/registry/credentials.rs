//! Stored registry credentials, in the shape of Docker's `config.json`
//! (`{"auths": {"REGISTRY": {"auth": base64("user:pass")}}}`), so files are
//! interchangeable with `docker login` / `podman login --authfile`.
//! The file is written atomically (temp file + fsync + rename) with mode 0600.
//! Validating a login against the registry is [`super::Client::login`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::RegistryError;
use super::reference::DOCKER_HUB;

/// Docker's legacy key for Docker Hub in `config.json`.
const DOCKER_HUB_LEGACY_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    /// Other keys of a Docker config are kept as they were.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AuthEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The credentials file at a path the caller chooses (e.g.
/// `$BERTH_ROOT/auth.json`).
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
}

fn key_for(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_LEGACY_KEY
    } else {
        registry
    }
}

/// Decode an `auth` value (`base64(user:pass)`).
pub fn decode_auth(value: &str) -> Result<Credentials, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|e| format!("auth is not base64: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| "auth is not UTF-8".to_string())?;
    let (user, pass) = text
        .split_once(':')
        .ok_or_else(|| "auth is not user:password".to_string())?;
    Ok(Credentials {
        username: user.to_string(),
        password: pass.to_string(),
    })
}

impl CredentialStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, message: impl Into<String>) -> RegistryError {
        RegistryError::Credentials {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn load(&self) -> Result<ConfigFile, RegistryError> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.err(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(e) => Err(self.err(e.to_string())),
        }
    }

    fn save(&self, config: &ConfigFile) -> Result<(), RegistryError> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir)
            .map_err(|e| self.err(format!("creating {}: {e}", dir.display())))?;
        let json = serde_json::to_vec_pretty(config).map_err(|e| self.err(e.to_string()))?;
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "auth.json".into());
        let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // The mode above is filtered by the umask; make it exact.
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(&json)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.err(format!("writing: {e}"))
        })
    }

    /// Credentials stored for `registry`, if any.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        let config = self.load()?;
        let entry = config
            .auths
            .get(key_for(registry))
            .or_else(|| config.auths.get(registry));
        match entry.and_then(|e| e.auth.as_deref()) {
            None => Ok(None),
            Some(auth) => decode_auth(auth)
                .map(Some)
                .map_err(|m| self.err(format!("entry for {registry}: {m}"))),
        }
    }

    /// Store credentials for `registry` (no validation; see `Client::login`).
    pub fn store(&self, registry: &str, credentials: &Credentials) -> Result<(), RegistryError> {
        let mut config = self.load()?;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.username, credentials.password));
        let entry = config
            .auths
            .entry(key_for(registry).to_string())
            .or_default();
        entry.auth = Some(encoded);
        self.save(&config)
    }

    /// Remove credentials for `registry`; `Ok(false)` if there were none.
    pub fn remove(&self, registry: &str) -> Result<bool, RegistryError> {
        let mut config = self.load()?;
        let removed = config.auths.remove(key_for(registry)).is_some()
            | config.auths.remove(registry).is_some();
        if removed {
            self.save(&config)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn store_get_remove_roundtrip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/auth.json");
        let store = CredentialStore::new(&path);
        assert_eq!(store.get("localhost:5000").unwrap(), None);
        store
            .store("localhost:5000", &creds("alice", "pa:ss"))
            .unwrap();
        store.store("docker.io", &creds("bob", "x")).unwrap();
        assert_eq!(
            store.get("localhost:5000").unwrap(),
            Some(creds("alice", "pa:ss"))
        );
        assert_eq!(store.get("docker.io").unwrap(), Some(creds("bob", "x")));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            json["auths"]["localhost:5000"]["auth"],
            base64::engine::general_purpose::STANDARD.encode("alice:pa:ss")
        );
        assert!(json["auths"]["https://index.docker.io/v1/"].is_object());
        assert!(store.remove("localhost:5000").unwrap());
        assert!(!store.remove("localhost:5000").unwrap());
        assert_eq!(store.get("localhost:5000").unwrap(), None);
        assert_eq!(store.get("docker.io").unwrap(), Some(creds("bob", "x")));
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["auth.json"]);
    }

    #[test]
    fn keeps_unknown_docker_config_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths":{"r.io":{"auth":"dTpw","email":"e@x"}},"credsStore":"desktop"}"#,
        )
        .unwrap();
        let store = CredentialStore::new(&path);
        assert_eq!(store.get("r.io").unwrap(), Some(creds("u", "p")));
        store.store("other.io", &creds("a", "b")).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["credsStore"], "desktop");
        assert_eq!(json["auths"]["r.io"]["email"], "e@x");
    }

    #[test]
    fn bad_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.json");
        fs::write(&path, "{not json").unwrap();
        let e = CredentialStore::new(&path)
            .get("x")
            .unwrap_err()
            .to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        fs::write(&path, r#"{"auths":{"x":{"auth":"!!!"}}}"#).unwrap();
        let e = CredentialStore::new(&path)
            .get("x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not base64"), "{e}");
        assert!(decode_auth("bm9jb2xvbg==").is_err()); // "nocolon"
    }

    #[test]
    fn debug_redacts_password() {
        assert!(!format!("{:?}", creds("u", "secret")).contains("secret"));
    }
}
