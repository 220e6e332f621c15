//! Traces over OpenTelemetry: a server span per SCIM request, a client span
//! per upstream call, exported over OTLP/HTTP (protobuf) as the standard
//! `OTEL_*` environment variables configure it, and W3C `traceparent` sent
//! to the upstream. Off unless an OTLP endpoint is set; off, the request
//! path creates none of these spans and sends no trace header.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The target of the gateway's trace spans: only the exporting layer takes
/// them, so log lines never list them.
pub const TARGET: &str = "scimgate::trace";

/// The log filter's directive that keeps trace spans out of log lines.
pub const LOGS_SKIP_TRACE_SPANS: &str = "scimgate::trace=off";

/// How long one export may take when no `OTEL_*_TIMEOUT` says (the spec's default).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most of a collector's answer the exporter reads (it answers a few bytes).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported: the request path makes its spans and
/// trace headers only then.
#[inline]
pub fn enabled() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TelemetryError {
    #[error(
        "{variable}={value:?} is not supported: scimgate exports traces over OTLP/HTTP with protobuf (`http/protobuf`)"
    )]
    Protocol {
        variable: &'static str,
        value: String,
    },
    #[error(
        "OTEL_TRACES_EXPORTER={0:?} is not supported: `otlp` exports traces, `none` exports nothing"
    )]
    Exporter(String),
    #[error("{variable}={value:?} is not a number of milliseconds")]
    Timeout {
        variable: &'static str,
        value: String,
    },
    #[error("the OTLP trace exporter cannot be built: {0}")]
    Build(String),
}

/// What the environment asks of tracing, once it asks for any.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How long one export may take (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`,
    /// else `OTEL_EXPORTER_OTLP_TIMEOUT`, in ms).
    pub timeout: Duration,
    /// Neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names the
    /// service, so it is `scimgate` rather than the SDK's `unknown_service`.
    pub name_the_service: bool,
}

/// Reads the standard variables through `env`: `None` when no OTLP endpoint
/// is set, or tracing is turned off (`OTEL_SDK_DISABLED=true`,
/// `OTEL_TRACES_EXPORTER=none`). The exporter reads endpoint, headers and
/// compression itself; what it would take but cannot serve is refused here.
pub fn settings(env: impl Fn(&str) -> Option<String>) -> Result<Option<Settings>, TelemetryError> {
    let set = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    match set("OTEL_TRACES_EXPORTER").as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => return Err(TelemetryError::Exporter(other.to_string())),
    }
    if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        && set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    // The signal's own variable wins over the general one, for each setting.
    let first = |variables: [&'static str; 2]| {
        variables
            .into_iter()
            .find_map(|variable| set(variable).map(|value| (variable, value)))
    };
    if let Some((variable, value)) = first([
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]) && value != "http/protobuf"
    {
        return Err(TelemetryError::Protocol { variable, value });
    }
    let timeout = match first([
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]) {
        None => DEFAULT_TIMEOUT,
        Some((variable, value)) => value
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| TelemetryError::Timeout { variable, value })?,
    };
    let name_the_service = set("OTEL_SERVICE_NAME").is_none()
        && !set("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
            attributes
                .split(',')
                .any(|pair| pair.trim_start().starts_with("service.name="))
        });
    Ok(Some(Settings {
        timeout,
        name_the_service,
    }))
}

/// The running exporter; [`Exporter::shutdown`] sends what is queued.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Starts exporting: call it on the runtime, which sends the batches.
    pub fn start(settings: &Settings) -> Result<Exporter, TelemetryError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|error| TelemetryError::Build(error.to_string()))?;
        let client = ExportClient {
            http,
            runtime: tokio::runtime::Handle::current(),
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_timeout(settings.timeout)
            .with_http_client(client)
            .build()
            .map_err(|error| TelemetryError::Build(error.to_string()))?;
        let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ));
        if settings.name_the_service {
            resource = resource.with_service_name("scimgate");
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        EXPORTING.store(true, Ordering::Relaxed);
        Ok(Exporter { provider })
    }

    /// The layer that turns the gateway's trace spans into exported spans;
    /// it sees no other span or event.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("scimgate"))
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(TARGET, tracing::Level::TRACE),
            )
    }

    /// Sends what is queued, waiting up to the export timeout; the SDK's
    /// shutdown blocks, so it runs off the runtime's threads.
    pub async fn shutdown(self) {
        EXPORTING.store(false, Ordering::Relaxed);
        let provider = self.provider;
        let shut = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = shut {
            tracing::warn!(%error, "traces queued at shutdown could not all be exported");
        }
    }
}

/// Continues the trace an incoming request names in its `traceparent`
/// (the parent-based sampler then follows the caller's decision).
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        // Fails only for a span already started or not exported: nothing to continue.
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` (and `tracestate`) naming `span` as the parent of what
/// the receiver does.
pub fn trace_headers(span: &tracing::Span) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    TraceContextPropagator::new()
        .inject_context(&span.context(), &mut HeaderInjector(&mut headers));
    headers
}

/// Records an answer on a span made by the gateway (nothing for
/// `Span::none()`); `failed` marks it an error, with the status as the
/// error type.
pub fn answered(span: &tracing::Span, status: http::StatusCode, failed: bool) {
    if span.is_none() {
        return;
    }
    span.record("http.response.status_code", status.as_u16());
    if failed {
        span.record("error.type", status.as_str());
        span.record("otel.status_code", "error");
    }
}

/// Marks a span whose exchange got no (whole) answer: `timeout`, `unreachable`.
pub fn failed(span: &tracing::Span, error_type: &'static str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "error");
}

/// The exporter's HTTP client: the gateway's reqwest, run on the gateway's
/// runtime, since the SDK exports from a thread of its own.
#[derive(Debug)]
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let http = self.http.clone();
        self.runtime
            .spawn(async move {
                let mut response = http.execute(reqwest::Request::try_from(request)?).await?;
                let mut body = Vec::new();
                while let Some(chunk) = response.chunk().await? {
                    if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                        return Err::<_, HttpError>("the collector's answer is too large".into());
                    }
                    body.extend_from_slice(&chunk);
                }
                // The exporter reads the status (and a Retry-After) itself.
                let mut answer = http::Response::new(Bytes::from(body));
                *answer.status_mut() = response.status();
                *answer.headers_mut() = std::mem::take(response.headers_mut());
                Ok(answer)
            })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<Settings>, TelemetryError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        settings(|name| env.get(name).cloned())
    }

    const ENDPOINT: (&str, &str) = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");

    #[test]
    fn tracing_is_off_without_an_endpoint_or_when_turned_off() {
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")]), Ok(None));
        assert_eq!(read(&[ENDPOINT, ("OTEL_SDK_DISABLED", "TRUE")]), Ok(None));
        assert_eq!(
            read(&[ENDPOINT, ("OTEL_TRACES_EXPORTER", "none")]),
            Ok(None)
        );
        let on = read(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]);
        assert_eq!(
            on,
            Ok(Some(Settings {
                timeout: DEFAULT_TIMEOUT,
                name_the_service: true
            }))
        );
    }

    #[test]
    fn what_the_exporter_cannot_serve_is_refused_by_name() {
        assert_eq!(
            read(&[ENDPOINT, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]),
            Err(TelemetryError::Protocol {
                variable: "OTEL_EXPORTER_OTLP_PROTOCOL",
                value: "grpc".into()
            })
        );
        // The signal's own variable wins over the general one.
        assert!(matches!(
            read(&[
                ENDPOINT,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
            ]),
            Ok(Some(_))
        ));
        assert_eq!(
            read(&[ENDPOINT, ("OTEL_TRACES_EXPORTER", "zipkin")]),
            Err(TelemetryError::Exporter("zipkin".into()))
        );
        let error = read(&[ENDPOINT, ("OTEL_EXPORTER_OTLP_TIMEOUT", "5s")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "OTEL_EXPORTER_OTLP_TIMEOUT=\"5s\" is not a number of milliseconds"
        );
    }

    #[test]
    fn timeout_and_service_name_follow_the_environment() {
        let settings = read(&[
            ENDPOINT,
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "250"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod, service.name=edge",
            ),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(settings.timeout, Duration::from_millis(250));
        assert!(!settings.name_the_service);
        let named = read(&[ENDPOINT, ("OTEL_SERVICE_NAME", "scim-edge")])
            .unwrap()
            .unwrap();
        assert!(!named.name_the_service);
    }
}
