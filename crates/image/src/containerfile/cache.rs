//! Layer-cache keys. A step's key is the sha256 of its parent's key (or the
//! base image digest), the normalised instruction (the expanded
//! [`StepAction`], not the source text, so comments and line moves do not
//! matter) and, for COPY/ADD, the digest of the inputs' content and metadata.
//! An unchanged rebuild therefore reproduces every key, and a changed input
//! changes the key of its step and of every step after it.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::plan::{Step, StepAction};

/// A cache key, `sha256:<hex>`.
pub type CacheKey = String;

/// Lower-case hex sha256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An `io::Write` that hashes what is written.
#[derive(Default)]
pub(crate) struct Sha256Writer(Sha256);

impl Sha256Writer {
    pub(crate) fn finish_hex(self) -> String {
        hex(&self.0.finalize())
    }
}

impl std::io::Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Serialize)]
struct KeyMaterial<'a> {
    parent: &'a str,
    action: &'a StepAction,
    inputs: Option<&'a str>,
}

/// The cache key of `step` on top of `parent`; `inputs_digest` is
/// [`crate::containerfile::BuildContext::inputs_digest`] (or the digest of
/// the source stage/image files) for COPY/ADD, `None` otherwise.
pub fn step_cache_key(parent: &str, step: &Step, inputs_digest: Option<&str>) -> CacheKey {
    let material = KeyMaterial {
        parent,
        action: &step.action,
        inputs: inputs_digest,
    };
    // Serialising plain data structures cannot fail.
    let json = serde_json::to_vec(&material).unwrap_or_default();
    format!("sha256:{}", sha256_hex(&json))
}

/// Keys of a chain of steps starting at `base` (the base image's manifest
/// digest, or `"scratch"`); `inputs[i]` belongs to `steps[i]`.
pub fn chain_cache_keys(base: &str, steps: &[Step], inputs: &[Option<String>]) -> Vec<CacheKey> {
    let mut parent = base.to_string();
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let key = step_cache_key(&parent, step, inputs.get(i).and_then(|d| d.as_deref()));
            parent = key.clone();
            key
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::context::BuildContext;
    use super::super::parser::parse;
    use super::super::plan::{BuildOptions, plan_build};
    use super::*;
    use std::fs;

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn keys_for(dir: &std::path::Path, text: &str) -> Vec<CacheKey> {
        let file = parse(text).unwrap();
        let plan = plan_build(&file, &BuildOptions::default(), &mut |_| {
            Ok(Default::default())
        })
        .unwrap();
        let ctx = BuildContext::open(dir).unwrap();
        let stage = &plan.stages[plan.target];
        let inputs: Vec<Option<String>> = stage
            .steps
            .iter()
            .map(|s| match &s.action {
                StepAction::Copy { sources, .. } => {
                    let resolved = ctx.resolve_sources(s.line, sources).unwrap();
                    Some(ctx.inputs_digest(&resolved).unwrap())
                }
                _ => None,
            })
            .collect();
        chain_cache_keys("sha256:base", &stage.steps, &inputs)
    }

    const FILE: &str =
        "FROM base\nRUN echo one\nCOPY a.txt /a\nRUN echo two\nCOPY b.txt /b\nRUN echo three\n";

    #[test]
    fn unchanged_rebuild_reuses_every_key() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "a").unwrap();
        fs::write(dir.path().join("b.txt"), "b").unwrap();
        let first = keys_for(dir.path(), FILE);
        assert_eq!(first.len(), 5);
        // Comments and blank lines do not change the keys either.
        let commented = format!("# hello\n\n{FILE}");
        assert_eq!(keys_for(dir.path(), &commented), first);
        assert_eq!(keys_for(dir.path(), FILE), first);
    }

    #[test]
    fn changed_file_invalidates_exactly_the_steps_after_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), "a").unwrap();
        fs::write(dir.path().join("b.txt"), "b").unwrap();
        let before = keys_for(dir.path(), FILE);
        fs::write(dir.path().join("b.txt"), "B").unwrap();
        let after = keys_for(dir.path(), FILE);
        assert_eq!(before[..3], after[..3]);
        assert!(before[3..].iter().zip(&after[3..]).all(|(x, y)| x != y));
        // Changing a.txt invalidates from the first COPY on.
        fs::write(dir.path().join("a.txt"), "A").unwrap();
        let again = keys_for(dir.path(), FILE);
        assert_eq!(after[0], again[0]);
        assert!(after[1..].iter().zip(&again[1..]).all(|(x, y)| x != y));
    }

    #[test]
    fn build_args_used_by_run_change_its_key() {
        let text = "FROM base\nARG V=1\nRUN echo $V\n";
        let file = parse(text).unwrap();
        let key = |args: &[(&str, &str)]| {
            let options = BuildOptions {
                build_args: args
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            };
            let plan = plan_build(&file, &options, &mut |_| Ok(Default::default())).unwrap();
            chain_cache_keys("sha256:b", &plan.stages[0].steps, &[])
        };
        let default = key(&[]);
        assert_eq!(key(&[("V", "1")]), default);
        assert_ne!(key(&[("V", "2")]).last(), default.last());
    }
}
