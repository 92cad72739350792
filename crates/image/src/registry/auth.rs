//! Registry authentication: `WWW-Authenticate` challenges (RFC 7235 syntax),
//! Basic credentials, and the Docker token flow
//! (<https://distribution.github.io/distribution/spec/auth/token/>): on a
//! 401 with a Bearer challenge, GET `realm?service=…&scope=…` (with Basic
//! credentials when we have them) and retry with `Authorization: Bearer`.

use base64::Engine as _;
use serde::Deserialize;

/// One challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value: one or more `Scheme k=v, k="v"` groups.
/// Unknown schemes are skipped; an error is returned when nothing usable
/// remains or the syntax is broken.
pub fn parse_www_authenticate(header: &str) -> Result<Vec<Challenge>, String> {
    let mut out = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == ',')
            .unwrap_or(rest.len());
        let scheme = &rest[..end];
        rest = rest[end..].trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        let mut params: Vec<(String, String)> = Vec::new();
        // Parameters continue while the next token is `name=`.
        while let Some(eq) = rest.find('=') {
            let name = &rest[..eq];
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ',') {
                break;
            }
            let after = &rest[eq + 1..];
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut close = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => {
                            close = Some(i);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let close = close.ok_or_else(|| format!("unterminated quoted value for {name}"))?;
                (value, &quoted[close + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            params.push((name.to_ascii_lowercase(), value));
            rest = remaining.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        }
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => out.push(Challenge::Basic {
                realm: get("realm"),
            }),
            "bearer" => out.push(Challenge::Bearer {
                realm: get("realm").ok_or("Bearer challenge without realm")?,
                service: get("service"),
                scope: get("scope"),
            }),
            "" => return Err("empty authentication scheme".into()),
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(format!(
            "no supported challenge (Basic or Bearer) in {header:?}"
        ));
    }
    Ok(out)
}

/// The challenge to answer: Bearer is preferred over Basic.
pub fn preferred(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges
        .iter()
        .find(|c| matches!(c, Challenge::Bearer { .. }))
        .or_else(|| challenges.first())
}

/// `repository:NAME:ACTIONS` scope.
pub fn repository_scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

/// `Basic base64(user:pass)`.
pub fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Percent-encode a query component (RFC 3986 unreserved characters kept).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token endpoint URL for a Bearer challenge and the scopes we need.
pub fn token_url(realm: &str, service: Option<&str>, scopes: &[String]) -> String {
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    if let Some(s) = service {
        url.push_str(&format!("{sep}service={}", percent_encode(s)));
        sep = '&';
    }
    for scope in scopes {
        url.push_str(&format!("{sep}scope={}", percent_encode(scope)));
        sep = '&';
    }
    url
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

/// The token from a token-endpoint response (`token` or `access_token`).
pub fn parse_token_response(body: &[u8]) -> Result<String, String> {
    let r: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("malformed token response: {e}"))?;
    r.token
        .or(r.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "token response has neither \"token\" nor \"access_token\"".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_table() {
        let cases: Vec<(&str, Vec<Challenge>)> = vec![
            (
                r#"Basic realm="Registry Realm""#,
                vec![Challenge::Basic {
                    realm: Some("Registry Realm".into()),
                }],
            ),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                vec![Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                    scope: Some("repository:library/busybox:pull".into()),
                }],
            ),
            (
                r#"bearer realm=http://127.0.0.1:9/t, service=reg"#,
                vec![Challenge::Bearer {
                    realm: "http://127.0.0.1:9/t".into(),
                    service: Some("reg".into()),
                    scope: None,
                }],
            ),
            (
                r#"Bearer realm="r",scope="repository:a:pull,push" , Basic realm="x""#,
                vec![
                    Challenge::Bearer {
                        realm: "r".into(),
                        service: None,
                        scope: Some("repository:a:pull,push".into()),
                    },
                    Challenge::Basic {
                        realm: Some("x".into()),
                    },
                ],
            ),
            (
                r#"Basic realm="say \"hi\"""#,
                vec![Challenge::Basic {
                    realm: Some("say \"hi\"".into()),
                }],
            ),
            ("Basic", vec![Challenge::Basic { realm: None }]),
            (
                r#"Negotiate abc, Basic realm="r""#,
                vec![Challenge::Basic {
                    realm: Some("r".into()),
                }],
            ),
        ];
        for (header, want) in cases {
            assert_eq!(parse_www_authenticate(header).unwrap(), want, "{header}");
        }
    }

    #[test]
    fn challenge_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "no supported challenge"),
            ("Negotiate", "no supported challenge"),
            (r#"Bearer service="x""#, "without realm"),
            (r#"Basic realm="open"#, "unterminated"),
        ];
        for (header, needle) in cases {
            let e = parse_www_authenticate(header).unwrap_err();
            assert!(e.contains(needle), "{header}: {e}");
        }
    }

    #[test]
    fn preferred_challenge() {
        let c = parse_www_authenticate(r#"Basic realm="b", Bearer realm="t""#).unwrap();
        assert!(matches!(preferred(&c), Some(Challenge::Bearer { .. })));
    }

    #[test]
    fn token_urls() {
        let scopes = vec![
            repository_scope("a/b", "pull,push"),
            repository_scope("c", "pull"),
        ];
        assert_eq!(
            token_url("https://auth/token", Some("reg.io"), &scopes),
            "https://auth/token?service=reg.io&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=repository%3Ac%3Apull"
        );
        assert_eq!(
            token_url("http://x/t?a=1", None, &scopes[1..]),
            "http://x/t?a=1&scope=repository%3Ac%3Apull"
        );
    }

    #[test]
    fn token_responses() {
        assert_eq!(parse_token_response(br#"{"token":"abc"}"#).unwrap(), "abc");
        assert_eq!(
            parse_token_response(br#"{"access_token":"xyz","expires_in":300}"#).unwrap(),
            "xyz"
        );
        assert!(parse_token_response(br#"{"token":""}"#).is_err());
        assert!(parse_token_response(b"nope").is_err());
    }

    #[test]
    fn basic_header_encoding() {
        assert_eq!(basic_header("user", "pass"), "Basic dXNlcjpwYXNz");
    }
}
