//! OpenTelemetry traces end to end: `scimgate serve` exports to an in-test
//! OTLP/HTTP receiver as the standard `OTEL_*` variables say, a server span
//! per SCIM request (by route template) with a client span per upstream
//! call under it, the caller's `traceparent` continued, and W3C
//! `traceparent` sent on to the upstream. Off without an endpoint.

#![allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote, and time what they test"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::middleware::Next;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use reqwest::Method;
use scimgate_reference::legacy::{Database, LegacyApi, LegacyConfig};
use scimgate_test_support as common;

const BIN: &str = env!("CARGO_BIN_EXE_scimgate");
const OTLP_SECRET: &str = "Bearer otlp-secret-5e1f";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[derive(Debug, Clone)]
struct ExportedSpan {
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
    status_code: i32,
}

#[derive(Default)]
struct Received {
    spans: Vec<ExportedSpan>,
    resources: Vec<HashMap<String, String>>,
    authorizations: Vec<String>,
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(pairs: &[KeyValue]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|pair| (pair.key.clone(), text(&pair.value)))
        .collect()
}

/// A collector that keeps what it is sent, answering as OTLP/HTTP does.
async fn otlp_receiver() -> (SocketAddr, Arc<Mutex<Received>>) {
    let received = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                async |State(received): State<Arc<Mutex<Received>>>,
                       headers: http::HeaderMap,
                       body: Bytes| {
                    assert_eq!(
                        headers.get("content-type").unwrap(),
                        "application/x-protobuf"
                    );
                    let export = ExportTraceServiceRequest::decode(body).unwrap();
                    let mut received = received.lock().unwrap();
                    if let Some(authorization) = headers.get("authorization") {
                        received
                            .authorizations
                            .push(authorization.to_str().unwrap().to_string());
                    }
                    for resource_spans in export.resource_spans {
                        if let Some(resource) = &resource_spans.resource {
                            received.resources.push(attributes(&resource.attributes));
                        }
                        for scope in resource_spans.scope_spans {
                            for span in scope.spans {
                                received.spans.push(ExportedSpan {
                                    name: span.name,
                                    kind: span.kind,
                                    trace_id: hex::encode(span.trace_id),
                                    span_id: hex::encode(span.span_id),
                                    parent_span_id: hex::encode(span.parent_span_id),
                                    attributes: attributes(&span.attributes),
                                    status_code: span.status.map_or(0, |s| s.code),
                                });
                            }
                        }
                    }
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                },
            ),
        )
        .with_state(received.clone());
    (common::serve(app).await, received)
}

/// The reference legacy API, keeping the `traceparent` of every call it gets.
async fn legacy_seeing_trace_headers() -> (SocketAddr, Arc<Mutex<Vec<(String, Option<String>)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = LegacyApi::open(LegacyConfig {
        api_key: common::API_KEY.into(),
        database: Database::Memory,
    })
    .unwrap();
    let keep = seen.clone();
    let router = api.router().layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let keep = keep.clone();
            async move {
                let traceparent = request
                    .headers()
                    .get("traceparent")
                    .map(|v| v.to_str().unwrap().to_string());
                keep.lock().unwrap().push((
                    format!("{} {}", request.method(), request.uri().path()),
                    traceparent,
                ));
                next.run(request).await
            }
        },
    ));
    (common::serve(router).await, seen)
}

struct Gateway {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}/scim/v2", self.port)
    }

    /// Asks it to stop as an orchestrator does, and returns its log.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read_to_string(self._dir.path().join("log")).unwrap()
    }
}

async fn gateway(upstream: SocketAddr, env: &[(&str, &str)]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[upstreams.legacy]
mapping = "{mapping}"
base_url = "http://{upstream}"
secrets.api_key = {{ env = "TELEMETRY_TEST_API_KEY" }}

[connections.idp]
base_path = "/scim/v2"
upstream = "legacy"
token_sha256 = "{hash}"
approved_domains = ["example.com"]
dialect = "generic"
"#,
        mapping = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/upstream/legacy.toml"),
        hash = hex::encode(scimgate::server::hash_token(common::TOKEN)),
    );
    let path = dir.path().join("scimgate.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env("TELEMETRY_TEST_API_KEY", common::API_KEY)
        .env("RUST_LOG", "trace")
        .envs(env.iter().copied())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let gateway = Gateway {
        child,
        port,
        _dir: dir,
    };
    for _ in 0..200 {
        if reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok()
        {
            return gateway;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("scimgate serve did not start on port {port}");
}

async fn create_alice(base: &str, traceparent: Option<&str>) -> String {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/Users"))
        .bearer_auth(common::TOKEN)
        .header("content-type", "application/scim+json")
        .json(&common::alice());
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let reply = common::read_reply(request.send().await.unwrap()).await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn each_scim_request_is_a_server_span_over_a_client_span_per_upstream_call() {
    let (collector, received) = otlp_receiver().await;
    let (upstream, seen) = legacy_seeing_trace_headers().await;
    let endpoint = format!("http://{collector}");
    let gateway = gateway(
        upstream,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                &format!("authorization={OTLP_SECRET}"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    )
    .await;
    let base = gateway.base();
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let id = create_alice(&base, Some(&caller)).await;
    let read = common::scim_request(&base, Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(read.status, 200);
    let missing = common::scim_request(&base, Method::GET, "/Users/999999", None).await;
    assert_eq!(missing.status, 404);

    // Batches leave every 50 ms: wait for all seven (three requests, four
    // upstream calls). The flush at SIGTERM cannot be what delivers the
    // last: the collector runs on this test's one thread, which `stop`
    // blocks while the gateway exits (waiting for six, CI once lost one).
    let mut waited = 0;
    while received.lock().unwrap().spans.len() < 7 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let log = gateway.stop();
    let received = received.lock().unwrap();
    let spans = &received.spans;
    let servers: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    let names: Vec<_> = servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "POST /scim/v2/Users",
            "GET /scim/v2/Users/{id}",
            "GET /scim/v2/Users/{id}"
        ],
        "{spans:#?}"
    );

    // The create continues the caller's trace, with semantic-convention attributes.
    let create = servers[0];
    assert_eq!(create.trace_id, CALLER_TRACE);
    assert_eq!(create.parent_span_id, CALLER_SPAN);
    assert_eq!(create.attributes["http.request.method"], "POST");
    assert_eq!(create.attributes["http.route"], "/scim/v2/Users");
    assert_eq!(create.attributes["http.response.status_code"], "201");
    assert_eq!(create.attributes["scimgate.connection"], "idp");
    assert_eq!(create.attributes["scimgate.operation"], "create_user");
    assert!(create.attributes.contains_key("scimgate.request_id"));
    // A read of no caller's trace starts its own; a 404 is not a server error.
    assert_ne!(servers[1].trace_id, CALLER_TRACE);
    assert_eq!(servers[2].attributes["http.response.status_code"], "404");
    assert_eq!(servers[2].status_code, 0, "unset, not error");

    // Every upstream call is a client span under its request's span, named
    // by the mapping's template, and the upstream got its traceparent.
    let seen = seen.lock().unwrap();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(clients.len(), seen.len(), "{clients:#?}\n{seen:?}");
    for client in &clients {
        let parent = servers
            .iter()
            .find(|s| s.span_id == client.parent_span_id)
            .unwrap_or_else(|| panic!("{client:?} has no server parent in {spans:#?}"));
        assert_eq!(client.trace_id, parent.trace_id);
        let template = &client.attributes["url.template"];
        assert!(template.starts_with("/api/v1/users"), "{client:?}");
        assert_eq!(
            client.name,
            format!("{} {template}", client.attributes["http.request.method"])
        );
        assert_eq!(client.attributes["server.address"], "127.0.0.1");
        assert_eq!(client.attributes["scimgate.upstream"], "legacy");
        let traceparent = format!("00-{}-{}-01", client.trace_id, client.span_id);
        assert!(
            seen.iter()
                .any(|(_, sent)| sent.as_deref() == Some(&traceparent)),
            "{traceparent} not sent: {seen:?}"
        );
    }
    let missing_call = clients
        .iter()
        .find(|c| c.parent_span_id == servers[2].span_id)
        .unwrap();
    assert_eq!(missing_call.attributes["http.response.status_code"], "404");
    assert_eq!(missing_call.attributes["error.type"], "404");

    // No span names or carries the ids the paths had.
    for span in spans {
        let named = [Some(&span.name), span.attributes.get("http.route")];
        let named = named.into_iter().flatten();
        let named = named.chain(span.attributes.get("url.template"));
        for text in named {
            assert!(text.split(['/', ' ']).all(|part| part != id), "{span:?}");
        }
    }
    assert!(
        received
            .resources
            .iter()
            .all(|r| r["service.name"] == "scimgate")
    );
    // The exporter's header reaches the collector and never the log.
    assert!(received.authorizations.iter().all(|a| a == OTLP_SECRET));
    assert!(!received.authorizations.is_empty());
    assert!(
        !log.contains("otlp-secret"),
        "the OTLP header leaked into the log"
    );
    // Trace spans stay out of log lines; the request's own spans are there.
    assert!(log.contains("\"name\":\"connection\""), "{log}");
    assert!(
        !log.contains("\"name\":\"SCIM request\"") && !log.contains("\"name\":\"upstream call\"")
    );
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_traced_or_sent() {
    let (upstream, seen) = legacy_seeing_trace_headers().await;
    let gateway = gateway(upstream, &[("OTEL_BSP_SCHEDULE_DELAY", "50")]).await;
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    create_alice(&gateway.base(), Some(&caller)).await;
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|(_, traceparent)| traceparent.is_none()),
        "{seen:?}"
    );
}

#[test]
fn an_unsupported_protocol_is_a_message_and_exit_1() {
    let output = Command::new(BIN)
        .args(["serve", "--config", "/nonexistent/scimgate.toml"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.trim(),
        "error: OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" is not supported: scimgate exports traces over OTLP/HTTP with protobuf (`http/protobuf`)"
    );
}
