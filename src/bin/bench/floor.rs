//! The floor: a bare forwarder for `scimgate-bench --floor`. It answers the
//! benchmark's SCIM paths with exactly the upstream calls the gateway makes
//! for them against the reference legacy API (`scimgate explain` lists
//! them), on the gateway's own listener (`server::listen::serve`) and HTTP
//! client (`upstream::http_client`), and returns the last upstream body as
//! it came: no SCIM parsing beyond the one value each call needs, no
//! mapping, policy, logging or metrics. The gateway's CPU over the floor's
//! is what the gateway's own work costs.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use super::harness::API_KEY;

struct Upstream {
    http: reqwest::Client,
    base: String,
}

type Shared = State<Arc<Upstream>>;

/// Serves the floor on `port` in front of the legacy API on `legacy_port`.
pub async fn serve(port: u16, legacy_port: u16) -> anyhow::Result<()> {
    let upstream = Arc::new(Upstream {
        http: scimgate::upstream::http_client(Duration::from_secs(10)).build()?,
        base: format!("http://127.0.0.1:{legacy_port}/api/v1"),
    });
    let routes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/scim/{connection}/v2/Users", get(list_users).post(create))
        .route(
            "/scim/{connection}/v2/Users/{id}",
            get(get_user).patch(patch).put(put),
        )
        .route("/scim/{connection}/v2/Groups/{id}", get(get_group))
        .with_state(upstream);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    scimgate::server::listen::serve(
        listener,
        routes,
        scimgate::config::ServerSettings::default().listen_settings(),
        None,
        std::future::pending(),
    )
    .await?;
    Ok(())
}

impl Upstream {
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        headers: HeaderMap,
        body: Option<Value>,
    ) -> (StatusCode, Bytes) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-key", API_KEY)
            .header(http::header::ACCEPT, "application/json")
            .headers(headers);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                (status, response.bytes().await.unwrap_or_default())
            }
            Err(_) => (StatusCode::BAD_GATEWAY, Bytes::new()),
        }
    }
}

fn answer((status, body): (StatusCode, Bytes)) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn get_user(State(up): Shared, Path((_, id)): Path<(String, String)>) -> Response {
    let path = format!("/users/{id}");
    answer(
        up.call(Method::GET, &path, &[], HeaderMap::new(), None)
            .await,
    )
}

async fn get_group(State(up): Shared, Path((_, id)): Path<(String, String)>) -> Response {
    let path = format!("/teams/{id}");
    answer(
        up.call(Method::GET, &path, &[], HeaderMap::new(), None)
            .await,
    )
}

/// `filter=userName eq "x"` → the pushed-down login; else a page.
async fn list_users(State(up): Shared, Query(query): Query<Vec<(String, String)>>) -> Response {
    let value = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let status = ("status", "enabled,disabled");
    if let Some(filter) = value("filter") {
        let login = filter.split('"').nth(1).unwrap_or_default();
        let query = [status, ("login", login), ("page", "1"), ("per_page", "100")];
        return answer(
            up.call(Method::GET, "/users", &query, HeaderMap::new(), None)
                .await,
        );
    }
    let start: u64 = value("startIndex")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let page = (start.saturating_sub(1) / 100 + 1).to_string();
    let query = [status, ("page", page.as_str()), ("per_page", "100")];
    answer(
        up.call(Method::GET, "/users", &query, HeaderMap::new(), None)
            .await,
    )
}

/// The restore look-up, then the create.
async fn create(State(up): Shared, body: Bytes) -> Response {
    let user: Value = serde_json::from_slice(&body).unwrap_or_default();
    let login = user["userName"].as_str().unwrap_or_default();
    let archived = [("status", "archived"), ("login", login)];
    up.call(Method::GET, "/users", &archived, HeaderMap::new(), None)
        .await;
    let record = json!({
        "login": login,
        "first_name": user["name"]["givenName"],
        "last_name": user["name"]["familyName"],
        "email": user["emails"][0]["value"],
        "job_title": user["title"],
        "status": "enabled",
        "role": "member",
    });
    answer(
        up.call(Method::POST, "/users", &[], HeaderMap::new(), Some(record))
            .await,
    )
}

/// Entra's two replaces: the read, then the conditional write.
async fn patch(State(up): Shared, Path((_, id)): Path<(String, String)>, body: Bytes) -> Response {
    let operations: Value = serde_json::from_slice(&body).unwrap_or_default();
    let value_of = |path: &str| {
        operations["Operations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|op| op["path"] == path)
            .map(|op| op["value"].clone())
            .unwrap_or(Value::Null)
    };
    let change = json!({"last_name": value_of("name.familyName"), "job_title": value_of("title")});
    write(&up, &id, change).await
}

/// Okta's whole user: the read, then the changed field.
async fn put(State(up): Shared, Path((_, id)): Path<(String, String)>, body: Bytes) -> Response {
    let user: Value = serde_json::from_slice(&body).unwrap_or_default();
    write(&up, &id, json!({"job_title": user["title"]})).await
}

/// Read, then write conditionally on the version read; a write another
/// one beat is read and tried again, as the gateway does (5 tries,
/// jittered).
async fn write(up: &Upstream, id: &str, change: Value) -> Response {
    let path = format!("/users/{id}");
    let mut tries = 0;
    loop {
        let (status, read) = up
            .call(Method::GET, &path, &[], HeaderMap::new(), None)
            .await;
        if !status.is_success() {
            return answer((status, read));
        }
        let record: Value = serde_json::from_slice(&read).unwrap_or_default();
        let mut headers = HeaderMap::new();
        if let Some(version) = record["version"]
            .as_u64()
            .and_then(|v| http::HeaderValue::from_str(&v.to_string()).ok())
        {
            headers.insert(http::header::IF_MATCH, version);
        }
        let written = up
            .call(Method::PATCH, &path, &[], headers, Some(change.clone()))
            .await;
        tries += 1;
        if written.0 != StatusCode::PRECONDITION_FAILED || tries >= 5 {
            return answer(written);
        }
        // Jittered as the gateway's, so writers that lost together part.
        let pause = rand::random_range(0..=2u64 << tries);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}
