//! Turning a stage's [`StageConfig`] into the `config` object of an OCI /
//! Docker image config (<https://github.com/opencontainers/image-spec/blob/main/config.md>),
//! on top of the base image's. Docker-only keys (`Healthcheck`, `OnBuild`,
//! `Shell`) use the names Docker writes, which OCI tools preserve.

use serde_json::{Map, Value, json};

use super::plan::StageConfig;

fn set_map_entries(obj: &mut Map<String, Value>, key: &str, names: impl Iterator<Item = String>) {
    let mut entries = obj
        .get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut changed = false;
    for name in names {
        entries.insert(name, json!({}));
        changed = true;
    }
    if changed {
        obj.insert(key.to_string(), Value::Object(entries));
    }
}

/// The image's `config` object: `base` (the base image's `config`, or
/// `Value::Null` for scratch) with what the stage changed applied.
pub fn container_config(base: &Value, stage: &StageConfig) -> Value {
    let mut obj = base.as_object().cloned().unwrap_or_default();
    if !stage.env.is_empty() {
        let env: Vec<Value> = stage
            .env
            .iter()
            .map(|(k, v)| Value::String(format!("{k}={v}")))
            .collect();
        obj.insert("Env".into(), Value::Array(env));
    }
    if let Some(w) = &stage.workdir {
        obj.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &stage.user {
        obj.insert("User".into(), json!(u));
    }
    if let Some(e) = &stage.entrypoint {
        obj.insert("Entrypoint".into(), json!(e));
    }
    match (&stage.cmd, stage.cmd_cleared) {
        (Some(c), _) => {
            obj.insert("Cmd".into(), json!(c));
        }
        (None, true) => {
            obj.remove("Cmd");
        }
        (None, false) => {}
    }
    set_map_entries(
        &mut obj,
        "ExposedPorts",
        stage.exposed_ports.iter().cloned(),
    );
    set_map_entries(&mut obj, "Volumes", stage.volumes.iter().cloned());
    if !stage.labels.is_empty() {
        let mut labels = obj
            .get("Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in &stage.labels {
            labels.insert(k.clone(), json!(v));
        }
        obj.insert("Labels".into(), Value::Object(labels));
    }
    if let Some(s) = &stage.stop_signal {
        obj.insert("StopSignal".into(), json!(s));
    }
    if let Some(shell) = &stage.shell {
        obj.insert("Shell".into(), json!(shell));
    }
    if let Some(h) = &stage.healthcheck {
        let mut hc = Map::new();
        hc.insert("Test".into(), json!(h.test));
        let durations = [
            ("Interval", h.interval_ns),
            ("Timeout", h.timeout_ns),
            ("StartPeriod", h.start_period_ns),
            ("StartInterval", h.start_interval_ns),
        ];
        for (key, value) in durations {
            if let Some(ns) = value {
                hc.insert(key.into(), json!(ns));
            }
        }
        if let Some(r) = h.retries {
            hc.insert("Retries".into(), json!(r));
        }
        obj.insert("Healthcheck".into(), Value::Object(hc));
    }
    // Triggers of the base have fired; only this stage's are recorded.
    if stage.onbuild.is_empty() {
        obj.remove("OnBuild");
    } else {
        obj.insert("OnBuild".into(), json!(stage.onbuild));
    }
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::super::plan::{BaseImageInfo, BuildOptions, plan_build};
    use super::*;

    fn stage_config(text: &str) -> StageConfig {
        let plan = plan_build(&parse(text).unwrap(), &BuildOptions::default(), &mut |_| {
            Ok(BaseImageInfo {
                env: vec![("PATH".into(), "/bin".into())],
                ..Default::default()
            })
        })
        .unwrap();
        plan.stages[plan.target].config.clone()
    }

    #[test]
    fn applies_changes_over_the_base() {
        let base = json!({
            "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "ExposedPorts": {"22/tcp": {}},
            "Labels": {"from": "base"}, "OnBuild": ["RUN base-trigger"], "WorkingDir": "/"
        });
        let text = "FROM base\nENV A=1\nWORKDIR /app\nUSER app\nEXPOSE 80\nLABEL x=y\nVOLUME /data\nSTOPSIGNAL SIGINT\nSHELL [\"/bin/bash\",\"-c\"]\nHEALTHCHECK --interval=5s CMD true\nONBUILD RUN make\nENTRYPOINT [\"/app/run\"]\n";
        let c = container_config(&base, &stage_config(text));
        assert_eq!(c["Env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(c["WorkingDir"], "/app");
        assert_eq!(c["User"], "app");
        assert_eq!(c["Entrypoint"], json!(["/app/run"]));
        // ENTRYPOINT clears the inherited CMD.
        assert!(c.get("Cmd").is_none());
        assert_eq!(c["ExposedPorts"], json!({"22/tcp": {}, "80/tcp": {}}));
        assert_eq!(c["Labels"], json!({"from": "base", "x": "y"}));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
        assert_eq!(c["Shell"], json!(["/bin/bash", "-c"]));
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000u64})
        );
        assert_eq!(c["OnBuild"], json!(["RUN make"]));
    }

    #[test]
    fn untouched_fields_are_inherited_and_scratch_starts_empty() {
        let base = json!({"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "OnBuild": ["RUN x"]});
        let c = container_config(&base, &stage_config("FROM base\nRUN true\n"));
        assert_eq!(c["Cmd"], json!(["/bin/sh"]));
        assert!(c.get("OnBuild").is_none());
        let c = container_config(&Value::Null, &stage_config("FROM scratch\nCMD [\"/x\"]\n"));
        assert_eq!(c, json!({"Cmd": ["/x"]}));
    }
}
