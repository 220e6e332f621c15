//! Liveness and readiness, unauthenticated and outside every SCIM base path.
//! `/readyz` is ready when the config and mappings are loaded (they are, or
//! this router would not exist) and every upstream answers HTTP at all; it
//! names upstreams, never their URLs or credentials.
//!
//! Each upstream is probed with its own client, so a private CA or a client
//! certificate counts for readiness as it does for SCIM calls. The result is
//! kept for [`PROBE_CACHE`]: a storm of `/readyz` (every replica's probe,
//! every load balancer) reaches each upstream at most once per interval.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::cluster::ClusterStore;
use crate::config::OnUnavailable;
use crate::provision::{UpstreamShared, index};
use crate::upstream::UpstreamClient;

/// How long one round of probes answers `/readyz`.
pub const PROBE_CACHE: Duration = Duration::from_secs(1);

pub struct Upstreams {
    /// (name, the client SCIM calls use)
    targets: Vec<(String, UpstreamClient)>,
    /// The Redis the replicas share, if any.
    cluster: Option<ClusterStore>,
    /// Each upstream's shared state, for how far its look-up indexes are.
    indexes: Vec<(String, Arc<UpstreamShared>)>,
    /// The last answer and when it was probed. Held across a probe, so
    /// concurrent `/readyz` wait for one round instead of each making one.
    last: Mutex<Option<(Instant, Readiness)>>,
}

#[derive(Clone)]
struct Readiness {
    ready: bool,
    upstreams: Map<String, Value>,
    cluster: Option<&'static str>,
}

impl Upstreams {
    pub fn new(targets: Vec<(String, UpstreamClient)>, cluster: Option<ClusterStore>) -> Self {
        Upstreams {
            targets,
            cluster,
            indexes: Vec::new(),
            last: Mutex::new(None),
        }
    }

    pub fn with_indexes(mut self, indexes: Vec<(String, Arc<UpstreamShared>)>) -> Self {
        self.indexes = indexes;
        self
    }

    /// `{"<upstream>": {"Users": "ready (N records)" | "building: …"}}`; a
    /// building index is no reason to be unready: look-ups scan meanwhile.
    async fn index_states(&self) -> Map<String, Value> {
        let mut states = Map::new();
        for (name, shared) in &self.indexes {
            let mut kinds = Map::new();
            for (kind, readiness) in shared.index_readiness().await {
                let state = match readiness {
                    index::Readiness::Building => {
                        "building: look-ups scan the upstream meanwhile".to_string()
                    }
                    index::Readiness::Ready { records } => format!("ready ({records} records)"),
                };
                kinds.insert(kind.resource_type().to_string(), Value::from(state));
            }
            if !kinds.is_empty() {
                states.insert(name.clone(), Value::Object(kinds));
            }
        }
        states
    }

    async fn readiness(&self) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((probed, readiness)) = last.as_ref()
            && probed.elapsed() < PROBE_CACHE
        {
            return readiness.clone();
        }
        let mut probes = tokio::task::JoinSet::new();
        for (name, client) in self.targets.iter().cloned() {
            // Any HTTP answer, even 401 or 404, proves the upstream is reachable.
            probes.spawn(async move { (name, client.probe().await.is_ok()) });
        }
        let mut readiness = Readiness {
            ready: true,
            upstreams: Map::new(),
            cluster: None,
        };
        // Down under `refuse`, writes and limited requests get 503, so the
        // replica is not ready; under `local` it serves on its own.
        if let Some(store) = &self.cluster {
            let up = store.ping().await;
            readiness.cluster = Some(match (up, store.on_unavailable()) {
                (true, _) => "reachable",
                (false, OnUnavailable::Local) => {
                    "unreachable: limits and locks are this replica's own"
                }
                (false, OnUnavailable::Refuse) => "unreachable: refusing what needs it",
            });
            readiness.ready &= up || store.on_unavailable() == OnUnavailable::Local;
        }
        while let Some(Ok((name, reachable))) = probes.join_next().await {
            readiness.ready &= reachable;
            readiness.upstreams.insert(
                name,
                Value::from(if reachable {
                    "reachable"
                } else {
                    "unreachable"
                }),
            );
        }
        *last = Some((Instant::now(), readiness.clone()));
        readiness
    }
}

pub async fn alive() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(upstreams): State<Arc<Upstreams>>) -> Response {
    let indexes = upstreams.index_states().await;
    let Readiness {
        ready,
        upstreams,
        cluster,
    } = upstreams.readiness().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body =
        json!({"status": if ready { "ready" } else { "not ready" }, "upstreams": upstreams});
    if let Some(cluster) = cluster {
        body["cluster"] = Value::from(cluster);
    }
    if !indexes.is_empty() {
        body["lookup_indexes"] = Value::Object(indexes);
    }
    (status, Json(body)).into_response()
}
