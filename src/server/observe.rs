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
    metrics::describe_counter!(
        "scimgate_cluster_fallback_total",
        "Decisions (rate, lock, in_flight) this replica took alone because the cluster store was down"
    );
    metrics::describe_gauge!(
        "scimgate_lookup_index_records",
        "Records the last full read of a look-up index found, by upstream and resource"
    );
    metrics::describe_gauge!(
        "scimgate_lookup_index_bytes",
        metrics::Unit::Bytes,
        "Heap a look-up index holds after its last full read, by upstream and resource"
    );
    metrics::describe_gauge!(
        "scimgate_build_info",
        "Always 1; the labels say which build is running"
    );
    metrics::describe_counter!(
        "scimgate_config_reloads_total",
        "Config reloads by result: applied, or refused (the previous config keeps serving)"
    );
    metrics::describe_gauge!(
        "scimgate_config_last_reload_success",
        "1 if the last config reload was applied, 0 if it was refused"
    );
    metrics::describe_gauge!(
        "scimgate_config_last_reload_timestamp_seconds",
        metrics::Unit::Seconds,
        "When the config was last loaded or reload was last attempted (Unix time)"
    );
    // Present from the first scrape, so a dashboard or an alert on them
    // never reads a missing series as zero by accident.
    metrics::gauge!("scimgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::gauge!("scimgate_in_flight_requests").increment(0.0);
    for result in ["applied", "refused"] {
        metrics::counter!("scimgate_config_reloads_total", "result" => result).increment(0);
    }
    metrics::gauge!("scimgate_config_last_reload_success").set(1.0);
    metrics::gauge!("scimgate_config_last_reload_timestamp_seconds").set(unix_now());
}

/// Seconds since the Unix epoch, as a gauge holds them.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// Records one reload's result (`reload` calls it).
pub fn reloaded(applied: bool) {
    let result = if applied { "applied" } else { "refused" };
    metrics::counter!("scimgate_config_reloads_total", "result" => result).increment(1);
    metrics::gauge!("scimgate_config_last_reload_success").set(if applied { 1.0 } else { 0.0 });
    metrics::gauge!("scimgate_config_last_reload_timestamp_seconds").set(unix_now());
}

/// Registers, at zero, the series of one connection and one upstream that
/// would otherwise appear only at their first event. Adding zero leaves a
/// series a reload finds already counting as it is.
pub fn register_connection(connection: &str) {
    metrics::counter!("scimgate_rate_limited_total", "connection" => connection.to_string())
        .increment(0);
    // The latency of every operation, at no observations yet. (Request
    // counts are by status too, so they appear with the first answer.)
    for operation in OPERATIONS {
        // Creating the handle registers the series; nothing is recorded.
        let _registered = metrics::histogram!(
            "scimgate_request_duration_seconds",
            "connection" => connection.to_string(),
            "operation" => operation
        );
    }
}

/// Every value [`operation`] answers.
const OPERATIONS: [&str; 16] = [
    "list_users",
    "search_users",
    "create_user",
    "get_user",
    "replace_user",
    "patch_user",
    "delete_user",
    "list_groups",
    "search_groups",
    "create_group",
    "get_group",
    "replace_group",
    "patch_group",
    "delete_group",
    "discovery",
    "other",
];

pub fn register_upstream(upstream: &str, clustered: bool) {
    // A new router has new breakers, closed.
    metrics::gauge!("scimgate_upstream_breaker_state", "upstream" => upstream.to_string()).set(0.0);
    if clustered {
        for what in ["rate", "lock", "in_flight", "index"] {
            metrics::counter!("scimgate_cluster_fallback_total", "what" => what).increment(0);
        }
    }
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

/// The route template of a request, relative to its connection's base
/// path, as a trace span names it: the path with its ids left out.
pub fn route(operation: &'static str, path: &str) -> Option<&'static str> {
    Some(match operation {
        "list_users" | "create_user" => "/Users",
        "search_users" => "/Users/.search",
        "get_user" | "replace_user" | "patch_user" | "delete_user" => "/Users/{id}",
        "list_groups" | "create_group" => "/Groups",
        "search_groups" => "/Groups/.search",
        "get_group" | "replace_group" | "patch_group" | "delete_group" => "/Groups/{id}",
        "discovery" => {
            let mut parts = path.trim_start_matches('/').split('/');
            match (parts.next(), parts.next().is_some()) {
                (Some("ServiceProviderConfig"), _) => "/ServiceProviderConfig",
                (Some("ResourceTypes"), false) => "/ResourceTypes",
                (Some("ResourceTypes"), true) => "/ResourceTypes/{name}",
                (Some("Schemas"), false) => "/Schemas",
                (Some("Schemas"), true) => "/Schemas/{id}",
                _ => return None,
            }
        }
        _ => return None,
    })
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

    #[test]
    fn routes_leave_ids_out_and_name_only_what_is_served() {
        let route_of = |method: Method, path: &str| route(operation(&method, path), path);
        assert_eq!(route_of(Method::PATCH, "/Users/7f3a"), Some("/Users/{id}"));
        assert_eq!(
            route_of(Method::POST, "/Groups/.search"),
            Some("/Groups/.search")
        );
        assert_eq!(route_of(Method::GET, "/Groups"), Some("/Groups"));
        assert_eq!(
            route_of(Method::GET, "/Schemas/urn:x"),
            Some("/Schemas/{id}")
        );
        assert_eq!(
            route_of(Method::GET, "/ResourceTypes"),
            Some("/ResourceTypes")
        );
        assert_eq!(route_of(Method::GET, "/secret/7"), None);
    }
}
