//! `--network` modes, parsed (pure).

use crate::error::{NetError, Result};

/// How a container is networked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// Own sandbox attached to these networks, in order (the first gives
    /// the default route). `bridge` names the default network.
    Networks(Vec<String>),
    /// Own sandbox with loopback only.
    None,
    /// The host's network namespace: no sandbox at all.
    Host,
    /// Join the sandbox of another container.
    Container(String),
}

impl NetworkMode {
    /// Parses the values of (possibly repeated) `--network` flags. `none`,
    /// `host` and `container:ID` must stand alone. An empty list means the
    /// default network.
    pub fn parse(values: &[&str], default_network: &str) -> Result<Self> {
        let single = |v: &str| -> Result<Option<NetworkMode>> {
            Ok(match v {
                "none" => Some(NetworkMode::None),
                "host" => Some(NetworkMode::Host),
                _ => match v.strip_prefix("container:") {
                    Some("") => return Err(NetError::InvalidMode(v.to_string())),
                    Some(id) => Some(NetworkMode::Container(id.to_string())),
                    None => None,
                },
            })
        };
        match values {
            [] => Ok(NetworkMode::Networks(vec![default_network.to_string()])),
            [v] => match single(v)? {
                Some(m) => Ok(m),
                None => Ok(NetworkMode::Networks(vec![network_name(
                    v,
                    default_network,
                )?])),
            },
            many => {
                let mut names = Vec::new();
                for v in many {
                    if single(v)?.is_some() {
                        return Err(NetError::InvalidMode(format!(
                            "{v} cannot be combined with other networks"
                        )));
                    }
                    let n = network_name(v, default_network)?;
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                Ok(NetworkMode::Networks(names))
            }
        }
    }
}

fn network_name(v: &str, default_network: &str) -> Result<String> {
    if v.is_empty() {
        return Err(NetError::InvalidMode(v.to_string()));
    }
    Ok(if v == "bridge" || v == "default" {
        default_network.to_string()
    } else {
        v.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let p = |v: &[&str]| NetworkMode::parse(v, "bridge");
        assert_eq!(
            p(&[]).unwrap(),
            NetworkMode::Networks(vec!["bridge".into()])
        );
        assert_eq!(p(&["none"]).unwrap(), NetworkMode::None);
        assert_eq!(p(&["host"]).unwrap(), NetworkMode::Host);
        assert_eq!(
            p(&["container:abc"]).unwrap(),
            NetworkMode::Container("abc".into())
        );
        assert_eq!(
            p(&["front", "back", "front"]).unwrap(),
            NetworkMode::Networks(vec!["front".into(), "back".into()])
        );
        assert!(p(&["container:"]).is_err());
        assert!(
            p(&["host", "front"])
                .unwrap_err()
                .to_string()
                .contains("cannot be combined")
        );
        assert!(p(&[""]).is_err());
    }
}
