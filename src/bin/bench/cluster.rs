//! `scimgate-bench --cluster`: what sharing limits and locks through Redis
//! costs. Two gateways run side by side on one reference API, configured
//! alike (every connection rate-limited far above the load, so the limiter
//! runs on every request): one alone, one with `[cluster]` on a Redis of
//! its own. Each scenario is driven through both in interleaved rounds, and
//! the added CPU and p50 per request are the medians of the differences.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::harness::{API_KEY, Process, TOKEN, free_port, gateway_config, tempdir, usage};
use super::{Args, Load, Request, Side, Target, create, drive, scim_user, spawn_gateway};

#[derive(Debug, serde::Serialize)]
struct Round {
    single_cpu_us: f64,
    cluster_cpu_us: f64,
    single_p50_us: u64,
    cluster_p50_us: u64,
}

#[derive(Debug, serde::Serialize)]
struct ClusterScenario {
    name: String,
    rounds: Vec<Round>,
    added_cpu_us_per_request: f64,
    added_p50_us: f64,
}

/// The Entra PATCH through the mapping without `update_precondition`.
const UNCONDITIONAL_PATCH: &str = "PATCH, locked";

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(args: &Args, bin: &std::path::Path) -> anyhow::Result<()> {
    let (_legacy, legacy_port) = super::harness::start_legacy(bin).await?;
    let redis_port = free_port()?;
    let _redis = Process(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .context("--cluster needs redis-server (Debian package redis-server)")?,
    );
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", redis_port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The same API once more, mapped as one whose updates are unconditional
    // (no `update_precondition`): its PATCHes hold the resource's lock.
    let lax_mapping = tempdir()?.join("lax.toml");
    let lax = scimgate::demo::LEGACY_MAPPING.replace("update_precondition = \"If-Match\"\n", "");
    anyhow::ensure!(
        lax != scimgate::demo::LEGACY_MAPPING,
        "legacy.toml has no update_precondition"
    );
    std::fs::write(&lax_mapping, lax)?;
    let hash = hex::encode(scimgate::server::hash_token(TOKEN));
    let with_lax = format!(
        "{}\n[upstreams.lax]\nmapping = \"{}\"\nbase_url = \"http://127.0.0.1:{legacy_port}\"\nsecrets.api_key = {{ value = \"{API_KEY}\" }}\n\n[connections.lax]\nbase_path = \"/scim/lax/v2\"\nupstream = \"lax\"\ntoken_sha256 = \"{hash}\"\napproved_domains = [\"example.com\"]\ndialect = \"entra\"\n",
        gateway_config(0, legacy_port),
        lax_mapping.display()
    );
    // Rate-limited far above the load: the limiter decides every request.
    let limited = with_lax
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:{port}\"")
        .replace(
            "dialect = \"",
            "rate_limit = \"1000000/s\"\nburst = 100000\ndialect = \"",
        );
    let clustered = format!(
        "{limited}\n[cluster]\nredis_url = {{ value = \"redis://127.0.0.1:{redis_port}\" }}\n"
    );
    let (_single, single_pid, single_root) = spawn_gateway(bin, "single", &limited).await?;
    let (_cluster, cluster_pid, cluster_root) = spawn_gateway(bin, "cluster", &clustered).await?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let target = Arc::new(Target {
        http,
        auth: ("authorization", format!("Bearer {TOKEN}")),
    });
    // Both gateways serve one upstream: the same users for both.
    let users = format!("{single_root}/scim/generic/v2/Users");
    let reader = create(&target, &users, &scim_user("cluster-bench")).await?;
    let mut writers = Vec::new();
    for n in 0..args.concurrency.max(1) {
        writers.push(create(&target, &users, &scim_user(&format!("cluster-writer-{n}"))).await?);
    }
    let writers: Arc<[String]> = writers.into();

    type Make = Arc<dyn Fn(usize) -> Vec<Request> + Send + Sync>;
    let scenario = |name: &'static str, root: &str| -> (&'static str, Make) {
        let base = match name {
            UNCONDITIONAL_PATCH => format!("{root}/scim/lax/v2"),
            _ => format!("{root}/scim/entra/v2"),
        };
        let (reader, writers) = (reader.clone(), writers.clone());
        let make: Make = match name {
            "GET /Users/{id}" => Arc::new(move |_| {
                vec![(reqwest::Method::GET, format!("{base}/Users/{reader}"), None)]
            }),
            _ => Arc::new(move |i| {
                let user = &writers[i % writers.len()];
                vec![(
                    reqwest::Method::PATCH,
                    format!("{base}/Users/{user}"),
                    Some(json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "Replace", "path": "title", "value": format!("T{i}")}]
                    })),
                )]
            }),
        };
        (name, make)
    };
    let load = Load {
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.seconds),
        rate: args.rate,
    };
    let measured = |pid: u32, side: &Side, before: f64| -> anyhow::Result<f64> {
        let (after, _, _) = usage(pid)?;
        Ok((after - before) * 1e6 / side.requests.max(1) as f64)
    };
    let mut results = Vec::new();
    for name in [
        "GET /Users/{id}",
        "PATCH title (Entra)",
        UNCONDITIONAL_PATCH,
    ] {
        eprintln!("- {name}");
        let mut rounds = Vec::new();
        for _ in 0..args.rounds.max(1) {
            let (_, single) = scenario(name, &single_root);
            let (before, _, _) = usage(single_pid)?;
            let single_side = drive(target.clone(), load, None, single).await;
            let single_cpu_us = measured(single_pid, &single_side, before)?;
            let (_, clustered) = scenario(name, &cluster_root);
            let (before, _, _) = usage(cluster_pid)?;
            let cluster_side = drive(target.clone(), load, None, clustered).await;
            let cluster_cpu_us = measured(cluster_pid, &cluster_side, before)?;
            anyhow::ensure!(
                single_side.errors == 0 && cluster_side.errors == 0,
                "{name}: {} errors alone, {} with the cluster",
                single_side.errors,
                cluster_side.errors
            );
            rounds.push(Round {
                single_cpu_us,
                cluster_cpu_us,
                single_p50_us: single_side.p50_us,
                cluster_p50_us: cluster_side.p50_us,
            });
        }
        results.push(ClusterScenario {
            name: name.to_string(),
            added_cpu_us_per_request: median(
                rounds
                    .iter()
                    .map(|r| r.cluster_cpu_us - r.single_cpu_us)
                    .collect(),
            ),
            added_p50_us: median(
                rounds
                    .iter()
                    .map(|r| r.cluster_p50_us as f64 - r.single_p50_us as f64)
                    .collect(),
            ),
            rounds,
        });
    }
    println!(
        "{:<24} {:>14} {:>14} {:>14} {:>10} {:>10} {:>10}",
        "scenario",
        "alone cpu µs/r",
        "cluster µs/r",
        "+cpu µs/r",
        "alone p50",
        "clus p50",
        "+p50 µs"
    );
    for s in &results {
        let mid = |f: &dyn Fn(&Round) -> f64| median(s.rounds.iter().map(f).collect());
        println!(
            "{:<24} {:>14.1} {:>14.1} {:>14.1} {:>10.0} {:>10.0} {:>10.0}",
            s.name,
            mid(&|r| r.single_cpu_us),
            mid(&|r| r.cluster_cpu_us),
            s.added_cpu_us_per_request,
            mid(&|r| r.single_p50_us as f64),
            mid(&|r| r.cluster_p50_us as f64),
            s.added_p50_us,
        );
    }
    let output = args.output.with_file_name("cluster.json");
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&output, serde_json::to_string_pretty(&results)?)?;
    eprintln!("wrote {}", output.display());
    Ok(())
}
