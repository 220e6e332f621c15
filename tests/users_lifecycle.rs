//! A user's whole life through the gateway, with the upstream's state
//! checked after every step: create → get → filter → PUT → PATCH (with and
//! without path) → deactivate → reactivate → delete → restore.

use scimgate_test_support as common;

use common::{Harness, alice, assert_scim_error};
use reqwest::Method;
use serde_json::{Value, json};

async fn upstream_user(h: &Harness, id: &str) -> Value {
    let reply = h.upstream(&format!("/users/{id}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
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

#[tokio::test]
async fn display_name_is_stored_through_create_put_and_patch() {
    let h = Harness::start().await;
    let mut user = alice();
    user["displayName"] = json!("Alice L.");
    let created = h.scim(Method::POST, "/Users", Some(user.clone())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["displayName"], "Alice L.");
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(upstream_user(&h, &id).await["display_name"], "Alice L.");

    // What a strict probe does: PUT a new one, read it back.
    user["displayName"] = json!("Alice Liddell");
    let replaced = h
        .scim(Method::PUT, &format!("/Users/{id}"), Some(user))
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let read = h.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(read.body["displayName"], "Alice Liddell");

    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "A. Liddell"}]});
    let patched = h
        .scim(Method::PATCH, &format!("/Users/{id}"), Some(patch))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["displayName"], "A. Liddell");
    assert_eq!(upstream_user(&h, &id).await["display_name"], "A. Liddell");
}
