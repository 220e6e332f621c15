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
use crate::mapping::MappingError;
use crate::provision::ProvisionError;
use crate::provision::policy::PolicyError;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::patch::PatchError;
use crate::upstream::{CallError, UpstreamError};

/// A failure on its way out as a response: what handlers, extractors and
/// middleware return where a request ends in an error.
#[derive(Debug)]
pub struct ErrorResponse(pub ScimError);

impl From<ScimError> for ErrorResponse {
    fn from(error: ScimError) -> Self {
        ErrorResponse(error)
    }
}

impl From<ProvisionError> for ErrorResponse {
    fn from(error: ProvisionError) -> Self {
        ErrorResponse(scim_error(error))
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

/// What the IdP is told for each reason an operation failed.
pub fn scim_error(error: ProvisionError) -> ScimError {
    let detail = error.to_string();
    let bad_request = |scim_type| ScimError::bad_request(scim_type, detail.clone());
    match error {
        ProvisionError::Upstream(error) => call_error(error),
        ProvisionError::Mapping(error) => mapping_error(&error),
        ProvisionError::Patch(error) => error.into(),
        ProvisionError::Schema(error) => error.into(),
        ProvisionError::Policy(PolicyError::NotApproved { .. }) => ScimError::forbidden(detail),
        ProvisionError::Policy(PolicyError::NoAddress | PolicyError::Malformed { .. })
        | ProvisionError::NoMembership
        | ProvisionError::ForeignMember(_)
        | ProvisionError::Incomplete(_) => bad_request(ScimType::InvalidValue),
        ProvisionError::NotFound { .. } | ProvisionError::NoGroups => ScimError::not_found(detail),
        ProvisionError::Undeletable(_) => {
            ScimError::new(StatusCode::METHOD_NOT_ALLOWED, None, detail)
        }
        ProvisionError::Malformed(_) => bad_request(ScimType::InvalidSyntax),
        ProvisionError::Immutable(_) => bad_request(ScimType::Mutability),
        ProvisionError::TooMany(_) => bad_request(ScimType::TooMany),
        ProvisionError::Conflict(_) => ScimError::conflict(detail),
        ProvisionError::VersionMismatch(_) => {
            ScimError::new(StatusCode::PRECONDITION_FAILED, None, detail)
        }
        ProvisionError::Misconfigured(_) => ScimError::internal(detail),
        ProvisionError::Unconfirmed(_) => ScimError::new(StatusCode::BAD_GATEWAY, None, detail),
        ProvisionError::ShuttingDown
        | ProvisionError::Contended
        | ProvisionError::Stale
        | ProvisionError::ClusterUnavailable => {
            ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, detail).with_retry_after(1)
        }
    }
}

/// An upstream refusal as the mapping's rules read it; a failure to get an
/// answer as the gateway's own 5xx (never the upstream's raw body).
fn call_error(error: CallError) -> ScimError {
    match error {
        CallError::Missing(refusal) | CallError::Refused(refusal) => {
            ScimError::new(refusal.status, refusal.scim_type, refusal.detail)
        }
        CallError::Throttled {
            refusal,
            retry_after,
        } => ScimError::new(refusal.status, None, refusal.detail).with_retry_after(retry_after),
        CallError::Failed(error) => upstream_error(&error),
    }
}

fn upstream_error(error: &UpstreamError) -> ScimError {
    let (status, retry_after) = match error {
        UpstreamError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, None),
        UpstreamError::Unreachable => (StatusCode::SERVICE_UNAVAILABLE, Some(5)),
        UpstreamError::RateBudget(seconds) => (StatusCode::TOO_MANY_REQUESTS, Some(*seconds)),
        UpstreamError::Saturated => (StatusCode::SERVICE_UNAVAILABLE, Some(1)),
        UpstreamError::CircuitOpen(seconds) => (StatusCode::SERVICE_UNAVAILABLE, Some(*seconds)),
        UpstreamError::BadBody
        | UpstreamError::BadVersion
        | UpstreamError::TooLarge
        | UpstreamError::TokenAnswerTooLarge(_)
        | UpstreamError::TokenRefused(_) => (StatusCode::BAD_GATEWAY, None),
        UpstreamError::Setup(_) | UpstreamError::BadSecret(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, None)
        }
    };
    let scim = ScimError::new(status, None, error.to_string());
    match retry_after {
        Some(seconds) => scim.with_retry_after(seconds),
        None => scim,
    }
}

fn mapping_error(error: &MappingError) -> ScimError {
    let detail = error.to_string();
    match error {
        MappingError::Unbound(_) => ScimError::internal(detail),
        MappingError::UnsafeSegment => ScimError::not_found(detail),
        MappingError::UnmappedValue { .. } | MappingError::WrongType { .. } => {
            ScimError::bad_request(ScimType::InvalidValue, detail)
        }
        MappingError::NotUpdatable { .. } => ScimError::bad_request(ScimType::Mutability, detail),
        MappingError::MissingId(_) | MappingError::NotAList | MappingError::Unreadable { .. } => {
            ScimError::new(StatusCode::BAD_GATEWAY, None, detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Refusal;

    fn refusal(status: StatusCode, scim_type: Option<ScimType>) -> Refusal {
        Refusal {
            status,
            scim_type,
            detail: "the upstream API refused the request (HTTP 409)".to_string(),
        }
    }

    /// Status, `scimType` and `Retry-After`.
    type Answer = (u16, Option<&'static str>, Option<u64>);

    fn answered(error: ProvisionError) -> Answer {
        let scim = scim_error(error);
        (
            scim.status.as_u16(),
            scim.scim_type.map(ScimType::as_str),
            scim.retry_after,
        )
    }

    #[test]
    fn each_reason_becomes_its_status_and_scim_type() {
        let text = || "why".to_string();
        let cases: Vec<(ProvisionError, Answer)> = vec![
            (
                ProvisionError::NotFound {
                    resource_type: "User",
                    id: "7".into(),
                },
                (404, None, None),
            ),
            (ProvisionError::NoGroups, (404, None, None)),
            (
                ProvisionError::NoMembership,
                (400, Some("invalidValue"), None),
            ),
            (
                ProvisionError::ForeignMember("7".into()),
                (400, Some("invalidValue"), None),
            ),
            (
                ProvisionError::Incomplete(text()),
                (400, Some("invalidValue"), None),
            ),
            (ProvisionError::Undeletable("Group"), (405, None, None)),
            (
                ProvisionError::Malformed(text()),
                (400, Some("invalidSyntax"), None),
            ),
            (
                ProvisionError::Immutable(text()),
                (400, Some("mutability"), None),
            ),
            (
                ProvisionError::TooMany(text()),
                (400, Some("tooMany"), None),
            ),
            (
                ProvisionError::Conflict(text()),
                (409, Some("uniqueness"), None),
            ),
            (ProvisionError::VersionMismatch(text()), (412, None, None)),
            (ProvisionError::Misconfigured(text()), (500, None, None)),
            (ProvisionError::Unconfirmed(text()), (502, None, None)),
            (ProvisionError::ShuttingDown, (503, None, Some(1))),
            (ProvisionError::Contended, (503, None, Some(1))),
            (ProvisionError::Stale, (503, None, Some(1))),
            (ProvisionError::ClusterUnavailable, (503, None, Some(1))),
            (
                ProvisionError::Policy(PolicyError::NoAddress),
                (400, Some("invalidValue"), None),
            ),
            (
                ProvisionError::Policy(PolicyError::NotApproved {
                    address: "a@b.org".into(),
                    approved: "example.com".into(),
                }),
                (403, None, None),
            ),
            (
                ProvisionError::Mapping(MappingError::NotUpdatable {
                    field: "title".into(),
                }),
                (400, Some("mutability"), None),
            ),
            (
                ProvisionError::Mapping(MappingError::NotAList),
                (502, None, None),
            ),
            (
                ProvisionError::Upstream(CallError::Refused(refusal(
                    StatusCode::CONFLICT,
                    Some(ScimType::Uniqueness),
                ))),
                (409, Some("uniqueness"), None),
            ),
            (
                ProvisionError::Upstream(CallError::Missing(refusal(StatusCode::NOT_FOUND, None))),
                (404, None, None),
            ),
            (
                ProvisionError::Upstream(CallError::Throttled {
                    refusal: refusal(StatusCode::TOO_MANY_REQUESTS, None),
                    retry_after: 7,
                }),
                (429, None, Some(7)),
            ),
            (
                ProvisionError::Upstream(CallError::Failed(UpstreamError::CircuitOpen(30))),
                (503, None, Some(30)),
            ),
            (
                ProvisionError::Upstream(CallError::Failed(UpstreamError::Timeout(
                    std::time::Duration::from_secs(10),
                ))),
                (504, None, None),
            ),
            (
                ProvisionError::Upstream(CallError::Failed(UpstreamError::BadSecret(
                    "api_key".into(),
                ))),
                (500, None, None),
            ),
        ];
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(answered(error), expected, "{shown}");
        }
    }

    #[test]
    fn the_detail_is_the_reason_in_the_operators_words() {
        let scim = scim_error(ProvisionError::NotFound {
            resource_type: "User",
            id: "u-1".into(),
        });
        assert_eq!(scim.detail, "User u-1 not found");
        let scim = scim_error(ProvisionError::Upstream(CallError::Refused(refusal(
            StatusCode::CONFLICT,
            None,
        ))));
        assert_eq!(
            scim.detail,
            "the upstream API refused the request (HTTP 409)"
        );
    }
}
