//! Mapping-language features neither reference API uses, checked against a
//! scripted upstream (wiremock) by the exact calls it receives: basic auth,
//! Link-header paging and a member list kept on the group.

use scimgate_test_support as common;

use common::{TOKEN, scim_at as scim};
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn mapping() -> String {
    format!(
        "{}{}{}",
        r#"
[upstream]
name = "styles"
base_url = "http://placeholder"

[upstream.auth]
style = "basic"
username = "svc"
secret = "password"

[users]
id = { field = "id", type = "string" }

[users.list]
method = "GET"
path = "/people"
paging = { style = "link", size_param = "limit", max_page_size = 2 }

[users.get]
method = "GET"
path = "/people/{id}"

[users.create]
method = "POST"
path = "/people"

[users.update]
method = "PATCH"
path = "/people/{id}"
partial = true

[users.delete]
hard = { method = "DELETE", path = "/people/{id}" }

[[users.attributes]]
scim = "userName"
field = "mail"

"#,
        common::TEAMS_GROUPS,
        r#"
[[groups.attributes]]
scim = "displayName"
field = "title"

[groups.members]
style = "group_field"
field = "memberIds"
"#
    )
}

async fn gateway(upstream: &MockServer) -> String {
    let root = common::gateway_for(
        &mapping(),
        *upstream.address(),
        &[("password", "pa55")],
        TOKEN,
        |_| {},
    )
    .await;
    format!("{root}/scim/generic/v2")
}

#[tokio::test]
async fn basic_auth_and_link_paging_read_every_page() {
    let upstream = MockServer::start().await;
    let base = upstream.uri();
    // "svc:pa55" in base64.
    let auth = || header("authorization", "Basic c3ZjOnBhNTU=");
    Mock::given(method("GET"))
        .and(path("/people"))
        .and(query_param("cursor", "p2"))
        .and(auth())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([{"id": "c", "mail": "c@example.com"}])),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("GET")).and(path("/people")).and(query_param("limit", "2")).and(auth())
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", format!("<{base}/people?cursor=p2&limit=2>; rel=\"next\"").as_str())
                .set_body_json(json!([{"id": "a", "mail": "a@example.com"}, {"id": "b", "mail": "b@example.com"}])),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let gateway = gateway(&upstream).await;
    let (status, body) = scim(&gateway, Method::GET, "/Users", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["totalResults"], 3,
        "no total upstream: counted by reading every page"
    );
    let names: Vec<&str> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["userName"].as_str())
        .collect();
    assert_eq!(names, ["a@example.com", "b@example.com", "c@example.com"]);
}

#[tokio::test]
async fn group_field_membership_writes_the_whole_list_on_the_group() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/teams/t1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "t1", "title": "Ops", "memberIds": ["u1"]})),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/teams/t1"))
        .and(body_json(json!({"memberIds": ["u1", "u2"]})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "t1", "title": "Ops", "memberIds": ["u1", "u2"]})),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    // A member added must be a user of this connection: it is read first.
    Mock::given(method("GET"))
        .and(path("/people/u2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "u2", "mail": "u2@example.com"})),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let gateway = gateway(&upstream).await;
    let (status, body) = scim(&gateway, Method::GET, "/Groups/t1", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["members"][0]["value"], "u1");
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": "u2"}]}]});
    let (status, body) = scim(&gateway, Method::PATCH, "/Groups/t1", Some(patch)).await;
    assert_eq!(status, 200, "{body}");
    // The PATCH mock's `expect(1)` is verified when the server drops.
}

const OFFSET_BEARER: &str = include_str!("fixtures/mappings/offset-bearer.toml");

#[tokio::test]
async fn bearer_auth_and_offset_paging_ask_for_exactly_the_window() {
    let upstream = MockServer::start().await;
    let accounts: Vec<Value> = (0..5)
        .map(|n| json!({"uid": format!("a{n}"), "handle": format!("u{n}@example.com")}))
        .collect();
    // startIndex=4&count=2 is the window [3, 5): one call at skip=3.
    Mock::given(method("GET"))
        .and(path("/v1/accounts"))
        .and(query_param("skip", "3"))
        .and(query_param("take", "2"))
        .and(header("authorization", "Bearer up-token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": accounts[3..5], "count": 5})),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let root = common::gateway_for(
        OFFSET_BEARER,
        *upstream.address(),
        &[("token", "up-token")],
        TOKEN,
        |_| {},
    )
    .await;
    let (status, body) = scim(
        &format!("{root}/scim/generic/v2"),
        Method::GET,
        "/Users?startIndex=4&count=2",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalResults"], 5);
    let names: Vec<&str> = body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["userName"].as_str())
        .collect();
    assert_eq!(names, ["u3@example.com", "u4@example.com"]);
}
