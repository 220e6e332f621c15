//! Hostile input, end to end: path values that try to escape their segment,
//! malformed and oversized bodies, pathological filters, every route without
//! (or with someone else's) token, attempts around the approved-domains
//! policy, and the throttle on repeated authentication failures.
//!
//! Requests whose exact bytes matter (`%2e%2e`, `..`, invalid UTF-8) are sent
//! over a raw TCP socket: an HTTP client library would normalise them first.

#![allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote, and time what they test"
)]

use scimgate_test_support as common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{API_KEY, Harness, Reply, TOKEN, alice, assert_scim_error};
use reqwest::Method;
use scimgate::config::{GatewayConfig, ServerSettings};
use scimgate::{demo, server};
use scimgate_reference::legacy::Database;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::MockServer;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

// ───────────────────────────── helpers ─────────────────────────────

/// An answer read off a raw socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request with exactly this request target and body
/// bytes (no client-side normalisation), with the connection token.
async fn raw(root: &str, method: &str, target: &str, body: &[u8]) -> Raw {
    let address = root.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n"
    )
    .into_bytes();
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        request.extend_from_slice(
            format!(
                "Content-Type: application/scim+json\r\nContent-Length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the gateway answers within 10 s")
        .unwrap();
    parse_raw(&bytes)
}

fn parse_raw(bytes: &[u8]) -> Raw {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..line_end])
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = decoded;
    }
    let body = common::json_or_text(String::from_utf8_lossy(&body).to_string());
    Raw {
        status,
        headers,
        body,
    }
}

/// A SCIM error body with this status, whatever the transport.
fn assert_scim_body(status: u16, body: &Value, content_type: Option<&str>, context: &str) {
    assert_eq!(body["schemas"][0], ERROR_SCHEMA, "{context}: {body}");
    assert_eq!(body["status"], status.to_string(), "{context}: {body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{context}: {body}"
    );
    assert!(
        content_type.is_some_and(|c| c.starts_with("application/scim+json")),
        "{context}: content-type {content_type:?}"
    );
}

/// Arbitrary body bytes to the `auto` connection with its token.
/// To the generic connection: RFC 7644 as written, nothing rewritten (an
/// `auto` connection forgives what the vendor dialects forgive).
async fn send_bytes(h: &Harness, method: Method, path: &str, body: Vec<u8>) -> Reply {
    let response = reqwest::Client::new()
        .request(method, format!("{}/scim/generic/v2{path}", h.root))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(body)
        .send()
        .await
        .unwrap();
    common::read_reply(response).await
}

async fn still_serves(h: &Harness) {
    let reply = h.scim(Method::GET, "/Users?count=1", None).await;
    assert_eq!(
        reply.status, 200,
        "the gateway still serves: {}",
        reply.body
    );
}

fn patch(operations: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

fn user(name: &str) -> Value {
    json!({"schemas": [USER_SCHEMA], "userName": name, "emails": [{"value": name, "type": "work", "primary": true}]})
}

/// The demo gateway in front of a fresh legacy API, served by `listen::serve`
/// (the peer address in every request); returns its root and the upstream's
/// base URL.
async fn start_with_peers(adjust: impl FnOnce(&mut GatewayConfig)) -> (String, String) {
    let upstream = demo::start_legacy(Database::Memory, API_KEY).await.unwrap();
    let mut config = demo::gateway_config(
        upstream,
        API_KEY,
        TOKEN,
        &["example.com".to_string()],
        ServerSettings::default(),
    )
    .unwrap();
    adjust(&mut config);
    let address = common::serve(server::router(&config).unwrap()).await;
    (format!("http://{address}"), format!("http://{upstream}"))
}

/// A client whose connections come from `ip` (any of 127/8 on loopback).
fn client_from(ip: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap()
}

/// A loopback source address no other request of this binary uses, so auth
/// failures in one test never spend another's budget.
fn fresh_ip() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 20, (n >> 8) as u8, n as u8)
}

// ─────────────────────── 1. path values ───────────────────────

/// (what it tries, the id segment as sent on the wire)
fn hostile_segments() -> Vec<(&'static str, String)> {
    vec![
        ("encoded traversal", "..%2F..%2Fadmin".into()),
        ("encoded dot-dot", "%2e%2e".into()),
        ("encoded dot-dot upper", "%2E%2E".into()),
        ("encoded dot", "%2e".into()),
        ("raw dot-dot", "..".into()),
        ("raw traversal", "../../api/v1/users".into()),
        ("encoded slash", "1%2F..%2F2".into()),
        ("double-encoded slash", "1%252F2".into()),
        ("CRLF header injection", "1%0D%0AX-Injected:%20yes".into()),
        ("NUL", "1%00".into()),
        ("query", "1%3Fstatus%3Darchived".into()),
        ("fragment", "1%23frag".into()),
        ("userinfo host", "@evil.example".into()),
        ("encoded userinfo host", "x%40evil.example%2Fpath".into()),
        ("absolute URL", "http:%2F%2Fevil.example%2F".into()),
        ("protocol-relative", "%2F%2Fevil.example".into()),
        (
            "one-dot leaders and fullwidth solidus",
            "%E2%80%A4%E2%80%A4%EF%BC%8Fadmin".into(),
        ),
        ("fullwidth full stops", "%EF%BC%8E%EF%BC%8E".into()),
        ("fullwidth digit", "%EF%BC%91".into()),
        ("10 KB", "a".repeat(10 * 1024)),
    ]
}

fn body_for(kind: &str, method: &str) -> Vec<u8> {
    match (kind, method) {
        ("Users", "PUT") => alice().to_string().into_bytes(),
        ("Groups", "PUT") => json!({"schemas": [GROUP_SCHEMA], "displayName": "g"})
            .to_string()
            .into_bytes(),
        ("Users", "PATCH") => patch(json!([{"op": "replace", "path": "title", "value": "x"}]))
            .to_string()
            .into_bytes(),
        ("Groups", "PATCH") => {
            patch(json!([{"op": "replace", "path": "displayName", "value": "x"}]))
                .to_string()
                .into_bytes()
        }
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn hostile_ids_are_scim_404s_and_leave_the_legacy_upstream_untouched() {
    let h = Harness::start().await;
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let before = h.upstream("/users").await.body;
    for (what, segment) in hostile_segments() {
        for kind in ["Users", "Groups"] {
            for method in ["GET", "PUT", "PATCH", "DELETE"] {
                let target = format!("/scim/v2/{kind}/{segment}");
                let answer = raw(&h.root, method, &target, &body_for(kind, method)).await;
                let context = format!("{what}: {method} {kind}");
                assert!(
                    matches!(answer.status, 400 | 404),
                    "{context}: {} {}",
                    answer.status,
                    answer.body
                );
                assert_scim_body(
                    answer.status,
                    &answer.body,
                    answer.header("content-type"),
                    &context,
                );
            }
        }
    }
    assert_eq!(h.upstream("/users").await.body, before, "no user changed");
    assert_eq!(h.upstream("/teams").await.body, json!([]), "no team made");
    still_serves(&h).await;
}

/// A mapping whose ids are strings, so path values do reach the upstream.
fn string_ids() -> String {
    common::people_mapping(
        r#"
[upstream]
name = "strings"
base_url = "http://placeholder"
timeout_ms = 2000
"#,
        &format!(
            "{}{}{}",
            r#"
[[users.attributes]]
scim = "title"
field = "title"

"#,
            common::TEAMS_GROUPS,
            r#"
[[groups.attributes]]
scim = "displayName"
field = "name"

[groups.members]
style = "endpoints"
list = { method = "GET", path = "/teams/{id}/members" }
member_field = "user_id"
add = { method = "POST", path = "/teams/{id}/members", body = { user_id = "{member}" } }
remove = { method = "DELETE", path = "/teams/{id}/members/{member}" }
"#
        ),
    )
}

/// What `%XX` sequences in `segment` decode to (the id the gateway sees).
fn decoded(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// How the upstream must see `id`: every byte outside RFC 3986's unreserved
/// set percent-encoded, so it stays one segment.
fn encoded(id: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

/// An upstream that has every record asked for: it answers a read of
/// `/{collection}/{segment}` with a record whose id is the decoded segment,
/// and any write with that record too, so every gateway operation runs to
/// its end and each of its calls is recorded.
struct Echo;

impl wiremock::Respond for Echo {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let segments: Vec<&str> = request.url.path().split('/').collect();
        match (request.method.as_str(), segments.as_slice()) {
            ("DELETE", _) => wiremock::ResponseTemplate::new(204),
            (_, ["", _, segment]) => {
                let id = decoded(segment);
                wiremock::ResponseTemplate::new(200).set_body_json(json!({
                    "id": id, "mail": "echo@example.com", "title": "t", "name": "g"
                }))
            }
            (_, ["", "teams", _, "members"]) => {
                wiremock::ResponseTemplate::new(200).set_body_json(json!([]))
            }
            _ => wiremock::ResponseTemplate::new(404),
        }
    }
}

/// Whether the gateway refuses `id` before any upstream call: dot segments
/// (URL parsers resolve them even percent-encoded) and ids over 256 bytes.
fn refused_outright(id: &str) -> bool {
    id == "." || id == ".." || id.len() > 256
}

#[tokio::test]
async fn hostile_ids_reach_a_string_id_upstream_only_as_one_encoded_segment() {
    let upstream = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(Echo)
        .mount(&upstream)
        .await;
    let root = common::gateway_for(&string_ids(), *upstream.address(), &[], TOKEN, |config| {
        for connection in &mut config.connections {
            connection.hard_delete = true;
        }
    })
    .await;
    let mut allowed = std::collections::HashSet::new();
    for (what, segment) in hostile_segments() {
        // A raw `../..` never even matches `/Users/{id}`: it is its own case.
        let id = decoded(&segment);
        let refused = refused_outright(&id) || segment.contains('/');
        for (kind, upstream_collection) in [("Users", "people"), ("Groups", "teams")] {
            if !refused {
                allowed.insert(format!("/{upstream_collection}/{}", encoded(&id)));
            }
            for method in ["GET", "PUT", "PATCH", "DELETE"] {
                let target = format!("/scim/v2/{kind}/{segment}");
                let answer = raw(&root, method, &target, &body_for(kind, method)).await;
                let context = format!("{what}: {method} {kind}");
                if refused {
                    assert_eq!(answer.status, 404, "{context}: {}", answer.body);
                    assert_scim_body(404, &answer.body, answer.header("content-type"), &context);
                    continue;
                }
                let expected = if method == "DELETE" { 204 } else { 200 };
                assert_eq!(answer.status, expected, "{context}: {}", answer.body);
                if method != "DELETE" {
                    // The resource keeps the id exactly as the IdP named it.
                    assert_eq!(answer.body["id"], Value::from(id.clone()), "{context}");
                }
            }
        }
    }
    let received = upstream.received_requests().await.unwrap();
    let mock_host = upstream.address().to_string();
    for request in &received {
        assert_eq!(
            request.headers.get("host").and_then(|v| v.to_str().ok()),
            Some(mock_host.as_str()),
            "{} {}",
            request.method,
            request.url
        );
        // Group reads also list members under the group's own segment.
        let path = request.url.path();
        let item = path.strip_suffix("/members").unwrap_or(path);
        assert!(
            allowed.contains(item),
            "the upstream got a request outside the mapped paths: {} {}",
            request.method,
            request.url
        );
        assert_eq!(request.url.query(), None, "{}", request.url);
        assert_eq!(request.url.fragment(), None, "{}", request.url);
    }
    // Every accepted id was read, written and deleted at its own segment.
    for path in &allowed {
        for method in ["GET", "PATCH", "DELETE"] {
            assert!(
                received
                    .iter()
                    .any(|r| r.method.as_str() == method && r.url.path() == path),
                "no {method} {path}"
            );
        }
    }
    assert!(allowed.contains("/people/..%2F..%2Fadmin"), "{allowed:?}");
    assert!(
        allowed.contains("/teams/1%0D%0AX-Injected%3A%20yes"),
        "{allowed:?}"
    );
}

#[tokio::test]
async fn hostile_member_values_stay_in_their_segment() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let member = "../../people/victim?x=1#@evil.example";
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/teams/g1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "g1", "name": "g"})))
        .mount(&upstream)
        .await;
    // The hostile value is already a member, so removing it is a real call.
    Mock::given(method("GET"))
        .and(path("/teams/g1/members"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"user_id": member}])))
        .mount(&upstream)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&upstream)
        .await;
    let root = common::gateway_for(&string_ids(), *upstream.address(), &[], TOKEN, |_| {}).await;
    let body = patch(json!([
        {"op": "remove", "path": format!("members[value eq \"{member}\"]")}
    ]));
    let answer = raw(
        &root,
        "PATCH",
        "/scim/v2/Groups/g1",
        body.to_string().as_bytes(),
    )
    .await;
    assert!(
        matches!(answer.status, 200 | 204),
        "{} {}",
        answer.status,
        answer.body
    );
    let received = upstream.received_requests().await.unwrap();
    let member_segment = format!("/teams/g1/members/{}", encoded(member));
    // Before removing, the gateway reads the member as a user (is it this
    // connection's to change?), at the user's own segment.
    let member_as_user = format!("/people/{}", encoded(member));
    for request in &received {
        let path = request.url.path();
        assert!(
            [
                "/teams/g1",
                "/teams/g1/members",
                member_segment.as_str(),
                member_as_user.as_str(),
            ]
            .contains(&path),
            "the upstream got {} {}",
            request.method,
            request.url
        );
        assert_eq!(request.url.query(), None, "{}", request.url);
    }
    assert!(
        received
            .iter()
            .any(|r| r.method.as_str() == "DELETE" && r.url.path() == member_segment),
        "{:?}",
        received
            .iter()
            .map(|r| r.url.to_string())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_id_that_is_not_utf8_gets_a_scim_error() {
    let h = Harness::start().await;
    for kind in ["Users", "Groups"] {
        for method in ["GET", "PUT", "PATCH", "DELETE"] {
            let target = format!("/scim/v2/{kind}/%C0%AE%C0%AE");
            let answer = raw(&h.root, method, &target, &body_for(kind, method)).await;
            let context = format!("{method} {target}");
            assert!(
                matches!(answer.status, 400 | 404),
                "{context}: {}",
                answer.status
            );
            assert_scim_body(
                answer.status,
                &answer.body,
                answer.header("content-type"),
                &context,
            );
        }
    }
}

#[tokio::test]
async fn meta_location_percent_encodes_the_id() {
    let upstream = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(Echo)
        .mount(&upstream)
        .await;
    let root = common::gateway_for(&string_ids(), *upstream.address(), &[], TOKEN, |_| {}).await;
    for segment in [
        "..%2F..%2Fadmin",
        "1%3Fx%3D1",
        "1%23frag",
        "%40evil.example",
    ] {
        let answer = raw(&root, "GET", &format!("/scim/v2/Users/{segment}"), b"").await;
        assert_eq!(answer.status, 200, "{segment}: {}", answer.body);
        assert_eq!(
            answer.body["meta"]["location"],
            format!("{root}/scim/v2/Users/{}", encoded(&decoded(segment))),
            "{segment}"
        );
    }
}

// ─────────────────────── 2. hostile bodies ───────────────────────

#[tokio::test]
async fn malformed_and_hostile_bodies_get_scim_errors_and_the_gateway_keeps_serving() {
    let h = Harness::start().await;
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    let id = created.body["id"].as_str().unwrap().to_string();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!(
        "{{\"schemas\":[\"{USER_SCHEMA}\"],\"userName\":\"d@example.com\",\"title\":{}1{}}}",
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let wide = format!(
        "{{\"schemas\":[\"{USER_SCHEMA}\"],\"userName\":\"w@example.com\",\"emails\":[{}]}}",
        vec!["1"; 100_000].join(",")
    );
    let wide_ops = format!(
        "{{\"schemas\":[\"{PATCH_SCHEMA}\"],\"Operations\":[{}]}}",
        vec!["{}"; 100_000].join(",")
    );
    let mut invalid_utf8 =
        format!("{{\"schemas\":[\"{USER_SCHEMA}\"],\"userName\":\"").into_bytes();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc0\xae@example.com\"}");
    let cases: Vec<(&str, Method, String, Vec<u8>, u16)> = vec![
        ("truncated JSON", Method::POST, "/Users".into(), b"{\"userName\":".to_vec(), 400),
        ("not JSON", Method::POST, "/Users".into(), b"<xml/>".to_vec(), 400),
        ("empty body", Method::POST, "/Users".into(), Vec::new(), 400),
        ("top-level array", Method::POST, "/Users".into(), b"[]".to_vec(), 400),
        ("top-level string", Method::POST, "/Users".into(), b"\"x\"".to_vec(), 400),
        ("null", Method::POST, "/Users".into(), b"null".to_vec(), 400),
        (
            "userName a number",
            Method::POST,
            "/Users".into(),
            json!({"schemas": [USER_SCHEMA], "userName": 42}).to_string().into_bytes(),
            400,
        ),
        (
            "emails a string",
            Method::POST,
            "/Users".into(),
            json!({"schemas": [USER_SCHEMA], "userName": "s@example.com", "emails": "s@example.com"}).to_string().into_bytes(),
            400,
        ),
        (
            "name an array",
            Method::POST,
            "/Users".into(),
            json!({"schemas": [USER_SCHEMA], "userName": "n@example.com", "name": ["x"]}).to_string().into_bytes(),
            400,
        ),
        (
            "schemas a string",
            Method::POST,
            "/Users".into(),
            json!({"schemas": USER_SCHEMA, "userName": "t@example.com"}).to_string().into_bytes(),
            400,
        ),
        (
            "unknown schema only",
            Method::POST,
            "/Users".into(),
            json!({"schemas": ["urn:evil:schema"], "userName": "u@example.com"}).to_string().into_bytes(),
            400,
        ),
        (
            "Operations not an array",
            Method::PATCH,
            format!("/Users/{id}"),
            json!({"schemas": [PATCH_SCHEMA], "Operations": {"op": "replace"}}).to_string().into_bytes(),
            400,
        ),
        (
            "unknown op",
            Method::PATCH,
            format!("/Users/{id}"),
            patch(json!([{"op": "delete-everything", "path": "title"}])).to_string().into_bytes(),
            400,
        ),
        ("10,000-deep array", Method::POST, "/Users".into(), deep.clone().into_bytes(), 400),
        ("10,000-deep object in a value", Method::POST, "/Users".into(), deep_object.into_bytes(), 400),
        ("10,000-deep PATCH", Method::PATCH, format!("/Users/{id}"), deep.into_bytes(), 400),
        ("100,000-element array", Method::POST, "/Users".into(), wide.into_bytes(), 400),
        ("100,000 empty operations", Method::PATCH, format!("/Users/{id}"), wide_ops.into_bytes(), 400),
        ("invalid UTF-8", Method::POST, "/Users".into(), invalid_utf8, 400),
        ("10 MB body", Method::POST, "/Users".into(), {
            let mut big = format!("{{\"schemas\":[\"{USER_SCHEMA}\"],\"userName\":\"b@example.com\",\"title\":\"").into_bytes();
            big.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
            big.extend_from_slice(b"\"}");
            big
        }, 413),
    ];
    for (what, method, path, body, status) in cases {
        let started = Instant::now();
        let reply = send_bytes(&h, method.clone(), &path, body).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{what}: {method} {path}: {}",
            reply.body
        );
        assert_scim_error(&reply, status, reply.body["scimType"].as_str());
        still_serves(&h).await;
    }
    // Nothing but alice ever reached the upstream, and she is unchanged.
    let users = h.upstream("/users").await.body;
    assert_eq!(users.as_array().map(Vec::len), Some(1), "{users}");
    assert_eq!(users[0]["job_title"], "Engineer", "{users}");
}

#[tokio::test]
async fn duplicate_keys_are_checked_and_sent_as_one_value() {
    let h = Harness::start().await;
    // serde_json keeps the last of duplicate keys; what matters is that the
    // policy checks the very value that is sent, so either order is refused
    // when either address is unapproved... or accepted with the checked one.
    let evil_last = format!(
        "{{\"schemas\":[\"{USER_SCHEMA}\"],\"userName\":\"dup@example.com\",\
         \"emails\":[{{\"value\":\"dup@example.com\"}}],\"emails\":[{{\"value\":\"dup@evil.com\"}}]}}"
    );
    let reply = send_bytes(&h, Method::POST, "/Users", evil_last.into_bytes()).await;
    assert_scim_error(&reply, 403, None);
    assert_eq!(h.upstream("/users").await.body, json!([]));
    let good_last = format!(
        "{{\"schemas\":[\"{USER_SCHEMA}\"],\"userName\":\"dup@example.com\",\
         \"emails\":[{{\"value\":\"dup@evil.com\"}}],\"emails\":[{{\"value\":\"dup@example.com\"}}]}}"
    );
    let reply = send_bytes(&h, Method::POST, "/Users", good_last.into_bytes()).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let users = h.upstream("/users").await.body;
    assert_eq!(users[0]["email"], "dup@example.com", "{users}");
}

// ─────────────────────── 3. pathological filters ───────────────────────

#[tokio::test]
async fn huge_and_deeply_nested_filters_are_invalid_filter_fast() {
    let h = Harness::start().await;
    let long = format!("userName eq \"{}\"", "a".repeat(100 * 1024));
    let nested = format!("{}userName eq \"a\"{}", "(".repeat(1000), ")".repeat(1000));
    let nots = format!(
        "{}(userName eq \"a\"){}",
        "not (".repeat(1000),
        ")".repeat(1000)
    );
    let brackets = format!(
        "emails[{}value eq \"a\"{}]",
        "(".repeat(1000),
        ")".repeat(1000)
    );
    let unbalanced = "(".repeat(1000);
    let sixty_kb = format!("userName eq \"{}\"", "a".repeat(60 * 1024));
    for (what, filter) in [
        ("100 KB", long),
        ("60 KB", sixty_kb),
        ("1,000 parentheses", nested),
        ("1,000 nots", nots),
        ("1,000 parentheses in brackets", brackets),
        ("1,000 unbalanced parentheses", unbalanced),
    ] {
        let query: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
        for kind in ["Users", "Groups"] {
            // Raw: a 100 KB URL is past what reqwest's URI type accepts.
            let started = Instant::now();
            let get = raw(
                &h.root,
                "GET",
                &format!("/scim/v2/{kind}?filter={query}"),
                b"",
            )
            .await;
            assert!(started.elapsed() < Duration::from_secs(2), "{what}");
            if query.len() > 16 * 1024 {
                // Past the listener's request-head limit (16 KiB by
                // default, `max_header_bytes`) hyper answers 431
                // itself, before any router runs: no SCIM body is possible
                // there. The same filter by POST is below.
                assert_eq!(get.status, 431, "{what}: {}", get.body);
            } else {
                assert_eq!(get.status, 400, "{what}: {}", get.body);
                assert_scim_body(400, &get.body, get.header("content-type"), what);
                assert_eq!(
                    get.body["scimType"], "invalidFilter",
                    "{what}: {}",
                    get.body
                );
            }
            let started = Instant::now();
            let post = h
                .scim(
                    Method::POST,
                    &format!("/{kind}/.search"),
                    Some(json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                        "filter": filter
                    })),
                )
                .await;
            assert!(started.elapsed() < Duration::from_secs(2), "{what}");
            assert_scim_error(&post, 400, Some("invalidFilter"));
        }
        still_serves(&h).await;
    }
    // The same limits guard PATCH paths, which share the filter grammar.
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    let id = created.body["id"].as_str().unwrap();
    let path = format!(
        "emails[{}type eq \"work\"{}].value",
        "(".repeat(1000),
        ")".repeat(1000)
    );
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{"op": "replace", "path": path, "value": "x@example.com"}]),
            )),
        )
        .await;
    assert!(matches!(reply.status.as_u16(), 400), "{}", reply.body);
    assert_scim_error(&reply, 400, reply.body["scimType"].as_str());
    still_serves(&h).await;
}

// ─────────────────────── 4. authentication ───────────────────────

/// Every SCIM route and method a connection serves (and some it does not).
fn every_route() -> Vec<(Method, &'static str)> {
    vec![
        (Method::GET, "/Users"),
        (Method::POST, "/Users"),
        (Method::POST, "/Users/.search"),
        (Method::GET, "/Users/1"),
        (Method::PUT, "/Users/1"),
        (Method::PATCH, "/Users/1"),
        (Method::DELETE, "/Users/1"),
        (Method::GET, "/Groups"),
        (Method::POST, "/Groups"),
        (Method::POST, "/Groups/.search"),
        (Method::GET, "/Groups/1"),
        (Method::PUT, "/Groups/1"),
        (Method::PATCH, "/Groups/1"),
        (Method::DELETE, "/Groups/1"),
        (Method::GET, "/Schemas"),
        (
            Method::GET,
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
        ),
        (Method::GET, "/ResourceTypes"),
        (Method::GET, "/ResourceTypes/User"),
        (Method::GET, "/ServiceProviderConfig"),
        (Method::POST, "/.search"),
        (Method::DELETE, "/ServiceProviderConfig"),
        (Method::PUT, "/Schemas"),
        (Method::GET, "/NoSuchEndpoint"),
    ]
}

const OTHER_TOKEN: &str = "the-entra-connections-own-token";

#[tokio::test]
async fn every_scim_route_refuses_missing_basic_wrong_and_other_connections_tokens() {
    let (root, _) = start_with_peers(|config| {
        // The demo connections share a token; give `entra` its own.
        config.connections[1].token_sha256 = server::hash_token(OTHER_TOKEN);
    })
    .await;
    let bodies = json!({"schemas": [USER_SCHEMA], "userName": "z@example.com"}).to_string();
    let credentials: [(&str, &str, Option<String>); 5] = [
        ("/scim/v2", "no token", None),
        ("/scim/v2", "Basic", Some(format!("Basic {TOKEN}"))),
        ("/scim/v2", "wrong token", Some(format!("Bearer {TOKEN}x"))),
        (
            "/scim/v2",
            "entra's token",
            Some(format!("Bearer {OTHER_TOKEN}")),
        ),
        (
            "/scim/entra/v2",
            "the demo token",
            Some(format!("Bearer {TOKEN}")),
        ),
    ];
    for (base, what, authorization) in &credentials {
        for (method, path) in every_route() {
            // A fresh source address per attempt: this test is about the 401,
            // not the failure throttle.
            let mut request = client_from(fresh_ip())
                .request(method.clone(), format!("{root}{base}{path}"))
                .header("content-type", "application/scim+json")
                .body(bodies.clone());
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let reply = common::read_reply(request.send().await.unwrap()).await;
            let context = format!("{what}: {method} {base}{path}");
            assert_eq!(reply.status, 401, "{context}: {}", reply.body);
            assert_scim_error(&reply, 401, None);
            let challenge = reply.headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer "), "{context}: {challenge}");
        }
    }
    // Each token does open its own connection.
    for (base, token) in [("/scim/v2", TOKEN), ("/scim/entra/v2", OTHER_TOKEN)] {
        let reply = common::read_reply(
            client_from(fresh_ip())
                .get(format!("{root}{base}/ServiceProviderConfig"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200, "{base}: {}", reply.body);
    }
}

#[tokio::test]
async fn health_and_metrics_reveal_no_secret_or_upstream_address() {
    let (root, upstream) = start_with_peers(|config| {
        config.connections[1].token_sha256 = server::hash_token(OTHER_TOKEN);
    })
    .await;
    let http = client_from(fresh_ip());
    // Traffic first, so the metrics have something to show, hostile ids included.
    for path in ["/scim/v2/Users", "/scim/v2/Users/x%40evil.example"] {
        http.get(format!("{root}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
    }
    let upstream_host = upstream.trim_start_matches("http://").to_string();
    let upstream_port = upstream_host.rsplit(':').next().unwrap().to_string();
    let token_hash = hex_of(&server::hash_token(TOKEN));
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = http.get(format!("{root}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        for secret in [
            TOKEN,
            OTHER_TOKEN,
            API_KEY,
            token_hash.as_str(),
            upstream_host.as_str(),
            &format!(":{upstream_port}"),
            "evil.example",
            "/api/v1",
        ] {
            assert!(!text.contains(secret), "{path} reveals `{secret}`:\n{text}");
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ─────────────────────── 5. approved domains ───────────────────────

async fn assert_nothing_upstream_for(h: &Harness, address: &str) {
    let query: String = form_urlencoded::byte_serialize(address.as_bytes()).collect();
    let reply = h.upstream(&format!("/users?email={query}")).await;
    assert_eq!(reply.body, json!([]), "{address} reached the upstream");
    let reply = h.upstream(&format!("/users?login={query}")).await;
    assert_eq!(reply.body, json!([]), "{address} reached the upstream");
}

#[tokio::test]
async fn approved_domains_match_case_insensitively_and_plus_tags_pass() {
    let h = Harness::start().await;
    for address in [
        "ALICE@EXAMPLE.COM",
        "bob+scim@example.com",
        "Carol@Example.Com.",
    ] {
        let reply = h.scim(Method::POST, "/Users", Some(user(address))).await;
        assert_eq!(reply.status, 201, "{address}: {}", reply.body);
    }
    // A userName-only user in an approved domain is fine too.
    let reply = h
        .scim(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER_SCHEMA], "userName": "dan@example.com"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[tokio::test]
async fn unapproved_domains_cannot_be_created_in_any_spelling() {
    let h = Harness::start().await;
    for address in [
        "a@EVIL.com",
        "a@evil.com.",
        "a@example.com.evil.com",
        "a@sub.example.com",
        "a@example.co",
        "a+example.com@evil.com",
        "a@exаmple.com", // Cyrillic а
    ] {
        let reply = h.scim(Method::POST, "/Users", Some(user(address))).await;
        assert_scim_error(&reply, 403, None);
        assert_nothing_upstream_for(&h, address).await;
    }
    // Not an address at all: refused as such, before the domain is looked at.
    for address in [
        "a@example.com+tag",
        "a@example.com@evil.com",
        "a@evil.com ",
        "a@example.com\r\n@evil.com",
    ] {
        let reply = h.scim(Method::POST, "/Users", Some(user(address))).await;
        assert_scim_error(&reply, 400, Some("invalidValue"));
        assert_nothing_upstream_for(&h, address).await;
    }
    // One unapproved address among approved ones.
    let mixed = json!({
        "schemas": [USER_SCHEMA],
        "userName": "mixed@example.com",
        "emails": [
            {"value": "mixed@example.com", "type": "work", "primary": true},
            {"value": "mixed@evil.com", "type": "home"}
        ]
    });
    assert_scim_error(
        &h.scim(Method::POST, "/Users", Some(mixed)).await,
        403,
        None,
    );
    assert_nothing_upstream_for(&h, "mixed@example.com").await;
    // A userName-only user: an address userName is checked; no address at all
    // is refused (the connection provisions only users it can check).
    let reply = h
        .scim(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER_SCHEMA], "userName": "eve@evil.com"})),
        )
        .await;
    assert_scim_error(&reply, 403, None);
    let reply = h
        .scim(
            Method::POST,
            "/Users",
            Some(json!({"schemas": [USER_SCHEMA], "userName": "eve"})),
        )
        .await;
    assert_scim_error(&reply, 400, Some("invalidValue"));
    assert_eq!(h.upstream("/users").await.body, json!([]));
}

#[tokio::test]
async fn unapproved_addresses_cannot_hide_behind_attribute_spelling_or_shape() {
    let h = Harness::start().await;
    // SCIM attribute names are case-insensitive (RFC 7643 §2.1) and may be
    // written with their schema URN; the policy must see every spelling the
    // mapping would send upstream.
    let cases = [
        (
            "EMAILS",
            json!({"schemas": [USER_SCHEMA], "userName": "s1@example.com", "EMAILS": [{"value": "s1@evil.com", "type": "work", "primary": true}]}),
        ),
        (
            "Emails.Value",
            json!({"schemas": [USER_SCHEMA], "userName": "s2@example.com", "emails": [{"VALUE": "s2@evil.com", "type": "work", "primary": true}]}),
        ),
        (
            "URN-qualified emails",
            json!({"schemas": [USER_SCHEMA], "userName": "s3@example.com", format!("{USER_SCHEMA}:emails"): [{"value": "s3@evil.com", "type": "work", "primary": true}]}),
        ),
        (
            "USERNAME",
            json!({"schemas": [USER_SCHEMA], "USERNAME": "s4@evil.com", "emails": [{"value": "s4@example.com", "type": "work", "primary": true}]}),
        ),
        (
            "emails as one object",
            json!({"schemas": [USER_SCHEMA], "userName": "s5@example.com", "emails": {"value": "s5@evil.com", "type": "work", "primary": true}}),
        ),
    ];
    for (what, body) in cases {
        let reply = h.scim(Method::POST, "/Users", Some(body)).await;
        match what {
            // Not a SCIM attribute name in a body (URNs qualify core
            // attributes only in filters and paths): ignored, so the user
            // is created without it and nothing unapproved is sent.
            "URN-qualified emails" => {
                assert_eq!(reply.status, 201, "{what}: {}", reply.body);
                let id = reply.body["id"].as_str().unwrap();
                let upstream = h.upstream_user(id).await.unwrap();
                assert_eq!(upstream["email"], Value::Null, "{what}: {upstream}");
            }
            // Read as a list of one on this `auto` connection (as the vendor
            // dialects read it), so the policy sees the address and refuses.
            _ => assert_scim_error(&reply, 403, None),
        }
        let users = h.upstream("/users").await.body;
        assert!(
            !users.to_string().contains("evil.com"),
            "{what}: an unapproved address reached the upstream: {users}"
        );
    }
}

#[tokio::test]
async fn patch_and_put_cannot_move_a_user_to_an_unapproved_domain() {
    let h = Harness::start().await;
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let patches = [
        (
            "value path",
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "alice@evil.com"}]),
        ),
        (
            "value path, odd case",
            json!([{"op": "replace", "path": "EMAILS[TYPE eq \"work\"].VALUE", "value": "alice@evil.com"}]),
        ),
        (
            "whole emails",
            json!([{"op": "replace", "path": "emails", "value": [{"value": "alice@evil.com", "type": "work", "primary": true}]}]),
        ),
        (
            "URN path",
            json!([{"op": "replace", "path": format!("{USER_SCHEMA}:emails"), "value": [{"value": "alice@evil.com", "type": "work", "primary": true}]}]),
        ),
        (
            "add a second email",
            json!([{"op": "add", "path": "emails", "value": [{"value": "alice@evil.com", "type": "home"}]}]),
        ),
        (
            "path-less emails",
            json!([{"op": "replace", "value": {"emails": [{"value": "alice@evil.com", "type": "work", "primary": true}]}}]),
        ),
        (
            "path-less, odd case",
            json!([{"op": "replace", "value": {"Emails": [{"value": "alice@evil.com", "type": "work", "primary": true}]}}]),
        ),
        (
            "path-less value path",
            json!([{"op": "replace", "value": {"emails[type eq \"work\"].value": "alice@evil.com"}}]),
        ),
        (
            "userName",
            json!([{"op": "replace", "path": "userName", "value": "alice@evil.com"}]),
        ),
        (
            "path-less userName",
            json!([{"op": "replace", "value": {"userName": "alice@evil.com"}}]),
        ),
        (
            "good then bad",
            json!([
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "alice2@example.com"},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "alice@evil.com"}
            ]),
        ),
    ];
    for (what, operations) in patches {
        let reply = h
            .scim(
                Method::PATCH,
                &format!("/Users/{id}"),
                Some(patch(operations)),
            )
            .await;
        assert!(
            matches!(reply.status.as_u16(), 400 | 403),
            "{what}: {} {}",
            reply.status,
            reply.body
        );
        assert_scim_error(
            &reply,
            reply.status.as_u16(),
            reply.body["scimType"].as_str(),
        );
        let upstream = h.upstream_user(&id).await.unwrap();
        assert_eq!(upstream["email"], "alice@example.com", "{what}: {upstream}");
        assert_eq!(
            upstream["userName"], "alice@example.com",
            "{what}: {upstream}"
        );
        assert_nothing_upstream_for(&h, "alice@evil.com").await;
    }
    let mut moved = alice();
    moved["emails"] = json!([{"value": "alice@evil.com", "type": "work", "primary": true}]);
    let reply = h
        .scim(Method::PUT, &format!("/Users/{id}"), Some(moved))
        .await;
    assert_scim_error(&reply, 403, None);
    let mut renamed = alice();
    renamed["userName"] = json!("alice@EVIL.com.");
    let reply = h
        .scim(Method::PUT, &format!("/Users/{id}"), Some(renamed))
        .await;
    assert_scim_error(&reply, 403, None);
    let upstream = h.upstream_user(&id).await.unwrap();
    assert_eq!(upstream["email"], "alice@example.com", "{upstream}");
    assert_eq!(upstream["userName"], "alice@example.com", "{upstream}");
}

// ─────────────────────── 6. failure throttle ───────────────────────

/// The gateway as production serves it (`listen::serve`, which puts the peer
/// address in every request); returns its root.
async fn start_listening() -> String {
    let upstream = demo::start_legacy(Database::Memory, API_KEY).await.unwrap();
    let config = demo::gateway_config(
        upstream,
        API_KEY,
        TOKEN,
        &["example.com".to_string()],
        ServerSettings::default(),
    )
    .unwrap();
    let router = server::router(&config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(server::listen::serve(
        listener,
        router,
        server::listen::ListenSettings::default(),
        None,
        std::future::pending(),
    ));
    format!("http://{address}")
}

async fn get_from(client: &reqwest::Client, url: &str, token: &str) -> Reply {
    common::read_reply(client.get(url).bearer_auth(token).send().await.unwrap()).await
}

#[tokio::test]
async fn repeated_auth_failures_from_one_address_are_throttled() {
    let root = start_listening().await;
    let url = format!("{root}/scim/v2/ServiceProviderConfig");
    let attacker = client_from(fresh_ip());
    for attempt in 1..=10 {
        let reply = get_from(&attacker, &url, &format!("guess-{attempt}")).await;
        assert_scim_error(&reply, 401, None);
    }
    // The 11th failure within the minute is throttled.
    let throttled = get_from(&attacker, &url, "guess-11").await;
    assert_scim_error(&throttled, 429, None);
    let seconds: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    // The right token is never throttled (issue 12: behind an ingress every
    // IdP shares the attacker's address); only wrong ones are.
    let right = get_from(&attacker, &url, TOKEN).await;
    assert_eq!(right.status, 200);
    // Nor does another connection's base path give a fresh budget.
    let other_base = get_from(&attacker, &format!("{root}/scim/okta/v2/Users"), "guess").await;
    assert_scim_error(&other_base, 429, None);
    // Another address is untouched: its valid token works, and its own
    // failures are plain 401s.
    let neighbour = client_from(fresh_ip());
    assert_eq!(get_from(&neighbour, &url, TOKEN).await.status, 200);
    assert_scim_error(&get_from(&neighbour, &url, "nope").await, 401, None);
    assert_eq!(get_from(&neighbour, &url, TOKEN).await.status, 200);
    // Health stays outside the throttle.
    let health = attacker
        .get(format!("{root}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn valid_tokens_do_not_spend_the_failure_budget() {
    let root = start_listening().await;
    let url = format!("{root}/scim/v2/ServiceProviderConfig");
    let client = client_from(fresh_ip());
    for _ in 0..50 {
        assert_eq!(get_from(&client, &url, TOKEN).await.status, 200);
    }
    for _ in 0..10 {
        assert_scim_error(&get_from(&client, &url, "nope").await, 401, None);
    }
    assert_scim_error(&get_from(&client, &url, "nope").await, 429, None);
}
