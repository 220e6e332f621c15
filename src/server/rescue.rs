//! The one error boundary: every failure a request meets, from whichever
//! layer, leaves the gateway here as a SCIM error body (RFC 7644 §3.12).
//!
//! The layers below keep typed errors of their own (`MappingError`,
//! `CallError`, `ProvisionError`, the SCIM core's parse errors); which status
//! and `scimType` each becomes is decided in this module and nowhere else,
//! and no layer inspects a wire status to decide what to do.

use axum::response::{IntoResponse, Response};
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use super::response::{ErrorMarker, json_response};
use crate::scim::error::ScimError;
use crate::scim::patch::PatchError;

/// A failure on its way out as a response: what handlers, extractors and
/// middleware return where a request ends in an error.
#[derive(Debug)]
pub struct ErrorResponse(pub ScimError);

impl From<ScimError> for ErrorResponse {
    fn from(error: ScimError) -> Self {
        ErrorResponse(error)
    }
}

impl From<PatchError> for ErrorResponse {
    fn from(error: PatchError) -> Self {
        ErrorResponse(ScimError::from(error))
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let ErrorResponse(error) = self;
        let mut response = json_response(error.status, &error.body(None));
        let headers = response.headers_mut();
        if let Some(seconds) = error.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if error.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scimgate\""),
            );
        }
        response.extensions_mut().insert(ErrorMarker::new(error));
        response
    }
}
