//! Several `scimgate serve` replicas sharing one Redis (`[cluster]`), in
//! front of a legacy API that takes duplicate logins and has no conditional
//! updates: one user of many identical POSTs, one winner of many PATCHes
//! with the same `If-Match`, one rate for the whole cluster, and what a
//! Redis outage does under each `on_unavailable`.

#![allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote, and time what they test"
)]

use std::net::SocketAddr;
use std::time::Duration;

use scimgate_test_support as common;

use common::{RedisServer, Replica, TOKEN, alice};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_scimgate");
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// legacy.toml as it would be written for such an API: userNames are the
/// gateway's to keep unique, and updates are unconditional, so the
/// gateway's locks are all that keeps writers apart.
fn mapping() -> String {
    let conditional = conditional_mapping();
    let mapping = conditional.replace("update_precondition = \"If-Match\"\n", "");
    assert_ne!(mapping, conditional);
    mapping
}

/// legacy.toml for an API that takes duplicate logins but makes updates
/// conditional on the version read (`If-Match`), as the reference API does.
fn conditional_mapping() -> String {
    let shipped = scimgate::demo::LEGACY_MAPPING;
    let mapping = shipped.replace("unique_user_names = \"upstream\"\n", "");
    assert_ne!(mapping, shipped);
    mapping
}

fn config(upstream: SocketAddr, cluster: &str, connection: &str) -> String {
    let hash = hex::encode(scimgate::server::hash_token(TOKEN));
    format!(
        r#"
[server]
listen = "127.0.0.1:{{port}}"
{cluster}

[upstreams.legacy]
mapping = "legacy.toml"
base_url = "http://{upstream}"
secrets.api_key = {{ env = "CLUSTER_TEST_API_KEY" }}

[connections.idp]
base_path = "/scim/v2"
upstream = "legacy"
token_sha256 = "{hash}"
approved_domains = ["example.com"]
dialect = "generic"
{connection}
"#
    )
}

fn cluster_section(redis: &RedisServer, on_unavailable: &str) -> String {
    format!(
        "\n[cluster]\nredis_url = {{ value = \"{}\" }}\ntimeout_ms = 200\non_unavailable = \"{on_unavailable}\"\n",
        redis.url()
    )
}

async fn replicas(n: usize, config: &str) -> Vec<Replica> {
    replicas_with(n, config, &mapping()).await
}

async fn replicas_with(n: usize, config: &str, mapping: &str) -> Vec<Replica> {
    // Calls time out after 1 s, under the tests' shortest lock TTL.
    let mapping = mapping.replace("timeout_ms = 10000", "timeout_ms = 1000");
    let mut started = Vec::new();
    for _ in 0..n {
        started.push(
            Replica::start(
                BIN,
                config,
                &[("legacy.toml", &mapping)],
                &[("CLUSTER_TEST_API_KEY", common::API_KEY)],
            )
            .await,
        );
    }
    started
}

fn base(replica: &Replica) -> String {
    format!("{}/scim/v2", replica.root())
}

/// `n` requests let go at once, the i-th to replica i mod 3.
async fn at_once(
    replicas: &[Replica],
    n: usize,
    request: impl Fn(usize) -> (Method, String, Option<Value>, Option<String>),
) -> Vec<u16> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut attempts = tokio::task::JoinSet::new();
    for i in 0..n {
        let url_base = base(&replicas[i % replicas.len()]);
        let (method, path, body, if_match) = request(i);
        let start = start.clone();
        attempts.spawn(async move {
            let client = reqwest::Client::new();
            // Connected first, so the requests leave together.
            client
                .get(format!("{url_base}/ServiceProviderConfig"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            start.wait().await;
            let mut request = client
                .request(method, format!("{url_base}{path}"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/scim+json");
            if let Some(version) = if_match {
                request = request.header("if-match", version);
            }
            if let Some(body) = body {
                request = request.body(body.to_string());
            }
            request.send().await.unwrap().status().as_u16()
        });
    }
    let mut statuses = attempts.join_all().await;
    statuses.sort();
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_four_identical_posts_over_three_replicas_make_one_user() {
    let redis = RedisServer::start().await;
    let upstream = common::legacy_taking_duplicates().await;
    let replicas = replicas(3, &config(upstream, &cluster_section(&redis, "refuse"), "")).await;
    let statuses = at_once(&replicas, 24, |_| {
        (Method::POST, "/Users".into(), Some(alice()), None)
    })
    .await;
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(statuses[1..].iter().all(|s| *s == 409), "{statuses:?}");
    assert_eq!(
        common::legacy_users_with_login(upstream, "alice@example.com").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_patches_with_one_if_match_over_three_replicas_let_exactly_one_win() {
    let redis = RedisServer::start().await;
    let upstream = common::legacy_taking_duplicates().await;
    let replicas = replicas(3, &config(upstream, &cluster_section(&redis, "refuse"), "")).await;
    let (id, version) = alice_created(&replicas).await;
    exactly_one_if_match_wins(&replicas, &id, &version).await;
}

/// Alice, created through the first replica: her id and version.
async fn alice_created(replicas: &[Replica]) -> (String, String) {
    let created =
        common::scim_request(&base(&replicas[0]), Method::POST, "/Users", Some(alice())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let version = created.body["meta"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    (id, version)
}

/// 12 PATCHes of user `id`, all with If-Match `version`, let go at once
/// over the replicas: one 200, eleven 412.
async fn exactly_one_if_match_wins(replicas: &[Replica], id: &str, version: &str) {
    let statuses = at_once(replicas, 12, |n| {
        (
            Method::PATCH,
            format!("/Users/{id}"),
            Some(title(format!("T{n}"))),
            Some(version.to_string()),
        )
    })
    .await;
    let mut expected = vec![412; 11];
    expected.insert(0, 200);
    assert_eq!(statuses, expected);
}

fn title(value: String) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": [
        {"op": "replace", "path": "title", "value": value}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn against_conditional_updates_patches_take_no_lock_and_still_let_exactly_one_if_match_win() {
    let redis = RedisServer::start().await;
    let upstream = common::legacy_taking_duplicates().await;
    let config = config(upstream, &cluster_section(&redis, "refuse"), "");
    let replicas = replicas_with(3, &config, &conditional_mapping()).await;
    let (id, version) = alice_created(&replicas).await;
    let mut stats = CommandStats::reset(&redis).await;
    exactly_one_if_match_wins(&replicas, &id, &version).await;
    // Without If-Match each PATCH lands once (each bumps the version), the
    // losers of each race reading again.
    let statuses = at_once(&replicas, 6, |n| {
        (
            Method::PATCH,
            format!("/Users/{id}"),
            Some(title(format!("U{n}"))),
            None,
        )
    })
    .await;
    assert_eq!(statuses, [200; 6]);
    assert_eq!(stats.calls("set").await, 0, "a lock was taken in Redis");
    let answer = common::scim_request(
        &base(&replicas[1]),
        Method::GET,
        &format!("/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(
        answer.body["meta"]["version"],
        format!("W/\"{}\"", 1 + 1 + 6),
        "{}",
        answer.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connections_rate_holds_for_the_whole_cluster() {
    let redis = RedisServer::start().await;
    let upstream = common::legacy_taking_duplicates().await;
    let limited = "rate_limit = \"20/s\"\nburst = 20\nmax_wait_ms = 0\n";
    let replicas = replicas(
        3,
        &config(upstream, &cluster_section(&redis, "refuse"), limited),
    )
    .await;
    let seconds = 3;
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut drivers = tokio::task::JoinSet::new();
    // Four clients per replica, each as fast as it is answered.
    for worker in 0..12 {
        let url = format!("{}/ServiceProviderConfig", base(&replicas[worker % 3]));
        drivers.spawn(async move {
            let client = reqwest::Client::new();
            let (mut served, mut refused) = (0u64, 0u64);
            while tokio::time::Instant::now() < until {
                let reply = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
                match reply.status().as_u16() {
                    200 => served += 1,
                    429 => {
                        assert!(reply.headers().contains_key("retry-after"));
                        refused += 1;
                    }
                    other => panic!("unexpected {other}"),
                }
            }
            (served, refused)
        });
    }
    let (served, refused) = drivers
        .join_all()
        .await
        .into_iter()
        .fold((0, 0), |(s, r), (a, b)| (s + a, r + b));
    let allowed = (20 * seconds + 20) as f64;
    assert!(
        (0.7 * allowed..=1.25 * allowed).contains(&(served as f64)),
        "{served} served, {refused} refused; the cluster allows about {allowed}"
    );
    assert!(
        refused > served,
        "driven hard enough: {served} served, {refused} refused"
    );
}

async fn readiness(replica: &Replica) -> (u16, Value) {
    let reply = reqwest::get(format!("{}/readyz", replica.root()))
        .await
        .unwrap();
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

async fn create(replica: &Replica, name: &str) -> u16 {
    let mut user = alice();
    user["userName"] = json!(format!("{name}@example.com"));
    user["emails"] = json!([{"value": format!("{name}@example.com"), "primary": true}]);
    common::scim_request(&base(replica), Method::POST, "/Users", Some(user))
        .await
        .status
        .as_u16()
}

/// Polls `readyz` until its `cluster` says `wanted` (the probe is cached
/// for a second, and the client reconnects in the background).
async fn until_cluster(replica: &Replica, wanted: &str) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for _ in 0..60 {
        last = readiness(replica).await;
        if last.1["cluster"]
            .as_str()
            .is_some_and(|c| c.starts_with(wanted))
        {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("readyz never said cluster {wanted}: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_refuse_a_redis_outage_is_503_with_retry_after_and_recovers_by_itself() {
    let mut redis = RedisServer::start().await;
    let upstream = common::legacy_taking_duplicates().await;
    let replicas = replicas(1, &config(upstream, &cluster_section(&redis, "refuse"), "")).await;
    let replica = &replicas[0];
    assert_eq!(create(replica, "before").await, 201);
    assert_eq!(until_cluster(replica, "reachable").await.0, 200);

    redis.stop();
    let reply = {
        let mut user = alice();
        user["userName"] = json!("during@example.com");
        common::scim_request(&base(replica), Method::POST, "/Users", Some(user)).await
    };
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        common::legacy_users_with_login(upstream, "during@example.com").await,
        0,
        "refused, so not written"
    );
    let (status, body) = until_cluster(replica, "unreachable").await;
    assert_eq!(status, 503, "{body}");

    redis.restart().await;
    until_cluster(replica, "reachable").await;
    assert_eq!(
        create(replica, "during").await,
        201,
        "the IdP's retry goes through"
    );
    assert_eq!(
        common::legacy_users_with_login(upstream, "during@example.com").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_local_a_redis_outage_is_served_by_each_replica_alone_and_recovers_by_itself() {
    let mut redis = RedisServer::start().await;
    let upstream = common::legacy_taking_duplicates().await;
    let replicas = replicas(1, &config(upstream, &cluster_section(&redis, "local"), "")).await;
    let replica = &replicas[0];
    assert_eq!(create(replica, "before").await, 201);

    redis.stop();
    assert_eq!(create(replica, "during").await, 201);
    assert_eq!(
        create(replica, "during").await,
        409,
        "still one user per userName"
    );
    let (status, body) = until_cluster(replica, "unreachable").await;
    assert_eq!(status, 200, "{body}");

    redis.restart().await;
    until_cluster(replica, "reachable").await;
    assert_eq!(create(replica, "after").await, 201);
    for login in ["before", "during", "after"] {
        let login = format!("{login}@example.com");
        assert_eq!(
            common::legacy_users_with_login(upstream, &login).await,
            1,
            "{login}"
        );
    }
}

/// A users API whose GET takes `delay` and that counts how many GETs it
/// serves at once (now, and the most ever).
#[derive(Clone, Default)]
struct Gauge {
    now: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    most: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn slow_upstream(delay: Duration) -> (SocketAddr, Gauge) {
    use std::sync::atomic::Ordering::SeqCst;
    let gauge = Gauge::default();
    let counted = gauge.clone();
    let app = axum::Router::new().route(
        "/api/v1/users/{id}",
        axum::routing::get(move |axum::extract::Path(id): axum::extract::Path<u64>| {
            let gauge = counted.clone();
            async move {
                let now = gauge.now.fetch_add(1, SeqCst) + 1;
                gauge.most.fetch_max(now, SeqCst);
                tokio::time::sleep(delay).await;
                gauge.now.fetch_sub(1, SeqCst);
                axum::Json(json!({
                    "id": id, "login": format!("u{id}@example.com"), "email": format!("u{id}@example.com"),
                    "status": "enabled", "version": 1
                }))
            }
        }),
    );
    (common::serve(app).await, gauge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upstreams_max_in_flight_holds_for_the_cluster_and_a_dead_replicas_slots_come_back() {
    use std::sync::atomic::Ordering::SeqCst;
    let redis = RedisServer::start().await;
    let (upstream, gauge) = slow_upstream(Duration::from_millis(300)).await;
    let cluster = format!("{}lock_ttl_ms = 1500\n", cluster_section(&redis, "refuse"));
    let text = config(upstream, &cluster, "").replace(
        "secrets.api_key",
        "max_in_flight = 2\nqueue_timeout_ms = 10000\nsecrets.api_key",
    );
    let three = replicas(3, &text).await;
    // Nine reads at once, three per replica: never more than two upstream.
    let mut reads = tokio::task::JoinSet::new();
    for (n, replica) in three.iter().cycle().take(9).enumerate() {
        let url = base(replica);
        reads.spawn(async move {
            common::scim_request(&url, Method::GET, &format!("/Users/{n}"), None)
                .await
                .status
                .as_u16()
        });
    }
    assert_eq!(reads.join_all().await, vec![200; 9]);
    assert_eq!(gauge.most.load(SeqCst), 2, "at most two in flight upstream");

    // A replica dies holding both slots (its reads hang upstream for 30 s):
    // the others get them back once their time runs out, not never. A Redis
    // of its own: the killed first replicas may have left slots behind.
    drop(three);
    let redis = RedisServer::start().await;
    let cluster = format!("{}lock_ttl_ms = 1500\n", cluster_section(&redis, "refuse"));
    let (upstream, gauge) = slow_upstream(Duration::from_secs(30)).await;
    let text = config(upstream, &cluster, "").replace(
        "secrets.api_key",
        "max_in_flight = 2\nqueue_timeout_ms = 10000\nsecrets.api_key",
    );
    let mut two = replicas(2, &text).await;
    for n in 0..2 {
        let url = format!("{}/Users/{n}", base(&two[0]));
        // Answered by no one: the replica is killed while they hang.
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await;
        });
    }
    while gauge.now.load(SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    two[0].kill();
    let started = tokio::time::Instant::now();
    let waiting = {
        let url = base(&two[1]);
        tokio::spawn(async move {
            common::scim_request(&url, Method::GET, "/Users/7", None)
                .await
                .status
                .as_u16()
        })
    };
    // Its read reaches the (still hanging) upstream once the dead slots expire.
    while gauge.most.load(SeqCst) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "the dead replica's slots never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "slots freed before their time"
    );
    waiting.abort();
}

fn store(redis: &RedisServer, lock_ttl_ms: u64) -> scimgate::cluster::ClusterStore {
    scimgate::cluster::ClusterStore::connect(&scimgate::config::ClusterSettings {
        redis_url: scimgate::config::Secret::new(redis.url()),
        key_prefix: "test:".into(),
        timeout: Duration::from_millis(200),
        lock_ttl: Duration::from_millis(lock_ttl_ms),
        on_unavailable: scimgate::config::OnUnavailable::Refuse,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_outlives_its_ttl_and_an_abandoned_one_expires() {
    let redis = RedisServer::start().await;
    let (one, other) = (store(&redis, 300), store(&redis, 300));
    let held = one.try_lock("test:lock:k").await.unwrap().expect("free");
    // Kept alive while held: three TTLs later it is still taken.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(other.try_lock("test:lock:k").await.unwrap().is_none());
    one.unlock(held).await;
    let taken = other
        .try_lock("test:lock:k")
        .await
        .unwrap()
        .expect("given back");
    // Dropped without a word (its process gone): free once its TTL runs out.
    drop(taken);
    assert!(
        one.try_lock("test:lock:k").await.unwrap().is_none(),
        "not before its TTL"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        one.try_lock("test:lock:k").await.unwrap().is_some(),
        "expired"
    );
}

/// Replicas at a high rate take requests from the shared cell in batches
/// and give back what they did not spend: driven past the rate, the rate
/// holds for the cluster; below it, every request passes with far fewer
/// round trips than requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_rate_is_taken_in_batches_and_still_holds_for_the_cluster() {
    let redis = RedisServer::start().await;
    let rate = scimgate::config::Rate {
        count: std::num::NonZeroU32::new(20_000).unwrap(),
        per: Duration::from_secs(1),
        burst: std::num::NonZeroU32::new(4000).unwrap(),
    };
    let seconds = 2;
    // Past the rate: six clients (two per replica) as fast as they are answered.
    let (allowed, refused, _) = drive_rate(&redis, rate, "past", seconds).await;
    let expected = (20_000 * seconds + 4000) as f64;
    assert!(
        (0.7 * expected..=1.25 * expected).contains(&(allowed as f64)),
        "{allowed} allowed; the cluster allows about {expected}"
    );
    assert!(refused > 0, "driven past the rate");
    // Below it (the rate far above what six clients can ask for).
    let far_above = scimgate::config::Rate {
        count: std::num::NonZeroU32::new(1_000_000).unwrap(),
        per: Duration::from_secs(1),
        burst: std::num::NonZeroU32::new(100_000).unwrap(),
    };
    let (allowed, refused, round_trips) = drive_rate(&redis, far_above, "below", seconds).await;
    assert_eq!(refused, 0, "{allowed} allowed");
    assert!(allowed > 1000, "{allowed} allowed");
    assert!(
        round_trips * 3 <= allowed,
        "{round_trips} round trips for {allowed} requests: not batched"
    );
}

/// Three replicas' `SharedRate` of one cell, two clients each, as fast as
/// answered: allowed, refused, and the round trips Redis saw for it.
async fn drive_rate(
    redis: &RedisServer,
    rate: scimgate::config::Rate,
    cell: &str,
    seconds: u64,
) -> (u64, u64, u64) {
    use scimgate::cluster::{RateCheck, SharedRate};
    let mut stats = CommandStats::reset(redis).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut drivers = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let shared = std::sync::Arc::new(SharedRate::new(rate, Some(&store(redis, 1000)), cell));
        for _ in 0..2 {
            let shared = shared.clone();
            drivers.spawn(async move {
                let (mut allowed, mut refused) = (0u64, 0u64);
                while tokio::time::Instant::now() < until {
                    match shared.check().await {
                        RateCheck::Allowed => allowed += 1,
                        RateCheck::Wait(wait) => {
                            refused += 1;
                            tokio::time::sleep(wait.min(Duration::from_millis(5))).await;
                        }
                        RateCheck::Unavailable => panic!("Redis is up"),
                    }
                }
                (allowed, refused)
            });
        }
    }
    let (allowed, refused) = drivers
        .join_all()
        .await
        .into_iter()
        .fold((0, 0), |(a, r), (x, y)| (a + x, r + y));
    // The connection manager loads the script once (EVAL or SCRIPT LOAD).
    let scripts = stats.calls("evalsha").await + stats.calls("eval").await;
    (allowed, refused, scripts)
}

/// How many times Redis ran each command since [`CommandStats::reset`].
struct CommandStats(redis::aio::MultiplexedConnection);

impl CommandStats {
    async fn reset(redis: &RedisServer) -> CommandStats {
        let client = redis::Client::open(redis.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut connection)
            .await
            .unwrap();
        CommandStats(connection)
    }

    async fn calls(&mut self, command: &str) -> u64 {
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.0)
            .await
            .unwrap();
        stats
            .lines()
            .find(|line| line.starts_with(&format!("cmdstat_{command}:calls=")))
            .and_then(|line| line.split(['=', ',']).nth(1))
            .map_or(0, |calls| calls.parse().unwrap())
    }
}

/// A Wrike-shaped API of `users` users, counting its full listings.
async fn wrike_counting_listings(
    users: usize,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let api = scimgate_reference::wrike::WrikeApi::open(scimgate_reference::wrike::WrikeConfig {
        token: common::WRIKE_TOKEN.into(),
        account_id: "IEAAAAAA".into(),
        database: scimgate_reference::wrike::Database::Memory,
    })
    .unwrap();
    api.seed_contacts(users, "example.com").unwrap();
    let listings = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = listings.clone();
    let router = api.router().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            if request.uri().path() == "/api/v4/contacts" {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            next.run(request)
        },
    ));
    (common::serve(router).await, listings)
}

async fn until_indexed(replica: &Replica) -> Value {
    for _ in 0..400 {
        let (_, body) = readiness(replica).await;
        if body["lookup_indexes"]["wrike"]["User"]
            .as_str()
            .is_some_and(|s| s.starts_with("ready"))
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the index was never read")
}

/// The ids a look-up through `replica` answers.
async fn look_up(replica: &Replica, filter: &str) -> Vec<String> {
    let path = format!(
        "/Users?filter={}",
        form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    let reply = common::scim_request(&base(replica), Method::GET, &path, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_one_look_up_index_in_redis_read_once_and_kept_by_each_ones_writes() {
    use std::sync::atomic::Ordering;
    let redis = RedisServer::start().await;
    let (upstream, listings) = wrike_counting_listings(2_000).await;
    let hash = hex::encode(scimgate::server::hash_token(TOKEN));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n{}\n[upstreams.wrike]\nmapping = \"wrike.toml\"\nbase_url = \"http://{upstream}\"\nsecrets.token = {{ value = \"{}\" }}\n\n[connections.idp]\nbase_path = \"/scim/v2\"\nupstream = \"wrike\"\ntoken_sha256 = \"{hash}\"\napproved_domains = [\"example.com\"]\ndialect = \"generic\"\n",
        cluster_section(&redis, "local"),
        common::WRIKE_TOKEN
    );
    let mapping = std::fs::read_to_string("mappings/upstream/wrike.toml").unwrap();
    let files = [("wrike.toml", mapping.as_str())];
    let start = || Replica::start(BIN, &config, &files, &[]);
    let first = start().await;
    let ready = until_indexed(&first).await;
    assert_eq!(
        ready["lookup_indexes"]["wrike"]["User"], "ready (2000 records)",
        "{ready}"
    );
    // The second finds the index in Redis and reads nothing itself.
    let second = start().await;
    until_indexed(&second).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(listings.load(Ordering::Relaxed), 1);
    assert_eq!(
        look_up(&second, r#"userName eq "user1234@example.com""#)
            .await
            .len(),
        1
    );

    // A user made through one replica is found through the other.
    let created = common::scim_request(
        &base(&first),
        Method::POST,
        "/Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "shared@example.com",
            "externalId": "s-1",
        })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        look_up(&second, r#"externalId eq "s-1""#).await,
        std::slice::from_ref(&id)
    );
    // Deleted through the other, it leaves the index both read.
    let deleted = common::scim_request(
        &base(&second),
        Method::DELETE,
        &format!("/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert!(
        look_up(&first, r#"userName eq "shared@example.com""#)
            .await
            .is_empty()
    );
    // Every look-up came from the index: the list was read once in all.
    assert_eq!(listings.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_made_while_a_shared_index_is_read_are_replayed_onto_it() {
    let redis = RedisServer::start().await;
    let index = scimgate::cluster::SharedIndex::new(&store(&redis, 5_000), "up", "User");
    // Never read: look-ups scan, and a write has nothing to apply to.
    assert_eq!(index.lookup(1).await.unwrap(), None);
    index.write("early", &[], &[1]).await.unwrap();

    let token = index.begin(Duration::from_secs(60)).await.unwrap().unwrap();
    // One read at a time.
    assert_eq!(index.begin(Duration::from_secs(60)).await.unwrap(), None);
    assert!(index.building().await.unwrap());
    // Made while the read runs: U9 created (key 9), U1 moved from key 1 to 2.
    index.write("U9", &[], &[9]).await.unwrap();
    index.write("U1", &[1], &[2]).await.unwrap();
    // What the read found: U1 still at key 1, U2 and U3 sharing key 3.
    let found = vec![(1, vec!["U1"]), (3, vec!["U2", "U3"])];
    index.fill(found.into_iter()).await.unwrap();
    assert!(index.finish(&token, 3).await.unwrap());
    assert!(!index.building().await.unwrap());

    let ids = |hash| {
        let index = index.clone();
        async move { index.lookup(hash).await.unwrap().unwrap() }
    };
    assert_eq!(ids(1).await, Vec::<String>::new());
    assert_eq!(ids(2).await, ["U1"]);
    assert_eq!(ids(3).await, ["U2", "U3"]);
    assert_eq!(ids(9).await, ["U9"]);
    // The write before any read left nothing behind.
    assert_eq!(index.readiness().await.unwrap().unwrap().records, 3);
    // Read now, writes apply at once; one of two holders leaves.
    index.write("U2", &[3], &[]).await.unwrap();
    assert_eq!(ids(3).await, ["U3"]);
    // A lease lost to its TTL cannot swap in what it read.
    let stale = index
        .begin(Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = index.begin(Duration::from_secs(60)).await.unwrap().unwrap();
    assert!(!index.finish(&stale, 0).await.unwrap());
    assert!(index.finish(&fresh, 0).await.unwrap());
    assert_eq!(ids(3).await, Vec::<String>::new());
}
