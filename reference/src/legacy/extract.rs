//! Reading requests: JSON bodies, numeric path ids, list query strings and body fields.
//!
//! Each extractor's rejection is an [`ApiError`], so a malformed body is a JSON
//! `BAD_JSON`, a non-numeric id a JSON `NOT_FOUND`, and a bad query an `INVALID_FIELD`.
//! The field readers below hold the value rules shared by users and teams.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use http::StatusCode;
use http::request::Parts;
use serde_json::{Map, Value};

use super::error::ApiError;

/// Longest accepted text field, in characters, unless a field says otherwise.
pub(crate) const MAX_TEXT: usize = 255;

/// A request body that is a JSON object. Anything else is `400 BAD_JSON`.
pub(crate) struct JsonObject(pub(crate) Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = match Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "BODY_TOO_LARGE",
                    "request body is too large",
                ));
            }
            Err(rejection) => {
                return Err(ApiError::bad_json(format!(
                    "could not read request body: {}",
                    rejection.body_text()
                )));
            }
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::bad_json("request body must be a JSON object")),
            Err(err) => Err(ApiError::bad_json(format!(
                "request body is not valid JSON: {err}"
            ))),
        }
    }
}

impl JsonObject {
    /// Rejects any key outside `writable`, naming read-only keys as such.
    pub(crate) fn check_keys(&self, writable: &[&str], read_only: &[&str]) -> Result<(), ApiError> {
        for key in self.0.keys() {
            if writable.contains(&key.as_str()) {
                continue;
            }
            if read_only.contains(&key.as_str()) {
                return Err(ApiError::invalid_field(format!(
                    "field `{key}` is read-only; writable fields: {}",
                    writable.join(", ")
                )));
            }
            return Err(ApiError::invalid_field(format!(
                "unknown field `{key}`; writable fields: {}",
                writable.join(", ")
            )));
        }
        Ok(())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Field `name` as a single-line [`required_text`] when present; its absence is an
    /// error only when `require` (creates and replaces).
    pub(crate) fn required_text(
        &self,
        name: &str,
        require: bool,
    ) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            Some(value) => Ok(Some(required_text(name, value, MAX_TEXT, Lines::Single)?)),
            None if require => Err(ApiError::invalid_field(format!(
                "field `{name}` is required"
            ))),
            None => Ok(None),
        }
    }

    /// Field `name` as a [`nullable_text`] when present, `None` when absent.
    pub(crate) fn nullable_text(
        &self,
        name: &str,
        max: usize,
        lines: Lines,
    ) -> Result<Option<Option<String>>, ApiError> {
        self.get(name)
            .map(|value| nullable_text(name, value, max, lines))
            .transpose()
    }
}

/// The version a write is conditional on (`If-Match: 7`): a write to a row
/// at another version is refused with 412, so two clients that read the
/// same version cannot both write. Absent or `*`: unconditional. A quoted
/// value (`"7"`, an ETag's form) is read as its content.
pub(crate) struct IfMatch(pub(crate) Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(http::header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value.to_str().unwrap_or_default().trim();
        if text == "*" {
            return Ok(IfMatch(None));
        }
        let unquoted = text.trim_start_matches("W/").trim_matches('"');
        match unquoted.parse::<i64>() {
            Ok(version) => Ok(IfMatch(Some(version))),
            Err(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "BAD_IF_MATCH",
                "If-Match must be a record's version (an integer) or `*`",
            )),
        }
    }
}

/// The positive integer ids in a route's path, in order. Anything else is `404`: a
/// path like `/users/abc` names no resource.
pub(crate) struct PathIds<const N: usize>(pub(crate) [i64; N]);

impl<S: Send + Sync, const N: usize> FromRequestParts<S> for PathIds<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let path = parts.uri.path().to_owned();
        let not_found = || ApiError::not_found(format!("nothing at {path}"));
        let Ok(Path(raw)) = Path::<Vec<String>>::from_request_parts(parts, state).await else {
            return Err(not_found());
        };
        let ids: Option<Vec<i64>> = raw.iter().map(|s| parse_id(s)).collect();
        match ids.map(<[i64; N]>::try_from) {
            Some(Ok(ids)) => Ok(PathIds(ids)),
            _ => Err(not_found()),
        }
    }
}

/// A positive decimal id: ASCII digits only (no sign, no spaces), fitting in `i64`.
pub(crate) fn parse_id(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| *id > 0)
}

/// One page of a list: `page` starts at 1, `per_page` is 1..=[`Page::MAX_PER_PAGE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) page: u64,
    pub(crate) per_page: u64,
}

impl Page {
    pub(crate) const DEFAULT_PER_PAGE: u64 = 20;
    pub(crate) const MAX_PER_PAGE: u64 = 100;

    /// SQL `LIMIT` and `OFFSET`; a page far past the end just yields nothing.
    pub(crate) fn limit_offset(self) -> (i64, i64) {
        let offset = (self.page - 1).saturating_mul(self.per_page);
        let per_page = i64::try_from(self.per_page).unwrap_or(i64::MAX);
        (per_page, i64::try_from(offset).unwrap_or(i64::MAX))
    }
}

/// The query string of a list endpoint: paging plus the endpoint's own filters.
///
/// Unknown parameters are rejected rather than ignored: a misspelt filter silently
/// ignored would turn a lookup into "everything". An empty value counts as absent, so
/// `?login=&page=` is the same as no query at all.
pub(crate) struct ListQuery {
    pub(crate) page: Page,
    filters: Vec<(String, String)>,
}

impl ListQuery {
    pub(crate) fn filter(&self, name: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Reads paging and the filters named in `filters`; anything else is rejected.
    pub(crate) fn parse(
        QueryPairs(pairs): QueryPairs,
        filters: &[&str],
    ) -> Result<ListQuery, ApiError> {
        let mut seen: Vec<String> = Vec::new();
        let mut page = Page {
            page: 1,
            per_page: Page::DEFAULT_PER_PAGE,
        };
        let mut found = Vec::new();
        for (key, value) in pairs {
            if seen.contains(&key) {
                return Err(ApiError::invalid_field(format!(
                    "query parameter `{key}` is given more than once"
                )));
            }
            seen.push(key.clone());
            let known = key == "page" || key == "per_page" || filters.contains(&key.as_str());
            if !known {
                let mut allowed = vec!["page", "per_page"];
                allowed.extend_from_slice(filters);
                return Err(ApiError::invalid_field(format!(
                    "unknown query parameter `{key}`; allowed: {}",
                    allowed.join(", ")
                )));
            }
            if value.is_empty() {
                continue;
            }
            match key.as_str() {
                "page" => page.page = positive_count("page", &value)?,
                "per_page" => {
                    page.per_page = positive_count("per_page", &value)?.min(Page::MAX_PER_PAGE)
                }
                _ => found.push((key, value)),
            }
        }
        Ok(ListQuery {
            page,
            filters: found,
        })
    }
}

/// A positive decimal integer; one too large for `u64` saturates (it is still "more").
fn positive_count(name: &str, value: &str) -> Result<u64, ApiError> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let count = digits.then(|| value.parse::<u64>().unwrap_or(u64::MAX));
    match count {
        Some(count) if count > 0 => Ok(count),
        _ => Err(ApiError::invalid_field(format!(
            "query parameter `{name}` must be a positive integer, got `{value}`"
        ))),
    }
}

/// The raw `key=value` pairs of a query string, in order.
pub(crate) struct QueryPairs(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(QueryPairs(pairs)),
            Err(rejection) => Err(ApiError::invalid_field(format!(
                "malformed query string: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// What kind of characters a text field may hold.
#[derive(Clone, Copy)]
pub(crate) enum Lines {
    /// No control characters at all.
    Single,
    /// Line breaks and tabs allowed, other control characters not.
    Multi,
}

/// A required text field: a string, not blank, at most `max` characters.
pub(crate) fn required_text(
    name: &str,
    value: &Value,
    max: usize,
    lines: Lines,
) -> Result<String, ApiError> {
    let Value::String(text) = value else {
        return Err(ApiError::invalid_field(format!(
            "field `{name}` must be a non-blank string of at most {max} characters"
        )));
    };
    if text.trim().is_empty() {
        return Err(ApiError::invalid_field(format!(
            "field `{name}` must not be blank"
        )));
    }
    check_text(name, text, max, lines)?;
    Ok(text.clone())
}

/// A nullable text field: `null`, or a string of at most `max` characters.
pub(crate) fn nullable_text(
    name: &str,
    value: &Value,
    max: usize,
    lines: Lines,
) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => {
            check_text(name, text, max, lines)?;
            Ok(Some(text.clone()))
        }
        _ => Err(ApiError::invalid_field(format!(
            "field `{name}` must be null or a string of at most {max} characters"
        ))),
    }
}

fn check_text(name: &str, text: &str, max: usize, lines: Lines) -> Result<(), ApiError> {
    if text.chars().count() > max {
        return Err(ApiError::invalid_field(format!(
            "field `{name}` must be at most {max} characters"
        )));
    }
    let bad = |c: char| match lines {
        Lines::Single => c.is_control(),
        Lines::Multi => c.is_control() && !matches!(c, '\n' | '\r' | '\t'),
    };
    if text.chars().any(bad) {
        return Err(ApiError::invalid_field(format!(
            "field `{name}` must not contain control characters"
        )));
    }
    Ok(())
}

/// A nullable id field: `null` or a positive JSON integer.
pub(crate) fn nullable_id(name: &str, value: &Value) -> Result<Option<i64>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64().filter(|id| *id > 0) {
            Some(id) => Ok(Some(id)),
            None => Err(ApiError::invalid_field(format!(
                "field `{name}` must be null or a positive integer id"
            ))),
        },
        _ => Err(ApiError::invalid_field(format!(
            "field `{name}` must be null or a positive integer id"
        ))),
    }
}

/// A field whose value is one of a fixed set of strings.
pub(crate) fn one_of<T>(
    name: &str,
    value: &Value,
    allowed: &[&str],
    parse: fn(&str) -> Option<T>,
) -> Result<T, ApiError> {
    value.as_str().and_then(parse).ok_or_else(|| {
        ApiError::invalid_field(format!(
            "field `{name}` must be one of: {}",
            allowed.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> QueryPairs {
        QueryPairs(
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn ids_are_plain_positive_decimals() {
        assert_eq!(parse_id("7"), Some(7));
        assert_eq!(parse_id("007"), Some(7));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            " 1",
            "1.0",
            "abc",
            "99999999999999999999",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn per_page_above_the_maximum_is_clamped() {
        let query = ListQuery::parse(pairs(&[("per_page", "500")]), &[]).unwrap();
        assert_eq!(query.page.per_page, Page::MAX_PER_PAGE);
        let huge = ListQuery::parse(pairs(&[("per_page", "99999999999999999999999")]), &[]);
        assert_eq!(huge.unwrap().page.per_page, Page::MAX_PER_PAGE);
    }

    #[test]
    fn zero_negative_or_non_numeric_paging_is_rejected() {
        for (key, value) in [
            ("page", "0"),
            ("page", "-1"),
            ("per_page", "0"),
            ("per_page", "x"),
        ] {
            let err = ListQuery::parse(pairs(&[(key, value)]), &[]).err().unwrap();
            assert_eq!(err.code(), "INVALID_FIELD");
        }
    }

    #[test]
    fn empty_values_count_as_absent() {
        let query = ListQuery::parse(
            pairs(&[("login", ""), ("page", ""), ("per_page", "")]),
            &["login"],
        )
        .unwrap();
        assert_eq!(
            query.page,
            Page {
                page: 1,
                per_page: 20
            }
        );
        assert_eq!(query.filter("login"), None);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_rejected() {
        assert!(ListQuery::parse(pairs(&[("username", "bob")]), &["login"]).is_err());
        assert!(ListQuery::parse(pairs(&[("login", "a"), ("login", "b")]), &["login"]).is_err());
    }

    #[test]
    fn pages_far_past_the_end_do_not_overflow() {
        let page = Page {
            page: u64::MAX,
            per_page: 100,
        };
        assert_eq!(page.limit_offset(), (100, i64::MAX));
    }
}
