//! Registry client against real registries on 127.0.0.1: Debian's
//! `docker-registry` (anonymous and htpasswd instances), `skopeo` as an
//! independent oracle in both directions, and a tiny in-test HTTP server for
//! what a well-behaved registry never does (corrupt and truncated blobs).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_image::registry::manifest::{OCI_CONFIG, OCI_INDEX, OCI_LAYER_TAR, OCI_MANIFEST};
use berth_image::registry::{
    BlobOutcome, BlobSink, BlobSource, Client, ClientOptions, Credentials, NoProgress, Progress,
    Reference, RegistryError, sha256_digest,
};

// ---------------------------------------------------------------- test store

/// A directory-backed blob store for these tests: verifies size and sha256
/// before an atomic rename, like the real content store must.
struct DirStore {
    dir: tempfile::TempDir,
    mounts: HashMap<String, Vec<Reference>>,
}

impl DirStore {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            mounts: HashMap::new(),
        }
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.path().join(digest.replace(':', "-"))
    }

    fn put(&self, bytes: &[u8]) -> String {
        let d = sha256_digest(bytes);
        fs::write(self.path(&d), bytes).unwrap();
        d
    }

    fn get(&self, digest: &str) -> Vec<u8> {
        fs::read(self.path(digest)).unwrap()
    }

    fn count(&self) -> usize {
        fs::read_dir(self.dir.path()).unwrap().count()
    }
}

impl BlobSink for DirStore {
    fn has(&self, digest: &str) -> bool {
        self.path(digest).exists()
    }

    fn write_blob(
        &self,
        digest: &str,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), RegistryError> {
        let store_err = |m: String| RegistryError::Store {
            digest: digest.to_string(),
            message: m,
        };
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .map_err(|e| store_err(e.to_string()))?;
        if buf.len() as u64 != size || sha256_digest(&buf) != digest {
            return Err(store_err("content does not match".into()));
        }
        let tmp = self
            .dir
            .path()
            .join(format!(".tmp-{}", digest.replace(':', "-")));
        fs::write(&tmp, &buf).map_err(|e| store_err(e.to_string()))?;
        fs::rename(&tmp, self.path(digest)).map_err(|e| store_err(e.to_string()))
    }
}

impl BlobSource for DirStore {
    fn open_blob(&self, digest: &str) -> Result<(Box<dyn Read + Send>, u64), RegistryError> {
        let f = fs::File::open(self.path(digest)).map_err(|e| RegistryError::Store {
            digest: digest.to_string(),
            message: e.to_string(),
        })?;
        let len = f.metadata().unwrap().len();
        Ok((Box::new(f), len))
    }

    fn mount_candidates(&self, digest: &str) -> Vec<Reference> {
        self.mounts.get(digest).cloned().unwrap_or_default()
    }
}

// ------------------------------------------------------------ test images

struct TestImage {
    manifest: Vec<u8>,
    manifest_digest: String,
    config_digest: String,
    layer_digests: Vec<String>,
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *content).unwrap();
    }
    b.into_inner().unwrap()
}

/// Media types of one image format.
struct Format {
    manifest: &'static str,
    index: &'static str,
    config: &'static str,
    layer: &'static str,
}

const OCI: Format = Format {
    manifest: OCI_MANIFEST,
    index: OCI_INDEX,
    config: OCI_CONFIG,
    layer: OCI_LAYER_TAR,
};

const DOCKER: Format = Format {
    manifest: "application/vnd.docker.distribution.manifest.v2+json",
    index: "application/vnd.docker.distribution.manifest.list.v2+json",
    config: "application/vnd.docker.container.image.v1+json",
    layer: "application/vnd.docker.image.rootfs.diff.tar",
};

/// Build an OCI image (layers from `files`) into `store`.
fn build_image(store: &DirStore, arch: &str, layers: &[Vec<(&str, Vec<u8>)>]) -> TestImage {
    build_image_as(store, &OCI, arch, layers)
}

/// Build an image in `format` into `store`.
fn build_image_as(
    store: &DirStore,
    format: &Format,
    arch: &str,
    layers: &[Vec<(&str, Vec<u8>)>],
) -> TestImage {
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    for files in layers {
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
        let tar = layer_tar(&refs);
        let d = store.put(&tar);
        diff_ids.push(d.clone());
        layer_descs.push(serde_json::json!({
            "mediaType": format.layer, "digest": d, "size": tar.len()
        }));
        layer_digests.push(d);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|_| serde_json::json!({"created_by": "berth test"})).collect::<Vec<_>>()
    }))
    .unwrap();
    let config_digest = store.put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": format.manifest,
        "config": {"mediaType": format.config, "digest": config_digest, "size": config.len()},
        "layers": layer_descs
    }))
    .unwrap();
    let manifest_digest = store.put(&manifest);
    TestImage {
        manifest,
        manifest_digest,
        config_digest,
        layer_digests,
    }
}

fn simple_image(store: &DirStore, tag: &str) -> TestImage {
    build_image(
        store,
        "amd64",
        &[
            vec![("etc/hello", format!("hello {tag}\n").into_bytes())],
            vec![("bin/tool", vec![b'x'; 3000 + tag.len()])],
        ],
    )
}

// ------------------------------------------------------- docker-registry

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `docker-registry` child process, killed (by pid) on drop.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start(auth_yaml: &str) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), auth_yaml)
    }

    /// Starts on a free port. The port is only free when picked: if another
    /// process takes it first, the registry exits at once (and a connect
    /// may even reach the intruder), so a registry that is not alive once
    /// its port answers is started again on a new port.
    fn start_in(mut dir: tempfile::TempDir, auth_yaml: &str) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_yaml}",
                dir.path().join("data").display()
            );
            let cfg = dir.path().join("config.yml");
            fs::write(&cfg, config).unwrap();
            let log = fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry (apt install docker-registry)");
            let mut reg = Self { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut exited = false;
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                exited = reg.child.try_wait().unwrap().is_some();
                assert!(
                    exited || Instant::now() < deadline,
                    "registry on port {port} did not start"
                );
                if exited {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(50));
            if !exited && reg.child.try_wait().unwrap().is_none() {
                return reg;
            }
            dir = std::mem::replace(&mut reg.dir, tempfile::tempdir().unwrap());
        }
        panic!("docker-registry did not stay up on any of 5 free ports");
    }

    fn anonymous() -> Self {
        Self::start("")
    }

    /// With htpasswd auth for `user`/`password` (bcrypt).
    fn htpasswd(user: &str, password: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        let hash = bcrypt::hash(password, 5).unwrap();
        fs::write(&file, format!("{user}:{hash}\n")).unwrap();
        let auth = format!(
            "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
            file.display()
        );
        Self::start_in(dir, &auth)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn reference(&self, repo_tag: &str) -> Reference {
        Reference::parse(&format!("{}/{repo_tag}", self.host())).unwrap()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // Show the registry's side of a failure.
            let log = fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
            eprintln!("--- docker-registry log (port {}) ---\n{log}", self.port);
        }
    }
}

fn client() -> Client {
    Client::new(ClientOptions::default())
}

// ------------------------------------------------------------------ skopeo

fn skopeo(args: &[&str]) -> String {
    let policy = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        policy.path(),
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let out = Command::new("skopeo")
        .arg("--policy")
        .arg(policy.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("skopeo (apt install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn skopeo_inspect(reference: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["inspect", "--tls-verify=false"];
    args.extend_from_slice(extra);
    let target = format!("docker://{reference}");
    args.push(&target);
    serde_json::from_str(&skopeo(&args)).unwrap()
}

/// Write `image` as an OCI layout directory skopeo can read.
fn write_oci_layout(store: &DirStore, image: &TestImage, dir: &Path, tag: &str) {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut digests = vec![image.manifest_digest.clone(), image.config_digest.clone()];
    digests.extend(image.layer_digests.iter().cloned());
    for d in &digests {
        let hex = d.strip_prefix("sha256:").unwrap();
        fs::write(dir.join("blobs/sha256").join(hex), store.get(d)).unwrap();
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": image.manifest_digest,
            "size": image.manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }]
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

// ------------------------------------------------------------------- tests

#[derive(Default)]
struct CountingProgress {
    bytes: std::sync::atomic::AtomicU64,
    finished: std::sync::Mutex<Vec<(String, BlobOutcome)>>,
}

impl Progress for CountingProgress {
    fn advance(&self, _digest: &str, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn finish(&self, digest: &str, outcome: BlobOutcome) {
        self.finished
            .lock()
            .unwrap()
            .push((digest.to_string(), outcome));
    }
}

#[test]
fn push_then_pull_roundtrip_and_skopeo_reads_it() {
    let reg = Registry::anonymous();
    let src = DirStore::new();
    let image = simple_image(&src, "v1");
    let reference = reg.reference("berth/app:v1");
    let c = client();
    let progress = CountingProgress::default();
    let pushed = c
        .push(&reference, &image.manifest, &src, &progress)
        .unwrap();
    assert_eq!(pushed.manifest_digest, image.manifest_digest);
    assert_eq!(pushed.blobs.len(), 3);
    assert!(
        pushed
            .blobs
            .iter()
            .all(|(_, o)| *o == BlobOutcome::Uploaded)
    );
    assert!(progress.bytes.load(Ordering::Relaxed) > 3000);

    // skopeo sees exactly what we pushed.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}", reference),
    ]);
    assert_eq!(raw.as_bytes(), image.manifest.as_slice());
    let info = skopeo_inspect(&reference.to_string(), &[]);
    assert_eq!(info["Digest"], image.manifest_digest);
    assert_eq!(info["Layers"][1], image.layer_digests[1]);

    // Pull into an empty store.
    let dst = DirStore::new();
    let pulled = c.pull(&reference, &dst, &NoProgress).unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    assert_eq!(pulled.media_type, OCI_MANIFEST);
    assert_eq!(pulled.config_digest(), image.config_digest);
    assert_eq!(pulled.index_digest, None);
    let layers: Vec<&str> = pulled.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(layers, image.layer_digests);
    for d in image
        .layer_digests
        .iter()
        .chain([&image.config_digest, &image.manifest_digest])
    {
        assert_eq!(dst.get(d), src.get(d), "{d}");
    }

    assert_eq!(pulled.config_bytes, src.get(&image.config_digest));
    let resolved = c.resolve(&reference).unwrap();
    assert_eq!(resolved.digest, image.manifest_digest);
    assert_eq!(resolved.media_type, OCI_MANIFEST);
    assert_eq!(resolved.bytes, image.manifest);

    // Pull by digest, and a second pull skips what the store has.
    let by_digest = reference.with_digest(&image.manifest_digest);
    let progress = CountingProgress::default();
    let again = c.pull(&by_digest, &dst, &progress).unwrap();
    assert_eq!(again.manifest_digest, image.manifest_digest);
    let finished = progress.finished.lock().unwrap();
    let present = finished
        .iter()
        .filter(|(_, o)| *o == BlobOutcome::AlreadyPresent)
        .count();
    assert_eq!(present, 2, "both layers were already in the store");

    // Pushing again uploads nothing.
    let pushed = c
        .push(&reference, &image.manifest, &src, &NoProgress)
        .unwrap();
    assert!(
        pushed
            .blobs
            .iter()
            .all(|(_, o)| *o == BlobOutcome::AlreadyPresent)
    );
}

#[test]
fn pulls_what_skopeo_pushed_oci_and_docker_schema2() {
    let reg = Registry::anonymous();
    let src = DirStore::new();
    let image = simple_image(&src, "sk");
    let layout = tempfile::tempdir().unwrap();
    write_oci_layout(&src, &image, layout.path(), "sk");
    let oci_src = format!("oci:{}:sk", layout.path().display());
    let c = client();

    // As OCI.
    let oci_ref = reg.reference("skopeo/oci:sk");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci_src,
        &format!("docker://{oci_ref}"),
    ]);
    let dst = DirStore::new();
    let pulled = c.pull(&oci_ref, &dst, &NoProgress).unwrap();
    assert_eq!(pulled.media_type, OCI_MANIFEST);
    assert_eq!(pulled.config_digest(), image.config_digest);
    // skopeo compresses the uncompressed layers on the way: compare with
    // what skopeo itself reports.
    let info = skopeo_inspect(&oci_ref.to_string(), &[]);
    let layers: Vec<&str> = pulled.layers.iter().map(|l| l.digest.as_str()).collect();
    let skopeo_layers: Vec<&str> = info["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(layers, skopeo_layers);
    assert_eq!(info["Digest"], pulled.manifest_digest);
    for d in &layers {
        assert!(dst.has(d));
    }

    // Converted to Docker v2 schema 2 by skopeo.
    let v2_ref = reg.reference("skopeo/v2s2:sk");
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &oci_src,
        &format!("docker://{v2_ref}"),
    ]);
    let dst = DirStore::new();
    let pulled = c.pull(&v2_ref, &dst, &NoProgress).unwrap();
    assert_eq!(
        pulled.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let info = skopeo_inspect(&v2_ref.to_string(), &[]);
    assert_eq!(info["Digest"], pulled.manifest_digest);
    for l in &pulled.layers {
        assert!(dst.has(&l.digest));
    }
    assert!(dst.has(pulled.config_digest()));
}

#[test]
fn index_push_and_platform_selection() {
    for (format, repo) in [(&OCI, "multi/oci:1"), (&DOCKER, "multi/docker:1")] {
        index_roundtrip(format, repo);
    }
}

fn index_roundtrip(format: &Format, repo: &str) {
    let reg = Registry::anonymous();
    let src = DirStore::new();
    let arm = build_image_as(&src, format, "arm64", &[vec![("arm", b"arm".to_vec())]]);
    let amd = build_image_as(&src, format, "amd64", &[vec![("amd", b"amd".to_vec())]]);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": format.index,
        "manifests": [
            {"mediaType": format.manifest, "digest": arm.manifest_digest, "size": arm.manifest.len(),
             "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": format.manifest, "digest": amd.manifest_digest, "size": amd.manifest.len(),
             "platform": {"architecture": "amd64", "os": "linux"}}
        ]
    }))
    .unwrap();
    let index_digest = src.put(&index);
    let reference = reg.reference(repo);
    let c = client();
    let pushed = c.push(&reference, &index, &src, &NoProgress).unwrap();
    assert_eq!(pushed.manifest_digest, index_digest);
    assert_eq!(pushed.media_type, format.index);

    let dst = DirStore::new();
    let pulled = c.pull(&reference, &dst, &NoProgress).unwrap();
    assert_eq!(pulled.index_digest.as_deref(), Some(index_digest.as_str()));
    assert_eq!(pulled.manifest_digest, amd.manifest_digest);
    assert_eq!(pulled.media_type, format.manifest);
    // skopeo reads back exactly the bytes berth pushed.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    assert_eq!(raw.as_bytes(), index.as_slice());
    assert_eq!(pulled.layers[0].digest, amd.layer_digests[0]);
    assert!(
        !dst.has(&arm.layer_digests[0]),
        "only linux/amd64 is pulled"
    );
    assert!(dst.has(&index_digest));

    // skopeo agrees on the platform choice.
    let info = skopeo_inspect(
        &reference.to_string(),
        &["--override-arch", "amd64", "--override-os", "linux"],
    );
    assert_eq!(info["Digest"], index_digest);
    assert_eq!(info["Layers"][0], amd.layer_digests[0]);

    // No matching platform: a clear error listing what exists.
    let s390 = Client::new(ClientOptions {
        architecture: "s390x".into(),
        ..Default::default()
    });
    let e = s390
        .pull(&reference, &DirStore::new(), &NoProgress)
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("linux/s390x") && msg.contains("linux/arm64, linux/amd64"),
        "{msg}"
    );
}

#[test]
fn chunked_upload_and_cross_repository_mount() {
    let reg = Registry::anonymous();
    let mut src = DirStore::new();
    let image = build_image(
        &src,
        "amd64",
        &[vec![(
            "big",
            (0..20_000u32).map(|i| (i % 251) as u8).collect(),
        )]],
    );
    let first = reg.reference("team/base:1");
    let chunky = Client::new(ClientOptions {
        chunk_size: 4096,
        ..Default::default()
    });
    let pushed = chunky
        .push(&first, &image.manifest, &src, &NoProgress)
        .unwrap();
    assert!(
        pushed
            .blobs
            .iter()
            .all(|(_, o)| *o == BlobOutcome::Uploaded)
    );
    let dst = DirStore::new();
    chunky.pull(&first, &dst, &NoProgress).unwrap();
    assert_eq!(
        dst.get(&image.layer_digests[0]),
        src.get(&image.layer_digests[0])
    );

    // The store knows the blobs live in team/base: mount into team/app.
    for d in image.layer_digests.iter().chain([&image.config_digest]) {
        src.mounts.insert(d.clone(), vec![first.clone()]);
    }
    let second = reg.reference("team/app:1");
    let pushed = client()
        .push(&second, &image.manifest, &src, &NoProgress)
        .unwrap();
    assert_eq!(pushed.blobs.len(), 2);
    assert!(
        pushed.blobs.iter().all(|(_, o)| *o == BlobOutcome::Mounted),
        "{:?}",
        pushed.blobs
    );
    let info = skopeo_inspect(&second.to_string(), &[]);
    assert_eq!(info["Digest"], image.manifest_digest);
}

#[test]
fn htpasswd_login_logout_and_authenticated_transfers() {
    let reg = Registry::htpasswd("alice", "s3cret");
    let auth_dir = tempfile::tempdir().unwrap();
    let auth_file = auth_dir.path().join("auth.json");
    let c = Client::new(ClientOptions {
        credentials_path: Some(auth_file.clone()),
        ..Default::default()
    });
    let src = DirStore::new();
    let image = simple_image(&src, "auth");
    let reference = reg.reference("private/app:1");

    // Anonymous push is refused with a hint.
    let e = c
        .push(&reference, &image.manifest, &src, &NoProgress)
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("berth login 127.0.0.1:"), "{e}");

    // Wrong password: nothing stored.
    let e = c
        .login(
            &reg.host(),
            &Credentials {
                username: "alice".into(),
                password: "wrong".into(),
            },
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("invalid username or password"),
        "{e}"
    );
    assert!(!auth_file.exists());

    let good = Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    c.login(&reg.host(), &good).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let pushed = c
        .push(&reference, &image.manifest, &src, &NoProgress)
        .unwrap();
    assert_eq!(pushed.manifest_digest, image.manifest_digest);
    // A fresh client reads the stored credentials.
    let c2 = Client::new(ClientOptions {
        credentials_path: Some(auth_file.clone()),
        ..Default::default()
    });
    let dst = DirStore::new();
    let pulled = c2.pull(&reference, &dst, &NoProgress).unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest);

    // skopeo with the same credentials sees it.
    let info = skopeo_inspect(&reference.to_string(), &["--creds", "alice:s3cret"]);
    assert_eq!(info["Digest"], image.manifest_digest);
    // And docker's auth-file format is understood by skopeo too.
    let info = skopeo_inspect(
        &reference.to_string(),
        &["--authfile", auth_file.to_str().unwrap()],
    );
    assert_eq!(info["Digest"], image.manifest_digest);

    assert!(c2.logout(&reg.host()).unwrap());
    let c3 = Client::new(ClientOptions {
        credentials_path: Some(auth_file),
        ..Default::default()
    });
    let e = c3
        .pull(&reference, &DirStore::new(), &NoProgress)
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
}

#[test]
fn missing_manifest_is_named() {
    let reg = Registry::anonymous();
    let r = reg.reference("nothing/here:v9");
    let e = client()
        .pull(&r, &DirStore::new(), &NoProgress)
        .unwrap_err();
    assert!(matches!(e, RegistryError::ManifestNotFound { .. }), "{e}");
    assert!(e.to_string().contains("nothing/here:v9"), "{e}");
}

// ------------------------------------------------- misbehaving registry

/// How the fake registry answers a blob request.
#[derive(Clone, Copy)]
enum BlobMode {
    Good,
    /// Same length, one byte flipped.
    Corrupt,
    /// Full Content-Length announced, half the bytes sent, then close.
    Truncated,
}

/// One parsed HTTP request.
struct HttpRequest {
    path: String,
    headers: HashMap<String, String>,
}

/// One HTTP response; `send` bytes of `body` are written (fewer than its
/// length simulates a connection cut mid-body).
struct HttpResponse {
    status: &'static str,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    send: usize,
}

impl HttpResponse {
    fn new(status: &'static str, content_type: &'static str, body: Vec<u8>) -> Self {
        let send = body.len();
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body,
            send,
        }
    }
}

type Handler = dyn Fn(&HttpRequest) -> HttpResponse + Send + Sync;

/// A minimal HTTP/1.1 server on 127.0.0.1 (one request per connection),
/// running for at most a minute; stops on drop.
struct TinyServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TinyServer {
    fn start(handler: Arc<Handler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        serve_one(stream, handler.as_ref());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(stream: TcpStream, handler: &Handler) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let resp = handler(&HttpRequest { path, headers });
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.content_type,
        resp.body.len()
    );
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = stream;
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&resp.body[..resp.send]);
    let _ = out.flush();
}

/// A registry that serves one image and misbehaves on the `bad` blob.
fn fake_registry(
    blobs: HashMap<String, Vec<u8>>,
    manifest: Vec<u8>,
    bad: String,
    mode: BlobMode,
) -> TinyServer {
    TinyServer::start(Arc::new(move |req: &HttpRequest| {
        let path = req.path.as_str();
        if path == "/v2/" {
            return HttpResponse::new("200 OK", "application/json", b"{}".to_vec());
        }
        if path.contains("/manifests/") {
            return HttpResponse::new("200 OK", OCI_MANIFEST, manifest.clone());
        }
        let Some(data) = path.split("/blobs/").nth(1).and_then(|d| blobs.get(d)) else {
            return HttpResponse::new("404 Not Found", "text/plain", b"unknown".to_vec());
        };
        let mut resp = HttpResponse::new("200 OK", "application/octet-stream", data.clone());
        if path.ends_with(&bad) {
            match mode {
                BlobMode::Good => {}
                BlobMode::Corrupt => {
                    let mid = resp.body.len() / 2;
                    resp.body[mid] ^= 0xff;
                }
                BlobMode::Truncated => resp.send = resp.body.len() / 2,
            }
        }
        resp
    }))
}

fn fake_for(mode: BlobMode) -> (TinyServer, TestImage) {
    let src = DirStore::new();
    let image = simple_image(&src, "fake");
    let mut blobs = HashMap::new();
    for d in image.layer_digests.iter().chain([&image.config_digest]) {
        blobs.insert(d.clone(), src.get(d));
    }
    let bad = image.layer_digests[1].clone();
    let fake = fake_registry(blobs, image.manifest.clone(), bad, mode);
    (fake, image)
}

#[test]
fn corrupt_blob_is_named_and_never_stored() {
    let (fake, image) = fake_for(BlobMode::Corrupt);
    let r = Reference::parse(&format!("127.0.0.1:{}/fake/img:1", fake.port)).unwrap();
    let dst = DirStore::new();
    let e = client().pull(&r, &dst, &NoProgress).unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&image.layer_digests[1]), "{msg}");
    assert!(!dst.has(&image.layer_digests[1]));
    assert!(!dst.has(&image.manifest_digest), "no image is recorded");
    assert!(!dst.has(&image.config_digest));
    // Only the good layer may have arrived (a retry skips it).
    assert!(dst.count() <= 1);
}

#[test]
fn truncated_blob_is_named_and_never_stored() {
    let (fake, image) = fake_for(BlobMode::Truncated);
    let r = Reference::parse(&format!("127.0.0.1:{}/fake/img:1", fake.port)).unwrap();
    let dst = DirStore::new();
    let e = client().pull(&r, &dst, &NoProgress).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&image.layer_digests[1]), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");
    assert!(!dst.has(&image.layer_digests[1]));
    assert!(!dst.has(&image.manifest_digest));
}

#[test]
fn good_fake_registry_pull_succeeds() {
    // Control for the two tests above: the same server with honest blobs.
    let (fake, image) = fake_for(BlobMode::Good);
    let r = Reference::parse(&format!("127.0.0.1:{}/fake/img:1", fake.port)).unwrap();
    let dst = DirStore::new();
    let pulled = client().pull(&r, &dst, &NoProgress).unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    assert!(dst.has(&image.layer_digests[1]));
}

// ------------------------------------------------------ bearer-token auth

/// Signs registry tokens (RS256 JWTs with the certificate in `x5c`) with a
/// throw-away key made by the `openssl` CLI.
struct TokenIssuer {
    dir: tempfile::TempDir,
    x5c: String,
}

fn b64url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl CLI");
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl TokenIssuer {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
                "-days",
                "2",
                "-subj",
                "/CN=berth-test-token-issuer",
            ],
            None,
        );
        let der = openssl(
            &["x509", "-in", cert.to_str().unwrap(), "-outform", "DER"],
            None,
        );
        use base64::Engine as _;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        Self { dir, x5c }
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let input = format!(
            "{}.{}",
            b64url(&serde_json::to_vec(&header).unwrap()),
            b64url(&serde_json::to_vec(claims).unwrap())
        );
        let key = self.dir.path().join("key.pem");
        let sig = openssl(
            &["dgst", "-sha256", "-sign", key.to_str().unwrap()],
            Some(input.as_bytes()),
        );
        format!("{input}.{}", b64url(&sig))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A token server granting whatever `alice:s3cret` asks for; records the
/// scopes it was asked for.
fn token_server(
    issuer: Arc<TokenIssuer>,
    scopes_seen: Arc<std::sync::Mutex<Vec<String>>>,
) -> TinyServer {
    let expected = format!("Basic {}", {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
    });
    TinyServer::start(Arc::new(move |req: &HttpRequest| {
        if req.headers.get("authorization") != Some(&expected) {
            return HttpResponse::new(
                "401 Unauthorized",
                "application/json",
                br#"{"details":"bad or missing credentials"}"#.to_vec(),
            );
        }
        let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or("");
        let mut access = Vec::new();
        for pair in query.split('&') {
            let Some(("scope", value)) = pair.split_once('=') else {
                continue;
            };
            let scope = percent_decode(value);
            scopes_seen.lock().unwrap().push(scope.clone());
            let parts: Vec<&str> = scope.splitn(3, ':').collect();
            if let [kind, name, actions] = parts.as_slice() {
                access.push(serde_json::json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>()
                }));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = issuer.sign(&serde_json::json!({
            "iss": "berth-test-issuer", "sub": "alice", "aud": "berth-test-registry",
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", access.len()), "access": access
        }));
        let body =
            serde_json::to_vec(&serde_json::json!({"token": token, "expires_in": 300})).unwrap();
        HttpResponse::new("200 OK", "application/json", body)
    }))
}

#[test]
fn bearer_token_auth_with_token_server() {
    let issuer = Arc::new(TokenIssuer::new());
    let scopes_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tokens = token_server(issuer.clone(), scopes_seen.clone());
    let reg = Registry::start(&format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
        tokens.port,
        issuer.cert_path().display()
    ));
    let auth_dir = tempfile::tempdir().unwrap();
    let auth_file = auth_dir.path().join("auth.json");
    let options = ClientOptions {
        credentials_path: Some(auth_file.clone()),
        ..Default::default()
    };
    let c = Client::new(options.clone());
    let src = DirStore::new();
    let image = simple_image(&src, "bearer");
    let reference = reg.reference("private/app:1");

    let e = c
        .push(&reference, &image.manifest, &src, &NoProgress)
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains("berth login"), "{e}");

    let bad = Credentials {
        username: "alice".into(),
        password: "nope".into(),
    };
    let e = c.login(&reg.host(), &bad).unwrap_err();
    assert!(
        e.to_string().contains("invalid username or password"),
        "{e}"
    );
    c.login(
        &reg.host(),
        &Credentials {
            username: "alice".into(),
            password: "s3cret".into(),
        },
    )
    .unwrap();

    let pushed = c
        .push(&reference, &image.manifest, &src, &NoProgress)
        .unwrap();
    assert_eq!(pushed.manifest_digest, image.manifest_digest);
    let dst = DirStore::new();
    let pulled = Client::new(options)
        .pull(&reference, &dst, &NoProgress)
        .unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    assert!(dst.has(&image.layer_digests[0]));
    let seen = scopes_seen.lock().unwrap().clone();
    assert!(
        seen.contains(&"repository:private/app:pull,push".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"repository:private/app:pull".to_string()),
        "{seen:?}"
    );

    // skopeo runs the same token flow and sees the same manifest.
    let info = skopeo_inspect(&reference.to_string(), &["--creds", "alice:s3cret"]);
    assert_eq!(info["Digest"], image.manifest_digest);
}

// ------------------------------------------------------------------ TLS

#[test]
fn self_signed_tls_registry_needs_tls_verify_false() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("tls.key");
    let cert = dir.path().join("tls.crt");
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        None,
    );
    let reg = Registry::start_in(
        dir,
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
    );
    let src = DirStore::new();
    let image = simple_image(&src, "tls");
    let reference = reg.reference("secure/app:1");

    // Verification on: the unknown issuer is reported, and plain HTTP to a
    // TLS port is not mistaken for a registry.
    let e = client()
        .push(&reference, &image.manifest, &src, &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("https://127.0.0.1:"), "{e}");
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );
    assert!(e.contains("HTTP 400"), "{e}");
    assert!(e.contains("--tls-verify=false"), "{e}");

    let insecure = Client::new(ClientOptions {
        tls_verify: false,
        ..Default::default()
    });
    let pushed = insecure
        .push(&reference, &image.manifest, &src, &NoProgress)
        .unwrap();
    assert_eq!(pushed.manifest_digest, image.manifest_digest);
    let dst = DirStore::new();
    let pulled = insecure.pull(&reference, &dst, &NoProgress).unwrap();
    assert_eq!(pulled.manifest_digest, image.manifest_digest);
    let info = skopeo_inspect(&reference.to_string(), &[]);
    assert_eq!(info["Digest"], image.manifest_digest);
}
