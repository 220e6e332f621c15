//! How a connection's dialect is chosen and what it changes, end to end:
//! `auto` picks by User-Agent; a named dialect shapes requests and answers.

use scimgate_test_support as common;

use common::Harness;
use reqwest::Method;
use serde_json::{Value, json};

fn headers(user_agent: Option<&str>) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "authorization".to_string(),
            format!("Bearer {}", common::TOKEN),
        ),
        (
            "content-type".to_string(),
            "application/scim+json".to_string(),
        ),
    ];
    if let Some(agent) = user_agent {
        headers.push(("user-agent".to_string(), agent.to_string()));
    }
    headers
}

/// `body` as JSON to `path`, with the test token and `user_agent`.
async fn send_json(
    h: &Harness,
    method: Method,
    path: &str,
    user_agent: Option<&str>,
    body: &Value,
) -> common::Reply {
    h.send(method, path, &headers(user_agent), Some(body.to_string()))
        .await
}

async fn new_group(h: &Harness, base: &str) -> String {
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("g{base}")});
    let reply = send_json(h, Method::POST, &format!("{base}/Groups"), None, &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn auto_connection_answers_okta_as_okta_and_others_as_generic_answers() {
    let h = Harness::start().await;
    let id = new_group(&h, "/scim/v2").await;
    let rename = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"id": id, "displayName": "renamed"}}]});
    let okta = send_json(
        &h,
        Method::PATCH,
        &format!("/scim/v2/Groups/{id}"),
        Some("Okta SCIM Client 1.0.0"),
        &rename,
    )
    .await;
    assert_eq!(okta.status, 204, "okta dialect: {}", okta.body);
    let generic = send_json(
        &h,
        Method::PATCH,
        &format!("/scim/v2/Groups/{id}"),
        Some("curl/8"),
        &rename,
    )
    .await;
    assert_eq!(generic.status, 200, "generic dialect: {}", generic.body);
    assert_eq!(generic.body["displayName"], "renamed");
}

#[tokio::test]
async fn entra_add_where_replace_is_meant_deactivates_with_a_string_boolean() {
    let h = Harness::start().await;
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ann@example.com", "active": "True"});
    let created = send_json(&h, Method::POST, "/scim/entra/v2/Users", None, &user).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "active", "value": "False"}]});
    let reply = send_json(
        &h,
        Method::PATCH,
        &format!("/scim/entra/v2/Users/{id}?aadOptscim062020"),
        None,
        &patch,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["active"], false);
    assert_eq!(
        h.upstream(&format!("/users/{id}")).await.body["status"],
        "disabled"
    );
    // The generic dialect refuses the same string boolean with a SCIM error.
    let generic = send_json(
        &h,
        Method::PATCH,
        &format!("/scim/generic/v2/Users/{id}"),
        None,
        &patch,
    )
    .await;
    assert_eq!(generic.status, 400, "{}", generic.body);
    assert_eq!(generic.body["scimType"], "invalidValue");
}

#[tokio::test]
async fn onelogin_answers_json_even_for_errors() {
    let h = Harness::start().await;
    let reply = h
        .send(
            Method::GET,
            "/scim/onelogin/v2/Users/999",
            &headers(None),
            None,
        )
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.headers["content-type"], "application/json");
    let unauthorised = h
        .send(Method::GET, "/scim/onelogin/v2/Users", &[], None)
        .await;
    assert_eq!(unauthorised.status, 401);
    assert_eq!(unauthorised.headers["content-type"], "application/json");
    assert_eq!(unauthorised.body["status"], Value::from("401"));
}

#[tokio::test]
async fn on_auto_an_unknown_user_agent_gets_every_unambiguous_rule_and_generic_stays_strict() {
    let h = Harness::start().await;
    let newcomer = Some("NewIdP-Provisioning/2.0");
    // OneLogin's single object for a list, Entra's string boolean.
    let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "nia@example.com", "active": "True",
        "emails": {"value": "nia@example.com", "primary": true}});
    let created = send_json(&h, Method::POST, "/scim/v2/Users", newcomer, &user).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["emails"][0]["value"], "nia@example.com");
    let id = created.body["id"].as_str().unwrap();
    let off = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let reply = send_json(
        &h,
        Method::PATCH,
        &format!("/scim/v2/Users/{id}"),
        newcomer,
        &off,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["active"], false);
    assert_eq!(
        h.upstream(&format!("/users/{id}")).await.body["status"],
        "disabled"
    );
    // The same requests on a generic connection are refused as RFC 7644 has it.
    let strict = send_json(&h, Method::POST, "/scim/generic/v2/Users", newcomer, &user).await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    let strict = send_json(
        &h,
        Method::PATCH,
        &format!("/scim/generic/v2/Users/{id}"),
        newcomer,
        &off,
    )
    .await;
    assert_eq!(strict.status, 400, "{}", strict.body);
}
