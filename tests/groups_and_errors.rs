//! Groups through the gateway (create → rename → add/remove members →
//! delete, with the upstream's teams checked), discovery, and the SCIM error
//! body every failure takes.

use scimgate_test_support as common;

use common::{Harness, assert_scim_error};
use reqwest::Method;
use serde_json::{Value, json};

async fn user(h: &Harness, name: &str) -> String {
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{name}@example.com")});
    let reply = h.scim(Method::POST, "/Users", Some(body)).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_string()
}

fn patch(operations: Value) -> Option<Value> {
    Some(
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}),
    )
}

#[tokio::test]
async fn every_scim_route_requires_the_connection_token() {
    let h = Harness::start().await;
    for token in [None, Some("wrong")] {
        let reply = h.scim_with(Method::GET, "/Users", None, token, &[]).await;
        assert_scim_error(&reply, 401, None);
        assert!(
            reply.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    let reply = h
        .scim_with(
            Method::GET,
            "/ServiceProviderConfig",
            None,
            Some("wrong"),
            &[],
        )
        .await;
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn malformed_requests_get_scim_errors() {
    let h = Harness::start().await;
    assert_scim_error(
        &h.scim_raw(Method::POST, "/Users", "{not json", "application/scim+json")
            .await,
        400,
        Some("invalidSyntax"),
    );
    assert_scim_error(
        &h.scim_raw(Method::POST, "/Users", "{}", "text/plain").await,
        415,
        None,
    );
    assert_scim_error(
        &h.scim(Method::GET, "/Users?filter=userName%20zz%20%22a%22", None)
            .await,
        400,
        Some("invalidFilter"),
    );
    assert_scim_error(
        &h.scim(Method::GET, "/Users/not-a-number", None).await,
        404,
        None,
    );
    assert_scim_error(&h.scim(Method::GET, "/Nope", None).await, 404, None);
    let wrong_type = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x@example.com", "active": "maybe"});
    assert_scim_error(
        &h.scim(Method::POST, "/Users", Some(wrong_type)).await,
        400,
        Some("invalidValue"),
    );
    let bad_user_type = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "x@example.com",
        "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User": {"userType": "Boss"}
    });
    let reply = h.scim(Method::POST, "/Users", Some(bad_user_type)).await;
    assert_scim_error(&reply, 400, Some("invalidValue"));
    assert!(
        reply.body["detail"].as_str().unwrap().contains("Regular"),
        "{}",
        reply.body
    );
    // application/json is accepted as well.
    let plain = h
        .scim_raw(Method::POST, "/Users", r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"j@example.com"}"#, "application/json")
        .await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    // The gateway still serves.
    assert_eq!(h.scim(Method::GET, "/Users", None).await.status, 200);
}

#[tokio::test]
async fn search_by_post_matches_the_get_query() {
    let h = Harness::start().await;
    user(&h, "dora").await;
    user(&h, "dan").await;
    let reply = h
        .scim(
            Method::POST,
            "/Users/.search",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "userName sw \"dor\"",
                "attributes": ["userName"]
            })),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["totalResults"], 1);
    assert_eq!(reply.body["Resources"][0]["userName"], "dora@example.com");
    assert!(reply.body["Resources"][0].get("meta").is_none());
    let root = h
        .scim(
            Method::POST,
            "/.search",
            Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})),
        )
        .await;
    assert_scim_error(&root, 501, None);
}

#[tokio::test]
async fn removing_the_user_type_sets_it_back_to_regular() {
    let h = Harness::start().await;
    let id = user(&h, "erin").await;
    let ext = "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User";
    let set = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "replace", "path": format!("{ext}:userType"), "value": "Viewer"}])),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(
        h.upstream(&format!("/users/{id}")).await.body["role"],
        "viewer"
    );
    let removed = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "remove", "path": format!("{ext}:userType")}])),
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(
        h.upstream(&format!("/users/{id}")).await.body["role"],
        "member"
    );
    assert_eq!(removed.body[ext]["userType"], "Regular");
}

#[tokio::test]
async fn group_external_id_is_stored_and_found() {
    let h = Harness::start().await;
    let created = h
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops", "externalId": "aad-obj-1"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        h.upstream(&format!("/teams/{id}")).await.body["external_ref"],
        "aad-obj-1"
    );
    let found = h
        .scim(
            Method::GET,
            "/Groups?filter=externalId%20eq%20%22aad-obj-1%22",
            None,
        )
        .await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);
}

#[tokio::test]
async fn attribute_names_are_case_insensitive() {
    let h = Harness::start().await;
    let reply = h
        .scim(
            Method::POST,
            "/Users",
            Some(json!({"SCHEMAS": ["urn:ietf:params:scim:schemas:core:2.0:User"], "USERNAME": "fred@example.com", "Name": {"GIVENNAME": "Fred"}})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap();
    assert_eq!(
        h.upstream(&format!("/users/{id}")).await.body["first_name"],
        "Fred"
    );
    let found = h
        .scim(
            Method::GET,
            "/Users?filter=NAME.givenname%20EQ%20%22fred%22&ATTRIBUTES=NAME.GIVENNAME",
            None,
        )
        .await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);
    assert_eq!(found.body["Resources"][0]["name"]["givenName"], "Fred");
}

#[tokio::test]
async fn user_type_defaults_to_regular() {
    let h = Harness::start().await;
    let id = user(&h, "carol").await;
    assert_eq!(
        h.upstream(&format!("/users/{id}")).await.body["role"],
        "member"
    );
    let got = h.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(
        got.body["urn:ietf:params:scim:schemas:extension:scimgate:2.0:User"]["userType"],
        "Regular"
    );
}

#[tokio::test]
async fn discovery_tells_what_is_supported() {
    let h = Harness::start().await;
    let spc = h.scim(Method::GET, "/ServiceProviderConfig", None).await;
    assert_eq!(spc.status, 200);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["bulk"]["supported"], false);
    assert_eq!(spc.body["sort"]["supported"], false);
    assert_eq!(spc.body["etag"]["supported"], true);
    let types = h.scim(Method::GET, "/ResourceTypes", None).await;
    assert_eq!(types.body["totalResults"], 2);
    let schemas = h.scim(Method::GET, "/Schemas", None).await;
    let ids: Vec<&str> = schemas.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:User"),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"urn:ietf:params:scim:schemas:extension:scimgate:2.0:User"),
        "{ids:?}"
    );
    let user = h
        .scim(
            Method::GET,
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            None,
        )
        .await;
    assert_eq!(user.status, 200);
    assert!(
        user.body["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "userName")
    );
}
