//! Docker image references and their normalisation (`busybox` →
//! `docker.io/library/busybox:latest`), following distribution's
//! reference grammar: <https://github.com/distribution/reference/blob/main/reference.go>.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The registry used when a reference names none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The tag used when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises `input`: a missing domain becomes `docker.io`,
    /// a single-component Docker Hub path gains `library/`, and a reference
    /// without tag or digest gets `:latest`.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() || input.len() > 4096 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| bad(&e.to_string()))?)),
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(bad("invalid tag (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"));
        }
        let (domain, path) = split_domain(name);
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(bad(
                "invalid repository name (lowercase letters, digits and separators . _ -)",
            ));
        }
        if domain.is_empty() {
            return Err(bad("empty registry"));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some(DEFAULT_TAG.to_string())
        } else {
            tag
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path`, the repository name.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form Docker shows (`busybox:latest`, `user/app:1`).
    pub fn familiar(&self) -> String {
        let repo = familiar_repository(&self.repository());
        let mut s = repo;
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

/// Drops `docker.io/` and `library/` from a full repository name.
pub fn familiar_repository(repo: &str) -> String {
    let r = repo.strip_prefix("docker.io/").unwrap_or(repo);
    r.strip_prefix("library/")
        .filter(|s| !s.contains('/'))
        .unwrap_or(r)
        .to_string()
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn split_domain(name: &str) -> (String, String) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => {
            let domain = DEFAULT_DOMAIN.to_string();
            if name.contains('/') {
                (domain, name.to_string())
            } else {
                (domain, format!("library/{name}"))
            }
        }
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "localhost:5000/x/y:t",
                "localhost:5000/x/y:t",
                "localhost:5000/x/y:t",
            ),
            ("quay.io/a/b", "quay.io/a/b:latest", "quay.io/a/b:latest"),
            (
                "localhost/img",
                "localhost/img:latest",
                "localhost/img:latest",
            ),
        ];
        for (input, full, short) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.to_string(), full);
            assert_eq!(r.familiar(), short);
        }
    }

    #[test]
    fn digests() {
        let d = Digest::sha256_of(b"m");
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest, Some(d.clone()));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "a:",
            "a:-x",
            "busybox@sha256:zz",
            "-a",
            "a/",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
