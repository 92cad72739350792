//! Config changes for `import --change` / `commit --change`: the subset of
//! Dockerfile instructions Docker accepts there (CMD, ENTRYPOINT, ENV,
//! EXPOSE, LABEL, ONBUILD is not supported, STOPSIGNAL, USER, VOLUME,
//! WORKDIR), applied to an image's [`ContainerConfig`].

use crate::error::{Error, Result};
use crate::spec::ContainerConfig;

/// One parsed `--change` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Env(Vec<(String, String)>),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    StopSignal(String),
    User(String),
    Volume(Vec<String>),
    Workdir(String),
}

fn bad(input: &str, reason: &str) -> Error {
    Error::malformed(format!("change {input:?}"), reason)
}

/// JSON array form, or shell form wrapped in `/bin/sh -c`.
fn command(input: &str, args: &str) -> Result<Vec<String>> {
    if args.trim_start().starts_with('[') {
        serde_json::from_str(args).map_err(|e| bad(input, &format!("bad JSON array: {e}")))
    } else {
        Ok(vec!["/bin/sh".into(), "-c".into(), args.to_string()])
    }
}

fn pairs(input: &str, args: &str) -> Result<Vec<(String, String)>> {
    if !args.contains('=') {
        // Legacy `ENV key value` form.
        let (k, v) = args
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(input, "want KEY=VALUE"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    args.split_whitespace()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| bad(input, "want KEY=VALUE"))?;
            if k.is_empty() {
                return Err(bad(input, "empty key"));
            }
            Ok((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

impl Change {
    /// Parses one instruction such as `CMD ["sh"]` or `ENV A=1 B=2`.
    pub fn parse(input: &str) -> Result<Change> {
        let trimmed = input.trim();
        let (word, args) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        let args = args.trim();
        if args.is_empty() {
            return Err(bad(input, "missing arguments"));
        }
        Ok(match word.to_ascii_uppercase().as_str() {
            "CMD" => Change::Cmd(command(input, args)?),
            "ENTRYPOINT" => Change::Entrypoint(command(input, args)?),
            "ENV" => Change::Env(pairs(input, args)?),
            "LABEL" => Change::Label(pairs(input, args)?),
            "EXPOSE" => Change::Expose(
                args.split_whitespace()
                    .map(|p| {
                        if p.contains('/') {
                            p.to_string()
                        } else {
                            format!("{p}/tcp")
                        }
                    })
                    .collect(),
            ),
            "STOPSIGNAL" => Change::StopSignal(args.to_string()),
            "USER" => Change::User(args.to_string()),
            "VOLUME" => Change::Volume(if args.starts_with('[') {
                serde_json::from_str(args)
                    .map_err(|e| bad(input, &format!("bad JSON array: {e}")))?
            } else {
                args.split_whitespace().map(str::to_string).collect()
            }),
            "WORKDIR" => Change::Workdir(args.to_string()),
            other => return Err(bad(input, &format!("unsupported instruction {other}"))),
        })
    }

    /// Applies the change to `cfg`.
    pub fn apply(&self, cfg: &mut ContainerConfig) {
        match self {
            Change::Cmd(c) => cfg.cmd = Some(c.clone()),
            Change::Entrypoint(e) => cfg.entrypoint = Some(e.clone()),
            Change::Env(kv) => {
                let env = cfg.env.get_or_insert_with(Vec::new);
                for (k, v) in kv {
                    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                    env.push(format!("{k}={v}"));
                }
            }
            Change::Label(kv) => {
                let labels = cfg.labels.get_or_insert_with(Default::default);
                for (k, v) in kv {
                    labels.insert(k.clone(), v.clone());
                }
            }
            Change::Expose(ports) => {
                let map = cfg.exposed_ports.get_or_insert_with(Default::default);
                for p in ports {
                    map.insert(p.clone(), serde_json::json!({}));
                }
            }
            Change::StopSignal(s) => cfg.stop_signal = Some(s.clone()),
            Change::User(u) => cfg.user = Some(u.clone()),
            Change::Volume(vs) => {
                let map = cfg.volumes.get_or_insert_with(Default::default);
                for v in vs {
                    map.insert(v.clone(), serde_json::json!({}));
                }
            }
            Change::Workdir(w) => cfg.working_dir = Some(w.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_applies() {
        let mut cfg = ContainerConfig {
            env: Some(vec!["PATH=/bin".into(), "A=0".into()]),
            ..Default::default()
        };
        for c in [
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /init",
            "ENV A=1 B=2",
            "LABEL version=1.0",
            "EXPOSE 80 53/udp",
            "WORKDIR /srv",
            "USER nobody",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
        ] {
            Change::parse(c).unwrap().apply(&mut cfg);
        }
        assert_eq!(cfg.cmd.unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!(cfg.entrypoint.unwrap(), ["/bin/sh", "-c", "/init"]);
        assert_eq!(cfg.env.unwrap(), ["PATH=/bin", "A=1", "B=2"]);
        assert_eq!(cfg.labels.unwrap()["version"], "1.0");
        assert!(cfg.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert!(cfg.exposed_ports.unwrap().contains_key("53/udp"));
        assert_eq!(cfg.working_dir.as_deref(), Some("/srv"));
        assert_eq!(cfg.user.as_deref(), Some("nobody"));
        assert!(cfg.volumes.unwrap().contains_key("/data"));
        assert_eq!(cfg.stop_signal.as_deref(), Some("SIGINT"));
    }

    #[test]
    fn refuses_unknown_or_empty() {
        assert!(
            Change::parse("RUN rm -rf /")
                .unwrap_err()
                .to_string()
                .contains("RUN")
        );
        assert!(Change::parse("CMD").is_err());
        assert!(Change::parse("CMD [broken").is_err());
    }
}
