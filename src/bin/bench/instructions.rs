//! Instructions per request of the in-process request path, for
//! `scimgate-bench --instructions`: the gateway's router, dialect,
//! provisioner and mapping, driven by `oneshot` on one thread, against the
//! reference legacy API answering in the same process (no socket on either
//! side). Callgrind counts only inside [`measured_request`], and not while
//! the upstream's share of it is polled ([`unmeasured_upstream_poll`]), so
//! a figure is what the gateway itself costs per request, HTTP client
//! request building included, and it does not move with the machine's load.
//!
//! Counting is callgrind's own `--toggle-collect` on those two functions,
//! not a harness crate's: the crates (gungraun, formerly iai-callgrind)
//! need a runner binary installed at their exact version, and measure
//! whole functions, where the upstream's share must be left out.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use http::{Request, Response};
use http_body_util::BodyExt;
use scimgate::upstream::{InProcess, UpstreamClient};
use scimgate_reference::legacy::{Database, LegacyApi, LegacyConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::harness::{API_KEY, TOKEN, gateway_config, tempdir};

/// The scenarios, as `tools/instructions` names them, and a list page;
/// then `json-page`, not a request: the upstream's answer to that page read
/// into a `serde_json::Value` and written back with `serde_json`, the least
/// any gateway that reads its upstream's JSON pays for the page.
pub const SCENARIOS: [&str; 7] = ["get", "filter", "post", "patch", "put", "list", "json-page"];

/// Users besides alice, for the list scenario's page of 100.
const LISTED: usize = 150;

/// Requests made before counting starts: first uses (lazy statics, metric
/// registration, the pool of the upstream's store) are not a request's cost.
const WARMUP: usize = 20;

/// Whether a counted request is running. Callgrind's toggle flips the
/// collection state on entry and exit, so the upstream's poll may pass
/// through [`unmeasured_upstream_poll`] only inside [`measured_request`]:
/// during the warm-up it would switch counting on.
static MEASURING: AtomicBool = AtomicBool::new(false);

/// Runs each scenario under callgrind (this binary, `--count-in-process`)
/// and reports instructions per request; writes `output` as JSON.
pub fn run(only: &[String], requests: usize, output: &Path) -> anyhow::Result<()> {
    let valgrind = Command::new("valgrind").arg("--version").output();
    if !valgrind.is_ok_and(|out| out.status.success()) {
        anyhow::bail!("--instructions needs valgrind (Debian package valgrind)");
    }
    let me = std::env::current_exe()?;
    let dir = tempdir()?;
    let mut results = serde_json::Map::new();
    println!("{:<8} {:>14}", "scenario", "instructions");
    for scenario in SCENARIOS {
        if !only.is_empty() && !only.iter().any(|o| scenario.contains(o.as_str())) {
            continue;
        }
        let out = dir.join(format!("callgrind.{scenario}.out"));
        let status = Command::new("valgrind")
            .args([
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=*measured_request*",
                "--toggle-collect=*unmeasured_upstream_poll*",
                "--toggle-collect=*measured_json_round_trip*",
            ])
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&me)
            .args(["--count-in-process", scenario, "--requests"])
            .arg(requests.to_string())
            .stderr(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "{scenario}: the counted run failed");
        let total = total_instructions(&out)?;
        let per_request = total as f64 / requests as f64;
        println!("{scenario:<8} {per_request:>14.0}");
        results.insert(scenario.to_string(), json!(per_request.round()));
    }
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let report = json!({"requests_per_scenario": requests, "instructions_per_request": results});
    std::fs::write(output, serde_json::to_string_pretty(&report)?)?;
    println!("callgrind files: {} (callgrind_annotate)", dir.display());
    println!("results: {}", output.display());
    Ok(())
}

/// The events total of a callgrind output file.
fn total_instructions(file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("no callgrind output at {}", file.display()))?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|n| n.trim().parse().ok())
        .context("the callgrind output has no total")
}

/// The counted process: `requests` requests of `scenario` after the warm-up,
/// every answer checked, so no error path is what gets counted.
pub fn count(scenario: &str, requests: usize) -> anyhow::Result<()> {
    // One thread: every future of the gateway's is polled inside the
    // measured call (callgrind toggles per thread).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Logged as `serve` logs, JSON at info, the audit line included;
    // written nowhere (the writing is the log thread's, not a request's).
    tracing_subscriber::fmt()
        .json()
        .fmt_fields(scimgate::log_fields::JsonSpanFields)
        .with_env_filter("info")
        .with_writer(std::io::sink)
        .init();
    scimgate::audit::write_log_lines_to(std::io::sink());
    if scenario == "json-page" {
        let page = runtime.block_on(upstream_page())?;
        for _ in 0..WARMUP {
            json_round_trip(&page)?;
        }
        for _ in 0..requests {
            measured_json_round_trip(&page)?;
        }
        return Ok(());
    }
    let listed = if scenario == "list" { LISTED } else { 0 };
    let (router, alice) = runtime.block_on(gateway(listed))?;
    let make = |i: usize| request(scenario, &alice, i);
    for i in 0..WARMUP {
        runtime.block_on(answer(&router, make(i)?))?;
    }
    for i in WARMUP..WARMUP + requests {
        measured_request(&runtime, &router, make(i)?)?;
    }
    Ok(())
}

/// One request through the gateway, answer read whole: the counted work.
/// (Not async: callgrind toggles on a function's entry and exit, and an
/// async function's body runs in its future's polls, not in it.)
#[inline(never)]
fn measured_request(
    runtime: &tokio::runtime::Runtime,
    router: &Router,
    request: Request<Body>,
) -> anyhow::Result<()> {
    MEASURING.store(true, Ordering::Relaxed);
    let answered = runtime.block_on(answer(router, request));
    MEASURING.store(false, Ordering::Relaxed);
    answered
}

/// [`json_round_trip`], counted.
#[inline(never)]
fn measured_json_round_trip(page: &str) -> anyhow::Result<usize> {
    json_round_trip(page)
}

/// A page read into a value and written out, both by `serde_json`; the
/// length written, so neither is optimised away.
fn json_round_trip(page: &str) -> anyhow::Result<usize> {
    let value: Value = serde_json::from_str(page)?;
    Ok(serde_json::to_vec(&value)?.len())
}

async fn answer(router: &Router, request: Request<Body>) -> anyhow::Result<()> {
    let what = format!("{} {}", request.method(), request.uri());
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "{what}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// The in-process legacy API's answer to the list scenario's page: the
/// upstream text the gateway reads for it.
async fn upstream_page() -> anyhow::Result<String> {
    let (upstream, _) = seeded_upstream(LISTED).await?;
    let answered = upstream
        .oneshot(
            Request::get("/api/v1/users?status=enabled,disabled&page=1&per_page=100")
                .header("x-api-key", API_KEY)
                .body(Body::empty())?,
        )
        .await?;
    anyhow::ensure!(
        answered.status().is_success(),
        "the page: {}",
        answered.status()
    );
    let body = answered.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

/// The gateway's router, with the benchmark's connections, in front of an
/// in-process legacy API holding one user (whose id is answered) and
/// `listed` more.
async fn gateway(listed: usize) -> anyhow::Result<(Router, String)> {
    let (upstream, alice) = seeded_upstream(listed).await?;
    let serve: InProcess = std::sync::Arc::new(move |request: Request<Bytes>| {
        let upstream = upstream.clone();
        Box::pin(Unmeasured(Box::pin(async move {
            match upstream.oneshot(request.map(Body::from)).await {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    Response::from_parts(parts, bytes)
                }
                Err(never) => match never {},
            }
        }))) as Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>
    });
    let dir = tempdir()?;
    let config = dir.join("instructions.toml");
    // The port is never bound: nothing leaves the process.
    std::fs::write(&config, gateway_config(9, 9))?;
    let (config, _) =
        scimgate::config::load(&config).map_err(|report| anyhow::anyhow!("{report}"))?;
    let router = scimgate::server::router_with(&config, None, |upstream| {
        UpstreamClient::in_process(upstream, serve.clone())
    })?;
    Ok((router, alice))
}

/// A legacy API in this process, its router, holding alice (whose id is
/// answered) and `listed` more users.
async fn seeded_upstream(listed: usize) -> anyhow::Result<(Router, String)> {
    let legacy = LegacyApi::open(LegacyConfig {
        database: Database::Memory,
        api_key: API_KEY.to_string(),
    })?;
    let upstream = legacy.router();
    let created = upstream
        .clone()
        .oneshot(
            Request::post("/api/v1/users")
                .header("x-api-key", API_KEY)
                .header("content-type", "application/json")
                .body(Body::from(
                    json!({"login": "alice@example.com", "email": "alice@example.com", "first_name": "Alice", "last_name": "Liddell"})
                        .to_string(),
                ))?,
        )
        .await?;
    let body = created.into_body().collect().await?.to_bytes();
    let alice = serde_json::from_slice::<Value>(&body)?["id"].to_string();
    for n in 0..listed {
        let user = json!({"login": format!("listed-{n}@example.com"), "email": format!("listed-{n}@example.com"), "first_name": "Listed", "last_name": format!("N{n}"), "job_title": "Engineer"});
        let seeded = upstream
            .clone()
            .oneshot(
                Request::post("/api/v1/users")
                    .header("x-api-key", API_KEY)
                    .header("content-type", "application/json")
                    .body(Body::from(user.to_string()))?,
            )
            .await?;
        anyhow::ensure!(seeded.status().is_success(), "seeding: {}", seeded.status());
    }
    Ok((upstream, alice.trim_matches('"').to_string()))
}

/// The upstream's share of a request, polled in a function of its own that
/// callgrind leaves out of the count.
struct Unmeasured(Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>);

impl Future for Unmeasured {
    type Output = Response<Bytes>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match MEASURING.load(Ordering::Relaxed) {
            true => unmeasured_upstream_poll(self.0.as_mut(), cx),
            false => self.0.as_mut().poll(cx),
        }
    }
}

#[inline(never)]
fn unmeasured_upstream_poll(
    future: Pin<&mut (dyn Future<Output = Response<Bytes>> + Send)>,
    cx: &mut Context<'_>,
) -> Poll<Response<Bytes>> {
    future.poll(cx)
}

/// Request `i` of a scenario: the same requests as `tools/instructions`,
/// each write changing something, through the dialect whose shape it is;
/// `list` is a page of 100 users.
fn request(scenario: &str, alice: &str, i: usize) -> anyhow::Result<Request<Body>> {
    let (method, path, body) = match scenario {
        "get" => ("GET", format!("/scim/generic/v2/Users/{alice}"), None),
        "list" => (
            "GET",
            "/scim/generic/v2/Users?startIndex=1&count=100".to_string(),
            None,
        ),
        "filter" => (
            "GET",
            "/scim/generic/v2/Users?filter=userName%20eq%20%22alice%40example.com%22".to_string(),
            None,
        ),
        "post" => (
            "POST",
            "/scim/generic/v2/Users".to_string(),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("u-{i}@example.com"),
                "name": {"givenName": "Bench", "familyName": format!("N{i}")},
                "emails": [{"value": format!("u-{i}@example.com"), "type": "work", "primary": true}],
                "title": "Engineer",
                "active": true
            })),
        ),
        "patch" => (
            "PATCH",
            format!("/scim/entra/v2/Users/{alice}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "Replace", "path": "title", "value": format!("T-{i}")},
                    {"op": "Replace", "path": "name.familyName", "value": format!("F-{i}")}
                ]
            })),
        ),
        "put" => (
            "PUT",
            format!("/scim/okta/v2/Users/{alice}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "alice@example.com",
                "name": {"givenName": "Alice", "familyName": "Liddell"},
                "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
                "title": format!("T-{i}"),
                "active": true
            })),
        ),
        other => anyhow::bail!("unknown scenario {other} ({})", SCENARIOS.join(", ")),
    };
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "scimgate.bench")
        .header("authorization", format!("Bearer {TOKEN}"));
    Ok(match body {
        Some(body) => builder
            .header("content-type", "application/scim+json")
            .body(Body::from(body.to_string()))?,
        None => builder.body(Body::empty())?,
    })
}
