//! Discovery endpoints (RFC 7644 §4): `/ServiceProviderConfig`,
//! `/ResourceTypes` and `/Schemas`, telling the truth about what this
//! connection supports.

use axum::extract::State;
use serde_json::{Value, json};

use super::extract::ScimPath;
use super::public_base::PublicBase;
use super::rescue::ErrorResponse;
use super::resources::AppState;
use super::response::ScimResponse;
use crate::provision::Kind;
use crate::scim::error::ScimError;
use crate::scim::schema::{self, LIST_RESPONSE, SchemaDef};

pub async fn service_provider_config(
    State(app): AppState,
    PublicBase(base): PublicBase,
) -> ScimResponse {
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
            "location": format!("{base}/ServiceProviderConfig"),
        }
    }))
}

fn resource_type(app: &AppState, kind: Kind, base: &str) -> Value {
    let schema = kind.schema();
    let extensions: Vec<Value> = schema
        .extensions
        .iter()
        .filter(|e| advertised(app, kind, e).is_some())
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

/// The schema as this connection can honour it: only the attributes (and
/// sub-attributes) its upstream mapping stores. Sub-attributes the gateway
/// sets itself (an element's `type`/`primary`, a member's `display`) are
/// advertised read-only. `None` for an extension with nothing mapped.
fn advertised(app: &AppState, kind: Kind, schema: &SchemaDef) -> Option<Value> {
    let mapping = app.provisioner.resource_mapping(kind)?;
    let is_core = schema.id == kind.schema().core.id;
    let in_schema = |uri: &Option<String>| match uri {
        None => is_core,
        Some(uri) => uri.eq_ignore_ascii_case(schema.id),
    };
    let mut document = schema::schema_document(schema);
    let attributes = document.get_mut("attributes")?.as_array_mut()?;
    attributes.retain_mut(|attribute| {
        let Some(name) = attribute
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return false;
        };
        if kind == Kind::Group && is_core && name == "members" {
            if mapping.members.is_none() {
                return false;
            }
            mark_read_only(attribute, &["display"]);
            return true;
        }
        let entries: Vec<_> = mapping
            .attributes
            .iter()
            .filter(|a| in_schema(&a.scim.path.uri) && a.scim.path.name == name)
            .collect();
        if entries.is_empty() {
            return false;
        }
        let mut mapped_subs: Vec<&str> = entries
            .iter()
            .filter_map(|a| a.scim.path.sub.as_deref())
            .collect();
        // A reference's `$ref` is derived from its `value` when rendered.
        if mapped_subs.contains(&"value") {
            mapped_subs.push("$ref");
        }
        let gateway_set: Vec<&str> = entries
            .iter()
            .flat_map(|a| a.element.keys().map(String::as_str))
            .collect();
        if let Some(subs) = attribute
            .get_mut("subAttributes")
            .and_then(Value::as_array_mut)
        {
            subs.retain(|sub| {
                sub.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| mapped_subs.contains(&n) || gateway_set.contains(&n))
            });
        }
        mark_read_only(attribute, &gateway_set);
        true
    });
    if !is_core && attributes.is_empty() {
        return None;
    }
    Some(document)
}

fn mark_read_only(attribute: &mut Value, names: &[&str]) {
    let Some(subs) = attribute
        .get_mut("subAttributes")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for sub in subs {
        if sub
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| names.contains(&n))
        {
            sub["mutability"] = Value::from("readOnly");
        }
    }
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

pub async fn resource_types(app: AppState, PublicBase(base): PublicBase) -> ScimResponse {
    list_response(
        kinds(&app)
            .into_iter()
            .map(|k| resource_type(&app, k, &base))
            .collect(),
    )
}

pub async fn resource_type_by_name(
    app: AppState,
    ScimPath(name): ScimPath,
    PublicBase(base): PublicBase,
) -> Result<ScimResponse, ErrorResponse> {
    kinds(&app)
        .into_iter()
        .find(|k| k.resource_type().eq_ignore_ascii_case(&name))
        .map(|k| ScimResponse::ok(resource_type(&app, k, &base)))
        .ok_or_else(|| {
            ErrorResponse(ScimError::not_found(format!(
                "no resource type `{name}`; see /ResourceTypes"
            )))
        })
}

fn schemas_of(app: &AppState, base: &str) -> Vec<Value> {
    kinds(app)
        .into_iter()
        .flat_map(|k| {
            std::iter::once(&k.schema().core)
                .chain(k.schema().extensions.iter())
                .filter_map(move |s| advertised(app, k, s))
        })
        .map(|mut document| {
            let id = document["id"].as_str().unwrap_or_default().to_string();
            document["meta"] =
                json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")});
            document
        })
        .collect()
}

pub async fn schemas(app: AppState, PublicBase(base): PublicBase) -> ScimResponse {
    list_response(schemas_of(&app, &base))
}

pub async fn schema_by_id(
    app: AppState,
    ScimPath(id): ScimPath,
    PublicBase(base): PublicBase,
) -> Result<ScimResponse, ErrorResponse> {
    schemas_of(&app, &base)
        .into_iter()
        .find(|s| {
            s.get("id")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case(&id))
        })
        .map(ScimResponse::ok)
        .ok_or_else(|| {
            ErrorResponse(ScimError::not_found(format!(
                "no schema `{id}`; see /Schemas"
            )))
        })
}
