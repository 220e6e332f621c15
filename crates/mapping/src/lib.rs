//! Upstream mappings: the operator's declaration of how SCIM resources and
//! operations become calls on one legacy REST API.
//!
//! `file` is the shape of the TOML file, `load` validates it into the runtime
//! model below, `call` renders HTTP calls and `transform` converts resources
//! between SCIM JSON and upstream JSON. Nothing here knows a vendor or a URL;
//! all of it comes from the file.

pub mod call;
mod field;
pub mod file;
mod load;
pub mod transform;

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, StatusCode};
use serde_json::{Map, Value};

use scimgate_scim::error::ScimType;
use scimgate_scim::json::View;
use scimgate_scim::path::AttrPath;
use scimgate_scim::schema::AttrType;

pub use call::{
    Bindings, BodyEncoding, Call, Paging, PagingStyle, Placeholder, TotalSource, UpstreamRequest,
    form_pairs,
};
pub use field::{FieldPath, FieldPathError};
pub use file::{Direction, UniqueBy, ValueType};

/// The text of a JSON value as a SCIM id or member value.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
pub use load::{compile, load};

/// One upstream API, as its mapping file declares it.
#[derive(Debug, Clone)]
pub struct UpstreamMapping {
    pub name: String,
    pub base_url: String,
    pub timeout: Duration,
    pub auth: Auth,
    pub errors: ErrorMap,
    pub users: ResourceMapping,
    pub groups: Option<ResourceMapping>,
    pub source: PathBuf,
    /// The tests the file carries, for `scimgate check`.
    pub tests: Vec<MappingTest>,
}

/// One test a mapping file carries (see `file::TestSpec`).
#[derive(Debug, Clone)]
pub struct MappingTest {
    pub name: String,
    /// Where the test's name is in its file, for reports.
    pub line: usize,
    pub column: usize,
    pub request: TestCall,
    pub record: Option<Value>,
    pub calls: Option<Vec<TestCall>>,
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestCall {
    pub method: http::Method,
    pub path: String,
    pub body: Option<Value>,
}

/// How requests authenticate; secrets are referenced by name and resolved
/// from the gateway config when the client is built.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Header {
        header: HeaderName,
        prefix: String,
        secret: String,
    },
    Bearer {
        secret: String,
    },
    Basic {
        username: String,
        secret: String,
    },
    OAuth2ClientCredentials {
        token_url: String,
        client_id: String,
        secret: String,
        scope: Option<String>,
        /// Credentials as form fields rather than HTTP Basic.
        in_body: bool,
    },
}

impl Auth {
    pub fn secret_name(&self) -> Option<&str> {
        match self {
            Auth::None => None,
            Auth::Header { secret, .. }
            | Auth::Bearer { secret }
            | Auth::Basic { secret, .. }
            | Auth::OAuth2ClientCredentials { secret, .. } => Some(secret),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ErrorMap {
    pub code_pointer: Option<String>,
    pub message_pointer: Option<String>,
    pub rules: Vec<ErrorRule>,
}

#[derive(Debug, Clone)]
pub struct ErrorRule {
    pub status: u16,
    pub code: Option<String>,
    /// Lower-case text the upstream's message must contain.
    pub message_contains: Option<String>,
    pub scim_status: StatusCode,
    pub scim_type: Option<ScimType>,
}

/// An upstream's refusal as the mapping's error rules read it: the status
/// and `scimType` the IdP is to get and the detail it may see. The server's
/// error boundary turns it into the SCIM error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub scim_type: Option<ScimType>,
    pub detail: String,
}

impl Refusal {
    fn new(status: StatusCode, scim_type: Option<ScimType>, detail: String) -> Self {
        Refusal {
            status,
            scim_type,
            detail,
        }
    }

    /// Whether the rules read the answer as "no such record" (a 403
    /// "deleted" may mean that), which callers act on.
    pub fn means_missing(&self) -> bool {
        self.status == StatusCode::NOT_FOUND
    }

    /// Whether the rules read the answer as a conflict (409): for a member
    /// added, "already a member".
    pub fn means_conflict(&self) -> bool {
        self.status == StatusCode::CONFLICT
    }

    /// Whether the rules read the answer as "the record changed since you
    /// read it": a conditional write that lost to another.
    pub fn means_stale(&self) -> bool {
        self.status == StatusCode::PRECONDITION_FAILED
    }
}

impl ErrorMap {
    /// What an upstream error response means for the IdP. The upstream's own
    /// message reaches the IdP only for a business refusal a rule maps (a
    /// 4xx other than 401/403: "login already taken" helps the admin), cut
    /// to [`QUOTED_MESSAGE_CHARS`]; never for a 5xx or an auth failure,
    /// whose text is the upstream's internals (seen: a database DSN with its
    /// password, the gateway's own API key echoed back). Its code, a short
    /// token, is named for every status. The caller redacts its secrets.
    pub fn read(&self, status: StatusCode, body: &Value) -> Refusal {
        self.read_cleaned(status, body, &|message| message.to_string())
    }

    /// As [`Self::read`], `clean` applied to the upstream's message before
    /// it is cut to length (so a secret straddling the cut is still found).
    pub fn read_cleaned(
        &self,
        status: StatusCode,
        body: &Value,
        clean: &dyn Fn(&str) -> String,
    ) -> Refusal {
        let code = self
            .code_pointer
            .as_deref()
            .and_then(|p| body.pointer(p))
            .and_then(Value::as_str)
            .filter(|code| code.len() <= 64 && !code.chars().any(char::is_whitespace));
        let said = self
            .message_pointer
            .as_deref()
            .and_then(|p| body.pointer(p))
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        // The most specific rule first: code and message, code, message, status.
        let applies = |r: &&ErrorRule, by_code: bool, by_message: bool| {
            r.status == status.as_u16()
                && r.code.is_some() == by_code
                && (!by_code || r.code.as_deref() == code)
                && r.message_contains.is_some() == by_message
                && (!by_message
                    || r.message_contains
                        .as_deref()
                        .is_some_and(|t| said.as_deref().is_some_and(|m| m.contains(t))))
        };
        let rule = [(true, true), (true, false), (false, true), (false, false)]
            .into_iter()
            .find_map(|(by_code, by_message)| {
                self.rules.iter().find(|r| applies(r, by_code, by_message))
            });
        let quotable = rule.is_some()
            && status.is_client_error()
            && status != StatusCode::UNAUTHORIZED
            && status != StatusCode::FORBIDDEN;
        let message = self
            .message_pointer
            .as_deref()
            .filter(|_| quotable)
            .and_then(|p| body.pointer(p))
            .and_then(Value::as_str)
            .map(|m| {
                clean(m)
                    .chars()
                    .take(QUOTED_MESSAGE_CHARS)
                    .collect::<String>()
            });
        let mut detail = format!(
            "the upstream API refused the request (HTTP {})",
            status.as_u16()
        );
        if let Some(code) = code {
            detail.push_str(&format!(", code {code}"));
        }
        if let Some(message) = message {
            detail.push_str(&format!(": {message}"));
        }
        match rule {
            Some(rule) => Refusal::new(rule.scim_status, rule.scim_type, detail),
            None if status.is_server_error() => Refusal::new(StatusCode::BAD_GATEWAY, None, detail),
            None if status == StatusCode::NOT_FOUND => {
                Refusal::new(StatusCode::NOT_FOUND, None, detail)
            }
            None if status == StatusCode::PRECONDITION_FAILED => {
                Refusal::new(StatusCode::PRECONDITION_FAILED, None, detail)
            }
            None if status == StatusCode::CONFLICT => {
                Refusal::new(StatusCode::CONFLICT, Some(ScimType::Uniqueness), detail)
            }
            // An upstream 401/403 is the gateway's credential problem, not the IdP's.
            None if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => {
                Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    None,
                    format!("{detail}; check the upstream credentials in the gateway config"),
                )
            }
            None => Refusal::new(
                StatusCode::BAD_REQUEST,
                Some(ScimType::InvalidValue),
                detail,
            ),
        }
    }
}

/// How much of an upstream's own message an IdP may see.
pub const QUOTED_MESSAGE_CHARS: usize = 200;

#[cfg(test)]
mod error_map_tests {
    use super::*;
    use serde_json::json;

    fn errors() -> ErrorMap {
        ErrorMap {
            code_pointer: Some("/error/code".into()),
            message_pointer: Some("/error/message".into()),
            rules: vec![
                ErrorRule {
                    status: 409,
                    code: None,
                    message_contains: None,
                    scim_status: StatusCode::CONFLICT,
                    scim_type: Some(ScimType::Uniqueness),
                },
                ErrorRule {
                    status: 500,
                    code: None,
                    message_contains: None,
                    scim_status: StatusCode::BAD_GATEWAY,
                    scim_type: None,
                },
                ErrorRule {
                    status: 401,
                    code: None,
                    message_contains: None,
                    scim_status: StatusCode::BAD_GATEWAY,
                    scim_type: None,
                },
            ],
        }
    }

    fn answer(message: &str) -> Value {
        json!({"error": {"code": "E1", "message": message}})
    }

    #[test]
    fn a_mapped_business_refusal_quotes_the_upstream_message_bounded() {
        let long = "login already taken ".repeat(50);
        let error = errors().read(StatusCode::CONFLICT, &answer(&long));
        assert!(
            error.detail.contains("login already taken"),
            "{}",
            error.detail
        );
        assert!(
            error.detail.len() < QUOTED_MESSAGE_CHARS + 80,
            "{}",
            error.detail
        );
    }

    #[test]
    fn a_rule_with_message_text_is_chosen_only_when_the_message_says_it() {
        let mut map = errors();
        for (message_contains, scim_status) in [(Some("already exists"), 409), (None, 400)] {
            map.rules.push(ErrorRule {
                status: 400,
                code: Some("E1".into()),
                message_contains: message_contains.map(str::to_string),
                scim_status: StatusCode::from_u16(scim_status).unwrap(),
                scim_type: None,
            });
        }
        let duplicate = map.read(StatusCode::BAD_REQUEST, &answer("User ALREADY EXISTS"));
        assert_eq!(duplicate.status, StatusCode::CONFLICT);
        let other = map.read(StatusCode::BAD_REQUEST, &answer("bad email"));
        assert_eq!(other.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_secret_straddling_the_length_cut_is_masked_before_the_cut() {
        let secret = "k-0123456789abcdef";
        let message = format!("{}{secret}", "x".repeat(QUOTED_MESSAGE_CHARS - 5));
        let error = errors().read_cleaned(StatusCode::CONFLICT, &answer(&message), &|m| {
            m.replace(secret, "****")
        });
        assert!(!error.detail.contains("k-012"), "{}", error.detail);
    }

    #[test]
    fn server_errors_auth_failures_and_unmapped_statuses_never_quote_the_upstream() {
        let secret = "postgres://app:hunter2@db:5432/users";
        for status in [500, 502, 401, 403, 422] {
            let status = StatusCode::from_u16(status).unwrap();
            let error = errors().read(status, &answer(secret));
            assert!(
                !error.detail.contains("hunter2"),
                "{status}: {}",
                error.detail
            );
            assert!(
                error.detail.contains("code E1"),
                "{status}: {}",
                error.detail
            );
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdField {
    pub field: FieldPath,
    pub value_type: ValueType,
}

impl IdField {
    /// Whether a SCIM id could name an upstream record at all; an id that
    /// cannot is answered 404 without a call upstream.
    pub fn accepts(&self, id: &str) -> bool {
        match self.value_type {
            ValueType::Integer => {
                !id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit())
            }
            ValueType::String | ValueType::Boolean => !id.is_empty() && id.len() <= 256,
        }
    }

    /// The JSON value of an id as the upstream stores it (for body templates).
    pub fn typed(&self, id: &str) -> Value {
        match self.value_type {
            ValueType::Integer => id
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(id)),
            ValueType::String | ValueType::Boolean => Value::from(id),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct MetaFields {
    pub created: Option<FieldPath>,
    pub last_modified: Option<FieldPath>,
    pub version: Option<FieldPath>,
}

#[derive(Debug, Clone)]
pub struct SoftDelete {
    pub field: FieldPath,
    pub value: Value,
    pub lookup_query: Vec<(String, String)>,
    /// A dedicated marking call; `None`: the update call writes `field`.
    pub call: Option<Call>,
    /// Written to `field` on restore; `None`: the create body sets it.
    pub restore_value: Option<Value>,
}

impl SoftDelete {
    pub fn marks<'r>(&self, record: impl Into<View<'r>>) -> bool {
        self.field
            .read(record.into())
            .is_some_and(|held| held.equals(&self.value))
    }
}

/// A filter the upstream answers: `<path> eq "v"` → `?<param>=v`.
#[derive(Debug, Clone)]
pub struct FilterParam {
    pub path: AttrPath,
    pub param: String,
}

/// Where one upstream field lands in the SCIM resource.
#[derive(Debug, Clone)]
pub struct ScimTarget {
    /// Canonical path (schema case, URN for extension attributes).
    pub path: AttrPath,
    /// The top attribute is multi-valued: the field maps one element of it.
    pub multi_valued: bool,
    pub kind: AttrType,
}

/// Where an attribute's upstream value comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Field(FieldPath),
    /// One SCIM value ⇄ several upstream fields, through the value map:
    /// each pair's upstream side is an object of field → value, and a read
    /// matches a pair when every field it names holds its value.
    Fields(Vec<FieldPath>),
    /// Read-only: text with `{field.path}` holes, e.g. "{first} {last}".
    Template(Vec<TemplatePart>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    Text(String),
    Field(FieldPath),
}

#[derive(Debug, Clone)]
pub struct AttributeMap {
    pub scim: ScimTarget,
    pub source: Source,
    pub value_type: Option<ValueType>,
    pub element: Map<String, Value>,
    /// (SCIM value, upstream value) pairs.
    pub values: Vec<(Value, Value)>,
    pub default: Option<Value>,
    /// SCIM paths whose value is written when the resource has none for
    /// this attribute (before `default`).
    pub fallback: Vec<ScimTarget>,
    /// Upstream values meaning "no value": read as absent; the first is
    /// what a clear writes (none: null).
    pub absent: Vec<Value>,
    pub direction: Direction,
    /// (SCIM value, call that sets it): changes made by calls, not by fields.
    pub set_by: Vec<(Value, Call)>,
    /// (SCIM sub-attribute, upstream element field): a whole multi-valued
    /// attribute ⇄ an upstream array of objects.
    pub items: Vec<(String, FieldPath)>,
}

#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per mapping load, never on the request path"
)]
pub enum Members {
    /// Members listed, added and removed through their own endpoints.
    Endpoints {
        list: Call,
        member_field: FieldPath,
        display_field: Option<FieldPath>,
        add: Call,
        remove: Call,
        /// Answers one membership (2xx a member, 404 not), if declared.
        lookup: Option<Call>,
    },
    /// The group record's `field` lists the member ids (or objects whose
    /// `member_field` is the id); changed by the group's update call.
    GroupField {
        field: FieldPath,
        member_field: Option<FieldPath>,
        /// Calls that add and remove members given as `{members}` (an array
        /// of ids); without them the whole list is written by the update.
        add: Option<Call>,
        remove: Option<Call>,
        /// The most ids one `add` or `remove` call carries.
        per_call: usize,
    },
    /// Each user's `field` lists its group ids; `list` lists a group's users;
    /// changed by each user's update call.
    UserField {
        field: FieldPath,
        list: Call,
        display_field: Option<FieldPath>,
    },
}

/// One resource type (Users or Groups) on one upstream.
#[derive(Debug, Clone)]
pub struct ResourceMapping {
    pub id: IdField,
    pub meta: MetaFields,
    pub list: Call,
    pub get: Call,
    pub create: Call,
    pub update: Call,
    /// More update calls, each carrying its declared fields.
    pub update_also: Vec<Call>,
    pub soft_delete: Option<SoftDelete>,
    pub hard_delete: Option<Call>,
    pub restore_on_create: bool,
    /// Who keeps userNames unique; [`UniqueBy::Gateway`] for groups, where
    /// it is not used.
    pub unique_user_names: UniqueBy,
    /// The header that makes the update call conditional on the version
    /// read (the upstream answers 412 to a stale one): with it, a
    /// read-modify-write that is that one call needs no lock.
    pub update_precondition: Option<http::HeaderName>,
    pub filters: Vec<FilterParam>,
    pub attributes: Vec<AttributeMap>,
    pub members: Option<Members>,
    pub index: Option<IndexSettings>,
    /// No attribute it reads is one the default projection leaves out
    /// (RFC 7643 §2.4 `returned`): its resources are written as built.
    pub read_all_returned_by_default: bool,
}

/// What the gateway indexes of an upstream that cannot filter its list.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSettings {
    /// Canonical paths of the indexed attributes (string-valued, read
    /// from the upstream, none pushed down).
    pub attributes: Vec<AttrPath>,
    /// The interval of full re-reads, before jitter.
    pub refresh: std::time::Duration,
}

impl ResourceMapping {
    /// Whether some attribute of this mapping keeps `path` (an attribute, or
    /// one sub-attribute of it) upstream.
    pub fn stores(&self, path: &AttrPath) -> bool {
        self.attributes.iter().any(|a| {
            let target = &a.scim.path;
            let same_attribute = target.name.eq_ignore_ascii_case(&path.name)
                && match (&target.uri, &path.uri) {
                    (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                    (None, None) => true,
                    _ => false,
                };
            let sub_kept = match (&path.sub, &target.sub) {
                (None, _) | (_, None) => true,
                (Some(wanted), Some(kept)) => wanted.eq_ignore_ascii_case(kept),
            } || a.items.iter().any(|(sub, _)| {
                path.sub
                    .as_deref()
                    .is_some_and(|w| w.eq_ignore_ascii_case(sub))
            });
            same_attribute && sub_kept && a.direction != Direction::Read
        })
    }
}

/// Failures while applying a mapping to one request.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("the mapping's call uses {0} but nothing was bound to it")]
    Unbound(&'static str),
    #[error("this id cannot name a resource")]
    UnsafeSegment,
    #[error("{attribute}: {value} is not one of the accepted values ({accepted})")]
    UnmappedValue {
        attribute: String,
        value: String,
        accepted: String,
    },
    #[error("{attribute}: expected {expected}, got {value}")]
    WrongType {
        attribute: String,
        expected: &'static str,
        value: String,
    },
    #[error("the upstream record has no id at `{0}`")]
    MissingId(String),
    #[error("the upstream answered a list call without an array of records")]
    NotAList,
    #[error(
        "the upstream cannot change `{field}` after a create: no update call of the mapping \
         carries it"
    )]
    NotUpdatable { field: String },
    /// A call's answer did not hold what the mapping says it holds; `held`
    /// is the answer's shape (keys and types, never values).
    #[error("{call}: the answer has no {what} at `{pointer}`; it held {held}")]
    Unreadable {
        call: String,
        what: &'static str,
        pointer: String,
        held: String,
    },
}

impl MappingError {
    fn unreadable(call: &Call, what: &'static str, pointer: &str, body: &Value) -> Self {
        MappingError::Unreadable {
            call: call.label.to_string(),
            what,
            pointer: pointer.to_string(),
            held: shape(body, 0),
        }
    }
}

/// The shape of an answer for a message: its keys and the types of their
/// values, never the values (they may be secrets or personal data).
fn shape(value: &Value, depth: usize) -> String {
    match value {
        Value::Object(_) if depth >= 3 => "{…}".into(),
        Value::Object(map) => {
            let mut fields: Vec<String> = map
                .iter()
                .take(8)
                .map(|(key, inner)| format!("\"{key}\": {}", shape(inner, depth + 1)))
                .collect();
            if map.len() > 8 {
                fields.push("…".into());
            }
            format!("{{{}}}", fields.join(", "))
        }
        Value::Array(items) => match items.first() {
            None => "[]".into(),
            Some(first) if items.len() == 1 => format!("[{}]", shape(first, depth + 1)),
            Some(first) => format!("[{}, … ({} items)]", shape(first, depth + 1), items.len()),
        },
        Value::String(_) => "a string".into(),
        Value::Number(_) => "a number".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Null => "null".into(),
    }
}

impl ResourceMapping {
    /// The update call that carries `field`: the first that names it, else
    /// the first that declares no fields (it carries the rest).
    pub fn update_call_for(&self, field: &FieldPath) -> Option<&Call> {
        let calls = || std::iter::once(&self.update).chain(&self.update_also);
        calls()
            .find(|call| call.carries(field))
            .or_else(|| calls().find(|call| call.fields.is_empty()))
    }

    /// The record a single-record call answered, where its `record` says.
    pub fn answered<'a>(&self, call: &Call, body: &'a Value) -> Result<&'a Value, MappingError> {
        self.answered_in(call, body.into())
            .map(|record| record.as_value().unwrap_or(body))
    }

    /// As [`Self::answered`], in an answer of either kind: a value, or a
    /// tree read from the upstream's text.
    pub fn answered_in<'a>(&self, call: &Call, body: View<'a>) -> Result<View<'a>, MappingError> {
        call.record_in(body)
            .filter(|r| r.is_object())
            .ok_or_else(|| {
                let pointer = call.record.as_deref().unwrap_or("");
                MappingError::unreadable(call, "record", pointer, &body.to_value())
            })
    }

    /// As [`Self::answered`], taking the record out of the answer rather
    /// than copying it.
    pub fn take_answered(&self, call: &Call, mut body: Value) -> Result<Value, MappingError> {
        self.answered(call, &body)?;
        Ok(match call.record.as_deref() {
            None | Some("") => body,
            Some(pointer) => body
                .pointer_mut(pointer)
                .map(std::mem::take)
                .unwrap_or_default(),
        })
    }

    /// The new resource's id from the create call's answer, and the record
    /// if the answer is it (else it must be read).
    pub fn created(&self, body: &Value) -> Result<(String, Option<Value>), MappingError> {
        let call = &self.create;
        if let Some(pointer) = &call.id_at {
            let id = body
                .pointer(pointer)
                .and_then(id_text)
                .ok_or_else(|| MappingError::unreadable(call, "id", pointer, body))?;
            return Ok((id, None));
        }
        let record = self.answered(call, body)?;
        let id = self.upstream_id(record).map_err(|_| {
            let pointer = format!(
                "{}/{}",
                call.record.as_deref().unwrap_or(""),
                self.id.field.to_string().replace('.', "/")
            );
            MappingError::unreadable(call, "id", &pointer, body)
        })?;
        Ok((id, Some(record.clone())))
    }
}
