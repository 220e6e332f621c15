//! The config file's shape as written: what serde reads, spans kept for
//! `file:line:col`. `compile` turns it into the model in `config`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{BreakerSpec, OnUnavailable, ServerSettings};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub(super) server: ServerSettings,
    #[serde(default)]
    pub(super) upstreams: BTreeMap<String, UpstreamSpec>,
    #[serde(default)]
    pub(super) connections: BTreeMap<String, ConnectionSpec>,
    pub(super) cluster: Option<ClusterSpec>,
}

/// `[cluster]`: the Redis that several replicas share.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClusterSpec {
    /// `redis://[:password@]host:port[/db]`, or `rediss://` for TLS; a secret
    /// source, since it may carry the password.
    pub(super) redis_url: Spanned<SecretSource>,
    /// Prefix of every key the gateway writes (default `scimgate:`).
    pub(super) key_prefix: Option<String>,
    /// Longest wait for one Redis round trip (default 250).
    pub(super) timeout_ms: Option<Spanned<u64>>,
    /// How long a lock outlives a replica that died holding it (default 30000).
    pub(super) lock_ttl_ms: Option<Spanned<u64>>,
    /// `local` (default) or `refuse`: see `OnUnavailable`.
    pub(super) on_unavailable: Option<OnUnavailable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamSpec {
    /// Path of the upstream mapping file, relative to the config file.
    pub(super) mapping: Spanned<String>,
    /// Overrides the mapping's `base_url` for this deployment.
    pub(super) base_url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) secrets: BTreeMap<String, Spanned<SecretSource>>,
    /// Requests per second (or minute) all connections together may send.
    pub(super) rate_limit: Option<Spanned<String>>,
    /// Most requests in flight to this upstream at once.
    pub(super) max_in_flight: Option<usize>,
    /// How long a request may wait for the budget before 429/503 (default 5000).
    pub(super) queue_timeout_ms: Option<u64>,
    /// The longest upstream `Retry-After` passed on to the IdP (default 300).
    pub(super) max_retry_after_s: Option<u64>,
    #[serde(default)]
    pub(super) breaker: BreakerSpec,
    /// TLS toward the upstream: a private CA, a client certificate.
    pub(super) tls: Option<Spanned<UpstreamTlsSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamTlsSpec {
    /// PEM file of the CA(s) that sign the upstream's certificate.
    pub(super) ca: Option<PathBuf>,
    /// PEM files of the gateway's client certificate chain and its key.
    pub(super) client_cert: Option<PathBuf>,
    pub(super) client_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub(super) enum SecretSource {
    /// Read from an environment variable at load.
    Env(String),
    /// Read from a file (e.g. a Kubernetes Secret volume), trailing newline trimmed.
    File(PathBuf),
    /// Written in the config itself; fine for demos, warned about otherwise.
    Value(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConnectionSpec {
    /// Where this connection's SCIM endpoint lives, e.g. "/scim/v2".
    pub(super) base_path: Spanned<String>,
    pub(super) upstream: Spanned<String>,
    /// Hex SHA-256 of the bearer token (`scimgate token` prints both).
    pub(super) token_sha256: Spanned<String>,
    #[serde(default)]
    pub(super) approved_domains: Vec<Spanned<String>>,
    /// Let DELETE remove upstream records instead of marking them.
    #[serde(default)]
    pub(super) hard_delete: bool,
    /// The IdP dialect: `entra`, `okta`, `onelogin`, `generic` (or any
    /// dialect file's name), or `auto` to choose by User-Agent.
    pub(super) dialect: Option<Spanned<String>>,
    /// Requests this connection may make: "20/s", "600/min".
    pub(super) rate_limit: Option<Spanned<String>>,
    /// Requests allowed at once above the rate (default: the rate's count).
    pub(super) burst: Option<u32>,
    /// How long a request over the limit is held before it gets 429 (default:
    /// the dialect's; pacing suits IdPs that punish rejection).
    pub(super) max_wait_ms: Option<u64>,
    /// The connection's SCIM base URL as the IdP reaches it, e.g.
    /// "https://scim.example.com/scim/v2": `Location`, `meta.location` and
    /// `$ref` are built from it, never from the request's headers.
    pub(super) public_url: Option<Spanned<String>>,
}
