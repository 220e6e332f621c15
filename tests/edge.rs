//! The edge, end to end: rate limits (by counts), upstream faults (5xx, 429,
//! slow, reset, malformed) and how they reach the IdP, retries of idempotent
//! calls only, the circuit breaker, the audit log and readiness.

#![allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote, and time what they test"
)]

use scimgate_test_support as common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Harness, assert_scim_error};
use reqwest::Method;
use scimgate::config::{GatewayConfig, Rate, ServerSettings};
use scimgate::diagnostics::{Report, SourceFile};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "edge-token";

/// A string-id `/people` API with a short timeout.
fn mapping() -> String {
    common::people_mapping(
        r#"
[upstream]
name = "flaky"
base_url = "http://placeholder"
timeout_ms = 300
"#,
        "",
    )
}

/// A gateway in front of `upstream` (the demo's connections), after `adjust`.
async fn gateway(upstream: SocketAddr, adjust: impl FnOnce(&mut GatewayConfig)) -> String {
    common::gateway_for(&mapping(), upstream, &[], TOKEN, adjust).await
}

async fn send(root: &str, method: Method, path: &str, body: Option<Value>) -> common::Reply {
    common::scim_request_as(
        TOKEN,
        &format!("{root}/scim/generic/v2"),
        method,
        path,
        body,
    )
    .await
}

/// An upstream whose `/people/slow` answers after 3 s, far past the mapping's
/// 300 ms timeout.
async fn slow_upstream() -> MockServer {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people/slow"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(3))
                .set_body_json(json!({"id": "slow"})),
        )
        .mount(&upstream)
        .await;
    upstream
}

fn user(name: &str) -> Option<Value> {
    Some(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{name}@example.com")}),
    )
}

#[tokio::test]
async fn upstream_5xx_on_a_read_is_retried_then_reported_as_503_with_retry_after() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people/u1"))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("retry-after", "7")
                .set_body_string("<html>secret stack</html>"),
        )
        .expect(3)
        .mount(&upstream)
        .await;
    let root = gateway(*upstream.address(), |_| {}).await;
    let answer = send(&root, Method::GET, "/Users/u1", None).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(
        answer.header("retry-after"),
        Some("7"),
        "the upstream's Retry-After is passed back"
    );
    assert!(
        !answer.body.to_string().contains("secret stack"),
        "never the upstream's raw body"
    );
}

#[tokio::test]
async fn a_create_is_never_sent_twice() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/people"))
        .respond_with(ResponseTemplate::new(502))
        .expect(1)
        .mount(&upstream)
        .await;
    let root = gateway(*upstream.address(), |_| {}).await;
    let answer = send(&root, Method::POST, "/Users", user("ann")).await;
    assert_eq!(answer.status, 502, "{}", answer.body);
}

#[tokio::test]
async fn upstream_429_passes_its_retry_after_back() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people/u1"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "12"))
        .expect(1)
        .mount(&upstream)
        .await;
    let root = gateway(*upstream.address(), |_| {}).await;
    let answer = send(&root, Method::GET, "/Users/u1", None).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("12"));
    assert_eq!(
        answer.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
}

#[tokio::test]
async fn a_slow_upstream_becomes_504_and_a_malformed_one_502() {
    let upstream = slow_upstream().await;
    Mock::given(method("GET"))
        .and(path("/people/garbled"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{not json"))
        .mount(&upstream)
        .await;
    let root = gateway(*upstream.address(), |_| {}).await;
    let slow = send(&root, Method::GET, "/Users/slow", None).await;
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert!(
        slow.body["detail"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{}",
        slow.body
    );
    let garbled = send(&root, Method::GET, "/Users/garbled", None).await;
    assert_eq!(garbled.status, 502, "{}", garbled.body);
}

/// A success whose body is no JSON record, read as a record (a GET) or as a
/// list (a page, a filter): a 502 that names no byte of it, and the
/// gateway keeps serving.
#[tokio::test]
async fn an_upstream_success_that_is_not_json_text_is_502() {
    let upstream = MockServer::start().await;
    for (at, body) in [
        ("/people/latin1", b"{\"id\": \"Jos\xe9\"}".to_vec()),
        ("/people/blank", b"  \n ".to_vec()),
        ("/people/array", b"[]".to_vec()),
        ("/people", b"[{\"id\": \"u1\"}, {not json".to_vec()),
    ] {
        Mock::given(method("GET"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
            .mount(&upstream)
            .await;
    }
    let root = gateway(*upstream.address(), |_| {}).await;
    for target in [
        "/Users/latin1",
        "/Users/blank",
        "/Users/array",
        "/Users",
        "/Users?filter=displayName%20eq%20%22x%22",
    ] {
        let answer = send(&root, Method::GET, target, None).await;
        assert_eq!(answer.status, 502, "{target}: {}", answer.body);
        assert_scim_error(&answer, 502, None);
        assert!(!answer.body.to_string().contains("Jos"), "{}", answer.body);
    }
    // An update reads the record first: the same answers refuse it, and
    // nothing is written (no mock takes a write).
    let rename = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "userName", "value": "new@example.com"}]
    });
    for target in ["/Users/latin1", "/Users/blank", "/Users/array"] {
        let patched = send(&root, Method::PATCH, target, Some(rename.clone())).await;
        assert_scim_error(&patched, 502, None);
        let replaced = send(&root, Method::PUT, target, user("new")).await;
        assert_scim_error(&replaced, 502, None);
    }
    let discovery = send(&root, Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(discovery.status, 200);
}

/// An update's answer is the resource it answers with (read from its text,
/// no second read); one that is not JSON text is a 502 like any other.
#[tokio::test]
async fn an_update_answers_the_record_it_was_answered_with_or_502_if_that_is_not_json() {
    let upstream = MockServer::start().await;
    for (id, answer) in [
        (
            "u1",
            b"{\"id\": \"u1\", \"mail\": \"new@example.com\"}".to_vec(),
        ),
        ("u2", b"{\"id\": \"u2\", {not json".to_vec()),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/people/{id}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"id": id, "mail": "old@example.com"})),
            )
            .expect(1)
            .mount(&upstream)
            .await;
        Mock::given(method("PATCH"))
            .and(path(format!("/people/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(answer))
            .expect(1)
            .mount(&upstream)
            .await;
    }
    let root = gateway(*upstream.address(), |_| {}).await;
    let rename = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "userName", "value": "new@example.com"}]
    });
    let renamed = send(&root, Method::PATCH, "/Users/u1", Some(rename.clone())).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    assert_eq!(renamed.body["userName"], "new@example.com");
    let broken = send(&root, Method::PATCH, "/Users/u2", Some(rename)).await;
    assert_scim_error(&broken, 502, None);
    // The mocks' expect(1): each user was read once, before its update.
}

#[tokio::test]
async fn a_reset_connection_is_503_and_the_gateway_keeps_serving() {
    // An "upstream" that accepts and drops every connection.
    let resetting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = resetting.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = resetting.accept().await {
            drop(socket);
        }
    });
    let root = gateway(address, |_| {}).await;
    let answer = send(&root, Method::GET, "/Users/u1", None).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.header("retry-after").is_some());
    let discovery = send(&root, Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(discovery.status, 200);
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_and_fails_fast() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people/u1"))
        .respond_with(ResponseTemplate::new(500))
        .expect(2)
        .mount(&upstream)
        .await;
    let root = gateway(*upstream.address(), |config| {
        config.upstreams[0].budget.breaker.failures = 2;
        config.upstreams[0].budget.breaker.cooldown_ms = 60_000;
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            send(&root, Method::GET, "/Users/u1", None).await.status,
            502
        );
    }
    let fast = send(&root, Method::GET, "/Users/u1", None).await;
    assert_eq!(fast.status, 503, "{}", fast.body);
    let seconds: u64 = fast.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    // The mock's expect(2) proves the third request never reached the upstream.
}

#[tokio::test]
async fn the_connection_rate_limit_answers_429_past_the_burst() {
    let h = Harness::start_configured(ServerSettings::default(), |config| {
        for connection in &mut config.connections {
            connection.rate = Rate::parse("3/min");
        }
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            h.scim(Method::GET, "/ServiceProviderConfig", None)
                .await
                .status,
            200
        );
    }
    let limited = h.scim(Method::GET, "/ServiceProviderConfig", None).await;
    assert_scim_error(&limited, 429, None);
    let seconds: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&seconds), "{seconds}");
    // Another connection has its own limit.
    let other = h
        .send(
            Method::GET,
            "/scim/okta/v2/ServiceProviderConfig",
            &[("authorization".into(), format!("Bearer {}", common::TOKEN))],
            None,
        )
        .await;
    assert_eq!(other.status, 200);
    let metrics = reqwest::get(format!("{}/metrics", h.root))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("scimgate_rate_limited_total"), "{metrics}");
    assert!(metrics.contains("scimgate_requests_total"), "{metrics}");
}

#[tokio::test]
async fn every_write_lands_one_audit_line_with_the_correlation_id() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let settings = ServerSettings {
        audit_log: Some(audit_path.clone()),
        ..Default::default()
    };
    let h = Harness::start_with(settings).await;
    let created = h.scim(Method::POST, "/Users", user("ann")).await;
    assert_eq!(created.status, 201);
    let refused = h
        .scim(Method::POST, "/Users", Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "eve@elsewhere.org"})))
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        h.scim(Method::GET, "/Users", None).await.status,
        200,
        "reads are not audited"
    );
    let text = std::fs::read_to_string(&audit_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["operation"], "create_user");
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[0]["userName"], "ann@example.com");
    assert_eq!(lines[0]["scim_id"], created.body["id"]);
    assert_eq!(
        lines[0]["correlation_id"],
        created.headers["x-request-id"].to_str().unwrap()
    );
    // The provisioning record: the dialect it was read with, and each
    // upstream call by the mapping's name (no ids, no bodies).
    assert_eq!(lines[0]["dialect"], "shared", "{}", lines[0]);
    let steps = lines[0]["steps"].as_array().unwrap();
    let last = steps.last().unwrap();
    assert_eq!(
        (&last["call"], &last["method"], &last["status"]),
        (&json!("users.create"), &json!("POST"), &json!(201)),
        "{}",
        lines[0]
    );
    assert!(steps.iter().all(|s| s["latency_ms"].as_f64().is_some()));
    assert_eq!(lines[1]["outcome"], "failed");
    assert_eq!(
        lines[1]["steps"],
        json!([]),
        "a refused write calls nothing upstream"
    );
    assert_eq!(lines[1]["status"], 403);
    assert_eq!(lines[1]["userName"], "eve@elsewhere.org");
    assert!(
        lines[1]["detail"]
            .as_str()
            .unwrap()
            .contains("not approved")
    );
    assert_eq!(
        lines[1]["correlation_id"],
        refused.headers["x-request-id"].to_str().unwrap()
    );
}

#[tokio::test]
async fn readiness_follows_the_upstream() {
    let h = Harness::start().await;
    let ready = reqwest::get(format!("{}/readyz", h.root)).await.unwrap();
    assert_eq!(ready.status(), 200);
    // An upstream nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let root = gateway(closed, |_| {}).await;
    let not_ready = reqwest::get(format!("{root}/readyz")).await.unwrap();
    assert_eq!(not_ready.status(), 503);
    let body: Value = not_ready.json().await.unwrap();
    assert_eq!(body["upstreams"]["flaky"], "unreachable");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "readiness names upstreams, not addresses"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_the_gateway_keeps_serving() {
    let h = Harness::start_with(ServerSettings {
        max_body_bytes: 1024,
        ..Default::default()
    })
    .await;
    let big = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a@example.com", "title": "x".repeat(4096)});
    let answer = h.scim(Method::POST, "/Users", Some(big)).await;
    assert_scim_error(&answer, 413, None);
    assert_eq!(
        h.scim(Method::POST, "/Users", user("small")).await.status,
        201
    );
}

#[tokio::test]
async fn an_upstream_behind_a_private_ca_is_reached_with_the_configured_ca() {
    // The reference legacy API over TLS, with a certificate from a private CA.
    let (port, ca_pem, _dir) = common::legacy_behind_a_private_ca("tls-key").await;

    let mut report = Report::default();
    let source = SourceFile::new("legacy.toml", scimgate::demo::LEGACY_MAPPING);
    let mapping = scimgate::mapping::compile(&source, &mut report).unwrap();
    let start = |trust: bool| {
        let mapping = mapping.clone();
        let ca_pem = ca_pem.clone();
        async move {
            let secrets = [(
                "api_key".to_string(),
                scimgate::config::Secret::new("tls-key"),
            )]
            .into_iter()
            .collect();
            let mut config = scimgate::demo::config_for(
                mapping,
                ([127, 0, 0, 1], port).into(),
                secrets,
                TOKEN,
                &["example.com".into()],
                ServerSettings::default(),
            )
            .unwrap();
            let upstream = &mut config.upstreams[0];
            let mut mapping = (*upstream.mapping).clone();
            mapping.base_url = format!("https://localhost:{port}");
            upstream.mapping = std::sync::Arc::new(mapping);
            if trust {
                upstream.tls.ca_pem = Some(ca_pem.into_bytes());
            }
            let address = common::serve(scimgate::server::router(&config).unwrap()).await;
            format!("http://{address}")
        }
    };
    let trusting = start(true).await;
    let created = send(&trusting, Method::POST, "/Users", user("tls")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let untrusting = start(false).await;
    let refused = send(&untrusting, Method::GET, "/Users", None).await;
    assert_eq!(
        refused.status, 503,
        "an unknown CA is not trusted: {}",
        refused.body
    );
}

#[tokio::test]
async fn entra_is_paced_where_a_generic_client_gets_429() {
    let h = Harness::start_configured(ServerSettings::default(), |config| {
        for connection in &mut config.connections {
            // Entra waits at most half a second; the generic client would wait a minute.
            let rate = if connection.dialect == "entra" {
                "2/s"
            } else {
                "1/min"
            };
            connection.rate = Rate::parse(rate).map(|mut rate| {
                rate.burst = std::num::NonZeroU32::MIN;
                rate
            });
        }
    })
    .await;
    let auth = [(
        "authorization".to_string(),
        format!("Bearer {}", common::TOKEN),
    )];
    for base in ["/scim/entra/v2", "/scim/generic/v2"] {
        assert_eq!(
            h.send(
                Method::GET,
                &format!("{base}/ServiceProviderConfig"),
                &auth,
                None
            )
            .await
            .status,
            200
        );
    }
    // Over the limit: Entra's dialect holds the request (it retries a 429 only
    // ~40 minutes later); a generic client is told to come back.
    let entra = h
        .send(
            Method::GET,
            "/scim/entra/v2/ServiceProviderConfig",
            &auth,
            None,
        )
        .await;
    assert_eq!(entra.status, 200, "{}", entra.body);
    let generic = h
        .send(
            Method::GET,
            "/scim/generic/v2/ServiceProviderConfig",
            &auth,
            None,
        )
        .await;
    assert_scim_error(&generic, 429, None);
}

#[tokio::test]
async fn the_upstream_in_flight_cap_refuses_past_a_bounded_wait() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people/busy"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(2))
                .set_body_json(json!({"id": "busy"})),
        )
        .mount(&upstream)
        .await;
    let root = gateway(*upstream.address(), |config| {
        let budget = &mut config.upstreams[0].budget;
        budget.max_in_flight = Some(1);
        budget.queue_timeout = Duration::from_millis(50);
    })
    .await;
    // The first holds the only slot until its 300 ms timeout; the second waits 50 ms at most.
    let (a, b) = tokio::join!(send(&root, Method::GET, "/Users/busy", None), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        send(&root, Method::GET, "/Users/busy", None).await
    });
    let refused = [&a, &b]
        .into_iter()
        .find(|answer| answer.status == 503)
        .expect("one request is refused");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("in flight"),
        "{}",
        refused.body
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn a_request_its_client_abandons_leaves_the_in_flight_count() {
    let upstream = slow_upstream().await;
    let root = gateway(*upstream.address(), |_| {}).await;
    let in_flight = async || {
        let metrics = reqwest::get(format!("{root}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("scimgate_in_flight_requests "))
            .map(|value| value.trim().to_string())
    };
    // The client gives up long before the upstream's 300 ms timeout.
    let abandoned = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap()
        .get(format!("{root}/scim/generic/v2/Users/slow"))
        .bearer_auth(TOKEN)
        .send()
        .await;
    assert!(abandoned.is_err());
    // The gauge is process-wide: under a plain `cargo test` other tests'
    // requests share it, so wait for it to settle rather than read it once.
    let settled = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = in_flight().await;
    while last.as_deref() != Some("0") && tokio::time::Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(50)).await;
        last = in_flight().await;
    }
    assert_eq!(last.as_deref(), Some("0"));
}

#[tokio::test]
async fn an_audit_line_names_the_action_and_each_attribute_changed_old_to_new() {
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let h = Harness::start_with(ServerSettings {
        audit_log: Some(audit_path.clone()),
        ..Default::default()
    })
    .await;
    let mut body = user("cat").unwrap();
    body["title"] = json!("Engineer");
    body["password"] = json!("Tr0ub4dor&3");
    let created = h.scim(Method::POST, "/Users", Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let patch = |operations: Value| {
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}),
        )
    };
    let title = patch(json!([{"op": "replace", "path": "title", "value": "Manager"}]));
    assert_eq!(
        h.scim(Method::PATCH, &format!("/Users/{id}"), title)
            .await
            .status,
        200
    );
    let off = patch(json!([{"op": "replace", "path": "active", "value": false}]));
    assert_eq!(
        h.scim(Method::PATCH, &format!("/Users/{id}"), off)
            .await
            .status,
        200
    );
    let text = std::fs::read_to_string(&audit_path).unwrap();
    assert!(
        !text.contains("Tr0ub4dor"),
        "a password never reaches the audit log"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let changed = |line: &Value, attribute: &str| {
        line["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["attribute"] == attribute)
            .cloned()
    };
    assert_eq!(lines[0]["action"], "create");
    assert_eq!(
        changed(&lines[0], "userName"),
        Some(json!({"attribute": "userName", "new": "cat@example.com"}))
    );
    assert_eq!(
        changed(&lines[0], "password"),
        Some(json!({"attribute": "password"})),
        "a password set is recorded as changed, without its value"
    );
    assert_eq!(lines[1]["action"], "update");
    assert_eq!(
        lines[1]["changes"],
        json!([{"attribute": "title", "old": "Engineer", "new": "Manager"}]),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2]["action"], "disable");
    assert_eq!(
        lines[2]["changes"],
        json!([{"attribute": "active", "old": true, "new": false}])
    );
}
