//! Writes one audit line per provisioning write of a connection, whatever
//! answered it (handler, extractor, rate limiter), with the correlation id.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::response::Response;
use http::Method;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};

use super::rescue::ErrorResponse;
use super::response::CorrelationId;
use crate::audit::{AuditLog, Change, Entry, Journal, changes, now};
use crate::scim::error::{ScimError, ScimType};

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
    let user_agent = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let client_address = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    let dialect = request
        .extensions()
        .get::<Arc<crate::dialect::Dialect>>()
        .map(|d| d.name.clone())
        .unwrap_or_default();
    let journal = Journal::default();
    let line = Line {
        operation,
        path: &path,
        correlation_id: &correlation_id,
        user_agent: user_agent.as_deref(),
        client_address,
        dialect: &dialect,
        journal: &journal,
    };
    // The body is read here and handed on: writes are small and bounded.
    let (parts, body) = request.into_parts();
    let sent = match to_bytes(body, state.max_body_bytes).await {
        Ok(sent) => sent,
        Err(error) => {
            let response = unreadable_body(&error);
            line.write(
                state,
                response.status.as_u16(),
                &Quoted::default(),
                &Quoted::default(),
                Some(&response.detail),
                Vec::new(),
            );
            return axum::response::IntoResponse::into_response(ErrorResponse(response));
        }
    };
    let response = journal
        .scope(inner(Request::from_parts(parts, Body::from(sent.clone()))))
        .await;
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let answered = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let (sent_fields, answered_fields) = (Quoted::from(&sent), Quoted::from(&answered));
    let detail = answered_fields.detail.as_deref().filter(|_| status >= 400);
    let after: serde_json::Value = serde_json::from_slice(&answered).unwrap_or_default();
    let mut changes = if status < 400 && !answered.is_empty() {
        changes(&journal.take_before().unwrap_or_default(), &after)
    } else {
        Vec::new()
    };
    // What no answer shows: a password (never returned), and the members of
    // a group whose answer leaves them out (a 204, `excludedAttributes`).
    if status < 400 {
        let asked = Asked::of(&sent);
        if asked.password && !changes.iter().any(|c| c.attribute == "password") {
            changes.push(Change {
                attribute: "password".into(),
                old: None,
                new: None,
            });
        }
        if asked.members && after.get("members").is_none() {
            changes.push(Change {
                attribute: "members".into(),
                old: None,
                new: None,
            });
        }
    }
    line.write(
        state,
        status,
        &sent_fields,
        &answered_fields,
        detail,
        changes,
    );
    Response::from_parts(parts, Body::from(answered))
}

/// The refusal of a body that could not be read: 413 only when it was
/// too large; a malformed one (a broken chunked encoding, a connection
/// that ended mid-body) is the client's syntax error.
fn unreadable_body(error: &axum::Error) -> ScimError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return ScimError::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                None,
                "the request body is larger than this gateway accepts",
            );
        }
        cause = current.source();
    }
    ScimError::bad_request(
        ScimType::InvalidSyntax,
        "the request body could not be read (malformed, e.g. a broken chunked encoding, or cut short)",
    )
}

/// What an audit line quotes from a request or response body. Only these
/// fields are decoded; the rest of the body is skipped, not built.
#[derive(Default, Deserialize)]
struct Quoted<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "userName", borrow, default, deserialize_with = "text")]
    user_name: Option<Cow<'a, str>>,
    #[serde(rename = "displayName", borrow, default, deserialize_with = "text")]
    display_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    detail: Option<Cow<'a, str>>,
}

impl<'a> Quoted<'a> {
    /// Whatever is not a JSON object quotes nothing (serde would also fill
    /// the struct from an array, by position). A body that repeats a key
    /// quotes nothing either.
    fn from(body: &'a [u8]) -> Self {
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Quoted::default();
        }
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// A string field, or `None` for any other JSON value in its place.
fn text<'de, D>(deserializer: D) -> Result<Option<Cow<'de, str>>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Field<'a> {
        Text(#[serde(borrow)] Cow<'a, str>),
        Other(IgnoredAny),
    }
    Ok(match Field::deserialize(deserializer)? {
        Field::Text(text) => Some(text),
        Field::Other(_) => None,
    })
}

/// What a write body asks for that its answer may not show.
#[derive(Default)]
struct Asked {
    password: bool,
    members: bool,
}

impl Asked {
    /// From a resource (`password`, `members`) or a PATCH (an operation's
    /// path, or its value's keys).
    fn of(sent: &[u8]) -> Asked {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(sent) else {
            return Asked::default();
        };
        let names = |value: &serde_json::Value, name: &str| {
            value
                .as_object()
                .is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case(name)))
        };
        let mut asked = Asked {
            password: names(&body, "password"),
            members: names(&body, "members"),
        };
        for operation in body
            .get("Operations")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            let path = operation
                .get("path")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            let value = operation.get("value").unwrap_or(&serde_json::Value::Null);
            asked.password |= path == "password" || names(value, "password");
            asked.members |= path.starts_with("members") || names(value, "members");
        }
        asked
    }
}

/// What the write did, as the IdPs' provisioning logs name it: a change of
/// `active` is a disable or an enable, of `members` a membership change.
fn action(operation: &str, restored: bool, changes: &[Change]) -> &'static str {
    let changed = |name: &str| changes.iter().find(|c| c.attribute == name);
    match operation {
        _ if restored => "restore",
        "create_user" | "create_group" => "create",
        "delete_user" | "delete_group" => "delete",
        _ => match changed("active").and_then(|c| c.new.as_ref()) {
            Some(serde_json::Value::Bool(false)) => "disable",
            Some(serde_json::Value::Bool(true)) => "enable",
            _ if changed("members").is_some() => "membership change",
            _ => "update",
        },
    }
}

/// The parts of an audit line known before the request runs.
struct Line<'a> {
    operation: &'a str,
    path: &'a str,
    correlation_id: &'a str,
    user_agent: Option<&'a str>,
    client_address: Option<String>,
    dialect: &'a str,
    /// Collects the upstream calls while the write runs.
    journal: &'a Journal,
}

impl Line<'_> {
    fn write(
        &self,
        state: &AuditState,
        status: u16,
        sent: &Quoted,
        answered: &Quoted,
        detail: Option<&str>,
        changes: Vec<Change>,
    ) {
        let id_in_path = self.path.trim_start_matches('/').split('/').nth(1);
        let id = answered.id.as_deref().or(id_in_path);
        state.log.write(&Entry {
            time: now(),
            connection: &state.connection,
            operation: self.operation,
            scim_id: id,
            upstream_id: id,
            user_name: answered.user_name.as_deref().or(sent.user_name.as_deref()),
            display_name: answered
                .display_name
                .as_deref()
                .or(sent.display_name.as_deref()),
            outcome: if status < 400 { "ok" } else { "failed" },
            status,
            detail,
            correlation_id: self.correlation_id,
            user_agent: self.user_agent,
            client_address: self.client_address.clone(),
            dialect: self.dialect,
            action: action(self.operation, self.journal.restored(), &changes),
            steps: self.journal.steps(),
            changes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_and_a_broken_one_400() {
        let big = to_bytes(Body::from(vec![b'x'; 32]), 8).await.unwrap_err();
        assert_eq!(
            unreadable_body(&big).status,
            http::StatusCode::PAYLOAD_TOO_LARGE
        );
        // What a body read fails with when hyper meets a broken chunk.
        let broken = axum::Error::new(std::io::Error::other("invalid chunk size line"));
        let refusal = unreadable_body(&broken);
        assert_eq!(refusal.status, http::StatusCode::BAD_REQUEST);
        assert_eq!(refusal.scim_type, Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn quoted_fields_are_strings_or_nothing() {
        let body = br#"{"id": "7", "userName": "a\u0040example.com", "displayName": 5, "emails": [{"value": "x"}], "detail": null}"#;
        let quoted = Quoted::from(body);
        assert_eq!(quoted.id.as_deref(), Some("7"));
        // Escapes are decoded (an owned copy), not refused.
        assert_eq!(quoted.user_name.as_deref(), Some("a@example.com"));
        assert_eq!(quoted.display_name, None);
        assert_eq!(quoted.detail, None);
        for nothing in [
            &b""[..],
            b"[1, 2]",
            br#"["7", "alice@example.com"]"#,
            b"not json",
            b"{\"id\": ",
        ] {
            assert!(Quoted::from(nothing).id.is_none());
        }
    }
}
