//! `/api/v1/teams` and `/api/v1/teams/{id}/members`: teams, and who is in them.
//!
//! Membership changes are changes of the team: they bump its `version` and
//! `updated_at`. Adding a member twice is not an error (the second add answers 200
//! with the existing membership), so a retried add is safe.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::Value;

use super::error::ApiError;
use super::extract::{
    IfMatch, JsonObject, Lines, ListQuery, MAX_TEXT, PathIds, QueryPairs, parse_id,
};
use super::records::{Added, TeamFields, TeamFilter, TeamPatch};
use super::{LegacyApi, created};

const WRITABLE: &[&str] = &["name", "description", "external_ref"];
const READ_ONLY: &[&str] = &["id", "created_at", "updated_at", "version"];
const MAX_DESCRIPTION: usize = 4096;

fn parse_team(body: &JsonObject, require_name: bool) -> Result<TeamPatch, ApiError> {
    body.check_keys(WRITABLE, READ_ONLY)?;
    Ok(TeamPatch {
        name: body.required_text("name", require_name)?,
        description: body.nullable_text("description", MAX_DESCRIPTION, Lines::Multi)?,
        // The same rule as a user's `external_ref`.
        external_ref: body.nullable_text("external_ref", MAX_TEXT, Lines::Single)?,
    })
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
    let query = ListQuery::parse(query, &["name", "external_ref"])?;
    let filter = TeamFilter {
        name: query.filter("name").map(str::to_owned),
        external_ref: query.filter("external_ref").map(str::to_owned),
    };
    let page = query.page;
    api.answer_page(move |store| store.list_teams(&filter, page))
        .await
}

pub(super) async fn get(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
) -> Result<Response, ApiError> {
    api.answer_json(move |store| store.get_team(id)).await
}

pub(super) async fn create(
    State(api): State<LegacyApi>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    // A create is a patch of a blank team; `parse_team` made sure `name` is there.
    let blank = TeamFields {
        name: String::new(),
        description: None,
        external_ref: None,
    };
    let fields = parse_team(&body, true)?.apply(&blank);
    let team = api.run(move |store| store.create_team(fields)).await?;
    Ok(created("/api/v1/teams", team.id, team))
}

pub(super) async fn patch(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
    IfMatch(expected): IfMatch,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let patch = parse_team(&body, false)?;
    api.answer_json(move |store| store.update_team(id, patch, expected))
        .await
}

pub(super) async fn delete(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
) -> Result<Response, ApiError> {
    api.answer_no_content(move |store| store.delete_team(id))
        .await
}

pub(super) async fn list_members(
    State(api): State<LegacyApi>,
    PathIds([team_id]): PathIds<1>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let page = ListQuery::parse(query, &[])?.page;
    api.answer_page(move |store| store.list_members(team_id, page))
        .await
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

/// One member of a team, 404 if the user is none: how a client checks one
/// membership without listing a large team.
pub(super) async fn get_member(
    State(api): State<LegacyApi>,
    PathIds([team_id, user_id]): PathIds<2>,
) -> Result<Response, ApiError> {
    api.answer_json(move |store| store.member(team_id, user_id))
        .await
}

pub(super) async fn remove_member(
    State(api): State<LegacyApi>,
    PathIds([team_id, user_id]): PathIds<2>,
) -> Result<Response, ApiError> {
    api.answer_no_content(move |store| store.remove_member(team_id, user_id))
        .await
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Client;
    use http::{Method, StatusCode};
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
    async fn team_fields_come_back_in_a_fixed_order_with_null_external_ref() {
        let client = Client::memory();
        let answer = client.post("/api/v1/teams", json!({"name": "Ops"})).await;
        let keys: Vec<&str> = answer
            .json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "name",
                "description",
                "external_ref",
                "created_at",
                "updated_at",
                "version"
            ]
        );
        assert_eq!(answer.json["external_ref"], Value::Null);
    }

    #[tokio::test]
    async fn create_with_external_ref_returns_it_everywhere() {
        let client = Client::memory();
        let object_id = "5f0c7a3e-1d2b-4c5a-9e8f-0a1b2c3d4e5f";
        let answer = client
            .post(
                "/api/v1/teams",
                json!({"name": "Ops", "external_ref": object_id}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        assert_eq!(answer.json["external_ref"], object_id);
        assert_eq!(answer.json["version"], 1);
        let id = answer.json["id"].as_i64().unwrap();
        let fetched = client.get(&format!("/api/v1/teams/{id}")).await;
        assert_eq!(fetched.json, answer.json);
        let listed = client.get("/api/v1/teams").await;
        assert_eq!(listed.column("external_ref"), [json!(object_id)]);

        // Not unique: another team may carry the same reference.
        let twin = client
            .post(
                "/api/v1/teams",
                json!({"name": "Dev", "external_ref": object_id}),
            )
            .await;
        assert_eq!(twin.status, StatusCode::CREATED);
        // An explicit null on create is the same as leaving it out.
        let unset = client
            .post("/api/v1/teams", json!({"name": "QA", "external_ref": null}))
            .await;
        assert_eq!(unset.json["external_ref"], Value::Null);
    }

    #[tokio::test]
    async fn external_ref_follows_the_user_text_rules() {
        let client = Client::memory();
        for value in [
            json!(42),
            json!(["x"]),
            json!("tab\there"),
            json!("line\nbreak"),
            json!("x".repeat(256)),
        ] {
            let answer = client
                .post(
                    "/api/v1/teams",
                    json!({"name": "Ops", "external_ref": value.clone()}),
                )
                .await;
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{value}");
            assert_eq!(answer.error_code(), "INVALID_FIELD");
        }
        let longest = client
            .post(
                "/api/v1/teams",
                json!({"name": "Ops", "external_ref": "x".repeat(255)}),
            )
            .await;
        assert_eq!(longest.status, StatusCode::CREATED);
        let id = longest.json["id"].as_i64().unwrap();
        let bad_patch = client
            .patch(&format!("/api/v1/teams/{id}"), json!({"external_ref": 7}))
            .await;
        assert_eq!(bad_patch.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[tokio::test]
    async fn external_ref_patch_sets_changes_and_null_clears() {
        let client = Client::memory();
        let id = client.create_team("Ops").await;
        let path = format!("/api/v1/teams/{id}");
        let set = client.patch(&path, json!({"external_ref": "g-1"})).await;
        assert_eq!(set.status, StatusCode::OK);
        assert_eq!(set.json["external_ref"], "g-1");
        assert_eq!(set.json["name"], "Ops");
        assert_eq!(set.json["version"], 2);
        let same = client.patch(&path, json!({"external_ref": "g-1"})).await;
        assert_eq!(same.json["version"], 2, "no change, no new version");
        let untouched = client.patch(&path, json!({"description": "d"})).await;
        assert_eq!(untouched.json["external_ref"], "g-1");
        assert_eq!(untouched.json["version"], 3);
        let cleared = client.patch(&path, json!({"external_ref": null})).await;
        assert_eq!(cleared.json["external_ref"], Value::Null);
        assert_eq!(cleared.json["description"], "d");
        assert_eq!(cleared.json["version"], 4);
        assert_eq!(client.get(&path).await.json["external_ref"], Value::Null);
    }

    #[tokio::test]
    async fn external_ref_search_is_exact_and_combines_with_name_and_paging() {
        let client = Client::memory();
        let mut ids = Vec::new();
        for (name, external_ref) in [
            ("Ops", json!("G-1")),
            ("Dev", json!("G-1")),
            ("QA", json!("G-2")),
            ("Sales", json!(null)),
        ] {
            let answer = client
                .post(
                    "/api/v1/teams",
                    json!({"name": name, "external_ref": external_ref}),
                )
                .await;
            ids.push(json!(answer.json["id"].as_i64().unwrap()));
        }
        let found = client.get("/api/v1/teams?external_ref=G-1").await;
        assert_eq!(found.column("id"), [ids[0].clone(), ids[1].clone()]);
        assert_eq!(found.total(), 2);
        // Case-sensitive, and no prefix matching.
        let other_case = client.get("/api/v1/teams?external_ref=g-1").await;
        assert_eq!(other_case.json, json!([]));
        assert_eq!(other_case.total(), 0);
        assert_eq!(client.get("/api/v1/teams?external_ref=G").await.total(), 0);
        // Combined with name (and-ed) and with paging.
        let both = client.get("/api/v1/teams?external_ref=G-1&name=dev").await;
        assert_eq!(both.column("id"), [ids[1].clone()]);
        assert_eq!(both.total(), 1);
        let mismatch = client.get("/api/v1/teams?external_ref=G-2&name=ops").await;
        assert_eq!(mismatch.total(), 0);
        let paged = client
            .get("/api/v1/teams?external_ref=G-1&per_page=1&page=2")
            .await;
        assert_eq!(paged.column("id"), [ids[1].clone()]);
        assert_eq!(paged.total(), 2);
        // Percent-encoded values are decoded before matching.
        client
            .post(
                "/api/v1/teams",
                json!({"name": "Spaced", "external_ref": "a b&c"}),
            )
            .await;
        let encoded = client.get("/api/v1/teams?external_ref=a%20b%26c").await;
        assert_eq!(encoded.column("name"), [json!("Spaced")]);
        // Same query-string rules as the other filters: empty means absent,
        // repeated or misspelt parameters are refused.
        assert_eq!(client.get("/api/v1/teams?external_ref=").await.total(), 5);
        for query in [
            "external_ref=G-1&external_ref=G-2",
            "externalId=G-1",
            "external_ref=G-1&page=0",
        ] {
            let answer = client.get(&format!("/api/v1/teams?{query}")).await;
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
            assert_eq!(answer.error_code(), "INVALID_FIELD");
        }
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
    async fn a_team_write_with_if_match_lands_only_on_that_version() {
        let client = Client::memory();
        let id = client.create_team("Night").await;
        let path = format!("/api/v1/teams/{id}");
        let stale = client
            .send_if_match(Method::PATCH, &path, json!({"description": "x"}), "2")
            .await;
        assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
        let landed = client
            .send_if_match(Method::PATCH, &path, json!({"description": "x"}), "1")
            .await;
        assert_eq!(landed.json["version"], 2);
    }

    #[tokio::test]
    async fn a_seeded_team_has_its_members_as_users() {
        let client = Client::memory();
        let id = client.api.seed_team("Big", 250).unwrap();
        let members = client
            .get(&format!("/api/v1/teams/{id}/members?per_page=100"))
            .await;
        assert_eq!(members.headers["x-total-count"], "250");
        let user = members.json[0]["user_id"].as_i64().unwrap();
        let member = client
            .get(&format!("/api/v1/teams/{id}/members/{user}"))
            .await;
        assert_eq!(member.status, StatusCode::OK);
        assert_eq!(member.json["login"], "Big-0@example.com");
        let user = client.get(&format!("/api/v1/users/{user}")).await;
        assert_eq!(user.json["login"], "Big-0@example.com");
        let outsider = client
            .create_user(json!({"login": "out@example.com"}))
            .await;
        let none = client
            .get(&format!("/api/v1/teams/{id}/members/{outsider}"))
            .await;
        assert_eq!(none.status, StatusCode::NOT_FOUND);
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
