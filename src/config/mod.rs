//! The gateway config: listener settings, upstreams (mapping file, base URL,
//! secrets) and connections (one per IdP: base path, token hash, dialect,
//! approved domains). Parsed from TOML with unknown keys refused; every
//! mistake is reported at `file:line:col`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::diagnostics::{Report, SourceFile};
use crate::dialect::Dialects;
use crate::mapping::{self, UpstreamMapping};
mod compile;
mod file;
mod rate;
#[cfg(test)]
mod tests;

pub use compile::normalise_domain;
pub use rate::{Limiter, Rate, TokioClock};

use compile::compile;
use file::ConfigFile;

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

/// `[cluster]`, validated: what the replicas share through Redis.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub redis_url: Secret,
    pub key_prefix: String,
    pub timeout: Duration,
    pub lock_ttl: Duration,
    pub on_unavailable: OnUnavailable,
}

/// What a replica does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Limits per replica and in-process locks, with a warning and a metric:
    /// the IdP keeps being served; replicas may then together exceed a rate,
    /// and an upstream that takes duplicates could get one from two
    /// replicas at once.
    #[default]
    Local,
    /// 503 with `Retry-After` for what needs the store: nothing is decided
    /// without it, and the IdP retries.
    Refuse,
}

impl OnUnavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnavailable::Local => "local",
            OnUnavailable::Refuse => "refuse",
        }
    }
}

/// Everything the gateway serves, validated.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub server: ServerSettings,
    /// `None`: one replica, everything in-process.
    pub cluster: Option<ClusterSettings>,
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
