//! The real `scimgate` binary: `demo` prints what a newcomer needs and
//! serves SCIM; `check` reports mistakes at file:line:col; `token` prints a
//! token once with its config line.

use scimgate_test_support as common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_scimgate");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn demo_prints_base_url_token_and_upstream_and_serves_scim() {
    demo_serves(None, "/api/v1 (reference legacy API").await;
}

#[tokio::test]
async fn demo_runs_in_front_of_the_directory_api() {
    demo_serves(Some("directory"), "/v2 (reference directory API").await;
}

#[tokio::test]
async fn demo_runs_in_front_of_the_wrike_shaped_api() {
    demo_serves(Some("wrike"), "/api/v4 (reference Wrike-shaped API").await;
}

async fn demo_serves(upstream: Option<&str>, banner: &str) {
    let port = common::free_port();
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--db",
            ":memory:",
        ])
        .args(upstream.map(|u| ["--upstream", u]).into_iter().flatten())
        .args(["--approved-domain", "example.org"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    while !printed
        .last()
        .is_some_and(|l: &String| l.contains("upstream:"))
    {
        printed.push(lines.next().unwrap().unwrap());
        assert!(printed.len() < 20, "no upstream line in: {printed:#?}");
    }
    let text = printed.join("\n");
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/scim/v2")),
        "{text}"
    );
    assert!(text.contains(banner), "{text}");
    let token = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("bearer token:"))
        .map(|t| t.trim().to_string())
        .unwrap();
    assert_eq!(token.len(), 64, "a random 256-bit token: {token}");

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    let mut created = None;
    for _ in 0..50 {
        let reply = http
            .post(format!("{base}/Users"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"zoe@example.org"}"#)
            .send()
            .await;
        if let Ok(reply) = reply {
            created = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = created.expect("demo did not start listening");
    assert_eq!(created.status(), 201);
    // The demo approves only the domains it was given.
    let refused = http
        .post(format!("{base}/Users"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"zoe@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

#[test]
fn check_takes_mapping_and_dialect_files_alone_and_deny_warnings_fails_on_warnings() {
    let output = Command::new(BIN)
        .args([
            "check",
            "mappings/upstream/legacy.toml",
            "mappings/idp/entra.toml",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "mappings/upstream/legacy.toml: ok (upstream mapping `legacy`, 2 test(s) passed)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("mappings/idp/entra.toml: ok (dialect `entra`)"),
        "{stdout}"
    );
    // The shipped Wrike mapping says its lists are unpaged by design; without
    // that, it warns: fine, unless warnings are denied.
    let shipped = ["check", "--deny-warnings", "mappings/upstream/wrike.toml"];
    assert!(
        Command::new(BIN)
            .args(shipped)
            .output()
            .unwrap()
            .status
            .success()
    );
    let dir = tempfile::tempdir().unwrap();
    let unpaged = dir.path().join("wrike.toml");
    let text = std::fs::read_to_string("mappings/upstream/wrike.toml").unwrap();
    assert!(text.contains("paging = { style = \"none\" }\n"));
    std::fs::write(
        &unpaged,
        text.replace("paging = { style = \"none\" }\n", ""),
    )
    .unwrap();
    assert!(
        Command::new(BIN)
            .arg("check")
            .arg(&unpaged)
            .output()
            .unwrap()
            .status
            .success()
    );
    let denied = Command::new(BIN)
        .arg("check")
        .arg(&unpaged)
        .arg("--deny-warnings")
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr)
            .contains("warning: [users.list] declares no paging")
    );
    // A broken file fails with its line and column, as a message: no
    // backtrace even where the environment asks for one.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[upstream]\nname = \"x\"\nbase_url = 7\n").unwrap();
    let output = Command::new(BIN)
        .arg("check")
        .arg(&broken)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(stderr.contains("error: invalid:"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("broken.toml:3:"),
        "{output:?}"
    );
}

#[test]
fn check_runs_the_tests_a_mapping_carries_and_names_the_one_that_fails() {
    let mapping = std::fs::read_to_string("mappings/upstream/legacy.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("legacy.toml");
    // The same mapping with one expectation changed: the PATCH body.
    let broken = mapping.replacen(
        r#"body = { status = "disabled" } }"#,
        r#"body = { status = "suspended" } }"#,
        1,
    );
    assert_ne!(broken, mapping, "the shipped test is still there");
    std::fs::write(&wrong, &broken).unwrap();
    let output = Command::new(BIN).arg("check").arg(&wrong).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let line = broken
        .lines()
        .position(|l| l.contains("name = \"deactivation writes only the status\""))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("legacy.toml:{line}:8: error: test `deactivation writes only the status`: call 2: expected PATCH /api/v1/users/7 {{\"status\":\"suspended\"}}, got PATCH /api/v1/users/7 {{\"status\":\"disabled\"}}")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("backtrace"),
        "a message, not a backtrace: {stderr}"
    );
}

#[test]
fn check_without_the_environment_needs_no_secrets_and_with_it_names_the_missing_one() {
    let without = Command::new(BIN)
        .args([
            "check",
            "--config",
            "deploy/scimgate.toml",
            "--no-environment",
        ])
        .env_remove("LEGACY_API_KEY")
        .output()
        .unwrap();
    assert!(without.status.success(), "{without:?}");
    let with = Command::new(BIN)
        .args(["check", "--config", "deploy/scimgate.toml"])
        .env_remove("LEGACY_API_KEY")
        .output()
        .unwrap();
    assert!(!with.status.success());
    assert!(
        String::from_utf8_lossy(&with.stderr).contains("LEGACY_API_KEY is not set"),
        "{with:?}"
    );
}

#[test]
fn check_accepts_the_example_config() {
    let output = Command::new(BIN)
        .args(["check", "--config", "deploy/scimgate.toml"])
        .env("LEGACY_API_KEY", "k")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("ok (2 connection(s), 1 upstream(s))"),
        "{stdout}"
    );
}

#[test]
fn check_reports_every_mapping_mistake_at_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = std::fs::read_to_string("mappings/upstream/legacy.toml")
        .unwrap()
        .replace("scim = \"title\"", "scim = \"titel\"")
        .replace(
            "path = \"/api/v1/users/{id}\"\n\n[users.create]",
            "path = \"/api/v1/users/{uid}\"\n\n[users.create]",
        )
        .replace("scim_type = \"uniqueness\"", "scim_type = \"unique\"");
    std::fs::write(dir.path().join("legacy.toml"), mapping).unwrap();
    std::fs::write(
        dir.path().join("gateway.toml"),
        "[upstreams.legacy]\nmapping = \"legacy.toml\"\nsecrets.api_key = { value = \"k\" }\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("gateway.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(": error: ")).collect();
    let at = |needle: &str| {
        errors
            .iter()
            .find(|l| l.contains(needle))
            .copied()
            .unwrap_or_else(|| panic!("{needle} not in:\n{stderr}"))
    };
    assert!(
        at("unknown scim_type `unique`").contains("legacy.toml:24:13:"),
        "{stderr}"
    );
    assert!(
        at("unknown placeholder `{uid}`").contains("legacy.toml:"),
        "{stderr}"
    );
    assert!(
        at("`titel` is not an attribute").contains("legacy.toml:"),
        "{stderr}"
    );
    assert!(
        at("its mapping file has errors").contains("gateway.toml:2:11:"),
        "{stderr}"
    );
}

#[test]
fn token_prints_a_token_and_its_config_line() {
    let output = Command::new(BIN).arg("token").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = stdout.lines().next().unwrap().rsplit(' ').next().unwrap();
    let hash = stdout.lines().nth(1).unwrap().rsplit('"').nth(1).unwrap();
    assert_eq!(token.len(), 64);
    assert_eq!(hash, hex::encode(scimgate::server::hash_token(token)));
}

#[test]
fn check_reports_dialect_file_mistakes_at_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("idp")).unwrap();
    std::fs::write(
        dir.path().join("idp/acme.toml"),
        "[dialect]\nname = \"acme\"\n[request]\nstring_booleans = \"yes\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gateway.toml"),
        "[server]\ndialects_dir = \"idp\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("gateway.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("acme.toml:4:19: error:"), "{stderr}");
}

#[test]
fn explain_shows_calls_with_secrets_masked_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("patch.json"),
        r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"title","value":"CTO"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("record.json"),
        r#"{"id":7,"login":"ann@example.com","email":"ann@example.com","status":"enabled","role":"member","job_title":"Dev","version":5}"#,
    )
    .unwrap();
    let output = Command::new(BIN)
        .args([
            "explain",
            "--demo",
            "--connection",
            "demo-entra",
            "PATCH",
            "/Users/7",
        ])
        .arg("--body")
        .arg(dir.path().join("patch.json"))
        .arg("--upstream-record")
        .arg(dir.path().join("record.json"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1. GET http://127.0.0.1:9090/api/v1/users/7"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2. PATCH http://127.0.0.1:9090/api/v1/users/7"),
        "{stdout}"
    );
    assert!(stdout.contains("\"job_title\": \"CTO\""), "{stdout}");
    assert!(stdout.contains("x-api-key: ****"), "{stdout}");
    assert!(stdout.contains("if-match: 5"), "{stdout}");
    assert!(!stdout.contains("demo-api-key"), "{stdout}");
    assert!(stdout.contains("\"title\": \"CTO\""), "{stdout}");
}

#[test]
fn the_bench_fails_with_a_message_not_a_backtrace() {
    // No redis-server on this PATH: `--cluster` cannot run.
    let output = Command::new(env!("CARGO_BIN_EXE_scimgate-bench"))
        .args(["--cluster", "--seconds", "1", "--rounds", "1"])
        .env("PATH", "/nonexistent")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: --cluster needs redis-server"),
        "{stderr}"
    );
    assert!(!stderr.contains("acktrace"), "{stderr}");
}

/// `serve`'s JSON log carries each write's provisioning record as a log
/// line whose `fields` is the record itself, routable by `target`.
#[tokio::test]
async fn serve_logs_the_audit_record_as_a_json_line_of_its_own() {
    use scimgate_reference::legacy::{Database, LegacyApi, LegacyConfig};
    let legacy = LegacyApi::open(LegacyConfig {
        api_key: "k".into(),
        database: Database::Memory,
    })
    .unwrap()
    .spawn("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mapping = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/upstream/legacy.toml");
    let hash = hex::encode(scimgate::server::hash_token("t0k3n"));
    let config = dir.path().join("scimgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[upstreams.legacy]\nmapping = \"{mapping}\"\nbase_url = \"http://{legacy}\"\nsecrets.api_key = {{ value = \"k\" }}\n\n[connections.okta]\nbase_path = \"/scim/v2\"\nupstream = \"legacy\"\ntoken_sha256 = \"{hash}\"\napproved_domains = [\"example.com\"]\ndialect = \"okta\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn,scimgate::audit=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let http = reqwest::Client::new();
    for _ in 0..100 {
        let up = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        if up.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let created = common::scim_request_as(
        "t0k3n",
        &format!("http://127.0.0.1:{port}/scim/v2"),
        reqwest::Method::POST,
        "/Users",
        Some(serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "quinn@example.com",
            "emails": [{"value": "quinn@example.com", "primary": true}]
        })),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let line = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.contains("scimgate::audit"))
    })
    .join()
    .unwrap()
    .expect("an audit line on stdout");
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["target"], "scimgate::audit", "{line}");
    assert_eq!(line["level"], "INFO");
    let record = &line["fields"];
    assert_eq!(record["userName"], "quinn@example.com", "{line}");
    assert_eq!(record["action"], "create");
    assert_eq!(record["outcome"], "ok");
    let steps = record["steps"].as_array().cloned().unwrap_or_default();
    assert!(
        !steps.is_empty() && steps.iter().all(|s| s["call"].is_string()),
        "{line}"
    );
    assert!(
        record.get("message").is_none(),
        "the record, not a string of it"
    );
}

/// The in-process request path the instruction benchmark counts answers
/// every scenario with a success (an error path counted would mislead),
/// and callgrind's count of it is a number per scenario; the JSON round
/// trip of a page beside them counts a page's work.
#[test]
fn the_instruction_benchmark_counts_each_scenario_in_process() {
    let bench = env!("CARGO_BIN_EXE_scimgate-bench");
    for scenario in ["get", "filter", "post", "patch", "put", "list", "json-page"] {
        let output = Command::new(bench)
            .args(["--count-in-process", scenario, "--requests", "3"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{scenario}: {output:?}");
    }
    let unknown = Command::new(bench)
        .args(["--count-in-process", "delete", "--requests", "1"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).starts_with("error: unknown scenario delete"));

    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("instructions.json");
    let output = Command::new(bench)
        .args([
            "--instructions",
            "--requests",
            "3",
            "--only",
            "get",
            "--only",
            "json-page",
            "--output",
        ])
        .arg(dir.path().join("results.json"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let counted: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    let get = counted["instructions_per_request"]["get"].as_f64().unwrap();
    // A request's work, not nothing and not the process's start-up.
    assert!((10_000.0..10_000_000.0).contains(&get), "{counted}");
    // A page of 100 users read and written: far more than one user's GET.
    let page = counted["instructions_per_request"]["json-page"]
        .as_f64()
        .unwrap();
    assert!((10.0 * get..100_000_000.0).contains(&page), "{counted}");
    assert!(counted["instructions_per_request"].get("post").is_none());
}
