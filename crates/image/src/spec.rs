//! Image format types: OCI image spec (index, manifest, config, descriptor)
//! and Docker image manifest v2 schema 2 (manifest and manifest list), which
//! share one JSON shape and differ in media types.
//!
//! Specs: <https://github.com/opencontainers/image-spec/blob/main/manifest.md>,
//! <https://github.com/distribution/distribution/blob/main/docs/content/spec/manifest-v2-2.md>.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// The largest manifest, index or config berth reads (registries cap
/// manifests at 4 MiB).
pub const MAX_METADATA_SIZE: u64 = 16 << 20;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
        }
    }
}

/// A platform (os/architecture/variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
}

impl Platform {
    /// linux/amd64, the platform berth runs.
    pub fn linux_amd64() -> Self {
        Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Default::default()
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image manifest or Docker v2 schema 2 manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The image configuration (OCI image config / Docker image JSON). Unknown
/// fields are kept so a config read and re-written stays the same document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The runtime defaults of an image (`config` in the image config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The layer list of an image: uncompressed layer digests, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// One history entry of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Layer compression, from the media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression a layer media type declares, or an error for media
/// types that are not layers berth can apply.
pub fn layer_compression(media_type: &str) -> Result<Compression> {
    match media_type {
        OCI_LAYER
        | DOCKER_LAYER_TAR
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Ok(Compression::None),
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN | OCI_LAYER_NONDIST_GZIP => {
            Ok(Compression::Gzip)
        }
        OCI_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
            Ok(Compression::Zstd)
        }
        other => Err(Error::UnsupportedMediaType {
            what: "layer".into(),
            media_type: other.to_string(),
        }),
    }
}

/// A parsed top-level document: either an index or a single manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Index(Index),
    Manifest(Box<Manifest>),
}

/// Parses and validates an index or manifest read from `what` (used in error
/// messages, e.g. the digest). `media_type` is the descriptor's media type
/// when one is known; the document's own `mediaType` field is used otherwise.
pub fn parse_manifest(bytes: &[u8], media_type: Option<&str>, what: &str) -> Result<Parsed> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Error::malformed(what, e))?;
    let declared = value.get("mediaType").and_then(|v| v.as_str());
    if let (Some(d), Some(m)) = (declared, media_type)
        && d != m
    {
        return Err(Error::malformed(
            what,
            format!("mediaType {d:?} differs from descriptor's {m:?}"),
        ));
    }
    let kind = media_type
        .or(declared)
        .map(str::to_string)
        .unwrap_or_else(|| {
            // OCI documents may omit mediaType; tell them apart by shape.
            if value.get("manifests").is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        });
    match kind.as_str() {
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            let index: Index =
                serde_json::from_value(value).map_err(|e| Error::malformed(what, e))?;
            if index.schema_version != 2 {
                return Err(Error::malformed(
                    what,
                    format!("schemaVersion {} (want 2)", index.schema_version),
                ));
            }
            Ok(Parsed::Index(index))
        }
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let m: Manifest =
                serde_json::from_value(value).map_err(|e| Error::malformed(what, e))?;
            validate_manifest(&m, what)?;
            Ok(Parsed::Manifest(Box::new(m)))
        }
        other => Err(Error::UnsupportedMediaType {
            what: what.to_string(),
            media_type: other.to_string(),
        }),
    }
}

fn validate_manifest(m: &Manifest, what: &str) -> Result<()> {
    if m.schema_version != 2 {
        return Err(Error::malformed(
            what,
            format!("schemaVersion {} (want 2)", m.schema_version),
        ));
    }
    if m.config.media_type != OCI_CONFIG && m.config.media_type != DOCKER_CONFIG {
        return Err(Error::UnsupportedMediaType {
            what: format!("config of {what}"),
            media_type: m.config.media_type.clone(),
        });
    }
    for l in &m.layers {
        layer_compression(&l.media_type).map_err(|_| Error::UnsupportedMediaType {
            what: format!("layer {} of {what}", l.digest),
            media_type: l.media_type.clone(),
        })?;
    }
    Ok(())
}

/// Parses and validates an image config: the layer count must match the
/// manifest's.
pub fn parse_config(bytes: &[u8], layers: usize, what: &str) -> Result<ImageConfig> {
    let cfg: ImageConfig = serde_json::from_slice(bytes).map_err(|e| Error::malformed(what, e))?;
    if cfg.rootfs.kind != "layers" {
        return Err(Error::malformed(
            what,
            format!("rootfs.type {:?} (want \"layers\")", cfg.rootfs.kind),
        ));
    }
    if cfg.rootfs.diff_ids.len() != layers {
        return Err(Error::malformed(
            what,
            format!(
                "{} diff_ids for {layers} manifest layers",
                cfg.rootfs.diff_ids.len()
            ),
        ));
    }
    Ok(cfg)
}

/// Picks the manifest for `wanted` from an index: os and architecture must
/// match; an exact variant match wins over an entry without variant; entries
/// without any platform are chosen only when they are the index's sole entry.
/// Attestation manifests (`vnd.docker.reference.type`) are skipped.
pub fn select_platform<'a>(index: &'a Index, wanted: &Platform) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            !d.annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("vnd.docker.reference.type"))
                && (d.media_type == OCI_MANIFEST || d.media_type == DOCKER_MANIFEST)
        })
        .collect();
    let score = |d: &Descriptor| -> Option<u8> {
        let p = d.platform.as_ref()?;
        if p.os != wanted.os || p.architecture != wanted.architecture {
            return None;
        }
        match (&p.variant, &wanted.variant) {
            (a, b) if a == b => Some(2),
            (None, _) | (_, None) => Some(1),
            _ => None,
        }
    };
    let best = candidates
        .iter()
        .filter_map(|d| score(d).map(|s| (s, *d)))
        .max_by_key(|(s, _)| *s);
    match best {
        Some((_, d)) => Some(d),
        None if candidates.len() == 1 && candidates[0].platform.is_none() => Some(candidates[0]),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(media: &str, seed: &[u8], platform: Option<(&str, &str, Option<&str>)>) -> Descriptor {
        let mut d = Descriptor::new(media, Digest::sha256_of(seed), 1);
        d.platform = platform.map(|(os, arch, v)| Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: v.map(Into::into),
            ..Default::default()
        });
        d
    }

    fn index(manifests: Vec<Descriptor>) -> Index {
        Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests,
            annotations: None,
        }
    }

    #[test]
    fn selects_linux_amd64() {
        let idx = index(vec![
            desc(OCI_MANIFEST, b"arm", Some(("linux", "arm64", Some("v8")))),
            desc(OCI_MANIFEST, b"amd", Some(("linux", "amd64", None))),
            desc(OCI_MANIFEST, b"win", Some(("windows", "amd64", None))),
        ]);
        assert_eq!(
            select_platform(&idx, &Platform::linux_amd64())
                .unwrap()
                .digest,
            Digest::sha256_of(b"amd")
        );
    }

    #[test]
    fn skips_attestations_and_prefers_exact_variant() {
        let mut att = desc(OCI_MANIFEST, b"att", Some(("linux", "amd64", None)));
        att.annotations = Some(
            [(
                "vnd.docker.reference.type".to_string(),
                "attestation-manifest".to_string(),
            )]
            .into(),
        );
        let idx = index(vec![
            att,
            desc(OCI_MANIFEST, b"v2", Some(("linux", "amd64", Some("v2")))),
            desc(OCI_MANIFEST, b"plain", Some(("linux", "amd64", None))),
        ]);
        assert_eq!(
            select_platform(&idx, &Platform::linux_amd64())
                .unwrap()
                .digest,
            Digest::sha256_of(b"plain")
        );
        let mut v2 = Platform::linux_amd64();
        v2.variant = Some("v2".into());
        assert_eq!(
            select_platform(&idx, &v2).unwrap().digest,
            Digest::sha256_of(b"v2")
        );
    }

    #[test]
    fn no_match_and_sole_unplatformed_entry() {
        let idx = index(vec![desc(
            OCI_MANIFEST,
            b"arm",
            Some(("linux", "arm64", None)),
        )]);
        assert!(select_platform(&idx, &Platform::linux_amd64()).is_none());
        let idx = index(vec![desc(DOCKER_MANIFEST, b"only", None)]);
        assert_eq!(
            select_platform(&idx, &Platform::linux_amd64())
                .unwrap()
                .digest,
            Digest::sha256_of(b"only")
        );
    }

    #[test]
    fn parses_docker_and_oci_manifests() {
        let layer = Digest::sha256_of(b"l");
        let cfg = Digest::sha256_of(b"c");
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{cfg}","size":3}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","digest":"{layer}","size":9}}]}}"#
        );
        match parse_manifest(docker.as_bytes(), None, "m").unwrap() {
            Parsed::Manifest(m) => assert_eq!(m.layers[0].digest, layer),
            other => panic!("{other:?}"),
        }
        let oci = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{cfg}","size":3}},"layers":[{{"mediaType":"{OCI_LAYER_ZSTD}","digest":"{layer}","size":9}}]}}"#
        );
        assert!(matches!(
            parse_manifest(oci.as_bytes(), Some(OCI_MANIFEST), "m").unwrap(),
            Parsed::Manifest(_)
        ));
        let list =
            format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[]}}"#);
        assert!(matches!(
            parse_manifest(list.as_bytes(), None, "m").unwrap(),
            Parsed::Index(_)
        ));
    }

    #[test]
    fn malformed_manifests_name_the_culprit() {
        let err = parse_manifest(b"{not json", None, "manifest sha256:abc").unwrap_err();
        assert!(err.to_string().contains("manifest sha256:abc"), "{err}");
        let bad_layer = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":3}},"layers":[{{"mediaType":"text/plain","digest":"{}","size":9}}]}}"#,
            Digest::sha256_of(b"c"),
            Digest::sha256_of(b"l")
        );
        let err = parse_manifest(bad_layer.as_bytes(), None, "m1").unwrap_err();
        assert!(err.to_string().contains("text/plain"), "{err}");
        let v1 = br#"{"schemaVersion":1,"config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]}"#;
        assert!(parse_manifest(v1, None, "m2").is_err());
        let wrong = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(parse_manifest(wrong.as_bytes(), Some(OCI_MANIFEST), "m3").is_err());
    }

    #[test]
    fn config_round_trip_keeps_unknown_fields_and_checks_layers() {
        let json = r#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":["sh"],"Healthcheck":{"Test":["NONE"]}},"rootfs":{"type":"layers","diff_ids":[]},"custom":1}"#;
        let cfg = parse_config(json.as_bytes(), 0, "c").unwrap();
        assert_eq!(
            cfg.config.as_ref().unwrap().cmd.as_deref(),
            Some(&["sh".to_string()][..])
        );
        let out = serde_json::to_value(&cfg).unwrap();
        assert_eq!(out["custom"], 1);
        assert_eq!(out["config"]["Healthcheck"]["Test"][0], "NONE");
        let err = parse_config(json.as_bytes(), 2, "config sha256:x").unwrap_err();
        assert!(err.to_string().contains("config sha256:x"));
    }

    #[test]
    fn compression_from_media_type() {
        assert_eq!(
            layer_compression(DOCKER_LAYER_GZIP).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            layer_compression(OCI_LAYER_ZSTD).unwrap(),
            Compression::Zstd
        );
        assert_eq!(layer_compression(OCI_LAYER).unwrap(), Compression::None);
        assert!(layer_compression("application/json").is_err());
    }
}
