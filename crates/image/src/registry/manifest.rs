//! Manifests and indexes: OCI image spec
//! (<https://github.com/opencontainers/image-spec/blob/main/manifest.md>,
//! `image-index.md`) and Docker's v2 schema 2 manifest and manifest list,
//! which share the same JSON shape with different media types.

use serde::{Deserialize, Serialize};

use super::error::RegistryError;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `Accept` header for manifest requests: every format we understand.
pub fn accept_header() -> String {
    [
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
    ]
    .join(", ")
}

/// A platform entry of an index.
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
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// An image index / manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestKind {
    Image(Box<ImageManifest>),
    Index(ImageIndex),
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

/// Parse manifest bytes. The media type comes from the HTTP Content-Type
/// (`content_type`) or the document's `mediaType`; a document without either
/// is classified by shape (OCI allows omitting `mediaType`).
/// Returns the parsed document and its effective media type.
pub fn parse_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
    what: &str,
) -> Result<(ManifestKind, String), RegistryError> {
    let bad = |e: serde_json::Error| RegistryError::BadJson {
        what: what.to_string(),
        message: e.to_string(),
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(bad)?;
    if probe.schema_version != Some(2) {
        return Err(RegistryError::UnsupportedMediaType {
            what: what.to_string(),
            media_type: format!(
                "schemaVersion {} (only schema 2 manifests are supported)",
                probe
                    .schema_version
                    .map_or("missing".to_string(), |v| v.to_string())
            ),
        });
    }
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| {
            matches!(
                c.as_str(),
                OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
            )
        });
    let media_type = probe.media_type.clone().or(header).unwrap_or_else(|| {
        if probe.manifests.is_some() {
            OCI_INDEX.to_string()
        } else if probe.config.is_some() {
            OCI_MANIFEST.to_string()
        } else {
            String::new()
        }
    });
    let kind = match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            ManifestKind::Image(Box::new(serde_json::from_slice(bytes).map_err(bad)?))
        }
        OCI_INDEX | DOCKER_MANIFEST_LIST => {
            ManifestKind::Index(serde_json::from_slice(bytes).map_err(bad)?)
        }
        other => {
            return Err(RegistryError::UnsupportedMediaType {
                what: what.to_string(),
                media_type: other.to_string(),
            });
        }
    };
    Ok((kind, media_type))
}

/// Pick the manifest for `os`/`arch` (and `variant` if given) from an index;
/// entries without a variant match any requested variant.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    os: &str,
    arch: &str,
    variant: Option<&str>,
) -> Option<&'a Descriptor> {
    let candidates = index.manifests.iter().filter(|d| {
        matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST)
            && d.platform
                .as_ref()
                .is_some_and(|p| p.os == os && p.architecture == arch)
    });
    let mut fallback = None;
    for d in candidates {
        let v = d.platform.as_ref().and_then(|p| p.variant.as_deref());
        match (variant, v) {
            (Some(want), Some(have)) if want == have => return Some(d),
            (None, _) | (Some(_), None) => {
                fallback.get_or_insert(d);
            }
            _ => {}
        }
    }
    fallback
}

/// `os/arch[/variant]` of every entry, for error messages.
pub fn platforms_of(index: &ImageIndex) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .map(|d| match &d.platform {
            Some(p) => match &p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            },
            None => "(no platform)".to_string(),
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn index_json(media: &str, entry_media: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media}","manifests":[
            {{"mediaType":"{entry_media}","digest":"{D1}","size":10,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}},
            {{"mediaType":"{entry_media}","digest":"{D2}","size":10,"platform":{{"architecture":"amd64","os":"linux"}}}},
            {{"mediaType":"{entry_media}","digest":"{D3}","size":10,"platform":{{"architecture":"amd64","os":"windows","os.version":"10.0"}}}}
            ]}}"#
        )
    }

    #[test]
    fn parse_table() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{D1}","size":5}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","digest":"{D2}","size":7}}]}}"#
        );
        let bare_oci = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{OCI_CONFIG}","digest":"{D1}","size":5}},"layers":[]}}"#
        );
        let bare_index = r#"{"schemaVersion":2,"manifests":[]}"#.to_string();
        let cases: Vec<(String, Option<&str>, &str, bool)> = vec![
            (manifest.clone(), None, DOCKER_MANIFEST, false),
            (bare_oci.clone(), None, OCI_MANIFEST, false),
            (bare_oci, Some(DOCKER_MANIFEST), DOCKER_MANIFEST, false),
            (bare_index, None, OCI_INDEX, true),
            (index_json(OCI_INDEX, OCI_MANIFEST), None, OCI_INDEX, true),
            (
                index_json(DOCKER_MANIFEST_LIST, DOCKER_MANIFEST),
                Some("text/plain"),
                DOCKER_MANIFEST_LIST,
                true,
            ),
        ];
        for (json, ct, want_type, is_index) in cases {
            let (kind, mt) = parse_manifest(json.as_bytes(), ct, "test").unwrap();
            assert_eq!(mt, want_type, "{json}");
            assert_eq!(matches!(kind, ManifestKind::Index(_)), is_index, "{json}");
        }
        let (kind, _) = parse_manifest(manifest.as_bytes(), None, "m").unwrap();
        let ManifestKind::Image(m) = kind else {
            panic!()
        };
        assert_eq!(m.config.digest, D1);
        assert_eq!(m.layers[0].size, 7);
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, &str)] = &[
            ("not json", "malformed JSON"),
            (r#"{"schemaVersion":1,"fsLayers":[]}"#, "schemaVersion 1"),
            (
                r#"{"schemaVersion":2,"mediaType":"application/x-weird"}"#,
                "application/x-weird",
            ),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
                "malformed JSON",
            ),
        ];
        for (json, needle) in cases {
            let e = parse_manifest(json.as_bytes(), None, "img:tag")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains("img:tag"), "{json}: {e}");
        }
    }

    #[test]
    fn platform_selection() {
        for (media, entry) in [
            (OCI_INDEX, OCI_MANIFEST),
            (DOCKER_MANIFEST_LIST, DOCKER_MANIFEST),
        ] {
            let (kind, _) = parse_manifest(index_json(media, entry).as_bytes(), None, "x").unwrap();
            let ManifestKind::Index(idx) = kind else {
                panic!()
            };
            assert_eq!(
                select_platform(&idx, "linux", "amd64", None)
                    .unwrap()
                    .digest,
                D2
            );
            assert_eq!(
                select_platform(&idx, "linux", "arm", Some("v7"))
                    .unwrap()
                    .digest,
                D1
            );
            assert_eq!(
                select_platform(&idx, "windows", "amd64", None)
                    .unwrap()
                    .digest,
                D3
            );
            assert!(select_platform(&idx, "linux", "arm", Some("v6")).is_none());
            assert!(select_platform(&idx, "linux", "s390x", None).is_none());
            assert_eq!(
                platforms_of(&idx),
                "linux/arm/v7, linux/amd64, windows/amd64"
            );
        }
    }
}
