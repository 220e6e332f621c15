//! End-to-end harness: the reference legacy API and the real gateway router,
//! each on its own loopback port, driven over real HTTP.
#![allow(dead_code)]

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use scimgate::config::{GatewayConfig, ServerSettings};
use scimgate::legacy::Database;
use scimgate::{demo, server};
use serde_json::Value;

pub const TOKEN: &str = "e2e-token";
pub const API_KEY: &str = "e2e-upstream-key";

pub struct Harness {
    /// `http://127.0.0.1:PORT`, the gateway's root.
    pub root: String,
    /// The `auto` connection's SCIM base URL.
    pub gateway: String,
    pub upstream: String,
    http: reqwest::Client,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(ServerSettings::default()).await
    }

    pub async fn start_with(settings: ServerSettings) -> Harness {
        Self::start_configured(settings, |_| {}).await
    }

    /// Starts with the demo config after `adjust` has changed it.
    pub async fn start_configured(
        settings: ServerSettings,
        adjust: impl FnOnce(&mut GatewayConfig),
    ) -> Harness {
        let upstream = demo::start_legacy(Database::Memory, API_KEY).await.unwrap();
        let mut config = demo::gateway_config(
            upstream,
            API_KEY,
            TOKEN,
            &["example.com".to_string()],
            settings,
        )
        .unwrap();
        adjust(&mut config);
        let router = server::router(&config).unwrap();
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Harness {
            root: format!("http://{address}"),
            gateway: format!("http://{address}/scim/v2"),
            upstream: format!("http://{upstream}/api/v1"),
            http: reqwest::Client::new(),
        }
    }

    /// A SCIM call with the connection's token.
    pub async fn scim(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.scim_with(method, path, body, Some(TOKEN), &[]).await
    }

    pub async fn scim_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.gateway));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        reply(request.send().await.unwrap()).await
    }

    /// Any request to the gateway, `path` from its root.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(String, String)],
        body: Option<String>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.root));
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        reply(request.send().await.unwrap()).await
    }

    /// Raw body (not necessarily JSON) to the gateway.
    pub async fn scim_raw(
        &self,
        method: Method,
        path: &str,
        body: &str,
        content_type: &str,
    ) -> Reply {
        let request = self
            .http
            .request(method, format!("{}{path}", self.gateway))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body.to_string());
        reply(request.send().await.unwrap()).await
    }

    /// The upstream's own view, read directly with its API key.
    pub async fn upstream(&self, path: &str) -> Reply {
        let request = self
            .http
            .get(format!("{}{path}", self.upstream))
            .header("x-api-key", API_KEY);
        reply(request.send().await.unwrap()).await
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Asserts a SCIM error body (RFC 7644 §3.12) with a correlation id.
pub fn assert_scim_error(reply: &Reply, status: u16, scim_type: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    assert_eq!(
        reply.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{}",
        reply.body
    );
    assert_eq!(reply.body["status"], status.to_string(), "{}", reply.body);
    assert!(
        reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        reply.body
    );
    let request_id = reply.headers["x-request-id"].to_str().unwrap();
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .ends_with(&format!("(correlation id {request_id})")),
        "{}",
        reply.body
    );
    match scim_type {
        Some(t) => assert_eq!(reply.body["scimType"], t, "{}", reply.body),
        None => assert!(reply.body.get("scimType").is_none(), "{}", reply.body),
    }
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/scim+json"),
        "{:?}",
        reply.headers
    );
}
