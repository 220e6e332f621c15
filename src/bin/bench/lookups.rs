//! `scimgate-bench --lookups`: IdP look-ups against an upstream that
//! cannot filter (the reference Wrike-shaped API), answered from the
//! gateway's look-up index. For each account size it reports look-ups per
//! second, upstream calls per look-up (from the gateway's own metrics), how
//! long the index took to read in full and what it holds; at the smallest
//! size the same look-ups once more without the index (a scan each); and
//! the initial sync of `--users` users (a look-up and a create each) into
//! an empty account. Writes target/bench/lookups.json.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::harness::{Process, TOKEN, free_port, tempdir, usage, wait_for};
use super::{Args, Load, Request, Side, Target, drive, spawn_gateway};

const WRIKE_TOKEN: &str = "bench-wrike-token";

#[derive(Debug, serde::Serialize)]
struct AccountRow {
    users: usize,
    indexed: bool,
    index_read_seconds: f64,
    index_bytes: u64,
    index_bytes_per_user: f64,
    gateway_rss_kib: u64,
    gateway_peak_rss_kib: u64,
    lookups: Side,
    upstream_calls_per_lookup: f64,
}

#[derive(Debug, serde::Serialize)]
struct SyncRow {
    users: usize,
    seconds: f64,
    users_per_second: f64,
    requests: Side,
    upstream_calls_per_user: f64,
    index_bytes: u64,
    index_bytes_per_user: f64,
    gateway_rss_kib_before: u64,
    gateway_rss_kib_after: u64,
}

/// The reference Wrike API holding `users` users, and its port.
async fn wrike(bin: &std::path::Path, users: usize) -> anyhow::Result<(Process, u16)> {
    let port = free_port()?;
    let process = Process(
        Command::new(bin)
            .args(["wrike-api", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--token", WRIKE_TOKEN, "--seed-users", &users.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // Seeding a million users takes seconds before it listens.
    let deadline = Instant::now() + Duration::from_secs(300);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "the Wrike API never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bearer = format!("Bearer {WRIKE_TOKEN}");
    wait_for(
        &format!("http://127.0.0.1:{port}/api/v4/account"),
        Some(("authorization", &bearer)),
    )
    .await?;
    Ok((process, port))
}

/// A gateway in front of the Wrike API at `wrike_port`, with the shipped
/// mapping (`indexed`) or that mapping without its `[users.index]`.
async fn gateway(
    bin: &std::path::Path,
    wrike_port: u16,
    indexed: bool,
) -> anyhow::Result<(Process, u32, String)> {
    let dir = tempdir()?;
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mappings/upstream/wrike.toml"
    ))?;
    let mapping = if indexed {
        shipped
    } else {
        let without =
            shipped
                .replacen("[users.index]\n", "", 1)
                .replacen("refresh_seconds = 900\n", "", 1);
        anyhow::ensure!(
            without.len() + "[users.index]\nrefresh_seconds = 900\n".len() == shipped.len(),
            "wrike.toml's [users.index] is not as this benchmark expects"
        );
        without
    };
    let mapping_path = dir.join(format!("wrike-{indexed}.toml"));
    std::fs::write(&mapping_path, mapping)?;
    let hash = hex::encode(scimgate::server::hash_token(TOKEN));
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n\n[upstreams.wrike]\nmapping = \"{}\"\nbase_url = \"http://127.0.0.1:{wrike_port}\"\nsecrets.token = {{ value = \"{WRIKE_TOKEN}\" }}\n\n[connections.generic]\nbase_path = \"/scim/v2\"\nupstream = \"wrike\"\ntoken_sha256 = \"{hash}\"\napproved_domains = [\"example.com\"]\ndialect = \"generic\"\n",
        mapping_path.display()
    );
    spawn_gateway(bin, &format!("wrike-{indexed}-gateway"), &config).await
}

/// Waits until the users' index is read in full.
async fn indexed(root: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ready: Value = reqwest::get(format!("{root}/readyz")).await?.json().await?;
        let state = ready["lookup_indexes"]["wrike"]["User"]
            .as_str()
            .unwrap_or_default();
        if state.starts_with("ready") {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the index was never read: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A sample of the gateway's metrics: the sum of every series of `family`
/// whose labels contain `having`.
async fn metric(root: &str, family: &str, having: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{root}/metrics"))
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with(family) && line.contains(having))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}

async fn upstream_calls(root: &str) -> anyhow::Result<f64> {
    metric(
        root,
        "scimgate_upstream_request_duration_seconds_count",
        "upstream=\"wrike\"",
    )
    .await
}

async fn index_bytes(root: &str) -> anyhow::Result<u64> {
    Ok(metric(root, "scimgate_lookup_index_bytes", "resource=\"User\"").await? as u64)
}

fn look_up(base: &str, users: usize) -> Arc<dyn Fn(usize) -> Vec<Request> + Send + Sync> {
    let base = base.to_string();
    Arc::new(move |i| {
        // Spread over the account, so no one record is hot.
        let n = (i * 7919) % users.max(1);
        vec![(
            reqwest::Method::GET,
            format!("{base}/Users?filter=userName%20eq%20%22user{n}%40example.com%22"),
            None,
        )]
    })
}

pub async fn run(args: &Args, bin: &std::path::Path) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let target = Arc::new(Target {
        http,
        auth: ("authorization", format!("Bearer {TOKEN}")),
    });
    let load = Load {
        concurrency: args.concurrency,
        duration: Duration::from_secs(args.seconds),
        rate: None,
    };
    let mut sizes = args.lookup_users.clone();
    sizes.sort_unstable();
    let mut accounts = Vec::new();
    for (position, &users) in sizes.iter().enumerate() {
        // The scan, once, where it can still answer (at most scan_cap).
        let sides: &[bool] = if position == 0 && users <= 10_000 {
            &[true, false]
        } else {
            &[true]
        };
        for &with_index in sides {
            let (_wrike, wrike_port) = wrike(bin, users).await?;
            let started = Instant::now();
            let (_gateway, pid, root) = gateway(bin, wrike_port, with_index).await?;
            if with_index {
                indexed(&root).await?;
            }
            let index_read_seconds = started.elapsed().as_secs_f64();
            let calls_before = upstream_calls(&root).await?;
            let lookups = drive(
                target.clone(),
                load,
                None,
                look_up(&format!("{root}/scim/v2"), users),
            )
            .await;
            let calls = upstream_calls(&root).await? - calls_before;
            let (_, rss, peak) = usage(pid)?;
            let bytes = index_bytes(&root).await?;
            let row = AccountRow {
                users,
                indexed: with_index,
                index_read_seconds: if with_index { index_read_seconds } else { 0.0 },
                index_bytes: bytes,
                index_bytes_per_user: bytes as f64 / users.max(1) as f64,
                gateway_rss_kib: rss,
                gateway_peak_rss_kib: peak,
                upstream_calls_per_lookup: calls / lookups.requests.max(1) as f64,
                lookups,
            };
            eprintln!(
                "{users} users, {}: {:.0} look-ups/s, p50 {} µs, {:.2} upstream calls each, {} errors; index {:.1} s, {} B ({:.0} B/user); RSS {} KiB (peak {} KiB)",
                if with_index { "indexed" } else { "scanned" },
                row.lookups.throughput,
                row.lookups.p50_us,
                row.upstream_calls_per_lookup,
                row.lookups.errors,
                row.index_read_seconds,
                row.index_bytes,
                row.index_bytes_per_user,
                row.gateway_rss_kib,
                row.gateway_peak_rss_kib,
            );
            accounts.push(row);
        }
    }

    // The initial sync into an empty account: look-up, then create.
    let (_wrike, wrike_port) = wrike(bin, 0).await?;
    let (_gateway, pid, root) = gateway(bin, wrike_port, true).await?;
    indexed(&root).await?;
    let (_, rss_before, _) = usage(pid)?;
    let base = format!("{root}/scim/v2");
    let calls_before = upstream_calls(&root).await?;
    let users = args.users;
    let started = Instant::now();
    let requests = drive(
        target.clone(),
        Load {
            concurrency: args.sync_concurrency,
            duration: Duration::from_secs(3600),
            rate: None,
        },
        Some(users),
        Arc::new(move |i| {
            vec![
                (
                    reqwest::Method::GET,
                    format!("{base}/Users?filter=userName%20eq%20%22sync-{i}%40example.com%22"),
                    None,
                ),
                (
                    reqwest::Method::POST,
                    format!("{base}/Users"),
                    Some(json!({
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": format!("sync-{i}@example.com"),
                        "externalId": format!("sync-ext-{i}"),
                        "name": {"givenName": "Sync", "familyName": format!("User{i}")},
                    })),
                ),
            ]
        }),
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let calls = upstream_calls(&root).await? - calls_before;
    let (_, rss_after, _) = usage(pid)?;
    // The index as the sync's writes left it is not read again until its
    // interval; its bytes are measured on a fresh full read's gauge, so
    // read the sync's result back in once more with a new gateway.
    drop(_gateway);
    let (_reread, _, reread_root) = gateway(bin, wrike_port, true).await?;
    indexed(&reread_root).await?;
    let bytes = index_bytes(&reread_root).await?;
    let sync = SyncRow {
        users,
        seconds,
        users_per_second: users as f64 / seconds,
        upstream_calls_per_user: calls / users.max(1) as f64,
        index_bytes: bytes,
        index_bytes_per_user: bytes as f64 / users.max(1) as f64,
        requests,
        gateway_rss_kib_before: rss_before,
        gateway_rss_kib_after: rss_after,
    };
    eprintln!(
        "initial sync of {users} users: {:.1} s, {:.0} users/s, {:.2} upstream calls each, {} errors; p50 {} µs, p99 {} µs; RSS {} → {} KiB; index read back {} B ({:.0} B/user)",
        sync.seconds,
        sync.users_per_second,
        sync.upstream_calls_per_user,
        sync.requests.errors,
        sync.requests.p50_us,
        sync.requests.p99_us,
        sync.gateway_rss_kib_before,
        sync.gateway_rss_kib_after,
        sync.index_bytes,
        sync.index_bytes_per_user,
    );
    let output = args.output.with_file_name("lookups.json");
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(
        &output,
        serde_json::to_string_pretty(&json!({"accounts": accounts, "initial_sync": sync}))?,
    )
    .with_context(|| format!("cannot write {}", output.display()))?;
    println!("{}", output.display());
    Ok(())
}
