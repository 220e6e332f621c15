//! Look-ups against an upstream that cannot filter (issue 15): the
//! Wrike-shaped API lists every contact in one unfilterable answer, so
//! without the look-up index an IdP's `userName eq …` scans it, and past
//! `scan_cap` (10,000) fails. With `[users.index]` each look-up is one read
//! by id, correct after the gateway's own writes and, once the index has
//! read the list again, after changes made upstream behind its back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scimgate_test_support as common;

use common::{TOKEN, WRIKE_TOKEN};
use reqwest::Method;
use scimgate::config::{GatewayConfig, Secret, ServerSettings};
use scimgate_reference::wrike::{Database, WrikeApi, WrikeConfig};
use serde_json::{Value, json};

/// Past the scan cap, so a scan could not answer at all.
const USERS: usize = 20_000;

struct Account {
    /// The gateway's SCIM base URL.
    base: String,
    root: String,
    /// The Wrike API's own base, for changes behind the gateway's back.
    upstream: String,
    /// Requests the upstream has answered.
    calls: Arc<AtomicUsize>,
    /// Of them, the writes to a group.
    group_writes: Arc<AtomicUsize>,
}

/// A gateway in front of a Wrike account of `users` users, its indexes
/// read in full; `refresh_seconds` replaces the shipped interval.
async fn account(users: usize, refresh_seconds: Option<u64>) -> Account {
    let api = WrikeApi::open(WrikeConfig {
        token: WRIKE_TOKEN.into(),
        account_id: "IEAAAAAA".into(),
        database: Database::Memory,
    })
    .unwrap();
    api.seed_contacts(users, "example.com").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let group_writes = Arc::new(AtomicUsize::new(0));
    let (counted, counted_writes) = (calls.clone(), group_writes.clone());
    let router = api.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            counted.fetch_add(1, Ordering::Relaxed);
            if request.method() == Method::PUT
                && request.uri().path().starts_with("/api/v4/groups/")
            {
                counted_writes.fetch_add(1, Ordering::Relaxed);
            }
            next.run(request)
        },
    ));
    let upstream = common::serve(router).await;
    let config = gateway(upstream, refresh_seconds);
    let address = common::serve(scimgate::server::router(&config).unwrap()).await;
    let account = Account {
        base: format!("http://{address}/scim/v2"),
        root: format!("http://{address}"),
        upstream: format!("http://{upstream}/api/v4"),
        calls,
        group_writes,
    };
    account.wait_until_indexed().await;
    account
}

fn gateway(upstream: SocketAddr, refresh_seconds: Option<u64>) -> GatewayConfig {
    let shipped = std::fs::read_to_string("mappings/upstream/wrike.toml").unwrap();
    let text = match refresh_seconds {
        Some(seconds) => shipped.replacen(
            "refresh_seconds = 900",
            &format!("refresh_seconds = {seconds}"),
            1,
        ),
        None => shipped,
    };
    let source = scimgate::diagnostics::SourceFile::new("wrike.toml", &text);
    let mut report = scimgate::diagnostics::Report::default();
    let mapping =
        scimgate::mapping::compile(&source, &mut report).unwrap_or_else(|| panic!("{report}"));
    let secrets = [("token".to_string(), Secret::new(WRIKE_TOKEN))]
        .into_iter()
        .collect();
    scimgate::demo::config_for(
        mapping,
        upstream,
        secrets,
        TOKEN,
        &["example.com".to_string()],
        ServerSettings::default(),
    )
    .unwrap()
}

fn filter(text: &str) -> String {
    format!(
        "/Users?filter={}",
        form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
    )
}

impl Account {
    async fn wait_until_indexed(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ready =
                common::read_reply(reqwest::get(format!("{}/readyz", self.root)).await.unwrap())
                    .await
                    .body;
            let users = &ready["lookup_indexes"]["wrike"]["User"];
            if users.as_str().is_some_and(|s| s.starts_with("ready")) {
                return;
            }
            assert!(
                users.as_str().is_some_and(|s| s.starts_with("building")),
                "{ready}"
            );
            assert!(tokio::time::Instant::now() < deadline, "{ready}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The ids a look-up answers, and how many upstream calls it made.
    async fn look_up(&self, text: &str) -> (Vec<String>, usize) {
        let before = self.calls.load(Ordering::Relaxed);
        let reply = common::scim_request(&self.base, Method::GET, &filter(text), None).await;
        let made = self.calls.load(Ordering::Relaxed) - before;
        assert_eq!(reply.status, 200, "{text}: {}", reply.body);
        let ids: Vec<String> = reply.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(reply.body["totalResults"], ids.len(), "{}", reply.body);
        (ids, made)
    }

    /// A call on the Wrike API itself, as another tool of the customer's would.
    async fn upstream(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let reply = reqwest::Client::new()
            .request(method, format!("{}{path}", self.upstream))
            .bearer_auth(WRIKE_TOKEN)
            .form(form)
            .send()
            .await
            .unwrap();
        let reply = common::read_reply(reply).await;
        assert!(reply.status.is_success(), "{path}: {}", reply.body);
        reply.body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_matching_look_up_among_20000_users_is_one_read_by_id() {
    let account = account(USERS, None).await;
    let (by_name, calls) = account
        .look_up(r#"userName eq "USER12345@example.com""#)
        .await;
    assert_eq!((by_name.len(), calls), (1, 1), "{by_name:?}");
    let (by_external, calls) = account.look_up(r#"externalId eq "ext-12345""#).await;
    assert_eq!((&by_external, calls), (&by_name, 1));
    let (by_email, calls) = account
        .look_up(r#"emails[type eq "work"].value eq "user12345@example.com""#)
        .await;
    assert_eq!((&by_email, calls), (&by_name, 1));
    // What the index does not hold costs no call at all.
    assert_eq!(
        account.look_up(r#"userName eq "nobody@example.com""#).await,
        (vec![], 0)
    );
    // The rest of the filter is still checked on the record read.
    let (narrowed, calls) = account
        .look_up(r#"userName eq "user12345@example.com" and name.givenName eq "Someone""#)
        .await;
    assert_eq!((narrowed.len(), calls), (0, 1));
    // A filter the index cannot answer still scans, and past scan_cap says how to avoid it.
    let reply =
        common::scim_request(&account.base, Method::GET, &filter(r#"title eq "x""#), None).await;
    common::assert_scim_error(&reply, 400, Some("tooMany"));
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("the look-up index answers `eq` on: userName, externalId, emails.value"),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_ups_follow_creates_changes_and_deletes_made_through_the_gateway() {
    let account = account(USERS, None).await;
    let created = common::scim_request(
        &account.base,
        Method::POST,
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "newcomer@example.com",
            "externalId": "n-1",
            "name": {"givenName": "New", "familyName": "Comer"},
        })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let (found, _) = account
        .look_up(r#"userName eq "Newcomer@example.com""#)
        .await;
    assert_eq!(found, std::slice::from_ref(&id));
    assert_eq!(
        account.look_up(r#"externalId eq "n-1""#).await,
        (vec![id.clone()], 1)
    );

    let patched = common::scim_request(
        &account.base,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "externalId", "value": "n-2"}],
        })),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(account.look_up(r#"externalId eq "n-1""#).await, (vec![], 0));
    assert_eq!(
        account.look_up(r#"externalId eq "n-2""#).await,
        (vec![id.clone()], 1)
    );

    let deleted =
        common::scim_request(&account.base, Method::DELETE, &format!("/Users/{id}"), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    // Soft-deleted upstream, it left the index at once.
    assert_eq!(
        account
            .look_up(r#"userName eq "newcomer@example.com""#)
            .await,
        (vec![], 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_invited_behind_the_gateways_back_answers_409_then_matches() {
    // The 409 waits up to 5 s for the index's read again; a debug build on
    // two busy cores reads 20,000 contacts in about that, so fewer here.
    let account = account(2_000, None).await;
    let invited = account
        .upstream(
            Method::POST,
            "/invitations",
            &[("email", "sideways@example.com"), ("firstName", "Side")],
        )
        .await;
    let upstream_id = invited["data"][0]["userId"].as_str().unwrap().to_string();
    // The index has not read the list since: the look-up misses.
    assert_eq!(
        account
            .look_up(r#"userName eq "sideways@example.com""#)
            .await,
        (vec![], 0)
    );
    let create = common::scim_request(
        &account.base,
        Method::POST,
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "sideways@example.com",
        })),
    )
    .await;
    common::assert_scim_error(&create, 409, Some("uniqueness"));
    // The IdP looks up again and matches the user the upstream holds.
    let (found, calls) = account
        .look_up(r#"userName eq "sideways@example.com""#)
        .await;
    assert_eq!((found, calls), (vec![upstream_id], 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_upstream_is_found_after_the_next_full_read() {
    let account = account(USERS, Some(1)).await;
    let (found, _) = account.look_up(r#"externalId eq "ext-42""#).await;
    let [id] = found.as_slice() else {
        panic!("{found:?}")
    };
    account
        .upstream(
            Method::PUT,
            &format!("/contacts/{id}"),
            &[(
                "metadata",
                r#"[{"key": "externalId", "value": "moved-42"}]"#,
            )],
        )
        .await;
    // The stale entry is read, fails the filter and is not answered.
    assert_eq!(
        account.look_up(r#"externalId eq "ext-42""#).await.0,
        Vec::<String>::new()
    );
    // A debug build on two busy cores takes 5 s and more for each read of
    // 20,000 contacts; the bound is for a read that never comes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (moved, _) = account.look_up(r#"externalId eq "moved-42""#).await;
        if moved == [id.clone()] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never re-read");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_added_in_bulk_go_at_most_members_per_call_ids_a_call() {
    let account = account(USERS, None).await;
    let group = common::scim_request(
        &account.base,
        Method::POST,
        "/Groups",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Everyone",
        })),
    )
    .await;
    assert_eq!(group.status, 201, "{}", group.body);
    let group = group.body["id"].as_str().unwrap().to_string();
    let contacts = account.upstream(Method::GET, "/contacts", &[]).await;
    let members: Vec<Value> = contacts["data"].as_array().unwrap()[..250]
        .iter()
        .map(|c| json!({"value": c["id"]}))
        .collect();
    let before = account.group_writes.load(Ordering::Relaxed);
    let patched = common::scim_request(
        &account.base,
        Method::PATCH,
        &format!("/Groups/{group}"),
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": members}],
        })),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    // 250 ids at 100 a call (wrike.toml's members_per_call).
    assert_eq!(account.group_writes.load(Ordering::Relaxed) - before, 3);
    let held = account
        .upstream(Method::GET, &format!("/groups/{group}"), &[])
        .await;
    assert_eq!(held["data"][0]["memberIds"].as_array().unwrap().len(), 250);
}
