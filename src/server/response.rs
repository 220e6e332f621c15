//! How SCIM answers leave the gateway: `application/scim+json` bodies, and
//! every error as a SCIM error body carrying the request's correlation id.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, ETAG, LOCATION};
use http::{HeaderValue, StatusCode};
use serde_json::Value;
use tracing::Instrument;

use super::rescue::ErrorResponse;
use crate::scim::error::ScimError;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// A successful SCIM answer.
#[derive(Debug)]
pub struct ScimResponse {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub location: Option<String>,
    pub etag: Option<String>,
    /// A write's answer: its resource goes on the response for the audit
    /// line (`AnsweredResource`). Reads are not audited and skip it.
    pub audited: bool,
}

impl ScimResponse {
    pub fn ok(body: Value) -> Self {
        ScimResponse {
            status: StatusCode::OK,
            body: Some(body),
            location: None,
            etag: None,
            audited: false,
        }
    }

    /// The answer to a write, whose resource the audit line reads.
    pub fn audited(self) -> Self {
        ScimResponse {
            audited: true,
            ..self
        }
    }

    pub fn no_content() -> Self {
        ScimResponse {
            status: StatusCode::NO_CONTENT,
            body: None,
            location: None,
            etag: None,
            audited: false,
        }
    }
}

/// The resource a write's answer was written from, carried on the response
/// for the audit line (which would otherwise parse the body it was just
/// serialized into).
#[derive(Debug, Clone)]
pub(super) struct AnsweredResource(pub(super) std::sync::Arc<Value>);

impl IntoResponse for ScimResponse {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => {
                let mut response = json_response(self.status, &body);
                if self.audited {
                    response
                        .extensions_mut()
                        .insert(AnsweredResource(std::sync::Arc::new(body)));
                }
                response
            }
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        if let Some(value) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(LOCATION, value);
        }
        set_etag(&mut response, self.etag);
        response
    }
}

/// A read's answer, its JSON text written already.
pub(super) fn written_resource(body: Vec<u8>, etag: Option<String>) -> Response {
    let mut response = json_text_response(StatusCode::OK, body);
    set_etag(&mut response, etag);
    response
}

fn set_etag(response: &mut Response, etag: Option<String>) {
    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response.headers_mut().insert(ETAG, value);
    }
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    json_text_response(status, crate::scim::json::to_vec(body))
}

/// A SCIM answer whose JSON text is written already.
pub(super) fn json_text_response(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response {
    let mut response = (status, body.into()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE));
    response
}

/// Marks a response as a SCIM error so [`correlated`] can add the request id.
#[derive(Clone)]
pub(super) struct ErrorMarker {
    error: ScimError,
    /// Whether the "request failed" line was written already.
    logged: bool,
}

impl ErrorMarker {
    pub(super) fn new(error: ScimError) -> Self {
        ErrorMarker {
            error,
            logged: false,
        }
    }
}

const REQUEST_ID: &str = "x-request-id";

/// The id that ties one request's logs, audit line and error `detail` together.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

/// Runs `inner` on the request with its correlation id (a sane one the client
/// sent, or a new one), echoes the id as `X-Request-Id` and writes it into
/// error bodies. The listener calls this around everything else, its own
/// request deadline included.
pub async fn correlated<F, Fut>(mut request: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %super::observe::logged_path(request.uri().path()),
    );
    let mut response = inner(request).instrument(span.clone()).await;
    span.in_scope(|| log_failure(&mut response));
    if let Some(ErrorMarker { error, .. }) = response.extensions_mut().remove::<ErrorMarker>() {
        let rebuilt = json_response(error.status, &error.body(Some(&id)));
        let (parts, _) = response.into_parts();
        let (_, body) = rebuilt.into_parts();
        response = Response::from_parts(parts, body);
        response.headers_mut().remove(http::header::CONTENT_LENGTH);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Logs a SCIM error answer once, in the current span: called in a
/// connection's span first, so the line names connection, dialect and
/// operation; the listener logs the failures no connection answered.
pub fn log_failure(response: &mut Response) {
    if let Some(marker) = response.extensions_mut().get_mut::<ErrorMarker>()
        && !marker.logged
    {
        marker.logged = true;
        tracing::info!(status = marker.error.status.as_u16(), detail = %marker.error.detail, "request failed");
    }
}

/// Whether a client's `X-Request-Id` may become the correlation id: it
/// lands in the audit log, every log line and error `detail`, so only a
/// short token (1–64 of `A-Z a-z 0-9 . _ : -`) is taken; anything else gets a
/// new id rather than being quoted.
fn well_formed_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn new_request_id() -> String {
    let bytes: [u8; 12] = rand::random();
    hex::encode(bytes)
}

/// The answer to a request whose handler panicked (a bug): a SCIM 500 that
/// says nothing of the panic, which goes to the log instead.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    ErrorResponse(ScimError::internal(
        "the gateway failed on this request; the failure is logged with this correlation id",
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_well_formed_request_ids_are_taken_from_the_client() {
        for taken in ["a", "okta:req-1.2_x", &"x".repeat(64)] {
            assert!(well_formed_request_id(taken), "{taken}");
        }
        for refused in ["", &"x".repeat(65), "a b", "a\"b", "{\"k\":1}", "é", "a/b"] {
            assert!(!well_formed_request_id(refused), "{refused}");
        }
    }

    #[tokio::test]
    async fn a_panic_becomes_a_scim_500_that_does_not_quote_the_panic() {
        let response = panic_response(Box::new("index out of bounds: secret-ish detail"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[CONTENT_TYPE], SCIM_CONTENT_TYPE);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["status"], "500");
        assert!(!body.to_string().contains("secret-ish"), "{body}");
    }
}
