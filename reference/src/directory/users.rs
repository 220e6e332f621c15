//! `/v2/users`: cursor-paged list with filters, read, create, merge-patch update, soft
//! delete, and the `:suspend` / `:unsuspend` actions.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value};

use super::extract::{
    ActionPath, JsonBody, ListQuery, MergePatch, PathId, QueryPairs, UserAction, boolean,
};
use super::ids::{Collection, parse_uuid};
use super::merge::merge_patch;
use super::problem::Problem;
use super::records::{UserFields, Write, check_user_patch_keys};
use super::store::UserFilter;
use super::{DirectoryApi, created};

const FILTERS: &[&str] = &["username", "email", "externalKey", "groupId", "deleted"];

pub(super) async fn list(
    State(api): State<DirectoryApi>,
    query: QueryPairs,
) -> Result<Response, Problem> {
    let query = ListQuery::parse(query, Collection::Users, FILTERS)?;
    let group_id = match query.filter("groupId") {
        Some(raw) => Some(
            parse_uuid(raw)
                .ok_or_else(|| Problem::invalid_field("groupId", "must be a group's UUID"))?,
        ),
        None => None,
    };
    let filter = UserFilter {
        username: query.filter("username").map(str::to_owned),
        email: query.filter("email").map(str::to_owned),
        external_key: query.filter("externalKey").map(str::to_owned),
        group_id,
        deleted: query
            .filter("deleted")
            .map(|value| boolean("deleted", value))
            .transpose()?
            .unwrap_or(false),
    };
    let page = query.page;
    api.answer_page(move |store| store.list_users(filter, page))
        .await
}

pub(super) async fn get(
    State(api): State<DirectoryApi>,
    PathId(id): PathId,
) -> Result<Response, Problem> {
    api.answer_record(move |store| store.get_user(&id)).await
}

pub(super) async fn create(
    State(api): State<DirectoryApi>,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let errors = check_user_patch_keys(&body, Write::Create);
    if !errors.is_empty() {
        return Err(Problem::invalid_fields(errors));
    }
    // A create is a merge patch applied to an empty user.
    let mut document = Value::Object(Map::new());
    merge_patch(&mut document, &Value::Object(body));
    let fields = UserFields::from_document(&document).map_err(Problem::invalid_fields)?;
    let user = api.run(move |store| store.create_user(fields)).await?;
    Ok(created("/v2/users", &user))
}

pub(super) async fn patch(
    State(api): State<DirectoryApi>,
    PathId(id): PathId,
    MergePatch(body): MergePatch,
) -> Result<Response, Problem> {
    let errors = check_user_patch_keys(&body, Write::Patch);
    if !errors.is_empty() {
        return Err(Problem::invalid_fields(errors));
    }
    api.answer_record(move |store| store.patch_user(&id, body))
        .await
}

pub(super) async fn delete(
    State(api): State<DirectoryApi>,
    PathId(id): PathId,
) -> Result<Response, Problem> {
    api.answer_no_content(move |store| store.delete_user(&id))
        .await
}

/// `POST /v2/users/{id}:suspend` and `:unsuspend`; any body is ignored.
pub(super) async fn action(
    State(api): State<DirectoryApi>,
    ActionPath(id, action): ActionPath,
) -> Result<Response, Problem> {
    let suspended = action == UserAction::Suspend;
    api.answer_record(move |store| store.set_suspended(&id, suspended))
        .await
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Client;
    use http::{Method, StatusCode};
    use serde_json::{Value, json};

    fn is_timestamp(value: &Value) -> bool {
        let text = value.as_str().unwrap_or_default();
        text.len() == 24
            && text.ends_with('Z')
            && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_ok()
    }

    fn is_uuid(value: &Value) -> bool {
        value
            .as_str()
            .and_then(super::parse_uuid)
            .is_some_and(|id| Some(id.as_str()) == value.as_str())
    }

    #[tokio::test]
    async fn create_answers_201_with_nested_defaults_location_and_etag() {
        let client = Client::memory();
        let answer = client
            .post(
                "/v2/users",
                json!({"username": "bjensen", "profile": {"firstName": "Barbara"}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        let user = &answer.json;
        assert!(is_uuid(&user["id"]), "{}", user["id"]);
        let id = user["id"].as_str().unwrap();
        assert_eq!(answer.header("location"), Some(&*format!("/v2/users/{id}")));
        let etag = user["etag"].as_str().unwrap();
        assert_eq!(answer.header("etag"), Some(&*format!("\"{etag}\"")));
        assert_eq!(
            user,
            &json!({
                "id": id,
                "username": "bjensen",
                "profile": {
                    "firstName": "Barbara", "lastName": null, "title": null,
                    "department": null, "company": null, "employeeId": null,
                    "kind": "standard"
                },
                "contact": {"email": null, "phones": []},
                "manager": null,
                "externalKey": null,
                "suspended": false,
                "deleted": false,
                "groupIds": [],
                "createdAt": user["createdAt"],
                "modifiedAt": user["createdAt"],
                "etag": etag
            })
        );
        assert!(is_timestamp(&user["createdAt"]), "{}", user["createdAt"]);

        let fetched = client.get(&format!("/v2/users/{id}")).await;
        assert_eq!(fetched.status, StatusCode::OK);
        assert_eq!(&fetched.json, user);
    }

    #[tokio::test]
    async fn a_full_user_round_trips() {
        let client = Client::memory();
        let boss = client.create_user(json!({"username": "boss"})).await;
        let group = client.create_group(json!({"name": "eng"})).await;
        let body = json!({
            "username": "full",
            "profile": {
                "firstName": "F", "lastName": "L", "title": "T", "department": "D",
                "company": "C", "employeeId": "E1", "kind": "partner"
            },
            "contact": {"email": "f@example.com", "phones": [
                {"number": "+1 555", "label": "work"}, {"number": "+1 556", "label": null}
            ]},
            "manager": {"id": boss},
            "externalKey": "HR-1",
            "groupIds": [group]
        });
        let answer = client.post("/v2/users", body.clone()).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        for key in [
            "username",
            "profile",
            "contact",
            "manager",
            "externalKey",
            "groupIds",
        ] {
            assert_eq!(answer.json[key], body[key], "{key}");
        }
    }

    #[tokio::test]
    async fn missing_or_malformed_user_ids_are_404_problems() {
        let client = Client::memory();
        for path in [
            "/v2/users/1",
            "/v2/users/not-a-uuid",
            "/v2/users/1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b",
        ] {
            client.get(path).await.assert_problem(404, "not-found");
            client
                .patch(path, json!({"externalKey": "x"}))
                .await
                .assert_problem(404, "not-found");
            client.delete(path).await.assert_problem(404, "not-found");
        }
    }

    #[tokio::test]
    async fn ids_in_the_path_are_case_insensitive() {
        let client = Client::memory();
        let id = client.create_user(json!({"username": "u"})).await;
        let answer = client
            .get(&format!("/v2/users/{}", id.to_uppercase()))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json["id"], id);
    }

    #[tokio::test]
    async fn cursor_paging_walks_every_user_in_creation_order_until_next_is_null() {
        let client = Client::memory();
        let mut created = Vec::new();
        for n in 0..57 {
            created.push(
                client
                    .create_user(json!({"username": format!("user{n:02}")}))
                    .await,
            );
        }
        let first = client.get("/v2/users").await;
        assert_eq!(first.ids().len(), 25, "default limit");
        assert!(first.json.get("total").is_none() && first.header("x-total-count").is_none());

        let mut seen = Vec::new();
        let mut path = "/v2/users?limit=50".to_owned();
        let mut pages = 0;
        loop {
            let page = client.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.json);
            pages += 1;
            seen.extend(page.ids());
            match page.next() {
                Some(cursor) => path = format!("/v2/users?limit=50&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(pages, 2);
        assert_eq!(seen, created);

        let clamped = client.get("/v2/users?limit=1000").await;
        assert_eq!(clamped.ids().len(), 50, "limit is capped at 50");

        let exact = client.get("/v2/users?limit=57").await;
        assert_eq!(exact.ids().len(), 50);
        let cursor = exact.next().unwrap();
        let last = client
            .get(&format!("/v2/users?limit=7&cursor={cursor}"))
            .await;
        assert_eq!(last.ids(), created[50..]);
        assert_eq!(
            last.next(),
            None,
            "a page that ends exactly at the end has no next"
        );
    }

    #[tokio::test]
    async fn an_empty_list_is_an_empty_page() {
        let client = Client::memory();
        let answer = client.get("/v2/users").await;
        assert_eq!(answer.json, json!({"items": [], "next": null}));
    }

    #[tokio::test]
    async fn bad_query_parameters_are_422_naming_the_parameter() {
        let client = Client::memory();
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=x", "limit"),
            ("cursor=garbage", "cursor"),
            ("deleted=yes", "deleted"),
            ("groupId=7", "groupId"),
            ("login=bob", "login"),
            ("page=2", "page"),
        ] {
            let answer = client.get(&format!("/v2/users?{query}")).await;
            answer.assert_problem(422, "invalid-field");
            assert_eq!(answer.error_fields(), [field], "{query}");
        }
    }

    #[tokio::test]
    async fn username_and_email_filters_are_exact_but_case_insensitive() {
        let client = Client::memory();
        let bob = client
            .create_user(json!({"username": "Bob", "contact": {"email": "Bob@Example.com"}}))
            .await;
        client
            .create_user(json!({"username": "bobby", "contact": {"email": "bobby@example.com"}}))
            .await;
        let eve = client
            .create_user(json!({"username": "Ève", "contact": {"email": "ÈVE@example.com"}}))
            .await;

        assert_eq!(
            client.get("/v2/users?username=BOB").await.ids(),
            vec![bob.clone()]
        );
        assert_eq!(
            client.get("/v2/users?email=bob%40example.COM").await.ids(),
            vec![bob.clone()]
        );
        assert_eq!(
            client.get("/v2/users?username=%C3%A8VE").await.ids(),
            vec![eve.clone()],
            "case folding is Unicode-aware"
        );
        assert_eq!(
            client
                .get("/v2/users?email=%C3%A8ve%40example.com")
                .await
                .ids(),
            [eve]
        );
        assert!(client.get("/v2/users?username=bo").await.ids().is_empty());
        assert_eq!(
            client
                .get("/v2/users?username=bob&email=BOB%40example.com")
                .await
                .ids(),
            [bob]
        );
    }

    #[tokio::test]
    async fn external_key_filter_is_exact_and_case_sensitive() {
        let client = Client::memory();
        let id = client
            .create_user(json!({"username": "x", "externalKey": "HR-1"}))
            .await;
        assert_eq!(client.get("/v2/users?externalKey=HR-1").await.ids(), [id]);
        assert!(
            client
                .get("/v2/users?externalKey=hr-1")
                .await
                .ids()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn duplicate_username_or_email_is_409_ignoring_case() {
        let client = Client::memory();
        client
            .create_user(json!({"username": "alice", "contact": {"email": "alice@example.com"}}))
            .await;
        let username = client.post("/v2/users", json!({"username": "ALICE"})).await;
        username.assert_problem(409, "username-taken");
        assert_eq!(username.error_fields(), ["username"]);

        let email = client
            .post(
                "/v2/users",
                json!({"username": "alice2", "contact": {"email": "Alice@EXAMPLE.com"}}),
            )
            .await;
        email.assert_problem(409, "email-taken");
        assert_eq!(email.error_fields(), ["contact.email"]);

        let other = client.create_user(json!({"username": "carol"})).await;
        client
            .patch(&format!("/v2/users/{other}"), json!({"username": "Alice"}))
            .await
            .assert_problem(409, "username-taken");
        client
            .patch(
                &format!("/v2/users/{other}"),
                json!({"contact": {"email": "ALICE@example.com"}}),
            )
            .await
            .assert_problem(409, "email-taken");
    }

    #[tokio::test]
    async fn many_users_may_have_no_email() {
        let client = Client::memory();
        client
            .create_user(json!({"username": "a", "contact": {"email": null}}))
            .await;
        client.create_user(json!({"username": "b"})).await;
        client
            .create_user(json!({"username": "c", "contact": null}))
            .await;
    }

    #[tokio::test]
    async fn invalid_bodies_are_422_naming_every_field_and_create_nothing() {
        let client = Client::memory();
        let cases = [
            (json!({}), vec!["username"]),
            (json!({"username": "  "}), vec!["username"]),
            (json!({"username": 5}), vec!["username"]),
            (json!({"username": "x".repeat(256)}), vec!["username"]),
            (json!({"username": "a\u{0}b"}), vec!["username"]),
            (json!({"username": "x", "login": "x"}), vec!["login"]),
            (json!({"username": "x", "id": "x"}), vec!["id"]),
            (json!({"username": "x", "etag": "x"}), vec!["etag"]),
            (
                json!({"username": "x", "suspended": false}),
                vec!["suspended"],
            ),
            (json!({"username": "x", "deleted": false}), vec!["deleted"]),
            (
                json!({"username": "x", "profile": {"kind": "admin"}}),
                vec!["profile.kind"],
            ),
            (
                json!({"username": "x", "profile": {"first_name": "A"}}),
                vec!["profile.first_name"],
            ),
            (json!({"username": "x", "profile": "A"}), vec!["profile"]),
            (
                json!({"username": "x", "contact": {"email": "no-at-sign"}}),
                vec!["contact.email"],
            ),
            (
                json!({"username": "x", "contact": {"email": "a@b@c"}}),
                vec!["contact.email"],
            ),
            (
                json!({"username": "x", "contact": {"phones": [{"label": "work"}]}}),
                vec!["contact.phones[0].number"],
            ),
            (
                json!({"username": "x", "contact": {"phones": "555"}}),
                vec!["contact.phones"],
            ),
            (
                json!({"username": "x", "manager": {"id": 7}}),
                vec!["manager.id"],
            ),
            (json!({"username": "x", "manager": {}}), vec!["manager.id"]),
            (
                json!({"username": "x", "manager": {"id": "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"}}),
                vec!["manager.id"],
            ),
            (json!({"username": "x", "groupIds": "g"}), vec!["groupIds"]),
            (
                json!({"username": " ", "profile": {"kind": 1}, "contact": {"email": "x"}}),
                vec!["username", "profile.kind", "contact.email"],
            ),
        ];
        for (body, fields) in cases {
            let answer = client.post("/v2/users", body.clone()).await;
            answer.assert_problem(422, "invalid-field");
            assert_eq!(answer.error_fields(), fields, "{body}");
            for error in answer.json["errors"].as_array().unwrap() {
                assert!(error["message"].is_string(), "{body}");
            }
        }
        assert!(client.get("/v2/users").await.ids().is_empty());
    }

    #[tokio::test]
    async fn malformed_json_is_400_bad_json() {
        let client = Client::memory();
        for body in [
            &b"{\"username\": "[..],
            b"not json",
            b"",
            b"[1,2]",
            b"\"username\"",
            b"\xff\xfe",
        ] {
            let answer = client
                .send(
                    Method::POST,
                    "/v2/users",
                    Some(("application/json", body.to_vec())),
                )
                .await;
            answer.assert_problem(400, "bad-json");
        }
        let id = client.create_user(json!({"username": "p"})).await;
        let answer = client
            .send(
                Method::PATCH,
                &format!("/v2/users/{id}"),
                Some(("application/merge-patch+json", b"{".to_vec())),
            )
            .await;
        answer.assert_problem(400, "bad-json");
    }

    #[tokio::test]
    async fn create_needs_application_json() {
        let client = Client::memory();
        let body = br#"{"username": "x"}"#.to_vec();
        for content_type in ["text/plain", "application/merge-patch+json"] {
            let answer = client
                .send(
                    Method::POST,
                    "/v2/users",
                    Some((content_type, body.clone())),
                )
                .await;
            answer.assert_problem(415, "unsupported-media-type");
        }
        let no_type = client.send(Method::POST, "/v2/users", None).await;
        no_type.assert_problem(415, "unsupported-media-type");
        let with_charset = client
            .send(
                Method::POST,
                "/v2/users",
                Some(("Application/JSON; charset=utf-8", body)),
            )
            .await;
        assert_eq!(with_charset.status, StatusCode::CREATED);
    }

    #[tokio::test]
    async fn patch_needs_merge_patch_json_and_plain_json_is_415() {
        let client = Client::memory();
        let id = client.create_user(json!({"username": "m"})).await;
        let path = format!("/v2/users/{id}");
        let plain = client
            .patch_as(&path, "application/json", json!({"externalKey": "x"}))
            .await;
        plain.assert_problem(415, "unsupported-media-type");
        assert!(
            plain.json["detail"]
                .as_str()
                .unwrap()
                .contains("application/merge-patch+json")
        );
        assert_eq!(client.get(&path).await.json["externalKey"], Value::Null);
    }

    #[tokio::test]
    async fn merge_patch_merges_nested_objects_and_null_clears() {
        let client = Client::memory();
        let id = client
            .create_user(json!({
                "username": "pat",
                "profile": {"firstName": "Pat", "lastName": "Doe", "kind": "editor"},
                "contact": {"email": "pat@example.com", "phones": [{"number": "1", "label": "work"}]},
                "externalKey": "E-1"
            }))
            .await;
        let path = format!("/v2/users/{id}");
        let answer = client
            .patch(
                &path,
                json!({
                    "profile": {"lastName": null, "title": "Chef"},
                    "contact": {"phones": [{"number": "2"}]},
                    "externalKey": null
                }),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let user = &answer.json;
        assert_eq!(user["username"], "pat");
        assert_eq!(
            user["profile"]["firstName"], "Pat",
            "untouched sibling kept"
        );
        assert_eq!(user["profile"]["lastName"], Value::Null, "null clears");
        assert_eq!(user["profile"]["title"], "Chef");
        assert_eq!(user["profile"]["kind"], "editor");
        assert_eq!(user["contact"]["email"], "pat@example.com");
        assert_eq!(
            user["contact"]["phones"],
            json!([{"number": "2", "label": null}]),
            "arrays are replaced whole"
        );
        assert_eq!(user["externalKey"], Value::Null);

        let reset = client
            .patch(&path, json!({"profile": {"kind": null}}))
            .await;
        assert_eq!(
            reset.json["profile"]["kind"], "standard",
            "cleared kind is the default"
        );
        let cleared = client.patch(&path, json!({"contact": null})).await;
        assert_eq!(
            cleared.json["contact"],
            json!({"email": null, "phones": []})
        );
        assert_eq!(cleared.json["profile"]["firstName"], "Pat");
        let gone = client.patch(&path, json!({"profile": null})).await;
        assert_eq!(gone.json["profile"]["firstName"], Value::Null);

        let no_username = client.patch(&path, json!({"username": null})).await;
        no_username.assert_problem(422, "invalid-field");
        assert_eq!(no_username.error_fields(), ["username"]);
    }

    #[tokio::test]
    async fn a_freed_email_can_be_taken_by_another_user() {
        let client = Client::memory();
        let first = client
            .create_user(json!({"username": "a", "contact": {"email": "shared@example.com"}}))
            .await;
        client
            .patch(
                &format!("/v2/users/{first}"),
                json!({"contact": {"email": null}}),
            )
            .await;
        client
            .create_user(json!({"username": "b", "contact": {"email": "shared@example.com"}}))
            .await;
    }

    #[tokio::test]
    async fn etag_and_modified_at_change_on_every_write_but_not_on_a_no_op() {
        let client = Client::memory();
        let id = client.create_user(json!({"username": "v"})).await;
        let path = format!("/v2/users/{id}");
        let created = client.get(&path).await.json;
        let changed = client.patch(&path, json!({"externalKey": "A"})).await;
        assert_ne!(changed.json["etag"], created["etag"]);
        assert_eq!(changed.json["createdAt"], created["createdAt"]);
        let same = client.patch(&path, json!({"externalKey": "A"})).await;
        assert_eq!(same.json["etag"], changed.json["etag"]);
        let empty = client.patch(&path, json!({})).await;
        assert_eq!(empty.json["etag"], changed.json["etag"]);
        let suspended = client.post_empty(&format!("{path}:suspend")).await;
        assert_ne!(suspended.json["etag"], changed.json["etag"]);
        assert_eq!(
            suspended.header("etag"),
            Some(&*format!(
                "\"{}\"",
                suspended.json["etag"].as_str().unwrap()
            ))
        );
    }

    #[tokio::test]
    async fn read_only_and_suspended_fields_cannot_be_patched() {
        let client = Client::memory();
        let id = client.create_user(json!({"username": "r"})).await;
        let path = format!("/v2/users/{id}");
        for (body, field) in [
            (json!({"suspended": true}), "suspended"),
            (json!({"suspended": false}), "suspended"),
            (json!({"id": id}), "id"),
            (json!({"createdAt": "x"}), "createdAt"),
            (json!({"modifiedAt": "x"}), "modifiedAt"),
            (json!({"etag": "x"}), "etag"),
        ] {
            let answer = client.patch(&path, body.clone()).await;
            answer.assert_problem(422, "invalid-field");
            assert_eq!(answer.error_fields(), [field], "{body}");
        }
        assert_eq!(client.get(&path).await.json["suspended"], false);
    }

    #[tokio::test]
    async fn manager_must_be_another_existing_user_and_null_clears_it() {
        let client = Client::memory();
        let boss = client.create_user(json!({"username": "boss"})).await;
        let worker = client
            .create_user(json!({"username": "worker", "manager": {"id": boss}}))
            .await;
        let path = format!("/v2/users/{worker}");
        assert_eq!(client.get(&path).await.json["manager"], json!({"id": boss}));
        let own = client
            .patch(&path, json!({"manager": {"id": worker}}))
            .await;
        own.assert_problem(422, "invalid-field");
        assert_eq!(own.error_fields(), ["manager.id"]);
        let cleared = client.patch(&path, json!({"manager": null})).await;
        assert_eq!(cleared.json["manager"], Value::Null);
    }

    #[tokio::test]
    async fn group_ids_must_all_name_existing_groups() {
        let client = Client::memory();
        let eng = client.create_group(json!({"name": "eng"})).await;
        let ops = client.create_group(json!({"name": "ops"})).await;
        let id = client
            .create_user(json!({"username": "g", "groupIds": [eng]}))
            .await;
        let path = format!("/v2/users/{id}");
        let missing = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b";
        let answer = client
            .patch(&path, json!({"groupIds": [ops, missing, "nope"]}))
            .await;
        answer.assert_problem(422, "invalid-field");
        assert_eq!(answer.error_fields(), ["groupIds[2]"], "shape first");
        let answer = client
            .patch(&path, json!({"groupIds": [ops, missing]}))
            .await;
        answer.assert_problem(422, "invalid-field");
        assert_eq!(answer.error_fields(), ["groupIds[1]"]);
        assert_eq!(
            client.get(&path).await.json["groupIds"],
            json!([eng]),
            "a rejected patch changes nothing"
        );
        let create = client
            .post("/v2/users", json!({"username": "h", "groupIds": [missing]}))
            .await;
        create.assert_problem(422, "invalid-field");
    }

    #[tokio::test]
    async fn group_ids_in_a_merge_patch_replace_the_whole_list() {
        let client = Client::memory();
        let a = client.create_group(json!({"name": "a"})).await;
        let b = client.create_group(json!({"name": "b"})).await;
        let c = client.create_group(json!({"name": "c"})).await;
        let id = client
            .create_user(json!({"username": "g", "groupIds": [a, b]}))
            .await;
        let path = format!("/v2/users/{id}");
        let answer = client.patch(&path, json!({"groupIds": [c, a]})).await;
        assert_eq!(answer.json["groupIds"], json!([c, a]));
        let answer = client.patch(&path, json!({"groupIds": null})).await;
        assert_eq!(answer.json["groupIds"], json!([]));
    }

    #[tokio::test]
    async fn suspend_and_unsuspend_are_idempotent() {
        let client = Client::memory();
        let id = client.create_user(json!({"username": "s"})).await;
        let suspend = format!("/v2/users/{id}:suspend");
        let unsuspend = format!("/v2/users/{id}:unsuspend");

        let first = client.post_empty(&suspend).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.json["suspended"], true);
        let again = client.post_empty(&suspend).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json, first.json, "a second suspend changes nothing");
        assert_eq!(
            client.get(&format!("/v2/users/{id}")).await.json["suspended"],
            true
        );

        let back = client.post_empty(&unsuspend).await;
        assert_eq!(back.json["suspended"], false);
        let again = client.post_empty(&unsuspend).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.json, back.json);

        let encoded = client
            .post_empty(&format!("/v2/users/{id}%3Asuspend"))
            .await;
        assert_eq!(
            encoded.json["suspended"], true,
            "an escaped colon works too"
        );
    }

    #[tokio::test]
    async fn actions_on_missing_users_or_unknown_actions_are_404_and_bare_post_405() {
        let client = Client::memory();
        let id = client.create_user(json!({"username": "s"})).await;
        let missing = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b";
        for path in [
            format!("/v2/users/{missing}:suspend"),
            format!("/v2/users/{id}:archive"),
            "/v2/users/42:suspend".to_owned(),
        ] {
            client
                .post_empty(&path)
                .await
                .assert_problem(404, "not-found");
        }
        client
            .post_empty(&format!("/v2/users/{id}"))
            .await
            .assert_problem(405, "method-not-allowed");
        client
            .get(&format!("/v2/users/{id}:suspend"))
            .await
            .assert_problem(404, "not-found");
    }

    #[tokio::test]
    async fn soft_delete_hides_from_the_list_unless_deleted_true_and_patch_undeletes() {
        let client = Client::memory();
        let kept = client.create_user(json!({"username": "kept"})).await;
        let gone = client
            .create_user(json!({"username": "gone", "contact": {"email": "gone@example.com"}}))
            .await;
        let path = format!("/v2/users/{gone}");

        let answer = client.delete(&path).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert_eq!(answer.json, Value::Null);
        assert_eq!(client.delete(&path).await.status, StatusCode::NO_CONTENT);

        let fetched = client.get(&path).await;
        assert_eq!(fetched.status, StatusCode::OK);
        assert_eq!(fetched.json["deleted"], true);

        assert_eq!(client.get("/v2/users").await.ids(), vec![kept.clone()]);
        assert_eq!(
            client.get("/v2/users?deleted=false").await.ids(),
            vec![kept.clone()]
        );
        assert_eq!(
            client.get("/v2/users?deleted=true").await.ids(),
            vec![gone.clone()]
        );
        assert!(client.get("/v2/users?username=gone").await.ids().is_empty());
        assert_eq!(
            client
                .get("/v2/users?username=gone&deleted=true")
                .await
                .ids(),
            vec![gone.clone()]
        );

        client
            .post("/v2/users", json!({"username": "GONE"}))
            .await
            .assert_problem(409, "username-taken");
        client
            .post(
                "/v2/users",
                json!({"username": "new", "contact": {"email": "gone@example.com"}}),
            )
            .await
            .assert_problem(409, "email-taken");

        let undeleted = client.patch(&path, json!({"deleted": false})).await;
        assert_eq!(undeleted.status, StatusCode::OK);
        assert_eq!(undeleted.json["deleted"], false);
        assert_eq!(client.get("/v2/users").await.ids(), [kept, gone]);
    }
}
