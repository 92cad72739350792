//! Pure decisions about tar entry names: normalisation, traversal refusal
//! and whiteout recognition (OCI image spec, "Whiteouts":
//! <https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts>).

use crate::error::{Error, Result};

/// The prefix marking a whiteout file.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name marking its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What a tar entry name means once whiteouts are recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryName {
    /// The root directory itself (`./`).
    Root,
    /// A regular path, as components below the root.
    Path(Vec<String>),
    /// Delete `name` in directory `dir`.
    Whiteout { dir: Vec<String>, name: String },
    /// Hide everything lower layers have in `dir`.
    Opaque { dir: Vec<String> },
    /// Other `.wh..wh.` metadata (aufs hard-link dirs) that is skipped.
    Ignored,
}

/// Splits a tar entry name into components below the root. A leading `/`
/// or `./` is dropped (the name is relative to the snapshot root, as
/// Docker and containerd treat it); any `..` component is refused outright,
/// as is a name that is not UTF-8, contains NUL, or is too long or deep.
pub fn components(raw: &[u8], max_len: usize, max_depth: usize) -> Result<Vec<String>> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    if raw.len() > max_len {
        return Err(Error::hostile(
            shown,
            format!("name longer than {max_len} bytes"),
        ));
    }
    let s =
        std::str::from_utf8(raw).map_err(|_| Error::hostile(shown.clone(), "name is not UTF-8"))?;
    if s.contains('\0') {
        return Err(Error::hostile(shown, "name contains NUL"));
    }
    let mut out = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::hostile(
                    shown,
                    "path traversal ('..') out of the snapshot",
                ));
            }
            p => out.push(p.to_string()),
        }
    }
    if out.len() > max_depth {
        return Err(Error::hostile(
            shown,
            format!("deeper than {max_depth} directories"),
        ));
    }
    Ok(out)
}

/// Classifies a tar entry name.
pub fn classify(raw: &[u8], max_len: usize, max_depth: usize) -> Result<EntryName> {
    let mut parts = components(raw, max_len, max_depth)?;
    let Some(last) = parts.pop() else {
        return Ok(EntryName::Root);
    };
    if last == OPAQUE_MARKER {
        return Ok(EntryName::Opaque { dir: parts });
    }
    if last.starts_with(".wh..wh.") {
        return Ok(EntryName::Ignored);
    }
    if let Some(name) = last.strip_prefix(WHITEOUT_PREFIX) {
        if name.is_empty() {
            return Err(Error::hostile(
                String::from_utf8_lossy(raw),
                "whiteout without a name",
            ));
        }
        return Ok(EntryName::Whiteout {
            dir: parts,
            name: name.to_string(),
        });
    }
    parts.push(last);
    Ok(EntryName::Path(parts))
}

/// Joins components back into a relative path string.
pub fn join(parts: &[String]) -> String {
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalises_names() {
        assert_eq!(components(b"./a/b/", 4096, 10).unwrap(), p(&["a", "b"]));
        assert_eq!(
            components(b"/etc//passwd", 4096, 10).unwrap(),
            p(&["etc", "passwd"])
        );
        assert_eq!(classify(b"./", 4096, 10).unwrap(), EntryName::Root);
    }

    #[test]
    fn refuses_traversal_and_limits() {
        for bad in [&b"../x"[..], b"a/../../x", b"a/.."] {
            let err = components(bad, 4096, 10).unwrap_err();
            assert!(err.to_string().contains("traversal"), "{err}");
        }
        assert!(components(b"a/b/c", 4096, 2).is_err());
        assert!(components(&[b'a'; 50], 10, 10).is_err());
        assert!(components(b"\xff", 10, 10).is_err());
    }

    #[test]
    fn recognises_whiteouts() {
        assert_eq!(
            classify(b"a/.wh.b", 4096, 10).unwrap(),
            EntryName::Whiteout {
                dir: p(&["a"]),
                name: "b".into()
            }
        );
        assert_eq!(
            classify(b"a/.wh..wh..opq", 4096, 10).unwrap(),
            EntryName::Opaque { dir: p(&["a"]) }
        );
        assert_eq!(
            classify(b".wh..wh.plnk/1", 4096, 10).unwrap(),
            EntryName::Path(p(&[".wh..wh.plnk", "1"]))
        );
        assert_eq!(
            classify(b".wh..wh.aufs", 4096, 10).unwrap(),
            EntryName::Ignored
        );
        assert!(classify(b"a/.wh.", 4096, 10).is_err());
    }
}
