//! The one wire error of the Wrike API: `{"errorDescription": "…", "error": "<code>"}`
//! with the status Wrike gives that code.
//!
//! | code | status | when |
//! | --- | --- | --- |
//! | `invalid_request` | 400 | unsupported or repeated parameter, wrong content type, unreadable body |
//! | `invalid_parameter` | 400 | a parameter's value is malformed or names something that does not exist |
//! | `parameter_required` | 400 | a required parameter is absent |
//! | `not_authorized` | 401 | no, malformed or wrong token |
//! | `not_allowed` | 403 | the action is refused in the record's state (a deleted user) |
//! | `resource_not_found` | 404 | no record with that id |
//! | `method_not_found` | 404 | no such API method (unknown path, or a verb the path lacks) |
//! | `server_error` | 500 | the store failed |
//!
//! Every failure of an extractor, a handler or the store becomes an [`ApiError`] at
//! one boundary, so no framework plain-text error reaches a client.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

/// The `error` codes this API answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidParameter,
    ParameterRequired,
    NotAuthorized,
    NotAllowed,
    ResourceNotFound,
    MethodNotFound,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::ParameterRequired => "parameter_required",
            ErrorCode::NotAuthorized => "not_authorized",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::ResourceNotFound => "resource_not_found",
            ErrorCode::MethodNotFound => "method_not_found",
            ErrorCode::ServerError => "server_error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidParameter
            | ErrorCode::ParameterRequired => StatusCode::BAD_REQUEST,
            ErrorCode::NotAuthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotAllowed => StatusCode::FORBIDDEN,
            ErrorCode::ResourceNotFound | ErrorCode::MethodNotFound => StatusCode::NOT_FOUND,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: a code and its human-readable description.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {description}", code.status().as_u16(), code.as_str())]
pub struct ApiError {
    pub code: ErrorCode,
    pub description: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> ApiError {
        ApiError {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_parameter(description: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidParameter, description)
    }

    pub fn parameter_required(name: &str) -> ApiError {
        ApiError::new(
            ErrorCode::ParameterRequired,
            format!("Parameter '{name}' is required"),
        )
    }

    pub fn not_allowed(description: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotAllowed, description)
    }

    pub fn not_found(description: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::ResourceNotFound, description)
    }

    pub fn server_error(description: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::ServerError, description)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "errorDescription": self.description,
            "error": self.code.as_str(),
        });
        (self.code.status(), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn errors_are_the_wrike_pair_with_the_codes_status() {
        let response = ApiError::invalid_parameter("bad email").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            json!({"errorDescription": "bad email", "error": "invalid_parameter"})
        );
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"errorDescription":"bad email","error":"invalid_parameter"}"#,
            "errorDescription comes first, as Wrike writes it"
        );
    }

    #[test]
    fn every_code_has_its_wrike_status() {
        for (code, status) in [
            (ErrorCode::InvalidRequest, 400),
            (ErrorCode::InvalidParameter, 400),
            (ErrorCode::ParameterRequired, 400),
            (ErrorCode::NotAuthorized, 401),
            (ErrorCode::NotAllowed, 403),
            (ErrorCode::ResourceNotFound, 404),
            (ErrorCode::MethodNotFound, 404),
            (ErrorCode::ServerError, 500),
        ] {
            assert_eq!(code.status().as_u16(), status, "{}", code.as_str());
        }
    }
}
