//! Chooses each request's IdP dialect (fixed per connection, or by
//! User-Agent for `auto`) and applies its response rules to every answer,
//! errors included.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use http::header::{CONTENT_TYPE, USER_AGENT};

use super::resources::ConnectionApp;
use super::response::SCIM_CONTENT_TYPE;
use crate::dialect::Dialect;

/// The request's dialect, also left in its extensions for the handlers.
pub fn choose(app: &ConnectionApp, request: &mut Request) -> Arc<Dialect> {
    let user_agent = request
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let dialect = app.dialect.resolve(user_agent).clone();
    request.extensions_mut().insert(dialect.clone());
    dialect
}

/// Applies the dialect's response rules to an answer, errors included.
pub fn label(dialect: &Dialect, response: &mut Response) {
    let is_scim = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == SCIM_CONTENT_TYPE.as_bytes());
    if is_scim {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, dialect.response.content_type.clone());
    }
}
