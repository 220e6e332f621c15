//! Reading requests: bodies by media type, UUID path ids, `:action` suffixes and the
//! cursor-paging query string.
//!
//! Each extractor's rejection is a [`Problem`]: a body of the wrong media type is a
//! 415 `unsupported-media-type`, unparsable JSON a 400 `bad-json`, a path that names
//! no record a 404 `not-found`, and a bad query parameter a 422 `invalid-field`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use http::StatusCode;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use serde_json::{Map, Value};

use super::ids::{Collection, decode_cursor, parse_uuid};
use super::problem::Problem;
use super::store::PageRequest;

pub(crate) const JSON: &str = "application/json";
pub(crate) const MERGE_PATCH: &str = "application/merge-patch+json";
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// Whether the request's `Content-Type` is `expected`, ignoring parameters and case.
fn check_media_type(req: &Request, expected: &str) -> Result<(), Problem> {
    let header = req.headers().get(CONTENT_TYPE);
    let text = header.and_then(|value| value.to_str().ok());
    let essence = text.map(|t| t.split(';').next().unwrap_or_default().trim());
    if essence.is_some_and(|e| e.eq_ignore_ascii_case(expected)) {
        Ok(())
    } else {
        let shown = match (header, text) {
            (Some(_), None) => Some("<not text>"),
            _ => text,
        };
        Err(Problem::unsupported_media_type(expected, shown))
    }
}

/// The body of a request whose `Content-Type` must be `expected`.
async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
    expected: &str,
) -> Result<Bytes, Problem> {
    check_media_type(&req, expected)?;
    match Bytes::from_request(req, state).await {
        Ok(bytes) => Ok(bytes),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            "request body is too large",
        )),
        Err(rejection) => Err(Problem::bad_json(format!(
            "could not read request body: {}",
            rejection.body_text()
        ))),
    }
}

/// A body that parses as a JSON object.
fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, Problem> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::bad_json(format!("{what} must be a JSON object"))),
        Err(err) => Err(Problem::bad_json(format!("body is not valid JSON: {err}"))),
    }
}

/// A create body: `application/json`, a JSON object.
pub(crate) struct JsonBody(pub(crate) Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = body_bytes(req, state, JSON).await?;
        json_object(&bytes, "the request body").map(JsonBody)
    }
}

/// An update body: `application/merge-patch+json` (RFC 7386), a JSON object. (A
/// non-object merge patch would replace the whole record, which no record allows.)
pub(crate) struct MergePatch(pub(crate) Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for MergePatch {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = body_bytes(req, state, MERGE_PATCH).await?;
        json_object(&bytes, "a merge patch of a record").map(MergePatch)
    }
}

/// A token request body: `application/x-www-form-urlencoded` pairs, in order.
pub(crate) struct FormBody(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for FormBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = body_bytes(req, state, FORM).await?;
        let pairs = form_urlencoded::parse(&bytes)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(FormBody(pairs))
    }
}

/// The one path segment after the collection, as sent (percent-decoded).
async fn segment(parts: &mut Parts) -> Result<String, Problem> {
    let path = parts.uri.path().to_owned();
    match Path::<String>::from_request_parts(parts, &()).await {
        Ok(Path(segment)) => Ok(segment),
        Err(_) => Err(Problem::not_found(format!("nothing at {path}"))),
    }
}

/// A record id in the path: a UUID, lowercased. Anything else names no record: 404.
pub(crate) struct PathId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let raw = segment(parts).await?;
        parse_uuid(&raw)
            .map(PathId)
            .ok_or_else(|| Problem::not_found(format!("no record with id `{raw}`")))
    }
}

/// A custom method on a user, Google-API style: `POST /v2/users/{id}:suspend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UserAction {
    Suspend,
    Unsuspend,
}

/// `{id}:{action}` in the path. A bare id (a POST to the user itself) is a 405; an
/// unknown action or a bad id a 404.
pub(crate) struct ActionPath(pub(crate) String, pub(crate) UserAction);

impl<S: Send + Sync> FromRequestParts<S> for ActionPath {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let raw = segment(parts).await?;
        let Some((id, action)) = raw.split_once(':') else {
            return Err(Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "POST on a user needs an action: `:suspend` or `:unsuspend`",
            ));
        };
        let action = match action {
            "suspend" => UserAction::Suspend,
            "unsuspend" => UserAction::Unsuspend,
            _ => {
                return Err(Problem::not_found(format!(
                    "no action `:{action}`; actions: `:suspend`, `:unsuspend`"
                )));
            }
        };
        match parse_uuid(id) {
            Some(id) => Ok(ActionPath(id, action)),
            None => Err(Problem::not_found(format!("no user with id `{id}`"))),
        }
    }
}

/// The raw `key=value` pairs of a query string, in order.
pub(crate) struct QueryPairs(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(QueryPairs(pairs)),
            Err(rejection) => Err(Problem::invalid_field(
                "query",
                format!("malformed query string: {}", rejection.body_text()),
            )),
        }
    }
}

/// The query string of a list: `limit`, `cursor` and the list's own filters.
///
/// Unknown and repeated parameters are rejected rather than ignored: a misspelt filter
/// silently dropped would turn a lookup into "everything". An empty value counts as
/// absent.
#[derive(Debug)]
pub(crate) struct ListQuery {
    pub(crate) page: PageRequest,
    filters: Vec<(String, String)>,
}

impl ListQuery {
    pub(crate) const DEFAULT_LIMIT: u32 = 25;
    pub(crate) const MAX_LIMIT: u32 = 50;

    pub(crate) fn filter(&self, name: &str) -> Option<&str> {
        self.filters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Reads `limit` (1..; above [`Self::MAX_LIMIT`] is clamped), `cursor` (one this
    /// `collection` handed out) and the filters named in `filters`.
    pub(crate) fn parse(
        QueryPairs(pairs): QueryPairs,
        collection: Collection,
        filters: &[&str],
    ) -> Result<ListQuery, Problem> {
        let mut seen: Vec<&str> = Vec::new();
        let mut page = PageRequest {
            after: 0,
            limit: Self::DEFAULT_LIMIT,
        };
        let mut found = Vec::new();
        for (key, value) in &pairs {
            if seen.contains(&key.as_str()) {
                return Err(Problem::invalid_field(key, "is given more than once"));
            }
            seen.push(key);
            let known = key == "limit" || key == "cursor" || filters.contains(&key.as_str());
            if !known {
                let mut allowed = vec!["limit", "cursor"];
                allowed.extend_from_slice(filters);
                return Err(Problem::invalid_field(
                    key,
                    format!("unknown query parameter; allowed: {}", allowed.join(", ")),
                ));
            }
            if value.is_empty() {
                continue;
            }
            match key.as_str() {
                "limit" => page.limit = limit(value)?,
                "cursor" => {
                    page.after = decode_cursor(collection, value).ok_or_else(|| {
                        Problem::invalid_field("cursor", "is not a cursor this list handed out")
                    })?;
                }
                _ => found.push((key.clone(), value.clone())),
            }
        }
        Ok(ListQuery {
            page,
            filters: found,
        })
    }
}

/// A positive decimal integer, clamped to [`ListQuery::MAX_LIMIT`].
fn limit(value: &str) -> Result<u32, Problem> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let count = digits.then(|| value.parse::<u64>().unwrap_or(u64::MAX));
    match count {
        Some(count) if count > 0 => Ok(u32::try_from(count)
            .unwrap_or(u32::MAX)
            .min(ListQuery::MAX_LIMIT)),
        _ => Err(Problem::invalid_field(
            "limit",
            format!("must be a positive integer, got `{value}`"),
        )),
    }
}

/// `true` or `false`, for a boolean query parameter.
pub(crate) fn boolean(name: &str, value: &str) -> Result<bool, Problem> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Problem::invalid_field(
            name,
            format!("must be `true` or `false`, got `{value}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ids::encode_cursor;
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> QueryPairs {
        QueryPairs(
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn parse(list: &[(&str, &str)]) -> Result<ListQuery, Problem> {
        ListQuery::parse(pairs(list), Collection::Users, &["username"])
    }

    #[test]
    fn limit_defaults_to_25_and_clamps_at_50() {
        assert_eq!(parse(&[]).unwrap().page.limit, 25);
        assert_eq!(parse(&[("limit", "7")]).unwrap().page.limit, 7);
        assert_eq!(parse(&[("limit", "500")]).unwrap().page.limit, 50);
        let huge = parse(&[("limit", "99999999999999999999999")]);
        assert_eq!(huge.unwrap().page.limit, 50);
    }

    #[test]
    fn zero_negative_or_non_numeric_limits_are_rejected() {
        for value in ["0", "-1", "x", "1.5"] {
            let err = parse(&[("limit", value)]).unwrap_err();
            assert_eq!(err.slug(), "invalid-field");
            assert_eq!(err.fields(), ["limit"]);
        }
    }

    #[test]
    fn cursors_must_come_from_the_same_list() {
        let users = encode_cursor(Collection::Users, 9);
        assert_eq!(parse(&[("cursor", &users)]).unwrap().page.after, 9);
        let groups = encode_cursor(Collection::Groups, 9);
        let err = parse(&[("cursor", &groups)]).unwrap_err();
        assert_eq!(err.fields(), ["cursor"]);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_rejected_by_name() {
        assert_eq!(parse(&[("login", "bob")]).unwrap_err().fields(), ["login"]);
        let repeated = parse(&[("username", "a"), ("username", "b")]).unwrap_err();
        assert_eq!(repeated.fields(), ["username"]);
    }

    #[test]
    fn empty_values_count_as_absent() {
        let query = parse(&[("username", ""), ("limit", ""), ("cursor", "")]).unwrap();
        assert_eq!(
            query.page,
            PageRequest {
                after: 0,
                limit: 25
            }
        );
        assert_eq!(query.filter("username"), None);
    }
}
