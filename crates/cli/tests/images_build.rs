//! `berth build` through the real binary: real RUN containers, COPY/ADD,
//! multi-stage, the layer cache, error reporting, and podman interop.

mod images_util;

use images_util::{Berth, have, import_busybox, podman, tool};
use std::fs;
use std::path::Path;
use std::process::Command;

fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn build(b: &Berth, ctx: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["build"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let out = b.ok(&args);
    let id = out.lines().last().unwrap().to_string();
    (id, out)
}

/// Reads a file from an image by saving it and unpacking with tar.
fn file_in_image(b: &Berth, image: &str, path: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("img.tar");
    b.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        image,
    ]);
    let dir = tmp.path().join("x");
    fs::create_dir(&dir).unwrap();
    tool(
        Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-xf")
            .arg(&archive),
    );
    // Apply the layers in order (plain tar extraction is enough here).
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(blob(&mdigest)).unwrap()).unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    for l in manifest["layers"].as_array().unwrap() {
        tool(
            Command::new("tar")
                .arg("-C")
                .arg(&rootfs)
                .arg("-xf")
                .arg(blob(l["digest"].as_str().unwrap())),
        );
    }
    fs::read_to_string(rootfs.join(path.trim_start_matches('/'))).unwrap()
}

#[test]
fn build_runs_steps_in_containers_and_caches_exactly() {
    if !berth_testutil::is_root() {
        eprintln!("skipped: builds run containers and need root");
        return;
    }
    let b = Berth::new();
    import_busybox(&b, "bb:1");
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    write(c, "a.txt", "first\n");
    write(c, "b.txt", "bee\n");
    write(c, "dir/nested.txt", "nested\n");
    write(c, "secret.txt", "do not copy\n");
    write(c, ".dockerignore", "secret.txt\n");
    write(
        c,
        "Containerfile",
        "# syntax=docker/dockerfile:1\n\
         ARG BASE=bb:1\n\
         FROM ${BASE} AS builder\n\
         ARG GREETING=hello\n\
         ENV PATH=/usr/local/bin:/usr/bin:/bin \\\n    MODE=test\n\
         WORKDIR /work\n\
         COPY b.txt ./\n\
         RUN echo \"$GREETING from $(id -u) in $(pwd)\" > /work/run.txt && cat /work/b.txt\n\
         RUN [\"/bin/sh\", \"-c\", \"echo exec-form >> /work/run.txt\"]\n\
         COPY --chown=65534:65534 --chmod=0640 a.txt dir/ /work/in/\n\
         RUN ls -ln /work/in && test ! -e /work/secret.txt\n\
         \n\
         FROM scratch\n\
         COPY --from=builder /work/run.txt /work/in/a.txt /out/\n\
         COPY --from=bb:1 /bin/busybox /bin/busybox\n\
         ENV A=1\n\
         LABEL org.example=yes\n\
         EXPOSE 8080/tcp\n\
         VOLUME /data\n\
         USER 65534\n\
         STOPSIGNAL SIGTERM\n\
         HEALTHCHECK --interval=5s CMD [\"/bin/busybox\", \"true\"]\n\
         ONBUILD RUN echo child\n\
         ENTRYPOINT [\"/bin/busybox\"]\n\
         CMD [\"sh\"]\n",
    );
    let (id, out) = build(&b, c, &["-t", "app:1", "--build-arg", "GREETING=hi"]);
    assert!(out.contains("STEP 1/"), "{out}");
    assert!(out.contains("bee"), "RUN output streams: {out}");
    assert!(!out.contains("Using cache"), "{out}");
    let run = file_in_image(&b, "app:1", "/out/run.txt");
    assert_eq!(run, "hi from 0 in /work\nexec-form\n");
    assert_eq!(file_in_image(&b, "app:1", "/out/a.txt"), "first\n");
    let cfg: serde_json::Value =
        serde_json::from_str(&b.ok(&["image", "inspect", "-f", "{{json .Config}}", "app:1"]))
            .unwrap();
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/busybox"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(cfg["User"], "65534");
    assert_eq!(cfg["Labels"]["org.example"], "yes");
    assert!(cfg["ExposedPorts"].get("8080/tcp").is_some(), "{cfg}");
    assert!(cfg["Volumes"].get("/data").is_some(), "{cfg}");
    assert_eq!(cfg["StopSignal"], "SIGTERM");
    assert!(cfg["Healthcheck"]["Test"].is_array(), "{cfg}");
    assert_eq!(cfg["OnBuild"], serde_json::json!(["RUN echo child"]));

    // An unchanged rebuild: every step from the cache, the same image.
    let (id2, out2) = build(&b, c, &["-t", "app:1", "--build-arg", "GREETING=hi"]);
    assert_eq!(id, id2, "rebuild is byte-identical");
    assert!(
        !out2.lines().any(|l| l.trim() == "bee"),
        "no RUN executed: {out2}"
    );

    // Changing a.txt re-runs exactly the steps from its COPY on.
    write(c, "a.txt", "second\n");
    let (id3, out3) = build(&b, c, &["-t", "app:1", "--build-arg", "GREETING=hi"]);
    assert_ne!(id3, id);
    let steps: Vec<&str> = out3.lines().collect();
    let cached_before = steps
        .iter()
        .position(|l| l.contains("COPY --chown"))
        .unwrap();
    let cached = |part: &[&str]| part.iter().filter(|l| l.contains("Using cache")).count();
    assert_eq!(
        cached(&steps[..cached_before]),
        5,
        "ENV, WORKDIR, COPY b.txt and both RUNs reused: {out3}"
    );
    assert_eq!(
        cached(&steps[cached_before..]),
        0,
        "the rest re-ran: {out3}"
    );
    assert_eq!(file_in_image(&b, "app:1", "/out/a.txt"), "second\n");

    // --no-cache runs everything again.
    let (_, out4) = build(&b, c, &["--no-cache", "--build-arg", "GREETING=hi"]);
    assert!(
        !out4.contains("Using cache") && out4.contains("bee"),
        "{out4}"
    );

    // --target builds only the named stage.
    let (tid, _) = build(&b, c, &["--target", "builder", "-t", "builder:1"]);
    assert_eq!(file_in_image(&b, &tid, "/work/b.txt"), "bee\n");
}

#[test]
fn build_errors_name_the_culprit() {
    if !berth_testutil::is_root() {
        eprintln!("skipped: builds run containers and need root");
        return;
    }
    let b = Berth::new();
    import_busybox(&b, "bb:1");
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    let before = b.ids();
    write(
        c,
        "Containerfile",
        "FROM bb:1\nRUN echo about-to-fail && exit 3\n",
    );
    let err = b.fails(&["build", c.to_str().unwrap()]);
    assert!(
        err.contains("step 2/2 (line 2: RUN echo about-to-fail && exit 3)")
            && err.contains("status 3")
            && err.contains("about-to-fail"),
        "{err}"
    );
    write(c, "Containerfile", "FROM bb:1\nFROBNICATE now\n");
    let err = b.fails(&["build", c.to_str().unwrap()]);
    assert!(
        err.contains("line 2") && err.contains("FROBNICATE"),
        "{err}"
    );
    write(c, "Containerfile", "FROM bb:1\nCOPY ../outside /x\n");
    let err = b.fails(&["build", c.to_str().unwrap()]);
    assert!(err.contains("outside the build context"), "{err}");
    write(c, "Containerfile", "FROM bb:1\nCOPY missing.txt /x\n");
    let err = b.fails(&["build", c.to_str().unwrap()]);
    assert!(err.contains("missing.txt"), "{err}");
    assert_eq!(b.ids(), before, "failed builds add no image");
}

#[test]
fn add_unpacks_local_tarballs() {
    if !berth_testutil::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let b = Berth::new();
    import_busybox(&b, "bb:1");
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    let src = c.join("payload");
    write(&src, "inner/file.txt", "from the tarball\n");
    tool(
        Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-czf")
            .arg(c.join("payload.tar.gz"))
            .arg("."),
    );
    fs::remove_dir_all(&src).unwrap();
    write(
        c,
        "Dockerfile",
        "FROM bb:1\nADD payload.tar.gz /opt/\nRUN cat /opt/inner/file.txt > /copied\n",
    );
    let (id, _) = build(&b, c, &[]);
    assert_eq!(file_in_image(&b, &id, "/copied"), "from the tarball\n");
}

#[test]
fn images_move_between_berth_and_podman() {
    if !berth_testutil::is_root() || !have("podman") {
        eprintln!("skipped: needs root and podman");
        return;
    }
    let b = Berth::new();
    import_busybox(&b, "bb:1");
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM bb:1\nRUN echo built-by-berth > /msg\nCMD [\"cat\", \"/msg\"]\n",
    );
    build(&b, ctx.path(), &["-t", "localhost/interop:1"]);
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("interop.tar");
    b.ok(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "localhost/interop:1",
    ]);
    let pdir = tempfile::tempdir().unwrap();
    tool(podman(pdir.path()).args(["load", "-i", archive.to_str().unwrap()]));
    let out = tool(podman(pdir.path()).args([
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "localhost/interop:1",
    ]));
    assert_eq!(out.trim(), "built-by-berth");
    // And back: a podman-made image loads into berth and runs a RUN step.
    let ctx2 = tempfile::tempdir().unwrap();
    write(
        ctx2.path(),
        "Containerfile",
        "FROM localhost/interop:1\nRUN echo podman-side > /p\n",
    );
    tool(podman(pdir.path()).args([
        "build",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "-t",
        "localhost/frompodman:1",
        ctx2.path().to_str().unwrap(),
    ]));
    let parchive = tmp.path().join("podman.tar");
    tool(podman(pdir.path()).args([
        "save",
        "-o",
        parchive.to_str().unwrap(),
        "localhost/frompodman:1",
    ]));
    let c = Berth::new();
    c.ok(&["load", "-i", parchive.to_str().unwrap()]);
    let ctx3 = tempfile::tempdir().unwrap();
    write(
        ctx3.path(),
        "Containerfile",
        "FROM localhost/frompodman:1\nRUN cat /p /msg > /both\n",
    );
    let (id, _) = build(&c, ctx3.path(), &[]);
    assert_eq!(
        file_in_image(&c, &id, "/both"),
        "podman-side\nbuilt-by-berth\n"
    );
    // Clean podman's private storage (its vfs layers may be root-owned).
    let _ = podman(pdir.path()).args(["system", "reset", "-f"]).output();
}

#[test]
fn shell_and_user_apply_to_run() {
    if !berth_testutil::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let b = Berth::new();
    import_busybox(&b, "bb:1");
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Containerfile",
        "FROM bb:1\n\
         WORKDIR /w\n\
         RUN chmod 0777 /w\n\
         SHELL [\"/bin/sh\", \"-ec\"]\n\
         USER nobody\n\
         RUN echo \"$(id -u):$(id -g) $0\" > /w/who\n\
         USER root\n\
         RUN cat /w/who /nonexistent || true\n",
    );
    let (id, _) = build(&b, ctx.path(), &[]);
    assert_eq!(file_in_image(&b, &id, "/w/who"), "65534:65534 /bin/sh\n");
    write(
        ctx.path(),
        "Containerfile",
        "FROM bb:1\nCOPY --from=bb:1 /no/such/file /x\n",
    );
    let err = b.fails(&["build", ctx.path().to_str().unwrap()]);
    assert!(
        err.contains("/no/such/file") && err.contains("line 2"),
        "{err}"
    );
}
