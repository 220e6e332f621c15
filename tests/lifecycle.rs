//! One test body, two mappings: the same user and group lifecycles run
//! against the reference legacy API and the differently shaped directory
//! API, checking the upstream's state (through one normalised view) after
//! every step.

use scimgate_test_support as common;

use common::{Backend, Harness, alice, assert_scim_error};
use reqwest::Method;
use serde_json::{Value, json};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const USER_TYPE: &str = "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User";

fn patch(operations: Value) -> Option<Value> {
    Some(
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}),
    )
}

async fn user_view(h: &Harness, id: &str) -> Value {
    h.upstream_user(id)
        .await
        .unwrap_or_else(|| panic!("user {id} is gone upstream"))
}

async fn user_lifecycle(backend: Backend) {
    let h = Harness::start_on(backend).await;

    let created = h.scim(Method::POST, "/Users", Some(alice())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert!(
        created.headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/scim/v2/Users/{id}"))
    );
    // Versions (and so ETags) where the upstream keeps them; Wrike does not.
    let versioned = backend != Backend::Wrike;
    assert_eq!(
        created.body["meta"]["version"].as_str().is_some(),
        versioned
    );
    let view = user_view(&h, &id).await;
    let expected = json!({
        "userName": "alice@example.com", "givenName": "Alice", "familyName": "Liddell",
        "email": "alice@example.com", "phone": "+1 555 0100", "title": "Engineer",
        "department": "R&D", "organization": "Wonderland", "externalId": "ext-alice",
        "userType": "Contributor", "active": true, "deleted": false
    });
    assert_eq!(view, expected, "{backend:?}");

    let got = h.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body[ENTERPRISE]["department"], "R&D");
    assert_eq!(got.body[USER_TYPE]["userType"], "Contributor");
    assert_eq!(got.headers.contains_key("etag"), versioned);
    if versioned {
        // The ETag is the version the body carries (RFC 7644 §3.14).
        assert_eq!(
            got.headers["etag"].to_str().unwrap(),
            got.body["meta"]["version"].as_str().unwrap()
        );
    }

    let found = h
        .scim(
            Method::GET,
            "/Users?filter=userName%20eq%20%22ALICE%40example.com%22",
            None,
        )
        .await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);
    assert_eq!(found.body["Resources"][0]["id"], id.as_str());

    // PUT without phone: the upstream phone stays.
    let mut put = alice();
    put.as_object_mut().unwrap().remove("phoneNumbers");
    put["title"] = json!("Staff Engineer");
    let replaced = h
        .scim(Method::PUT, &format!("/Users/{id}"), Some(put))
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    let view = user_view(&h, &id).await;
    assert_eq!(
        (view["title"].as_str(), view["phone"].as_str()),
        (Some("Staff Engineer"), Some("+1 555 0100"))
    );

    // PATCH with and without a path.
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "replace", "path": "name.familyName", "value": "Pleasance"}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(user_view(&h, &id).await["familyName"], "Pleasance");
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "replace", "value": {"name.givenName": "Ally", format!("{ENTERPRISE}:department"): "Research"}}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let view = user_view(&h, &id).await;
    assert_eq!(
        (view["givenName"].as_str(), view["department"].as_str()),
        (Some("Ally"), Some("Research"))
    );

    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "remove", "path": "title"}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let view = user_view(&h, &id).await;
    assert_eq!(view["title"], Value::Null);
    // Only the title: the fields beside it upstream stay.
    assert_eq!(
        (view["givenName"].as_str(), view["department"].as_str()),
        (Some("Ally"), Some("Research")),
        "{backend:?}: {view}"
    );
    // A cleared field is no value for SCIM (Wrike answers it as ""), so a
    // phone removed and then added as Entra does (by type) is the one kept.
    let got = h.scim(Method::GET, &format!("/Users/{id}"), None).await;
    assert!(got.body.get("title").is_none(), "{backend:?}: {}", got.body);
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "remove", "path": "phoneNumbers"}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.get("phoneNumbers").is_none(),
        "{backend:?}: {}",
        reply.body
    );
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0199"}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        user_view(&h, &id).await["phone"],
        "+1 555 0199",
        "{backend:?}"
    );

    // Deactivate: still returned by GET and filters; reactivate.
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["active"], false);
    assert_eq!(user_view(&h, &id).await["active"], false);
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
    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Users/{id}"),
            patch(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(user_view(&h, &id).await["active"], true);

    // Delete is soft; the same userName restores the record.
    assert_eq!(
        h.scim(Method::DELETE, &format!("/Users/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(user_view(&h, &id).await["deleted"], true);
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
    let restored = h.scim(Method::POST, "/Users", Some(alice())).await;
    assert_eq!(restored.status, 201, "{}", restored.body);
    assert_eq!(restored.body["id"], id.as_str());
    let view = user_view(&h, &id).await;
    assert_eq!(
        (
            view["deleted"].as_bool(),
            view["active"].as_bool(),
            view["givenName"].as_str()
        ),
        (Some(false), Some(true), Some("Alice"))
    );

    // Created inactive: the deactivation reaches the upstream too.
    let mut bob = alice();
    bob["userName"] = json!("bob@example.com");
    bob["emails"] = json!([{"value": "bob@example.com", "primary": true}]);
    bob["externalId"] = json!("ext-bob");
    bob["active"] = json!(false);
    let created = h.scim(Method::POST, "/Users", Some(bob)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["active"], false);
    assert_eq!(
        user_view(&h, created.body["id"].as_str().unwrap()).await["active"],
        false
    );
}

async fn group_lifecycle(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let mut ids = Vec::new();
    for name in ["carol", "dave"] {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{name}@example.com")});
        let reply = h.scim(Method::POST, "/Users", Some(body)).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        ids.push(reply.body["id"].as_str().unwrap().to_string());
    }
    let (carol, dave) = (ids[0].clone(), ids[1].clone());
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    let created = h
        .scim(
            Method::POST,
            "/Groups",
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "members": [{"value": carol}]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(created.body["members"][0]["value"], carol.as_str());
    assert_eq!(
        h.upstream_group(&id).await.unwrap(),
        json!({"name": "Engineering", "members": [carol]})
    );

    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Groups/{id}"),
            patch(json!([{"op": "replace", "path": "displayName", "value": "R&D"}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(h.upstream_group(&id).await.unwrap()["name"], "R&D");

    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Groups/{id}"),
            patch(json!([{"op": "add", "path": "members", "value": [{"value": dave}]}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        h.upstream_group(&id).await.unwrap()["members"],
        json!(sorted(vec![carol.clone(), dave.clone()]))
    );

    let reply = h
        .scim(
            Method::PATCH,
            &format!("/Groups/{id}"),
            patch(json!([{"op": "remove", "path": format!("members[value eq \"{carol}\"]")}])),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        h.upstream_group(&id).await.unwrap()["members"],
        json!([dave])
    );

    let got = h
        .scim(
            Method::GET,
            &format!("/Groups/{id}?excludedAttributes=members"),
            None,
        )
        .await;
    assert!(got.body.get("members").is_none(), "{}", got.body);
    let got = h.scim(Method::GET, &format!("/Groups/{id}"), None).await;
    assert_eq!(got.body["members"][0]["value"], dave.as_str());
    if backend == Backend::Wrike {
        // Bare member ids: no display name without a read per member.
        assert!(got.body["members"][0].get("display").is_none());
    } else {
        assert_eq!(got.body["members"][0]["display"], "dave@example.com");
    }
    let found = h
        .scim(
            Method::GET,
            "/Groups?filter=displayName%20eq%20%22R%26D%22",
            None,
        )
        .await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);

    let put = h
        .scim(
            Method::PUT,
            &format!("/Groups/{id}"),
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "R&D", "members": [{"value": carol}]})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(
        h.upstream_group(&id).await.unwrap()["members"],
        json!([carol])
    );

    assert_eq!(
        h.scim(Method::DELETE, &format!("/Groups/{id}"), None)
            .await
            .status,
        204
    );
    assert_eq!(h.upstream_group(&id).await, None);
    assert_scim_error(
        &h.scim(Method::GET, &format!("/Groups/{id}"), None).await,
        404,
        None,
    );
}

async fn paging_and_filters(backend: Backend) {
    let h = Harness::start_on(backend).await;
    for n in 0..7 {
        let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("user{n}@example.com")});
        assert_eq!(h.scim(Method::POST, "/Users", Some(user)).await.status, 201);
    }
    let page = h
        .scim(Method::GET, "/Users?startIndex=3&count=2", None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["totalResults"], 7, "{}", page.body);
    assert_eq!(page.body["Resources"][0]["userName"], "user2@example.com");
    assert_eq!(page.body["Resources"][1]["userName"], "user3@example.com");
    let total = h.scim(Method::GET, "/Users?count=0", None).await;
    assert_eq!(total.body["totalResults"], 7);
    let co = h
        .scim(Method::GET, "/Users?filter=userName%20co%20%22er5%22", None)
        .await;
    assert_eq!(co.body["totalResults"], 1, "{}", co.body);

    // Users in the default set are written from trees lent by their
    // records; a projection (of an attribute no mapping reads) makes them
    // values first. Both answer the same text, keys in the same order.
    let id = page.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let user = format!("/Users/{id}");
    for path in [
        "/Users?startIndex=3&count=2",
        "/Users?filter=userName%20co%20%22er%22",
        user.as_str(),
    ] {
        let lent = h.scim(Method::GET, path, None).await;
        let separator = if path.contains('?') { '&' } else { '?' };
        let copied = h
            .scim(
                Method::GET,
                &format!("{path}{separator}excludedAttributes=nickName"),
                None,
            )
            .await;
        assert_eq!(lent.status, 200, "{path}: {}", lent.body);
        assert_eq!(lent.body.to_string(), copied.body.to_string(), "{path}");
        // The text itself is compact JSON, from its first byte to its last.
        #[allow(
            clippy::disallowed_methods,
            reason = "a page of two users the test wrote"
        )]
        let text = reqwest::Client::new()
            .get(format!("{}{path}", h.gateway))
            .bearer_auth(common::TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, lent.body.to_string(), "{path}");
        assert_eq!(
            lent.headers.get("etag"),
            copied.headers.get("etag"),
            "{path}"
        );
    }
    // The ETag is the record's, even when `meta` is left out of the body.
    let whole = h.scim(Method::GET, &user, None).await;
    let without_meta = h
        .scim(
            Method::GET,
            &format!("{user}?excludedAttributes=meta"),
            None,
        )
        .await;
    assert!(
        without_meta.body.get("meta").is_none(),
        "{}",
        without_meta.body
    );
    assert_eq!(whole.headers.get("etag"), without_meta.headers.get("etag"));
}

#[tokio::test]
async fn user_lifecycle_on_the_legacy_api() {
    user_lifecycle(Backend::Legacy).await;
}

#[tokio::test]
async fn user_lifecycle_on_the_directory_api() {
    user_lifecycle(Backend::Directory).await;
}

#[tokio::test]
async fn group_lifecycle_on_the_legacy_api() {
    group_lifecycle(Backend::Legacy).await;
}

#[tokio::test]
async fn group_lifecycle_on_the_directory_api() {
    group_lifecycle(Backend::Directory).await;
}

#[tokio::test]
async fn paging_and_filters_on_the_legacy_api() {
    paging_and_filters(Backend::Legacy).await;
}

#[tokio::test]
async fn paging_and_filters_on_the_directory_api() {
    paging_and_filters(Backend::Directory).await;
}

#[tokio::test]
async fn user_lifecycle_on_the_wrike_api() {
    user_lifecycle(Backend::Wrike).await;
}

#[tokio::test]
async fn group_lifecycle_on_the_wrike_api() {
    group_lifecycle(Backend::Wrike).await;
}

#[tokio::test]
async fn paging_and_filters_on_the_wrike_api() {
    paging_and_filters(Backend::Wrike).await;
}
