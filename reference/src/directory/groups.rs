//! `/v2/groups`: cursor-paged list, read, create, merge-patch update and hard delete.
//!
//! Groups hold no members: membership is each user's `groupIds`, and a group's members
//! are listed with `GET /v2/users?groupId=…`. Deleting a group removes it from every
//! user. Group names need not be unique.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value};

use super::extract::{JsonBody, ListQuery, MergePatch, PathId, QueryPairs};
use super::ids::Collection;
use super::merge::merge_patch;
use super::problem::Problem;
use super::records::{GroupFields, check_group_patch_keys};
use super::store::GroupFilter;
use super::{DirectoryApi, created};

pub(super) async fn list(
    State(api): State<DirectoryApi>,
    query: QueryPairs,
) -> Result<Response, Problem> {
    let query = ListQuery::parse(query, Collection::Groups, &["name"])?;
    let filter = GroupFilter {
        name: query.filter("name").map(str::to_owned),
    };
    let page = query.page;
    api.answer_page(move |store| store.list_groups(filter, page))
        .await
}

pub(super) async fn get(
    State(api): State<DirectoryApi>,
    PathId(id): PathId,
) -> Result<Response, Problem> {
    api.answer_record(move |store| store.get_group(&id)).await
}

pub(super) async fn create(
    State(api): State<DirectoryApi>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let errors = check_group_patch_keys(&body);
    if !errors.is_empty() {
        return Err(Problem::invalid_fields(errors));
    }
    let mut document = Value::Object(Map::new());
    merge_patch(&mut document, &Value::Object(body));
    let fields = GroupFields::from_document(&document).map_err(Problem::invalid_fields)?;
    let group = api.run(move |store| store.create_group(fields)).await?;
    Ok(created("/v2/groups", &group))
}

pub(super) async fn patch(
    State(api): State<DirectoryApi>,
    PathId(id): PathId,
    MergePatch(body): MergePatch,
) -> Result<Response, Problem> {
    let errors = check_group_patch_keys(&body);
    if !errors.is_empty() {
        return Err(Problem::invalid_fields(errors));
    }
    api.answer_record(move |store| store.patch_group(&id, body))
        .await
}

pub(super) async fn delete(
    State(api): State<DirectoryApi>,
    PathId(id): PathId,
) -> Result<Response, Problem> {
    api.answer_no_content(move |store| store.delete_group(&id))
        .await
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Client;
    use http::StatusCode;
    use serde_json::{Value, json};

    #[tokio::test]
    async fn create_answers_201_with_location_and_a_fixed_shape() {
        let client = Client::memory();
        let answer = client
            .post("/v2/groups", json!({"name": "Engineering"}))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        let group = &answer.json;
        let id = group["id"].as_str().unwrap();
        assert_eq!(
            answer.header("location"),
            Some(&*format!("/v2/groups/{id}"))
        );
        let keys: Vec<&str> = group
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
                "createdAt",
                "modifiedAt",
                "etag"
            ]
        );
        assert_eq!(group["description"], Value::Null);
        assert_eq!(&client.get(&format!("/v2/groups/{id}")).await.json, group);
    }

    #[tokio::test]
    async fn invalid_group_bodies_are_422_naming_the_field() {
        let client = Client::memory();
        for (body, field) in [
            (json!({}), "name"),
            (json!({"name": ""}), "name"),
            (json!({"name": "x", "description": 5}), "description"),
            (json!({"name": "x", "members": []}), "members"),
            (json!({"name": "x", "displayName": "x"}), "displayName"),
            (json!({"name": "x", "id": "x"}), "id"),
        ] {
            let answer = client.post("/v2/groups", body.clone()).await;
            answer.assert_problem(422, "invalid-field");
            assert_eq!(answer.error_fields(), [field], "{body}");
        }
    }

    #[tokio::test]
    async fn group_merge_patch_changes_name_and_clears_description() {
        let client = Client::memory();
        let id = client
            .create_group(json!({"name": "ops", "description": "on call"}))
            .await;
        let path = format!("/v2/groups/{id}");
        let before = client.get(&path).await.json;
        let renamed = client.patch(&path, json!({"name": "sre"})).await;
        assert_eq!(renamed.status, StatusCode::OK);
        assert_eq!(renamed.json["name"], "sre");
        assert_eq!(renamed.json["description"], "on call");
        assert_ne!(renamed.json["etag"], before["etag"]);
        let cleared = client.patch(&path, json!({"description": null})).await;
        assert_eq!(cleared.json["description"], Value::Null);
        client
            .patch(&path, json!({"name": null}))
            .await
            .assert_problem(422, "invalid-field");
        client
            .patch_as(&path, "application/json", json!({"name": "x"}))
            .await
            .assert_problem(415, "unsupported-media-type");
    }

    #[tokio::test]
    async fn groups_page_by_cursor_and_filter_by_name_ignoring_case() {
        let client = Client::memory();
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(
                client
                    .create_group(json!({"name": format!("team {n}")}))
                    .await,
            );
        }
        let first = client.get("/v2/groups?limit=3").await;
        assert_eq!(first.ids(), ids[..3]);
        let cursor = first.next().unwrap();
        let second = client
            .get(&format!("/v2/groups?limit=3&cursor={cursor}"))
            .await;
        assert_eq!(second.ids(), ids[3..]);
        assert_eq!(second.next(), None);
        assert_eq!(
            client.get("/v2/groups?name=TEAM%202").await.ids(),
            [ids[2].clone()]
        );
        client
            .get("/v2/groups?displayName=x")
            .await
            .assert_problem(422, "invalid-field");
    }

    #[tokio::test]
    async fn a_users_cursor_does_not_page_groups() {
        let client = Client::memory();
        for n in 0..2 {
            client
                .create_user(json!({"username": format!("u{n}")}))
                .await;
        }
        let cursor = client.get("/v2/users?limit=1").await.next().unwrap();
        let answer = client.get(&format!("/v2/groups?cursor={cursor}")).await;
        answer.assert_problem(422, "invalid-field");
        assert_eq!(answer.error_fields(), ["cursor"]);
    }

    #[tokio::test]
    async fn group_id_listing_pages_through_members() {
        let client = Client::memory();
        let eng = client.create_group(json!({"name": "eng"})).await;
        let ops = client.create_group(json!({"name": "ops"})).await;
        let mut members = Vec::new();
        for n in 0..7 {
            let groups = if n % 2 == 0 {
                json!([eng, ops])
            } else {
                json!([ops])
            };
            let id = client
                .create_user(json!({"username": format!("u{n}"), "groupIds": groups}))
                .await;
            if n % 2 == 0 {
                members.push(id);
            }
        }
        let mut seen = Vec::new();
        let mut path = format!("/v2/users?groupId={eng}&limit=3");
        loop {
            let page = client.get(&path).await;
            seen.extend(page.ids());
            match page.next() {
                Some(cursor) => path = format!("/v2/users?groupId={eng}&limit=3&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(seen, members);
        assert_eq!(
            client
                .get(&format!("/v2/users?groupId={ops}"))
                .await
                .ids()
                .len(),
            7
        );
        let unknown = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b";
        assert!(
            client
                .get(&format!("/v2/users?groupId={unknown}"))
                .await
                .ids()
                .is_empty()
        );
        client.delete(&format!("/v2/users/{}", members[0])).await;
        assert_eq!(
            client.get(&format!("/v2/users?groupId={eng}")).await.ids(),
            members[1..],
            "deleted users are hidden from member lists too"
        );
    }

    #[tokio::test]
    async fn deleting_a_group_removes_it_from_every_user_then_404() {
        let client = Client::memory();
        let doomed = client.create_group(json!({"name": "doomed"})).await;
        let kept = client.create_group(json!({"name": "kept"})).await;
        let both = client
            .create_user(json!({"username": "both", "groupIds": [doomed, kept]}))
            .await;
        let only = client
            .create_user(json!({"username": "only", "groupIds": [doomed]}))
            .await;
        let bystander = client
            .create_user(json!({"username": "by", "groupIds": [kept]}))
            .await;
        let before = client.get(&format!("/v2/users/{both}")).await.json;
        let untouched = client.get(&format!("/v2/users/{bystander}")).await.json;
        client.delete(&format!("/v2/users/{only}")).await;

        let path = format!("/v2/groups/{doomed}");
        let answer = client.delete(&path).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        client.get(&path).await.assert_problem(404, "not-found");
        client.delete(&path).await.assert_problem(404, "not-found");

        let after = client.get(&format!("/v2/users/{both}")).await.json;
        assert_eq!(after["groupIds"], json!([kept]));
        assert_ne!(after["etag"], before["etag"], "losing a group is a change");
        assert_eq!(
            client.get(&format!("/v2/users/{only}")).await.json["groupIds"],
            json!([]),
            "soft-deleted users lose the group too"
        );
        assert_eq!(
            client.get(&format!("/v2/users/{bystander}")).await.json,
            untouched
        );
        assert!(
            client
                .get(&format!("/v2/users?groupId={doomed}&deleted=true"))
                .await
                .ids()
                .is_empty()
        );
        client
            .patch(&format!("/v2/users/{both}"), json!({"groupIds": [doomed]}))
            .await
            .assert_problem(422, "invalid-field");
    }

    #[tokio::test]
    async fn missing_groups_are_404_problems() {
        let client = Client::memory();
        let missing = "/v2/groups/1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b";
        client.get(missing).await.assert_problem(404, "not-found");
        client
            .patch(missing, json!({"name": "x"}))
            .await
            .assert_problem(404, "not-found");
        client
            .get("/v2/groups/7")
            .await
            .assert_problem(404, "not-found");
    }
}
