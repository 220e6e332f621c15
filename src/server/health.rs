//! Liveness and readiness, unauthenticated and outside every SCIM base path.
//! `/readyz` is ready when the config and mappings are loaded (they are, or
//! this router would not exist) and every upstream answers HTTP at all; it
//! names upstreams, never their URLs or credentials.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Map, Value, json};

pub struct Upstreams {
    /// (name, base URL)
    pub targets: Vec<(String, String)>,
    pub http: reqwest::Client,
}

impl Upstreams {
    pub fn new(targets: Vec<(String, String)>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Upstreams { targets, http }
    }
}

pub async fn alive() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(upstreams): State<Arc<Upstreams>>) -> Response {
    let mut probes = tokio::task::JoinSet::new();
    for (name, url) in upstreams.targets.iter().cloned() {
        let http = upstreams.http.clone();
        // Any HTTP answer, even 401 or 404, proves the upstream is reachable.
        probes.spawn(async move { (name, http.get(url).send().await.is_ok()) });
    }
    let mut states = Map::new();
    let mut all = true;
    while let Some(Ok((name, reachable))) = probes.join_next().await {
        all &= reachable;
        states.insert(
            name,
            Value::from(if reachable {
                "reachable"
            } else {
                "unreachable"
            }),
        );
    }
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if all { "ready" } else { "not ready" }, "upstreams": states});
    (status, Json(body)).into_response()
}
