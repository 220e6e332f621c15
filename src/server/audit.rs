//! Writes one audit line per provisioning write of a connection, whatever
//! answered it (handler, extractor, rate limiter), with the correlation id.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::response::Response;
use http::Method;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::rescue::ErrorResponse;
use super::response::{AnsweredResource, CorrelationId};
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
    let (mut parts, body) = response.into_parts();
    let answered = to_bytes(body, usize::MAX).await.unwrap_or_default();
    // A resource the answer was written from is read as it is; any other
    // answer (an error, a 204) from its bytes.
    let resource = parts.extensions.remove::<AnsweredResource>();
    let parsed;
    let after: &serde_json::Value = match &resource {
        Some(AnsweredResource(resource)) => resource,
        None => {
            parsed = serde_json::from_slice(&answered).unwrap_or_default();
            &parsed
        }
    };
    let sent_fields = Quoted::from(&sent);
    let answered_fields = match &resource {
        Some(_) => Quoted::of_value(after),
        None => Quoted::from(&answered),
    };
    let detail = answered_fields.detail.as_deref().filter(|_| status >= 400);
    let mut changes = if status < 400 && !answered.is_empty() {
        changes(&journal.take_before().unwrap_or_default(), after)
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

    /// The same fields of a resource already read.
    fn of_value(resource: &'a serde_json::Value) -> Self {
        let text = |name: &str| resource.get(name).and_then(serde_json::Value::as_str);
        Quoted {
            id: text("id").map(Cow::Borrowed),
            user_name: text("userName").map(Cow::Borrowed),
            display_name: text("displayName").map(Cow::Borrowed),
            detail: text("detail").map(Cow::Borrowed),
        }
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
    /// path, or its value's keys). Read without building the body: only
    /// keys and operation paths are looked at.
    fn of(sent: &[u8]) -> Asked {
        let mut reader = serde_json::Deserializer::from_slice(sent);
        serde::de::DeserializeSeed::deserialize(Part::Body, &mut reader).unwrap_or_default()
    }

    fn note_key(&mut self, key: &str) {
        self.password |= key.eq_ignore_ascii_case("password");
        self.members |= key.eq_ignore_ascii_case("members");
    }

    fn add(&mut self, other: Asked) {
        self.password |= other.password;
        self.members |= other.members;
    }
}

/// Where in a write's body [`Asked::of`] is reading.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    /// The body: a resource's keys, or a PatchOp's `Operations`.
    Body,
    Operations,
    /// One operation: its `path` and its `value`.
    Operation,
    /// An operation's value: its keys, when an object.
    Value,
}

impl<'de> serde::de::DeserializeSeed<'de> for Part {
    type Value = Asked;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Asked, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Part {
    type Value = Asked;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a SCIM resource or PatchOp")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Asked, A::Error> {
        let mut asked = Asked::default();
        while let Some(key) = map.next_key::<String>()? {
            match (self, key.as_str()) {
                (Part::Body, "Operations") => asked.add(map.next_value_seed(Part::Operations)?),
                (Part::Operation, "value") => asked.add(map.next_value_seed(Part::Value)?),
                (Part::Operation, "path") => {
                    if let serde_json::Value::String(path) = map.next_value()? {
                        let path = path.to_ascii_lowercase();
                        asked.password |= path == "password";
                        asked.members |= path.starts_with("members");
                    }
                }
                (Part::Body | Part::Value, _) => {
                    asked.note_key(&key);
                    map.next_value::<IgnoredAny>()?;
                }
                (Part::Operations | Part::Operation, _) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(asked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Asked, A::Error> {
        let mut asked = Asked::default();
        if self == Part::Operations {
            while let Some(operation) = seq.next_element_seed(Part::Operation)? {
                asked.add(operation);
            }
        } else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        }
        Ok(asked)
    }
    // A value that is neither asks for nothing.
    fn visit_bool<E>(self, _: bool) -> Result<Asked, E> {
        Ok(Asked::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Asked, E> {
        Ok(Asked::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Asked, E> {
        Ok(Asked::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Asked, E> {
        Ok(Asked::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Asked, E> {
        Ok(Asked::default())
    }
    fn visit_unit<E>(self) -> Result<Asked, E> {
        Ok(Asked::default())
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
    fn asked_names_a_password_or_members_wherever_a_write_sends_them() {
        let asked = |body: &str| {
            let asked = Asked::of(body.as_bytes());
            (asked.password, asked.members)
        };
        assert_eq!(
            asked(r#"{"userName": "a", "Password": "x"}"#),
            (true, false)
        );
        assert_eq!(
            asked(r#"{"displayName": "g", "members": [{"value": "1"}]}"#),
            (false, true)
        );
        assert_eq!(
            asked(r#"{"userName": "a", "name": {"password": 1}}"#),
            (false, false)
        );
        let patch = |operations: &str| {
            asked(&format!(
                r#"{{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": {operations}}}"#
            ))
        };
        assert_eq!(
            patch(r#"[{"op": "replace", "path": "PASSWORD", "value": "x"}]"#),
            (true, false)
        );
        assert_eq!(
            patch(r#"[{"op": "remove", "path": "members[value eq \"1\"]"}]"#),
            (false, true)
        );
        assert_eq!(
            patch(
                r#"[{"op": "replace", "value": {"title": "t", "password": "x"}}, {"op": "add", "value": {"members": []}}]"#
            ),
            (true, true)
        );
        assert_eq!(
            patch(r#"[{"op": "replace", "path": "title", "value": [1, {"password": 2}]}]"#),
            (false, false)
        );
        assert_eq!(
            patch(r#"[{"op": "replace", "path": 7, "value": null}, 3, "x"]"#),
            (false, false)
        );
        assert_eq!(patch(r#"{"path": "password"}"#), (false, false));
        for nothing in ["", "[1]", "not json", r#"{"password": "#, "null"] {
            assert_eq!(asked(nothing), (false, false), "{nothing}");
        }
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
