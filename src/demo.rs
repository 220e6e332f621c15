//! `scimgate demo`: the gateway in front of a reference upstream API (legacy
//! by default; directory or Wrike-shaped), on an embedded default config, so
//! anyone can provision users with `curl`. Tests and benches build their
//! gateway the same way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{
    Connection, GatewayConfig, Secret, ServerSettings, Upstream, normalise_domain,
};
use crate::diagnostics::{Report, SourceFile};
use crate::mapping;
use crate::server::hash_token;
use scimgate_reference::legacy::{Database, LegacyApi, LegacyConfig, LegacyError};

/// The reference upstreams' mappings, compiled into the binary.
pub const LEGACY_MAPPING: &str = include_str!("../mappings/upstream/legacy.toml");
const LEGACY_MAPPING_PATH: &str = "mappings/upstream/legacy.toml (embedded)";
const DIRECTORY_MAPPING: &str = include_str!("../mappings/upstream/directory.toml");
const WRIKE_MAPPING: &str = include_str!("../mappings/upstream/wrike.toml");

/// The reference upstream a demo runs in front of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoUpstream {
    /// Flat snake_case records, an API key, page paging (reference/src/legacy).
    Legacy,
    /// Nested camelCase records behind OAuth2 client credentials (reference/src/directory).
    Directory,
    /// Shaped like Wrike's REST API v4: envelopes, form parameters, invitations (reference/src/wrike).
    Wrike,
}

/// A started reference upstream and what the banner says of it.
pub struct StartedUpstream {
    pub config: GatewayConfig,
    pub address: SocketAddr,
    /// e.g. "http://127.0.0.1:9090/api/v1 (reference legacy API, SQLite demo.sqlite)".
    pub description: String,
}

/// Starts `upstream` on a free loopback port, its data in `db` (a file, or
/// `None` for memory), and a gateway config for it; the upstream's own
/// credential is made up here and never shown.
pub async fn start_upstream(
    upstream: DemoUpstream,
    db: Option<&std::path::Path>,
    token: &str,
    approved_domains: &[String],
    server: ServerSettings,
) -> Result<StartedUpstream, DemoError> {
    let secret = crate::server::new_token();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let stored = db.map_or("memory".to_string(), |p| p.display().to_string());
    let (address, mapping_text, path, secrets, description) = match upstream {
        DemoUpstream::Legacy => {
            let database = match db {
                Some(path) => Database::File(path.to_path_buf()),
                None => Database::Memory,
            };
            let address = start_legacy(database, &secret).await?;
            (
                address,
                LEGACY_MAPPING,
                LEGACY_MAPPING_PATH,
                vec![("api_key", secret)],
                format!("http://{address}/api/v1 (reference legacy API, SQLite {stored})"),
            )
        }
        DemoUpstream::Directory => {
            use scimgate_reference::directory::{Database, DirectoryApi, DirectoryConfig};
            let api = DirectoryApi::open(DirectoryConfig {
                client_id: "scimgate".into(),
                client_secret: secret.clone(),
                database: match db {
                    Some(path) => Database::File(path.to_path_buf()),
                    None => Database::Memory,
                },
            })
            .map_err(|e| DemoError::Upstream(e.to_string()))?;
            let address = api
                .spawn(loopback)
                .await
                .map_err(|e| DemoError::Upstream(e.to_string()))?;
            (
                address,
                DIRECTORY_MAPPING,
                "mappings/upstream/directory.toml (embedded)",
                vec![("client_secret", secret)],
                format!("http://{address}/v2 (reference directory API, OAuth2, SQLite {stored})"),
            )
        }
        DemoUpstream::Wrike => {
            use scimgate_reference::wrike::{Database, WrikeApi, WrikeConfig};
            let api = WrikeApi::open(WrikeConfig {
                token: secret.clone(),
                account_id: "IEAAAAAA".into(),
                database: match db {
                    Some(path) => Database::File(path.to_path_buf()),
                    None => Database::Memory,
                },
            })
            .map_err(|e| DemoError::Upstream(e.to_string()))?;
            let address = api
                .spawn(loopback)
                .await
                .map_err(|e| DemoError::Upstream(e.to_string()))?;
            (
                address,
                WRIKE_MAPPING,
                "mappings/upstream/wrike.toml (embedded)",
                vec![("token", secret)],
                format!("http://{address}/api/v4 (reference Wrike-shaped API, {stored})"),
            )
        }
    };
    let mut report = Report::default();
    let source = SourceFile::new(path, mapping_text);
    let mapping = mapping::compile(&source, &mut report).ok_or(DemoError::Mapping(report))?;
    let secrets = secrets
        .into_iter()
        .map(|(name, value)| (name.to_string(), Secret::new(value)))
        .collect();
    let config = config_for(mapping, address, secrets, token, approved_domains, server)?;
    Ok(StartedUpstream {
        config,
        address,
        description,
    })
}

/// The demo's connections (base path, dialect), all with the demo token: the
/// `auto` one first, then one per shipped dialect to try each IdP's quirks.
pub const DEMO_CONNECTIONS: [(&str, &str); 5] = [
    ("/scim/v2", "auto"),
    ("/scim/entra/v2", "entra"),
    ("/scim/okta/v2", "okta"),
    ("/scim/onelogin/v2", "onelogin"),
    ("/scim/generic/v2", "generic"),
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the embedded mapping is invalid:\n{0}")]
    Mapping(Report),
    #[error("approved domain `{0}` is not a domain name")]
    Domain(String),
    #[error("the reference legacy API could not start: {0}")]
    Legacy(#[from] LegacyError),
    #[error("the reference upstream API could not start: {0}")]
    Upstream(String),
}

/// A gateway config whose connections all reach the legacy API at `upstream`.
pub fn gateway_config(
    upstream: SocketAddr,
    api_key: &str,
    token: &str,
    approved_domains: &[String],
    server: ServerSettings,
) -> Result<GatewayConfig, DemoError> {
    let mut report = Report::default();
    let source = SourceFile::new(LEGACY_MAPPING_PATH, LEGACY_MAPPING);
    let mapping = mapping::compile(&source, &mut report).ok_or(DemoError::Mapping(report))?;
    let secrets = [("api_key".to_string(), Secret::new(api_key))];
    config_for(
        mapping,
        upstream,
        secrets.into_iter().collect(),
        token,
        approved_domains,
        server,
    )
}

/// The demo's connections in front of any upstream `mapping`, served at `upstream`.
pub fn config_for(
    mut mapping: mapping::UpstreamMapping,
    upstream: SocketAddr,
    secrets: HashMap<String, Secret>,
    token: &str,
    approved_domains: &[String],
    server: ServerSettings,
) -> Result<GatewayConfig, DemoError> {
    mapping.base_url = format!("http://{upstream}");
    let approved_domains = approved_domains
        .iter()
        .map(|d| normalise_domain(d).ok_or_else(|| DemoError::Domain(d.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let name = mapping.name.clone();
    let upstream = Upstream {
        name: name.clone(),
        secrets,
        mapping: Arc::new(mapping),
        budget: Default::default(),
        tls: Default::default(),
    };
    let connections = DEMO_CONNECTIONS
        .iter()
        .map(|(base_path, dialect)| Connection {
            name: format!("demo-{dialect}"),
            base_path: (*base_path).to_string(),
            upstream: name.clone(),
            token_sha256: hash_token(token),
            approved_domains: approved_domains.clone(),
            hard_delete: false,
            dialect: (*dialect).to_string(),
            rate: None,
            max_wait: None,
            public_url: None,
        })
        .collect();
    Ok(GatewayConfig {
        server,
        cluster: None,
        dialects: crate::dialect::embedded(),
        upstreams: vec![upstream],
        connections,
    })
}

/// Starts the reference legacy API on a free loopback port.
pub async fn start_legacy(database: Database, api_key: &str) -> Result<SocketAddr, DemoError> {
    let api = LegacyApi::open(LegacyConfig {
        api_key: api_key.to_string(),
        database,
    })?;
    Ok(api.spawn(SocketAddr::from(([127, 0, 0, 1], 0))).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_mapping_compiles_without_warnings() {
        let mut report = Report::default();
        let source = SourceFile::new(LEGACY_MAPPING_PATH, LEGACY_MAPPING);
        assert!(mapping::compile(&source, &mut report).is_some(), "{report}");
        assert_eq!(report.diagnostics.len(), 0, "{report}");
    }
}
