//! Integrity, end to end: a connection sees and changes only the users in
//! its approved domains; a restore hands nothing of a former user over; a
//! refused request writes nothing; concurrent changes to one resource are
//! serialised; PATCH attribute names match in any case.

#![allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote, and time what they test"
)]

use scimgate_test_support as common;

use common::{Backend, Harness, Reply, TOKEN, alice, assert_scim_error};
use reqwest::Method;
use scimgate::config::ServerSettings;
use serde_json::{Value, json};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USER_TYPE: &str = "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User";

const ENTRA: &str = "/scim/entra/v2";
const OKTA: &str = "/scim/okta/v2";

fn patch(operations: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

/// The demo's connections, with `okta` approving only example.org.
async fn two_connections(backend: Backend) -> Harness {
    Harness::start_backend(backend, ServerSettings::default(), |config| {
        for connection in &mut config.connections {
            if connection.base_path == OKTA {
                connection.approved_domains = vec!["example.org".into()];
            }
        }
    })
    .await
}

/// A SCIM call on the connection at `base`, with the demo token.
async fn on(h: &Harness, base: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    let headers = [
        ("authorization".to_string(), format!("Bearer {TOKEN}")),
        (
            "content-type".to_string(),
            "application/scim+json".to_string(),
        ),
    ];
    h.send(
        method,
        &format!("{base}{path}"),
        &headers,
        body.map(|b| b.to_string()),
    )
    .await
}

fn id_of(reply: &Reply) -> String {
    assert!(reply.status.is_success(), "{}", reply.body);
    reply.body["id"].as_str().expect("an id").to_string()
}

fn user_at(address: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": address,
        "emails": [{"value": address, "type": "work", "primary": true}]
    })
}

fn group(name: &str, members: &[&str]) -> Value {
    json!({
        "schemas": [GROUP_SCHEMA],
        "displayName": name,
        "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>()
    })
}

async fn user_names(h: &Harness, base: &str, query: &str) -> Vec<String> {
    let listed = on(h, base, Method::GET, &format!("/Users{query}"), None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["userName"].as_str().map(str::to_string))
        .collect()
}

async fn connection_scope(backend: Backend) {
    let h = two_connections(backend).await;
    let alice_id = id_of(&on(&h, ENTRA, Method::POST, "/Users", Some(alice())).await);
    let bob_id = id_of(
        &on(
            &h,
            OKTA,
            Method::POST,
            "/Users",
            Some(user_at("bob@example.org")),
        )
        .await,
    );
    let before = h.upstream_user(&alice_id).await;

    // Reads: alice does not exist for okta.
    let path = format!("/Users/{alice_id}");
    assert_scim_error(&on(&h, OKTA, Method::GET, &path, None).await, 404, None);
    assert_eq!(user_names(&h, OKTA, "").await, ["bob@example.org"]);
    let by_name = "?filter=userName%20eq%20%22alice%40example.com%22";
    assert!(user_names(&h, OKTA, by_name).await.is_empty());
    assert!(user_names(&h, OKTA, "?filter=userName%20co%20%22%40%22").await == ["bob@example.org"]);

    // Writes: nor can okta change, take over or delete her.
    let takeover = patch(json!([
        {"op": "replace", "path": "userName", "value": "mallory@example.org"},
        {"op": "replace", "path": "emails", "value": [{"value": "mallory@example.org", "primary": true}]},
        {"op": "replace", "path": "password", "value": "Pwned-123456"}
    ]));
    assert_scim_error(
        &on(&h, OKTA, Method::PATCH, &path, Some(takeover)).await,
        404,
        None,
    );
    let mut replaced = user_at("mallory@example.org");
    replaced["id"] = json!(alice_id);
    assert_scim_error(
        &on(&h, OKTA, Method::PUT, &path, Some(replaced)).await,
        404,
        None,
    );
    assert_scim_error(&on(&h, OKTA, Method::DELETE, &path, None).await, 404, None);
    assert_eq!(
        h.upstream_user(&alice_id).await,
        before,
        "alice is untouched"
    );
    assert_eq!(
        on(&h, ENTRA, Method::GET, &path, None).await.status,
        200,
        "and still entra's"
    );

    // Groups: okta cannot add her, nor remove her from a group.
    let team = id_of(
        &on(
            &h,
            ENTRA,
            Method::POST,
            "/Groups",
            Some(group("team", &[&alice_id])),
        )
        .await,
    );
    let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": alice_id}]}]));
    let other = id_of(&on(&h, OKTA, Method::POST, "/Groups", Some(group("other", &[]))).await);
    assert_scim_error(
        &on(
            &h,
            OKTA,
            Method::PATCH,
            &format!("/Groups/{other}"),
            Some(add),
        )
        .await,
        400,
        Some("invalidValue"),
    );
    assert_eq!(
        h.upstream_group(&other).await.unwrap()["members"],
        json!([])
    );
    let replace =
        patch(json!([{"op": "replace", "path": "members", "value": [{"value": bob_id}]}]));
    let reply = on(
        &h,
        OKTA,
        Method::PATCH,
        &format!("/Groups/{team}"),
        Some(replace),
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    let mut expected = vec![alice_id.clone(), bob_id.clone()];
    expected.sort();
    assert_eq!(
        h.upstream_group(&team).await.unwrap()["members"],
        json!(expected),
        "okta's replace added bob and left entra's alice in place"
    );
}

#[tokio::test]
async fn a_connection_sees_and_changes_only_users_in_its_approved_domains_on_the_legacy_api() {
    connection_scope(Backend::Legacy).await;
}

#[tokio::test]
async fn a_connection_sees_and_changes_only_users_in_its_approved_domains_on_the_directory_api() {
    connection_scope(Backend::Directory).await;
}

async fn fresh_restore(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let mut first = alice();
    first["password"] = json!("Old-owner-pa55word");
    let id = id_of(&h.scim(Method::POST, "/Users", Some(first)).await);
    let admins = id_of(
        &h.scim(
            Method::POST,
            "/Groups",
            Some(group("finance-admins", &[&id])),
        )
        .await,
    );
    assert_eq!(
        h.upstream_group(&admins).await.unwrap()["members"],
        json!([id])
    );
    assert_eq!(
        h.scim(Method::DELETE, &format!("/Users/{id}"), None)
            .await
            .status,
        204
    );
    // While deleted, she is no one's member.
    let listed = h
        .scim(Method::GET, &format!("/Groups/{admins}"), None)
        .await;
    let listed_members = listed.body["members"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(listed_members.is_empty(), "{}", listed.body);
    assert_eq!(
        h.upstream_group(&admins).await.unwrap()["members"],
        json!([])
    );

    let again = json!({
        "schemas": [USER_SCHEMA],
        "userName": "alice@example.com",
        "externalId": "ext-someone-else"
    });
    let restored = h.scim(Method::POST, "/Users", Some(again)).await;
    assert_eq!(restored.status, 201, "{}", restored.body);
    assert_eq!(restored.body["id"], id.as_str(), "the record is restored");
    for attribute in ["title", "phoneNumbers", "name", "emails"] {
        assert!(
            restored.body.get(attribute).is_none(),
            "{attribute} survived: {}",
            restored.body
        );
    }
    assert_eq!(restored.body[USER_TYPE]["userType"], "Regular");
    let view = h.upstream_user(&id).await.unwrap();
    for field in ["title", "phone", "givenName", "familyName", "department"] {
        assert_eq!(
            view[field],
            Value::Null,
            "{field} survived upstream: {view}"
        );
    }
    assert_eq!(view["externalId"], "ext-someone-else");
    assert_eq!(view["active"], true);
    if backend == Backend::Legacy {
        let raw = h.upstream(&format!("/users/{id}")).await.body;
        assert_eq!(raw["has_password"], false, "the old password is gone");
    }
    assert_eq!(
        h.upstream_group(&admins).await.unwrap()["members"],
        json!([])
    );
}

#[tokio::test]
async fn a_restored_user_looks_freshly_created_and_belongs_to_no_group_on_the_legacy_api() {
    fresh_restore(Backend::Legacy).await;
}

#[tokio::test]
async fn a_restored_user_looks_freshly_created_and_belongs_to_no_group_on_the_directory_api() {
    fresh_restore(Backend::Directory).await;
}

#[tokio::test]
async fn a_deleted_user_outside_the_scope_is_not_restored_by_another_connection() {
    let h = Harness::start_configured(ServerSettings::default(), |config| {
        for connection in &mut config.connections {
            if connection.base_path == OKTA {
                connection.approved_domains = vec!["example.com".into(), "example.org".into()];
            } else {
                connection.approved_domains = vec!["example.com".into()];
            }
        }
    })
    .await;
    // okta's user: userName in example.com, her other address in example.org.
    let mut carol = user_at("carol@example.com");
    carol["emails"] = json!([{"value": "carol@example.org", "primary": true}]);
    let id = id_of(&on(&h, OKTA, Method::POST, "/Users", Some(carol)).await);
    assert_eq!(
        on(&h, OKTA, Method::DELETE, &format!("/Users/{id}"), None)
            .await
            .status,
        204
    );
    let reply = on(
        &h,
        ENTRA,
        Method::POST,
        "/Users",
        Some(user_at("carol@example.com")),
    )
    .await;
    assert_scim_error(&reply, 409, Some("uniqueness"));
    assert_eq!(h.upstream_user(&id).await.unwrap()["deleted"], true);
}

async fn refused_writes_nothing(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let mut bogus = alice();
    bogus[USER_TYPE]["userType"] = json!("Bogus");
    bogus["active"] = json!(false);
    assert_scim_error(
        &h.scim(Method::POST, "/Users", Some(bogus)).await,
        400,
        Some("invalidValue"),
    );
    let found = h
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22alice%40example.com%22",
            None,
        )
        .await;
    assert_eq!(
        found.body["totalResults"], 0,
        "nothing was made: {}",
        found.body
    );
    let id = id_of(&h.scim(Method::POST, "/Users", Some(alice())).await);
    let before = h.upstream_user(&id).await;
    let mixed = patch(json!([
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "replace", "path": "active", "value": false},
        {"op": "replace", "path": format!("{USER_TYPE}:userType"), "value": "Bogus"}
    ]));
    assert_scim_error(
        &h.scim(Method::PATCH, &format!("/Users/{id}"), Some(mixed))
            .await,
        400,
        Some("invalidValue"),
    );
    assert_eq!(h.upstream_user(&id).await, before, "no field was written");
    // A group naming a member that is no user is refused before it is made.
    let reply = h
        .scim(Method::POST, "/Groups", Some(group("ghosts", &["999999"])))
        .await;
    assert_scim_error(&reply, 400, Some("invalidValue"));
    let groups = h
        .scim(
            Method::GET,
            "/Groups?filter=displayName%20eq%20%22ghosts%22",
            None,
        )
        .await;
    assert_eq!(groups.body["totalResults"], 0, "{}", groups.body);
}

#[tokio::test]
async fn a_refused_request_writes_nothing_upstream_on_the_legacy_api() {
    refused_writes_nothing(Backend::Legacy).await;
}

#[tokio::test]
async fn a_refused_request_writes_nothing_upstream_on_the_directory_api() {
    refused_writes_nothing(Backend::Directory).await;
}

#[tokio::test]
async fn removing_a_required_attribute_is_refused_in_the_gateway() {
    let h = Harness::start().await;
    let id = id_of(&h.scim(Method::POST, "/Users", Some(alice())).await);
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(json!([{"op": "remove", "path": "userName"}]))),
        )
        .await;
    assert_scim_error(&reply, 400, Some("invalidValue"));
    assert_eq!(
        h.upstream_user(&id).await.unwrap()["userName"],
        "alice@example.com"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_with_one_if_match_version_let_exactly_one_win() {
    let h = Harness::start().await;
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    let id = id_of(&created);
    let version = created.body["meta"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    // Ten clients at once, each with the version they read.
    let mut attempts = tokio::task::JoinSet::new();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    for n in 0..10 {
        let url = format!("{}/Users/{id}", h.gateway);
        let discovery = format!("{}/ServiceProviderConfig", h.gateway);
        let version = version.clone();
        let start = start.clone();
        attempts.spawn(async move {
            let client = reqwest::Client::new();
            // Connected first, so the ten PATCHes leave together.
            let warm = client
                .get(discovery)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(warm.status(), 200);
            start.wait().await;
            client
                .patch(url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/scim+json")
                .header("if-match", version)
                .body(
                    patch(json!([{"op": "replace", "path": "title", "value": format!("T{n}")}]))
                        .to_string(),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = attempts.join_all().await;
    statuses.sort();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412, 412, 412, 412, 412]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_without_if_match_on_one_replica_all_land_once() {
    // The demo's legacy.toml makes updates conditional: no lock is needed
    // for them, and one replica's own writers still queue, not race.
    let h = Harness::start().await;
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    let id = id_of(&created);
    assert_eq!(created.body["meta"]["version"], "W/\"1\"");
    let mut attempts = tokio::task::JoinSet::new();
    for n in 0..16 {
        let url = format!("{}/Users/{id}", h.gateway);
        attempts.spawn(async move {
            let change =
                patch(json!([{"op": "replace", "path": "title", "value": format!("T{n}")}]));
            reqwest::Client::new()
                .patch(url)
                .bearer_auth(TOKEN)
                .header("content-type", "application/scim+json")
                .body(change.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    assert_eq!(attempts.join_all().await, [200; 16]);
    let read = h.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(read.body["meta"]["version"], "W/\"17\"", "{}", read.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_group_changes_with_membership_kept_on_the_user_lose_nothing() {
    let h = Harness::start_on(Backend::Directory).await;
    let user = id_of(&h.scim(Method::POST, "/Users", Some(alice())).await);
    for round in 0..5 {
        let leaving = id_of(
            &h.scim(
                Method::POST,
                "/Groups",
                Some(group(&format!("a{round}"), &[&user])),
            )
            .await,
        );
        let joining = id_of(
            &h.scim(
                Method::POST,
                "/Groups",
                Some(group(&format!("b{round}"), &[])),
            )
            .await,
        );
        let remove =
            patch(json!([{"op": "remove", "path": format!("members[value eq \"{user}\"]")}]));
        let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": user}]}]));
        let (leaving_path, joining_path) =
            (format!("/Groups/{leaving}"), format!("/Groups/{joining}"));
        let (removed, added) = tokio::join!(
            h.scim(Method::PATCH, &leaving_path, Some(remove)),
            h.scim(Method::PATCH, &joining_path, Some(add)),
        );
        assert!(removed.status.is_success(), "{}", removed.body);
        assert!(added.status.is_success(), "{}", added.body);
        assert_eq!(
            h.upstream_group(&leaving).await.unwrap()["members"],
            json!([])
        );
        assert_eq!(
            h.upstream_group(&joining).await.unwrap()["members"],
            json!([user]),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn membership_patches_match_keys_and_sub_attributes_in_any_case() {
    let h = Harness::start().await;
    let alice_id = id_of(&h.scim(Method::POST, "/Users", Some(alice())).await);
    let bob_id = id_of(
        &h.scim(Method::POST, "/Users", Some(user_at("bob@example.com")))
            .await,
    );
    let team = id_of(
        &h.scim(Method::POST, "/Groups", Some(group("team", &[&alice_id])))
            .await,
    );
    let team_path = format!("/Groups/{team}");
    let members = || async { h.upstream_group(&team).await.unwrap()["members"].clone() };

    let replace = patch(
        json!([{"op": "replace", "path": "members", "value": [{"Value": bob_id}, {"VALUE": alice_id}]}]),
    );
    assert!(
        h.scim(Method::PATCH, &team_path, Some(replace))
            .await
            .status
            .is_success()
    );
    let mut both = vec![alice_id.clone(), bob_id.clone()];
    both.sort();
    assert_eq!(members().await, json!(both));

    let clear = patch(json!([{"op": "replace", "value": {"Members": []}}]));
    assert!(
        h.scim(Method::PATCH, &team_path, Some(clear))
            .await
            .status
            .is_success()
    );
    assert_eq!(
        members().await,
        json!([]),
        "a path-less `Members` key removes"
    );

    let qualified = patch(json!([{"op": "add", "value": {
        "urn:ietf:params:scim:schemas:core:2.0:Group:members": [{"value": bob_id}]
    }}]));
    assert!(
        h.scim(Method::PATCH, &team_path, Some(qualified))
            .await
            .status
            .is_success()
    );
    assert_eq!(members().await, json!([bob_id]), "a URN-qualified key adds");

    let email = patch(
        json!([{"op": "replace", "path": "emails", "value": [{"VALUE": "alice.l@example.com", "Primary": true}]}]),
    );
    let reply = h
        .scim(Method::PATCH, &format!("/Users/{alice_id}"), Some(email))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        h.upstream_user(&alice_id).await.unwrap()["email"],
        "alice.l@example.com"
    );
}

#[tokio::test]
async fn a_create_whose_answer_names_no_id_answers_the_user_found_by_its_user_name() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/people"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"accepted": true})))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/people"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "p-7", "mail": "new@example.com"},
            {"id": "p-8", "mail": "other@example.com"}
        ])))
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/people/p-7"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "p-7", "mail": "new@example.com"})),
        )
        .mount(&upstream)
        .await;
    let mapping = common::people_mapping(
        "[upstream]\nname = \"people\"\nbase_url = \"http://placeholder\"\n",
        "",
    );
    let root = common::gateway_for(&mapping, *upstream.address(), &[], TOKEN, |_| {}).await;
    let reply = reqwest::Client::new()
        .post(format!("{root}/scim/v2/Users"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(json!({"schemas": [USER_SCHEMA], "userName": "new@example.com"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["id"], "p-7", "{body}");
}

#[tokio::test]
async fn a_value_no_call_can_set_is_refused_before_the_create_and_the_update() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people/p-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "p-1", "mail": "p1@example.com", "title": "Old", "kind": "regular"}),
        ))
        .mount(&upstream)
        .await;
    let mapping = common::people_mapping(
        "[upstream]\nname = \"people\"\nbase_url = \"http://placeholder\"\n",
        &format!(
            r#"
[[users.attributes]]
scim = "title"
field = "title"

[[users.attributes]]
scim = "{USER_TYPE}:userType"
field = "kind"
values = [{{ scim = "Regular", upstream = "regular" }}, {{ scim = "External", upstream = "external" }}]
set_by = [
  {{ value = "Regular", call = {{ method = "POST", path = "/people/{{id}}/regular" }} }},
  {{ value = "External", call = {{ method = "POST", path = "/people/{{id}}/external" }} }},
]
"#
        ),
    );
    let root = common::gateway_for(&mapping, *upstream.address(), &[], TOKEN, |_| {}).await;
    let client = reqwest::Client::new();
    let send = |method: Method, path: &str, body: Value| {
        client
            .request(method, format!("{root}/scim/v2{path}"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
    };
    let mut viewer = user_at("v@example.com");
    viewer[USER_TYPE] = json!({"userType": "Viewer"});
    let reply = send(Method::POST, "/Users", viewer).await.unwrap();
    assert_eq!(reply.status(), 400);
    let update = patch(json!([
        {"op": "replace", "path": "title", "value": "New"},
        {"op": "replace", "path": format!("{USER_TYPE}:userType"), "value": "Viewer"}
    ]));
    let reply = send(Method::PATCH, "/Users/p-1", update).await.unwrap();
    assert_eq!(reply.status(), 400);
    let writes: Vec<String> = upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.method.as_str() != "GET")
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    assert!(writes.is_empty(), "the upstream was written: {writes:?}");
}

#[tokio::test]
async fn upstream_error_text_reaches_the_idp_only_for_mapped_business_refusals_and_without_secrets()
{
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const KEY: &str = "k-7c1e2f9a0b3d4e5f";
    let upstream = MockServer::start().await;
    let said = |message: String| json!({"error": {"code": "E42", "message": message}});
    for (id, status, message) in [
        (
            "p-500",
            500,
            "db down: postgres://app:hunter2@db:5432/users".to_string(),
        ),
        ("p-401", 401, format!("key {KEY} is not valid")),
        ("p-418", 418, "teapot internals".to_string()),
        ("p-409", 409, format!("login taken (key {KEY})")),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/people/{id}")))
            .respond_with(ResponseTemplate::new(status).set_body_json(said(message)))
            .mount(&upstream)
            .await;
    }
    let mapping = common::people_mapping(
        r#"
[upstream]
name = "people"
base_url = "http://placeholder"
[upstream.auth]
style = "header"
header = "X-Api-Key"
secret = "api_key"
[errors]
code_pointer = "/error/code"
message_pointer = "/error/message"
[[errors.rules]]
status = 409
scim_status = 409
scim_type = "uniqueness"
"#,
        "",
    );
    let root = common::gateway_for(
        &mapping,
        *upstream.address(),
        &[("api_key", KEY)],
        TOKEN,
        |_| {},
    )
    .await;
    let detail = |id: &'static str| {
        let root = root.clone();
        async move {
            let reply = reqwest::Client::new()
                .get(format!("{root}/scim/v2/Users/{id}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            let body: Value = reply.json().await.unwrap();
            body["detail"].as_str().unwrap_or_default().to_string()
        }
    };
    for id in ["p-500", "p-401", "p-418"] {
        let text = detail(id).await;
        assert!(text.contains("code E42"), "{id}: {text}");
        for leaked in ["hunter2", KEY, "teapot"] {
            assert!(!text.contains(leaked), "{id}: {text}");
        }
    }
    let text = detail("p-409").await;
    assert!(text.contains("login taken (key ****)"), "{text}");
}

#[tokio::test]
async fn an_upstream_retry_after_is_passed_on_at_most_the_configured_bound() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people/u1"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "99999999999"))
        .mount(&upstream)
        .await;
    let mapping = common::people_mapping(
        "[upstream]\nname = \"people\"\nbase_url = \"http://placeholder\"\n",
        "",
    );
    for (bound, expected) in [(None, "300"), (Some(30), "30")] {
        let root = common::gateway_for(&mapping, *upstream.address(), &[], TOKEN, |config| {
            if let Some(bound) = bound {
                config.upstreams[0].budget.max_retry_after_s = bound;
            }
        })
        .await;
        let reply = reqwest::Client::new()
            .get(format!("{root}/scim/v2/Users/u1"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 429);
        assert_eq!(reply.headers()["retry-after"], expected);
    }
}

/// The gateway with `mapping` in front of the legacy API taking duplicate
/// logins: (the gateway's generic base URL, the API's address).
async fn behind_an_api_that_takes_duplicates(mapping: &str) -> (String, std::net::SocketAddr) {
    let upstream = common::legacy_taking_duplicates().await;
    let root = common::gateway_for(
        mapping,
        upstream,
        &[("api_key", common::API_KEY)],
        TOKEN,
        |_| {},
    )
    .await;
    (format!("{root}/scim/generic/v2"), upstream)
}

async fn post_concurrently(base: &str, user: Value, n: usize) -> Vec<u16> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (base, user, start) = (base.to_string(), user.clone(), start.clone());
        attempts.spawn(async move {
            start.wait().await;
            common::scim_request(&base, Method::POST, "/Users", Some(user))
                .await
                .status
                .as_u16()
        });
    }
    let mut statuses = attempts.join_all().await;
    statuses.sort();
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_concurrent_creates_make_one_user_even_where_the_upstream_takes_duplicates() {
    let trusting = scimgate::demo::LEGACY_MAPPING;
    let checking = trusting.replace("unique_user_names = \"upstream\"\n", "");
    assert_ne!(checking, trusting, "legacy.toml declares unique_user_names");

    // Trusted to refuse duplicates, this API does not: two POSTs, two users.
    let (base, upstream) = behind_an_api_that_takes_duplicates(trusting).await;
    for _ in 0..2 {
        let reply = common::scim_request(&base, Method::POST, "/Users", Some(alice())).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    assert_eq!(
        common::legacy_users_with_login(upstream, "alice@example.com").await,
        2
    );

    // With the gateway keeping userNames unique: 24 at once make one user,
    // the others are told it exists (matched case-insensitively).
    let (base, upstream) = behind_an_api_that_takes_duplicates(&checking).await;
    let statuses = post_concurrently(&base, alice(), 24).await;
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 409), "{statuses:?}");
    assert_eq!(
        common::legacy_users_with_login(upstream, "alice@example.com").await,
        1
    );
    let mut shouting = alice();
    shouting["userName"] = json!("ALICE@example.com");
    let again = common::scim_request(&base, Method::POST, "/Users", Some(shouting)).await;
    assert_scim_error(&again, 409, Some("uniqueness"));
    assert_eq!(
        common::legacy_users_with_login(upstream, "alice@example.com").await,
        1
    );
}

/// The `/people` users as `people_mapping` writes them, and as written for
/// an API whose updates are conditional on the record's `rev`.
const UNVERSIONED: &str = "unique_user_names = \"upstream\"\n";
const VERSIONED: &str = "unique_user_names = \"upstream\"\nmeta = { version = \"rev\" }\nupdate_precondition = \"If-Match\"\n";

/// A `/people` API whose records carry `rev` and whose update is
/// conditional on it: `p-1` is read at rev 1 once, then at rev 2 (another
/// writer got in between), and a write at rev 1 is refused with 412.
async fn people_changed_behind_the_first_read() -> (String, wiremock::MockServer) {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    let at = |rev: u32, title: &str| {
        ResponseTemplate::new(200).set_body_json(
            json!({"id": "p-1", "mail": "p1@example.com", "title": title, "rev": rev}),
        )
    };
    Mock::given(method("GET"))
        .and(path("/people/p-1"))
        .respond_with(at(1, "Old"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/people/p-1"))
        .respond_with(at(2, "Other"))
        .mount(&upstream)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/people/p-1"))
        .and(header("if-match", "1"))
        .respond_with(ResponseTemplate::new(412).set_body_json(json!({"error": "stale"})))
        .mount(&upstream)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/people/p-1"))
        .and(header("if-match", "2"))
        .respond_with(at(3, "New"))
        .mount(&upstream)
        .await;
    let mapping = common::people_mapping(
        "[upstream]\nname = \"people\"\nbase_url = \"http://placeholder\"\n",
        "\n[[users.attributes]]\nscim = \"title\"\nfield = \"title\"\n",
    )
    .replacen(UNVERSIONED, VERSIONED, 1);
    let root = common::gateway_for(&mapping, *upstream.address(), &[], TOKEN, |_| {}).await;
    (format!("{root}/scim/v2"), upstream)
}

/// A scripted `/people` API whose `p-1` reads as `record`.
async fn person_p1(record: Value) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people/p-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(record))
        .mount(&upstream)
        .await;
    upstream
}

/// Each call the upstream got: method and the version it was conditional on.
async fn calls_with_versions(upstream: &wiremock::MockServer) -> Vec<String> {
    upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| match r.headers.get("if-match") {
            Some(version) => format!("{} at {}", r.method, version.to_str().unwrap()),
            None => r.method.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn a_conditional_update_that_lost_a_race_is_read_again_and_applied_to_the_newer_record() {
    let (base, upstream) = people_changed_behind_the_first_read().await;
    let change = patch(json!([{"op": "replace", "path": "title", "value": "New"}]));
    let reply = common::scim_request(&base, Method::PATCH, "/Users/p-1", Some(change)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["title"], "New");
    assert_eq!(reply.body["meta"]["version"], "W/\"3\"");
    assert_eq!(
        calls_with_versions(&upstream).await,
        ["GET", "PATCH at 1", "GET", "PATCH at 2"]
    );
}

#[tokio::test]
async fn a_clients_if_match_that_a_conditional_update_finds_gone_answers_412_and_is_not_retried() {
    let (base, upstream) = people_changed_behind_the_first_read().await;
    let change = patch(json!([{"op": "replace", "path": "title", "value": "New"}]));
    let reply = reqwest::Client::new()
        .patch(format!("{base}/Users/p-1"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .header("if-match", "W/\"1\"")
        .body(change.to_string())
        .send()
        .await
        .unwrap();
    let reply = common::read_reply(reply).await;
    assert_scim_error(&reply, 412, None);
    assert_eq!(calls_with_versions(&upstream).await, ["GET", "PATCH at 1"]);
}

#[tokio::test]
async fn a_change_of_more_than_one_conditional_write_is_read_again_under_the_lock() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let upstream =
        person_p1(json!({"id": "p-1", "mail": "p1@example.com", "kind": "regular", "rev": 4}))
            .await;
    Mock::given(method("POST"))
        .and(path("/people/p-1/external"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&upstream)
        .await;
    let mapping = common::people_mapping(
        "[upstream]\nname = \"people\"\nbase_url = \"http://placeholder\"\n",
        &format!(
            r#"
[[users.attributes]]
scim = "{USER_TYPE}:userType"
field = "kind"
values = [{{ scim = "Regular", upstream = "regular" }}, {{ scim = "External", upstream = "external" }}]
set_by = [
  {{ value = "Regular", call = {{ method = "POST", path = "/people/{{id}}/regular" }} }},
  {{ value = "External", call = {{ method = "POST", path = "/people/{{id}}/external" }} }},
]
"#
        ),
    )
    .replacen(UNVERSIONED, VERSIONED, 1);
    let root = common::gateway_for(&mapping, *upstream.address(), &[], TOKEN, |_| {}).await;
    let change = patch(json!([
        {"op": "replace", "path": format!("{USER_TYPE}:userType"), "value": "External"}
    ]));
    let reply = common::scim_request(
        &format!("{root}/scim/v2"),
        Method::PATCH,
        "/Users/p-1",
        Some(change),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The set_by call is no conditional write: the first read, made
    // without the lock, is made again under it before anything is written.
    let calls = calls_with_versions(&upstream).await;
    assert_eq!(calls[..3], ["GET", "GET", "POST"], "{calls:?}");
}

#[tokio::test]
async fn an_upstream_412_to_an_unconditional_update_is_answered_once_and_not_retried() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let upstream =
        person_p1(json!({"id": "p-1", "mail": "p1@example.com", "title": "Old", "rev": 1})).await;
    Mock::given(method("PATCH"))
        .and(path("/people/p-1"))
        .respond_with(ResponseTemplate::new(412).set_body_json(json!({"error": "locked"})))
        .mount(&upstream)
        .await;
    // Versions read, but no update_precondition: the 412 is the upstream's
    // own, not a lost race.
    let mapping = common::people_mapping(
        "[upstream]\nname = \"people\"\nbase_url = \"http://placeholder\"\n",
        "\n[[users.attributes]]\nscim = \"title\"\nfield = \"title\"\n",
    )
    .replacen(
        UNVERSIONED,
        "unique_user_names = \"upstream\"\nmeta = { version = \"rev\" }\n",
        1,
    );
    let root = common::gateway_for(&mapping, *upstream.address(), &[], TOKEN, |_| {}).await;
    let change = patch(json!([{"op": "replace", "path": "title", "value": "New"}]));
    let reply = common::scim_request(
        &format!("{root}/scim/v2"),
        Method::PATCH,
        "/Users/p-1",
        Some(change),
    )
    .await;
    assert_eq!(reply.status, 412, "{}", reply.body);
    assert_eq!(calls_with_versions(&upstream).await, ["GET", "PATCH"]);
}
