//! `/api/v1/teams` and `/api/v1/teams/{id}/members`: teams, and who is in them.
//!
//! Membership changes are changes of the team: they bump its `version` and
//! `updated_at`. Adding a member twice is not an error (the second add answers 200
//! with the existing membership), so a retried add is safe.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::LOCATION;
use serde_json::Value;

use super::LegacyApi;
use super::error::ApiError;
use super::extract::{
    JsonObject, Lines, ListQuery, MAX_TEXT, PathIds, QueryPairs, nullable_text, parse_id,
    required_text,
};
use super::records::{Added, TeamPatch};

const WRITABLE: &[&str] = &["name", "description"];
const READ_ONLY: &[&str] = &["id", "created_at", "updated_at", "version"];
const MAX_DESCRIPTION: usize = 4096;

fn parse_team(body: &JsonObject, require_name: bool) -> Result<TeamPatch, ApiError> {
    body.check_keys(WRITABLE, READ_ONLY)?;
    let mut patch = TeamPatch::default();
    match body.get("name") {
        Some(value) => patch.name = Some(required_text("name", value, MAX_TEXT, Lines::Single)?),
        None if require_name => return Err(ApiError::invalid_field("field `name` is required")),
        None => {}
    }
    if let Some(value) = body.get("description") {
        patch.description = Some(nullable_text(
            "description",
            value,
            MAX_DESCRIPTION,
            Lines::Multi,
        )?);
    }
    Ok(patch)
}

/// `{"user_id": 7}` or `{"user_id": "7"}`: callers that template ids into strings
/// (the gateway's mapping files do) need not know the id is numeric.
fn parse_member(body: &JsonObject) -> Result<i64, ApiError> {
    body.check_keys(&["user_id"], &["login", "added_at"])?;
    let invalid = || ApiError::invalid_field("field `user_id` must be a positive integer user id");
    match body.get("user_id") {
        None => Err(ApiError::invalid_field("field `user_id` is required")),
        Some(Value::Number(n)) => n.as_i64().filter(|id| *id > 0).ok_or_else(invalid),
        Some(Value::String(text)) => parse_id(text).ok_or_else(invalid),
        Some(_) => Err(invalid()),
    }
}

pub(super) async fn list(
    State(api): State<LegacyApi>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let query = ListQuery::parse(query, &["name"])?;
    let name = query.filter("name").map(str::to_owned);
    let page = query.page;
    let (teams, total) = api
        .run(move |store| store.list_teams(name.as_deref(), page))
        .await?;
    Ok(([("x-total-count", total.to_string())], Json(teams)).into_response())
}

pub(super) async fn get(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
) -> Result<Response, ApiError> {
    let team = api.run(move |store| store.get_team(id)).await?;
    Ok(Json(team).into_response())
}

pub(super) async fn create(
    State(api): State<LegacyApi>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let TeamPatch { name, description } = parse_team(&body, true)?;
    let name = name.unwrap_or_default();
    let description = description.flatten();
    let team = api
        .run(move |store| store.create_team(name, description))
        .await?;
    let location = format!("/api/v1/teams/{}", team.id);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(team)).into_response())
}

pub(super) async fn patch(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let patch = parse_team(&body, false)?;
    let team = api.run(move |store| store.update_team(id, patch)).await?;
    Ok(Json(team).into_response())
}

pub(super) async fn delete(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
) -> Result<Response, ApiError> {
    api.run(move |store| store.delete_team(id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_members(
    State(api): State<LegacyApi>,
    PathIds([team_id]): PathIds<1>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let page = ListQuery::parse(query, &[])?.page;
    let (members, total) = api
        .run(move |store| store.list_members(team_id, page))
        .await?;
    Ok(([("x-total-count", total.to_string())], Json(members)).into_response())
}

pub(super) async fn add_member(
    State(api): State<LegacyApi>,
    PathIds([team_id]): PathIds<1>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let user_id = parse_member(&body)?;
    let (member, added) = api
        .run(move |store| store.add_member(team_id, user_id))
        .await?;
    let status = match added {
        Added::New => StatusCode::CREATED,
        Added::Existing => StatusCode::OK,
    };
    Ok((status, Json(member)).into_response())
}

pub(super) async fn remove_member(
    State(api): State<LegacyApi>,
    PathIds([team_id, user_id]): PathIds<2>,
) -> Result<Response, ApiError> {
    api.run(move |store| store.remove_member(team_id, user_id))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Client;
    use http::StatusCode;
    use serde_json::{Value, json};

    #[tokio::test]
    async fn create_get_and_list_teams_with_name_search() {
        let client = Client::memory();
        let answer = client
            .post(
                "/api/v1/teams",
                json!({"name": "Ops", "description": "on call\nrota"}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        let id = answer.json["id"].as_i64().unwrap();
        assert_eq!(
            answer.header("location"),
            Some(&*format!("/api/v1/teams/{id}"))
        );
        assert_eq!(answer.json["version"], 1);
        assert_eq!(answer.json["description"], "on call\nrota");
        let dev = client.create_team("Dev").await;

        assert_eq!(
            client.get(&format!("/api/v1/teams/{id}")).await.json["name"],
            "Ops"
        );
        let all = client.get("/api/v1/teams?per_page=1&page=2").await;
        assert_eq!(all.column("id"), [json!(dev)]);
        assert_eq!(all.total(), 2);
        let found = client.get("/api/v1/teams?name=oPS").await;
        assert_eq!(found.column("id"), [json!(id)]);
        assert_eq!(found.total(), 1);
        assert_eq!(
            client.get("/api/v1/teams?page=0").await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[tokio::test]
    async fn duplicate_team_name_is_409_ignoring_case() {
        let client = Client::memory();
        client.create_team("Ops").await;
        let answer = client.post("/api/v1/teams", json!({"name": "OPS"})).await;
        assert_eq!(answer.status, StatusCode::CONFLICT);
        assert_eq!(answer.error_code(), "NAME_TAKEN");
    }

    #[tokio::test]
    async fn team_bodies_reject_unknown_fields_and_missing_name() {
        let client = Client::memory();
        for body in [
            json!({}),
            json!({"name": "x", "displayName": "x"}),
            json!({"name": null}),
        ] {
            let answer = client.post("/api/v1/teams", body.clone()).await;
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(answer.error_code(), "INVALID_FIELD");
        }
    }

    #[tokio::test]
    async fn team_patch_is_partial_and_versioned() {
        let client = Client::memory();
        let id = client.create_team("Ops").await;
        let path = format!("/api/v1/teams/{id}");
        let answer = client
            .patch(&path, json!({"description": "night shift"}))
            .await;
        assert_eq!(answer.json["name"], "Ops");
        assert_eq!(answer.json["description"], "night shift");
        assert_eq!(answer.json["version"], 2);
        let same = client.patch(&path, json!({"name": "Ops"})).await;
        assert_eq!(same.json["version"], 2);
        let cleared = client.patch(&path, json!({"description": null})).await;
        assert_eq!(cleared.json["description"], Value::Null);
        assert_eq!(cleared.json["version"], 3);
    }

    #[tokio::test]
    async fn members_add_idempotently_list_sorted_and_remove() {
        let client = Client::memory();
        let team = client.create_team("Ops").await;
        let zed = client.create_user(json!({"login": "zed"})).await;
        let amy = client.create_user(json!({"login": "amy"})).await;
        let members = format!("/api/v1/teams/{team}/members");

        let added = client.add_member(team, amy).await;
        assert_eq!(added.status, StatusCode::CREATED);
        assert_eq!(added.json["user_id"], amy);
        assert_eq!(added.json["login"], "amy");
        let again = client.add_member(team, amy).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json, added.json);

        // A numeric string is accepted too.
        let by_string = client
            .post(&members, json!({"user_id": zed.to_string()}))
            .await;
        assert_eq!(by_string.status, StatusCode::CREATED);

        let list = client.get(&members).await;
        assert_eq!(list.column("user_id"), [json!(zed), json!(amy)]);
        assert_eq!(list.column("login"), [json!("zed"), json!("amy")]);
        assert_eq!(list.total(), 2);
        let page = client.get(&format!("{members}?per_page=1&page=2")).await;
        assert_eq!(page.column("user_id"), [json!(amy)]);

        let removed = client.delete(&format!("{members}/{zed}")).await;
        assert_eq!(removed.status, StatusCode::NO_CONTENT);
        let not_member = client.delete(&format!("{members}/{zed}")).await;
        assert_eq!(not_member.status, StatusCode::NOT_FOUND);
        assert_eq!(client.get(&members).await.column("user_id"), [json!(amy)]);
    }

    #[tokio::test]
    async fn membership_changes_bump_the_team_version_but_repeat_adds_do_not() {
        let client = Client::memory();
        let team = client.create_team("Ops").await;
        let user = client.create_user(json!({"login": "u"})).await;
        let path = format!("/api/v1/teams/{team}");
        client.add_member(team, user).await;
        assert_eq!(client.get(&path).await.json["version"], 2);
        client.add_member(team, user).await;
        assert_eq!(client.get(&path).await.json["version"], 2);
        client.delete(&format!("{path}/members/{user}")).await;
        assert_eq!(client.get(&path).await.json["version"], 3);
    }

    #[tokio::test]
    async fn adding_an_unknown_user_is_422_and_to_an_unknown_team_is_404() {
        let client = Client::memory();
        let team = client.create_team("Ops").await;
        let user = client.create_user(json!({"login": "u"})).await;
        for body in [
            json!({"user_id": 999}),
            json!({"user_id": "abc"}),
            json!({"user_id": 0}),
            json!({}),
            json!({"user_id": 1, "role": "x"}),
        ] {
            let answer = client
                .post(&format!("/api/v1/teams/{team}/members"), body.clone())
                .await;
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(answer.error_code(), "INVALID_FIELD");
        }
        let answer = client.add_member(team + 100, user).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        let list = client
            .get(&format!("/api/v1/teams/{}/members", team + 100))
            .await;
        assert_eq!(list.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn deleting_a_user_removes_their_memberships_and_versions_the_team() {
        let client = Client::memory();
        let team = client.create_team("Ops").await;
        let user = client.create_user(json!({"login": "u"})).await;
        let other = client.create_user(json!({"login": "o"})).await;
        client.add_member(team, user).await;
        client.add_member(team, other).await;
        assert_eq!(
            client.delete(&format!("/api/v1/users/{user}")).await.status,
            StatusCode::NO_CONTENT
        );
        let list = client.get(&format!("/api/v1/teams/{team}/members")).await;
        assert_eq!(list.column("user_id"), [json!(other)]);
        assert_eq!(
            client.get(&format!("/api/v1/teams/{team}")).await.json["version"],
            4
        );
    }

    #[tokio::test]
    async fn deleting_a_team_is_204_then_404_and_keeps_its_users() {
        let client = Client::memory();
        let team = client.create_team("Ops").await;
        let user = client.create_user(json!({"login": "u"})).await;
        client.add_member(team, user).await;
        let path = format!("/api/v1/teams/{team}");
        assert_eq!(client.delete(&path).await.status, StatusCode::NO_CONTENT);
        assert_eq!(client.get(&path).await.status, StatusCode::NOT_FOUND);
        assert_eq!(client.delete(&path).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            client.get(&format!("/api/v1/users/{user}")).await.status,
            StatusCode::OK
        );
        // The name is free again.
        client.create_team("Ops").await;
    }
}
