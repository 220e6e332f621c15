//! The `/Users` and `/Groups` endpoints (RFC 7644 §3.3–§3.6): thin handlers
//! that parse, call the provisioner, and render SCIM responses.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::extract::{ScimJson, ScimPath, ScimQuery};
use super::public_base::PublicBase;
use super::rescue::ErrorResponse;
use super::response::{ScimResponse, json_text_response, written_resource};
use crate::dialect::{Dialect, DialectChoice};
use crate::provision::{Kind, ListQuery, Provisioner};
use crate::scim::json::{Tree, View, write_tree, write_value};
use crate::scim::patch::parse_patch_request;
use crate::scim::projection::{project, project_default};
use crate::scim::schema::{ENTERPRISE_USER, LIST_RESPONSE};

/// Bytes a resource's answer starts with room for: most users fit.
const RESOURCE_ANSWER_START: usize = 1024;

/// Bytes a list's answer starts with room for, grown as it is written.
const LIST_ANSWER_START: usize = 16 * 1024;

/// Room for the longest head a list's answer has (its schema and three
/// 20-digit numbers, and `"Resources":[`), left before the resources.
const LIST_HEAD_BYTES: usize = 192;

/// Everything a connection's handlers need.
#[derive(Debug)]
pub struct ConnectionApp {
    pub provisioner: Provisioner,
    pub base_path: String,
    pub dialect: DialectChoice,
}

/// The dialect chosen for this request by [`super::dialect::choose`].
pub type RequestDialect = Extension<Arc<Dialect>>;

pub type AppState = State<Arc<ConnectionApp>>;

/// Adds request-dependent meta and member references, then projects.
fn render(kind: Kind, mut resource: Value, base: &str, query: &ScimQuery) -> Value {
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let location = url_of(base, kind.endpoint(), id);
    if let Some(meta) = resource.get_mut("meta").and_then(Value::as_object_mut) {
        meta.insert("resourceType".into(), Value::from(kind.resource_type()));
        meta.insert("location".into(), Value::from(location));
    }
    // Each look-up hashes its key: only the kind that has the attribute.
    let references = match kind {
        Kind::Group => resource
            .get_mut("members")
            .and_then(Value::as_array_mut)
            .map(Vec::as_mut_slice),
        Kind::User => resource
            .get_mut(ENTERPRISE_USER)
            .and_then(|e| e.get_mut("manager"))
            .map(std::slice::from_mut),
    };
    references
        .into_iter()
        .flatten()
        .for_each(|reference| add_user_ref(reference, base));
    project(
        resource,
        &query.attributes,
        &query.excluded_attributes,
        kind.schema(),
    )
}

/// `{base}/{endpoint}/{id}`, the id as one URL path segment: upstream ids
/// may hold `/`, `?`, `#`…
fn url_of(base: &str, endpoint: &str, id: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let mut url = String::with_capacity(base.len() + endpoint.len() + id.len() + 2);
    url.push_str(base);
    url.push('/');
    url.push_str(endpoint);
    url.push('/');
    url.extend(percent_encoding::utf8_percent_encode(id, SEGMENT));
    url
}

/// References to users carry a `$ref` derived from their `value`.
pub(super) fn add_user_ref(reference: &mut Value, base: &str) {
    let Some(url) = reference
        .get("value")
        .and_then(Value::as_str)
        .map(|value| url_of(base, Kind::User.endpoint(), value))
    else {
        return;
    };
    if let Some(object) = reference.as_object_mut() {
        object.insert("$ref".into(), Value::from(url));
    }
}

fn single(
    kind: Kind,
    status: StatusCode,
    resource: Value,
    base: &str,
    query: &ScimQuery,
) -> ScimResponse {
    let etag = resource
        .pointer("/meta/version")
        .and_then(Value::as_str)
        .map(str::to_string);
    // Location is the whole resource's, even when `attributes=` drops `meta`.
    let location = (status == StatusCode::CREATED).then(|| {
        let id = resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        url_of(base, kind.endpoint(), id)
    });
    ScimResponse {
        status,
        body: Some(render(kind, resource, base, query)),
        location,
        etag,
        audited: false,
    }
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
}

pub async fn list(
    kind: Kind,
    State(app): AppState,
    PublicBase(base): PublicBase,
    query: ScimQuery,
) -> Result<Response, ErrorResponse> {
    // Each resource is written as it comes: a user made from an upstream
    // record lends the record's values and is gone before the next. The
    // buffer starts with room for a page of small users, not empty: each
    // doubling copies all that is written. The head, whose totals are known
    // only at the end, is written into room left before the resources.
    let built_whole = built_whole(&app, kind);
    let mut answer = Vec::with_capacity(LIST_HEAD_BYTES + LIST_ANSWER_START);
    answer.resize(LIST_HEAD_BYTES, b' ');
    let mut items_per_page = 0u64;
    let totals = app
        .provisioner
        .list(
            kind,
            &ListQuery {
                filter: query.filter.clone(),
                start_index: query.start_index.unwrap_or(1),
                count: query.count,
                with_members: kind == Kind::Group && query.wants("members"),
            },
            &mut |resource| {
                if items_per_page > 0 {
                    answer.push(b',');
                }
                items_per_page += 1;
                write_resource(&mut answer, kind, resource, &base, &query, built_whole);
            },
        )
        .await?;
    answer.extend_from_slice(b"]}");
    let mut head = list_head(totals.total_results, totals.start_index, items_per_page);
    // The head ends where the resources start, and the answer starts with
    // it (a head longer than its room, which none is, is copied in front).
    let start = LIST_HEAD_BYTES.checked_sub(head.len());
    let answer =
        match start.and_then(|start| Some((start, answer.get_mut(start..LIST_HEAD_BYTES)?))) {
            Some((start, room)) => {
                room.copy_from_slice(&head);
                bytes::Bytes::from(answer).slice(start..)
            }
            None => {
                head.extend_from_slice(answer.get(LIST_HEAD_BYTES..).unwrap_or_default());
                bytes::Bytes::from(head)
            }
        };
    Ok(json_text_response(StatusCode::OK, answer))
}

/// Whether the resources the mapping of `kind` builds hold nothing the
/// default projection leaves out.
fn built_whole(app: &ConnectionApp, kind: Kind) -> bool {
    app.provisioner
        .resource_mapping(kind)
        .is_some_and(|mapping| mapping.read_all_returned_by_default)
}

/// A list answer's members before its resources, in `serde_json`'s order
/// of a `ListResponse` map.
fn list_head(total_results: u64, start_index: u64, items_per_page: u64) -> Vec<u8> {
    let mut head = Vec::with_capacity(LIST_HEAD_BYTES);
    head.extend_from_slice(b"{\"schemas\":");
    write_value(&mut head, &json!([LIST_RESPONSE]));
    for (name, number) in [
        ("totalResults", total_results),
        ("startIndex", start_index),
        ("itemsPerPage", items_per_page),
    ] {
        head.extend_from_slice(format!(",\"{name}\":{number}").as_bytes());
    }
    head.extend_from_slice(b",\"Resources\":[");
    head
}

/// Appends a resource as [`render`] makes it, for an answer that is only
/// written out. A user's tree in the default projection is rendered where
/// it lies, as `render` renders a value; anything else is made a value.
/// `built_whole`: the tree holds nothing the default projection leaves out
/// (its mapping reads no such attribute), so none is looked for.
fn write_resource(
    out: &mut Vec<u8>,
    kind: Kind,
    resource: Tree<'_>,
    base: &str,
    query: &ScimQuery,
    built_whole: bool,
) {
    let default_set = query.attributes.is_empty() && query.excluded_attributes.is_empty();
    let mut resource = match resource {
        Tree::Object(members) if default_set && kind == Kind::User => Tree::Object(members),
        Tree::Owned(value) => return write_value(out, &render(kind, value, base, query)),
        other => return write_value(out, &render(kind, other.into_value(), base, query)),
    };
    if let Some(members) = resource.as_object_mut() {
        let id = members.get("id").and_then(|id| id.view().as_str());
        let location = url_of(base, kind.endpoint(), id.unwrap_or_default());
        if let Some(meta) = members.get_mut("meta").and_then(Tree::as_object_mut) {
            meta.insert("resourceType", Tree::Text(kind.resource_type().into()));
            meta.insert("location", Tree::Text(location.into()));
        }
        let manager = members
            .get_mut(ENTERPRISE_USER)
            .and_then(Tree::as_object_mut)
            .and_then(|extension| extension.get_mut("manager"));
        if let Some(manager) = manager {
            let url = manager
                .view()
                .get("value")
                .and_then(View::as_str)
                .map(|value| url_of(base, Kind::User.endpoint(), value));
            if let (Some(url), Some(reference)) = (url, manager.as_object_mut()) {
                reference.insert("$ref", Tree::Text(url.into()));
            }
        }
    }
    if !built_whole {
        project_default(&mut resource, kind.schema());
    }
    write_tree(out, &resource);
}

/// `POST /<Resources>/.search`: a list whose parameters come in the body.
pub async fn search(
    kind: Kind,
    app: AppState,
    base: PublicBase,
    ScimJson(body): ScimJson,
) -> Result<Response, ErrorResponse> {
    let query = ScimQuery::from_search_request(&body)?;
    list(kind, app, base, query).await
}

pub async fn get(
    kind: Kind,
    State(app): AppState,
    ScimPath(id): ScimPath,
    PublicBase(base): PublicBase,
    query: ScimQuery,
) -> Result<Response, ErrorResponse> {
    let with_members = kind == Kind::Group && query.wants("members");
    // Members read from a list are streamed after the group, a page at a
    // time; a projection that names attributes is made whole instead.
    let streamed = with_members && query.attributes.is_empty() && app.provisioner.lists_members();
    if !streamed {
        let built_whole = built_whole(&app, kind);
        let answer = app
            .provisioner
            .read(kind, &id, with_members, |resource| {
                let etag = resource
                    .view()
                    .get("meta")
                    .and_then(|meta| meta.get("version"))
                    .and_then(View::as_str)
                    .map(str::to_string);
                let mut body = Vec::with_capacity(RESOURCE_ANSWER_START);
                write_resource(&mut body, kind, resource, &base, &query, built_whole);
                written_resource(body, etag)
            })
            .await?;
        return Ok(answer);
    }
    let record = app.provisioner.get(kind, &id, false).await?;
    let group = single(kind, StatusCode::OK, record.resource, &base, &query);
    let pages = app.provisioner.member_pages(&id);
    Ok(super::members_body::with_members(group, pages, base))
}

pub async fn create(
    kind: Kind,
    State(app): AppState,
    Extension(dialect): RequestDialect,
    PublicBase(base): PublicBase,
    query: ScimQuery,
    ScimJson(mut body): ScimJson,
) -> Result<ScimResponse, ErrorResponse> {
    dialect.normalise_resource(kind.schema(), &mut body);
    let record = app.provisioner.create(kind, body).await?;
    Ok(single(kind, StatusCode::CREATED, record.resource, &base, &query).audited())
}

// One argument per extractor: bundling them would only hide what it reads.
#[allow(clippy::too_many_arguments)]
pub async fn replace(
    kind: Kind,
    State(app): AppState,
    Extension(dialect): RequestDialect,
    ScimPath(id): ScimPath,
    headers: HeaderMap,
    PublicBase(base): PublicBase,
    query: ScimQuery,
    ScimJson(mut body): ScimJson,
) -> Result<ScimResponse, ErrorResponse> {
    dialect.normalise_resource(kind.schema(), &mut body);
    let resource = app
        .provisioner
        .replace(kind, &id, body, if_match(&headers), query.wants("members"))
        .await?;
    Ok(single(kind, StatusCode::OK, resource, &base, &query).audited())
}

// One argument per extractor: bundling them would only hide what it reads.
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    kind: Kind,
    State(app): AppState,
    Extension(dialect): RequestDialect,
    ScimPath(id): ScimPath,
    headers: HeaderMap,
    PublicBase(base): PublicBase,
    query: ScimQuery,
    ScimJson(mut body): ScimJson,
) -> Result<ScimResponse, ErrorResponse> {
    dialect.normalise_patch(kind.schema(), &mut body);
    let operations = parse_patch_request(&body, kind.schema())?;
    let no_content =
        kind == Kind::Group && dialect.response.group_patch_status == StatusCode::NO_CONTENT;
    let resource = app
        .provisioner
        .patch(
            kind,
            &id,
            &operations,
            if_match(&headers),
            !no_content && query.wants("members"),
        )
        .await?;
    if no_content {
        return Ok(ScimResponse::no_content());
    }
    Ok(single(kind, StatusCode::OK, resource, &base, &query).audited())
}

pub async fn delete(
    kind: Kind,
    State(app): AppState,
    ScimPath(id): ScimPath,
    headers: HeaderMap,
) -> Result<ScimResponse, ErrorResponse> {
    app.provisioner
        .delete(kind, &id, if_match(&headers))
        .await?;
    Ok(ScimResponse::no_content())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_head_fits_its_room_whatever_the_totals() {
        let longest = list_head(u64::MAX, u64::MAX, u64::MAX);
        assert!(longest.len() <= LIST_HEAD_BYTES, "{}", longest.len());
        let mut answer = list_head(2, 1, 0);
        answer.extend_from_slice(b"]}");
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(
            answer,
            json!({"schemas": [LIST_RESPONSE], "totalResults": 2, "startIndex": 1,
                "itemsPerPage": 0, "Resources": []})
        );
    }

    #[test]
    fn a_rendered_resource_links_itself_and_the_users_it_names() {
        let base = "https://gw.example/scim/v2";
        let user = json!({
            "id": "a/b?c",
            "userName": "ann@example.com",
            ENTERPRISE_USER: {"manager": {"value": "7 8"}},
            "meta": {"created": "2026-01-01T00:00:00Z"},
        });
        let user = render(Kind::User, user, base, &ScimQuery::default());
        assert_eq!(user["meta"]["location"], format!("{base}/Users/a%2Fb%3Fc"));
        assert_eq!(user["meta"]["resourceType"], "User");
        assert_eq!(
            user[ENTERPRISE_USER]["manager"]["$ref"],
            format!("{base}/Users/7%208")
        );
        let group = json!({
            "id": "g1",
            "displayName": "Ops",
            "members": [{"value": "1"}, {"value": "#2"}, {"display": "no value"}],
            "meta": {},
        });
        let group = render(Kind::Group, group, base, &ScimQuery::default());
        assert_eq!(group["meta"]["location"], format!("{base}/Groups/g1"));
        assert_eq!(
            group["members"],
            json!([
                {"value": "1", "$ref": format!("{base}/Users/1")},
                {"value": "#2", "$ref": format!("{base}/Users/%232")},
                {"display": "no value"},
            ])
        );
    }

    #[test]
    fn a_listed_tree_is_written_as_its_rendered_value() {
        let base = "https://gw.example/scim/v2";
        let user = json!({
            "id": "a/b",
            "userName": "ann@example.com",
            "password": "never returned",
            "emails": [{"value": "ann@example.com", "primary": true}],
            ENTERPRISE_USER: {"manager": {"value": "7"}, "department": "R&D"},
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER],
            "meta": {"created": "2026-01-01T00:00:00Z", "version": "W/\"3\""},
        });
        let group = json!({
            "id": "g1",
            "displayName": "Ops",
            "members": [{"value": "1"}, {"display": "no value"}],
            "meta": {},
        });
        let projected = ScimQuery {
            excluded_attributes: vec![crate::scim::path::AttrPath::simple("emails")],
            ..ScimQuery::default()
        };
        // Taken apart as `to_scim_tree` builds one: members lent.
        let written_as_rendered =
            |kind: Kind, resource: &Value, query: &ScimQuery, built_whole: bool| {
                let mut tree = Tree::Borrowed(resource);
                tree.as_object_mut();
                let mut written = Vec::new();
                write_resource(&mut written, kind, tree, base, query, built_whole);
                let rendered = render(kind, resource.clone(), base, query);
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(crate::scim::json::to_vec(&rendered)).unwrap()
                );
            };
        for (kind, resource) in [(Kind::User, &user), (Kind::Group, &group)] {
            for query in [&ScimQuery::default(), &projected] {
                written_as_rendered(kind, resource, query, false);
                // Without what the default set leaves out, it need not look.
                let mut whole = resource.clone();
                whole.as_object_mut().unwrap().remove("password");
                written_as_rendered(kind, &whole, query, true);
            }
        }
    }
}
