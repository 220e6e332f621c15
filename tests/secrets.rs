//! Secrets never leave the gateway: a full provisioning flow with logging at
//! `trace`, then every log line, the audit log, `/metrics` and the error
//! bodies are searched for the inbound token, the upstream key and a password.

#![allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote, and time what they test"
)]

use scimgate_test_support as common;
use std::io::Read;

use std::process::{Command, Stdio};
use std::time::Duration;

use scimgate_reference::legacy::Database;

const BIN: &str = env!("CARGO_BIN_EXE_scimgate");
const TOKEN: &str = "tok-4f1c9d2e7a7b4c0e";
const API_KEY: &str = "key-9b8e7f6a5d4c3b2a";
const PASSWORD: &str = "pw-S3cr3t-Passw0rd";

#[tokio::test]
async fn no_token_key_or_password_appears_in_logs_audit_metrics_or_errors() {
    let upstream = scimgate::demo::start_legacy(Database::Memory, API_KEY)
        .await
        .unwrap();
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
audit_log = "{audit}"

[upstreams.legacy]
mapping = "{mapping}"
base_url = "http://{upstream}"
secrets.api_key = {{ env = "SECRETS_TEST_API_KEY" }}

[connections.okta]
base_path = "/scim/v2"
upstream = "legacy"
token_sha256 = "{hash}"
approved_domains = ["example.com"]
dialect = "okta"
"#,
        audit = audit.display(),
        mapping = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/upstream/legacy.toml"),
        hash = hex::encode(scimgate::server::hash_token(TOKEN)),
    );
    let path = dir.path().join("scimgate.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "trace")
        .env("SECRETS_TEST_API_KEY", API_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    let mut bodies = Vec::new();
    let mut ready = false;
    for _ in 0..100 {
        if http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "serve did not start");
    let user = format!(
        r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"pat@example.com","password":"{PASSWORD}"}}"#
    );
    let created = http
        .post(format!("{base}/Users"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(user.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    bodies.push(created.to_string());
    // A duplicate (409), a PUT carrying the password, a bad token (401), a bad body (400).
    for (method, url, token, body) in [
        ("POST", format!("{base}/Users"), TOKEN, user.clone()),
        ("PUT", format!("{base}/Users/{id}"), TOKEN, user.clone()),
        (
            "GET",
            format!("{base}/Users"),
            "wrong-token-value",
            String::new(),
        ),
        (
            "POST",
            format!("{base}/Users"),
            TOKEN,
            format!("{{\"password\": \"{PASSWORD}\""),
        ),
    ] {
        let answer = http
            .request(method.parse().unwrap(), url)
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(body)
            .send()
            .await
            .unwrap();
        bodies.push(answer.text().await.unwrap());
    }
    let metrics = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.lines().count() > 20,
        "trace logging ran: {} lines",
        logs.lines().count()
    );
    // A refused request's log line names its connection and operation.
    let duplicate = logs
        .lines()
        .find(|line| line.contains("request failed") && line.contains(r#""status":409"#))
        .unwrap_or_else(|| panic!("no log line for the 409: {logs}"));
    assert!(
        duplicate.contains(r#""operation":"create_user""#)
            && duplicate.contains(r#""connection":"#),
        "{duplicate}"
    );
    let audit = std::fs::read_to_string(&audit).unwrap();
    assert!(audit.lines().count() >= 3, "{audit}");
    for (place, text) in [
        ("logs", &logs),
        ("audit log", &audit),
        ("metrics", &metrics),
        ("error bodies", &bodies.join("\n")),
    ] {
        for secret in [TOKEN, API_KEY, PASSWORD] {
            assert!(!text.contains(secret), "{secret} appears in the {place}");
        }
    }
}
