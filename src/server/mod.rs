//! The HTTP side: one router for every connection, each at its own base path
//! behind its own bearer token, plus unauthenticated health endpoints.

mod audit;
mod auth;
mod auth_throttle;
mod dialect;
mod discovery;
mod extract;
mod gate;
mod health;
mod limit;
pub mod listen;
mod members_body;
mod observe;
mod public_base;
pub mod reload;
mod rescue;
mod resources;
mod response;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Router, middleware};
use http::HeaderMap;

use crate::cluster::ClusterStore;
use crate::config::GatewayConfig;
use crate::provision::{Kind, ListLimits, Provisioner};
use crate::scim::error::ScimError;
use crate::upstream::{UpstreamClient, UpstreamError};
use rescue::ErrorResponse;

pub use auth::{hash_token, new_token};
pub use extract::{ScimJson, ScimPath, ScimQuery};
pub use resources::ConnectionApp;
pub use response::SCIM_CONTENT_TYPE;

use public_base::PublicBase;
use resources::{AppState, RequestDialect};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("connection `{connection}` names upstream `{upstream}`, which is not configured")]
    UnknownUpstream {
        connection: String,
        upstream: String,
    },
    #[error("cannot open the audit log: {0}")]
    AuditLog(std::io::Error),
    #[error("connection `{connection}` names dialect `{dialect}`, which is not loaded")]
    UnknownDialect { connection: String, dialect: String },
    #[error("upstream `{name}`: {source}")]
    Upstream { name: String, source: UpstreamError },
    /// The URL names no Redis the client can use (the message never quotes it).
    #[error("[cluster] redis_url cannot be used: {0}")]
    Cluster(String),
}

/// The whole gateway as one router, shared by `main` and the tests.
pub fn router(config: &GatewayConfig) -> Result<Router, ServerError> {
    let cluster = cluster_store(config)?;
    build_router(
        config,
        cluster.clone(),
        |upstream| UpstreamClient::with_cluster(upstream, cluster.as_ref()),
        Background::Maintain,
    )
}

/// The cluster store of `[cluster]`, if there is one (connected lazily).
fn cluster_store(config: &GatewayConfig) -> Result<Option<ClusterStore>, ServerError> {
    config
        .cluster
        .as_ref()
        .map(|settings| {
            ClusterStore::connect(settings)
                .map_err(|error| ServerError::Cluster(error.category().to_string()))
        })
        .transpose()
}

/// The router with upstream clients made by `make_client` (`explain` records
/// calls instead of sending them, and has no cluster).
/// The look-up indexes are not kept: nothing reads the upstream but the
/// requests themselves.
pub fn router_with(
    config: &GatewayConfig,
    cluster: Option<ClusterStore>,
    make_client: impl Fn(&crate::config::Upstream) -> Result<UpstreamClient, UpstreamError>,
) -> Result<Router, ServerError> {
    build_router(config, cluster, make_client, Background::None)
}

/// Whether the router reads its upstreams in the background (the look-up
/// indexes' full reads) or only when asked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Background {
    Maintain,
    None,
}

fn build_router(
    config: &GatewayConfig,
    cluster: Option<ClusterStore>,
    make_client: impl Fn(&crate::config::Upstream) -> Result<UpstreamClient, UpstreamError>,
    background: Background,
) -> Result<Router, ServerError> {
    let mut clients = HashMap::new();
    for upstream in &config.upstreams {
        let client = make_client(upstream).map_err(|source| ServerError::Upstream {
            name: upstream.name.clone(),
            source,
        })?;
        let shared = Arc::new(crate::provision::UpstreamShared::new(
            cluster.as_ref(),
            &upstream.name,
            Some(&upstream.mapping),
        ));
        if background == Background::Maintain {
            shared.maintain_indexes(&client);
        }
        clients.insert(upstream.name.clone(), (client, shared));
    }
    let audit_log = Arc::new(
        crate::audit::AuditLog::open(config.server.audit_log.as_deref())
            .map_err(ServerError::AuditLog)?,
    );
    let limits = ListLimits {
        scan_cap: config.server.scan_cap,
        max_results: config.server.max_results,
    };
    observe::handle();
    for upstream in &config.upstreams {
        // Labelled by the mapping's name, as the upstream client labels them.
        observe::register_upstream(&upstream.mapping.name, cluster.is_some());
    }
    for connection in &config.connections {
        observe::register_connection(&connection.name);
    }
    let upstreams = Arc::new(
        health::Upstreams::new(
            config
                .upstreams
                .iter()
                .filter_map(|u| Some((u.name.clone(), clients.get(&u.name)?.0.clone())))
                .collect(),
            cluster.clone(),
        )
        .with_indexes(
            config
                .upstreams
                .iter()
                .filter_map(|u| Some((u.name.clone(), clients.get(&u.name)?.1.clone())))
                .collect(),
        ),
    );
    let trusted_proxies: Arc<[crate::config::ProxyNet]> =
        Arc::from(config.server.trusted_proxies.as_slice());
    // One failure budget per client across every connection (auth_throttle).
    let failure_throttle = Arc::new(auth_throttle::FailureThrottle::default());
    let mut router = match config.server.admin_listen {
        None => admin_routes(upstreams),
        // Readiness and metrics move to the admin listener; liveness stays
        // here too, for a load balancer's checks of this listener.
        Some(_) => Router::new().route("/healthz", get(health::alive)),
    };
    for connection in &config.connections {
        let (client, shared) = clients.get(&connection.upstream).cloned().ok_or_else(|| {
            ServerError::UnknownUpstream {
                connection: connection.name.clone(),
                upstream: connection.upstream.clone(),
            }
        })?;
        let dialect = config.dialects.choice(&connection.dialect).ok_or_else(|| {
            ServerError::UnknownDialect {
                connection: connection.name.clone(),
                dialect: connection.dialect.clone(),
            }
        })?;
        let app = Arc::new(ConnectionApp {
            provisioner: Provisioner::new(connection.clone(), client, limits, shared),
            base_path: connection.base_path.clone(),
            dialect,
        });
        let gate = Arc::new(gate::ConnectionGate {
            name: Arc::from(connection.name.as_str()),
            app: app.clone(),
            auth: auth::TokenCheck {
                expected: connection.token_sha256,
                throttle: failure_throttle.clone(),
                trusted_proxies: trusted_proxies.clone(),
            },
            audit: audit::AuditState {
                log: audit_log.clone(),
                connection: connection.name.clone(),
                max_body_bytes: config.server.max_body_bytes,
            },
            origin: public_base::Origin {
                public_url: connection.public_url.as_deref().map(Arc::from),
                base_path: connection.base_path.clone(),
                trusted_proxies: trusted_proxies.clone(),
            },
            limiter: connection.rate.map(|rate| {
                limit::ConnectionLimiter::new(
                    &connection.name,
                    rate,
                    connection.max_wait,
                    cluster.as_ref(),
                )
            }),
        });
        let routes =
            connection_routes(app).layer(middleware::from_fn_with_state(gate, gate::guard));
        router = router.nest(&connection.base_path, routes);
    }
    Ok(answering_in_scim(router, config.server.max_body_bytes))
}

/// The admin listener's router (`admin_listen`): `/healthz`, `/readyz` and
/// `/metrics` only, with upstream clients of its own for the probes.
pub fn admin_router(config: &GatewayConfig) -> Result<Router, ServerError> {
    let mut targets = Vec::new();
    for upstream in &config.upstreams {
        let client = UpstreamClient::new(upstream).map_err(|source| ServerError::Upstream {
            name: upstream.name.clone(),
            source,
        })?;
        targets.push((upstream.name.clone(), client));
    }
    observe::handle();
    let routes = admin_routes(Arc::new(health::Upstreams::new(
        targets,
        cluster_store(config)?,
    )));
    Ok(answering_in_scim(routes, config.server.max_body_bytes))
}

fn admin_routes(upstreams: Arc<health::Upstreams>) -> Router {
    Router::new()
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready).with_state(upstreams))
        .route("/metrics", get(observe::render))
}

/// What every listener's router answers outside its routes, in SCIM: 404,
/// 405 (axum's own have empty bodies), a handler's panic as 500.
fn answering_in_scim(router: Router, max_body_bytes: usize) -> Router {
    router
        .fallback(|| async { ErrorResponse(ScimError::not_found("no SCIM endpoint at this path")) })
        // /healthz, /readyz, /metrics: axum's own 405 has an empty body
        // (it still adds `Allow`; connections have their own fallback).
        .method_not_allowed_fallback(|method: http::Method| async move {
            ErrorResponse(ScimError::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                None,
                format!("{method} is not allowed here; this endpoint answers GET"),
            ))
        })
        .layer(
            // The correlation id is the listener's (`response::correlated`),
            // so its own deadline answer carries one too.
            tower::ServiceBuilder::new()
                // A bug must cost one request a SCIM 500, not the connection.
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                    response::panic_response,
                ))
                .layer(DefaultBodyLimit::max(max_body_bytes)),
        )
}

fn connection_routes(app: Arc<ConnectionApp>) -> Router {
    let mut router = Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/ResourceTypes", get(discovery::resource_types))
        .route(
            "/ResourceTypes/{name}",
            get(discovery::resource_type_by_name),
        )
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema_by_id))
        .route(
            "/.search",
            post(|| async {
                ErrorResponse(ScimError::new(
                    http::StatusCode::NOT_IMPLEMENTED,
                    None,
                    "searching several resource types at once is not supported; POST to /Users/.search or /Groups/.search",
                ))
            }),
        );
    for kind in [Kind::User, Kind::Group] {
        router = router.merge(resource_routes(kind));
    }
    router
        .fallback(|| async {
            ErrorResponse(ScimError::not_found(
                "no such SCIM endpoint; see /ResourceTypes",
            ))
        })
        .method_not_allowed_fallback(|method: http::Method| async move {
            ErrorResponse(ScimError::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                None,
                format!("{method} is not allowed on this SCIM endpoint"),
            ))
        })
        .with_state(app)
}

fn resource_routes(kind: Kind) -> Router<Arc<ConnectionApp>> {
    let collection = format!("/{}", kind.endpoint());
    let item = format!("/{}/{{id}}", kind.endpoint());
    let search = format!("/{}/.search", kind.endpoint());
    Router::new()
        .route(
            &search,
            post(move |s: AppState, p: PublicBase, b: ScimJson| resources::search(kind, s, p, b)),
        )
        .route(
            &collection,
            get(move |s: AppState, p: PublicBase, q: ScimQuery| resources::list(kind, s, p, q))
                .post(
                    move |s: AppState,
                          d: RequestDialect,
                          p: PublicBase,
                          q: ScimQuery,
                          b: ScimJson| {
                        resources::create(kind, s, d, p, q, b)
                    },
                ),
        )
        .route(
            &item,
            get(
                move |s: AppState, id: ScimPath, p: PublicBase, q: ScimQuery| {
                    resources::get(kind, s, id, p, q)
                },
            )
            .put(
                move |s: AppState,
                      d: RequestDialect,
                      id: ScimPath,
                      h: HeaderMap,
                      p: PublicBase,
                      q: ScimQuery,
                      b: ScimJson| {
                    resources::replace(kind, s, d, id, h, p, q, b)
                },
            )
            .patch(
                move |s: AppState,
                      d: RequestDialect,
                      id: ScimPath,
                      h: HeaderMap,
                      p: PublicBase,
                      q: ScimQuery,
                      b: ScimJson| { resources::patch(kind, s, d, id, h, p, q, b) },
            )
            .delete(move |s: AppState, id: ScimPath, h: HeaderMap| {
                resources::delete(kind, s, id, h)
            }),
        )
}

impl crate::config::ServerSettings {
    pub fn listen_settings(&self) -> listen::ListenSettings {
        use std::time::Duration;
        listen::ListenSettings {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            max_header_bytes: self.max_header_bytes,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            drain_timeout: Duration::from_millis(self.drain_timeout_ms),
        }
    }
}
