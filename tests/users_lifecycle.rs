//! A user's whole life through the gateway, with the upstream's state
//! checked after every step: create → get → filter → PUT → PATCH (with and
//! without path) → deactivate → reactivate → delete → restore.

mod common;

use common::{Harness, assert_scim_error};
use reqwest::Method;
use serde_json::{Value, json};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const USER_TYPE: &str = "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User";

fn alice() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, USER_TYPE],
        "userName": "alice@example.com",
        "externalId": "ext-alice",
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
        "title": "Engineer",
        "active": true,
        ENTERPRISE: {"organization": "Wonderland", "department": "R&D"},
        USER_TYPE: {"userType": "Contributor"}
    })
}

async fn upstream_user(h: &Harness, id: &str) -> Value {
    let reply = h.upstream(&format!("/users/{id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn user_lifecycle_reaches_the_upstream_at_every_step() {
    let h = Harness::start().await;

    // Create.
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(
        created.headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/scim/v2/Users/{id}"))
    );
    assert_eq!(created.body["meta"]["resourceType"], "User");
    assert!(
        created.body["meta"]["version"]
            .as_str()
            .unwrap()
            .starts_with("W/\"")
    );
    let record = upstream_user(&h, &id).await;
    assert_eq!(record["login"], "alice@example.com");
    assert_eq!(record["first_name"], "Alice");
    assert_eq!(record["last_name"], "Liddell");
    assert_eq!(record["email"], "alice@example.com");
    assert_eq!(record["phone"], "+1 555 0100");
    assert_eq!(record["job_title"], "Engineer");
    assert_eq!(record["org"], "Wonderland");
    assert_eq!(record["dept"], "R&D");
    assert_eq!(record["role"], "contributor");
    assert_eq!(record["status"], "enabled");
    assert_eq!(record["external_ref"], "ext-alice");

    // Get.
    let got = h.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["userName"], "alice@example.com");
    assert_eq!(got.body[ENTERPRISE]["department"], "R&D");
    assert_eq!(got.body[USER_TYPE]["userType"], "Contributor");
    assert_eq!(got.body["emails"][0]["value"], "alice@example.com");
    assert!(got.headers.contains_key("etag"));

    // Filter, in another case (userName is caseExact=false).
    let found = h
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22ALICE%40example.com%22",
            None,
        )
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["totalResults"], 1);
    assert_eq!(found.body["Resources"][0]["id"], id.as_str());

    // PUT without phone: the upstream phone stays (product rule).
    let mut put = alice();
    put.as_object_mut().unwrap().remove("phoneNumbers");
    put["title"] = json!("Staff Engineer");
    let replaced = h
        .scim(Method::PUT, &format!("/Users/{id}"), Some(put))
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let record = upstream_user(&h, &id).await;
    assert_eq!(record["job_title"], "Staff Engineer");
    assert_eq!(record["phone"], "+1 555 0100");

    // PATCH with a path.
    let patched = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "name.familyName", "value": "Pleasance"}]
            })),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["name"]["familyName"], "Pleasance");
    assert_eq!(upstream_user(&h, &id).await["last_name"], "Pleasance");

    // PATCH without a path, dotted and URN-qualified keys.
    let patched = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "value": {
                    "name.givenName": "Ally",
                    format!("{ENTERPRISE}:department"): "Research"
                }}]
            })),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let record = upstream_user(&h, &id).await;
    assert_eq!(record["first_name"], "Ally");
    assert_eq!(record["dept"], "Research");

    // PATCH remove clears the upstream field.
    let removed = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "remove", "path": "title"}]
            })),
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(removed.body.get("title").is_none());
    assert_eq!(upstream_user(&h, &id).await["job_title"], Value::Null);

    // Deactivate: still returned by GET and filters.
    let deactivate = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]
    });
    let reply = h
        .scim(Method::PATCH, &format!("/Users/{id}"), Some(deactivate))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["active"], false);
    assert_eq!(upstream_user(&h, &id).await["status"], "disabled");
    assert_eq!(
        h.scim(Method::GET, &format!("/Users/{id}"), None)
            .await
            .body["active"],
        false
    );
    let found = h
        .scim(Method::GET, "/Users?filter=active%20eq%20false", None)
        .await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);

    // Reactivate.
    let reactivate = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": true}}]
    });
    let reply = h
        .scim(Method::PATCH, &format!("/Users/{id}"), Some(reactivate))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(upstream_user(&h, &id).await["status"], "enabled");

    // Delete is soft: the record stays upstream, archived; SCIM says 404.
    let deleted = h.scim(Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(upstream_user(&h, &id).await["status"], "archived");
    assert_scim_error(
        &h.scim(Method::GET, &format!("/Users/{id}"), None).await,
        404,
        None,
    );
    let found = h
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22alice%40example.com%22",
            None,
        )
        .await;
    assert_eq!(found.body["totalResults"], 0, "{}", found.body);
    assert_scim_error(
        &h.scim(Method::DELETE, &format!("/Users/{id}"), None).await,
        404,
        None,
    );

    // Creating the same userName again restores the archived record.
    let restored = h.scim(Method::POST, "/Users", Some(alice())).await;
    assert_eq!(restored.status, 201, "{}", restored.body);
    assert_eq!(restored.body["id"], id.as_str());
    let record = upstream_user(&h, &id).await;
    assert_eq!(record["status"], "enabled");
    assert_eq!(record["first_name"], "Alice");
}

#[tokio::test]
async fn unapproved_domain_is_refused_and_nothing_reaches_upstream() {
    let h = Harness::start().await;
    let mut mallory = alice();
    mallory["userName"] = json!("mallory@evil.example");
    mallory["emails"] = json!([{"value": "mallory@evil.example", "primary": true}]);
    let reply = h.scim(Method::POST, "/Users", Some(mallory)).await;
    assert_scim_error(&reply, 403, None);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );
    let upstream = h.upstream("/users").await;
    assert_eq!(upstream.body, json!([]));

    // Nor can a PATCH move an existing user to an unapproved domain.
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    let id = created.body["id"].as_str().unwrap();
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "alice@evil.example"}]
            })),
        )
        .await;
    assert_scim_error(&reply, 403, None);
    assert_eq!(upstream_user(&h, id).await["email"], "alice@example.com");
}

#[tokio::test]
async fn duplicate_user_name_is_a_uniqueness_error() {
    let h = Harness::start().await;
    assert_eq!(
        h.scim(Method::POST, "/Users", Some(alice())).await.status,
        201
    );
    let reply = h.scim(Method::POST, "/Users", Some(alice())).await;
    assert_scim_error(&reply, 409, Some("uniqueness"));
}

#[tokio::test]
async fn list_pages_with_start_index_and_count() {
    let h = Harness::start().await;
    for n in 0..5 {
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("user{n}@example.com"),
        });
        assert_eq!(h.scim(Method::POST, "/Users", Some(user)).await.status, 201);
    }
    let page = h
        .scim(Method::GET, "/Users?startIndex=2&count=2", None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["totalResults"], 5);
    assert_eq!(page.body["startIndex"], 2);
    assert_eq!(page.body["itemsPerPage"], 2);
    assert_eq!(page.body["Resources"][0]["userName"], "user1@example.com");
    assert_eq!(page.body["Resources"][1]["userName"], "user2@example.com");

    // count=0 gives only the total.
    let total = h.scim(Method::GET, "/Users?count=0", None).await;
    assert_eq!(total.body["totalResults"], 5);
    assert_eq!(total.body["Resources"], json!([]));

    // A filter the upstream cannot answer is evaluated in the gateway.
    let co = h
        .scim(Method::GET, "/Users?filter=userName%20co%20%22er3%22", None)
        .await;
    assert_eq!(co.body["totalResults"], 1, "{}", co.body);
    assert_eq!(co.body["Resources"][0]["userName"], "user3@example.com");

    // attributes= projects; id is always returned.
    let projected = h
        .scim(Method::GET, "/Users?attributes=userName&count=1", None)
        .await;
    let first = &projected.body["Resources"][0];
    assert!(first.get("id").is_some());
    assert!(first.get("userName").is_some());
    assert!(first.get("active").is_none(), "{first}");
}

#[tokio::test]
async fn scan_cap_bounds_filters_the_upstream_cannot_answer() {
    let h = Harness::start_with(scimgate::config::ServerSettings {
        scan_cap: 3,
        ..Default::default()
    })
    .await;
    for n in 0..4 {
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("u{n}@example.com")});
        assert_eq!(h.scim(Method::POST, "/Users", Some(user)).await.status, 201);
    }
    let reply = h.scim(Method::GET, "/Users?filter=title%20pr", None).await;
    assert_scim_error(&reply, 400, Some("tooMany"));
    // Pushed-down filters are not bounded by the cap.
    let reply = h
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22u1%40example.com%22",
            None,
        )
        .await;
    assert_eq!(reply.body["totalResults"], 1);
}

#[tokio::test]
async fn if_match_with_a_stale_version_is_refused() {
    let h = Harness::start().await;
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    let id = created.body["id"].as_str().unwrap();
    let version = created.body["meta"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "CTO"}]
    });
    let ok = h
        .scim_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch.clone()),
            Some(common::TOKEN),
            &[("if-match", &version)],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let stale = h
        .scim_with(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch),
            Some(common::TOKEN),
            &[("if-match", &version)],
        )
        .await;
    assert_scim_error(&stale, 412, None);
}

#[tokio::test]
async fn hard_delete_removes_the_upstream_record_only_where_enabled() {
    let h = Harness::start_configured(Default::default(), |config| {
        config.connections[0].hard_delete = true
    })
    .await;
    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        h.scim(Method::DELETE, &format!("/Users/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(h.upstream(&format!("/users/{id}")).await.status, 404);
    // A new POST creates a new record: there is nothing left to restore.
    let again = h.scim(Method::POST, "/Users", Some(alice())).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_ne!(again.body["id"], id);
}
