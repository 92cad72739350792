//! Container ids: what the CLI accepts as a name for a state directory.

use crate::error::{Error, Result};

/// Accepts ids made of `[A-Za-z0-9_+.-]`, not `.` or `..`, at most 1024
/// bytes: the same set runc accepts, so an id can never name a path outside
/// the runtime root.
pub fn validate(id: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::InvalidId {
            id: id.to_string(),
            why,
        })
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if id == "." || id == ".." {
        return bad("it names a directory");
    }
    if id.len() > 1024 {
        return bad("it is longer than 1024 bytes");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+.-".contains(&b))
    {
        return bad("only letters, digits, '_', '+', '.' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_ordinary_ids() {
        for id in ["a", "web-1", "x_y.z+1", "0123456789abcdef"] {
            validate(id).unwrap();
        }
    }

    #[test]
    fn refuses_path_like_ids() {
        for id in ["", ".", "..", "a/b", "../x", "a b", "é", &"x".repeat(1025)] {
            assert!(validate(id).is_err(), "{id:?} accepted");
        }
    }
}
