//! What only the second reference API exercises: OAuth2 tokens fetched once
//! and refreshed, RFC 7807 errors as SCIM errors, a composed displayName and
//! a list attribute.

use scimgate_test_support as common;

use common::{Backend, Harness, assert_scim_error};
use reqwest::Method;
use serde_json::json;

fn user(name: &str) -> Option<serde_json::Value> {
    Some(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{name}@example.com"),
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "phoneNumbers": [{"value": "+44 1", "type": "work"}, {"value": "+44 2", "type": "mobile"}]
    }))
}

#[tokio::test]
async fn one_token_serves_many_requests() {
    let h = Harness::start_on(Backend::Directory).await;
    let directory = h.directory.clone().unwrap();
    let before = directory.tokens_issued();
    for n in 0..10 {
        assert_eq!(
            h.scim(Method::POST, "/Users", user(&format!("u{n}")))
                .await
                .status,
            201
        );
        assert_eq!(
            h.scim(Method::GET, "/Users?count=5", None).await.status,
            200
        );
    }
    assert_eq!(
        directory.tokens_issued() - before,
        1,
        "the gateway caches its upstream token"
    );
}

#[tokio::test]
async fn a_revoked_token_is_replaced_without_failing_the_request() {
    let h = Harness::start_on(Backend::Directory).await;
    let directory = h.directory.clone().unwrap();
    assert_eq!(
        h.scim(Method::POST, "/Users", user("before")).await.status,
        201
    );
    let before = directory.tokens_issued();
    directory.revoke_tokens();
    let reply = h.scim(Method::POST, "/Users", user("after")).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(directory.tokens_issued() - before, 1);
    // And exactly one user was created: the refused attempt did not land.
    let listed = h
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22after%40example.com%22",
            None,
        )
        .await;
    assert_eq!(listed.body["totalResults"], 1);
}

#[tokio::test]
async fn upstream_problem_json_becomes_a_scim_error() {
    let h = Harness::start_on(Backend::Directory).await;
    assert_eq!(
        h.scim(Method::POST, "/Users", user("ada")).await.status,
        201
    );
    let duplicate = h.scim(Method::POST, "/Users", user("ada")).await;
    assert_scim_error(&duplicate, 409, Some("uniqueness"));
    let detail = duplicate.body["detail"].as_str().unwrap();
    assert!(detail.contains("username-taken"), "{detail}");
}

#[tokio::test]
async fn display_name_is_composed_and_phones_map_as_a_list() {
    let h = Harness::start_on(Backend::Directory).await;
    let created = h.scim(Method::POST, "/Users", user("ada")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["displayName"], "Ada Lovelace");
    assert_eq!(
        created.body["phoneNumbers"],
        json!([{"value": "+44 1", "type": "work"}, {"value": "+44 2", "type": "mobile"}])
    );
    let id = created.body["id"].as_str().unwrap();
    let raw = h.upstream(&format!("/users/{id}")).await.body;
    assert_eq!(
        raw["contact"]["phones"],
        json!([{"number": "+44 1", "label": "work"}, {"number": "+44 2", "label": "mobile"}])
    );
    // displayName is read-only here: sending one changes nothing upstream.
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "name.givenName", "value": "Augusta"}]}),
            ),
        )
        .await;
    assert_eq!(reply.body["displayName"], "Augusta Lovelace");
}
