//! Request extractors whose rejections are SCIM errors, never the framework's
//! plain-text 400/415/422: the JSON body and the list/projection query.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use http::{StatusCode, header::CONTENT_TYPE};
use serde_json::Value;

use super::rescue::ErrorResponse;
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::{Filter, parse_filter};
use crate::scim::path::{AttrPath, parse_attribute_list};

/// One path parameter (a resource id, a schema URN). Axum's own `Path`
/// answers undecodable values (not UTF-8) in plain text; this one answers
/// a SCIM 404, since no resource can have such an id.
pub struct ScimPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ScimPath {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ScimPath(value))
            .map_err(|_| {
                ErrorResponse(ScimError::not_found(
                    "no resource has this id (it is not valid UTF-8 once decoded)",
                ))
            })
    }
}

/// A JSON request body sent as `application/scim+json` or `application/json`.
pub struct ScimJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimJson {
    type Rejection = ErrorResponse;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ScimJson(json_body(request, state).await?))
    }
}

async fn json_body<S: Send + Sync>(request: Request, state: &S) -> Result<Value, ScimError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if let Some(content_type) = content_type
        && !matches!(
            content_type.as_str(),
            "application/scim+json" | "application/json"
        )
    {
        return Err(ScimError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            format!(
                "Content-Type `{content_type}` is not accepted; send application/scim+json or application/json"
            ),
        ));
    }
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    "the request body is larger than this gateway accepts",
                )
            } else {
                ScimError::bad_request(
                    ScimType::InvalidSyntax,
                    "the request body could not be read",
                )
            }
        })?;
    let value = crate::scim::json::from_bytes(&bytes).map_err(|error| {
        ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("the request body is not valid JSON: {error}"),
        )
    })?;
    Ok(value)
}

/// The query parameters of RFC 7644 §3.4.2 and §3.9. Unknown parameters are
/// ignored (Entra appends flags such as `aadOptscim062020`).
#[derive(Debug, Default)]
pub struct ScimQuery {
    pub filter: Option<Filter>,
    pub start_index: Option<u64>,
    pub count: Option<u64>,
    pub attributes: Vec<AttrPath>,
    pub excluded_attributes: Vec<AttrPath>,
}

impl ScimQuery {
    pub fn parse(query: &str) -> Result<ScimQuery, ScimError> {
        let mut parsed = ScimQuery::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.to_ascii_lowercase().as_str() {
                "filter" => parsed.filter = Some(parse_filter(&value)?),
                // RFC 7644 §3.4.2.4: startIndex below 1 is read as 1, count below 0 as 0.
                "startindex" => parsed.start_index = Some(integer(&key, &value)?.max(1) as u64),
                "count" => parsed.count = Some(integer(&key, &value)?.max(0) as u64),
                "attributes" => parsed.attributes = parse_attribute_list(&value)?,
                "excludedattributes" => parsed.excluded_attributes = parse_attribute_list(&value)?,
                "sortby" | "sortorder" => {
                    return Err(ScimError::bad_request(
                        ScimType::InvalidValue,
                        "sorting is not supported (ServiceProviderConfig: sort.supported = false)",
                    ));
                }
                _ => {}
            }
        }
        Ok(parsed)
    }

    /// The same parameters from a `POST …/.search` body (RFC 7644 §3.4.3).
    pub fn from_search_request(body: &Value) -> Result<ScimQuery, ScimError> {
        const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
        let declares = body
            .get("schemas")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter().any(|u| {
                    u.as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(SEARCH_REQUEST))
                })
            });
        if !declares {
            return Err(ScimError::bad_request(
                ScimType::InvalidSyntax,
                format!("a search request must list `{SEARCH_REQUEST}` in `schemas`"),
            ));
        }
        let list = |key: &str| -> Result<Vec<AttrPath>, ScimError> {
            match body.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        let text = item.as_str().ok_or_else(|| {
                            ScimError::bad_request(
                                ScimType::InvalidValue,
                                format!("`{key}` must be an array of strings"),
                            )
                        })?;
                        Ok(AttrPath::parse(text)?)
                    })
                    .collect(),
                Some(_) => Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    format!("`{key}` must be an array of strings"),
                )),
            }
        };
        let number = |key: &str| -> Result<Option<i64>, ScimError> {
            match body.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => value.as_i64().map(Some).ok_or_else(|| {
                    ScimError::bad_request(
                        ScimType::InvalidValue,
                        format!("`{key}` must be an integer"),
                    )
                }),
            }
        };
        let filter = match body.get("filter") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(parse_filter(text)?),
            Some(_) => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidFilter,
                    "`filter` must be a string",
                ));
            }
        };
        if body.get("sortBy").is_some() {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                "sorting is not supported (ServiceProviderConfig: sort.supported = false)",
            ));
        }
        Ok(ScimQuery {
            filter,
            start_index: number("startIndex")?.map(|n| n.max(1) as u64),
            count: number("count")?.map(|n| n.max(0) as u64),
            attributes: list("attributes")?,
            excluded_attributes: list("excludedAttributes")?,
        })
    }

    /// Whether the projection keeps an attribute by default or on request.
    pub fn wants(&self, name: &str) -> bool {
        let named = |list: &[AttrPath]| {
            list.iter()
                .any(|p| p.uri.is_none() && p.name.eq_ignore_ascii_case(name))
        };
        if !self.attributes.is_empty() {
            return named(&self.attributes);
        }
        !named(&self.excluded_attributes)
    }
}

fn integer(key: &str, value: &str) -> Result<i64, ScimError> {
    value.trim().parse::<i64>().map_err(|_| {
        ScimError::bad_request(
            ScimType::InvalidValue,
            format!("`{key}` must be an integer, got `{value}`"),
        )
    })
}

impl<S: Send + Sync> FromRequestParts<S> for ScimQuery {
    type Rejection = ErrorResponse;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ScimQuery::parse(parts.uri.query().unwrap_or(""))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_case_insensitive_and_unknown_ones_ignored() {
        let query = ScimQuery::parse(
            "Filter=userName%20eq%20%22a%22&STARTINDEX=0&count=-5&aadOptscim062020",
        )
        .unwrap();
        assert!(query.filter.is_some());
        assert_eq!(query.start_index, Some(1));
        assert_eq!(query.count, Some(0));
    }

    #[test]
    fn bad_filter_is_invalid_filter() {
        let error = ScimQuery::parse("filter=userName%20zz%20%22a%22").unwrap_err();
        assert_eq!(error.scim_type, Some(ScimType::InvalidFilter));
    }

    #[test]
    fn non_numeric_count_is_invalid_value() {
        let error = ScimQuery::parse("count=ten").unwrap_err();
        assert_eq!(error.scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn search_request_body_gives_the_same_query() {
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": "userName sw \"a\"",
            "attributes": ["userName"],
            "startIndex": 0,
            "count": 5
        });
        let query = ScimQuery::from_search_request(&body).unwrap();
        assert!(query.filter.is_some());
        assert_eq!(query.start_index, Some(1));
        assert_eq!(query.count, Some(5));
        assert_eq!(query.attributes.len(), 1);
        let error =
            ScimQuery::from_search_request(&serde_json::json!({"filter": "x pr"})).unwrap_err();
        assert_eq!(error.scim_type, Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn excluded_members_is_not_wanted() {
        let query = ScimQuery::parse("excludedAttributes=members").unwrap();
        assert!(!query.wants("members"));
        assert!(ScimQuery::parse("").unwrap().wants("members"));
        assert!(
            !ScimQuery::parse("attributes=displayName")
                .unwrap()
                .wants("members")
        );
    }
}
