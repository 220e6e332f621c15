//! The mapping language against an envelope API, end to end: records inside
//! `{"kind", "data": [...]}` (single ones too), a create that answers an
//! invitation naming the new user's id, fields inside arrays by position and
//! by key, and bodies sent as forms (a parameter holding JSON) or as query
//! parameters. Each test asserts the exact upstream requests.

use scimgate_test_support as common;

use common::{TOKEN, scim_at as scim};
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const USER_TYPE: &str = "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User";

/// An envelope API whose update call sends its body as `encoding`.
fn envelope_mapping(encoding: &str) -> String {
    format!(
        r#"
[upstream]
name = "envelope"
base_url = "http://placeholder"

[users]
id = {{ field = "id", type = "string" }}
# The scripted upstream answers only the calls each test expects.
unique_user_names = "upstream"

[users.list]
method = "GET"
path = "/contacts"
items = "/data"

[users.get]
method = "GET"
path = "/contacts/{{id}}"
record = "/data/0"

[users.create]
method = "POST"
path = "/invitations"
encoding = "form"
id = "/data/0/userId"

[users.update]
method = "PUT"
path = "/contacts/{{id}}"
encoding = "{encoding}"
partial = true
record = "/data/0"

[users.delete]
hard = {{ method = "DELETE", path = "/contacts/{{id}}" }}

[[users.attributes]]
scim = "userName"
field = "profiles[0].email"

[[users.attributes]]
scim = "name.givenName"
field = "firstName"

[[users.attributes]]
scim = "{ENTERPRISE}:department"
field = 'metadata[key eq "department"].value'

# One SCIM value onto two upstream fields, and back.
[[users.attributes]]
scim = "{USER_TYPE}:userType"
default = "Regular"
values = [
  {{ scim = "Regular", upstream = {{ "profiles[0].role" = "User", "profiles[0].external" = false }} }},
  {{ scim = "External", upstream = {{ "profiles[0].role" = "User", "profiles[0].external" = true }} }},
  {{ scim = "Collaborator", upstream = {{ "profiles[0].role" = "Collaborator" }} }},
]
"#
    )
}

fn contact(department: &str) -> Value {
    json!({
        "id": "KUAAAAAA",
        "firstName": "Alice",
        "profiles": [{"accountId": "IEAAAAAA", "email": "alice@example.com", "role": "User", "external": false}],
        "metadata": [{"key": "department", "value": department}, {"key": "floor", "value": "3"}]
    })
}

fn envelope(kind: &str, record: Value) -> Value {
    json!({"kind": kind, "data": [record]})
}

async fn gateway(upstream: &MockServer, encoding: &str) -> String {
    let root = common::gateway_for(
        &envelope_mapping(encoding),
        *upstream.address(),
        &[],
        TOKEN,
        |_| {},
    )
    .await;
    format!("{root}/scim/v2")
}

/// The form (or query) parameters of a request, JSON-valued ones parsed.
fn parameters(pairs: &str) -> Value {
    let mut fields = serde_json::Map::new();
    for (key, value) in form_urlencoded::parse(pairs.as_bytes()) {
        let value = serde_json::from_str(&value).unwrap_or(Value::String(value.into_owned()));
        fields.insert(key.into_owned(), value);
    }
    Value::Object(fields)
}

async fn writes(upstream: &MockServer) -> Vec<wiremock::Request> {
    upstream
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() != "GET")
        .collect()
}

#[tokio::test]
async fn a_create_answered_by_an_invitation_reads_the_user_back_from_its_envelope() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/invitations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(
            "invitations",
            json!({"id": "INV1", "email": "alice@example.com", "userId": "KUAAAAAA"}),
        )))
        .expect(1)
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/contacts/KUAAAAAA"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(envelope("contacts", contact("R&D"))),
        )
        .mount(&upstream)
        .await;
    let base = gateway(&upstream, "form").await;
    let (status, body) = scim(
        &base,
        Method::POST,
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": "alice@example.com",
            "name": {"givenName": "Alice"},
            ENTERPRISE: {"department": "R&D"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], "KUAAAAAA");
    assert_eq!(body[ENTERPRISE]["department"], "R&D");
    let sent = writes(&upstream).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        parameters(std::str::from_utf8(&sent[0].body).unwrap()),
        json!({
            "profiles": [{"email": "alice@example.com", "role": "User", "external": false}],
            "firstName": "Alice",
            "metadata": [{"key": "department", "value": "R&D"}]
        })
    );
    // And a read finds the record inside its envelope.
    let (status, body) = scim(&base, Method::GET, "/Users/KUAAAAAA", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["userName"], "alice@example.com");
    let (status, body) = scim(&base, Method::GET, "/Users/KUAAAAAA", None).await;
    assert_eq!(
        (status, body["name"]["givenName"].clone()),
        (200, json!("Alice"))
    );
}

#[tokio::test]
async fn changing_one_key_of_a_key_value_list_sends_the_whole_list_with_the_others_kept() {
    for encoding in ["form", "query", "json"] {
        let upstream = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/contacts/KUAAAAAA"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(envelope("contacts", contact("R&D"))),
            )
            .mount(&upstream)
            .await;
        Mock::given(method("PUT"))
            .and(path("/contacts/KUAAAAAA"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(envelope("contacts", contact("Ops"))),
            )
            .expect(1)
            .mount(&upstream)
            .await;
        let base = gateway(&upstream, encoding).await;
        let (status, body) = scim(
            &base,
            Method::PATCH,
            "/Users/KUAAAAAA",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Ops"}]
            })),
        )
        .await;
        assert_eq!(status, 200, "{encoding}: {body}");
        assert_eq!(body[ENTERPRISE]["department"], "Ops", "{encoding}");
        let sent = writes(&upstream).await;
        assert_eq!(sent.len(), 1, "{encoding}");
        let carried = match encoding {
            "form" => parameters(std::str::from_utf8(&sent[0].body).unwrap()),
            "query" => {
                assert!(sent[0].body.is_empty(), "query: no body");
                parameters(sent[0].url.query().unwrap_or_default())
            }
            _ => serde_json::from_slice(&sent[0].body).unwrap(),
        };
        assert_eq!(
            carried,
            json!({"metadata": [{"key": "department", "value": "Ops"}, {"key": "floor", "value": "3"}]}),
            "{encoding}"
        );
    }
}

#[tokio::test]
async fn an_answer_without_the_declared_record_names_the_call_and_its_shape() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/KUAAAAAA"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"kind": "contacts", "data": []})),
        )
        .mount(&upstream)
        .await;
    let base = gateway(&upstream, "form").await;
    let (status, body) = scim(&base, Method::GET, "/Users/KUAAAAAA", None).await;
    assert_eq!(status, 502, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("users.get: the answer has no record at `/data/0`; it held {\"kind\": a string, \"data\": []}"),
        "{detail}"
    );
}

#[tokio::test]
async fn one_user_type_maps_onto_two_fields_and_a_read_matches_on_all_of_them() {
    let upstream = MockServer::start().await;
    let mut collaborator = contact("R&D");
    collaborator["profiles"][0]["role"] = json!("Collaborator");
    collaborator["profiles"][0]["external"] = json!(true);
    Mock::given(method("GET"))
        .and(path("/contacts/KUAAAAAA"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope("contacts", collaborator)))
        .mount(&upstream)
        .await;
    Mock::given(method("PUT"))
        .and(path("/contacts/KUAAAAAA"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(envelope("contacts", contact("R&D"))),
        )
        .mount(&upstream)
        .await;
    let base = gateway(&upstream, "json").await;
    let (_, body) = scim(&base, Method::GET, "/Users/KUAAAAAA", None).await;
    assert_eq!(body[USER_TYPE]["userType"], "Collaborator", "{body}");

    let to = |user_type: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": format!("{USER_TYPE}:userType"), "value": user_type}]
        })
    };
    let (status, body) = scim(&base, Method::PATCH, "/Users/KUAAAAAA", Some(to("Viewer"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        writes(&upstream).await.is_empty(),
        "a refused value writes nothing"
    );

    let (status, body) = scim(&base, Method::PATCH, "/Users/KUAAAAAA", Some(to("Regular"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[USER_TYPE]["userType"], "Regular", "{body}");
    let sent = writes(&upstream).await;
    let carried: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        carried["profiles"],
        json!([{"accountId": "IEAAAAAA", "email": "alice@example.com", "role": "User", "external": false}]),
        "both fields written, the element's others kept"
    );
    upstream.reset().await;
    Mock::given(method("GET"))
        .and(path("/contacts/KUAAAAAA"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(envelope("contacts", contact("R&D"))),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(envelope("contacts", contact("R&D"))),
        )
        .mount(&upstream)
        .await;
    let (status, body) = scim(
        &base,
        Method::PATCH,
        "/Users/KUAAAAAA",
        Some(to("Collaborator")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sent = writes(&upstream).await;
    let carried: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        carried["profiles"][0],
        json!({"accountId": "IEAAAAAA", "email": "alice@example.com", "role": "Collaborator", "external": null}),
        "a field the new value does not name is cleared, not left as it was"
    );
}

/// Contact fields by one call, account fields by another; the create is an
/// invitation carrying only what invitations take; groups change by
/// `addMembers`/`removeMembers` arrays of bare ids.
const SPLIT: &str = include_str!("fixtures/mappings/split.toml");

fn active_contact() -> Value {
    let mut record = contact("R&D");
    record["profiles"][0]["active"] = json!(true);
    record["title"] = json!("Engineer");
    record
}

async fn split_gateway(upstream: &MockServer) -> String {
    let root = common::gateway_for(SPLIT, *upstream.address(), &[], TOKEN, |_| {}).await;
    format!("{root}/scim/v2")
}

/// Each write as `METHOD path` and its parameters.
async fn sent_forms(upstream: &MockServer) -> Vec<(String, Value)> {
    writes(upstream)
        .await
        .iter()
        .map(|r| {
            (
                format!("{} {}", r.method, r.url.path()),
                parameters(std::str::from_utf8(&r.body).unwrap()),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_create_carries_only_its_fields_and_the_update_calls_write_the_rest() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/invitations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(
            "invitations",
            json!({"id": "INV1", "userId": "KUAAAAAA"}),
        )))
        .mount(&upstream)
        .await;
    let mut invited = active_contact();
    invited["metadata"] = json!([]);
    invited.as_object_mut().unwrap().remove("title");
    Mock::given(method("GET"))
        .and(path("/contacts/KUAAAAAA"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope("contacts", invited)))
        .mount(&upstream)
        .await;
    Mock::given(method("PUT"))
        .and(path("/contacts/KUAAAAAA"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(envelope("contacts", active_contact())),
        )
        .mount(&upstream)
        .await;
    let base = split_gateway(&upstream).await;
    let (status, body) = scim(
        &base,
        Method::POST,
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": "alice@example.com",
            "name": {"givenName": "Alice"},
            "title": "Engineer",
            "active": true,
            ENTERPRISE: {"department": "R&D"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        sent_forms(&upstream).await,
        [
            (
                "POST /invitations".to_string(),
                json!({"email": "alice@example.com", "firstName": "Alice"})
            ),
            (
                "PUT /contacts/KUAAAAAA".to_string(),
                json!({"title": "Engineer", "metadata": [{"key": "department", "value": "R&D"}]})
            ),
        ],
        "active is already true: the account call is not sent"
    );
}

#[tokio::test]
async fn an_update_sends_only_the_calls_whose_fields_changed() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/contacts/KUAAAAAA"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(envelope("contacts", active_contact())),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("PUT"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(envelope("contacts", active_contact())),
        )
        .mount(&upstream)
        .await;
    let base = split_gateway(&upstream).await;
    let patch = |operations: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations});
    let (status, body) = scim(
        &base,
        Method::PATCH,
        "/Users/KUAAAAAA",
        Some(patch(
            json!([{"op": "replace", "path": "active", "value": false}]),
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sent_forms(&upstream).await,
        [("PUT /users/KUAAAAAA".to_string(), json!({"active": false}))]
    );
    upstream.reset().await;
    Mock::given(method("GET"))
        .and(path("/contacts/KUAAAAAA"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(envelope("contacts", active_contact())),
        )
        .mount(&upstream)
        .await;
    let (status, body) = scim(
        &base,
        Method::PATCH,
        "/Users/KUAAAAAA",
        Some(patch(
            json!([{"op": "replace", "path": "userName", "value": "new@example.com"}]),
        )),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["scimType"], "mutability", "{body}");
    assert!(writes(&upstream).await.is_empty());
}

#[tokio::test]
async fn group_members_change_by_arrays_of_bare_ids() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/groups/G1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(
            "groups",
            json!({"id": "G1", "title": "Ops", "memberIds": ["KUAAAAAA"]}),
        )))
        .mount(&upstream)
        .await;
    for id in ["KUAAAAAA", "KUAAAAAB"] {
        let mut member = active_contact();
        member["id"] = json!(id);
        Mock::given(method("GET"))
            .and(path(format!("/contacts/{id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(envelope("contacts", member)))
            .mount(&upstream)
            .await;
    }
    Mock::given(method("PUT"))
        .and(path("/groups/G1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(
            "groups",
            json!({"id": "G1", "title": "Ops", "memberIds": ["KUAAAAAB"]}),
        )))
        .mount(&upstream)
        .await;
    let base = split_gateway(&upstream).await;
    let (status, body) = scim(&base, Method::GET, "/Groups/G1", None).await;
    assert_eq!(
        (status, body["members"][0]["value"].clone()),
        (200, json!("KUAAAAAA"))
    );
    let (status, body) = scim(
        &base,
        Method::PATCH,
        "/Groups/G1",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": "KUAAAAAB"}]},
                {"op": "remove", "path": "members[value eq \"KUAAAAAA\"]"}
            ]}),
        ),
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    assert_eq!(
        sent_forms(&upstream).await,
        [
            (
                "PUT /groups/G1".to_string(),
                json!({"addMembers": ["KUAAAAAB"]})
            ),
            (
                "PUT /groups/G1".to_string(),
                json!({"removeMembers": ["KUAAAAAA"]})
            ),
        ]
    );
}

/// A flat JSON API that answers unset fields as "" (its phone as "n/a") and
/// needs an email on every user.
const ABSENT: &str = include_str!("fixtures/mappings/absent.toml");

fn person() -> Value {
    json!({"id": "P1", "login": "alice@example.com", "email": "alice.l@example.com", "title": "", "phone": "n/a"})
}

#[tokio::test]
async fn absent_values_read_as_no_value_clear_as_declared_and_fallbacks_fill_a_missing_email() {
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/people/P1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(person()))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(person()))
        .mount(&upstream)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(person()))
        .mount(&upstream)
        .await;
    let root = common::gateway_for(ABSENT, *upstream.address(), &[], TOKEN, |_| {}).await;
    let base = format!("{root}/scim/v2");

    // "" (the mapping's) and "n/a" (the phone's own) are no value.
    let (status, body) = scim(&base, Method::GET, "/Users/P1", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("title").is_none(), "{body}");
    assert!(body.get("phoneNumbers").is_none(), "{body}");
    assert_eq!(body["emails"][0]["value"], "alice.l@example.com");

    // Without an email, the userName is sent as the email; with one, it.
    for (emails, sent_email) in [
        (None, "bob@example.com"),
        (
            Some(json!([{"value": "bob.b@example.com", "primary": true}])),
            "bob.b@example.com",
        ),
    ] {
        let mut user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bob@example.com"
        });
        if let Some(emails) = emails {
            user["emails"] = emails;
        }
        let (status, body) = scim(&base, Method::POST, "/Users", Some(user)).await;
        assert_eq!(status, 201, "{body}");
        let sent = writes(&upstream).await;
        let body: Value = serde_json::from_slice(&sent.last().unwrap().body).unwrap();
        assert_eq!(
            body,
            json!({"login": "bob@example.com", "email": sent_email})
        );
    }

    // A removed title is cleared with "", a removed phone with "n/a", and a
    // removed email falls back to the userName.
    upstream.reset().await;
    let mut full = person();
    full["title"] = json!("Engineer");
    full["phone"] = json!("+1 555 0100");
    Mock::given(method("GET"))
        .and(path("/people/P1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(full))
        .mount(&upstream)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(person()))
        .mount(&upstream)
        .await;
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "remove", "path": "title"},
        {"op": "remove", "path": "phoneNumbers"},
        {"op": "remove", "path": "emails"}
    ]});
    let (status, body) = scim(&base, Method::PATCH, "/Users/P1", Some(patch)).await;
    assert_eq!(status, 200, "{body}");
    let sent = writes(&upstream).await;
    assert_eq!(sent.len(), 1);
    let body: Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({"title": "", "phone": "n/a", "email": "alice@example.com"})
    );
}
