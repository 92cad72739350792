//! `berth images --filter`: Docker's image filters. Filters with the same
//! key are OR-ed, different keys AND-ed, as in Docker.

use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::store::ImageSummary;
use crate::timefmt::parse_rfc3339;

/// One `--filter key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageFilter {
    /// `dangling=true|false`: untagged images (or not).
    Dangling(bool),
    /// `label=key` or `label=key=value`.
    Label { key: String, value: Option<String> },
    /// `before=IMAGE`: created before that image (its created time).
    Before(i64),
    /// `since=IMAGE`: created after that image.
    Since(i64),
    /// `reference=PATTERN`: a glob over `repository[:tag]` in short form.
    Reference(String),
}

impl ImageFilter {
    fn key(&self) -> &'static str {
        match self {
            ImageFilter::Dangling(_) => "dangling",
            ImageFilter::Label { .. } => "label",
            ImageFilter::Before(_) => "before",
            ImageFilter::Since(_) => "since",
            ImageFilter::Reference(_) => "reference",
        }
    }

    /// Parses `key=value`; `created_of` gives the created time of the image
    /// a `before`/`since` filter names.
    pub fn parse(input: &str, created_of: &dyn Fn(&str) -> Result<i64>) -> Result<Self> {
        let bad = |reason: &str| Error::malformed(format!("filter {input:?}"), reason);
        let (key, value) = input.split_once('=').ok_or_else(|| bad("want key=value"))?;
        Ok(match key {
            "dangling" => match value {
                "true" | "1" => ImageFilter::Dangling(true),
                "false" | "0" => ImageFilter::Dangling(false),
                _ => return Err(bad("dangling takes true or false")),
            },
            "label" => match value.split_once('=') {
                Some((k, v)) => ImageFilter::Label {
                    key: k.to_string(),
                    value: Some(v.to_string()),
                },
                None => ImageFilter::Label {
                    key: value.to_string(),
                    value: None,
                },
            },
            "before" => ImageFilter::Before(created_of(value)?),
            "since" => ImageFilter::Since(created_of(value)?),
            "reference" => ImageFilter::Reference(value.to_string()),
            other => {
                return Err(bad(&format!(
                    "unknown filter {other:?} (dangling, label, before, since, reference)"
                )));
            }
        })
    }

    fn matches(&self, img: &ImageSummary) -> bool {
        let created = img.created.as_deref().and_then(parse_rfc3339);
        match self {
            ImageFilter::Dangling(d) => img.dangling() == *d,
            ImageFilter::Label { key, value } => match (img.labels.get(key), value) {
                (Some(v), Some(want)) => v == want,
                (Some(_), None) => true,
                (None, _) => false,
            },
            ImageFilter::Before(t) => created.is_some_and(|c| c < *t),
            ImageFilter::Since(t) => created.is_some_and(|c| c > *t),
            ImageFilter::Reference(pattern) => img
                .repo_tags
                .iter()
                .filter_map(|t| Reference::parse(t).ok())
                .any(|r| {
                    let repo = crate::reference::familiar_repository(&r.repository());
                    let tagged = format!("{repo}:{}", r.tag.as_deref().unwrap_or(""));
                    glob(pattern, &tagged) || glob(pattern, &repo) || glob(pattern, &r.to_string())
                }),
        }
    }
}

/// True when `img` passes every group of filters.
pub fn matches(filters: &[ImageFilter], img: &ImageSummary) -> bool {
    let mut keys: Vec<&str> = filters.iter().map(ImageFilter::key).collect();
    keys.sort();
    keys.dedup();
    keys.iter().all(|k| {
        filters
            .iter()
            .filter(|f| f.key() == *k)
            .any(|f| f.matches(img))
    })
}

/// Shell-style matching as Go's `path.Match`: `*` is any run of characters
/// other than `/`, `?` one such character.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| go(&p[1..], &t[i..])),
            Some('?') => t.first().is_some_and(|c| *c != '/') && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(tags: &[&str], created: &str, labels: &[(&str, &str)]) -> ImageSummary {
        ImageSummary {
            id: "sha256:x".into(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: vec![],
            created: Some(created.into()),
            size: 0,
            containers: 0,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn f(s: &str) -> ImageFilter {
        ImageFilter::parse(s, &|_| Ok(parse_rfc3339("2024-06-01T00:00:00Z").unwrap())).unwrap()
    }

    #[test]
    fn globbing() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("busybox:*", "busybox:latest"));
        assert!(!glob("*", "user/app"));
        assert!(glob("*/app", "user/app"));
        assert!(glob("b?sybox", "busybox"));
        assert!(!glob("busybox", "busybox:latest"));
    }

    #[test]
    fn filters() {
        let a = img(
            &["docker.io/library/busybox:latest"],
            "2024-01-01T00:00:00Z",
            &[("v", "1")],
        );
        let b = img(&[], "2025-01-01T00:00:00Z", &[]);
        assert!(matches(&[f("dangling=true")], &b) && !matches(&[f("dangling=true")], &a));
        assert!(
            matches(&[f("label=v")], &a)
                && matches(&[f("label=v=1")], &a)
                && !matches(&[f("label=v=2")], &a)
        );
        assert!(matches(&[f("before=x")], &a) && matches(&[f("since=x")], &b));
        assert!(matches(&[f("reference=busybox")], &a));
        assert!(matches(&[f("reference=busy*:latest")], &a));
        assert!(!matches(&[f("reference=alpine")], &a));
        // Same key OR-ed, different keys AND-ed.
        assert!(matches(
            &[f("reference=alpine"), f("reference=busybox")],
            &a
        ));
        assert!(!matches(&[f("reference=busybox"), f("dangling=true")], &a));
        assert!(ImageFilter::parse("bogus=1", &|_| Ok(0)).is_err());
        assert!(ImageFilter::parse("dangling=maybe", &|_| Ok(0)).is_err());
    }
}
