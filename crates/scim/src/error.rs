//! The SCIM error body (RFC 7644 §3.12) — the one wire form every failure takes.
//!
//! The SCIM core's own parse errors (filter, path, PATCH, schema) become
//! [`ScimError`]s here: they are protocol errors with a status RFC 7644
//! fixes. The gateway's layers keep typed errors of their own, and the
//! gateway's error boundary (`server::rescue`) alone turns those into this.

use http::StatusCode;
use serde_json::{Value, json};

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// `scimType` values defined by RFC 7644 §3.12 (Table 9), plus none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }

    /// Parses the names used in mapping files (`scim_type = "uniqueness"`).
    pub fn parse(name: &str) -> Option<ScimType> {
        const ALL: [ScimType; 10] = [
            ScimType::InvalidFilter,
            ScimType::TooMany,
            ScimType::Uniqueness,
            ScimType::Mutability,
            ScimType::InvalidSyntax,
            ScimType::InvalidPath,
            ScimType::NoTarget,
            ScimType::InvalidValue,
            ScimType::InvalidVers,
            ScimType::Sensitive,
        ];
        ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// A SCIM error as the IdP sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {detail}")]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<ScimType>,
    pub detail: String,
    /// Seconds the client should wait before retrying (429/503).
    pub retry_after: Option<u64>,
}

impl ScimError {
    pub fn new(status: StatusCode, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some(ScimType::Uniqueness), detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, detail)
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The JSON body; `correlation_id` lets an operator find the same event in
    /// the audit log and the gateway's logs.
    pub fn body(&self, correlation_id: Option<&str>) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = Value::from(scim_type.as_str());
        }
        // In `detail`, not an extra member: RFC 7644's error schema has none,
        // strict clients reject unknown members, and IdPs show `detail` to
        // the admin in their provisioning logs.
        if let Some(id) = correlation_id {
            body["detail"] = Value::from(format!("{} (correlation id {id})", self.detail));
        }
        body
    }
}

// ---------------------------------------------------------------- conversions
// Each SCIM-core error becomes a 400 whose detail is the error's own message.

impl From<crate::filter::FilterError> for ScimError {
    fn from(error: crate::filter::FilterError) -> Self {
        ScimError::bad_request(ScimType::InvalidFilter, error.to_string())
    }
}

impl From<crate::path::PathError> for ScimError {
    fn from(error: crate::path::PathError) -> Self {
        ScimError::bad_request(ScimType::InvalidPath, error.to_string())
    }
}

impl From<crate::patch::PatchError> for ScimError {
    fn from(error: crate::patch::PatchError) -> Self {
        use crate::patch::PatchError;
        let scim_type = match &error {
            PatchError::InvalidRequest { .. } => ScimType::InvalidSyntax,
            PatchError::BadPath { .. } | PatchError::InvalidPath { .. } => ScimType::InvalidPath,
            PatchError::NoTarget { .. } => ScimType::NoTarget,
            PatchError::InvalidValue { .. } => ScimType::InvalidValue,
            PatchError::Mutability { .. } => ScimType::Mutability,
            // The stored resource is not an object: our bug, not the client's.
            PatchError::NotAnObject => return ScimError::internal(error.to_string()),
        };
        ScimError::bad_request(scim_type, error.to_string())
    }
}

impl From<crate::schema::SchemaError> for ScimError {
    fn from(error: crate::schema::SchemaError) -> Self {
        use crate::schema::SchemaError;
        let scim_type = match &error {
            SchemaError::MissingCoreSchema { .. } | SchemaError::NotAnObject { .. } => {
                ScimType::InvalidSyntax
            }
            SchemaError::MissingRequired { .. } | SchemaError::WrongType { .. } => {
                ScimType::InvalidValue
            }
        };
        ScimError::bad_request(scim_type, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_status_as_string_and_scim_type() {
        let error = ScimError::conflict("userName alice@example.com is taken");
        let body = error.body(Some("req-1"));
        assert_eq!(body["status"], "409");
        assert_eq!(body["scimType"], "uniqueness");
        assert_eq!(body["schemas"][0], ERROR_SCHEMA);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .ends_with("(correlation id req-1)")
        );
    }

    #[test]
    fn body_omits_scim_type_when_rfc_defines_none() {
        let body = ScimError::not_found("no such user").body(None);
        assert!(body.get("scimType").is_none());
        assert_eq!(body["detail"], "no such user");
    }

    #[test]
    fn scim_type_names_round_trip() {
        for name in [
            "invalidFilter",
            "tooMany",
            "uniqueness",
            "noTarget",
            "invalidVers",
        ] {
            assert_eq!(ScimType::parse(name).map(ScimType::as_str), Some(name));
        }
        assert_eq!(ScimType::parse("nope"), None);
    }
}
