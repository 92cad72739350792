//! End-to-end use of the Containerfile front end through the public API:
//! parse → plan (with --target and --build-arg) → resolve COPY sources in a
//! real context directory → cache keys; then a context change.

use std::collections::BTreeMap;
use std::fs;

use berth_image::containerfile::{
    BaseImage, BaseImageInfo, BuildContext, BuildOptions, CopyFrom, StepAction, chain_cache_keys,
    parse, plan_build,
};

const FILE: &str = r#"# syntax=docker/dockerfile:1
ARG RUST_VERSION=1.80
FROM rust:${RUST_VERSION} AS build
WORKDIR /src
COPY Cargo.toml ./
COPY src/ ./src/
RUN cargo build --release \
    && strip target/release/app

FROM scratch AS final
COPY --from=build /src/target/release/app /app
EXPOSE 8080
ENTRYPOINT ["/app"]

FROM final AS debug
COPY debug.sh /debug.sh
"#;

fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    fs::create_dir_all(r.join("src")).unwrap();
    fs::write(r.join("Cargo.toml"), "[package]\nname = \"app\"\n").unwrap();
    fs::write(r.join("src/main.rs"), "fn main() {}\n").unwrap();
    fs::write(r.join("src/scratch.tmp"), "junk").unwrap();
    fs::write(r.join("debug.sh"), "#!/bin/sh\n").unwrap();
    fs::write(r.join(".dockerignore"), "**/*.tmp\n").unwrap();
    dir
}

fn keys(dir: &std::path::Path, version: &str) -> Vec<String> {
    let file = parse(FILE).unwrap();
    let options = BuildOptions {
        build_args: BTreeMap::from([("RUST_VERSION".to_string(), version.to_string())]),
        target: Some("final".into()),
    };
    let mut pulled = Vec::new();
    let plan = plan_build(&file, &options, &mut |image| {
        pulled.push(image.to_string());
        Ok(BaseImageInfo::default())
    })
    .unwrap();
    assert_eq!(pulled, [format!("rust:{version}")]);
    assert_eq!(plan.order, [0, 1]);
    assert_eq!(plan.stages[2].base, BaseImage::Stage(1));
    let ctx = BuildContext::open(dir).unwrap();
    let build = &plan.stages[0];
    let inputs: Vec<Option<String>> = build
        .steps
        .iter()
        .map(|s| match &s.action {
            StepAction::Copy {
                from: CopyFrom::Context,
                sources,
                ..
            } => {
                let resolved = ctx.resolve_sources(s.line, sources).unwrap();
                Some(ctx.inputs_digest(&resolved).unwrap())
            }
            _ => None,
        })
        .collect();
    chain_cache_keys(&format!("rust:{version}"), &build.steps, &inputs)
}

#[test]
fn multi_stage_plan_and_cache_keys() {
    let dir = context();
    let first = keys(dir.path(), "1.80");
    assert_eq!(first.len(), 4, "WORKDIR, COPY, COPY, RUN");
    // Ignored file: no change.
    fs::write(dir.path().join("src/scratch.tmp"), "other junk").unwrap();
    assert_eq!(keys(dir.path(), "1.80"), first);
    // Source change: the second COPY and the RUN after it.
    fs::write(
        dir.path().join("src/main.rs"),
        "fn main() { println!(); }\n",
    )
    .unwrap();
    let second = keys(dir.path(), "1.80");
    assert_eq!(first[..2], second[..2]);
    assert_ne!(first[2], second[2]);
    assert_ne!(first[3], second[3]);
    // A different base changes everything.
    let third = keys(dir.path(), "1.81");
    assert!(second.iter().zip(&third).all(|(a, b)| a != b));
}

#[test]
fn copy_source_outside_context_names_the_line() {
    let dir = context();
    let file = parse("FROM scratch\n\nCOPY ../../etc/passwd /p\n").unwrap();
    let plan = plan_build(&file, &BuildOptions::default(), &mut |_| {
        Ok(BaseImageInfo::default())
    })
    .unwrap();
    let step = &plan.stages[0].steps[0];
    let StepAction::Copy { sources, .. } = &step.action else {
        panic!("expected COPY, got {:?}", step.action);
    };
    let ctx = BuildContext::open(dir.path()).unwrap();
    let err = ctx
        .resolve_sources(step.line, sources)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "line 3: COPY source \"../../etc/passwd\" is outside the build context"
    );
}

#[test]
fn unknown_instruction_names_the_line() {
    let err = parse("FROM scratch\nRUN true\nCOPPY a b\n").unwrap_err();
    assert_eq!(err.to_string(), "line 3: unknown instruction: COPPY");
}
