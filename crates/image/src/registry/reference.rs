//! Image references with Docker's normalisation
//! (<https://github.com/distribution/reference> grammar): `busybox` →
//! `docker.io/library/busybox:latest`, `localhost:5000/app@sha256:…`.

use std::fmt;

use super::digest::validate_digest;
use super::error::RegistryError;

/// The registry Docker uses for names without a domain.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's API endpoint.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A fully-qualified image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// Repository path (`library/busybox`).
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:…` when pinned by digest.
    pub digest: Option<String>,
}

fn err(reference: &str, message: impl Into<String>) -> RegistryError {
    RegistryError::InvalidReference {
        reference: reference.to_string(),
        message: message.into(),
    }
}

/// A path component: lower-case alphanumerics separated by `.`, `_`, `__`
/// or runs of `-`.
fn valid_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_lowercase() && !bytes[0].is_ascii_digit()
        || !bytes[bytes.len() - 1].is_ascii_lowercase() && !bytes[bytes.len() - 1].is_ascii_digit()
    {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run.
        let start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    t.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        // IPv6 literal like [::1] or [::1]:5000
        _ if d.starts_with('[') => match d.find(']') {
            Some(end) => (&d[..=end], d[end + 1..].strip_prefix(':')),
            None => return false,
        },
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let host_ok = if host.starts_with('[') {
        host.len() > 2
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok())
}

impl Reference {
    /// Parse and normalise a reference.
    pub fn parse(input: &str) -> Result<Self, RegistryError> {
        if input.is_empty() {
            return Err(err(input, "empty reference"));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => {
                validate_digest(d).map_err(|e| err(input, e.to_string()))?;
                (n, Some(d.to_string()))
            }
            None => (input, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(name_tag[last_slash + i + 1..].to_string()),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(err(input, format!("invalid tag {t:?}")));
        }
        let (registry, mut repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.starts_with('[') =>
            {
                if !valid_domain(first) {
                    return Err(err(input, format!("invalid registry host {first:?}")));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if repository.len() > 255 {
            return Err(err(input, "repository name longer than 255 characters"));
        }
        if let Some(bad) = repository.split('/').find(|c| !valid_component(c)) {
            let why = if bad.chars().any(|c| c.is_ascii_uppercase()) {
                "repository names must be lower case"
            } else {
                "invalid repository path component"
            };
            return Err(err(input, format!("{why}: {bad:?}")));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host to send API requests to (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// What to put after `/manifests/`: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository pinned to `digest`.
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker prints: `busybox:latest`, `user/app:1`,
    /// `localhost:5000/app@sha256:…`.
    pub fn familiar(&self) -> String {
        let name = match self.registry.as_str() {
            DOCKER_HUB => self
                .repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string(),
            _ => self.name(),
        };
        let mut out = name;
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(d);
        }
        out
    }

    /// `registry/repository:tag` or `registry/repository@digest` for a
    /// manifest reference string.
    pub fn with_ref(&self, manifest_ref: &str) -> String {
        if validate_digest(manifest_ref).is_ok() {
            format!("{}@{manifest_ref}", self.name())
        } else {
            format!("{}:{manifest_ref}", self.name())
        }
    }
}

/// The API host for a registry name.
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalisation_table() {
        let with_digest = format!("localhost:5000/repo@{D}");
        let tag_and_digest = format!("busybox:1.36@{D}");
        type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
            ),
            (
                "busybox:1.36",
                "docker.io",
                "library/busybox",
                Some("1.36"),
                None,
            ),
            (
                "library/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
            ),
            (
                "docker.io/busybox",
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
            ),
            (
                "index.docker.io/foo/bar",
                "docker.io",
                "foo/bar",
                Some("latest"),
                None,
            ),
            ("user/app:v1", "docker.io", "user/app", Some("v1"), None),
            ("localhost/app", "localhost", "app", Some("latest"), None),
            (
                "localhost:5000/repo:tag",
                "localhost:5000",
                "repo",
                Some("tag"),
                None,
            ),
            (
                "127.0.0.1:5000/a/b/c:t",
                "127.0.0.1:5000",
                "a/b/c",
                Some("t"),
                None,
            ),
            (
                "quay.io/org/img",
                "quay.io",
                "org/img",
                Some("latest"),
                None,
            ),
            ("[::1]:5000/img", "[::1]:5000", "img", Some("latest"), None),
            (&with_digest, "localhost:5000", "repo", None, Some(D)),
            (
                &tag_and_digest,
                "docker.io",
                "library/busybox",
                Some("1.36"),
                Some(D),
            ),
            (
                "a__b/c-d.e_f:x",
                "docker.io",
                "a__b/c-d.e_f",
                Some("x"),
                None,
            ),
        ];
        for (input, registry, repo, tag, digest) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.registry, registry, "{input}");
            assert_eq!(r.repository, repo, "{input}");
            assert_eq!(r.tag.as_deref(), tag, "{input}");
            assert_eq!(r.digest.as_deref(), digest, "{input}");
        }
    }

    #[test]
    fn display_and_api_host() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.manifest_ref(), "latest");
        let r = Reference::parse("localhost:5000/x:1")
            .unwrap()
            .with_digest(D);
        assert_eq!(r.to_string(), format!("localhost:5000/x:1@{D}"));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.api_host(), "localhost:5000");
    }

    #[test]
    fn familiar_names() {
        let cases: &[(&str, &str)] = &[
            ("busybox", "busybox:latest"),
            ("docker.io/library/alpine:3", "alpine:3"),
            ("user/app:1", "user/app:1"),
            ("localhost:5000/app:x", "localhost:5000/app:x"),
            ("quay.io/a/b", "quay.io/a/b:latest"),
        ];
        for (input, want) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.familiar(), *want, "{input}");
            assert_eq!(Reference::parse(&r.familiar()).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn invalid_references() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Busybox", "lower case"),
            ("busybox:", "invalid tag"),
            ("busybox:-x", "invalid tag"),
            ("a//b", "invalid repository path component"),
            ("a/b-", "invalid repository path component"),
            ("a..b", "invalid repository path component"),
            ("busybox@sha256:abc", "invalid digest"),
            ("busybox@md5:abc", "invalid digest"),
            ("exa_mple.com:5000/x", "invalid registry host"),
            ("localhost:99999/x", "invalid registry host"),
        ];
        for (input, needle) in cases {
            let e = Reference::parse(input).unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
            assert!(e.contains(&format!("{input:?}")), "{input}: {e}");
        }
    }
}
