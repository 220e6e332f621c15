//! The directory API's one wire error: RFC 7807 problem details, served as
//! `application/problem+json`.
//!
//! ```json
//! {"type": "https://directory.example/problems/invalid-field", "title": "Invalid field",
//!  "status": 422, "detail": "…", "errors": [{"field": "contact.email", "message": "…"}]}
//! ```
//!
//! `errors` appears only on `invalid-field`. Every failure a handler, an extractor or
//! the store can produce becomes a [`Problem`] at one boundary ([`From<StoreError>`]
//! and the extractors' rejections), so no framework plain-text error reaches a client.

use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::store::StoreError;

/// Prefix of every problem `type`; the slug follows.
pub(crate) const TYPE_BASE: &str = "https://directory.example/problems/";

pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// One rejected field of a body or query: a dotted path (`contact.phones[0].number`)
/// and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error answer: status, slug, title, detail and, for `invalid-field`, the fields.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    /// The RFC 6749 §5.2 `error` code, added as an extension member on token-endpoint
    /// problems so OAuth client libraries understand them too.
    oauth_error: Option<&'static str>,
    www_authenticate: Option<&'static str>,
}

impl Problem {
    pub(crate) fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            oauth_error: None,
            www_authenticate: None,
        }
    }

    /// 401 for a missing, unknown or expired bearer token.
    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Problem {
            www_authenticate: Some("Bearer realm=\"directory\""),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                detail,
            )
        }
    }

    /// 401 from the token endpoint: unknown client or wrong secret.
    pub(crate) fn invalid_client() -> Self {
        Problem {
            oauth_error: Some("invalid_client"),
            www_authenticate: Some("Basic realm=\"directory\""),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "client authentication failed: unknown client id or wrong secret",
            )
        }
    }

    /// 400 from the token endpoint: a malformed token request.
    pub(crate) fn oauth(oauth_error: &'static str, detail: impl Into<String>) -> Self {
        let slug = match oauth_error {
            "unsupported_grant_type" => "unsupported-grant-type",
            _ => "invalid-request",
        };
        Problem {
            oauth_error: Some(oauth_error),
            ..Self::new(StatusCode::BAD_REQUEST, slug, "Bad token request", detail)
        }
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub(crate) fn bad_json(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-json",
            "Malformed JSON",
            detail,
        )
    }

    pub(crate) fn unsupported_media_type(expected: &str, got: Option<&str>) -> Self {
        let got = got.map_or_else(|| "no Content-Type".to_owned(), |g| format!("`{g}`"));
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("this request needs Content-Type `{expected}`, got {got}"),
        )
    }

    /// 422 naming every rejected field.
    pub(crate) fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("`{}`: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Problem {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid field",
                detail,
            )
        }
    }

    pub(crate) fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid_fields(vec![FieldError::new(field, message)])
    }

    /// A failure that is ours, not the client's: logged in full, answered vaguely.
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "directory api internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "internal error; see the server log",
        )
    }

    #[cfg(test)]
    pub(crate) fn slug(&self) -> &'static str {
        self.slug
    }

    #[cfg(test)]
    pub(crate) fn fields(&self) -> Vec<&str> {
        self.errors.iter().map(|e| e.field.as_str()).collect()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("type".into(), json!(format!("{TYPE_BASE}{}", self.slug)));
        body.insert("title".into(), json!(self.title));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        if !self.errors.is_empty() {
            body.insert("errors".into(), json!(self.errors));
        }
        if let Some(code) = self.oauth_error {
            body.insert("error".into(), json!(code));
        }
        // Serializing a map of strings and numbers cannot fail; the fallback is a
        // minimal valid document all the same.
        let bytes = serde_json::to_vec(&Value::Object(body))
            .unwrap_or_else(|_| br#"{"title":"Internal error","status":500}"#.to_vec());
        let mut response = (self.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(challenge) = self.www_authenticate {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(detail) => Problem::not_found(detail),
            StoreError::UsernameTaken(name) => Problem {
                errors: vec![FieldError::new("username", "already taken")],
                ..Self::new(
                    StatusCode::CONFLICT,
                    "username-taken",
                    "Username taken",
                    format!("username `{name}` is already taken (compared case-insensitively)"),
                )
            },
            StoreError::EmailTaken(email) => Problem {
                errors: vec![FieldError::new("contact.email", "already taken")],
                ..Self::new(
                    StatusCode::CONFLICT,
                    "email-taken",
                    "Email taken",
                    format!("email `{email}` is already taken (compared case-insensitively)"),
                )
            },
            StoreError::Invalid(errors) => Problem::invalid_fields(errors),
            StoreError::Poisoned => Problem::internal("store mutex poisoned by an earlier panic"),
            StoreError::Sqlite(err) => Problem::internal(err),
            StoreError::Corrupt(detail) => Problem::internal(detail),
            StoreError::Clock(err) => Problem::internal(err),
        }
    }
}
