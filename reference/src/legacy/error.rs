//! The legacy API's one wire error: `{"error":{"code":"SCREAMING_CODE","message":"…"}}`.
//!
//! Every failure a handler, an extractor or the store can produce is turned into an
//! [`ApiError`] at exactly one boundary ([`From<StoreError>`] and the extractors'
//! rejections), so no framework plain-text error ever reaches a client.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use super::store::StoreError;

/// An error answer of the legacy API: an HTTP status, a machine code and a human message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing or wrong X-Api-Key header",
        )
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    pub(crate) fn invalid_field(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FIELD", message)
    }

    pub(crate) fn bad_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_JSON", message)
    }

    /// A failure that is ours, not the client's: logged in full, answered vaguely.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "legacy api internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; see the server log",
        )
    }

    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(message) => ApiError::not_found(message),
            StoreError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            StoreError::InvalidReference(message) => ApiError::invalid_field(message),
            stale @ StoreError::Stale { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "VERSION_MISMATCH",
                stale.to_string(),
            ),
            StoreError::Poisoned => ApiError::internal("store mutex poisoned by an earlier panic"),
            StoreError::Sqlite(err) => ApiError::internal(err),
            StoreError::Clock(err) => ApiError::internal(err),
        }
    }
}
