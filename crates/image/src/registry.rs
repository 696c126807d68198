//! Registry client (OCI distribution-spec): manifests and blobs over HTTPS, or HTTP for insecure
//! registries; anonymous, Basic and Bearer-token authentication; docker.io mirrors.
//!
//! Endpoints: `docker.io` is served by `registry-1.docker.io` (after the configured mirrors, for
//! pulls). A registry is *insecure* when it is on loopback (`localhost`, `127.0.0.0/8`, `::1`),
//! listed in `insecure-registries`, or named with `--insecure`; as in docker, an insecure registry is
//! tried over HTTPS without certificate verification first, then over plain HTTP.
//!
//! Authentication follows the registry's `WWW-Authenticate` challenge to `GET /v2/`: `Basic` sends
//! the stored credentials; `Bearer` fetches a token from the challenge's realm for the repository
//! scope (`pull` or `pull,push`), with the credentials when there are some, anonymously otherwise,
//! and fetches a new one when a later request is refused (expiry, wider scope).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::credentials::{server_key, Credential, DockerConfig};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::names::{Name, DEFAULT_DOMAIN};
use crate::pull::{Fetcher, Pusher};

/// Where the registry configuration is read from unless `$SKIFF_REGISTRIES_CONFIG` names a file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/skiff/registries.json";
/// The environment variable naming another registry configuration file.
pub const CONFIG_ENV: &str = "SKIFF_REGISTRIES_CONFIG";
/// Where per-registry CA certificates and client certificates are looked for (after the
/// configured `certs-dir`), as docker does: `<dir>/<host[:port]>/*.crt`, `*.cert` + `*.key`.
pub const DOCKER_CERTS_DIR: &str = "/etc/docker/certs.d";
/// The default `certs-dir`.
pub const DEFAULT_CERTS_DIR: &str = "/etc/skiff/certs.d";
/// The host that serves `docker.io`'s API.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, application/json;q=0.1";
const MAX_MANIFEST: u64 = 16 << 20;
const ATTEMPTS: u32 = 3;

/// Registry settings, read from a JSON file with docker's `daemon.json` keys:
/// `{"registry-mirrors": ["https://mirror.example"], "insecure-registries": ["host:5000", "10.0.0.0/8"]}`,
/// plus skiff's `"certs-dir"` (default [`DEFAULT_CERTS_DIR`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Mirrors of docker.io (`scheme://host[:port]`), tried in order before docker.io on pulls.
    pub mirrors: Vec<String>,
    /// Registries (`host[:port]`, or an IPv4 CIDR) treated as insecure besides loopback.
    pub insecure: Vec<String>,
    /// Directory of per-registry certificates (`<host[:port]>/ca.crt`...); `None` is the default.
    pub certs_dir: Option<PathBuf>,
}

impl RegistryConfig {
    /// Reads `$SKIFF_REGISTRIES_CONFIG` or [`DEFAULT_CONFIG_PATH`]; an absent file is the defaults.
    pub fn load() -> Result<RegistryConfig> {
        match std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(p) => Self::load_from(Path::new(&p)),
            None => Self::load_from(Path::new(DEFAULT_CONFIG_PATH)),
        }
    }

    /// Reads the configuration file at `path`; an absent file is the defaults.
    pub fn load_from(path: &Path) -> Result<RegistryConfig> {
        let b = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::path("read", path, e)),
        };
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        Self::parse(&b).map_err(|why| Error::invalid(path.display().to_string(), why))
    }

    /// Parses the JSON text of a configuration file.
    pub fn parse(b: &[u8]) -> std::result::Result<RegistryConfig, String> {
        let v: Value = serde_json::from_slice(b).map_err(|e| e.to_string())?;
        let list = |k: &str| -> std::result::Result<Vec<String>, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("{k}: {x} is not a string"))
                    })
                    .collect(),
                Some(x) => Err(format!("{k}: {x} is not a list")),
            }
        };
        let mut mirrors = Vec::new();
        for m in list("registry-mirrors")? {
            let u = Url::parse(&m).map_err(|e| format!("invalid mirror {m:?}: {e}"))?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(format!("invalid mirror {m:?}: not an http(s) URL"));
            }
            if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
                return Err(format!(
                    "invalid mirror {m:?}: path, query, or fragment at end of the URI"
                ));
            }
            mirrors.push(m.trim_end_matches('/').to_string());
        }
        let certs_dir = match v.get("certs-dir") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(PathBuf::from(d)),
            Some(x) => return Err(format!("certs-dir: {x} is not a string")),
        };
        Ok(RegistryConfig {
            mirrors,
            insecure: list("insecure-registries")?,
            certs_dir,
        })
    }

    /// True when `host` (`host[:port]`) is reached without TLS verification (and over HTTP).
    pub fn is_insecure(&self, host: &str) -> bool {
        let bare = strip_port(host);
        if bare == "localhost" || bare == "::1" || bare.starts_with("127.") {
            return true;
        }
        self.insecure.iter().any(|e| {
            let e = e
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            e == host || e == bare || in_cidr(e, bare)
        })
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn in_cidr(cidr: &str, host: &str) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits), Ok(ip)) = (
        net.parse::<std::net::Ipv4Addr>(),
        bits.parse::<u32>(),
        host.parse::<std::net::Ipv4Addr>(),
    ) else {
        return false;
    };
    if bits > 32 {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(net) & mask == u32::from(ip) & mask
}

/// One way of reaching a registry: API host, the key its credentials are stored under, and the
/// (scheme, verify-TLS) pairs to try in order.
#[derive(Debug, Clone)]
struct Endpoint {
    host: String,
    key: String,
    schemes: Vec<(&'static str, bool)>,
}

/// An authentication challenge from `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer` (lowercased).
    pub scheme: String,
    /// The parameters (`realm`, `service`, `scope`, `error`...).
    pub params: BTreeMap<String, String>,
}

/// Parses `WWW-Authenticate` header values, preferring a Bearer challenge over Basic.
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let mut found: Vec<Challenge> = Vec::new();
    for v in values {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        let mut params = BTreeMap::new();
        let mut s = rest.trim();
        while !s.is_empty() {
            let Some((k, after)) = s.split_once('=') else {
                break;
            };
            let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
            let after = after.trim_start();
            let (val, tail) = if let Some(q) = after.strip_prefix('"') {
                let mut out = String::new();
                let mut end = q.len();
                let mut esc = false;
                for (i, c) in q.char_indices() {
                    if esc {
                        out.push(c);
                        esc = false;
                    } else if c == '\\' {
                        esc = true;
                    } else if c == '"' {
                        end = i + 1;
                        break;
                    } else {
                        out.push(c);
                    }
                }
                (out, &q[end.min(q.len())..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            params.insert(k, val);
            s = tail.trim_start().trim_start_matches(',').trim_start();
        }
        found.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    found
        .iter()
        .find(|c| c.scheme == "bearer")
        .or_else(|| found.iter().find(|c| c.scheme == "basic"))
        .cloned()
}

/// The token server URL a Bearer challenge names (its `realm`) and the host to pick certificates
/// for; `host` is the registry that sent the challenge.
pub fn token_realm(host: &str, ch: &Challenge) -> Result<(Url, String)> {
    let realm = ch.params.get("realm").ok_or_else(|| {
        Error::Registry(format!("registry {host}: bearer challenge without realm"))
    })?;
    let url = Url::parse(realm)
        .map_err(|e| Error::Registry(format!("registry {host}: token realm {realm:?}: {e}")))?;
    let realm_host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => host.to_string(),
    };
    Ok((url, realm_host))
}

/// The bearer token in a token server's JSON answer (`token`, else `access_token`).
pub fn parse_token_response(realm: &str, body: &str) -> Result<String> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| Error::Registry(format!("token server {realm}: {e}")))?;
    v.get("token")
        .or_else(|| v.get("access_token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::Registry(format!("token server {realm}: no token in the answer")))
}

#[derive(Debug, Clone)]
enum Auth {
    Anonymous,
    Basic(String),
    Bearer(String),
}

impl Auth {
    fn header(&self) -> Option<String> {
        match self {
            Auth::Anonymous => None,
            Auth::Basic(b) => Some(format!("Basic {b}")),
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
        }
    }
}

/// CA bundle files, and client certificate + key files, of one registry host.
type HostCerts = (Vec<PathBuf>, Vec<(PathBuf, PathBuf)>);

/// A live connection to one endpoint: base URL, TLS mode, challenge and current authorization.
#[derive(Debug, Clone)]
struct Conn {
    host: String,
    base: String,
    lax: bool,
    key: String,
    challenge: Option<Challenge>,
    auth: Auth,
}

type CredentialLookup = dyn Fn(&str) -> Result<Option<Credential>> + Send + Sync;

/// A registry client: shared HTTP connection pools, the registry configuration and a credential
/// source. Cheap to keep for a whole command. Blocking (reqwest's blocking client runs its own
/// small runtime thread): from async code, call it inside `tokio::task::spawn_blocking`.
pub struct Client {
    /// HTTP clients by (host with its own certificates or "", skip verification).
    http: Mutex<HashMap<(String, bool), Http>>,
    config: RegistryConfig,
    credentials: Box<CredentialLookup>,
}

/// Joins an error and its sources into one line, leaving out reqwest's and hyper's generic
/// wrappers ("error sending request for url (...)", "client error (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        let m = c.to_string();
        let generic =
            m.starts_with("error sending request for url") || m.starts_with("client error (");
        if !generic && !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = c.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

fn body_text(r: Response) -> String {
    body_text_limited(r, 64 * 1024)
}

fn body_text_limited(r: Response, max: u64) -> String {
    let mut s = String::new();
    let _ = r.take(max).read_to_string(&mut s);
    s
}

/// The first `code: message` of a distribution-spec error body, lowercased code as docker shows;
/// control characters of the (untrusted) body are escaped so the message stays one line.
pub fn registry_message(status: StatusCode, body: &str) -> String {
    crate::error::one_line(&body_message(status, body))
}

fn body_message(status: StatusCode, body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(e) = v.get("errors").and_then(|e| e.get(0)) {
            let code = e.get("code").and_then(Value::as_str).unwrap_or("");
            let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
            if !code.is_empty() {
                return format!("{}: {msg}", code.to_ascii_lowercase().replace('_', " "));
            }
        }
        for k in ["details", "error", "message"] {
            if let Some(m) = v.get(k).and_then(Value::as_str) {
                return m.to_string();
            }
        }
    }
    let b = body.trim();
    if b.is_empty() || b.len() > 200 {
        status.to_string()
    } else {
        format!("{status}: {b}")
    }
}

fn transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

impl Client {
    /// A client with `config`, taking credentials from docker's `config.json` (and its helpers).
    pub fn new(config: RegistryConfig, docker: DockerConfig) -> Client {
        Self::with_credentials(config, move |key| docker.get(key))
    }

    /// A client with an explicit credential lookup (by server key, see
    /// [`crate::credentials::server_key`]).
    pub fn with_credentials(
        config: RegistryConfig,
        f: impl Fn(&str) -> Result<Option<Credential>> + Send + Sync + 'static,
    ) -> Client {
        Client {
            http: Mutex::new(HashMap::new()),
            config,
            credentials: Box::new(f),
        }
    }

    /// The registry configuration in use.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The certificate files for `host` in the certs directories: CA bundles (`*.crt`) and
    /// client certificate/key pairs (`x.cert` + `x.key`).
    fn host_certs(&self, host: &str) -> Result<HostCerts> {
        let mut cas = Vec::new();
        let mut pairs = Vec::new();
        let dirs = [
            self.config
                .certs_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CERTS_DIR)),
            PathBuf::from(DOCKER_CERTS_DIR),
        ];
        for d in dirs {
            let dir = d.join(host);
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::path("read", &dir, e)),
            };
            let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            names.sort();
            for f in names {
                match f.extension().and_then(|e| e.to_str()) {
                    Some("crt") => cas.push(f),
                    Some("cert") => {
                        let key = f.with_extension("key");
                        if !key.exists() {
                            return Err(Error::invalid(
                                f.display().to_string(),
                                format!("missing key {}", key.display()),
                            ));
                        }
                        pairs.push((f, key));
                    }
                    _ => {}
                }
            }
            if !cas.is_empty() || !pairs.is_empty() {
                break;
            }
        }
        Ok((cas, pairs))
    }

    /// The HTTP client for `host`: certificate checks skipped when `lax`, else the system roots
    /// plus the host's own CA and client certificates from the certs directories.
    fn http(&self, host: &str, lax: bool) -> Result<Http> {
        let (cas, pairs) = if lax {
            (vec![], vec![])
        } else {
            self.host_certs(host)?
        };
        let key = if cas.is_empty() && pairs.is_empty() {
            (String::new(), lax)
        } else {
            (host.to_string(), lax)
        };
        let mut map = self
            .http
            .lock()
            .map_err(|_| Error::Registry("HTTP client lock poisoned".into()))?;
        if let Some(h) = map.get(&key) {
            return Ok(h.clone());
        }
        let mut b = Http::builder()
            .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
            // The lax client first tries HTTPS on registries that may speak only HTTP: a server
            // that never answers a TLS hello must not hold the pull for long.
            .connect_timeout(Duration::from_secs(if lax { 5 } else { 30 }))
            // Per request head and per body read, not the whole transfer.
            .timeout(Duration::from_secs(120))
            .danger_accept_invalid_certs(lax);
        let read = |p: &Path| std::fs::read(p).map_err(|e| Error::path("read", p, e));
        for ca in &cas {
            for c in reqwest::Certificate::from_pem_bundle(&read(ca)?)
                .map_err(|e| Error::invalid(ca.display().to_string(), chain(&e)))?
            {
                b = b.add_root_certificate(c);
            }
        }
        if let Some((cert, key)) = pairs.first() {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| Error::invalid(cert.display().to_string(), chain(&e)))?;
            b = b.identity(id);
        }
        let h = b
            .build()
            .map_err(|e| Error::Registry(format!("HTTP client for {host}: {}", chain(&e))))?;
        map.insert(key, h.clone());
        Ok(h)
    }

    fn endpoint(&self, domain: &str, insecure: bool) -> Endpoint {
        let host = if domain == DEFAULT_DOMAIN {
            DOCKER_HUB_HOST.to_string()
        } else {
            domain.to_string()
        };
        let schemes = if insecure || self.config.is_insecure(&host) {
            vec![("https", false), ("http", false)]
        } else {
            vec![("https", true)]
        };
        Endpoint {
            host,
            key: server_key(domain),
            schemes,
        }
    }

    fn mirror_endpoint(&self, url: &str) -> Endpoint {
        let (scheme, host) = match url.split_once("://") {
            Some(("http", h)) => ("http", h),
            Some((_, h)) => ("https", h),
            None => ("https", url),
        };
        let host = host.trim_end_matches('/').to_string();
        let insecure = self.config.is_insecure(&host);
        let schemes = match (scheme, insecure) {
            ("http", _) => vec![("http", false)],
            (_, true) => vec![("https", false), ("http", false)],
            _ => vec![("https", true)],
        };
        Endpoint {
            key: host.clone(),
            host,
            schemes,
        }
    }

    /// A repository handle for pulling (`push == false`: docker.io mirrors first) or pushing.
    pub fn repository(&self, name: &Name, push: bool, insecure: bool) -> Repository<'_> {
        let mut endpoints = Vec::new();
        if !push && name.domain == DEFAULT_DOMAIN {
            endpoints.extend(self.config.mirrors.iter().map(|m| self.mirror_endpoint(m)));
        }
        endpoints.push(self.endpoint(&name.domain, insecure));
        Repository {
            client: self,
            domain: name.domain.clone(),
            path: name.path.clone(),
            display: name.repo(),
            scope: format!(
                "repository:{}:{}",
                name.path,
                if push { "pull,push" } else { "pull" }
            ),
            endpoints,
            current: Mutex::new((0, None)),
        }
    }

    /// `GET /v2/` on each scheme of `ep` until one answers: base URL, TLS laxness and the
    /// challenge when the registry asks for authentication.
    fn probe(&self, ep: &Endpoint) -> Result<(String, bool, Option<Challenge>)> {
        let mut failures: Vec<String> = Vec::new();
        for &(scheme, verify) in &ep.schemes {
            let base = format!("{scheme}://{}", ep.host);
            let http = self.http(&ep.host, !verify)?;
            let mut tries = 0;
            loop {
                tries += 1;
                match http.get(format!("{base}/v2/")).send() {
                    Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                        let ch = parse_challenges(
                            r.headers()
                                .get_all(WWW_AUTHENTICATE)
                                .iter()
                                .filter_map(|v| v.to_str().ok()),
                        );
                        return Ok((base, !verify, ch));
                    }
                    Ok(r) if transient(r.status()) && tries < ATTEMPTS => {
                        std::thread::sleep(Duration::from_millis(200 << tries));
                    }
                    Ok(r) if transient(r.status()) => {
                        failures.push(format!("GET {base}/v2/: {}", r.status()));
                        break;
                    }
                    Ok(_) => return Ok((base, !verify, None)),
                    Err(e) if e.is_connect() && tries < ATTEMPTS && ep.schemes.len() == 1 => {
                        std::thread::sleep(Duration::from_millis(200 << tries));
                    }
                    Err(e) => {
                        failures.push(format!("GET {base}/v2/: {}", chain(&e)));
                        break;
                    }
                }
            }
        }
        Err(Error::Registry(format!(
            "{}: {}",
            ep.host,
            failures.join("; ")
        )))
    }

    /// A bearer token for `scopes` from the challenge's realm, with `cred` when given.
    fn token(
        &self,
        lax: bool,
        host: &str,
        ch: &Challenge,
        scopes: &[String],
        cred: Option<&Credential>,
    ) -> Result<String> {
        let (mut url, realm_host) = token_realm(host, ch)?;
        let realm = ch.params.get("realm").map(String::as_str).unwrap_or("");
        let http = self.http(&realm_host, lax)?;
        let service = ch.params.get("service").cloned().unwrap_or_default();
        let req = match cred {
            Some(c) if c.is_identity_token() => {
                let mut form = Url::parse("http://form/")
                    .map_err(|e| Error::Registry(format!("token form: {e}")))?;
                {
                    let mut q = form.query_pairs_mut();
                    q.append_pair("grant_type", "refresh_token")
                        .append_pair("refresh_token", &c.secret)
                        .append_pair("service", &service)
                        .append_pair("client_id", "skiff");
                    if !scopes.is_empty() {
                        q.append_pair("scope", &scopes.join(" "));
                    }
                }
                http.post(url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(form.query().unwrap_or("").to_string())
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if !service.is_empty() {
                        q.append_pair("service", &service);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                    if let Some(c) = cred {
                        q.append_pair("account", &c.username);
                    }
                }
                let r = http.get(url);
                match cred {
                    Some(c) => r.basic_auth(&c.username, Some(&c.secret)),
                    None => r,
                }
            }
        };
        let r = req
            .send()
            .map_err(|e| Error::Registry(format!("token server {realm}: {}", chain(&e))))?;
        let status = r.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Registry(if cred.is_some() {
                format!("{host}: unauthorized: incorrect username or password")
            } else {
                format!("{host}: unauthorized: the token server refused anonymous access")
            }));
        }
        if !status.is_success() {
            let b = body_text(r);
            return Err(Error::Registry(format!(
                "token server {realm}: {}",
                registry_message(status, &b)
            )));
        }
        parse_token_response(realm, &body_text(r))
    }

    fn authorize(
        &self,
        lax: bool,
        host: &str,
        ch: &Option<Challenge>,
        key: &str,
        scopes: &[String],
    ) -> Result<Auth> {
        let Some(ch) = ch else {
            return Ok(Auth::Anonymous);
        };
        let cred = (self.credentials)(key)?;
        match ch.scheme.as_str() {
            "basic" => Ok(match cred {
                Some(c) => Auth::Basic(
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{}", c.username, c.secret)),
                ),
                None => Auth::Anonymous,
            }),
            "bearer" => Ok(Auth::Bearer(self.token(
                lax,
                host,
                ch,
                scopes,
                cred.as_ref(),
            )?)),
            other => Err(Error::Unsupported(format!(
                "authentication scheme {other:?} of registry {host}"
            ))),
        }
    }

    /// Verifies `cred` against registry `domain` the way `docker login` does: a Basic registry
    /// must accept them on `/v2/`, a token registry's token server must issue a token for them.
    /// Returns the server key to store them under.
    pub fn login(&self, domain: &str, insecure: bool, cred: &Credential) -> Result<String> {
        let ep = self.endpoint(domain, insecure);
        let (base, lax, ch) = self.probe(&ep)?;
        match ch.as_ref().map(|c| (c, c.scheme.as_str())) {
            None => {}
            Some((c, "bearer")) => {
                self.token(lax, &ep.host, c, &[], Some(cred))?;
            }
            Some((_, "basic")) => {
                let r = self
                    .http(&ep.host, lax)?
                    .get(format!("{base}/v2/"))
                    .basic_auth(&cred.username, Some(&cred.secret))
                    .send()
                    .map_err(|e| Error::Registry(format!("registry {}: {}", ep.host, chain(&e))))?;
                if !r.status().is_success() {
                    return Err(Error::Registry(format!(
                        "login attempt to {base}/v2/ failed with status: {}",
                        r.status()
                    )));
                }
            }
            Some((_, other)) => {
                return Err(Error::Unsupported(format!(
                    "authentication scheme {other:?} of registry {}",
                    ep.host
                )))
            }
        }
        Ok(ep.key)
    }
}

/// Pulls `reference` (`busybox`, `host:5000/a/b:tag`, `name@sha256:…`) with the configured
/// registries and docker's credentials: the one call an engine needs for an auto-pull. Blocking,
/// like [`Client`].
pub fn pull_by_name(
    store: &crate::store::Store,
    reference: &str,
    platform: Option<&crate::platform::Platform>,
    progress: &(dyn Fn(crate::pull::Progress) + Sync),
) -> Result<crate::pull::PullResult> {
    let n = Name::parse(reference)?;
    let client = Client::new(RegistryConfig::load()?, DockerConfig::load()?);
    let repo = client.repository(&n, false, false);
    let r = n
        .digest
        .clone()
        .or_else(|| n.tag.clone())
        .unwrap_or_else(|| "latest".into());
    crate::pull::pull(store, &repo, &n.repo(), &r, platform, progress)
}

/// One repository on a registry (or on its mirrors), implementing [`Fetcher`] and [`Pusher`].
pub struct Repository<'c> {
    client: &'c Client,
    domain: String,
    path: String,
    display: String,
    scope: String,
    endpoints: Vec<Endpoint>,
    /// The endpoint in use and its connection once probed.
    current: Mutex<(usize, Option<Conn>)>,
}

impl Repository<'_> {
    fn conn(&self) -> Result<Conn> {
        let mut cur = self
            .current
            .lock()
            .map_err(|_| Error::Registry("registry connection lock poisoned".into()))?;
        if let Some(c) = &cur.1 {
            return Ok(c.clone());
        }
        let ep = &self.endpoints[cur.0];
        let (base, lax, challenge) = self.client.probe(ep)?;
        let auth = self.client.authorize(
            lax,
            &ep.host,
            &challenge,
            &ep.key,
            std::slice::from_ref(&self.scope),
        )?;
        let c = Conn {
            host: ep.host.clone(),
            base,
            lax,
            key: ep.key.clone(),
            challenge,
            auth,
        };
        cur.1 = Some(c.clone());
        Ok(c)
    }

    fn host(&self) -> String {
        self.current
            .lock()
            .map(|c| self.endpoints[c.0].host.clone())
            .unwrap_or_default()
    }

    /// After a 401: takes the new challenge, fetches a fresh authorization, and says whether
    /// retrying can help.
    fn reauthorize(&self, old: &Conn, r: &Response) -> Result<bool> {
        let ch = parse_challenges(
            r.headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let Some(ch) = ch.or_else(|| old.challenge.clone()) else {
            return Ok(false);
        };
        if ch.scheme == "basic" && matches!(old.auth, Auth::Basic(_)) {
            return Ok(false);
        }
        let mut scopes = vec![self.scope.clone()];
        if let Some(s) = ch.params.get("scope") {
            for s in s.split(' ') {
                if !s.is_empty() && !scopes.iter().any(|x| x == s) {
                    scopes.push(s.to_string());
                }
            }
        }
        let host = self.host();
        let auth = self
            .client
            .authorize(old.lax, &host, &Some(ch.clone()), &old.key, &scopes)?;
        if matches!(auth, Auth::Anonymous) && matches!(old.auth, Auth::Anonymous) {
            return Ok(false);
        }
        let mut cur = self
            .current
            .lock()
            .map_err(|_| Error::Registry("registry connection lock poisoned".into()))?;
        if let Some(c) = cur.1.as_mut() {
            c.challenge = Some(ch);
            c.auth = auth;
        }
        Ok(true)
    }

    /// Sends a request built by `build` (base URL in, request out) with authorization; retries
    /// transient failures when `idempotent`, and once after a 401 with fresh authorization.
    fn send(
        &self,
        what: &str,
        idempotent: bool,
        build: &dyn Fn(&Http, &str) -> RequestBuilder,
    ) -> Result<Response> {
        let mut tries = 0;
        let mut reauthorized = false;
        loop {
            tries += 1;
            let conn = self.conn()?;
            let http = self.client.http(&conn.host, conn.lax)?;
            let mut rb = build(&http, &conn.base);
            if let Some(h) = conn.auth.header() {
                rb = rb.header(AUTHORIZATION, h);
            }
            match rb.send() {
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !reauthorized => {
                    reauthorized = true;
                    if !self.reauthorize(&conn, &r)? {
                        return Ok(r);
                    }
                }
                Ok(r) if idempotent && transient(r.status()) && tries < ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(200 << tries));
                }
                Ok(r) => return Ok(r),
                Err(e) if idempotent && (e.is_connect() || e.is_timeout()) && tries < ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(200 << tries));
                }
                Err(e) => {
                    return Err(Error::Registry(format!(
                        "{what} on {}: {}",
                        self.display,
                        chain(&e)
                    )))
                }
            }
        }
    }

    fn fail(&self, what: &str, r: Response) -> Error {
        let status = r.status();
        let b = body_text(r);
        let msg = registry_message(status, &b);
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            return Error::Registry(format!("{what} on {}: {msg}", self.display));
        }
        let conn = self.current.lock().ok().and_then(|c| c.1.clone());
        let basic_without_credentials = conn.as_ref().is_some_and(|c| {
            matches!(c.auth, Auth::Anonymous)
                && c.challenge.as_ref().is_some_and(|ch| ch.scheme == "basic")
        });
        let msg = if basic_without_credentials {
            "no basic auth credentials".to_string()
        } else if b.trim().is_empty() {
            if status == StatusCode::UNAUTHORIZED {
                "unauthorized: authentication required".to_string()
            } else {
                "denied: requested access to the resource is denied".to_string()
            }
        } else {
            msg
        };
        if self.scope.ends_with("push") {
            Error::Registry(format!(
                "push access denied for {}: {msg} (log in with `skiff login {}`)",
                self.display, self.domain
            ))
        } else {
            Error::Registry(format!(
                "pull access denied for {}, repository does not exist or may require 'skiff login': {msg}",
                self.display
            ))
        }
    }

    fn resolve(&self, base: &str, location: &str) -> Result<String> {
        let b = Url::parse(base).map_err(|e| Error::Registry(format!("{base}: {e}")))?;
        b.join(location)
            .map(|u| u.to_string())
            .map_err(|e| Error::Registry(format!("upload location {location:?}: {e}")))
    }

    fn fetch_manifest(&self, reference: &str) -> Result<(Vec<u8>, String)> {
        let url = |base: &str| format!("{base}/v2/{}/manifests/{reference}", self.path);
        let r = self.send("GET manifest", true, &|h, base| {
            h.get(url(base)).header(ACCEPT, ACCEPT_MANIFESTS)
        })?;
        match r.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                let b = body_text(r);
                let sep = if reference.starts_with("sha256:") {
                    '@'
                } else {
                    ':'
                };
                return Err(Error::NotFound(format!(
                    "manifest for {}{sep}{reference} not found: {}",
                    self.display,
                    registry_message(StatusCode::NOT_FOUND, &b)
                )));
            }
            _ => return Err(self.fail("GET manifest", r)),
        }
        let mt = r
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let mut b = Vec::new();
        r.take(MAX_MANIFEST + 1)
            .read_to_end(&mut b)
            .map_err(|e| Error::io(format!("read manifest {}:{reference}", self.display), e))?;
        if b.len() as u64 > MAX_MANIFEST {
            return Err(Error::invalid(
                format!("manifest {}:{reference}", self.display),
                "larger than 16 MiB",
            ));
        }
        Ok((b, mt))
    }
}

impl Repository<'_> {
    /// The repository's tags (`GET /v2/<name>/tags/list`, following `Link: <...>; rel="next"`).
    pub fn tags(&self) -> Result<Vec<String>> {
        let mut tags = Vec::new();
        let mut next = format!("/v2/{}/tags/list?n=1000", self.path);
        for _ in 0..1000 {
            let path = next.clone();
            let r = self.send("GET tags", true, &|h, base| h.get(format!("{base}{path}")))?;
            if r.status() == StatusCode::NOT_FOUND {
                return Err(Error::NotFound(format!(
                    "repository {} not found",
                    self.display
                )));
            }
            if !r.status().is_success() {
                return Err(self.fail("GET tags", r));
            }
            let link = r
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .filter(|l| l.contains("rel=\"next\""))
                .and_then(|l| Some(l[l.find('<')? + 1..l.find('>')?].to_string()));
            let v: Value = serde_json::from_str(&body_text_limited(r, MAX_MANIFEST))
                .map_err(|e| Error::Registry(format!("tags of {}: {e}", self.display)))?;
            if let Some(a) = v.get("tags").and_then(Value::as_array) {
                tags.extend(a.iter().filter_map(Value::as_str).map(str::to_string));
            }
            match link {
                Some(l) => {
                    next = match Url::parse(&l) {
                        Ok(u) => format!("{}?{}", u.path(), u.query().unwrap_or("")),
                        Err(_) => l,
                    }
                }
                None => return Ok(tags),
            }
        }
        Err(Error::Registry(format!(
            "tags of {}: too many pages",
            self.display
        )))
    }
}

impl Fetcher for Repository<'_> {
    fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String)> {
        let n = self.endpoints.len();
        let mut i = self.current.lock().map(|c| c.0).unwrap_or(0);
        loop {
            match self.fetch_manifest(reference) {
                Ok(x) => return Ok(x),
                Err(_) if i + 1 < n => {
                    // A mirror failed: the next mirror, or the registry itself.
                    i += 1;
                    if let Ok(mut cur) = self.current.lock() {
                        *cur = (i, None);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn get_blob(&self, digest: &Digest, start: u64) -> Result<Box<dyn Read + Send>> {
        let url = |base: &str| format!("{base}/v2/{}/blobs/{digest}", self.path);
        let r = self.send("GET blob", true, &|h, base| {
            let rb = h.get(url(base));
            if start > 0 {
                rb.header(RANGE, format!("bytes={start}-"))
            } else {
                rb
            }
        })?;
        match r.status() {
            StatusCode::OK if start == 0 => Ok(Box::new(r)),
            StatusCode::PARTIAL_CONTENT => Ok(Box::new(r)),
            StatusCode::OK => {
                // No range support: skip what we already have.
                let mut r = r;
                let skipped = io::copy(&mut r.by_ref().take(start), &mut io::sink())
                    .map_err(|e| Error::io(format!("skip in blob {digest}"), e))?;
                if skipped < start {
                    return Err(Error::Registry(format!(
                        "blob {digest} on {} is shorter than {start} bytes",
                        self.display
                    )));
                }
                Ok(Box::new(r))
            }
            StatusCode::NOT_FOUND => Err(Error::NotFound(format!(
                "blob {digest} not found in {}",
                self.display
            ))),
            _ => Err(self.fail(&format!("GET blob {digest}"), r)),
        }
    }
}

impl Pusher for Repository<'_> {
    fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let r = self.send("HEAD blob", true, &|h, base| {
            h.head(format!("{base}/v2/{}/blobs/{digest}", self.path))
        })?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.fail(&format!("HEAD blob {digest}"), r)),
        }
    }

    /// Docker's upload: `POST` opens a session, `PATCH` streams the bytes, `PUT ?digest=` closes it.
    fn put_blob(&self, digest: &Digest, size: u64, data: Box<dyn Read + Send>) -> Result<()> {
        let r = self.send("start upload", false, &|h, base| {
            h.post(format!("{base}/v2/{}/blobs/uploads/", self.path))
                .header(reqwest::header::CONTENT_LENGTH, "0")
        })?;
        if r.status() != StatusCode::ACCEPTED {
            return Err(self.fail(&format!("start upload of {digest}"), r));
        }
        let conn = self.conn()?;
        let location = |r: &Response, base: &str| -> Result<Url> {
            let loc = r
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Error::Registry(format!(
                        "upload of {digest} to {}: no Location",
                        self.display
                    ))
                })?;
            Url::parse(&self.resolve(base, loc)?)
                .map_err(|e| Error::Registry(format!("upload location {loc:?}: {e}")))
        };
        let http = self.client.http(&conn.host, conn.lax)?;
        let authorized = |rb: RequestBuilder, url: &Url| match conn.auth.header() {
            Some(h) if url.as_str().starts_with(&conn.base) => rb.header(AUTHORIZATION, h),
            _ => rb,
        };
        let sent = |r: reqwest::Result<Response>| {
            r.map_err(|e| {
                Error::Registry(format!(
                    "upload {digest} to {}: {}",
                    self.display,
                    chain(&e)
                ))
            })
        };
        let url = location(&r, &conn.base)?;
        // The client's timeout covers a whole request, body included: allow a slow link.
        let timeout = Duration::from_secs(120 + size / (64 * 1024));
        let r = sent(
            authorized(http.patch(url.clone()), &url)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::blocking::Body::sized(data, size))
                .timeout(timeout)
                .send(),
        )?;
        if r.status() != StatusCode::ACCEPTED && r.status() != StatusCode::NO_CONTENT {
            return Err(self.fail(&format!("upload {digest}"), r));
        }
        let mut url = location(&r, url.as_str()).unwrap_or(url);
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let r = sent(
            authorized(http.put(url.clone()), &url)
                .header(reqwest::header::CONTENT_LENGTH, "0")
                .send(),
        )?;
        if r.status() != StatusCode::CREATED {
            return Err(self.fail(&format!("upload {digest}"), r));
        }
        Ok(())
    }

    fn put_manifest(&self, reference: &str, media_type: &str, data: &[u8]) -> Result<()> {
        let r = self.send("PUT manifest", true, &|h, base| {
            h.put(format!("{base}/v2/{}/manifests/{reference}", self.path))
                .header(CONTENT_TYPE, media_type)
                .body(data.to_vec())
        })?;
        if r.status() != StatusCode::CREATED {
            return Err(self.fail(&format!("PUT manifest {reference}"), r));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenges([
            r#"Basic realm="Registry Realm""#,
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="insufficient_scope""#,
        ])
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        assert_eq!(c.params["error"], "insufficient_scope");
        let b = parse_challenges([r#"Basic realm="x\"y""#]).unwrap();
        assert_eq!(
            (b.scheme.as_str(), b.params["realm"].as_str()),
            ("basic", "x\"y")
        );
        assert!(parse_challenges([]).is_none());
    }

    #[test]
    fn config_and_insecure() {
        let c = RegistryConfig::parse(
            br#"{"registry-mirrors":["https://m.example/","http://127.0.0.1:5001"],"insecure-registries":["r.example:5000","10.1.0.0/16"],"debug":true}"#,
        )
        .unwrap();
        assert_eq!(c.mirrors, ["https://m.example", "http://127.0.0.1:5001"]);
        assert!(c.is_insecure("r.example:5000"));
        assert!(c.is_insecure("10.1.2.3:443"));
        assert!(!c.is_insecure("10.2.2.3"));
        assert!(c.is_insecure("localhost:5000"));
        assert!(c.is_insecure("127.0.0.1"));
        assert!(c.is_insecure("[::1]:5000"));
        assert!(!c.is_insecure("registry-1.docker.io"));
        assert!(
            RegistryConfig::parse(br#"{"registry-mirrors":["https://m.example/v2"]}"#)
                .unwrap_err()
                .contains("path")
        );
        assert!(RegistryConfig::parse(br#"{"registry-mirrors":"x"}"#).is_err());
        let c = RegistryConfig::parse(br#"{"certs-dir":"/x/certs.d"}"#).unwrap();
        assert_eq!(c.certs_dir, Some(PathBuf::from("/x/certs.d")));
    }

    #[test]
    fn registry_messages() {
        assert_eq!(
            registry_message(
                StatusCode::UNAUTHORIZED,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
            ),
            "unauthorized: authentication required"
        );
        assert_eq!(
            registry_message(StatusCode::BAD_GATEWAY, ""),
            "502 Bad Gateway"
        );
    }

    /// Found by fuzzing (fuzz/fuzz_targets/registry_auth.rs): a short non-JSON body was put into
    /// the error as sent, so a registry (or a proxy) could print newlines and terminal escape
    /// sequences through `skiff pull`'s one-line error. JSON strings can carry them too.
    #[test]
    fn registry_message_is_one_line() {
        assert_eq!(
            registry_message(StatusCode::REQUEST_TIMEOUT, "\0"),
            "408 Request Timeout: \\u{0}"
        );
        let m = registry_message(StatusCode::NOT_FOUND, "gone\n\x1b[2Jfake: ok");
        assert_eq!(m, "404 Not Found: gone\\n\\u{1b}[2Jfake: ok");
        let m = registry_message(
            StatusCode::NOT_FOUND,
            r#"{"errors":[{"code":"X","message":"a\r\nb"}]}"#,
        );
        assert_eq!(m, "x: a\\r\\nb");
    }
}
