//! The gateway config: listener settings, upstreams (mapping file, base URL,
//! secrets) and connections (one per IdP: base path, token hash, dialect,
//! approved domains). Parsed from TOML with unknown keys refused; every
//! mistake is reported at `file:line:col`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::diagnostics::{Report, SourceFile};
use crate::dialect::Dialects;
use crate::mapping::{self, UpstreamMapping};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    upstreams: BTreeMap<String, UpstreamSpec>,
    #[serde(default)]
    connections: BTreeMap<String, ConnectionSpec>,
}

/// `[server]`: the listener and the limits every connection shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// A second, plain-HTTP listener for `/healthz`, `/readyz` and
    /// `/metrics` (e.g. on an internal interface); with it, the main
    /// listener no longer serves `/readyz` and `/metrics`. Without it, all
    /// three are served on `listen`. Changing it needs a restart.
    pub admin_listen: Option<SocketAddr>,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Most upstream records a filter the upstream cannot answer may scan
    /// (400 `tooMany` above).
    pub scan_cap: usize,
    /// Largest `count` served in one list response.
    pub max_results: usize,
    /// Folder of IdP dialect files (`*.toml`), relative to the config; they
    /// override or add to the dialects built into scimgate.
    pub dialects_dir: Option<PathBuf>,
    /// File the audit log appends to (one JSON line per provisioning write);
    /// without it, audit lines go to the log under target `scimgate::audit`.
    pub audit_log: Option<PathBuf>,
    /// PEM certificate chain and key: serve HTTPS (HTTP/1.1 and HTTP/2).
    /// Reloaded on SIGHUP without dropping connections.
    pub tls: Option<TlsSpec>,
    /// Connections served at once; more wait in the accept queue.
    pub max_connections: usize,
    /// A client must send its request head within this (slowloris guard).
    pub header_read_timeout_ms: u64,
    /// Largest request head (request line and headers) accepted.
    pub max_header_bytes: usize,
    /// Longest a request may take before a 503 with Retry-After.
    pub request_timeout_ms: u64,
    /// On SIGTERM: how long in-flight requests may finish before closing.
    pub drain_timeout_ms: u64,
    /// Reload when the config, a mapping, a dialect or the certificate file
    /// changes, as SIGHUP does (checked every 2 s).
    pub watch: bool,
    /// Peers (addresses or CIDRs) whose `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` are believed; anyone else's are ignored. Filled
    /// at load from the file's `trusted_proxies`.
    #[serde(skip)]
    pub trusted_proxies: Vec<ProxyNet>,
    /// `trusted_proxies` as the file writes it, each entry with its
    /// position; `load` parses it into `trusted_proxies` (errors at
    /// file:line:col) and leaves it empty.
    #[serde(rename = "trusted_proxies")]
    pub trusted_proxies_written: Vec<Spanned<String>>,
}

/// An address or a CIDR block, e.g. `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    network: std::net::IpAddr,
    prefix: u8,
}

impl ProxyNet {
    /// Whether `ip` is in this block (an IPv4-mapped IPv6 peer as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for ProxyNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "`{text}` is not an address or CIDR block, e.g. \"10.0.0.0/8\" or \"192.0.2.7\""
            )
        };
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: std::net::IpAddr = address.parse().map_err(|_| expected())?;
        let longest = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => longest,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= longest)
                .ok_or_else(expected)?,
        };
        Ok(ProxyNet { network, prefix })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            max_body_bytes: 1024 * 1024,
            scan_cap: 10_000,
            max_results: 200,
            dialects_dir: None,
            audit_log: None,
            tls: None,
            max_connections: 10_000,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            request_timeout_ms: 60_000,
            drain_timeout_ms: 30_000,
            watch: false,
            trusted_proxies: Vec::new(),
            trusted_proxies_written: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamSpec {
    /// Path of the upstream mapping file, relative to the config file.
    mapping: Spanned<String>,
    /// Overrides the mapping's `base_url` for this deployment.
    base_url: Option<Spanned<String>>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<SecretSource>>,
    /// Requests per second (or minute) all connections together may send.
    rate_limit: Option<Spanned<String>>,
    /// Most requests in flight to this upstream at once.
    max_in_flight: Option<usize>,
    /// How long a request may wait for the budget before 429/503 (default 5000).
    queue_timeout_ms: Option<u64>,
    /// The longest upstream `Retry-After` passed on to the IdP (default 300).
    max_retry_after_s: Option<u64>,
    #[serde(default)]
    breaker: BreakerSpec,
    /// TLS toward the upstream: a private CA, a client certificate.
    tls: Option<Spanned<UpstreamTlsSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamTlsSpec {
    /// PEM file of the CA(s) that sign the upstream's certificate.
    ca: Option<PathBuf>,
    /// PEM files of the gateway's client certificate chain and its key.
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// TLS material for the upstream client, read at load.
#[derive(Clone, Default)]
pub struct UpstreamTls {
    pub ca_pem: Option<Vec<u8>>,
    /// Certificate chain and key, concatenated PEM.
    pub identity_pem: Option<Secret>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.identity_pem.is_some())
            .finish()
    }
}

/// The circuit breaker: after `failures` consecutive failures (unreachable,
/// timeout, 5xx) requests fail fast for `cooldown_ms`, then one probes.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSpec {
    pub failures: u32,
    pub cooldown_ms: u64,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec {
            failures: 5,
            cooldown_ms: 10_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum SecretSource {
    /// Read from an environment variable at load.
    Env(String),
    /// Read from a file (e.g. a Kubernetes Secret volume), trailing newline trimmed.
    File(PathBuf),
    /// Written in the config itself; fine for demos, warned about otherwise.
    Value(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionSpec {
    /// Where this connection's SCIM endpoint lives, e.g. "/scim/v2".
    base_path: Spanned<String>,
    upstream: Spanned<String>,
    /// Hex SHA-256 of the bearer token (`scimgate token` prints both).
    token_sha256: Spanned<String>,
    #[serde(default)]
    approved_domains: Vec<Spanned<String>>,
    /// Let DELETE remove upstream records instead of marking them.
    #[serde(default)]
    hard_delete: bool,
    /// The IdP dialect: `entra`, `okta`, `onelogin`, `generic` (or any
    /// dialect file's name), or `auto` to choose by User-Agent.
    dialect: Option<Spanned<String>>,
    /// Requests this connection may make: "20/s", "600/min".
    rate_limit: Option<Spanned<String>>,
    /// Requests allowed at once above the rate (default: the rate's count).
    burst: Option<u32>,
    /// How long a request over the limit is held before it gets 429 (default:
    /// the dialect's; pacing suits IdPs that punish rejection).
    max_wait_ms: Option<u64>,
    /// The connection's SCIM base URL as the IdP reaches it, e.g.
    /// "https://scim.example.com/scim/v2": `Location`, `meta.location` and
    /// `$ref` are built from it, never from the request's headers.
    public_url: Option<Spanned<String>>,
}

/// `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: std::num::NonZeroU32,
    pub per: std::time::Duration,
    /// Requests allowed at once.
    pub burst: std::num::NonZeroU32,
}

impl Rate {
    /// The GCRA quota of this rate, for the connection limiters and the
    /// upstream budgets alike.
    pub fn quota(&self) -> governor::Quota {
        let period = self.per / self.count.get();
        governor::Quota::with_period(period.max(std::time::Duration::from_nanos(1)))
            .unwrap_or_else(|| governor::Quota::per_second(self.count))
            .allow_burst(self.burst)
    }

    /// "20/s", "600/min", "5000/h".
    pub fn parse(text: &str) -> Option<Rate> {
        let (count, unit) = text.trim().split_once('/')?;
        let count: std::num::NonZeroU32 = count.trim().parse().ok()?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return None,
        };
        Some(Rate {
            count,
            per: std::time::Duration::from_secs(seconds),
            burst: count,
        })
    }
}

/// A secret value; never printed by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub mapping: Arc<UpstreamMapping>,
    pub secrets: HashMap<String, Secret>,
    pub budget: Budget,
    pub tls: UpstreamTls,
}

/// What one upstream may be asked, shared by every connection using it.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub rate: Option<Rate>,
    pub max_in_flight: Option<usize>,
    pub queue_timeout: std::time::Duration,
    /// An upstream's `Retry-After` is passed on at most this long, so a
    /// broken or hostile upstream cannot park an IdP's job for days.
    pub max_retry_after_s: u64,
    pub breaker: BreakerSpec,
}

/// Default bound on a passed-on `Retry-After`: five minutes.
pub const MAX_RETRY_AFTER_S: u64 = 300;

impl Default for Budget {
    fn default() -> Self {
        Budget {
            rate: None,
            max_in_flight: None,
            queue_timeout: std::time::Duration::from_secs(5),
            max_retry_after_s: MAX_RETRY_AFTER_S,
            breaker: BreakerSpec::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub base_path: String,
    pub upstream: String,
    pub token_sha256: [u8; 32],
    /// Lower-case, without trailing dots.
    pub approved_domains: Vec<String>,
    pub hard_delete: bool,
    /// A dialect name or `auto`, checked against `GatewayConfig::dialects`.
    pub dialect: String,
    pub rate: Option<Rate>,
    /// Overrides the dialect's pacing wait.
    pub max_wait: Option<std::time::Duration>,
    /// `http(s)://host[:port][/path]`, no trailing `/`: the base of every
    /// URL the connection answers with. Without it, the request's `Host`.
    pub public_url: Option<String>,
}

/// Everything the gateway serves, validated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub server: ServerSettings,
    pub dialects: Dialects,
    pub upstreams: Vec<Upstream>,
    pub connections: Vec<Connection>,
}

impl GatewayConfig {
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// Every file this config was read from (besides the config itself).
    pub fn source_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .upstreams
            .iter()
            .map(|u| u.mapping.source.clone())
            .collect();
        files.extend(
            self.dialects
                .all
                .iter()
                .map(|d| d.source.clone())
                .filter(|p| p.exists()),
        );
        if let Some(tls) = &self.server.tls {
            files.push(tls.cert.clone());
            files.push(tls.key.clone());
        }
        files
    }
}

/// Loads the config and every mapping it names; `Err` carries all problems.
pub fn load(path: &Path) -> Result<(GatewayConfig, Report), Report> {
    load_with(path, Environment::Read)
}

/// Whether loading reads the secrets a config names from the environment
/// and files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Read,
    /// `scimgate check --no-environment`: every secret is checked for shape
    /// only and stands as empty, so a config can be checked where its
    /// secrets are not set (CI, a laptop).
    Ignore,
}

/// Checks only that a config's keys and value types are the accepted ones
/// (for the docs' listings of every key, whose values are placeholders).
pub fn check_shape(source: &SourceFile) -> Result<(), crate::diagnostics::Diagnostic> {
    source.parse_toml::<ConfigFile>().map(|_| ())
}

pub fn load_with(path: &Path, environment: Environment) -> Result<(GatewayConfig, Report), Report> {
    let mut report = Report::default();
    let source = match SourceFile::read(path) {
        Ok(source) => source,
        Err(diagnostic) => {
            report.push(diagnostic);
            return Err(report);
        }
    };
    let file: ConfigFile = match source.parse_toml() {
        Ok(file) => file,
        Err(diagnostic) => {
            report.push(diagnostic);
            return Err(report);
        }
    };
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let config = compile(&source, file, base_dir, environment, &mut report);
    match config {
        Some(config) if !report.has_errors() => Ok((config, report)),
        _ => Err(report),
    }
}

fn compile(
    source: &SourceFile,
    mut file: ConfigFile,
    base_dir: &Path,
    environment: Environment,
    report: &mut Report,
) -> Option<GatewayConfig> {
    let mut upstreams = Vec::new();
    for (name, spec) in file.upstreams {
        let mapping_path = base_dir.join(spec.mapping.get_ref());
        let Some(mut mapping) = mapping::load(&mapping_path, report) else {
            report.push(source.error_at(
                Some(spec.mapping.span()),
                format!("upstream `{name}`: its mapping file has errors (listed above)"),
            ));
            continue;
        };
        if let Some(base_url) = &spec.base_url {
            match reqwest::Url::parse(base_url.get_ref()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => {
                    mapping.base_url = base_url.get_ref().trim_end_matches('/').to_string();
                }
                _ => report.push(source.error_at(
                    Some(base_url.span()),
                    "base_url must be an http(s) URL, e.g. \"https://users.internal.example\"",
                )),
            }
        }
        let mut secrets = HashMap::new();
        for (secret_name, secret) in &spec.secrets {
            let value = match secret.get_ref() {
                _ if environment == Environment::Ignore => Ok(String::new()),
                SecretSource::Env(var) => std::env::var(var).map_err(|_| {
                    format!("secret `{secret_name}`: environment variable {var} is not set")
                }),
                SecretSource::File(file) => std::fs::read_to_string(base_dir.join(file))
                    .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                    .map_err(|e| {
                        format!(
                            "secret `{secret_name}`: cannot read {}: {e}",
                            file.display()
                        )
                    }),
                SecretSource::Value(value) => {
                    report.push(source.warning_at(
                        Some(secret.span()),
                        format!("secret `{secret_name}` is written in the config; prefer {{ env = \"…\" }} or {{ file = \"…\" }}"),
                    ));
                    Ok(value.clone())
                }
            };
            match value {
                Ok(value) => {
                    secrets.insert(secret_name.clone(), Secret(value));
                }
                Err(message) => report.push(source.error_at(Some(secret.span()), message)),
            }
        }
        if let Some(needed) = mapping.auth.secret_name()
            && !spec.secrets.contains_key(needed)
        {
            report.push(source.error_at(
                Some(spec.mapping.span()),
                format!(
                    "upstream `{name}`: its mapping authenticates with secret `{needed}`; \
                     add [upstreams.{name}.secrets] {needed} = {{ env = \"…\" }}"
                ),
            ));
        }
        let rate = spec.rate_limit.as_ref().and_then(|text| {
            let rate = Rate::parse(text.get_ref());
            if rate.is_none() {
                report.push(source.error_at(Some(text.span()), RATE_EXPECTED));
            }
            rate
        });
        let tls = spec
            .tls
            .as_ref()
            .map(|tls| upstream_tls(source, report, tls, base_dir))
            .unwrap_or_default();
        upstreams.push(Upstream {
            name,
            mapping: Arc::new(mapping),
            secrets,
            tls,
            budget: Budget {
                rate,
                max_in_flight: spec.max_in_flight.filter(|n| *n > 0),
                queue_timeout: std::time::Duration::from_millis(
                    spec.queue_timeout_ms.unwrap_or(5_000),
                ),
                max_retry_after_s: spec.max_retry_after_s.unwrap_or(MAX_RETRY_AFTER_S).max(1),
                breaker: spec.breaker,
            },
        });
    }

    if let Some(tls) = &mut file.server.tls {
        tls.cert = base_dir.join(&tls.cert);
        tls.key = base_dir.join(&tls.key);
    }
    if let Some(audit) = &mut file.server.audit_log {
        *audit = base_dir.join(&*audit);
    }
    if file.server.header_read_timeout_ms == 0 || file.server.request_timeout_ms == 0 {
        report.push(source.error_at(
            None,
            "[server] header_read_timeout_ms and request_timeout_ms must be above 0",
        ));
    }
    for written in std::mem::take(&mut file.server.trusted_proxies_written) {
        match written.get_ref().parse::<ProxyNet>() {
            Ok(net) => file.server.trusted_proxies.push(net),
            Err(message) => report.push(source.error_at(Some(written.span()), message)),
        }
    }
    if file.server.admin_listen == Some(file.server.listen) {
        report.push(source.error_at(
            key_span(source, "admin_listen"),
            "admin_listen must be another address than listen (or left out to serve /readyz and /metrics on listen)",
        ));
    }
    let dialects = match &file.server.dialects_dir {
        Some(dir) => crate::dialect::load_dir(&base_dir.join(dir), report),
        None => crate::dialect::embedded(),
    };
    let mut connections = Vec::new();
    let mut seen_paths: HashMap<String, String> = HashMap::new();
    for (name, spec) in file.connections {
        let base_path = spec.base_path.get_ref().trim_end_matches('/').to_string();
        if !valid_base_path(&base_path) {
            report.push(source.error_at(
                Some(spec.base_path.span()),
                "base_path must start with `/` and use only letters, digits, `-`, `_` and `/`, e.g. \"/scim/v2\"",
            ));
        } else if let Some(other) = seen_paths.insert(base_path.to_ascii_lowercase(), name.clone())
        {
            report.push(source.error_at(
                Some(spec.base_path.span()),
                format!("base_path `{base_path}` is already used by connection `{other}`"),
            ));
        }
        if !upstreams.iter().any(|u| u.name == *spec.upstream.get_ref())
            && !file_mentions_upstream(source, spec.upstream.get_ref())
        {
            report.push(source.error_at(
                Some(spec.upstream.span()),
                format!(
                    "unknown upstream `{}`; expected one of the [upstreams.<name>] tables",
                    spec.upstream.get_ref()
                ),
            ));
        }
        let token_sha256 = match parse_sha256(spec.token_sha256.get_ref()) {
            Some(hash) => hash,
            None => {
                report.push(source.error_at(
                    Some(spec.token_sha256.span()),
                    "token_sha256 must be 64 hex digits; `scimgate token` prints a token and its hash",
                ));
                [0; 32]
            }
        };
        let mut approved_domains = Vec::new();
        for domain in &spec.approved_domains {
            match normalise_domain(domain.get_ref()) {
                Some(domain) => approved_domains.push(domain),
                None => report.push(source.error_at(
                    Some(domain.span()),
                    format!(
                        "`{}` is not a domain name, e.g. \"example.com\"",
                        domain.get_ref()
                    ),
                )),
            }
        }
        if approved_domains.is_empty() {
            report.push(source.warning_at(
                Some(spec.base_path.span()),
                format!("connection `{name}` approves no email domain: every user create will be refused"),
            ));
        }
        let dialect = match &spec.dialect {
            None => "auto".to_string(),
            Some(dialect) => {
                if dialects.choice(dialect.get_ref()).is_none() {
                    report.push(source.error_at(
                        Some(dialect.span()),
                        format!(
                            "unknown dialect `{}`; expected `auto` or one of: {}",
                            dialect.get_ref(),
                            dialects.names().join(", ")
                        ),
                    ));
                }
                dialect.get_ref().clone()
            }
        };
        warn_dropped_attributes(
            source, report, &spec, &name, &dialect, &dialects, &upstreams,
        );
        let rate = spec.rate_limit.as_ref().and_then(|text| {
            let mut rate = Rate::parse(text.get_ref());
            if rate.is_none() {
                report.push(source.error_at(Some(text.span()), RATE_EXPECTED));
            }
            if let (Some(rate), Some(burst)) =
                (&mut rate, spec.burst.and_then(std::num::NonZeroU32::new))
            {
                rate.burst = burst;
            }
            rate
        });
        let public_url = spec.public_url.as_ref().and_then(|url| {
            let public_url = valid_public_url(url.get_ref());
            if public_url.is_none() {
                report.push(source.error_at(
                    Some(url.span()),
                    "public_url must be an http(s) URL without credentials, query or fragment, e.g. \"https://scim.example.com/scim/v2\"",
                ));
            }
            public_url
        });
        connections.push(Connection {
            name,
            dialect,
            public_url,
            rate,
            max_wait: spec.max_wait_ms.map(std::time::Duration::from_millis),
            base_path,
            upstream: spec.upstream.into_inner(),
            token_sha256,
            approved_domains,
            hard_delete: spec.hard_delete,
        });
    }
    Some(GatewayConfig {
        server: file.server,
        dialects,
        upstreams,
        connections,
    })
}

/// Warns, per connection, about user attributes its IdP dialect sends by
/// default that the upstream mapping does not store (they will be dropped).
fn warn_dropped_attributes(
    source: &SourceFile,
    report: &mut Report,
    spec: &ConnectionSpec,
    name: &str,
    dialect: &str,
    dialects: &Dialects,
    upstreams: &[Upstream],
) {
    let Some(upstream) = upstreams
        .iter()
        .find(|u| u.name == *spec.upstream.get_ref())
    else {
        return;
    };
    let candidates: Vec<_> = match dialects.choice(dialect) {
        Some(crate::dialect::DialectChoice::Fixed(d)) => vec![d],
        Some(crate::dialect::DialectChoice::Auto { candidates, .. }) => candidates,
        None => return,
    };
    let span = spec
        .dialect
        .as_ref()
        .map(|d| d.span())
        .unwrap_or(spec.base_path.span());
    for candidate in candidates {
        let dropped: Vec<String> = candidate
            .sends
            .iter()
            .filter(|path| !upstream.mapping.users.stores(path))
            .map(|path| path.to_string())
            .collect();
        if !dropped.is_empty() {
            report.push(source.warning_at(
                Some(span.clone()),
                format!(
                    "connection `{name}`: {} sends {} by default, which upstream `{}`'s mapping does not store; they will be dropped",
                    candidate.name,
                    dropped.join(", "),
                    upstream.name
                ),
            ));
        }
    }
}

fn upstream_tls(
    source: &SourceFile,
    report: &mut Report,
    spec: &Spanned<UpstreamTlsSpec>,
    base_dir: &Path,
) -> UpstreamTls {
    let mut read = |path: &PathBuf, what: &str| match std::fs::read(base_dir.join(path)) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            report.push(source.error_at(
                Some(spec.span()),
                format!(
                    "upstream tls: cannot read the {what} {}: {error}",
                    path.display()
                ),
            ));
            None
        }
    };
    let tls = spec.get_ref();
    let ca_pem = tls.ca.as_ref().and_then(|p| read(p, "CA file"));
    let identity_pem = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            match (read(cert, "client certificate"), read(key, "client key")) {
                (Some(mut cert), Some(key)) => {
                    cert.push(b'\n');
                    cert.extend(key);
                    Some(Secret(String::from_utf8_lossy(&cert).into_owned()))
                }
                _ => None,
            }
        }
        (None, None) => None,
        _ => {
            report.push(source.error_at(
                Some(spec.span()),
                "upstream tls: give both client_cert and client_key, or neither",
            ));
            None
        }
    };
    UpstreamTls {
        ca_pem,
        identity_pem,
    }
}

const RATE_EXPECTED: &str =
    "rate_limit must be a count per unit, e.g. \"20/s\", \"600/min\" or \"5000/h\"";

/// Where `key = …` is written, for checks made after deserialising (the
/// key's first assignment at the start of a line; whole file if none).
fn key_span(source: &SourceFile, key: &str) -> Option<std::ops::Range<usize>> {
    let mut offset = 0;
    for line in source.text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let start = offset + (line.len() - trimmed.len());
            return Some(start..start + key.len());
        }
        offset += line.len();
    }
    None
}

/// An upstream whose mapping failed is already reported; don't pile on.
fn file_mentions_upstream(source: &SourceFile, name: &str) -> bool {
    source.text.contains(&format!("[upstreams.{name}]"))
}

/// `url` without its trailing `/`, if it can be the base of answered URLs.
fn valid_public_url(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let fit = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none();
    fit.then(|| url.trim_end_matches('/').to_string())
}

fn valid_base_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_'))
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Lower-cases and drops trailing dots so `Example.COM.` and `example.com` agree.
pub fn normalise_domain(domain: &str) -> Option<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_text(text: &str) -> (Option<GatewayConfig>, Report) {
        let source = SourceFile::new("gateway.toml", text);
        let mut report = Report::default();
        let file: ConfigFile = match source.parse_toml() {
            Ok(file) => file,
            Err(d) => {
                report.push(d);
                return (None, report);
            }
        };
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = compile(&source, file, root, Environment::Read, &mut report);
        (config, report)
    }

    const HASH: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    #[test]
    fn valid_config_compiles_with_mapping_and_secret() {
        let text = format!(
            r#"
[upstreams.legacy]
mapping = "mappings/upstream/legacy.toml"
base_url = "http://127.0.0.1:1"
secrets.api_key = {{ value = "k" }}

[connections.acme]
base_path = "/scim/v2/"
upstream = "legacy"
token_sha256 = "{HASH}"
approved_domains = ["Example.COM."]
"#
        );
        let (config, report) = compile_text(&text);
        assert!(!report.has_errors(), "{report}");
        let config = config.unwrap();
        assert_eq!(config.connections[0].base_path, "/scim/v2");
        assert_eq!(config.connections[0].approved_domains, ["example.com"]);
        assert_eq!(config.upstreams[0].mapping.base_url, "http://127.0.0.1:1");
        // A literal secret is allowed but warned about.
        let warnings: Vec<String> = report.warnings().map(|w| w.to_string()).collect();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("secret `api_key` is written in the config")),
            "{warnings:?}"
        );
        // The `auto` connection may meet Entra, which sends addresses the mapping drops.
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("connection `acme`: entra sends")
                    && w.contains("addresses.postalCode")),
            "{warnings:?}"
        );
        assert!(
            !warnings.iter().any(|w| w.contains("name.givenName")),
            "mapped attributes are not reported: {warnings:?}"
        );
    }

    #[test]
    fn every_mistake_is_reported_at_its_position() {
        let text = r#"
[connections.acme]
base_path = "scim"
upstream = "nowhere"
token_sha256 = "abc"
approved_domains = ["not a domain"]
dialect = "azure"
"#;
        let (_, report) = compile_text(text);
        let errors: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("gateway.toml:3:13: error: base_path")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("gateway.toml:4:12: error: unknown upstream `nowhere`")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("gateway.toml:5:16: error: token_sha256")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("gateway.toml:6:21: error: `not a domain`")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with(
                "gateway.toml:7:11: error: unknown dialect `azure`; expected `auto` or one of: entra, okta, onelogin, generic"
            )),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_key_names_what_was_expected() {
        let (_, report) = compile_text("[server]\nlisten = \"127.0.0.1:1\"\nmax_body = 5\n");
        let message = report.diagnostics[0].to_string();
        assert!(message.starts_with("gateway.toml:3:1: error:"), "{message}");
        assert!(message.contains("max_body_bytes"), "{message}");
    }

    #[test]
    fn admin_listen_is_read_and_must_differ_from_listen() {
        let (config, report) = compile_text(
            "[server]\nlisten = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:9100\"\n",
        );
        assert!(!report.has_errors(), "{report}");
        assert_eq!(
            config.unwrap().server.admin_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9100)))
        );
        let (_, report) = compile_text(
            "[server]\nlisten = \"127.0.0.1:8080\"\n  admin_listen = \"127.0.0.1:8080\"\n",
        );
        let message = report.diagnostics[0].to_string();
        assert!(
            message.starts_with("gateway.toml:3:3: error: admin_listen must be another address"),
            "{message}"
        );
        let (_, report) = compile_text("[server]\nadmin_listen = \"not an address\"\n");
        let message = report.diagnostics[0].to_string();
        assert!(
            message.starts_with("gateway.toml:2:16: error:"),
            "{message}"
        );
    }

    #[test]
    fn trusted_proxies_and_public_url_are_checked_at_their_position() {
        let text = format!(
            r#"[server]
trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]

[connections.acme]
base_path = "/scim/v2"
upstream = "nowhere"
token_sha256 = "{HASH}"
public_url = "https://scim.example.com/scim/v2/"
"#
        );
        let (config, _) = compile_text(&text);
        let config = config.unwrap();
        let proxies = &config.server.trusted_proxies;
        assert!(proxies[0].contains("10.1.2.3".parse().unwrap()));
        assert!(proxies[0].contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!proxies[0].contains("11.0.0.1".parse().unwrap()));
        assert!(proxies[1].contains("192.0.2.7".parse().unwrap()));
        assert!(!proxies[1].contains("192.0.2.8".parse().unwrap()));
        assert!(proxies[2].contains("2001:db8:1::1".parse().unwrap()));
        assert_eq!(
            config.connections[0].public_url.as_deref(),
            Some("https://scim.example.com/scim/v2")
        );

        let (_, report) =
            compile_text("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n");
        let message = report.diagnostics[0].to_string();
        assert!(
            message
                .starts_with("gateway.toml:2:34: error: `10.0.0.0/33` is not an address or CIDR"),
            "{message}"
        );
        let text = format!(
            "[connections.acme]\nbase_path = \"/scim/v2\"\nupstream = \"x\"\ntoken_sha256 = \"{HASH}\"\npublic_url = \"https://user@scim.example.com\"\n"
        );
        let (_, report) = compile_text(&text);
        assert!(
            report.diagnostics.iter().any(|d| d
                .to_string()
                .starts_with("gateway.toml:5:14: error: public_url must be")),
            "{report}"
        );
    }

    #[test]
    fn missing_upstream_secret_is_an_error() {
        let (_, report) =
            compile_text("[upstreams.legacy]\nmapping = \"mappings/upstream/legacy.toml\"\n");
        assert!(report.to_string().contains("secret `api_key`"), "{report}");
    }

    #[test]
    fn rates_parse_per_second_minute_and_hour() {
        let rate = Rate::parse("20/s").unwrap();
        assert_eq!(
            (rate.count.get(), rate.per.as_secs(), rate.burst.get()),
            (20, 1, 20)
        );
        assert_eq!(Rate::parse("600/min").unwrap().per.as_secs(), 60);
        assert_eq!(Rate::parse(" 5 / h ").unwrap().per.as_secs(), 3600);
        for bad in ["0/s", "x/s", "20", "20/day", "-1/s"] {
            assert!(Rate::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn secret_debug_never_shows_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(****)");
    }

    #[test]
    fn domains_normalise_case_and_trailing_dot() {
        assert_eq!(
            normalise_domain("Example.COM.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalise_domain("a..b"), None);
        assert_eq!(normalise_domain("ex ample.com"), None);
    }
}
