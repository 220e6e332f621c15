//! Request parameters, read the way Wrike reads them: from the query string and from
//! an `application/x-www-form-urlencoded` body, merged into one set. Array and object
//! parameters hold JSON text (`addMembers=["KUAAAAAA"]`,
//! `metadata=[{"key":"department","value":"R&D"}]`).
//!
//! Handlers take each parameter they support out of [`Params`] and then call
//! [`Params::finish`], which refuses whatever is left: Wrike answers an unsupported
//! parameter with 400 `invalid_request`. A parameter given twice (in the query, the
//! body, or both) is refused the same way. `access_token` is the token's alternative
//! to the `Authorization` header and is read (and dropped) by the auth layer.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use serde_json::Value;

use super::error::ApiError;

pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// The query parameter that may carry the token instead of `Authorization`.
pub(crate) const ACCESS_TOKEN: &str = "access_token";

/// The parameters of one request, by name; each appears once.
#[derive(Debug, Default)]
pub(crate) struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// Parameters from a query string and a form body (either may be empty).
    pub(crate) fn parse(query: &str, form: &[u8]) -> Result<Params, ApiError> {
        let mut values = BTreeMap::new();
        let pairs = form_urlencoded::parse(query.as_bytes()).chain(form_urlencoded::parse(form));
        for (name, value) in pairs {
            if name == ACCESS_TOKEN {
                continue;
            }
            if values
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(ApiError::invalid_request(format!(
                    "Parameter '{name}' is specified more than once"
                )));
            }
        }
        Ok(Params { values })
    }

    /// Takes a string parameter.
    pub(crate) fn string(&mut self, name: &str) -> Option<String> {
        self.values.remove(name)
    }

    /// Takes a string parameter that must be present.
    pub(crate) fn required_string(&mut self, name: &str) -> Result<String, ApiError> {
        self.string(name)
            .ok_or_else(|| ApiError::parameter_required(name))
    }

    /// Takes a `true` / `false` parameter.
    pub(crate) fn bool(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.string(name).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid_parameter(format!(
                "Parameter '{name}' must be true or false, not '{other}'"
            ))),
        }
    }

    /// Takes a parameter holding JSON text.
    pub(crate) fn json(&mut self, name: &str) -> Result<Option<Value>, ApiError> {
        let Some(text) = self.string(name) else {
            return Ok(None);
        };
        serde_json::from_str(&text).map(Some).map_err(|err| {
            ApiError::invalid_parameter(format!("Parameter '{name}' is not valid JSON: {err}"))
        })
    }

    /// Takes a parameter holding a JSON array of strings.
    pub(crate) fn string_array(&mut self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        let Some(value) = self.json(name)? else {
            return Ok(None);
        };
        let not_strings = || {
            ApiError::invalid_parameter(format!(
                "Parameter '{name}' must be a JSON array of strings"
            ))
        };
        let Value::Array(items) = value else {
            return Err(not_strings());
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                _ => Err(not_strings()),
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// Takes `fields`, the JSON array of optional fields to include in the answer;
    /// each must be one of `allowed`.
    pub(crate) fn fields(&mut self, allowed: &[&str]) -> Result<Vec<String>, ApiError> {
        let fields = self.string_array("fields")?.unwrap_or_default();
        if let Some(unknown) = fields.iter().find(|f| !allowed.contains(&f.as_str())) {
            return Err(ApiError::invalid_parameter(format!(
                "Parameter 'fields' names an unknown optional field '{unknown}' (known: {})",
                allowed.join(", ")
            )));
        }
        Ok(fields)
    }

    /// Refuses any parameter not taken.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(name) => Err(ApiError::invalid_request(format!(
                "Parameter '{name}' is not supported by this method"
            ))),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Params, ApiError> {
        let query = request.uri().query().unwrap_or("").to_owned();
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or("?").to_owned());
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|err| ApiError::invalid_request(format!("Cannot read the body: {err}")))?;
        if !body.is_empty() {
            let is_form = content_type.as_deref().is_some_and(|value| {
                value
                    .split(';')
                    .next()
                    .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(FORM))
            });
            if !is_form {
                return Err(ApiError::invalid_request(format!(
                    "Content type '{}' is not supported: send parameters in the query string or as {FORM}",
                    content_type.as_deref().unwrap_or("none")
                )));
            }
        }
        Params::parse(&query, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrike::error::ErrorCode;

    #[test]
    fn query_and_form_merge_and_access_token_is_dropped() {
        let mut params = Params::parse("deleted=true&access_token=t", b"title=R%26D+team").unwrap();
        assert_eq!(params.bool("deleted").unwrap(), Some(true));
        assert_eq!(params.string("title").as_deref(), Some("R&D team"));
        params.finish().unwrap();
    }

    #[test]
    fn a_repeated_parameter_is_invalid_request() {
        for (query, form) in [("a=1&a=2", ""), ("a=1", "a=1")] {
            let err = Params::parse(query, form.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{query} {form}");
        }
    }

    #[test]
    fn leftover_parameters_are_invalid_request() {
        let mut params = Params::parse("email=a@b.c&firstName=x", b"").unwrap();
        params.string("firstName");
        let err = params.finish().unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.contains("'email'"), "{}", err.description);
    }

    #[test]
    fn typed_values_are_checked() {
        let mut params = Params::parse(
            "",
            br#"b=yes&j=%7Bnope&a=%5B1%5D&ok=%5B%22KUAAAAAA%22%5D&fields=%5B%22metadata%22%5D"#,
        )
        .unwrap();
        assert_eq!(
            params.bool("b").unwrap_err().code,
            ErrorCode::InvalidParameter
        );
        assert_eq!(
            params.json("j").unwrap_err().code,
            ErrorCode::InvalidParameter
        );
        assert_eq!(
            params.string_array("a").unwrap_err().code,
            ErrorCode::InvalidParameter
        );
        assert_eq!(
            params.string_array("ok").unwrap(),
            Some(vec!["KUAAAAAA".to_owned()])
        );
        assert_eq!(params.fields(&["metadata"]).unwrap(), ["metadata"]);
        assert_eq!(
            params.required_string("missing").unwrap_err().code,
            ErrorCode::ParameterRequired
        );
    }

    #[test]
    fn unknown_optional_fields_are_invalid_parameter() {
        let mut params = Params::parse("fields=%5B%22avatar%22%5D", b"").unwrap();
        let err = params.fields(&["metadata"]).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameter);
    }
}
