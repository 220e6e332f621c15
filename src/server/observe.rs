//! Prometheus metrics: one process-wide recorder, `/metrics`, and the
//! per-request families (by connection, SCIM operation and status).

use std::sync::{Arc, OnceLock};
use tokio::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The recorder, installed on first use; `None` if another recorder was
/// installed first (metrics then go there).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            // Histograms buffer their samples until drained; without a
            // scrape they would grow forever, so drain them on a timer.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        #[expect(
                            clippy::disallowed_methods,
                            reason = "a thread of its own, not a runtime thread"
                        )]
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(
        "scimgate_requests_total",
        "SCIM requests by connection, operation and status"
    );
    metrics::describe_histogram!(
        "scimgate_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time the gateway took to answer a SCIM request, upstream calls included"
    );
    metrics::describe_histogram!(
        "scimgate_upstream_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time one upstream call took, by upstream, method and status"
    );
    metrics::describe_counter!(
        "scimgate_rate_limited_total",
        "Requests answered 429 by a connection's rate limit"
    );
    metrics::describe_gauge!(
        "scimgate_upstream_breaker_state",
        "Circuit breaker per upstream: 0 closed, 1 open, 2 half-open"
    );
    metrics::describe_gauge!(
        "scimgate_in_flight_requests",
        "SCIM requests being answered"
    );
}

pub async fn render() -> Response {
    match handle() {
        Some(handle) => (
            [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Most of a request path a log line carries: paths come from anyone,
/// unauthenticated too, and the log writer is lossless, so a 15 KB path
/// per request would cost the log (and every request waiting on it) dearly.
pub const LOGGED_PATH_BYTES: usize = 256;

/// `path` as a log line carries it: at most [`LOGGED_PATH_BYTES`], cut on a
/// character boundary and marked with how much was left out.
pub fn logged_path(path: &str) -> std::borrow::Cow<'_, str> {
    if path.len() <= LOGGED_PATH_BYTES {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut end = LOGGED_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…(+{} bytes)", &path[..end], path.len() - end))
}

/// The SCIM operation a request is, as a bounded label.
pub fn operation(method: &http::Method, path: &str) -> &'static str {
    let mut parts = path.trim_start_matches('/').split('/');
    let resource = parts.next().unwrap_or("");
    let item = parts.next();
    match (resource, item, method.as_str()) {
        ("Users", None, "GET") => "list_users",
        ("Users", Some(".search"), "POST") => "search_users",
        ("Users", None, "POST") => "create_user",
        ("Users", Some(_), "GET") => "get_user",
        ("Users", Some(_), "PUT") => "replace_user",
        ("Users", Some(_), "PATCH") => "patch_user",
        ("Users", Some(_), "DELETE") => "delete_user",
        ("Groups", None, "GET") => "list_groups",
        ("Groups", Some(".search"), "POST") => "search_groups",
        ("Groups", None, "POST") => "create_group",
        ("Groups", Some(_), "GET") => "get_group",
        ("Groups", Some(_), "PUT") => "replace_group",
        ("Groups", Some(_), "PATCH") => "patch_group",
        ("Groups", Some(_), "DELETE") => "delete_group",
        ("ServiceProviderConfig" | "ResourceTypes" | "Schemas", _, "GET") => "discovery",
        _ => "other",
    }
}

/// Counts and times one request of a connection, from `start` to `finish`.
pub struct RequestTimer {
    connection: Arc<str>,
    operation: &'static str,
    started: Instant,
}

impl RequestTimer {
    pub fn start(connection: Arc<str>, request: &Request) -> Self {
        metrics::gauge!("scimgate_in_flight_requests").increment(1.0);
        RequestTimer {
            connection,
            operation: operation(request.method(), request.uri().path()),
            started: Instant::now(),
        }
    }

    pub fn operation(&self) -> &'static str {
        self.operation
    }

    pub fn finish(self, status: http::StatusCode) {
        // Labels share the connection's name and static strings: no copies per request.
        let connection = metrics::SharedString::from(self.connection.clone());
        metrics::histogram!("scimgate_request_duration_seconds", "connection" => connection.clone(), "operation" => self.operation)
            .record(self.started.elapsed().as_secs_f64());
        metrics::counter!(
            "scimgate_requests_total",
            "connection" => connection,
            "operation" => self.operation,
            "status" => crate::metric_labels::status(status)
        )
        .increment(1);
    }
}

/// A request leaves the in-flight count however it ends, abandoned by its
/// client included.
impl Drop for RequestTimer {
    fn drop(&mut self) {
        metrics::gauge!("scimgate_in_flight_requests").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn a_logged_path_is_bounded_on_a_char_boundary_and_marked() {
        assert_eq!(logged_path("/scim/v2/Users"), "/scim/v2/Users");
        let exact = "a".repeat(LOGGED_PATH_BYTES);
        assert_eq!(logged_path(&exact), exact.as_str());
        let long = format!("/{}", "a".repeat(15_000));
        let logged = logged_path(&long);
        assert!(logged.starts_with(&long[..LOGGED_PATH_BYTES]), "{logged}");
        assert!(logged.ends_with("…(+14745 bytes)"), "{logged}");
        // A two-byte character across the cut is left out whole.
        let split = format!("{}é{}", "a".repeat(LOGGED_PATH_BYTES - 1), "b".repeat(10));
        let logged = logged_path(&split);
        assert!(
            logged.starts_with(&format!("{}…", "a".repeat(LOGGED_PATH_BYTES - 1))),
            "{logged}"
        );
        assert!(logged.ends_with("(+12 bytes)"), "{logged}");
    }

    #[test]
    fn operations_are_named_from_method_and_path() {
        assert_eq!(operation(&Method::GET, "/Users"), "list_users");
        assert_eq!(operation(&Method::PATCH, "/Groups/7"), "patch_group");
        assert_eq!(operation(&Method::POST, "/Users/.search"), "search_users");
        assert_eq!(operation(&Method::GET, "/Schemas/urn:x"), "discovery");
        assert_eq!(operation(&Method::GET, "/../etc/passwd"), "other");
    }
}
