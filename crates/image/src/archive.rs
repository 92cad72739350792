//! Image archives: `docker-archive` (`manifest.json` + `repositories`,
//! as `docker save` and `podman save` write them) and `oci-archive` (a tar
//! of an OCI image layout: `oci-layout`, `index.json`, `blobs/`), several
//! images per archive, tags preserved; plus OCI layout directories.
//!
//! Loading first unpacks the archive with the same hardened extractor as
//! layers (no traversal, no devices, limits), then opens every file named by
//! the archive's JSON through openat2(`RESOLVE_IN_ROOT`), so a symlink in a
//! hostile archive cannot make berth read a host file.
//!
//! Saving is deterministic: entries in a fixed order, mode 0644, uid/gid
//! 0, mtime 0. docker-archive layers are written uncompressed
//! (`<diff-id hex>.tar`); oci-archive blobs are copied as stored.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use serde::{Deserialize, Serialize};

use crate::content::Expected;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::{self, ApplyOptions, WhiteoutMode};
use crate::reference::Reference;
use crate::spec::{self, Descriptor, Index, Manifest, Parsed};
use crate::store::ImageStore;

/// Archive formats of `berth save --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save` layout (default, like Docker).
    DockerArchive,
    /// A tarred OCI image layout.
    OciArchive,
}

/// One image a load brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: String,
    /// Full names it was tagged with.
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Largest JSON file read from an archive.
const MAX_JSON: u64 = 16 << 20;

struct ArchiveDir {
    fd: OwnedFd,
}

impl ArchiveDir {
    fn open(dir: &Path) -> Result<Self> {
        let fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", dir.display()))?;
        Ok(ArchiveDir { fd })
    }

    /// Opens `rel` inside the archive; symlinks resolve as if the archive
    /// were the root, so nothing outside can be reached.
    fn open_file(&self, rel: &str) -> Result<File> {
        let fd = rustix::fs::openat2(
            self.fd.as_fd(),
            rel,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| Error::Archive(format!("{rel}: {e}")))?;
        let f = File::from(fd);
        let md = f.metadata().ctx(|| format!("stat {rel} in archive"))?;
        if !md.is_file() {
            return Err(Error::Archive(format!("{rel} is not a regular file")));
        }
        Ok(f)
    }

    fn exists(&self, rel: &str) -> bool {
        self.open_file(rel).is_ok()
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<T> {
        let mut buf = Vec::new();
        self.open_file(rel)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut buf)
            .ctx(|| format!("read {rel}"))?;
        if buf.len() as u64 > MAX_JSON {
            return Err(Error::LimitExceeded {
                what: "archive JSON file size",
                limit: MAX_JSON,
            });
        }
        serde_json::from_slice(&buf).map_err(|e| Error::malformed(rel, e))
    }
}

fn blob_rel(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

/// Streams a file into the content store, verifying it against `expected`.
fn ingest_file(
    store: &ImageStore,
    mut f: File,
    expected: Option<Expected>,
    what: &str,
) -> Result<Digest> {
    let mut w = store.content().writer(expected)?;
    std::io::copy(&mut f, &mut w).ctx(|| format!("ingest {what}"))?;
    w.commit().map(|(d, _)| d).map_err(|e| match e {
        Error::DigestMismatch {
            expected, actual, ..
        } => Error::DigestMismatch {
            what: what.to_string(),
            expected,
            actual,
        },
        Error::SizeMismatch {
            expected, actual, ..
        } => Error::SizeMismatch {
            what: what.to_string(),
            expected,
            actual,
        },
        other => other,
    })
}

/// The media type of an OCI layer, from its first bytes.
fn sniff_layer_type(f: &mut File) -> Result<&'static str> {
    let mut head = [0u8; 4];
    let n = f.read(&mut head).ctx(|| "read layer head".into())?;
    f.rewind().ctx(|| "rewind layer".into())?;
    Ok(if n >= 2 && head[..2] == [0x1f, 0x8b] {
        spec::OCI_LAYER_GZIP
    } else if n == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
        spec::OCI_LAYER_ZSTD
    } else {
        spec::OCI_LAYER
    })
}

fn image_name(annotations: Option<&BTreeMap<String, String>>) -> Option<String> {
    let a = annotations?;
    if let Some(n) = a.get(CONTAINERD_NAME) {
        return Reference::parse(n).ok().map(|r| r.to_string());
    }
    // A bare tag (`latest`, as `skopeo copy oci:dir:latest` writes) names
    // no repository: the image loads untagged.
    a.get(REF_NAME)
        .filter(|n| n.contains('/') || n.contains(':'))
        .and_then(|n| Reference::parse(n).ok())
        .map(|r| r.to_string())
}

impl ImageStore {
    /// `berth load`: reads a docker-archive or oci-archive (detected by its
    /// contents; plain, gzip or zstd compressed) and registers every image
    /// in it with its tags.
    pub fn load<R: Read>(&self, reader: R) -> Result<Vec<LoadedImage>> {
        let _op = self.begin_operation()?;
        let tmp = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(self.root().join("tmp"))
            .ctx(|| "create load scratch dir".into())?;
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Delete,
            rootless: true,
            ..Default::default()
        };
        layer::apply(reader, tmp.path(), &opts)
            .map_err(|e| Error::Archive(format!("unpack archive: {e}")))?;
        let dir = ArchiveDir::open(tmp.path())?;
        if dir.exists("manifest.json") {
            self.load_docker_dir(&dir)
        } else if dir.exists("index.json") {
            self.load_oci_dir(&dir)
        } else {
            Err(Error::Archive(
                "neither manifest.json (docker-archive) nor index.json (oci-archive) found".into(),
            ))
        }
    }

    /// Imports every image of an OCI image layout directory (as `skopeo
    /// copy … oci:DIR` writes). Images whose index entry has no usable name
    /// are tagged `name` when given.
    pub fn load_oci_layout(&self, dir: &Path, name: Option<&str>) -> Result<Vec<LoadedImage>> {
        let _op = self.begin_operation()?;
        let mut loaded = self.load_oci_dir(&ArchiveDir::open(dir)?)?;
        if let Some(n) = name {
            for img in loaded.iter_mut().filter(|i| i.tags.is_empty()) {
                self.tag(&img.id, n)?;
                img.tags.push(Reference::parse(n)?.to_string());
            }
        }
        Ok(loaded)
    }

    fn load_docker_dir(&self, dir: &ArchiveDir) -> Result<Vec<LoadedImage>> {
        let entries: Vec<DockerManifestEntry> = dir.read_json("manifest.json")?;
        let mut out = Vec::new();
        for e in entries {
            let cfg_file = dir.open_file(&e.config)?;
            let expected = e
                .config
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
                .map(|digest| Expected { digest, size: None });
            let cfg_digest =
                ingest_file(self, cfg_file, expected, &format!("config {}", e.config))?;
            let cfg_size = self.content().size(&cfg_digest)?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let mut f = dir.open_file(l)?;
                let media = sniff_layer_type(&mut f)?;
                let d = ingest_file(self, f, None, &format!("layer {l}"))?;
                layers.push(Descriptor::new(media, d.clone(), self.content().size(&d)?));
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(spec::OCI_MANIFEST.into()),
                config: Descriptor::new(spec::OCI_CONFIG, cfg_digest, cfg_size),
                layers,
                annotations: None,
            };
            let bytes =
                serde_json::to_vec(&manifest).map_err(|e| Error::malformed("manifest", e))?;
            let md = self.content().write_blob(&bytes, None)?;
            let tags: Vec<String> = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse(t).map(|r| r.to_string()))
                .collect::<Result<_>>()?;
            let id = self.register_image(&md, tags.first().map(String::as_str))?;
            for t in tags.iter().skip(1) {
                self.tag(&id, t)?;
            }
            out.push(LoadedImage { id, tags });
        }
        Ok(out)
    }

    fn load_oci_dir(&self, dir: &ArchiveDir) -> Result<Vec<LoadedImage>> {
        if dir.exists("oci-layout") {
            let layout: serde_json::Value = dir.read_json("oci-layout")?;
            if layout.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
                return Err(Error::malformed(
                    "oci-layout",
                    "imageLayoutVersion is not 1.0.0",
                ));
            }
        }
        let index: Index = dir.read_json("index.json")?;
        let mut out: Vec<LoadedImage> = Vec::new();
        for desc in &index.manifests {
            let md = self.ingest_oci_graph(dir, desc)?;
            let name = image_name(desc.annotations.as_ref());
            let id = self.register_image(&md, name.as_deref())?;
            match out.iter_mut().find(|i| i.id == id) {
                Some(img) => img.tags.extend(name),
                None => out.push(LoadedImage {
                    id,
                    tags: name.into_iter().collect(),
                }),
            }
        }
        Ok(out)
    }

    /// Ingests a manifest or index and what the store's platform needs of it.
    fn ingest_oci_graph(&self, dir: &ArchiveDir, desc: &Descriptor) -> Result<Digest> {
        let blob = |d: &Descriptor, what: &str| -> Result<Digest> {
            if self.content().has(&d.digest) {
                return Ok(d.digest.clone());
            }
            let f = dir
                .open_file(&blob_rel(&d.digest))
                .map_err(|e| Error::Archive(format!("{what} {}: {e}", d.digest)))?;
            ingest_file(
                self,
                f,
                Some(Expected {
                    digest: d.digest.clone(),
                    size: Some(d.size),
                }),
                &format!("{what} {}", d.digest),
            )
        };
        let top = blob(desc, "manifest")?;
        let mut current = desc.clone();
        for _ in 0..4 {
            let bytes = self
                .content()
                .read_small(&current.digest, spec::MAX_METADATA_SIZE)?;
            match spec::parse_manifest(
                &bytes,
                Some(&current.media_type),
                &format!("manifest {}", current.digest),
            )? {
                Parsed::Index(idx) => {
                    let chosen =
                        spec::select_platform(&idx, &Platform::linux_amd64()).ok_or_else(|| {
                            Error::NoMatchingPlatform {
                                index: current.digest.to_string(),
                                wanted: "linux/amd64".into(),
                            }
                        })?;
                    blob(chosen, "manifest")?;
                    current = chosen.clone();
                }
                Parsed::Manifest(m) => {
                    blob(&m.config, "config")?;
                    for l in &m.layers {
                        blob(l, "layer")?;
                    }
                    return Ok(top);
                }
            }
        }
        Err(Error::malformed(
            format!("index {}", desc.digest),
            "indexes nested too deeply",
        ))
    }

    /// `berth save`: writes the images named by `refs` (names or ids) into
    /// one archive. A name saves that tag; an id saves the image with all
    /// its tags.
    pub fn save<W: Write>(&self, refs: &[&str], format: ArchiveFormat, out: W) -> Result<W> {
        let mut images: Vec<(String, Vec<String>)> = Vec::new();
        for r in refs {
            let id = self.resolve(r)?;
            let is_name = Reference::parse(r)
                .ok()
                .filter(|p| p.digest.is_none())
                .map(|p| p.to_string());
            let tags = match is_name {
                Some(n) if self.tags(&id)?.contains(&n) => vec![n],
                _ => self.tags(&id)?,
            };
            match images.iter_mut().find(|(i, _)| *i == id) {
                Some((_, t)) => {
                    t.extend(tags);
                    t.sort();
                    t.dedup();
                }
                None => images.push((id, tags)),
            }
        }
        let mut b = tar::Builder::new(out);
        match format {
            ArchiveFormat::DockerArchive => self.save_docker(&images, &mut b)?,
            ArchiveFormat::OciArchive => self.save_oci(&images, &mut b)?,
        }
        b.into_inner().ctx(|| "finish archive".into())
    }

    fn save_docker<W: Write>(
        &self,
        images: &[(String, Vec<String>)],
        b: &mut tar::Builder<W>,
    ) -> Result<()> {
        let mut written = HashSet::new();
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (id, tags) in images {
            let (m, cfg) = self.read_image(id)?;
            let cfg_name = format!("{}.json", m.config.digest.hex());
            if written.insert(cfg_name.clone()) {
                let bytes = self
                    .content()
                    .read_small(&m.config.digest, spec::MAX_METADATA_SIZE)?;
                append(b, &cfg_name, &bytes)?;
            }
            let mut layer_names = Vec::new();
            for (l, diff_id) in m.layers.iter().zip(&cfg.rootfs.diff_ids) {
                let name = format!("{}.tar", diff_id.hex());
                if written.insert(name.clone()) {
                    // Uncompressed, as docker-archive readers expect; spooled
                    // to learn the size the tar header needs.
                    let mut spool = tempfile::tempfile_in(self.root().join("tmp"))
                        .ctx(|| "create spool file".into())?;
                    let mut dec = layer::decompress(std::io::BufReader::new(
                        self.content().reader(&l.digest)?,
                    ))?;
                    let size = std::io::copy(&mut dec, &mut spool)
                        .ctx(|| format!("decompress layer {}", l.digest))?;
                    spool.rewind().ctx(|| "rewind spool".into())?;
                    let mut h = header(size);
                    b.append_data(&mut h, &name, spool)
                        .ctx(|| format!("write {name}"))?;
                }
                layer_names.push(name);
            }
            let familiar: Vec<String> = tags
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .map(|r| r.familiar())
                .collect();
            if let (Some(top), false) = (cfg.rootfs.diff_ids.last(), familiar.is_empty()) {
                for t in tags.iter().filter_map(|t| Reference::parse(t).ok()) {
                    let repo = crate::reference::familiar_repository(&t.repository());
                    repositories
                        .entry(repo)
                        .or_default()
                        .insert(t.tag.clone().unwrap_or_default(), top.hex().to_string());
                }
            }
            manifest.push(DockerManifestEntry {
                config: cfg_name,
                repo_tags: if familiar.is_empty() {
                    None
                } else {
                    Some(familiar)
                },
                layers: layer_names,
            });
        }
        append(
            b,
            "manifest.json",
            &serde_json::to_vec(&manifest).map_err(|e| Error::Archive(e.to_string()))?,
        )?;
        if !repositories.is_empty() {
            append(
                b,
                "repositories",
                &serde_json::to_vec(&repositories).map_err(|e| Error::Archive(e.to_string()))?,
            )?;
        }
        Ok(())
    }

    fn save_oci<W: Write>(
        &self,
        images: &[(String, Vec<String>)],
        b: &mut tar::Builder<W>,
    ) -> Result<()> {
        append(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for d in ["blobs/", "blobs/sha256/"] {
            let mut h = header(0);
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            b.append_data(&mut h, d, std::io::empty())
                .ctx(|| format!("write {d}"))?;
        }
        let mut written = HashSet::new();
        let mut index = Index {
            schema_version: 2,
            media_type: Some(spec::OCI_INDEX.into()),
            manifests: Vec::new(),
            annotations: None,
        };
        for (id, tags) in images {
            let rec = self.image(id)?;
            let md = Digest::parse(&rec.manifest_digest)?;
            let (m, own) = self.read_manifest(&md)?;
            let mut blobs = vec![own.clone(), m.config.digest.clone()];
            blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
            for d in blobs {
                if written.insert(d.clone()) {
                    let size = self.content().size(&d)?;
                    let mut h = header(size);
                    b.append_data(&mut h, blob_rel(&d), self.content().reader(&d)?)
                        .ctx(|| format!("write blob {d}"))?;
                }
            }
            let media = m
                .media_type
                .clone()
                .unwrap_or_else(|| spec::OCI_MANIFEST.into());
            let base = Descriptor::new(&media, own.clone(), self.content().size(&own)?);
            if tags.is_empty() {
                index.manifests.push(base.clone());
            }
            for t in tags {
                let mut d = base.clone();
                d.annotations = Some(
                    [
                        (REF_NAME.to_string(), t.clone()),
                        (CONTAINERD_NAME.to_string(), t.clone()),
                    ]
                    .into(),
                );
                index.manifests.push(d);
            }
        }
        append(
            b,
            "index.json",
            &serde_json::to_vec(&index).map_err(|e| Error::Archive(e.to_string()))?,
        )
    }
}

use crate::spec::Platform;

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) -> Result<()> {
    let mut h = header(data.len() as u64);
    b.append_data(&mut h, name, data)
        .ctx(|| format!("write {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_annotations() {
        let a = |k: &str, v: &str| {
            Some(
                [(k.to_string(), v.to_string())]
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        assert_eq!(
            image_name(a(REF_NAME, "localhost/x:v1").as_ref()).as_deref(),
            Some("localhost/x:v1")
        );
        assert_eq!(
            image_name(a(REF_NAME, "busybox:1").as_ref()).as_deref(),
            Some("docker.io/library/busybox:1")
        );
        assert_eq!(
            image_name(a(REF_NAME, "latest").as_ref()),
            None,
            "bare tag names no repository"
        );
        assert_eq!(
            image_name(a(CONTAINERD_NAME, "busybox").as_ref()).as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(image_name(None), None);
    }
}
