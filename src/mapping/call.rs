//! One upstream HTTP call as a mapping declares it, and its rendering into a
//! concrete request.
//!
//! Placeholders (`{id}`, `{member}`) may only fill whole path segments and are
//! percent-encoded, so nothing an IdP sends can steer the gateway to another
//! path or host than the mapping declares.

use http::Method;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::MappingError;

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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

/// How a list call pages through the upstream's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    Page {
        page_param: String,
        size_param: String,
        first_page: u64,
        max_page_size: u64,
        total: TotalSource,
    },
    Offset {
        offset_param: String,
        limit_param: String,
        max_page_size: u64,
        total: TotalSource,
    },
}

/// Where a list response reports how many records match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotalSource {
    Header(String),
    Pointer(String),
    Unknown,
}

impl Paging {
    pub fn max_page_size(&self) -> u64 {
        match self {
            Paging::Page { max_page_size, .. } | Paging::Offset { max_page_size, .. } => {
                *max_page_size
            }
        }
    }

    pub fn total(&self) -> &TotalSource {
        match self {
            Paging::Page { total, .. } | Paging::Offset { total, .. } => total,
        }
    }

    /// Query parameters for the records `[offset, offset + size)`; page-style
    /// upstreams need `offset` to be a multiple of `size`, which callers ensure.
    pub fn window(&self, offset: u64, size: u64) -> Vec<(String, String)> {
        match self {
            Paging::Page {
                page_param,
                size_param,
                first_page,
                ..
            } => {
                let page = first_page + offset / size.max(1);
                vec![
                    (page_param.clone(), page.to_string()),
                    (size_param.clone(), size.to_string()),
                ]
            }
            Paging::Offset {
                offset_param,
                limit_param,
                ..
            } => vec![
                (offset_param.clone(), offset.to_string()),
                (limit_param.clone(), size.to_string()),
            ],
        }
    }

    /// True when any window can be asked for directly, not only page-aligned ones.
    pub fn arbitrary_offsets(&self) -> bool {
        matches!(self, Paging::Offset { .. })
    }
}

/// Values bound to a call's placeholders.
#[derive(Debug, Default, Clone, Copy)]
pub struct Bindings<'a> {
    pub id: Option<&'a str>,
    pub member: Option<&'a Value>,
}

/// A request ready to send: the path is already percent-encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
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
        let mut segments = Vec::new();
        for raw in path.split('/').skip(1) {
            if raw.contains(['{', '}']) {
                let name = raw
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .ok_or_else(|| {
                        format!(
                            "placeholder in `{raw}` must fill a whole path segment, like `/{{id}}`"
                        )
                    })?;
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
                segments.push(Segment::Placeholder(placeholder));
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
        })
    }

    pub fn with_paging(mut self, paging: Option<Paging>, items: Option<String>) -> Call {
        self.paging = paging;
        self.items = items;
        self
    }

    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.segments.contains(&Segment::Placeholder(placeholder))
    }

    /// Renders the request; every bound value is percent-encoded into its segment.
    pub fn request(&self, bindings: Bindings<'_>) -> Result<UpstreamRequest, MappingError> {
        let mut path = String::new();
        for segment in &self.segments {
            path.push('/');
            match segment {
                Segment::Literal(text) => path.push_str(text),
                Segment::Placeholder(placeholder) => {
                    let value = match placeholder {
                        Placeholder::Id => bindings.id.map(str::to_string),
                        Placeholder::Member => bindings.member.map(value_as_segment),
                    }
                    .ok_or(MappingError::Unbound(placeholder.token()))?;
                    // URL parsers resolve `.`/`..` even when percent-encoded.
                    if value.is_empty() || value == "." || value == ".." {
                        return Err(MappingError::UnsafeSegment);
                    }
                    path.extend(utf8_percent_encode(&value, SEGMENT));
                }
            }
        }
        let body = self
            .body
            .as_ref()
            .map(|template| fill_body(template, bindings.member));
        Ok(UpstreamRequest {
            method: self.method.clone(),
            path,
            query: self.query.clone(),
            body,
        })
    }

    /// The records of a list response.
    pub fn items<'a>(&self, body: &'a Value) -> Option<&'a Vec<Value>> {
        match self.items.as_deref() {
            None | Some("") => body.as_array(),
            Some(pointer) => body.pointer(pointer).and_then(Value::as_array),
        }
    }
}

fn value_as_segment(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn fill_body(template: &Value, member: Option<&Value>) -> Value {
    match template {
        Value::String(text) if text == "{member}" => member.cloned().unwrap_or(Value::Null),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_body(v, member)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_body(v, member)))
                .collect(),
        ),
        other => other.clone(),
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
            .request(Bindings {
                id: Some("../admin?x=1#y@evil.example/%2F"),
                member: None,
            })
            .unwrap();
        assert_eq!(
            request.path,
            "/api/v1/users/..%2Fadmin%3Fx%3D1%23y%40evil.example%2F%252F"
        );
    }

    #[test]
    fn dot_segments_are_refused() {
        for id in [".", "..", ""] {
            let result = get_user().request(Bindings {
                id: Some(id),
                member: None,
            });
            assert!(matches!(result, Err(MappingError::UnsafeSegment)), "{id}");
        }
    }

    #[test]
    fn placeholder_must_fill_whole_segment() {
        let error = Call::new(
            Method::GET,
            "/users/x{id}",
            &[Placeholder::Id],
            vec![],
            None,
        )
        .unwrap_err();
        assert!(error.contains("whole path segment"), "{error}");
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
    fn member_fills_body_template_with_its_json_type() {
        let call = Call::new(
            Method::POST,
            "/teams/{id}/members",
            &[Placeholder::Id, Placeholder::Member],
            vec![],
            Some(json!({"user_id": "{member}", "kind": "user"})),
        )
        .unwrap();
        let request = call
            .request(Bindings {
                id: Some("3"),
                member: Some(&json!(7)),
            })
            .unwrap();
        assert_eq!(request.path, "/teams/3/members");
        assert_eq!(request.body, Some(json!({"user_id": 7, "kind": "user"})));
    }

    #[test]
    fn page_window_counts_pages_from_first_page() {
        let paging = Paging::Page {
            page_param: "page".into(),
            size_param: "per_page".into(),
            first_page: 1,
            max_page_size: 100,
            total: TotalSource::Unknown,
        };
        assert_eq!(
            paging.window(200, 100),
            vec![
                ("page".into(), "3".into()),
                ("per_page".into(), "100".into())
            ]
        );
    }
}
