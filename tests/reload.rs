//! `scimgate serve` as an SRE runs it: SIGHUP reloads config and mappings
//! (a bad reload keeps the last good state serving), SIGTERM drains and
//! exits, and /metrics is complete from the first scrape and counts reloads.

use scimgate_test_support as common;

use std::process::{Command, Stdio};
use std::time::Duration;

use scimgate_reference::legacy::Database;

const BIN: &str = env!("CARGO_BIN_EXE_scimgate");

fn config(port: u16, upstream: std::net::SocketAddr, domains: &str) -> String {
    config_with(port, upstream, domains, false)
}

fn config_with(port: u16, upstream: std::net::SocketAddr, domains: &str, watch: bool) -> String {
    let mapping = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/upstream/legacy.toml");
    let hash = hex::encode(scimgate::server::hash_token("reload-token"));
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
drain_timeout_ms = 2000
watch = {watch}

[upstreams.legacy]
mapping = "{mapping}"
base_url = "http://{upstream}"
secrets.api_key = {{ value = "reload-key" }}

[connections.idp]
base_path = "/scim/v2"
upstream = "legacy"
token_sha256 = "{hash}"
approved_domains = [{domains}]
dialect = "generic"
"#
    )
}

async fn create(port: u16, user: &str) -> Option<u16> {
    let body = format!(
        r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"{user}"}}"#
    );
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/scim/v2/Users"))
        .bearer_auth("reload-token")
        .header("content-type", "application/scim+json")
        .body(body)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sighup_applies_a_good_config_keeps_serving_on_a_bad_one_and_sigterm_exits() {
    let upstream = scimgate::demo::start_legacy(Database::Memory, "reload-key")
        .await
        .unwrap();
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scimgate.toml");
    std::fs::write(&path, config(port, upstream, r#""example.com""#)).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();

    let mut first = None;
    for _ in 0..100 {
        first = create(port, "ann@example.org").await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first, Some(403), "example.org is not approved yet");

    std::fs::write(
        &path,
        config(port, upstream, r#""example.com", "example.org""#),
    )
    .unwrap();
    signal(pid, "HUP");
    let mut reloaded = None;
    for _ in 0..100 {
        reloaded = create(port, "ann@example.org").await;
        if reloaded == Some(201) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reloaded, Some(201), "the reload approved example.org");

    std::fs::write(&path, "[server\nbroken = ").unwrap();
    signal(pid, "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        create(port, "bob@example.org").await,
        Some(201),
        "the last good config keeps serving"
    );

    signal(pid, "TERM");
    let mut exited = None;
    for _ in 0..100 {
        exited = child.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("scimgate did not exit on SIGTERM")
    });
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn with_watch_a_changed_config_file_is_applied_without_a_signal() {
    let upstream = scimgate::demo::start_legacy(Database::Memory, "reload-key")
        .await
        .unwrap();
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scimgate.toml");
    std::fs::write(&path, config_with(port, upstream, r#""example.com""#, true)).unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = None;
    for _ in 0..100 {
        first = create(port, "cy@example.org").await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first, Some(403));
    // Modification times have a coarse grain on some file systems.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        &path,
        config_with(port, upstream, r#""example.com", "example.org""#, true),
    )
    .unwrap();
    let mut reloaded = None;
    for _ in 0..100 {
        reloaded = create(port, "cy@example.org").await;
        if reloaded == Some(201) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        reloaded,
        Some(201),
        "the watcher reloaded the changed config"
    );
}

#[expect(
    clippy::disallowed_methods,
    reason = "the test reads its own gateway's small /metrics page"
)]
async fn scrape(port: u16) -> Option<String> {
    let reply = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?;
    reply.text().await.ok()
}

/// The metrics page once `series` reads `value` (a reload is asynchronous).
async fn scrape_until(port: u16, series: &str, value: f64) -> String {
    let mut page = String::new();
    for _ in 0..100 {
        page = scrape(port).await.unwrap_or_default();
        if sample(&page, series) == Some(value) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{series} never read {value}:\n{page}");
}

/// The value of the sample line that starts with `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_are_complete_from_the_first_scrape_and_count_each_reload() {
    let upstream = scimgate::demo::start_legacy(Database::Memory, "reload-key")
        .await
        .unwrap();
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scimgate.toml");
    std::fs::write(&path, config(port, upstream, r#""example.com""#)).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = None;
    for _ in 0..100 {
        first = scrape(port).await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = first.expect("the gateway serves /metrics");
    // Before any SCIM request: every family named, with its help, at zero.
    for family in [
        "scimgate_build_info",
        "scimgate_in_flight_requests",
        "scimgate_rate_limited_total",
        "scimgate_upstream_breaker_state",
        "scimgate_request_duration_seconds",
        "scimgate_config_reloads_total",
        "scimgate_config_last_reload_success",
        "scimgate_config_last_reload_timestamp_seconds",
    ] {
        assert!(
            first.contains(&format!("# HELP {family} ")),
            "{family}:\n{first}"
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(
            &first,
            &format!("scimgate_build_info{{version=\"{version}\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&first, "scimgate_rate_limited_total{connection=\"idp\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &first,
            "scimgate_upstream_breaker_state{upstream=\"legacy\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &first,
            "scimgate_request_duration_seconds_count{connection=\"idp\",operation=\"create_user\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&first, "scimgate_config_reloads_total{result=\"refused\"}"),
        Some(0.0)
    );
    let loaded_at = sample(&first, "scimgate_config_last_reload_timestamp_seconds").unwrap();
    assert!(loaded_at > 1.7e9, "{loaded_at}");

    // A refused reload, then an applied one, each counted with its time.
    std::fs::write(&path, "[server\nbroken = ").unwrap();
    signal(child.id(), "HUP");
    let after = scrape_until(
        port,
        "scimgate_config_reloads_total{result=\"refused\"}",
        1.0,
    )
    .await;
    assert_eq!(
        sample(&after, "scimgate_config_last_reload_success"),
        Some(0.0)
    );
    std::fs::write(&path, config(port, upstream, r#""example.com""#)).unwrap();
    signal(child.id(), "HUP");
    let after = scrape_until(
        port,
        "scimgate_config_reloads_total{result=\"applied\"}",
        1.0,
    )
    .await;
    assert_eq!(
        sample(&after, "scimgate_config_last_reload_success"),
        Some(1.0),
        "{after}"
    );
    assert!(sample(&after, "scimgate_config_last_reload_timestamp_seconds").unwrap() >= loaded_at);
    let _ = child.kill();
    let _ = child.wait();
}
