//! events, system info/df/prune/check, completion, help, version.

mod common;

use common::Instance;

#[test]
fn events_info_df_prune_check() {
    let Some(b) = Instance::new() else { return };
    b.ok(&[
        "run",
        "--name",
        "ev",
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    let ev = b.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "type=container",
    ]);
    for action in ["create", "start", "die"] {
        assert!(ev.contains(&format!("container {action} ")), "{ev}");
    }
    let only = b.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "event=die",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(only, "die\n");
    let info = b.ok(&["info", "-f", "{{.Containers}} {{.Images}}"]);
    assert_eq!(info.trim(), "1 1");
    let df = b.ok(&["system", "df"]);
    assert!(
        df.contains("Images") && df.contains("Containers") && df.contains("Local Volumes"),
        "{df}"
    );
    let pruned = b.ok(&["system", "prune", "-f"]);
    assert!(pruned.contains("Deleted container"), "{pruned}");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert!(b.ok(&["system", "check"]).contains("nothing to repair"));
    b.ok(&["create", "--name", "p1", "busybox", "true"]);
    assert!(!b.ok(&["container", "prune", "-f"]).is_empty());
    assert_eq!(b.ok(&["container", "ls", "-aq"]), "");
}

#[test]
fn completion_help_and_version() {
    let Some(b) = Instance::new() else { return };
    for sh in ["bash", "zsh", "fish"] {
        let out = b.ok(&["completion", sh]);
        assert!(out.contains("berth") && out.len() > 1000, "{sh}");
    }
    for cmd in ["run", "ps", "logs", "exec", "stop", "volume", "system"] {
        let out = b.ok(&[cmd, "--help"]);
        assert!(out.contains("berth"), "{cmd}: {out}");
    }
    assert!(b.ok(&["run", "--help"]).contains("Examples:"));
    assert!(b.ok(&["version"]).contains("berth"));
    let o = b.run(&["stop", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such container: nope"));
    let o = b.run(&["logs", "nope"]);
    assert_eq!(o.status.code(), Some(125));
}
