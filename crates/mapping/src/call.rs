//! One upstream HTTP call as a mapping declares it, and its rendering into a
//! concrete request.
//!
//! Placeholders (`{id}`, `{member}`) stand within one path segment, next to
//! fixed text at most, and are percent-encoded, so nothing an IdP sends can
//! steer the gateway to another path or host than the mapping declares.

use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use scimgate_scim::json::{Scalar, View};

use super::{FieldPath, MappingError};

/// Everything but RFC 3986 unreserved characters is encoded in a segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The resource's upstream id.
    Id,
    /// A group member's upstream id.
    Member,
}

impl Placeholder {
    pub fn parse(name: &str) -> Option<Placeholder> {
        match name {
            "id" => Some(Placeholder::Id),
            "member" => Some(Placeholder::Member),
            _ => None,
        }
    }

    fn token(self) -> &'static str {
        match self {
            Placeholder::Id => "{id}",
            Placeholder::Member => "{member}",
        }
    }
}

/// One path segment: fixed text, or fixed text around one placeholder
/// (`{id}`, `{id}:suspend`). Only the placeholder's value is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder {
        prefix: String,
        placeholder: Placeholder,
        suffix: String,
    },
}

/// How a list call pages through the upstream's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub style: PagingStyle,
    /// Query parameter carrying the page size.
    pub size_param: String,
    pub max_page_size: u64,
    pub total: TotalSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagingStyle {
    /// `?page=N`, pages counted from `first_page`.
    Page { page_param: String, first_page: u64 },
    /// `?offset=N`.
    Offset { offset_param: String },
    /// `?cursor=C`, the next cursor at a JSON pointer in each answer.
    Cursor {
        cursor_param: String,
        next_pointer: String,
    },
    /// The next page's query in the `Link: <…>; rel="next"` header (RFC 8288).
    Link,
}

/// Where a list response reports how many records match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotalSource {
    Header(String),
    Pointer(String),
    Unknown,
}

impl Paging {
    /// Query parameters for the records `[offset, offset + size)`, for styles
    /// that can jump; page-style upstreams need `offset` to be a multiple of
    /// `size`, which callers ensure. `None` for sequential styles.
    pub fn window(&self, offset: u64, size: u64) -> Option<Vec<(String, String)>> {
        let size_pair = (self.size_param.clone(), size.to_string());
        match &self.style {
            PagingStyle::Page {
                page_param,
                first_page,
            } => {
                let page = first_page + offset / size.max(1);
                Some(vec![(page_param.clone(), page.to_string()), size_pair])
            }
            PagingStyle::Offset { offset_param } => {
                Some(vec![(offset_param.clone(), offset.to_string()), size_pair])
            }
            PagingStyle::Cursor { .. } | PagingStyle::Link => None,
        }
    }

    /// True when any window can be asked for directly, not only page-aligned ones.
    pub fn arbitrary_offsets(&self) -> bool {
        matches!(self.style, PagingStyle::Offset { .. })
    }

    /// The query for the page after the one answered with `headers`/`body`
    /// (sequential styles), or `None` at the end. A Link header's URL gives
    /// only its query: the path and host stay the mapping's.
    pub fn next_query(
        &self,
        size: u64,
        headers: &http::HeaderMap,
        body: View<'_>,
    ) -> Option<Vec<(String, String)>> {
        let size_pair = (self.size_param.clone(), size.to_string());
        match &self.style {
            PagingStyle::Cursor {
                cursor_param,
                next_pointer,
            } => {
                let cursor = match body.pointer(next_pointer)?.scalar() {
                    Scalar::Str(c) if !c.is_empty() => c.to_string(),
                    Scalar::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some(vec![(cursor_param.clone(), cursor), size_pair])
            }
            PagingStyle::Link => {
                let next = headers
                    .get_all(http::header::LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .find(|link| {
                        link.split(';')
                            .skip(1)
                            .any(|p| p.trim().eq_ignore_ascii_case("rel=\"next\""))
                    })?;
                let url = next
                    .split(';')
                    .next()?
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>');
                let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
                Some(
                    form_urlencoded::parse(query.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect(),
                )
            }
            PagingStyle::Page { .. } | PagingStyle::Offset { .. } => None,
        }
    }

    /// The query of the first page of a sequential style.
    pub fn first_query(&self, size: u64) -> Vec<(String, String)> {
        vec![(self.size_param.clone(), size.to_string())]
    }
}

/// Values bound to a call's placeholders.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bindings<'a> {
    pub id: Option<&'a str>,
    pub member: Option<&'a Value>,
    /// `{members}` in a body: an array of member ids.
    pub members: Option<&'a Value>,
    /// `{field.path}` in a body: the new values of the fields it carries; a
    /// key whose field is not among them is left out of the body.
    pub changes: Option<&'a [(FieldPath, Value)]>,
}

impl<'a> Bindings<'a> {
    pub fn id(id: &'a str) -> Self {
        Bindings {
            id: Some(id),
            ..Bindings::default()
        }
    }

    pub fn member(id: &'a str, member: &'a Value) -> Self {
        Bindings {
            id: Some(id),
            member: Some(member),
            ..Bindings::default()
        }
    }
}

/// How a call's body goes on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BodyEncoding {
    /// A JSON document (`content_type`, default `application/json`).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`: one parameter per top-level
    /// field; an object or array field is sent as its JSON text.
    Form,
    /// No body: the fields are query parameters, encoded as for `Form`.
    Query,
}

impl BodyEncoding {
    pub const FORM_MEDIA_TYPE: &'static str = "application/x-www-form-urlencoded";
}

/// The parameters a form or query encoding sends for a body: strings as
/// they are, numbers and booleans as their text, objects and arrays as
/// their JSON text, and null as an empty value.
pub fn form_pairs(body: &Value) -> Vec<(String, String)> {
    let Some(fields) = body.as_object() else {
        return Vec::new();
    };
    fields
        .iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect()
}

/// A request ready to send: the path is already percent-encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub content_type: Option<String>,
    pub encoding: BodyEncoding,
    /// For list calls, the JSON pointer to the records ("" = the body).
    pub list_items: Option<String>,
    /// For single-record calls, the JSON pointer to the record, and for a
    /// create answering only an id, the pointer to it (what `explain`'s
    /// recorder answers in the declared shape).
    pub record_at: Option<String>,
    pub id_at: Option<String>,
    /// The call it was rendered from (`users.update`), never the path with
    /// its ids: what a provisioning record names.
    pub label: std::sync::Arc<str>,
    /// The path as the mapping declares it (`/users/{id}`): what a trace
    /// span names, since the path sent carries ids.
    pub template: std::sync::Arc<str>,
    /// A header making the write conditional on a version (see
    /// `ResourceMapping::update_precondition`).
    pub precondition: Option<(http::HeaderName, String)>,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    segments: Vec<Segment>,
    query: Vec<(String, String)>,
    body: Option<Value>,
    pub paging: Option<Paging>,
    items: Option<String>,
    pub partial: bool,
    /// The body's media type (default `application/json`).
    pub content_type: Option<String>,
    pub encoding: BodyEncoding,
    /// A list call: its answer holds records at `items`.
    pub is_list: bool,
    /// Where the record is in a single-record answer (None: the body).
    pub record: Option<String>,
    /// A create whose answer only names the new record: where its id is.
    pub id_at: Option<String>,
    /// The call's name in the mapping, for messages and provisioning
    /// records (`users.create`); shared, since every request carries it.
    pub label: std::sync::Arc<str>,
    /// The path template as written, shared like `label`.
    pub template: std::sync::Arc<str>,
    /// Update and create calls: the upstream fields this call carries
    /// (empty: every field no other call claims).
    pub fields: Vec<FieldPath>,
}

impl Call {
    /// Compiles a path template; `allowed` lists the placeholders this call may use.
    pub fn new(
        method: Method,
        path: &str,
        allowed: &[Placeholder],
        query: Vec<(String, String)>,
        body: Option<Value>,
    ) -> Result<Call, String> {
        if !path.starts_with('/') {
            return Err(format!(
                "path `{path}` must start with `/` (it is appended to the upstream's base_url)"
            ));
        }
        if path.contains(['?', '#']) {
            return Err(format!(
                "path `{path}` must not carry a query or fragment; use the `query` table"
            ));
        }
        for (key, value) in &query {
            if value.contains(['{', '}'])
                && !Placeholder::parse(value.trim_matches(['{', '}']))
                    .is_some_and(|p| allowed.contains(&p) && value == p.token())
            {
                return Err(format!(
                    "query `{key} = \"{value}\"`: a query value is fixed text or exactly one allowed placeholder"
                ));
            }
        }
        let mut segments = Vec::new();
        for raw in path.split('/').skip(1) {
            if raw.contains(['{', '}']) {
                let (prefix, rest) = raw.split_once('{').unwrap_or(("", raw));
                let (name, suffix) = rest.split_once('}').unwrap_or((rest, ""));
                if name.is_empty() || suffix.contains(['{', '}']) || prefix.contains('}') {
                    return Err(format!(
                        "`{raw}` must hold one placeholder, like `/{{id}}` or `/{{id}}:suspend`"
                    ));
                }
                let placeholder = Placeholder::parse(name)
                    .filter(|p| allowed.contains(p))
                    .ok_or_else(|| {
                        let names: Vec<&str> = allowed.iter().map(|p| p.token()).collect();
                        format!(
                            "unknown placeholder `{{{name}}}` here; expected one of: {}",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        )
                    })?;
                segments.push(Segment::Placeholder {
                    prefix: prefix.to_string(),
                    placeholder,
                    suffix: suffix.to_string(),
                });
            } else if raw == "." || raw == ".." {
                return Err(format!(
                    "path `{path}` must not contain `.` or `..` segments"
                ));
            } else {
                segments.push(Segment::Literal(raw.to_string()));
            }
        }
        Ok(Call {
            method,
            segments,
            query,
            body,
            paging: None,
            items: None,
            partial: false,
            content_type: None,
            encoding: BodyEncoding::Json,
            is_list: false,
            record: None,
            id_at: None,
            label: std::sync::Arc::from(""),
            template: std::sync::Arc::from(path),
            fields: Vec::new(),
        })
    }

    pub fn with_paging(mut self, paging: Option<Paging>, items: Option<String>) -> Call {
        self.paging = paging;
        self.items = items;
        self
    }

    pub fn uses(&self, wanted: Placeholder) -> bool {
        self.segments.iter().any(
            |s| matches!(s, Segment::Placeholder { placeholder, .. } if *placeholder == wanted),
        ) || self.query.iter().any(|(_, v)| v == wanted.token())
    }

    /// Renders the request; every bound value is percent-encoded into its segment.
    pub fn request(&self, bindings: Bindings<'_>) -> Result<UpstreamRequest, MappingError> {
        let mut path = String::new();
        for segment in &self.segments {
            path.push('/');
            match segment {
                Segment::Literal(text) => path.push_str(text),
                Segment::Placeholder {
                    prefix,
                    placeholder,
                    suffix,
                } => {
                    let value = match placeholder {
                        Placeholder::Id => bindings.id.map(str::to_string),
                        Placeholder::Member => bindings.member.map(value_as_segment),
                    }
                    .ok_or(MappingError::Unbound(placeholder.token()))?;
                    // URL parsers resolve `.`/`..` even when percent-encoded.
                    if value.is_empty() || value == "." || value == ".." {
                        return Err(MappingError::UnsafeSegment);
                    }
                    path.push_str(prefix);
                    path.extend(utf8_percent_encode(&value, SEGMENT));
                    path.push_str(suffix);
                }
            }
        }
        let body = self
            .body
            .as_ref()
            .map(|template| fill_body(template, &bindings).unwrap_or(Value::Null));
        // Query values may name a placeholder (`groupId = "{id}"`); the HTTP
        // client form-encodes them, so they cannot add parameters.
        let query = self
            .query
            .iter()
            .map(|(key, value)| {
                let value = match value.as_str() {
                    "{id}" => bindings.id.map(str::to_string),
                    "{member}" => bindings.member.map(value_as_segment),
                    _ => Some(value.clone()),
                };
                value
                    .map(|v| (key.clone(), v))
                    .ok_or(MappingError::Unbound("a query placeholder"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UpstreamRequest {
            method: self.method.clone(),
            path,
            query,
            body,
            content_type: self.content_type.clone(),
            encoding: self.encoding,
            list_items: self.is_list.then(|| self.items.clone().unwrap_or_default()),
            record_at: self.record.clone(),
            id_at: self.id_at.clone(),
            label: self.label.clone(),
            template: self.template.clone(),
            precondition: None,
        })
    }

    /// The record in a single-record answer.
    pub fn record_in<'a>(&self, body: View<'a>) -> Option<View<'a>> {
        match self.record.as_deref() {
            None | Some("") => Some(body),
            Some(pointer) => body.pointer(pointer),
        }
    }

    /// The records of a list response.
    /// The JSON pointer to a list answer's items (`None`: the body is the list).
    pub fn items_pointer(&self) -> Option<&str> {
        self.items.as_deref().filter(|pointer| !pointer.is_empty())
    }

    /// The items of a list answer, taken out of it.
    pub fn take_items(&self, mut body: Value) -> Option<Vec<Value>> {
        let items = match self.items_pointer() {
            None => body,
            Some(pointer) => body.pointer_mut(pointer)?.take(),
        };
        match items {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The items of a list answer of either kind (a value, or a tree read
    /// from the upstream's text), if they are a list.
    pub fn items_in<'a>(&self, body: View<'a>) -> Option<View<'a>> {
        let items = match self.items_pointer() {
            None => body,
            Some(pointer) => body.pointer(pointer)?,
        };
        items.is_array().then_some(items)
    }

    pub fn items<'a>(&self, body: &'a Value) -> Option<&'a Vec<Value>> {
        // A view of a value shows values all the way down.
        self.items_in(body.into())
            .and_then(View::as_value)
            .and_then(Value::as_array)
    }
}

fn value_as_segment(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The body a template renders; `None` for a value whose field placeholder
/// has no change bound (its key is then left out).
fn fill_body(template: &Value, bindings: &Bindings<'_>) -> Option<Value> {
    match template {
        Value::String(text) => match body_placeholder(text) {
            Some(BodyPlaceholder::Member) => Some(bindings.member.cloned().unwrap_or(Value::Null)),
            Some(BodyPlaceholder::Members) => Some(
                bindings
                    .members
                    .cloned()
                    .unwrap_or(Value::Array(Vec::new())),
            ),
            Some(BodyPlaceholder::Field(field)) => bindings
                .changes?
                .iter()
                .find(|(changed, _)| *changed == field)
                .map(|(_, value)| value.clone()),
            None => Some(template.clone()),
        },
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|v| fill_body(v, bindings))
                .collect(),
        )),
        Value::Object(map) => Some(Value::Object(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), fill_body(v, bindings)?)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// What a `"{…}"` string in a body template stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyPlaceholder {
    Member,
    Members,
    Field(FieldPath),
}

/// The placeholder a body string is, if it is exactly one.
pub fn body_placeholder(text: &str) -> Option<BodyPlaceholder> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    match inner {
        "member" => Some(BodyPlaceholder::Member),
        "members" => Some(BodyPlaceholder::Members),
        "id" => None,
        other => FieldPath::parse(other).map(BodyPlaceholder::Field),
    }
}

impl Call {
    /// Whether this call carries `field`: it names it, or an object or
    /// array holding it (`metadata` carries `metadata[key eq "x"].value`).
    pub fn carries(&self, field: &FieldPath) -> bool {
        let text = field.to_string();
        self.fields.iter().any(|carried| {
            let carried = carried.to_string();
            text == carried
                || text
                    .strip_prefix(carried.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    }

    /// The placeholders its body template uses.
    pub fn body_placeholders(&self) -> Vec<BodyPlaceholder> {
        fn walk(value: &Value, found: &mut Vec<BodyPlaceholder>) {
            match value {
                Value::String(text) => found.extend(body_placeholder(text)),
                Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
                Value::Object(map) => map.values().for_each(|v| walk(v, found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        if let Some(body) = &self.body {
            walk(body, &mut found);
        }
        found
    }

    /// The field placeholders its body template uses.
    pub fn body_fields(&self) -> Vec<FieldPath> {
        self.body_placeholders()
            .into_iter()
            .filter_map(|placeholder| match placeholder {
                BodyPlaceholder::Field(field) => Some(field),
                BodyPlaceholder::Member | BodyPlaceholder::Members => None,
            })
            .collect()
    }

    pub fn has_body_template(&self) -> bool {
        self.body.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get_user() -> Call {
        Call::new(
            Method::GET,
            "/api/v1/users/{id}",
            &[Placeholder::Id],
            vec![],
            None,
        )
        .unwrap()
    }

    #[test]
    fn id_is_percent_encoded_into_one_segment() {
        let request = get_user()
            .request(Bindings::id("../admin?x=1#y@evil.example/%2F"))
            .unwrap();
        assert_eq!(
            request.path,
            "/api/v1/users/..%2Fadmin%3Fx%3D1%23y%40evil.example%2F%252F"
        );
    }

    #[test]
    fn dot_segments_are_refused() {
        for id in [".", "..", ""] {
            let result = get_user().request(Bindings::id(id));
            assert!(matches!(result, Err(MappingError::UnsafeSegment)), "{id}");
        }
    }

    #[test]
    fn placeholder_with_fixed_text_around_it_encodes_only_the_value() {
        let call = Call::new(
            Method::POST,
            "/users/{id}:suspend",
            &[Placeholder::Id],
            vec![],
            None,
        )
        .unwrap();
        let request = call.request(Bindings::id("a/b:c")).unwrap();
        assert_eq!(request.path, "/users/a%2Fb%3Ac:suspend");
        let error = Call::new(
            Method::GET,
            "/users/{id}{id}",
            &[Placeholder::Id],
            vec![],
            None,
        )
        .unwrap_err();
        assert!(error.contains("one placeholder"), "{error}");
    }

    #[test]
    fn placeholder_not_allowed_for_call_is_refused() {
        let error = Call::new(
            Method::POST,
            "/users/{member}",
            &[Placeholder::Id],
            vec![],
            None,
        )
        .unwrap_err();
        assert!(error.contains("expected one of: {id}"), "{error}");
    }

    #[test]
    fn query_values_may_name_a_placeholder() {
        let call = Call::new(
            Method::GET,
            "/users",
            &[Placeholder::Id],
            vec![
                ("groupId".into(), "{id}".into()),
                ("limit".into(), "50".into()),
            ],
            None,
        )
        .unwrap();
        let request = call.request(Bindings::id("g&x=1")).unwrap();
        assert_eq!(
            request.query,
            vec![
                ("groupId".into(), "g&x=1".into()),
                ("limit".into(), "50".into())
            ]
        );
        assert!(call.request(Bindings::default()).is_err());
    }

    #[test]
    fn member_fills_body_template_with_its_json_type() {
        let call = Call::new(
            Method::POST,
            "/teams/{id}/members",
            &[Placeholder::Id, Placeholder::Member],
            vec![],
            Some(json!({"user_id": "{member}", "kind": "user"})),
        )
        .unwrap();
        let request = call.request(Bindings::member("3", &json!(7))).unwrap();
        assert_eq!(request.path, "/teams/3/members");
        assert_eq!(request.body, Some(json!({"user_id": 7, "kind": "user"})));
    }

    #[test]
    fn page_window_counts_pages_from_first_page() {
        let paging = Paging {
            style: PagingStyle::Page {
                page_param: "page".into(),
                first_page: 1,
            },
            size_param: "per_page".into(),
            max_page_size: 100,
            total: TotalSource::Unknown,
        };
        assert_eq!(
            paging.window(200, 100),
            Some(vec![
                ("page".into(), "3".into()),
                ("per_page".into(), "100".into())
            ])
        );
    }

    #[test]
    fn cursor_comes_from_the_answer_and_ends_at_null() {
        let paging = Paging {
            style: PagingStyle::Cursor {
                cursor_param: "cursor".into(),
                next_pointer: "/next".into(),
            },
            size_param: "limit".into(),
            max_page_size: 50,
            total: TotalSource::Unknown,
        };
        let headers = http::HeaderMap::new();
        assert_eq!(
            paging.next_query(50, &headers, (&json!({"next": "abc"})).into()),
            Some(vec![
                ("cursor".into(), "abc".into()),
                ("limit".into(), "50".into())
            ])
        );
        assert_eq!(
            paging.next_query(50, &headers, (&json!({"next": null})).into()),
            None
        );
        assert_eq!(paging.window(0, 50), None);
    }

    #[test]
    fn link_header_gives_only_its_query() {
        let paging = Paging {
            style: PagingStyle::Link,
            size_param: "limit".into(),
            max_page_size: 50,
            total: TotalSource::Unknown,
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::LINK,
            http::HeaderValue::from_static("<https://evil.example/other?page=2&limit=50>; rel=\"next\", <https://x/?page=1>; rel=\"first\""),
        );
        assert_eq!(
            paging.next_query(50, &headers, (&Value::Null).into()),
            Some(vec![
                ("page".into(), "2".into()),
                ("limit".into(), "50".into())
            ])
        );
        assert_eq!(
            paging.next_query(50, &http::HeaderMap::new(), (&Value::Null).into()),
            None
        );
    }
}
