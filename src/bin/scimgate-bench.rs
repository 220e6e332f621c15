//! The benchmark harness: starts the reference legacy API and the gateway as
//! separate processes on loopback, drives each scenario through the gateway
//! and the equivalent request directly at the legacy API in the same run, and
//! reports throughput, latency percentiles, errors, the gateway's CPU time per
//! request and its RSS, as a table and as JSON.
//!
//! `cargo build --release --bins && target/release/scimgate-bench [--users N]`

#![allow(
    clippy::disallowed_methods,
    reason = "measurement code: wall time and whole bodies are the point"
)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::{Value, json};

#[path = "harness/mod.rs"]
mod harness;

#[path = "bench/cluster.rs"]
mod cluster;

#[path = "bench/lookups.rs"]
mod lookups;

#[path = "bench/floor.rs"]
mod floor;

#[path = "bench/instructions.rs"]
mod instructions;

// The gateway's allocator: the floor and the in-process count allocate as
// the gateway does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use harness::{API_KEY, Process, TOKEN, free_port, gateway_config, tempdir, usage, wait_for};

#[derive(Parser)]
#[command(about = "Measure scimgate against direct calls to the reference legacy API")]
struct Args {
    /// Users created by the initial-sync scenario (and then listed).
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds each timed scenario runs (per side).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrency of the initial sync (an IdP's, not a load test's).
    #[arg(long, default_value_t = 8)]
    sync_concurrency: usize,
    /// Where the JSON results go.
    #[arg(long, default_value = "target/bench/results.json")]
    output: PathBuf,
    /// Run only the scenarios whose name contains this text; repeat it
    /// for several (for profiling one of them, or comparing a few); the
    /// memory and startup figures are still reported.
    #[arg(long)]
    only: Vec<String>,
    /// Send the timed scenarios at this fixed total rate (requests per
    /// second, spread over the connections) instead of as fast as possible:
    /// latency then shows the gateway's own cost rather than queueing for a
    /// saturated CPU. Latency counts from when each request is sent (the
    /// runtime's timer is too coarse, 1 ms, to count from the schedule).
    #[arg(long)]
    rate: Option<f64>,
    /// Give the measured server a CPU of its own (the last one, with
    /// `taskset`): the reference API while direct requests run, the gateway
    /// while gateway requests run; the load generator and the idle server
    /// share the others. CPU per request then stops depending on where the
    /// scheduler happened to put the three processes.
    #[arg(long)]
    pin: bool,
    /// Measure instead what `[cluster]` adds: a gateway alone and one
    /// sharing limits and locks through a Redis of its own (needs
    /// `redis-server`), side by side; writes target/bench/cluster.json.
    #[arg(long)]
    cluster: bool,
    /// Interleaved rounds of each `--cluster` scenario (medians reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measure instead IdP look-ups against the Wrike-shaped reference API
    /// (lists unfilterable), answered by the look-up index, at each of
    /// `--lookup-users` account sizes, and an initial sync of `--users`
    /// users; writes target/bench/lookups.json.
    #[arg(long)]
    lookups: bool,
    /// Run the floor beside the gateway: a bare forwarder on the same
    /// listener and HTTP client, making the same upstream calls with none
    /// of the gateway's work; every scenario then reports its CPU per
    /// request and the gateway's over it.
    #[arg(long)]
    floor: bool,
    /// Serve the floor on this port (what `--floor` runs as a process).
    #[arg(long, hide = true, requires = "floor_upstream")]
    serve_floor: Option<u16>,
    /// The legacy API's port, for `--serve-floor`.
    #[arg(long, hide = true)]
    floor_upstream: Option<u16>,
    /// Count instead, with valgrind's callgrind, the instructions of one
    /// request of each of GET, filter, POST, PATCH, PUT and a list page of
    /// 100 users on the
    /// in-process request path (router, dialect, provisioner, mapping)
    /// against the reference legacy API in the same process, its own work
    /// left out, and beside them `json-page`: that page's upstream answer
    /// read into a serde_json value and written back, the least a gateway
    /// reading its upstream's JSON pays; writes target/bench/instructions.json.
    #[arg(long)]
    instructions: bool,
    /// Counted requests per scenario of `--instructions`.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Make `--requests` requests of this scenario in process (what
    /// `--instructions` runs under callgrind).
    #[arg(long, hide = true)]
    count_in_process: Option<String>,
    /// Account sizes for `--lookups` (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    lookup_users: Vec<usize>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct Side {
    requests: usize,
    errors: usize,
    seconds: f64,
    throughput: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

#[derive(Debug, serde::Serialize)]
struct Scenario {
    name: String,
    gateway: Side,
    direct: Side,
    /// Gateway p50 − direct p50 (µs), and the same at p99.
    added_p50_us: i64,
    added_p99_us: i64,
    /// Gateway throughput / direct throughput.
    throughput_ratio: f64,
    gateway_cpu_us_per_request: f64,
    /// The reference API's CPU per direct request: what a plain server on the
    /// same stack costs, beside the gateway's proxying cost.
    upstream_cpu_us_per_direct_request: f64,
    gateway_rss_kib_after: u64,
    /// With `--floor`: the bare forwarder's side, its CPU per request, and
    /// the gateway's CPU per request over it.
    floor: Option<Side>,
    floor_cpu_us_per_request: Option<f64>,
    gateway_over_floor: Option<f64>,
}

/// The floor's process, and how a gateway request becomes the floor's.
struct Floor {
    target: Arc<Target>,
    pid: u32,
    gateway_root: String,
    root: String,
}

impl Floor {
    /// The same request at the floor; names the gateway creates get a
    /// floor's own, so neither side finds the other's users.
    fn rewrite(&self, through: Make) -> Make {
        let (from, to) = (self.gateway_root.clone(), self.root.clone());
        Arc::new(move |i| {
            through(i)
                .into_iter()
                .map(|(method, url, body)| {
                    let url = url.replacen(&from, &to, 1).replace("-gw-", "-floor-");
                    let body = body.map(|body| {
                        serde_json::from_str(&body.to_string().replace("-gw-", "-floor-"))
                            .unwrap_or(body)
                    });
                    (method, url, body)
                })
                .collect()
        })
    }
}

type Make = Arc<dyn Fn(usize) -> Vec<Request> + Send + Sync>;

/// One request: method, URL, body.
type Request = (reqwest::Method, String, Option<Value>);

struct Target {
    http: reqwest::Client,
    auth: (&'static str, String),
}

impl Target {
    async fn send(&self, (method, url, body): &Request) -> bool {
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(self.auth.0, &self.auth.1);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        match request.send().await {
            Ok(response) => {
                let ok = response.status().is_success();
                let _ = response.bytes().await;
                ok
            }
            Err(_) => false,
        }
    }
}

/// How a scenario is driven: by how many connections, for how long, and at
/// what total rate (`None`: as fast as the server answers).
#[derive(Clone, Copy)]
struct Load {
    concurrency: usize,
    duration: Duration,
    rate: Option<f64>,
}

/// Runs `make(i)` requests from `concurrency` workers for `duration` (or
/// until `limit` requests), recording each latency.
async fn drive(
    target: Arc<Target>,
    load: Load,
    limit: Option<usize>,
    make: Arc<dyn Fn(usize) -> Vec<Request> + Send + Sync>,
) -> Side {
    let Load {
        concurrency,
        duration,
        rate,
    } = load;
    let counter = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (target, counter, make) = (target.clone(), counter.clone(), make.clone());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if limit.is_some_and(|l| i >= l)
                    || (limit.is_none() && started.elapsed() >= duration)
                {
                    break;
                }
                // At a fixed rate, unit i is due at i / rate.
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                // One unit may be several requests (a look-up then a create).
                for request in make(i) {
                    let sent = Instant::now();
                    if !target.send(&request).await {
                        errors += 1;
                    }
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(Ok((l, e))) = workers.join_next().await {
        latencies.extend(l);
        errors += e;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Side {
        requests: latencies.len(),
        errors,
        seconds,
        throughput: latencies.len() as f64 / seconds,
        p50_us: at(0.50),
        p99_us: at(0.99),
        p999_us: at(0.999),
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let outcome = if let Some(scenario) = &args.count_in_process {
        // On a runtime of its own, one thread: see `instructions::count`.
        instructions::count(scenario, args.requests)
    } else if args.instructions {
        let output = args.output.with_file_name("instructions.json");
        instructions::run(&args.only, args.requests, &output)
    } else {
        tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(run(args)))
    };
    harness::exit_status(outcome)
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let (Some(port), Some(upstream)) = (args.serve_floor, args.floor_upstream) {
        return floor::serve(port, upstream).await;
    }
    let bin = harness::scimgate_binary()?;
    if args.cluster {
        return cluster::run(&args, &bin).await;
    }
    if args.lookups {
        return lookups::run(&args, &bin).await;
    }
    let dir = tempdir()?;
    let (legacy_process, legacy_port) = harness::start_legacy(&bin).await?;
    let legacy = format!("http://127.0.0.1:{legacy_port}/api/v1");

    // The gateway, with one connection per dialect the scenarios use.
    let port = free_port()?;
    let config = dir.join("scimgate.toml");
    std::fs::write(&config, gateway_config(port, legacy_port))?;
    let started = Instant::now();
    let mut gateway_child = Command::new(&bin)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let gateway_pid = gateway_child.id();
    let logs = gateway_child.stdout.take().context("no gateway stdout")?;
    let _gateway = Process(gateway_child);
    let root = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{root}/readyz"), None).await?;
    let startup = started.elapsed();
    let (_, idle_rss, _) = usage(gateway_pid)?;

    // A reload, timed by the gateway itself.
    let reload_ms = reload_time(gateway_pid, logs).await;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let gateway = Arc::new(Target {
        http: http.clone(),
        auth: ("authorization", format!("Bearer {TOKEN}")),
    });
    let direct = Arc::new(Target {
        http: http.clone(),
        auth: ("x-api-key", API_KEY.to_string()),
    });

    // A user and a team to read and write.
    let user = create(
        &gateway,
        &format!("{root}/scim/generic/v2/Users"),
        &scim_user("bench"),
    )
    .await?;
    // Writes go round-robin over their own users: the gateway serialises
    // read-modify-writes of one resource (as it must, or concurrent PATCHes
    // lose each other's changes), so 32 connections writing one user would
    // measure that queue, not the cost of a write.
    let mut writers = Vec::new();
    for n in 0..args.concurrency.max(1) {
        let body = scim_user(&format!("writer-{n}"));
        writers.push(create(&gateway, &format!("{root}/scim/generic/v2/Users"), &body).await?);
    }
    let writers: Arc<[String]> = writers.into();
    let group_body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "bench", "members": [{"value": user}]});
    let group = create(
        &gateway,
        &format!("{root}/scim/generic/v2/Groups"),
        &group_body,
    )
    .await?;

    let generic = format!("{root}/scim/generic/v2");
    let entra = format!("{root}/scim/entra/v2");
    let okta = format!("{root}/scim/okta/v2");
    let duration = Duration::from_secs(args.seconds);
    let timed_load = Load {
        concurrency: args.concurrency,
        duration,
        rate: args.rate,
    };
    let pids = Pids {
        gateway: gateway_pid,
        upstream: legacy_process.0.id(),
        pinned: args.pin.then(cpu_layout).transpose()?,
    };
    let _floor_process;
    let floor = match args.floor {
        false => None,
        true => {
            let port = free_port()?;
            let child = Command::new(std::env::current_exe()?)
                .args(["--serve-floor", &port.to_string()])
                .args(["--floor-upstream", &legacy_port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let pid = child.id();
            _floor_process = harness::Process(child);
            let floor_root = format!("http://127.0.0.1:{port}");
            wait_for(&format!("{floor_root}/healthz"), None).await?;
            Some(Floor {
                target: Arc::new(Target {
                    http: http.clone(),
                    auth: ("authorization", format!("Bearer {TOKEN}")),
                }),
                pid,
                gateway_root: root.clone(),
                root: floor_root,
            })
        }
    };
    if let Some(layout) = &pids.pinned {
        pin(std::process::id(), &layout.shared())?;
        pin(gateway_pid, &layout.own())?;
        if let Some(floor) = &floor {
            pin(floor.pid, &layout.shared())?;
        }
    }
    let mut scenarios = Vec::new();

    let timed: Vec<(&str, Make, Make)> = vec![
        (
            "GET /Users/{id}",
            Arc::new({
                let (u, g) = (user.clone(), generic.clone());
                move |_| vec![(reqwest::Method::GET, format!("{g}/Users/{u}"), None)]
            }),
            Arc::new({
                let (u, l) = (user.clone(), legacy.clone());
                move |_| vec![(reqwest::Method::GET, format!("{l}/users/{u}"), None)]
            }),
        ),
        (
            "GET /Users?filter=userName eq",
            Arc::new({
                let g = generic.clone();
                move |_| {
                    vec![(
                        reqwest::Method::GET,
                        format!("{g}/Users?filter=userName%20eq%20%22bench%40example.com%22"),
                        None,
                    )]
                }
            }),
            Arc::new({
                let l = legacy.clone();
                move |_| {
                    vec![(
                        reqwest::Method::GET,
                        format!("{l}/users?login=bench%40example.com&status=enabled,disabled"),
                        None,
                    )]
                }
            }),
        ),
        (
            "POST /Users",
            Arc::new({
                let g = generic.clone();
                move |i| {
                    vec![(
                        reqwest::Method::POST,
                        format!("{g}/Users"),
                        Some(scim_user(&format!("post-gw-{i}"))),
                    )]
                }
            }),
            Arc::new({
                let l = legacy.clone();
                move |i| {
                    vec![(
                        reqwest::Method::POST,
                        format!("{l}/users"),
                        Some(legacy_user(&format!("post-direct-{i}"))),
                    )]
                }
            }),
        ),
        (
            "PATCH two attributes (Entra)",
            Arc::new({
                let (w, e) = (writers.clone(), entra.clone());
                move |i| {
                    let u = &w[i % w.len()];
                    vec![(
                        reqwest::Method::PATCH,
                        format!("{e}/Users/{u}"),
                        Some(json!({
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "Replace", "path": "title", "value": format!("T{i}")}, {"op": "Replace", "path": "name.familyName", "value": format!("F{i}")}]
                        })),
                    )]
                }
            }),
            Arc::new({
                let (w, l) = (writers.clone(), legacy.clone());
                move |i| {
                    let u = &w[i % w.len()];
                    vec![(
                        reqwest::Method::PATCH,
                        format!("{l}/users/{u}"),
                        Some(json!({"job_title": format!("T{i}"), "last_name": format!("F{i}")})),
                    )]
                }
            }),
        ),
        (
            "PUT the whole user (Okta)",
            Arc::new({
                let (w, o) = (writers.clone(), okta.clone());
                move |i| {
                    let n = i % w.len();
                    let u = &w[n];
                    let mut body = scim_user(&format!("writer-{n}"));
                    body["id"] = json!(u.clone());
                    body["title"] = json!(format!("P{i}"));
                    vec![(reqwest::Method::PUT, format!("{o}/Users/{u}"), Some(body))]
                }
            }),
            Arc::new({
                let (w, l) = (writers.clone(), legacy.clone());
                move |i| {
                    let u = &w[i % w.len()];
                    vec![(
                        reqwest::Method::PATCH,
                        format!("{l}/users/{u}"),
                        Some(json!({"job_title": format!("P{i}")})),
                    )]
                }
            }),
        ),
        (
            "GET /Groups/{id}?excludedAttributes=members",
            Arc::new({
                let (g0, g) = (group.clone(), generic.clone());
                move |_| {
                    vec![(
                        reqwest::Method::GET,
                        format!("{g}/Groups/{g0}?excludedAttributes=members"),
                        None,
                    )]
                }
            }),
            Arc::new({
                let (g0, l) = (group.clone(), legacy.clone());
                move |_| vec![(reqwest::Method::GET, format!("{l}/teams/{g0}"), None)]
            }),
        ),
    ];
    let chosen = |name: &str| {
        args.only.is_empty() || args.only.iter().any(|only| name.contains(only.as_str()))
    };
    for (name, through, straight) in timed.into_iter().filter(|(name, _, _)| chosen(name)) {
        scenarios.push(
            measure(
                name,
                &gateway,
                &direct,
                floor.as_ref(),
                pids,
                timed_load,
                None,
                through,
                straight,
            )
            .await?,
        );
    }

    // The initial sync: a look-up then a create per user, at an IdP's concurrency.
    let users = args.users;
    let sync_name = format!("initial sync of {users} users (filter GET + POST)");
    let mut rss_after_sync = 0;
    if chosen(&sync_name) {
        let sync = measure(
            &sync_name,
            &gateway,
            &direct,
            floor.as_ref(),
            pids,
            Load {
                concurrency: args.sync_concurrency,
                duration,
                rate: None,
            },
            Some(users),
            Arc::new({
                let g = generic.clone();
                move |i| {
                    vec![
                        (
                            reqwest::Method::GET,
                            format!(
                                "{g}/Users?filter=userName%20eq%20%22sync-gw-{i}%40example.com%22"
                            ),
                            None,
                        ),
                        (
                            reqwest::Method::POST,
                            format!("{g}/Users"),
                            Some(scim_user(&format!("sync-gw-{i}"))),
                        ),
                    ]
                }
            }),
            Arc::new({
                let l = legacy.clone();
                move |i| {
                    vec![
                        (
                            reqwest::Method::GET,
                            format!("{l}/users?login=sync-direct-{i}%40example.com"),
                            None,
                        ),
                        (
                            reqwest::Method::POST,
                            format!("{l}/users"),
                            Some(legacy_user(&format!("sync-direct-{i}"))),
                        ),
                    ]
                }
            }),
        )
        .await?;
        rss_after_sync = sync.gateway_rss_kib_after;
        scenarios.push(sync);
    }

    // The whole collection, 100 per page, its pages in turn for the
    // scenario's time: one pass of a small collection is too few requests
    // for CPU ticks of 10 ms to count per page.
    let mut rss_after_list = 0;
    if chosen("list ") {
        let total = count(&gateway, &format!("{generic}/Users?count=0")).await?;
        let pages = total.div_ceil(100).max(1);
        scenarios.push(
            measure(
                &format!("list {total} users, count=100 ({pages} pages in turn)"),
                &gateway,
                &direct,
                floor.as_ref(),
                pids,
                Load {
                    concurrency: args.concurrency.min(8),
                    duration,
                    rate: None,
                },
                None,
                Arc::new({
                    let g = generic.clone();
                    move |p| {
                        vec![(
                            reqwest::Method::GET,
                            format!("{g}/Users?startIndex={}&count=100", p % pages * 100 + 1),
                            None,
                        )]
                    }
                }),
                Arc::new({
                    let l = legacy.clone();
                    move |p| {
                        vec![(
                            reqwest::Method::GET,
                            format!(
                                "{l}/users?page={}&per_page=100&status=enabled,disabled",
                                p % pages + 1
                            ),
                            None,
                        )]
                    }
                }),
            )
            .await?,
        );
        rss_after_list = scenarios
            .last()
            .map(|s| s.gateway_rss_kib_after)
            .unwrap_or(0);
    }

    // Memory with 1,000 open connections.
    let rss_1000 = rss_with_open_connections(port, gateway_pid, 1000).await?;
    let (_, _, peak_rss) = usage(gateway_pid)?;

    print_table(&scenarios);
    println!();
    println!(
        "startup to ready:            {:.1} ms",
        startup.as_secs_f64() * 1000.0
    );
    match reload_ms {
        Some(ms) => println!("mapping reload (SIGHUP):     {ms} ms (as the gateway logged it)"),
        None => println!("mapping reload (SIGHUP):     not observed"),
    }
    println!(
        "RSS idle:                    {:.1} MiB",
        idle_rss as f64 / 1024.0
    );
    println!(
        "RSS with 1000 connections:   {:.1} MiB",
        rss_1000 as f64 / 1024.0
    );
    println!(
        "RSS after sync / after list: {:.1} / {:.1} MiB",
        rss_after_sync as f64 / 1024.0,
        rss_after_list as f64 / 1024.0
    );
    println!(
        "peak RSS:                    {:.1} MiB",
        peak_rss as f64 / 1024.0
    );
    let results = json!({
        "concurrency": args.concurrency,
        "seconds_per_scenario": args.seconds,
        "rate": args.rate,
        "pinned": args.pin,
        "users": users,
        "startup_ms": startup.as_secs_f64() * 1000.0,
        "reload_ms": reload_ms,
        "rss_idle_kib": idle_rss,
        "rss_1000_connections_kib": rss_1000,
        "rss_after_sync_kib": rss_after_sync,
        "rss_after_list_kib": rss_after_list,
        "peak_rss_kib": peak_rss,
        "scenarios": scenarios,
    });
    if let Some(parent) = args.output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.output, serde_json::to_string_pretty(&results)?)?;
    println!("\nresults: {}", args.output.display());
    Ok(())
}

/// The processes whose CPU time a scenario reads.
#[derive(Clone, Copy)]
struct Pids {
    gateway: u32,
    upstream: u32,
    pinned: Option<CpuLayout>,
}

/// With `--pin`: CPU `own` for the measured server, CPUs `0..own` for the rest.
#[derive(Clone, Copy)]
struct CpuLayout {
    own: usize,
}

impl CpuLayout {
    fn own(self) -> String {
        self.own.to_string()
    }

    fn shared(self) -> String {
        format!("0-{}", self.own - 1)
    }
}

fn cpu_layout() -> anyhow::Result<CpuLayout> {
    let cpus = std::thread::available_parallelism()?.get();
    anyhow::ensure!(cpus >= 2, "--pin needs at least two CPUs");
    Ok(CpuLayout { own: cpus - 1 })
}

/// Moves every thread of `pid` onto `cpus` (new threads inherit it).
fn pin(pid: u32, cpus: &str) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-c", "-p", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("--pin needs `taskset` (util-linux)")?;
    anyhow::ensure!(status.success(), "taskset could not pin process {pid}");
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one scenario's knobs, read in one place"
)]
async fn measure(
    name: &str,
    gateway: &Arc<Target>,
    direct: &Arc<Target>,
    floor: Option<&Floor>,
    pids: Pids,
    load: Load,
    limit: Option<usize>,
    through: Make,
    straight: Make,
) -> anyhow::Result<Scenario> {
    eprintln!("- {name}");
    if let Some(layout) = pids.pinned {
        pin(pids.upstream, &layout.own())?;
    }
    let (upstream_before, _, _) = usage(pids.upstream)?;
    let direct_side = drive(direct.clone(), load, limit, straight).await;
    let (upstream_after, _, _) = usage(pids.upstream)?;
    if let Some(layout) = pids.pinned {
        pin(pids.upstream, &layout.shared())?;
    }
    let per_request = |seconds: f64, side: &Side| seconds * 1e6 / side.requests.max(1) as f64;
    let mut floor_side = None;
    if let Some(floor) = floor {
        if let Some(layout) = pids.pinned {
            pin(pids.gateway, &layout.shared())?;
            pin(floor.pid, &layout.own())?;
        }
        let (before, _, _) = usage(floor.pid)?;
        let side = drive(
            floor.target.clone(),
            load,
            limit,
            floor.rewrite(through.clone()),
        )
        .await;
        let (after, _, _) = usage(floor.pid)?;
        if let Some(layout) = pids.pinned {
            pin(floor.pid, &layout.shared())?;
            pin(pids.gateway, &layout.own())?;
        }
        floor_side = Some((per_request(after - before, &side), side));
    }
    let (cpu_before, _, _) = usage(pids.gateway)?;
    let gateway_side = drive(gateway.clone(), load, limit, through).await;
    let (cpu_after, rss, _) = usage(pids.gateway)?;
    let cpu_us = per_request(cpu_after - cpu_before, &gateway_side);
    let upstream_cpu_us = per_request(upstream_after - upstream_before, &direct_side);
    Ok(Scenario {
        name: name.to_string(),
        added_p50_us: gateway_side.p50_us as i64 - direct_side.p50_us as i64,
        added_p99_us: gateway_side.p99_us as i64 - direct_side.p99_us as i64,
        throughput_ratio: gateway_side.throughput / direct_side.throughput.max(f64::MIN_POSITIVE),
        gateway_cpu_us_per_request: cpu_us,
        upstream_cpu_us_per_direct_request: upstream_cpu_us,
        gateway_rss_kib_after: rss,
        gateway: gateway_side,
        direct: direct_side,
        floor_cpu_us_per_request: floor_side.as_ref().map(|(cpu, _)| *cpu),
        gateway_over_floor: floor_side
            .as_ref()
            .map(|(cpu, _)| cpu_us / cpu.max(f64::MIN_POSITIVE)),
        floor: floor_side.map(|(_, side)| side),
    })
}

fn print_table(scenarios: &[Scenario]) {
    println!(
        "{:<48} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6}",
        "scenario",
        "gw req/s",
        "dir req/s",
        "ratio",
        "gw p50",
        "dir p50",
        "gw p99",
        "gw p99.9",
        "+p50 µs",
        "cpu µs/r",
        "ref µs/r",
        "flr µs/r",
        "gw/floor",
        "errors"
    );
    for s in scenarios {
        println!(
            "{:<48} {:>9.0} {:>9.0} {:>7.2} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9.1} {:>9.1} {:>9} {:>8} {:>6}",
            s.name,
            s.gateway.throughput,
            s.direct.throughput,
            s.throughput_ratio,
            s.gateway.p50_us,
            s.direct.p50_us,
            s.gateway.p99_us,
            s.gateway.p999_us,
            s.added_p50_us,
            s.gateway_cpu_us_per_request,
            s.upstream_cpu_us_per_direct_request,
            s.floor_cpu_us_per_request
                .map_or("—".to_string(), |cpu| format!("{cpu:.1}")),
            s.gateway_over_floor
                .map_or("—".to_string(), |ratio| format!("{ratio:.2}")),
            s.gateway.errors + s.direct.errors + s.floor.as_ref().map_or(0, |f| f.errors)
        );
    }
}

fn scim_user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{name}@example.com"),
        "name": {"givenName": "Bench", "familyName": name},
        "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
        "title": "Engineer",
        "active": true
    })
}

fn legacy_user(name: &str) -> Value {
    json!({"login": format!("{name}@example.com"), "email": format!("{name}@example.com"), "first_name": "Bench", "last_name": name, "job_title": "Engineer"})
}

async fn create(target: &Target, url: &str, body: &Value) -> anyhow::Result<String> {
    let response = target
        .http
        .post(url)
        .header(target.auth.0, &target.auth.1)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    body["id"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("create answered {status}: {body}"))
}

async fn count(target: &Target, url: &str) -> anyhow::Result<usize> {
    let body: Value = target
        .http
        .get(url)
        .header(target.auth.0, &target.auth.1)
        .send()
        .await?
        .json()
        .await?;
    Ok(body["totalResults"].as_u64().unwrap_or(0) as usize)
}

/// A gateway process serving `config` (`{port}` in it becomes a free
/// port), once it answers `/readyz`: the process, its pid and root URL.
pub async fn spawn_gateway(
    bin: &std::path::Path,
    name: &str,
    config: &str,
) -> anyhow::Result<(Process, u32, String)> {
    let port = free_port()?;
    let path = tempdir()?.join(format!("{name}.toml"));
    std::fs::write(&path, config.replace("{port}", &port.to_string()))?;
    let child = std::process::Command::new(bin)
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id();
    let root = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{root}/readyz"), None).await?;
    Ok((Process(child), pid, root))
}

/// Sends SIGHUP and reads the gateway's own measure of the reload.
async fn reload_time(pid: u32, logs: std::process::ChildStdout) -> Option<u64> {
    let (found, mut wait) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(logs).lines().map_while(Result::ok) {
            if line.contains("reloaded config and mappings")
                && let Ok(event) = serde_json::from_str::<Value>(&line)
                && let Some(sender) = found.take()
            {
                let _ = sender.send(event["fields"]["elapsed_ms"].as_u64());
            }
        }
    });
    Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .ok()?;
    tokio::time::timeout(Duration::from_secs(5), &mut wait)
        .await
        .ok()?
        .ok()
        .flatten()
}

/// Opens `n` keep-alive connections, each having made one request, and
/// reads the gateway's RSS while they are open.
async fn rss_with_open_connections(port: u16, pid: u32, n: usize) -> anyhow::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n")
            .await?;
        let mut buffer = [0u8; 512];
        let _ = stream.read(&mut buffer).await?;
        streams.push(stream);
    }
    let (_, rss, _) = usage(pid)?;
    drop(streams);
    Ok(rss)
}
