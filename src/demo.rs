//! `scimgate demo`: the gateway in front of the reference legacy API, on an
//! embedded default config, so anyone can provision users with `curl`.
//! Tests and benches build their gateway the same way.

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

/// The reference upstream's mapping, compiled into the binary.
pub const LEGACY_MAPPING: &str = include_str!("../mappings/upstream/legacy.toml");
const LEGACY_MAPPING_PATH: &str = "mappings/upstream/legacy.toml (embedded)";

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
