//! Discovery endpoints (RFC 7644 §4): `/ServiceProviderConfig`,
//! `/ResourceTypes` and `/Schemas`, telling the truth about what this
//! connection supports.

use axum::extract::{Path, State};
use http::HeaderMap;
use serde_json::{Value, json};

use super::resources::{AppState, base_url};
use super::response::ScimResponse;
use crate::provision::Kind;
use crate::scim::error::ScimError;
use crate::scim::schema::{self, LIST_RESPONSE};

pub async fn service_provider_config(State(app): AppState, headers: HeaderMap) -> ScimResponse {
    let limits = app.provisioner.limits();
    ScimResponse::ok(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/scimgate/scimgate#readme",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": limits.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": app.provisioner.versioned()},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with the connection's bearer token",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", base_url(&app, &headers)),
        }
    }))
}

fn resource_type(kind: Kind, base: &str) -> Value {
    let schema = kind.schema();
    let extensions: Vec<Value> = schema
        .extensions
        .iter()
        .map(|e| json!({"schema": e.id, "required": false}))
        .collect();
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": schema.name,
        "name": schema.name,
        "endpoint": schema.endpoint,
        "description": schema.description,
        "schema": schema.core.id,
        "schemaExtensions": extensions,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", schema.name)}
    })
}

fn kinds(app: &AppState) -> Vec<Kind> {
    [Kind::User, Kind::Group]
        .into_iter()
        .filter(|k| app.provisioner.supports(*k))
        .collect()
}

fn list_response(resources: Vec<Value>) -> ScimResponse {
    ScimResponse::ok(json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    }))
}

pub async fn resource_types(app: AppState, headers: HeaderMap) -> ScimResponse {
    let base = base_url(&app, &headers);
    list_response(
        kinds(&app)
            .into_iter()
            .map(|k| resource_type(k, &base))
            .collect(),
    )
}

pub async fn resource_type_by_name(
    app: AppState,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let base = base_url(&app, &headers);
    kinds(&app)
        .into_iter()
        .find(|k| k.resource_type().eq_ignore_ascii_case(&name))
        .map(|k| ScimResponse::ok(resource_type(k, &base)))
        .ok_or_else(|| {
            ScimError::not_found(format!("no resource type `{name}`; see /ResourceTypes"))
        })
}

fn schemas_of(app: &AppState, base: &str) -> Vec<Value> {
    kinds(app)
        .into_iter()
        .flat_map(|k| std::iter::once(&k.schema().core).chain(k.schema().extensions.iter()))
        .map(|s| {
            let mut document = schema::schema_document(s);
            document["meta"] =
                json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{}", s.id)});
            document
        })
        .collect()
}

pub async fn schemas(app: AppState, headers: HeaderMap) -> ScimResponse {
    let base = base_url(&app, &headers);
    list_response(schemas_of(&app, &base))
}

pub async fn schema_by_id(
    app: AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<ScimResponse, ScimError> {
    let base = base_url(&app, &headers);
    schemas_of(&app, &base)
        .into_iter()
        .find(|s| {
            s.get("id")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case(&id))
        })
        .map(ScimResponse::ok)
        .ok_or_else(|| ScimError::not_found(format!("no schema `{id}`; see /Schemas")))
}
