//! Chooses each request's IdP dialect (fixed per connection, or by
//! User-Agent for `auto`) and applies its response rules to every answer,
//! errors included.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::header::{CONTENT_TYPE, USER_AGENT};
use tracing::Instrument;

use super::resources::ConnectionApp;
use super::response::SCIM_CONTENT_TYPE;

pub async fn apply(
    State(app): State<Arc<ConnectionApp>>,
    mut request: Request,
    next: Next,
) -> Response {
    let user_agent = request
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let dialect = app.dialect.resolve(user_agent).clone();
    // Created with every field known: recording fields later re-encodes the
    // span's JSON each time, a measurable cost per request.
    let span = tracing::info_span!(
        "connection",
        connection = %app.provisioner.connection.name,
        dialect = %dialect.name,
        operation = super::observe::operation(request.method(), request.uri().path()),
    );
    request.extensions_mut().insert(dialect.clone());
    let mut response = next.run(request).instrument(span).await;
    let is_scim = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == SCIM_CONTENT_TYPE.as_bytes());
    if is_scim {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, dialect.response.content_type.clone());
    }
    response
}
