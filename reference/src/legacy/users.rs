//! `/api/v1/users`: list, read, create, partial update (PATCH), replace (PUT) and hard
//! delete of users, and the rules a user body must follow.

use axum::extract::State;
use axum::response::Response;

use super::error::ApiError;
use super::extract::{
    IfMatch, JsonObject, Lines, ListQuery, MAX_TEXT, PathIds, QueryPairs, nullable_id,
    nullable_text, one_of, required_text,
};
use super::records::{PasswordChange, Role, Status, UpdateMode, UserFields, UserFilter, UserPatch};
use super::{LegacyApi, created};

/// Fields a client may send.
const WRITABLE: &[&str] = &[
    "login",
    "first_name",
    "last_name",
    "display_name",
    "email",
    "job_title",
    "phone",
    "org",
    "dept",
    "employee_no",
    "manager_id",
    "external_ref",
    "role",
    "status",
    "password",
];

/// Fields the API answers with but never accepts.
const READ_ONLY: &[&str] = &["id", "has_password", "created_at", "updated_at", "version"];

/// Nullable free-text fields, all with the same rule.
const NULLABLE_TEXT: &[&str] = &[
    "first_name",
    "last_name",
    "display_name",
    "job_title",
    "phone",
    "org",
    "dept",
    "employee_no",
    "external_ref",
];

const MAX_PASSWORD: usize = 1024;

/// Reads a user body. `login` must be present when `require_login` (POST, PUT).
fn parse_user(body: &JsonObject, require_login: bool) -> Result<UserPatch, ApiError> {
    body.check_keys(WRITABLE, READ_ONLY)?;
    let mut patch = UserPatch {
        login: body.required_text("login", require_login)?,
        ..UserPatch::default()
    };
    for &name in NULLABLE_TEXT {
        let slot = match name {
            "first_name" => &mut patch.first_name,
            "last_name" => &mut patch.last_name,
            "display_name" => &mut patch.display_name,
            "job_title" => &mut patch.job_title,
            "phone" => &mut patch.phone,
            "org" => &mut patch.org,
            "dept" => &mut patch.dept,
            "employee_no" => &mut patch.employee_no,
            _ => &mut patch.external_ref,
        };
        *slot = body.nullable_text(name, MAX_TEXT, Lines::Single)?;
    }
    if let Some(value) = body.get("email") {
        patch.email = Some(email(value)?);
    }
    if let Some(value) = body.get("manager_id") {
        patch.manager_id = Some(nullable_id("manager_id", value)?);
    }
    if let Some(value) = body.get("role") {
        patch.role = Some(one_of("role", value, Role::NAMES, Role::parse)?);
    }
    if let Some(value) = body.get("status") {
        patch.status = Some(one_of("status", value, Status::NAMES, Status::parse)?);
    }
    if let Some(value) = body.get("password") {
        patch.password = Some(match value {
            serde_json::Value::Null => PasswordChange::Clear,
            _ => {
                required_text("password", value, MAX_PASSWORD, Lines::Single)?;
                PasswordChange::Set
            }
        });
    }
    Ok(patch)
}

/// `null`, or an address with exactly one `@`, something on each side, no whitespace.
fn email(value: &serde_json::Value) -> Result<Option<String>, ApiError> {
    let Some(address) = nullable_text("email", value, MAX_TEXT, Lines::Single)? else {
        return Ok(None);
    };
    let well_formed = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !address.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if !well_formed {
        return Err(ApiError::invalid_field(format!(
            "field `email` must be null or an address with exactly one `@`, got `{address}`"
        )));
    }
    Ok(Some(address))
}

/// Reads `status=enabled,disabled`: a comma-separated allow-list.
fn status_list(text: &str) -> Result<Vec<Status>, ApiError> {
    text.split(',')
        .map(|item| {
            Status::parse(item.trim()).ok_or_else(|| {
                ApiError::invalid_field(format!(
                    "query parameter `status` takes a comma-separated list of: {}; got `{item}`",
                    Status::NAMES.join(", ")
                ))
            })
        })
        .collect()
}

pub(super) async fn list(
    State(api): State<LegacyApi>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let query = ListQuery::parse(query, &["login", "email", "external_ref", "status"])?;
    let filter = UserFilter {
        login: query.filter("login").map(str::to_owned),
        email: query.filter("email").map(str::to_owned),
        external_ref: query.filter("external_ref").map(str::to_owned),
        statuses: query
            .filter("status")
            .map(status_list)
            .transpose()?
            .unwrap_or_default(),
    };
    let page = query.page;
    api.answer_page(move |store| store.list_users(&filter, page))
        .await
}

pub(super) async fn get(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
) -> Result<Response, ApiError> {
    api.answer_json(move |store| store.get_user(id)).await
}

pub(super) async fn create(
    State(api): State<LegacyApi>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let patch = parse_user(&body, true)?;
    // A create is a replace of a blank user; `parse_user` made sure `login` is there.
    let fields = patch.apply(&UserFields::new(String::new()), UpdateMode::Replace);
    let user = api.run(move |store| store.create_user(fields)).await?;
    Ok(created("/api/v1/users", user.id, user))
}

pub(super) async fn patch(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
    IfMatch(expected): IfMatch,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let patch = parse_user(&body, false)?;
    api.answer_json(move |store| store.update_user(id, patch, UpdateMode::Merge, expected))
        .await
}

pub(super) async fn replace(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
    IfMatch(expected): IfMatch,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let patch = parse_user(&body, true)?;
    api.answer_json(move |store| store.update_user(id, patch, UpdateMode::Replace, expected))
        .await
}

pub(super) async fn delete(
    State(api): State<LegacyApi>,
    PathIds([id]): PathIds<1>,
) -> Result<Response, ApiError> {
    api.answer_no_content(move |store| store.delete_user(id))
        .await
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{Client, KEY};
    use http::{Method, StatusCode};
    use serde_json::{Value, json};

    fn is_timestamp(value: &Value) -> bool {
        let text = value.as_str().unwrap_or_default();
        text.len() == 20
            && text.ends_with('Z')
            && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_ok()
    }

    #[tokio::test]
    async fn create_answers_201_with_location_defaults_and_nulls() {
        let client = Client::memory();
        let answer = client
            .post(
                "/api/v1/users",
                json!({"login": "bjensen", "first_name": "Barbara", "password": "hunter2"}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        let id = answer.json["id"].as_i64().unwrap();
        assert_eq!(
            answer.header("location"),
            Some(&*format!("/api/v1/users/{id}"))
        );
        let user = &answer.json;
        assert_eq!(user["login"], "bjensen");
        assert_eq!(user["first_name"], "Barbara");
        assert_eq!(user["last_name"], Value::Null);
        assert_eq!(user["email"], Value::Null);
        assert_eq!(user["manager_id"], Value::Null);
        assert_eq!(user["role"], "member");
        assert_eq!(user["status"], "enabled");
        assert_eq!(user["version"], 1);
        assert_eq!(user["has_password"], true);
        assert!(user.get("password").is_none(), "password is never returned");
        assert!(is_timestamp(&user["created_at"]), "{}", user["created_at"]);
        assert_eq!(user["created_at"], user["updated_at"]);

        let fetched = client.get(&format!("/api/v1/users/{id}")).await;
        assert_eq!(fetched.status, StatusCode::OK);
        assert_eq!(&fetched.json, user);
    }

    #[tokio::test]
    async fn user_fields_come_back_in_a_fixed_order() {
        let client = Client::memory();
        let answer = client
            .post("/api/v1/users", json!({"login": "order"}))
            .await;
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
                "login",
                "first_name",
                "last_name",
                "display_name",
                "email",
                "job_title",
                "phone",
                "org",
                "dept",
                "employee_no",
                "manager_id",
                "external_ref",
                "role",
                "status",
                "has_password",
                "created_at",
                "updated_at",
                "version"
            ]
        );
    }

    #[tokio::test]
    async fn missing_or_non_numeric_user_ids_are_404() {
        let client = Client::memory();
        for path in [
            "/api/v1/users/99",
            "/api/v1/users/abc",
            "/api/v1/users/-1",
            "/api/v1/users/0",
        ] {
            let answer = client.get(path).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(answer.error_code(), "NOT_FOUND");
        }
        let answer = client.patch("/api/v1/users/99", json!({"org": "x"})).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn list_pages_by_id_with_total_count_header() {
        let client = Client::memory();
        let mut ids = Vec::new();
        for n in 0..25 {
            ids.push(
                client
                    .create_user(json!({"login": format!("user{n}")}))
                    .await,
            );
        }
        let first = client.get("/api/v1/users").await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.total(), 25);
        assert_eq!(
            first.column("id"),
            ids[..20].iter().map(|id| json!(id)).collect::<Vec<_>>()
        );

        let second = client.get("/api/v1/users?page=2&per_page=20").await;
        assert_eq!(
            second.column("id"),
            ids[20..].iter().map(|id| json!(id)).collect::<Vec<_>>()
        );
        assert_eq!(second.total(), 25);

        let small = client.get("/api/v1/users?page=3&per_page=2").await;
        assert_eq!(small.column("id"), [json!(ids[4]), json!(ids[5])]);

        let past_end = client.get("/api/v1/users?page=9").await;
        assert_eq!(past_end.json, json!([]));
        assert_eq!(past_end.total(), 25);

        let clamped = client.get("/api/v1/users?per_page=1000").await;
        assert_eq!(clamped.status, StatusCode::OK);
        assert_eq!(clamped.column("id").len(), 25);
    }

    #[tokio::test]
    async fn invalid_paging_or_unknown_query_parameters_are_422() {
        let client = Client::memory();
        for query in [
            "page=0",
            "page=x",
            "per_page=0",
            "per_page=-5",
            "username=bob",
            "status=gone",
        ] {
            let answer = client.get(&format!("/api/v1/users?{query}")).await;
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
            assert_eq!(answer.error_code(), "INVALID_FIELD");
        }
    }

    #[tokio::test]
    async fn login_and_email_search_is_exact_but_case_insensitive() {
        let client = Client::memory();
        let bob = client
            .create_user(json!({"login": "Bob", "email": "Bob@Example.com"}))
            .await;
        client
            .create_user(json!({"login": "bobby", "email": "bobby@example.com"}))
            .await;

        let by_login = client.get("/api/v1/users?login=BOB").await;
        assert_eq!(by_login.column("id"), [json!(bob)]);
        assert_eq!(by_login.total(), 1);

        let by_email = client.get("/api/v1/users?email=bob%40example.COM").await;
        assert_eq!(by_email.column("id"), [json!(bob)]);

        let none = client.get("/api/v1/users?login=bo").await;
        assert_eq!(none.json, json!([]));
        assert_eq!(none.total(), 0);
    }

    #[tokio::test]
    async fn external_ref_search_is_exact() {
        let client = Client::memory();
        let id = client
            .create_user(json!({"login": "x", "external_ref": "HR-1"}))
            .await;
        assert_eq!(
            client
                .get("/api/v1/users?external_ref=HR-1")
                .await
                .column("id"),
            [json!(id)]
        );
        assert_eq!(
            client.get("/api/v1/users?external_ref=hr-1").await.json,
            json!([])
        );
    }

    #[tokio::test]
    async fn status_filter_is_an_allow_list() {
        let client = Client::memory();
        let enabled = client.create_user(json!({"login": "a"})).await;
        let disabled = client
            .create_user(json!({"login": "b", "status": "disabled"}))
            .await;
        let archived = client
            .create_user(json!({"login": "c", "status": "archived"}))
            .await;

        let live = client.get("/api/v1/users?status=enabled,disabled").await;
        assert_eq!(live.column("id"), [json!(enabled), json!(disabled)]);
        assert_eq!(live.total(), 2);
        let gone = client.get("/api/v1/users?status=archived").await;
        assert_eq!(gone.column("id"), [json!(archived)]);
        let all = client.get("/api/v1/users").await;
        assert_eq!(all.total(), 3);
        let combined = client.get("/api/v1/users?status=archived&login=C").await;
        assert_eq!(combined.column("id"), [json!(archived)]);
    }

    #[tokio::test]
    async fn duplicate_login_or_email_is_409_ignoring_case() {
        let client = Client::memory();
        client
            .create_user(json!({"login": "alice", "email": "alice@example.com"}))
            .await;

        let login = client
            .post("/api/v1/users", json!({"login": "ALICE"}))
            .await;
        assert_eq!(login.status, StatusCode::CONFLICT);
        assert_eq!(login.error_code(), "LOGIN_TAKEN");

        let email = client
            .post(
                "/api/v1/users",
                json!({"login": "alice2", "email": "Alice@EXAMPLE.com"}),
            )
            .await;
        assert_eq!(email.status, StatusCode::CONFLICT);
        assert_eq!(email.error_code(), "EMAIL_TAKEN");

        let other = client.create_user(json!({"login": "carol"})).await;
        let patched = client
            .patch(&format!("/api/v1/users/{other}"), json!({"login": "Alice"}))
            .await;
        assert_eq!(patched.error_code(), "LOGIN_TAKEN");
    }

    #[tokio::test]
    async fn many_users_may_have_no_email() {
        let client = Client::memory();
        client
            .create_user(json!({"login": "a", "email": null}))
            .await;
        client.create_user(json!({"login": "b"})).await;
    }

    #[tokio::test]
    async fn unknown_read_only_or_malformed_fields_are_422_naming_the_field() {
        let client = Client::memory();
        let cases = [
            (json!({"login": "x", "userName": "x"}), "userName"),
            (json!({"login": "x", "id": 5}), "id"),
            (json!({"login": "x", "version": 2}), "version"),
            (json!({}), "login"),
            (json!({"login": ""}), "login"),
            (json!({"login": "   "}), "login"),
            (json!({"login": 5}), "login"),
            (json!({"login": "a\u{0}b"}), "login"),
            (json!({"login": "x".repeat(256)}), "login"),
            (json!({"login": "x", "email": "no-at-sign"}), "email"),
            (json!({"login": "x", "email": "two@@example.com"}), "email"),
            (json!({"login": "x", "email": "a@b@c"}), "email"),
            (json!({"login": "x", "email": "@example.com"}), "email"),
            (json!({"login": "x", "role": "admin"}), "role"),
            (json!({"login": "x", "role": null}), "role"),
            (json!({"login": "x", "status": "deleted"}), "status"),
            (json!({"login": "x", "manager_id": "7"}), "manager_id"),
            (json!({"login": "x", "manager_id": 1.5}), "manager_id"),
            (json!({"login": "x", "manager_id": 999}), "manager_id"),
            (json!({"login": "x", "first_name": 3}), "first_name"),
            (json!({"login": "x", "password": ""}), "password"),
        ];
        for (body, field) in cases {
            let answer = client.post("/api/v1/users", body.clone()).await;
            assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(answer.error_code(), "INVALID_FIELD", "{body}");
            let message = answer.json["error"]["message"].as_str().unwrap();
            assert!(message.contains(field), "{body}: {message}");
        }
        assert_eq!(
            client.get("/api/v1/users").await.total(),
            0,
            "nothing was created"
        );
    }

    #[tokio::test]
    async fn malformed_json_is_400_bad_json() {
        let client = Client::memory();
        for body in [
            &b"{\"login\": "[..],
            b"not json",
            b"",
            b"[1,2]",
            b"\"login\"",
            b"\xff\xfe",
        ] {
            let answer = client
                .send_raw(
                    Method::POST,
                    "/api/v1/users",
                    Some(body.to_vec()),
                    Some(KEY),
                )
                .await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body:?}");
            assert_eq!(answer.error_code(), "BAD_JSON");
        }
    }

    #[tokio::test]
    async fn oversized_bodies_are_413_json() {
        let client = Client::memory();
        let body = format!("{{\"login\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
        let answer = client
            .send_raw(
                Method::POST,
                "/api/v1/users",
                Some(body.into_bytes()),
                Some(KEY),
            )
            .await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer.error_code(), "BODY_TOO_LARGE");
    }

    #[tokio::test]
    async fn a_write_with_if_match_lands_only_on_that_version() {
        let client = Client::memory();
        let id = client
            .create_user(json!({"login": "ifm", "email": "ifm@example.com", "role": "viewer"}))
            .await;
        let path = format!("/api/v1/users/{id}");
        let landed = client
            .send_if_match(Method::PATCH, &path, json!({"job_title": "A"}), "1")
            .await;
        assert_eq!(landed.status, StatusCode::OK, "{}", landed.json);
        assert_eq!(landed.json["version"], 2);
        // The same version again is stale now, for PATCH and PUT alike, and
        // even for a write that would change nothing.
        for (method, body) in [
            (Method::PATCH, json!({"job_title": "B"})),
            (
                Method::PUT,
                json!({"login": "ifm", "email": "ifm@example.com", "role": "viewer"}),
            ),
            (Method::PATCH, json!({"job_title": "A"})),
        ] {
            let stale = client.send_if_match(method, &path, body, "\"1\"").await;
            assert_eq!(
                stale.status,
                StatusCode::PRECONDITION_FAILED,
                "{}",
                stale.json
            );
            assert_eq!(stale.error_code(), "VERSION_MISMATCH");
        }
        assert_eq!(client.get(&path).await.json["job_title"], "A");
        let any = client
            .send_if_match(Method::PATCH, &path, json!({"job_title": "C"}), "*")
            .await;
        assert_eq!(any.status, StatusCode::OK);
        let bad = client
            .send_if_match(Method::PATCH, &path, json!({"job_title": "D"}), "soon")
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(client.get(&path).await.json["job_title"], "C");
    }

    #[tokio::test]
    async fn patch_changes_only_the_fields_present_and_null_clears() {
        let client = Client::memory();
        let id = client
            .create_user(json!({
                "login": "pat", "first_name": "Pat", "last_name": "Doe",
                "email": "pat@example.com", "role": "viewer", "password": "pw"
            }))
            .await;
        let answer = client
            .patch(
                &format!("/api/v1/users/{id}"),
                json!({"last_name": null, "job_title": "Chef"}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        let user = &answer.json;
        assert_eq!(user["first_name"], "Pat");
        assert_eq!(user["last_name"], Value::Null);
        assert_eq!(user["job_title"], "Chef");
        assert_eq!(user["email"], "pat@example.com");
        assert_eq!(user["role"], "viewer");
        assert_eq!(user["has_password"], true);
        assert_eq!(user["version"], 2);
    }

    #[tokio::test]
    async fn put_replaces_absent_fields_with_null_or_default_but_keeps_the_password() {
        let client = Client::memory();
        let id = client
            .create_user(json!({
                "login": "rep", "first_name": "Re", "org": "Acme",
                "role": "viewer", "status": "disabled", "password": "pw"
            }))
            .await;
        let answer = client
            .put(
                &format!("/api/v1/users/{id}"),
                json!({"login": "rep2", "dept": "Ops"}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        let user = &answer.json;
        assert_eq!(user["login"], "rep2");
        assert_eq!(user["first_name"], Value::Null);
        assert_eq!(user["org"], Value::Null);
        assert_eq!(user["dept"], "Ops");
        assert_eq!(user["role"], "member");
        assert_eq!(user["status"], "enabled");
        assert_eq!(user["has_password"], true);
        assert_eq!(user["version"], 2);

        let cleared = client
            .put(
                &format!("/api/v1/users/{id}"),
                json!({"login": "rep2", "password": null}),
            )
            .await;
        assert_eq!(cleared.json["has_password"], false);

        let no_login = client
            .put(&format!("/api/v1/users/{id}"), json!({"dept": "Ops"}))
            .await;
        assert_eq!(no_login.status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[tokio::test]
    async fn version_bumps_on_each_change_and_not_on_a_no_op() {
        let client = Client::memory();
        let id = client.create_user(json!({"login": "v", "org": "A"})).await;
        let path = format!("/api/v1/users/{id}");
        assert_eq!(
            client.patch(&path, json!({"org": "B"})).await.json["version"],
            2
        );
        assert_eq!(
            client.patch(&path, json!({"org": "B"})).await.json["version"],
            2
        );
        assert_eq!(client.patch(&path, json!({})).await.json["version"], 2);
        assert_eq!(
            client
                .put(&path, json!({"login": "v", "org": "B"}))
                .await
                .json["version"],
            2
        );
        assert_eq!(
            client.patch(&path, json!({"password": "x"})).await.json["version"],
            3
        );
        assert_eq!(
            client.patch(&path, json!({"password": "x"})).await.json["version"],
            4
        );
        assert_eq!(client.get(&path).await.json["version"], 4);
    }

    #[tokio::test]
    async fn a_user_cannot_manage_themselves_but_can_have_a_manager() {
        let client = Client::memory();
        let boss = client.create_user(json!({"login": "boss"})).await;
        let worker = client
            .create_user(json!({"login": "worker", "manager_id": boss}))
            .await;
        let own = client
            .patch(
                &format!("/api/v1/users/{worker}"),
                json!({"manager_id": worker}),
            )
            .await;
        assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            client.get(&format!("/api/v1/users/{worker}")).await.json["manager_id"],
            boss
        );
    }

    #[tokio::test]
    async fn deleting_a_manager_clears_and_versions_their_reports() {
        let client = Client::memory();
        let boss = client.create_user(json!({"login": "boss"})).await;
        let worker = client
            .create_user(json!({"login": "worker", "manager_id": boss}))
            .await;
        assert_eq!(
            client.delete(&format!("/api/v1/users/{boss}")).await.status,
            StatusCode::NO_CONTENT
        );
        let report = client.get(&format!("/api/v1/users/{worker}")).await;
        assert_eq!(report.json["manager_id"], Value::Null);
        assert_eq!(report.json["version"], 2);
    }

    #[tokio::test]
    async fn delete_is_hard_and_204_then_404() {
        let client = Client::memory();
        let id = client.create_user(json!({"login": "gone"})).await;
        let path = format!("/api/v1/users/{id}");
        let answer = client.delete(&path).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert_eq!(answer.json, Value::Null);
        assert_eq!(client.get(&path).await.status, StatusCode::NOT_FOUND);
        assert_eq!(client.delete(&path).await.status, StatusCode::NOT_FOUND);
        // The login is free again: nothing was kept.
        client.create_user(json!({"login": "gone"})).await;
    }
}
