//! `/groups`: user groups, with their members as bare contact ids in `memberIds`.
//!
//! - `GET /groups`, `GET /groups/{id}` (`fields=["metadata"]` adds `metadata`).
//! - `POST /groups`: `title` (required), `members` (JSON array of contact ids),
//!   `metadata` (JSON array of `{"key", "value"}`).
//! - `PUT /groups/{id}`: `title`, `addMembers`, `removeMembers` (JSON arrays of contact
//!   ids), `metadata` (upsert by key, `value: null` removes). An unknown or deleted
//!   contact in `members` / `addMembers`, or an unknown one in `removeMembers`, is 400
//!   `invalid_parameter` and changes nothing.
//! - `DELETE /groups/{id}`: hard; answers `data: []`.

use axum::extract::State;
use axum::response::Response;

use super::error::ApiError;
use super::params::Params;
use super::records::{METADATA_FIELD, check_text, parse_metadata};
use super::store::GroupUpdate;
use super::{Id, WrikeApi, envelope};

const KIND: &str = "groups";

const FIELDS: &[&str] = &[METADATA_FIELD];

fn wants_metadata(params: &mut Params) -> Result<bool, ApiError> {
    Ok(params.fields(FIELDS)?.iter().any(|f| f == METADATA_FIELD))
}

fn title(text: String) -> Result<String, ApiError> {
    check_text("title", &text)?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid_parameter(
            "Parameter 'title' must not be empty",
        ));
    }
    Ok(text)
}

pub(super) async fn list(
    State(api): State<WrikeApi>,
    mut params: Params,
) -> Result<Response, ApiError> {
    let metadata = wants_metadata(&mut params)?;
    params.finish()?;
    let groups = api.store().read(|state| state.list_groups())?;
    Ok(envelope(
        KIND,
        groups
            .iter()
            .map(|g| g.render(api.account_id(), metadata))
            .collect(),
    ))
}

pub(super) async fn get(
    State(api): State<WrikeApi>,
    Id(id): Id,
    mut params: Params,
) -> Result<Response, ApiError> {
    let metadata = wants_metadata(&mut params)?;
    params.finish()?;
    let group = api.store().read(|state| state.group(&id))??;
    Ok(envelope(
        KIND,
        vec![group.render(api.account_id(), metadata)],
    ))
}

pub(super) async fn create(
    State(api): State<WrikeApi>,
    mut params: Params,
) -> Result<Response, ApiError> {
    let title = title(params.required_string("title")?)?;
    let members = params.string_array("members")?.unwrap_or_default();
    let metadata = params
        .json("metadata")?
        .map(parse_metadata)
        .transpose()?
        .unwrap_or_default();
    let with_metadata = wants_metadata(&mut params)?;
    params.finish()?;
    let group = api
        .store()
        .write(|state| state.create_group(title, members, metadata))?;
    Ok(envelope(
        KIND,
        vec![group.render(api.account_id(), with_metadata)],
    ))
}

pub(super) async fn update(
    State(api): State<WrikeApi>,
    Id(id): Id,
    mut params: Params,
) -> Result<Response, ApiError> {
    let update = GroupUpdate {
        title: params.string("title").map(title).transpose()?,
        add_members: params.string_array("addMembers")?.unwrap_or_default(),
        remove_members: params.string_array("removeMembers")?.unwrap_or_default(),
        metadata: params.json("metadata")?.map(parse_metadata).transpose()?,
    };
    let with_metadata = wants_metadata(&mut params)?;
    params.finish()?;
    let group = api.store().write(|state| state.update_group(&id, update))?;
    Ok(envelope(
        KIND,
        vec![group.render(api.account_id(), with_metadata)],
    ))
}

pub(super) async fn delete(
    State(api): State<WrikeApi>,
    Id(id): Id,
    params: Params,
) -> Result<Response, ApiError> {
    params.finish()?;
    api.store().write(|state| state.delete_group(&id))?;
    Ok(envelope(KIND, Vec::new()))
}

#[cfg(test)]
mod tests {
    use crate::wrike::test_support::{ACCOUNT_ID, Client};
    use serde_json::json;

    #[tokio::test]
    async fn create_answers_the_group_record_in_an_envelope() {
        let client = Client::memory();
        let a = client.invite("a@example.com").await;
        let answer = client
            .post(
                "/api/v4/groups",
                &[
                    ("title", "Research Team"),
                    ("members", &format!("[\"{a}\",\"{a}\"]")),
                    ("metadata", r#"[{"key":"source","value":"scim"}]"#),
                    ("fields", r#"["metadata"]"#),
                ],
            )
            .await;
        answer.assert_ok("groups");
        let group = &answer.json["data"][0];
        assert_eq!(group["accountId"], ACCOUNT_ID);
        assert_eq!(group["title"], "Research Team");
        assert_eq!(group["memberIds"], json!([a]), "members are kept once");
        assert_eq!(group["childIds"], json!([]));
        assert_eq!(group["parentIds"], json!([]));
        assert_eq!(group["avatar"]["letters"], "RT");
        assert_eq!(group["myTeam"], false);
        assert_eq!(
            group["metadata"],
            json!([{"key": "source", "value": "scim"}])
        );
        let id = group["id"].as_str().unwrap();
        let fetched = client.get(&format!("/api/v4/groups/{id}")).await;
        fetched.assert_ok("groups");
        assert!(fetched.json["data"][0].get("metadata").is_none());
        let listed = client.get("/api/v4/groups").await;
        assert_eq!(listed.ids(), [id.to_owned()]);
    }

    #[tokio::test]
    async fn add_and_remove_members() {
        let client = Client::memory();
        let a = client.invite("a@example.com").await;
        let b = client.invite("b@example.com").await;
        let c = client.invite("c@example.com").await;
        let group = client
            .create_group(&[("title", "Team"), ("members", &format!("[\"{a}\"]"))])
            .await;
        let path = format!("/api/v4/groups/{group}");
        let answer = client
            .put(
                &path,
                &[
                    ("addMembers", &format!("[\"{b}\",\"{c}\",\"{a}\"]")),
                    ("title", "Renamed"),
                ],
            )
            .await;
        answer.assert_ok("groups");
        assert_eq!(answer.json["data"][0]["memberIds"], json!([a, b, c]));
        assert_eq!(answer.json["data"][0]["title"], "Renamed");
        let answer = client
            .put(&path, &[("removeMembers", &format!("[\"{a}\",\"{c}\"]"))])
            .await;
        assert_eq!(answer.json["data"][0]["memberIds"], json!([b]));
        let answer = client
            .put(&path, &[("removeMembers", &format!("[\"{a}\"]"))])
            .await;
        assert_eq!(
            answer.json["data"][0]["memberIds"],
            json!([b]),
            "removing a non-member is no change"
        );
    }

    #[tokio::test]
    async fn unknown_or_deleted_members_are_refused_and_change_nothing() {
        let client = Client::memory();
        let a = client.invite("a@example.com").await;
        let gone = client.invite("gone@example.com").await;
        client
            .delete(&format!("/api/v4/users/{gone}"))
            .await
            .assert_ok("users");
        client
            .post(
                "/api/v4/groups",
                &[("title", "T"), ("members", r#"["KUAAAA77"]"#)],
            )
            .await
            .assert_error(400, "invalid_parameter");
        assert!(client.get("/api/v4/groups").await.ids().is_empty());
        let group = client.create_group(&[("title", "T")]).await;
        let path = format!("/api/v4/groups/{group}");
        for (name, value) in [
            ("addMembers", format!("[\"{a}\",\"KUAAAA77\"]")),
            ("addMembers", format!("[\"{gone}\"]")),
            ("removeMembers", "[\"KUAAAA77\"]".to_owned()),
            ("addMembers", format!("\"{a}\"")),
            ("addMembers", "[not json".to_owned()),
        ] {
            client
                .put(&path, &[(name, &value)])
                .await
                .assert_error(400, "invalid_parameter");
        }
        client
            .put(
                &path,
                &[
                    ("addMembers", &format!("[\"{a}\"]")),
                    ("removeMembers", &format!("[\"{a}\"]")),
                ],
            )
            .await
            .assert_error(400, "invalid_parameter");
        let answer = client.get(&path).await;
        assert_eq!(answer.json["data"][0]["memberIds"], json!([]));
    }

    #[tokio::test]
    async fn deleting_a_user_removes_it_from_groups() {
        let client = Client::memory();
        let a = client.invite("a@example.com").await;
        let group = client
            .create_group(&[("title", "T"), ("members", &format!("[\"{a}\"]"))])
            .await;
        client
            .delete(&format!("/api/v4/users/{a}"))
            .await
            .assert_ok("users");
        let answer = client.get(&format!("/api/v4/groups/{group}")).await;
        assert_eq!(answer.json["data"][0]["memberIds"], json!([]));
    }

    #[tokio::test]
    async fn group_metadata_upserts() {
        let client = Client::memory();
        let group = client
            .create_group(&[("title", "T"), ("metadata", r#"[{"key":"a","value":"1"}]"#)])
            .await;
        let answer = client
            .put(
                &format!("/api/v4/groups/{group}"),
                &[
                    (
                        "metadata",
                        r#"[{"key":"a","value":null},{"key":"b","value":"2"}]"#,
                    ),
                    ("fields", r#"["metadata"]"#),
                ],
            )
            .await;
        assert_eq!(
            answer.json["data"][0]["metadata"],
            json!([{"key": "b", "value": "2"}])
        );
    }

    #[tokio::test]
    async fn delete_is_hard() {
        let client = Client::memory();
        let group = client.create_group(&[("title", "T")]).await;
        let path = format!("/api/v4/groups/{group}");
        let answer = client.delete(&path).await;
        assert_eq!(answer.json, json!({"kind": "groups", "data": []}));
        client
            .get(&path)
            .await
            .assert_error(404, "resource_not_found");
        client
            .delete(&path)
            .await
            .assert_error(404, "resource_not_found");
        client
            .put(&path, &[("title", "x")])
            .await
            .assert_error(404, "resource_not_found");
    }

    #[tokio::test]
    async fn a_title_is_required_and_not_blank() {
        let client = Client::memory();
        client
            .post("/api/v4/groups", &[("members", "[]")])
            .await
            .assert_error(400, "parameter_required");
        client
            .post("/api/v4/groups", &[("title", "  ")])
            .await
            .assert_error(400, "invalid_parameter");
    }
}
