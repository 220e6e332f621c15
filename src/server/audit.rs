//! Writes one audit line per provisioning write of a connection, whatever
//! answered it (handler, extractor, rate limiter), with the correlation id.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::response::Response;
use http::Method;
use serde_json::Value;

use super::response::CorrelationId;
use crate::audit::{AuditLog, Entry, now};

pub struct AuditState {
    pub log: Arc<AuditLog>,
    pub connection: String,
    /// Bodies are at most this large (the gateway refuses larger ones).
    pub max_body_bytes: usize,
}

/// Runs `inner` on the request (the SCIM `operation` it is); a provisioning
/// write is audited with the answer it got, whoever gave it.
pub async fn record<F, Fut>(
    state: &AuditState,
    operation: &'static str,
    request: Request,
    inner: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let is_write = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && !operation.starts_with("search")
        && operation != "other";
    if !is_write {
        return inner(request).await;
    }
    let path = request.uri().path().to_string();
    let correlation_id = request
        .extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone())
        .unwrap_or_default();
    // The body is read here and handed on: writes are small and bounded.
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, state.max_body_bytes).await else {
        let response = crate::scim::error::ScimError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            None,
            "the request body is larger than this gateway accepts",
        );
        write(
            state,
            operation,
            &path,
            &Value::Null,
            413,
            Some(&response.detail),
            &Value::Null,
            &correlation_id,
        );
        return axum::response::IntoResponse::into_response(response);
    };
    let sent: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let response = inner(Request::from_parts(parts, Body::from(bytes))).await;
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let answered: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let detail = (status >= 400)
        .then(|| answered["detail"].as_str())
        .flatten();
    write(
        state,
        operation,
        &path,
        &sent,
        status,
        detail,
        &answered,
        &correlation_id,
    );
    Response::from_parts(parts, Body::from(bytes))
}

#[expect(
    clippy::too_many_arguments,
    reason = "one audit line's fields, gathered in one place"
)]
fn write(
    state: &AuditState,
    operation: &str,
    path: &str,
    sent: &Value,
    status: u16,
    detail: Option<&str>,
    answered: &Value,
    correlation_id: &str,
) {
    let id_in_path = path.trim_start_matches('/').split('/').nth(1);
    let id = answered["id"].as_str().or(id_in_path);
    let text = |key: &str| answered[key].as_str().or(sent[key].as_str());
    state.log.write(&Entry {
        time: now(),
        connection: &state.connection,
        operation,
        scim_id: id,
        upstream_id: id,
        user_name: text("userName"),
        display_name: text("displayName"),
        outcome: if status < 400 { "ok" } else { "failed" },
        status,
        detail,
        correlation_id,
    });
}
