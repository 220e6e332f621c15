//! `request`: one HTTP request through the whole gateway router, in process.
//!
//! Input layout: byte 0 picks the method, byte 1 a path prefix, byte 2 the
//! headers (bits 0-2 auth, 3-4 Content-Type, 5-6 User-Agent, 7 If-Match),
//! byte 3 the length of a suffix appended percent-encoded to the prefix, and
//! everything after the suffix is the body.
//!
//! The upstream is 127.0.0.1:9 (nothing listens) and its circuit breaker opens
//! on the first failure and stays open, so after the one priming request every
//! upstream call fails at once with 503: per-input work stays small.
//!
//! Asserted: no answer is a 500 (a bug, even as a SCIM body); every other
//! non-2xx answer is a SCIM error body;
//! a panic in a handler and a request hanging for 10 s are crashes too.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, header};
use http_body_util::BodyExt;
use scimgate::config::{BreakerSpec, ServerSettings};
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token";
const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Where requests go; the fuzzer's suffix is appended (percent-encoded).
const PREFIXES: &[&str] = &[
    "/scim/v2/Users",
    "/scim/v2/Users/",
    "/scim/v2/Users?filter=",
    "/scim/v2/Users?attributes=",
    "/scim/v2/Users?excludedAttributes=",
    "/scim/v2/Users?startIndex=",
    "/scim/v2/Users?count=",
    "/scim/v2/Users/.search",
    "/scim/v2/Groups",
    "/scim/v2/Groups/",
    "/scim/v2/Groups?filter=",
    "/scim/v2/Groups/.search",
    "/scim/entra/v2/Users/",
    "/scim/entra/v2/Groups/",
    "/scim/okta/v2/Users/",
    "/scim/okta/v2/Groups?filter=",
    "/scim/onelogin/v2/Users/",
    "/scim/generic/v2/Users?filter=",
    "/scim/v2/Schemas/",
    "/scim/v2/ResourceTypes/",
    "/scim/v2/ServiceProviderConfig",
    "/scim/v2/.search",
    "/scim/v2/",
    "/",
];

/// Endpoints that are not SCIM and answer in their own format.
const NOT_SCIM: &[&str] = &["/healthz", "/readyz", "/metrics"];

struct Gateway {
    runtime: tokio::runtime::Runtime,
    router: Router,
}

fn gateway() -> &'static Gateway {
    static GATEWAY: OnceLock<Gateway> = OnceLock::new();
    GATEWAY.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let upstream = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut config = scimgate::demo::gateway_config(
            upstream,
            "fuzz-upstream-key",
            TOKEN,
            &["example.com".to_string()],
            ServerSettings::default(),
        )
        .expect("demo config");
        for upstream in &mut config.upstreams {
            upstream.budget.breaker = BreakerSpec {
                failures: 1,
                cooldown_ms: 365 * 24 * 3600 * 1000,
            };
        }
        let router = runtime.block_on(async {
            let router = scimgate::server::router(&config).expect("router");
            // Trip the breaker once so no later input waits on a connect.
            let prime = Request::get("/scim/v2/Users/1")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .expect("priming request");
            let _ = router.clone().oneshot(prime).await;
            router
        });
        Gateway { runtime, router }
    })
}

/// Bytes kept as they are in the URI: enough for the fuzzer to write
/// `…/Users/x&count=3` or `a,b` without the encoding hiding structure.
fn keep(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~/&=,:".contains(&b)
}

fn encode(suffix: &[u8]) -> String {
    let mut out = String::with_capacity(suffix.len() * 3);
    for &b in suffix {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn run(data: &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let method = METHODS[byte(0) as usize % METHODS.len()].clone();
    let prefix = PREFIXES[byte(1) as usize % PREFIXES.len()];
    let flags = byte(2);
    let rest = data.get(4..).unwrap_or_default();
    let (suffix, body) = rest.split_at((byte(3) as usize).min(rest.len()));
    let uri = format!("{prefix}{}", encode(suffix));

    let mut request = Request::builder().method(method).uri(&uri);
    match flags & 0b111 {
        0..=4 => request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}")),
        5 => {}
        6 => request = request.header(header::AUTHORIZATION, "Bearer not-the-token"),
        _ => request = request.header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz"),
    }
    match (flags >> 3) & 0b11 {
        0 => request = request.header(header::CONTENT_TYPE, "application/scim+json"),
        1 => {}
        2 => request = request.header(header::CONTENT_TYPE, "application/json; charset=utf-8"),
        _ => request = request.header(header::CONTENT_TYPE, "text/plain"),
    }
    match (flags >> 5) & 0b11 {
        0 => {}
        1 => request = request.header(header::USER_AGENT, "Azure AD SCIM Client"),
        2 => request = request.header(header::USER_AGENT, "Okta SCIM Client 1.0.0"),
        _ => request = request.header(header::USER_AGENT, "curl/8.5.0"),
    }
    if flags & 0x80 != 0 {
        request = request.header(header::IF_MATCH, "W/\"3694e05e9dff591\"");
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };
    let path = request.uri().path().to_string();

    let gateway = gateway();
    let (status, bytes) = gateway.runtime.block_on(async {
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            gateway.router.clone().oneshot(request),
        )
        .await
        .unwrap_or_else(|_| panic!("{uri}: no answer within 10 s"))
        .expect("the router is infallible");
        let status = answer.status();
        let bytes = answer
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        (status, bytes)
    });

    // A 500 is a bug whatever its body: handler panics become SCIM 500s, and
    // an unreachable upstream answers 503, never 500.
    assert!(
        status != http::StatusCode::INTERNAL_SERVER_ERROR,
        "{uri}: 500: {}",
        String::from_utf8_lossy(&bytes)
    );
    if status.is_success() || NOT_SCIM.contains(&path.as_str()) {
        return;
    }
    let text = String::from_utf8_lossy(&bytes);
    let error: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri}: {status} with a body that is not JSON ({e}): {text:?}"));
    let is_scim_error = error
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|urns| urns.iter().any(|u| u == ERROR_URN));
    assert!(
        is_scim_error,
        "{uri}: {status} with a body that is not a SCIM error: {text}"
    );
}
