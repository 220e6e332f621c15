//! Groups of enterprise size (issue 15): against a group of 100,000 members
//! an IdP adds and removes one member in a few upstream calls, never by
//! reading the member list (which stops at `scan_cap`, 10,000).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scimgate_test_support as common;

use common::{API_KEY, TOKEN, alice};
use reqwest::Method;
use scimgate::config::ServerSettings;
use scimgate::mapping::{Members, UpstreamMapping};
use scimgate_reference::legacy::{Database, LegacyApi, LegacyConfig};
use serde_json::{Value, json};

const MEMBERS: usize = 100_000;
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ENTRA: &str = "Azure AD SCIM Client";

struct Everyone {
    /// The gateway's SCIM base URL.
    base: String,
    /// The team's SCIM id.
    group: String,
    upstream: SocketAddr,
    /// Requests the upstream has answered.
    calls: Arc<AtomicUsize>,
    audit: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// The demo gateway in front of a legacy API holding one team of
/// [`MEMBERS`] users, writing its provisioning records to a file.
async fn everyone() -> Everyone {
    team_of(MEMBERS, |_| {}).await
}

/// The same with a team of `members`, the mapping changed by `adjust`.
async fn team_of(members: usize, adjust: impl FnOnce(&mut UpstreamMapping)) -> Everyone {
    team(members, adjust, None).await
}

/// …and the upstream answering 400 to each request whose query has `fail`.
async fn team(
    members: usize,
    adjust: impl FnOnce(&mut UpstreamMapping),
    fail: Option<&'static str>,
) -> Everyone {
    let api = LegacyApi::open(LegacyConfig {
        api_key: API_KEY.into(),
        database: Database::Memory,
    })
    .unwrap();
    let group = api.seed_team("everyone", members).unwrap().to_string();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let router = api.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            counted.fetch_add(1, Ordering::Relaxed);
            let failing = fail.is_some_and(|f| request.uri().query().unwrap_or("").contains(f));
            async move {
                if failing {
                    return axum::response::IntoResponse::into_response((
                        http::StatusCode::BAD_REQUEST,
                        "{}",
                    ));
                }
                next.run(request).await
            }
        },
    ));
    let upstream = common::serve(router).await;
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let settings = ServerSettings {
        audit_log: Some(audit.clone()),
        ..Default::default()
    };
    let mut config = scimgate::demo::gateway_config(
        upstream,
        API_KEY,
        TOKEN,
        &["example.com".to_string()],
        settings,
    )
    .unwrap();
    adjust(std::sync::Arc::make_mut(&mut config.upstreams[0].mapping));
    let address = common::serve(scimgate::server::router(&config).unwrap()).await;
    Everyone {
        base: format!("http://{address}/scim/v2"),
        group,
        upstream,
        calls,
        audit,
        _dir: dir,
    }
}

impl Everyone {
    /// A group PATCH as Entra sends it (answered 204).
    async fn patch(&self, operations: Value) -> u16 {
        reqwest::Client::new()
            .patch(format!("{}/Groups/{}", self.base, self.group))
            .bearer_auth(TOKEN)
            .header("user-agent", ENTRA)
            .header("content-type", "application/scim+json")
            .body(json!({"schemas": [PATCH_SCHEMA], "Operations": operations}).to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The upstream calls of the last write, by the mapping's call names.
    fn last_steps(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.audit).unwrap();
        let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        last["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["call"].as_str().unwrap().to_string())
            .collect()
    }

    /// How many members the upstream holds, and whether `user` is one.
    async fn upstream_members(&self, user: &str) -> (usize, bool) {
        let http = reqwest::Client::new();
        let url = format!(
            "http://{}/api/v1/teams/{}/members?per_page=1",
            self.upstream, self.group
        );
        let page = http
            .get(url)
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap();
        let total = page.headers()["x-total-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let one = format!(
            "http://{}/api/v1/teams/{}/members/{user}",
            self.upstream, self.group
        );
        let found = http
            .get(one)
            .header("x-api-key", API_KEY)
            .send()
            .await
            .unwrap();
        (total, found.status() == 200)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_joins_and_leaves_a_group_of_100k_in_a_few_calls() {
    let everyone = everyone().await;
    let created = common::scim_request(&everyone.base, Method::POST, "/Users", Some(alice())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let user = created.body["id"].as_str().unwrap().to_string();
    // What a member change costs: the group read (no members), the member
    // checked, the one member call, the group read again for the record.
    let expected = |member_call: &str| {
        vec![
            "groups.get".to_string(),
            "users.get".to_string(),
            member_call.to_string(),
            "groups.get".to_string(),
        ]
    };

    let add = json!([{"op": "Add", "path": "members", "value": [{"value": user}]}]);
    assert_eq!(everyone.patch(add).await, 204);
    assert_eq!(everyone.last_steps(), expected("groups.members.add"));
    assert_eq!(everyone.upstream_members(&user).await, (MEMBERS + 1, true));

    let remove = json!([{"op": "Remove", "path": format!("members[value eq \"{user}\"]")}]);
    assert_eq!(everyone.patch(remove).await, 204);
    assert_eq!(everyone.last_steps(), expected("groups.members.remove"));
    assert_eq!(everyone.upstream_members(&user).await, (MEMBERS, false));

    // Entra's other form of a removal names the members in `value`; a
    // repeated removal is no error.
    // An IdP answered 200 with the group: the change lands, and the list
    // too long to show is left out of the answer instead of failing it.
    let add = json!([{"op": "Add", "path": "members", "value": [{"value": user}]}]);
    let shown = reqwest::Client::new()
        .patch(format!("{}/Groups/{}", everyone.base, everyone.group))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(json!({"schemas": [PATCH_SCHEMA], "Operations": add}).to_string())
        .send()
        .await
        .unwrap();
    let shown = common::read_reply(shown).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["displayName"], "everyone");
    assert!(shown.body.get("members").is_none());
    assert_eq!(everyone.upstream_members(&user).await, (MEMBERS + 1, true));
    for _ in 0..2 {
        let remove = json!([{"op": "Remove", "path": "members", "value": [{"value": user}]}]);
        assert_eq!(everyone.patch(remove).await, 204);
        assert_eq!(everyone.last_steps(), expected("groups.members.remove"));
    }
    assert_eq!(everyone.upstream_members(&user).await, (MEMBERS, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_change_is_checked_member_by_member_before_anything_is_written() {
    let everyone = everyone().await;
    // Not a user this connection sees: refused, nothing written.
    let add = json!([{"op": "Add", "path": "members", "value": [{"value": "999999999"}]}]);
    let status = everyone.patch(add).await;
    assert_eq!(status, 400);
    assert_eq!(everyone.last_steps(), ["groups.get", "users.get"]);
    assert_eq!(
        everyone.upstream_members("999999999").await,
        (MEMBERS, false)
    );
    // A change that names no members needs the whole list: still refused
    // at scan_cap rather than made from a partial list.
    let replace = json!([{"op": "Replace", "path": "members", "value": []}]);
    assert_eq!(everyone.patch(replace).await, 400);
    assert_eq!(everyone.upstream_members("1").await, (MEMBERS, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idps_membership_check_against_a_group_of_100k_is_two_calls() {
    let everyone = everyone().await;
    let created = common::scim_request(&everyone.base, Method::POST, "/Users", Some(alice())).await;
    let user = created.body["id"].as_str().unwrap().to_string();
    let check = |member: &str, group: &str| {
        format!(
            "/Groups?filter={}&excludedAttributes=members",
            form_urlencoded::byte_serialize(
                format!("id eq \"{group}\" and members[value eq \"{member}\"]").as_bytes()
            )
            .collect::<String>()
        )
    };
    let group = everyone.group.clone();
    for (member, group, expected) in [
        ("1", group.as_str(), 1),
        (user.as_str(), group.as_str(), 0),
        ("1", "999999", 0),
    ] {
        let before = everyone.calls.load(Ordering::Relaxed);
        let reply =
            common::scim_request(&everyone.base, Method::GET, &check(member, group), None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["totalResults"], expected, "{}", reply.body);
        let resources = reply.body["Resources"].as_array().unwrap();
        assert_eq!(resources.len(), expected);
        if expected == 1 {
            assert_eq!(resources[0]["id"], everyone.group);
            assert!(resources[0].get("members").is_none(), "{}", reply.body);
        }
        // The group read, then the one membership (none for no group).
        let made = everyone.calls.load(Ordering::Relaxed) - before;
        assert!(made <= 2, "{made} upstream calls for {member} in {group}");
    }
    // Reversed, the same check.
    let reversed = format!(
        "/Groups?filter={}&excludedAttributes=members",
        form_urlencoded::byte_serialize(
            format!("members[value eq \"1\"] and id eq \"{}\"", everyone.group).as_bytes()
        )
        .collect::<String>()
    );
    let reply = common::scim_request(&everyone.base, Method::GET, &reversed, None).await;
    assert_eq!(reply.body["totalResults"], 1, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_lookup_call_the_membership_check_pages_past_scan_cap() {
    // Past scan_cap (10,000), where reading the whole list would refuse.
    let team = team_of(12_000, |mapping| {
        if let Some(Members::Endpoints { lookup, .. }) =
            mapping.groups.as_mut().and_then(|g| g.members.as_mut())
        {
            *lookup = None;
        }
    })
    .await;
    let created = common::scim_request(&team.base, Method::POST, "/Users", Some(alice())).await;
    let outsider = created.body["id"].as_str().unwrap().to_string();
    for (member, expected) in [("1", 1), (outsider.as_str(), 0)] {
        let filter = format!(
            "id eq \"{}\" and members[value eq \"{member}\"]",
            team.group
        );
        let path = format!(
            "/Groups?filter={}&excludedAttributes=members",
            form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
        );
        let before = team.calls.load(Ordering::Relaxed);
        let reply = common::scim_request(&team.base, Method::GET, &path, None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["totalResults"], expected, "{}", reply.body);
        let made = team.calls.load(Ordering::Relaxed) - before;
        // The first member is on the first page; a non-member reads them all.
        match expected {
            1 => assert!(made <= 2, "{made} calls"),
            _ => assert!(made > 100, "{made} calls"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_with_members_streams_all_100k_of_them_past_scan_cap() {
    let everyone = everyone().await;
    let before = everyone.calls.load(Ordering::Relaxed);
    let reply = common::scim_request(
        &everyone.base,
        Method::GET,
        &format!("/Groups/{}", everyone.group),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/scim+json"));
    assert_eq!(reply.body["id"], everyone.group);
    assert_eq!(reply.body["displayName"], "everyone");
    let members = reply.body["members"].as_array().unwrap();
    assert_eq!(members.len(), MEMBERS);
    let first = &members[0];
    assert_eq!(first["value"], "1");
    assert!(
        first["$ref"].as_str().unwrap().ends_with("/Users/1"),
        "{first}"
    );
    // The group, then the member list a page (of 100) at a time.
    let made = everyone.calls.load(Ordering::Relaxed) - before;
    assert_eq!(made, 1 + MEMBERS / 100, "{made} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_list_that_fails_midway_cuts_the_answer_short() {
    // The third page of members fails, after the answer has begun.
    let team = team(500, |_| {}, Some("page=3")).await;
    let response = reqwest::Client::new()
        .get(format!("{}/Groups/{}", team.base, team.group))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Either the connection is cut or what arrived is no whole JSON.
    let mut response = response;
    let mut body = Vec::new();
    let mut cut = false;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(
        cut || serde_json::from_slice::<Value>(&body).is_err(),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // And the gateway keeps serving.
    let again = common::scim_request(
        &team.base,
        Method::GET,
        &format!("/Groups/{}?excludedAttributes=members", team.group),
        None,
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
}
