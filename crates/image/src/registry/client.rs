//! The HTTP side of the distribution spec
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md>):
//! endpoint selection (HTTPS, or plain HTTP only for loopback registries or
//! with `tls_verify = false`), authentication with one retry after a 401,
//! and the shared request helper used by pull, push and login.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use ureq::Agent;
use ureq::http::Response;

use super::auth::{
    Challenge, basic_header, parse_token_response, parse_www_authenticate, preferred, token_url,
};
use super::credentials::{CredentialStore, Credentials};
use super::error::RegistryError;
use super::reference::api_host;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Verify TLS certificates; `false` also allows plain HTTP to any host
    /// (`--tls-verify=false`).
    pub tls_verify: bool,
    /// The credentials file (`login`/`logout` write it; requests read it).
    pub credentials_path: Option<PathBuf>,
    /// Blob transfers running at once.
    pub max_parallel: usize,
    /// Upload blobs larger than this in PATCH chunks of this size;
    /// `0` always uploads monolithically.
    pub chunk_size: u64,
    /// Platform chosen from an index.
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// Connect timeout (per request).
    pub connect_timeout: Duration,
    /// How long to wait for a response's status line and headers (a stalled
    /// registry fails instead of hanging; bodies may take longer).
    pub response_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            tls_verify: true,
            credentials_path: None,
            max_parallel: 3,
            chunk_size: 32 * 1024 * 1024,
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            connect_timeout: Duration::from_secs(15),
            response_timeout: Duration::from_secs(120),
        }
    }
}

/// One way of reaching a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https { verify: bool },
    Http,
}

/// Whether `host` (with optional `:port`) is a loopback name or address.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else if host.matches(':').count() > 1 {
        // A bare IPv6 address (no port possible without brackets).
        host
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    if name == "localhost" {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The transports to try, in order, for a registry host (a pure decision):
/// HTTPS always first; plain HTTP as fallback only for loopback hosts or
/// when TLS verification is off.
pub fn transports_for(host: &str, tls_verify: bool) -> Vec<Transport> {
    if is_loopback(host) || !tls_verify {
        vec![Transport::Https { verify: tls_verify }, Transport::Http]
    } else {
        vec![Transport::Https { verify: true }]
    }
}

/// Whether a `GET /v2/` status shows a registry speaking the distribution
/// API: 200, or 401 (auth needed).
pub fn is_registry_answer(status: u16) -> bool {
    matches!(status, 200 | 401)
}

/// The error for a registry none of whose transports answered: for a
/// remote host with TLS verification on, say that plain HTTP was not tried.
pub fn unreachable_error(
    registry: &str,
    host: &str,
    tls_verify: bool,
    failures: &[String],
) -> RegistryError {
    if !is_loopback(host) && tls_verify {
        RegistryError::InsecureNotAllowed {
            registry: registry.to_string(),
            message: failures.join("; "),
        }
    } else {
        let mut message = failures.join("; ");
        if tls_verify && message.contains("certificate") {
            message.push_str(
                " (for a registry with a self-signed certificate use --tls-verify=false)",
            );
        }
        RegistryError::Transport {
            context: format!("reaching registry {registry}"),
            url: format!("{host}/v2/"),
            message,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Endpoint {
    /// `scheme://host[:port]`.
    pub(crate) base: String,
    pub(crate) agent: Agent,
}

struct HostState {
    endpoint: Endpoint,
    challenge: Option<Challenge>,
    /// Bearer tokens by scope set.
    tokens: HashMap<String, String>,
}

/// HTTP methods used against registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
}

/// A request body.
pub(crate) enum ReqBody<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream and its length; cannot be replayed after a 401.
    Stream(&'a mut dyn Read, u64),
}

pub(crate) struct Req<'a> {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: ReqBody<'a>,
}

impl<'a> Req<'a> {
    pub(crate) fn new(method: Method, url: String) -> Self {
        Self {
            method,
            url,
            headers: Vec::new(),
            body: ReqBody::Empty,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: ReqBody<'a>) -> Self {
        self.body = body;
        self
    }
}

/// A registry client. Cheap to share across threads (`&Client` is `Sync`).
pub struct Client {
    pub(crate) options: ClientOptions,
    verifying: Agent,
    insecure: Agent,
    store: Option<CredentialStore>,
    explicit: Mutex<HashMap<String, Credentials>>,
    hosts: Mutex<HashMap<String, HostState>>,
}

fn agent(verify: bool, options: &ClientOptions) -> Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .disable_verification(!verify)
        .build();
    Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls)
        .timeout_connect(Some(options.connect_timeout))
        .timeout_recv_response(Some(options.response_timeout))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

pub(crate) fn header_str(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Up to 4 KiB of a response body, for error messages.
pub(crate) fn error_body(resp: &mut Response<ureq::Body>) -> String {
    let text = resp
        .body_mut()
        .with_config()
        .limit(4096)
        .read_to_string()
        .unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text.to_string()
    }
}

impl Client {
    pub fn new(options: ClientOptions) -> Self {
        let store = options.credentials_path.clone().map(CredentialStore::new);
        Self {
            verifying: agent(true, &options),
            insecure: agent(false, &options),
            options,
            store,
            explicit: Mutex::new(HashMap::new()),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Use these credentials for `registry` instead of stored ones
    /// (`--creds user:pass`).
    pub fn set_credentials(&self, registry: &str, credentials: Credentials) {
        self.lock_explicit()
            .insert(registry.to_string(), credentials);
    }

    fn lock_explicit(&self) -> std::sync::MutexGuard<'_, HashMap<String, Credentials>> {
        self.explicit.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_hosts(&self) -> std::sync::MutexGuard<'_, HashMap<String, HostState>> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(c) = self.lock_explicit().get(registry) {
            return Ok(Some(c.clone()));
        }
        match &self.store {
            Some(store) => store.get(registry),
            None => Ok(None),
        }
    }

    pub fn credential_store(&self) -> Option<&CredentialStore> {
        self.store.as_ref()
    }

    /// Find how to reach `registry` (probing `GET /v2/` once per client),
    /// remembering any authentication challenge it answers with.
    pub(crate) fn endpoint(&self, registry: &str) -> Result<Endpoint, RegistryError> {
        if let Some(h) = self.lock_hosts().get(registry) {
            return Ok(h.endpoint.clone());
        }
        let host = api_host(registry);
        let mut failures = Vec::new();
        for transport in transports_for(host, self.options.tls_verify) {
            let (base, agent) = match transport {
                Transport::Https { verify: true } => (format!("https://{host}"), &self.verifying),
                Transport::Https { verify: false } => (format!("https://{host}"), &self.insecure),
                Transport::Http => (format!("http://{host}"), &self.insecure),
            };
            let url = format!("{base}/v2/");
            match agent.get(&url).call() {
                // Only a registry's answer counts: a plain-HTTP request to a
                // TLS port, say, gets a 400 and must not pick that transport.
                Ok(mut resp) if !is_registry_answer(resp.status().as_u16()) => {
                    let status = resp.status().as_u16();
                    failures.push(format!("{url}: HTTP {status}: {}", error_body(&mut resp)));
                }
                Ok(resp) => {
                    let challenge = if resp.status().as_u16() == 401 {
                        header_str(&resp, "www-authenticate")
                            .and_then(|h| parse_www_authenticate(&h).ok())
                            .and_then(|c| preferred(&c).cloned())
                    } else {
                        None
                    };
                    let endpoint = Endpoint {
                        base,
                        agent: agent.clone(),
                    };
                    self.lock_hosts().insert(
                        registry.to_string(),
                        HostState {
                            endpoint: endpoint.clone(),
                            challenge,
                            tokens: HashMap::new(),
                        },
                    );
                    return Ok(endpoint);
                }
                Err(e) => failures.push(format!("{url}: {e}")),
            }
        }
        Err(unreachable_error(
            registry,
            host,
            self.options.tls_verify,
            &failures,
        ))
    }

    /// The Authorization header for `scopes`, fetching a token if the
    /// registry wants Bearer auth (`refresh` ignores a cached token).
    fn authorization(
        &self,
        registry: &str,
        scopes: &[String],
        refresh: bool,
    ) -> Result<Option<String>, RegistryError> {
        let (challenge, cached, endpoint) = {
            let hosts = self.lock_hosts();
            let Some(h) = hosts.get(registry) else {
                return Ok(None);
            };
            (
                h.challenge.clone(),
                h.tokens.get(&scopes.join(" ")).cloned(),
                h.endpoint.clone(),
            )
        };
        let creds = self.credentials_for(registry)?;
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic { .. }) => {
                Ok(creds.map(|c| basic_header(&c.username, &c.password)))
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                if let (Some(token), false) = (cached, refresh) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                // Ask for the scopes this request needs; the challenge's own
                // scope only when the caller named none.
                let all: Vec<String> = match (scopes.is_empty(), scope) {
                    (true, Some(s)) => vec![s],
                    _ => scopes.to_vec(),
                };
                let token = self.fetch_token(
                    registry,
                    &endpoint,
                    &realm,
                    service.as_deref(),
                    &all,
                    creds.as_ref(),
                )?;
                self.lock_hosts()
                    .get_mut(registry)
                    .map(|h| h.tokens.insert(scopes.join(" "), token.clone()));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn fetch_token(
        &self,
        registry: &str,
        endpoint: &Endpoint,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: Option<&Credentials>,
    ) -> Result<String, RegistryError> {
        let url = token_url(realm, service, scopes);
        let mut req = endpoint.agent.get(&url);
        if let Some(c) = creds {
            req = req.header("Authorization", basic_header(&c.username, &c.password));
        }
        let context = format!("fetching a token for {registry}");
        let mut resp = req.call().map_err(|e| RegistryError::Transport {
            context: context.clone(),
            url: url.clone(),
            message: e.to_string(),
        })?;
        match resp.status().as_u16() {
            200 => {}
            401 | 403 => {
                return Err(RegistryError::Unauthorized {
                    context,
                    registry: registry.to_string(),
                    message: if creds.is_some() {
                        "the token server rejected the stored credentials".into()
                    } else {
                        format!(
                            "no credentials are stored (run `berth login {registry}`): {}",
                            error_body(&mut resp)
                        )
                    },
                });
            }
            status => {
                return Err(RegistryError::Status {
                    context,
                    url,
                    status,
                    body: error_body(&mut resp),
                });
            }
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| RegistryError::Transport {
                context: context.clone(),
                url: url.clone(),
                message: e.to_string(),
            })?;
        parse_token_response(&body).map_err(|message| RegistryError::BadChallenge {
            registry: registry.to_string(),
            message,
        })
    }

    fn send_once(
        agent: &Agent,
        req: &mut Req<'_>,
        auth: Option<&str>,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        macro_rules! with_headers {
            ($b:expr) => {{
                let mut b = $b;
                for (k, v) in &req.headers {
                    b = b.header(*k, v.as_str());
                }
                if let Some(a) = auth {
                    b = b.header("Authorization", a);
                }
                b
            }};
        }
        match req.method {
            Method::Get => with_headers!(agent.get(&req.url)).call(),
            Method::Head => with_headers!(agent.head(&req.url)).call(),
            m => {
                let b = match m {
                    Method::Post => agent.post(&req.url),
                    Method::Put => agent.put(&req.url),
                    _ => agent.patch(&req.url),
                };
                let b = with_headers!(b);
                match &mut req.body {
                    ReqBody::Empty => b.header("Content-Length", "0").send_empty(),
                    ReqBody::Bytes(bytes) => b.send(*bytes),
                    ReqBody::Stream(reader, len) => b
                        .header("Content-Length", len.to_string())
                        .send(ureq::SendBody::from_reader(*reader)),
                }
            }
        }
    }

    /// Send `req` to `registry` with authentication for `scopes`; on a 401
    /// the challenge is re-read, credentials/token renewed and a replayable
    /// request retried once.
    pub(crate) fn call(
        &self,
        registry: &str,
        mut req: Req<'_>,
        scopes: &[String],
        context: &str,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let endpoint = self.endpoint(registry)?;
        let transport = |url: &str, e: ureq::Error| RegistryError::Transport {
            context: context.to_string(),
            url: url.to_string(),
            message: e.to_string(),
        };
        let auth = self.authorization(registry, scopes, false)?;
        let resp = Self::send_once(&endpoint.agent, &mut req, auth.as_deref())
            .map_err(|e| transport(&req.url, e))?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        if let Some(c) = header_str(&resp, "www-authenticate")
            .and_then(|h| parse_www_authenticate(&h).ok())
            .and_then(|c| preferred(&c).cloned())
            && let Some(h) = self.lock_hosts().get_mut(registry)
        {
            h.challenge = Some(c);
        }
        let replayable = !matches!(req.body, ReqBody::Stream(..));
        let new_auth = self.authorization(registry, scopes, true)?;
        let unauthorized = |message: String| RegistryError::Unauthorized {
            context: context.to_string(),
            registry: registry.to_string(),
            message,
        };
        match new_auth {
            None => Err(unauthorized(format!(
                "no credentials are stored (run `berth login {registry}`)"
            ))),
            Some(_) if !replayable => Err(unauthorized(
                "the registry refused the request body's credentials".into(),
            )),
            Some(a) => {
                let resp = Self::send_once(&endpoint.agent, &mut req, Some(&a))
                    .map_err(|e| transport(&req.url, e))?;
                if resp.status().as_u16() == 401 {
                    return Err(unauthorized("the credentials were rejected".into()));
                }
                Ok(resp)
            }
        }
    }

    /// Base URL (`scheme://host`) for a registry.
    pub(crate) fn base_url(&self, registry: &str) -> Result<String, RegistryError> {
        Ok(self.endpoint(registry)?.base)
    }

    /// Check `credentials` against `registry` and store them (`berth login`).
    pub fn login(&self, registry: &str, credentials: &Credentials) -> Result<(), RegistryError> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| RegistryError::LoginFailed {
                registry: registry.to_string(),
                message: "no credentials file configured".into(),
            })?;
        let endpoint = self.endpoint(registry)?;
        let challenge = self
            .lock_hosts()
            .get(registry)
            .and_then(|h| h.challenge.clone());
        let failed = |message: String| RegistryError::LoginFailed {
            registry: registry.to_string(),
            message,
        };
        match challenge {
            None => {}
            Some(Challenge::Basic { .. }) => {
                let url = format!("{}/v2/", endpoint.base);
                let mut resp = endpoint
                    .agent
                    .get(&url)
                    .header(
                        "Authorization",
                        basic_header(&credentials.username, &credentials.password),
                    )
                    .call()
                    .map_err(|e| failed(format!("{url}: {e}")))?;
                match resp.status().as_u16() {
                    200 => {}
                    401 => return Err(failed("invalid username or password".into())),
                    s => {
                        return Err(failed(format!(
                            "{url}: HTTP {s}: {}",
                            error_body(&mut resp)
                        )));
                    }
                }
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                self.fetch_token(
                    registry,
                    &endpoint,
                    &realm,
                    service.as_deref(),
                    &[],
                    Some(credentials),
                )
                .map_err(|e| match e {
                    RegistryError::Unauthorized { .. } => {
                        failed("invalid username or password".into())
                    }
                    other => failed(other.to_string()),
                })?;
            }
        }
        store.store(registry, credentials)
    }

    /// Forget stored credentials (`berth logout`); `Ok(false)` if none.
    pub fn logout(&self, registry: &str) -> Result<bool, RegistryError> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| RegistryError::LoginFailed {
                registry: registry.to_string(),
                message: "no credentials file configured".into(),
            })?;
        self.lock_explicit().remove(registry);
        if let Some(h) = self.lock_hosts().get_mut(registry) {
            h.tokens.clear();
        }
        store.remove(registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_table() {
        let cases: &[(&str, bool)] = &[
            ("localhost", true),
            ("localhost:5000", true),
            ("127.0.0.1", true),
            ("127.0.0.1:5000", true),
            ("127.1.2.3:80", true),
            ("[::1]:5000", true),
            ("[::1]", true),
            ("::1", true),
            ("localhost.example.com", false),
            ("10.0.0.1:5000", false),
            ("registry-1.docker.io", false),
            ("quay.io:443", false),
        ];
        for (host, want) in cases {
            assert_eq!(is_loopback(host), *want, "{host}");
        }
    }

    #[test]
    fn registry_answers() {
        for (status, want) in [
            (200, true),
            (401, true),
            (400, false),
            (404, false),
            (502, false),
        ] {
            assert_eq!(is_registry_answer(status), want, "{status}");
        }
    }

    #[test]
    fn transport_table() {
        use Transport::*;
        let cases: Vec<(&str, bool, Vec<Transport>)> = vec![
            ("quay.io", true, vec![Https { verify: true }]),
            ("quay.io", false, vec![Https { verify: false }, Http]),
            ("localhost:5000", true, vec![Https { verify: true }, Http]),
            ("127.0.0.1:5000", false, vec![Https { verify: false }, Http]),
        ];
        for (host, verify, want) in cases {
            assert_eq!(transports_for(host, verify), want, "{host} {verify}");
        }
    }

    #[test]
    fn unreachable_errors() {
        let failures = vec!["https://quay.io/v2/: connection refused".to_string()];
        let e = unreachable_error("quay.io", "quay.io", true, &failures).to_string();
        assert!(e.contains("registry quay.io: HTTPS failed"), "{e}");
        assert!(
            e.contains("plain HTTP is only used for localhost or with --tls-verify=false"),
            "{e}"
        );
        let e = unreachable_error("quay.io", "quay.io", false, &failures).to_string();
        assert!(e.starts_with("reaching registry quay.io"), "{e}");
        let e = unreachable_error("localhost:1", "localhost:1", true, &failures).to_string();
        assert!(e.starts_with("reaching registry localhost:1"), "{e}");
        assert!(!e.contains("--tls-verify"), "{e}");
        let cert =
            vec!["https://localhost:1/v2/: invalid peer certificate: UnknownIssuer".to_string()];
        let e = unreachable_error("localhost:1", "localhost:1", true, &cert).to_string();
        assert!(
            e.contains("self-signed certificate use --tls-verify=false"),
            "{e}"
        );
    }
}
