//! The soak run: mixed IdP traffic (Entra PATCHes, Okta PUTs, generic
//! creates and deletes) for a long time through a proxy that injects
//! upstream faults (503s, slow answers, writes that land but answer 502,
//! garbled bodies), with IdP-like retries. At the end the upstream's state is
//! checked against what the IdP meant: every user exactly once, with the
//! last title, activation and deletion it was given.
//!
//! `cargo build --release --bins && target/release/scimgate-soak --minutes 30`

#![allow(
    clippy::disallowed_methods,
    reason = "measurement code: wall time and whole bodies are the point"
)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

#[path = "harness/mod.rs"]
mod harness;

use harness::{API_KEY, Process, TOKEN, free_port, tempdir, usage, wait_for};

#[derive(Parser)]
#[command(about = "Soak scimgate with mixed IdP traffic and injected upstream faults")]
struct Args {
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// IdP workers, each owning its own users (so the expected state is exact).
    #[arg(long, default_value_t = 8)]
    workers: usize,
    #[arg(long, default_value_t = 200)]
    users_per_worker: usize,
    /// Per-mille of upstream calls that get a fault.
    #[arg(long, default_value_t = 60)]
    fault_per_mille: u32,
}

/// Faults injected, by kind.
#[derive(Default)]
struct Faults {
    unavailable: AtomicU64,
    slow: AtomicU64,
    lost_reply: AtomicU64,
    garbled: AtomicU64,
    forwarded: AtomicU64,
}

struct Proxy {
    upstream: String,
    http: reqwest::Client,
    faults: Faults,
    per_mille: u32,
}

async fn proxy(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return http::StatusCode::BAD_REQUEST.into_response();
    };
    let roll = rand::rng().random_range(0..1000u32);
    let fault = proxy.per_mille;
    let is_write = parts.method != http::Method::GET;
    // A quarter of the faults each: refused, slow, lost reply (writes) or garbled (reads).
    if roll < fault / 4 {
        proxy.faults.unavailable.fetch_add(1, Ordering::Relaxed);
        return (
            http::StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            "busy",
        )
            .into_response();
    }
    if roll < fault / 2 {
        proxy.faults.slow.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let answer = forward(&proxy, &parts, body).await;
    proxy.faults.forwarded.fetch_add(1, Ordering::Relaxed);
    if roll < fault * 3 / 4 && roll >= fault / 2 && is_write {
        // The write landed upstream; its reply is lost.
        proxy.faults.lost_reply.fetch_add(1, Ordering::Relaxed);
        return http::StatusCode::BAD_GATEWAY.into_response();
    }
    if roll < fault && roll >= fault * 3 / 4 && !is_write {
        proxy.faults.garbled.fetch_add(1, Ordering::Relaxed);
        return (http::StatusCode::OK, "{\"truncated\": ").into_response();
    }
    answer
}

async fn forward(proxy: &Proxy, parts: &http::request::Parts, body: Bytes) -> Response {
    let url = format!(
        "{}{}",
        proxy.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut request = proxy.http.request(parts.method.clone(), url).body(body);
    for name in ["x-api-key", "content-type"] {
        if let Some(value) = parts.headers.get(name) {
            request = request.header(name, value.clone());
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.unwrap_or_default();
            let mut answer = (status, bytes).into_response();
            for name in ["x-total-count", "content-type", "location"] {
                if let Some(value) = headers.get(name) {
                    answer.headers_mut().insert(name, value.clone());
                }
            }
            answer
        }
        Err(_) => http::StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// What the IdP meant a user to be.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    id: Option<String>,
    title: String,
    active: bool,
    deleted: bool,
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    gave_up: AtomicU64,
}

impl Tally {
    fn count(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = self.by_status.lock() {
            *map.entry(status).or_default() += 1;
        }
    }
}

struct Idp {
    http: reqwest::Client,
    root: String,
    tally: Arc<Tally>,
}

impl Idp {
    /// One request, retried like an IdP on 429/5xx (honouring Retry-After, capped).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        for attempt in 0..12u32 {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.root))
                .bearer_auth(TOKEN);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/scim+json")
                    .body(body.to_string());
            }
            let Ok(response) = request.send().await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let status = response.status().as_u16();
            self.tally.count(status);
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if matches!(status, 429 | 502 | 503 | 504) {
                let wait = retry_after.unwrap_or(1).min(3) * 1000 + u64::from(attempt) * 100;
                tokio::time::sleep(Duration::from_millis(wait)).await;
                // A write whose reply was lost may have landed: the caller checks.
                if method != reqwest::Method::GET {
                    return Some((status, body));
                }
                continue;
            }
            return Some((status, body));
        }
        self.tally.gave_up.fetch_add(1, Ordering::Relaxed);
        None
    }

    async fn find(&self, user_name: &str) -> Option<Value> {
        let path = format!(
            "/scim/generic/v2/Users?filter=userName%20eq%20%22{}%22",
            user_name.replace('@', "%40")
        );
        let (status, body) = self.call(reqwest::Method::GET, &path, None).await?;
        (status == 200 && body["totalResults"] == 1).then(|| body["Resources"][0].clone())
    }
}

fn user_body(name: &str, title: &str, active: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{name}@example.com"),
        "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
        "title": title,
        "active": active
    })
}

/// One write: method, path, body, and what it does to the expected state.
type Operation = (
    reqwest::Method,
    String,
    Option<Value>,
    Box<dyn Fn(&mut Expected) + Send>,
);

/// One step of a worker on one of its users, keeping `expected` exact.
async fn step(
    idp: &Idp,
    name: &str,
    expected: &mut Expected,
    rng: &mut rand::rngs::StdRng,
    n: u64,
) {
    let title = format!("t{n}");
    let user_name = format!("{name}@example.com");
    match (&expected.id, expected.deleted) {
        (None, _) | (Some(_), true) => {
            // The IdP's pre-create look-up, then the create.
            if let Some(found) = idp.find(&user_name).await
                && !expected.deleted
            {
                expected.id = found["id"].as_str().map(str::to_string);
                return;
            }
            let body = user_body(name, &title, true);
            let answer = idp
                .call(reqwest::Method::POST, "/scim/generic/v2/Users", Some(&body))
                .await;
            match answer {
                Some((201, created)) => {
                    *expected = Expected {
                        id: created["id"].as_str().map(str::to_string),
                        title,
                        active: true,
                        deleted: false,
                    };
                }
                // Lost reply or a retry of a landed create: the look-up tells.
                _ => {
                    if let Some(found) = idp.find(&user_name).await {
                        *expected = Expected {
                            id: found["id"].as_str().map(str::to_string),
                            title: found["title"].as_str().unwrap_or("").to_string(),
                            active: found["active"] == true,
                            deleted: false,
                        };
                    }
                }
            }
        }
        (Some(id), false) => {
            let id = id.clone();
            let choice = rng.random_range(0..10);
            let (method, path, body, effect): Operation = match choice {
                0..=3 => (
                    reqwest::Method::PATCH,
                    format!("/scim/entra/v2/Users/{id}"),
                    Some(
                        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "Replace", "path": "title", "value": title.clone()}]}),
                    ),
                    Box::new({
                        let t = title.clone();
                        move |e: &mut Expected| e.title = t.clone()
                    }),
                ),
                4..=6 => {
                    let mut body = user_body(name, &title, expected.active);
                    body["id"] = json!(id.clone());
                    (
                        reqwest::Method::PUT,
                        format!("/scim/okta/v2/Users/{id}"),
                        Some(body),
                        Box::new({
                            let t = title.clone();
                            move |e: &mut Expected| e.title = t.clone()
                        }),
                    )
                }
                7 | 8 => {
                    let active = !expected.active;
                    (
                        reqwest::Method::PATCH,
                        format!("/scim/okta/v2/Users/{id}"),
                        Some(
                            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": active}}]}),
                        ),
                        Box::new(move |e: &mut Expected| e.active = active),
                    )
                }
                _ => (
                    reqwest::Method::DELETE,
                    format!("/scim/generic/v2/Users/{id}"),
                    None,
                    Box::new(|e: &mut Expected| e.deleted = true),
                ),
            };
            // Writes here are idempotent: repeat until a definite answer.
            for _ in 0..12 {
                match idp.call(method.clone(), &path, body.as_ref()).await {
                    Some((200 | 204, _)) => {
                        effect(expected);
                        return;
                    }
                    // A repeated DELETE whose first try landed.
                    Some((404, _)) if method == reqwest::Method::DELETE => {
                        effect(expected);
                        return;
                    }
                    Some((429 | 502 | 503 | 504, _)) | None => continue,
                    Some((status, body)) => {
                        eprintln!("unexpected {status} for {method} {path}: {body}");
                        return;
                    }
                }
            }
            idp.tally.gave_up.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    harness::exit_status(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = harness::scimgate_binary()?;
    let (_legacy, legacy_port) = harness::start_legacy(&bin).await?;
    let legacy = format!("http://127.0.0.1:{legacy_port}");

    let faulty = Arc::new(Proxy {
        upstream: legacy.clone(),
        http: reqwest::Client::new(),
        faults: Faults::default(),
        per_mille: args.fault_per_mille,
    });
    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let proxy_port = proxy_listener.local_addr()?.port();
    let app = axum::Router::new()
        .fallback(proxy)
        .with_state(faulty.clone());
    tokio::spawn(async move { axum::serve(proxy_listener, app).await });

    let port = free_port()?;
    let config = tempdir()?.join("soak.toml");
    let text = harness::gateway_config(port, proxy_port)
        // A breaker that opens on this fault rate would refuse most of the run.
        .replace(
            "secrets.api_key",
            "breaker = { failures = 20, cooldown_ms = 2000 }\nsecrets.api_key",
        );
    std::fs::write(&config, text)?;
    let gateway_child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = gateway_child.id();
    let _gateway = Process(gateway_child);
    let root = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{root}/healthz"), None).await?;
    let (_, rss_start, _) = usage(pid)?;
    println!(
        "soak: {} min, {} workers × {} users, faults {}‰; gateway RSS at start {:.1} MiB",
        args.minutes,
        args.workers,
        args.users_per_worker,
        args.fault_per_mille,
        rss_start as f64 / 1024.0
    );

    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(args.minutes * 60);
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..args.workers {
        let idp = Idp {
            http: reqwest::Client::new(),
            root: root.clone(),
            tally: tally.clone(),
        };
        let users = args.users_per_worker;
        workers.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
            let mut expected: Vec<Expected> = vec![
                Expected {
                    id: None,
                    title: String::new(),
                    active: true,
                    deleted: false
                };
                users
            ];
            let mut n = 0u64;
            while Instant::now() < deadline {
                let u = rng.random_range(0..users);
                n += 1;
                step(
                    &idp,
                    &format!("soak-{w}-{u}"),
                    &mut expected[u],
                    &mut rng,
                    n,
                )
                .await;
            }
            (w, expected)
        });
    }
    let progress = {
        let tally = tally.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let rss = usage(pid).map(|u| u.1).unwrap_or(0);
                println!(
                    "  {} requests, RSS {:.1} MiB",
                    tally.requests.load(Ordering::Relaxed),
                    rss as f64 / 1024.0
                );
            }
        })
    };
    let mut outcomes = Vec::new();
    while let Some(Ok(result)) = workers.join_next().await {
        outcomes.push(result);
    }
    progress.abort();
    let (_, rss_end, rss_peak) = usage(pid)?;

    // Check the upstream's state directly.
    let http = reqwest::Client::new();
    let (mut checked, mut wrong, mut duplicated) = (0, 0, 0);
    for (w, expected) in &outcomes {
        for (u, want) in expected.iter().enumerate() {
            if want.id.is_none() {
                continue;
            }
            checked += 1;
            let login = format!("soak-{w}-{u}@example.com");
            let records: Value = http
                .get(format!("{legacy}/api/v1/users"))
                .query(&[
                    ("login", login.as_str()),
                    ("status", "enabled,disabled,archived"),
                ])
                .header("x-api-key", API_KEY)
                .send()
                .await?
                .json()
                .await?;
            let records = records.as_array().cloned().unwrap_or_default();
            if records.len() != 1 {
                duplicated += 1;
                eprintln!("{login}: {} upstream records", records.len());
                continue;
            }
            let record = &records[0];
            let status = if want.deleted {
                "archived"
            } else if want.active {
                "enabled"
            } else {
                "disabled"
            };
            let title_ok = want.deleted || record["job_title"] == want.title.as_str();
            if record["status"] != status
                || !title_ok
                || record["id"].as_u64().map(|id| id.to_string()) != want.id
            {
                wrong += 1;
                eprintln!("{login}: expected {want:?}, upstream has {record}");
            }
        }
    }
    let faults = &faulty.faults;
    println!(
        "\nrequests served: {}",
        tally.requests.load(Ordering::Relaxed)
    );
    println!(
        "answers by status: {:?}",
        tally
            .by_status
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    );
    println!(
        "IdP gave up after retries: {}",
        tally.gave_up.load(Ordering::Relaxed)
    );
    println!(
        "upstream calls forwarded: {}; faults: {} unavailable, {} slow, {} lost replies, {} garbled",
        faults.forwarded.load(Ordering::Relaxed),
        faults.unavailable.load(Ordering::Relaxed),
        faults.slow.load(Ordering::Relaxed),
        faults.lost_reply.load(Ordering::Relaxed),
        faults.garbled.load(Ordering::Relaxed)
    );
    println!(
        "gateway RSS: start {:.1} MiB, end {:.1} MiB, peak {:.1} MiB",
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        rss_peak as f64 / 1024.0
    );
    println!(
        "upstream state: {checked} users checked, {wrong} wrong, {duplicated} missing or duplicated"
    );
    if wrong + duplicated > 0 {
        bail!("the upstream's state does not match what the IdP meant");
    }
    Ok(())
}
