//! The edge, hardened (issue 12): what a shared ingress, idle or hostile
//! connections and oversized or malformed requests meet at the listener.

#![allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote, and time what they test"
)]

use scimgate_test_support as common;

use std::time::{Duration, Instant};

use common::{Harness, assert_scim_error};
use reqwest::Method;
use scimgate::config::ServerSettings;
use scimgate::server;
use scimgate::server::listen::ListenSettings;

#[tokio::test]
async fn valid_token_is_never_refused_by_the_failure_throttle() {
    let h = Harness::start().await;
    // Everyone here shares 127.0.0.1, as IdPs behind one ingress share its address.
    let mut throttled = false;
    for _ in 0..20 {
        let bad = h
            .scim_with(Method::GET, "/Users", None, Some("wrong"), &[])
            .await;
        throttled |= bad.status == 429;
    }
    assert!(throttled, "the bad requests spent the budget");
    let good = h.scim(Method::GET, "/Users", None).await;
    assert_eq!(good.status, 200, "{}", good.body);
    let bad = h
        .scim_with(Method::GET, "/Users", None, Some("wrong"), &[])
        .await;
    assert_scim_error(&bad, 429, None);
}

#[tokio::test]
async fn an_idle_http2_connection_gives_its_slot_back_after_the_idle_limit() {
    let config = common::demo_config(ServerSettings::default()).await;
    let settings = ListenSettings {
        max_connections: 1,
        header_read_timeout: Duration::from_millis(300),
        ..ListenSettings::default()
    };
    let address = common::serve_with(server::router(&config).unwrap(), settings).await;
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let health = h2c
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_2);
    assert_eq!(health.status(), 200);
    let served = Instant::now();
    // The only slot is the h2c connection's (kept in its client's pool)
    // until the server closes it for idleness.
    let other = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::get(format!("http://{address}/healthz")),
    )
    .await
    .expect("the idle HTTP/2 connection never gave its slot back")
    .unwrap();
    assert_eq!(other.status(), 200);
    assert!(
        served.elapsed() >= Duration::from_millis(250),
        "{:?}",
        served.elapsed()
    );
}

/// The audit lines written so far.
fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn new_user(name: &str) -> serde_json::Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{name}@example.com"),
    })
}

#[tokio::test]
async fn a_well_formed_client_request_id_is_the_audit_correlation_id() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let h = Harness::start_with(ServerSettings {
        audit_log: Some(audit.clone()),
        ..ServerSettings::default()
    })
    .await;
    let id = "okta:req-42.a_b";
    let created = h
        .scim_with(
            Method::POST,
            "/Users",
            Some(new_user("rid")),
            Some(common::TOKEN),
            &[("x-request-id", id)],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.headers["x-request-id"], id);
    assert_eq!(audit_lines(&audit)[0]["correlation_id"], id);
}

#[tokio::test]
async fn a_malformed_client_request_id_is_replaced_by_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let h = Harness::start_with(ServerSettings {
        audit_log: Some(audit.clone()),
        ..ServerSettings::default()
    })
    .await;
    let long = "x".repeat(65);
    for (n, sent) in ["forged\", \"outcome\": \"ok", long.as_str(), "a b"]
        .into_iter()
        .enumerate()
    {
        let created = h
            .scim_with(
                Method::POST,
                "/Users",
                Some(new_user(&format!("rid{n}"))),
                Some(common::TOKEN),
                &[("x-request-id", sent)],
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let given = created.headers["x-request-id"].to_str().unwrap();
        assert_ne!(given, sent);
        assert_eq!(given.len(), 24, "a new id: {given}");
        assert_eq!(audit_lines(&audit)[n]["correlation_id"], given);
    }
}

/// Writes `request` on a new connection to `root` (`http://addr`) and reads
/// until the server closes: (status code, the whole answer as text).
async fn raw_exchange(root: &str, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = root.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server never closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// The JSON body of a raw HTTP/1.1 answer.
fn raw_body(answer: &str) -> serde_json::Value {
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or(("", ""));
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn a_malformed_chunked_body_is_400_invalid_syntax_and_audited_so() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let h = Harness::start_with(ServerSettings {
        audit_log: Some(audit.clone()),
        ..ServerSettings::default()
    })
    .await;
    let request = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n",
        common::TOKEN
    );
    let (status, answer) = raw_exchange(&h.root, request.as_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    let body = raw_body(&answer);
    assert_eq!(body["status"], "400", "{answer}");
    assert_eq!(body["scimType"], "invalidSyntax", "{answer}");
    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 400);
}

#[tokio::test]
async fn a_wrong_method_on_health_and_metrics_gets_a_scim_405_with_allow() {
    let h = Harness::start().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let reply = h.send(Method::POST, path, &[], Some("{}".into())).await;
        assert_scim_error(&reply, 405, None);
        assert_eq!(reply.headers["allow"], "GET,HEAD", "{path}");
    }
}

/// Log output written through a subscriber set for one test.
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every log line of this test binary from the first call on: a global
/// subscriber, since a scoped one misses spans whose callsites other tests'
/// threads registered first.
fn captured_log() -> &'static CapturedLog {
    static LOG: std::sync::OnceLock<CapturedLog> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = CapturedLog::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(log.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        log
    })
}

#[tokio::test]
async fn an_unauthenticated_request_logs_a_bounded_path() {
    let log = captured_log();
    let h = Harness::start().await;
    let long = "a".repeat(14_000);
    let reply = h
        .scim_with(Method::GET, &format!("/Users/{long}"), None, None, &[])
        .await;
    assert_scim_error(&reply, 401, None);
    let id = reply.headers["x-request-id"].to_str().unwrap();
    let text = log.text();
    let line = text
        .lines()
        .find(|line| line.contains(&format!("request_id={id}")) && line.contains("status=401"))
        .unwrap_or_else(|| panic!("no line for the 401: {text}"));
    assert!(line.len() < 1024, "{line}");
    assert!(line.contains("…(+"), "{line}");
}

#[tokio::test]
async fn readiness_probes_the_upstream_with_its_private_ca() {
    let (port, ca_pem, _dir) = common::legacy_behind_a_private_ca(common::API_KEY).await;
    let mut config = common::demo_config(ServerSettings::default()).await;
    let upstream = &mut config.upstreams[0];
    let mut mapping = (*upstream.mapping).clone();
    mapping.base_url = format!("https://localhost:{port}");
    upstream.mapping = std::sync::Arc::new(mapping);
    upstream.tls.ca_pem = Some(ca_pem.into_bytes());
    let root = format!(
        "http://{}",
        common::serve(server::router(&config).unwrap()).await
    );
    // SCIM calls reach it…
    let listed = reqwest::Client::new()
        .get(format!("{root}/scim/v2/Users"))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    // …and so does the readiness probe.
    let ready = reqwest::get(format!("{root}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
}

#[tokio::test]
async fn a_readiness_probe_storm_reaches_the_upstream_once_per_interval() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&upstream)
        .await;
    let mapping = common::people_mapping(
        "[upstream]\nname = \"probed\"\nbase_url = \"http://placeholder\"\n",
        "",
    );
    let root = common::gateway_for(&mapping, *upstream.address(), &[], "t", |_| {}).await;
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..20 {
        storm.spawn(reqwest::get(format!("{root}/readyz")));
    }
    while let Some(ready) = storm.join_next().await {
        assert_eq!(ready.unwrap().unwrap().status(), 200);
    }
    let probes = upstream.received_requests().await.unwrap().len();
    assert_eq!(probes, 1, "20 concurrent /readyz, one probe");
}

#[tokio::test]
async fn a_client_that_writes_its_whole_oversized_body_before_reading_gets_the_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Small socket buffers on both sides, as over a real network: the
    // client is still writing when the gateway has answered.
    const BUFFER: u32 = 64 * 1024;
    let config = common::demo_config(ServerSettings::default()).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(BUFFER).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(server::listen::serve(
        listener,
        server::router(&config).unwrap(),
        ListenSettings::default(),
        None,
        std::future::pending(),
    ));

    let body = vec![b'x'; 2_000_000];
    let mut request = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        common::TOKEN,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let client = tokio::net::TcpSocket::new_v4().unwrap();
    client.set_send_buffer_size(BUFFER).unwrap();
    let mut stream = client.connect(address).await.unwrap();
    // Everything first (as urllib does), then the answer.
    let exchange = async {
        stream.write_all(&request).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("no answer")
        .expect("the connection was reset instead of answered");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body = raw_body(&answer);
    assert_eq!(body["status"], "413", "{answer}");
    assert_eq!(
        body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{answer}"
    );
}

#[tokio::test]
async fn with_admin_listen_readiness_and_metrics_move_to_the_admin_listener() {
    let mut config = common::demo_config(ServerSettings::default()).await;
    // Only its presence matters here; the test binds its own ports.
    config.server.admin_listen = Some("127.0.0.1:9".parse().unwrap());
    let main = format!(
        "http://{}",
        common::serve(server::router(&config).unwrap()).await
    );
    let admin = format!(
        "http://{}",
        common::serve(server::admin_router(&config).unwrap()).await
    );
    let get = |url: String| async move { reqwest::get(url).await.unwrap() };
    assert_eq!(get(format!("{admin}/healthz")).await.status(), 200);
    assert_eq!(get(format!("{admin}/readyz")).await.status(), 200);
    let metrics = get(format!("{admin}/metrics")).await;
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    // The SCIM listener keeps liveness and SCIM, not readiness or metrics.
    assert_eq!(get(format!("{main}/healthz")).await.status(), 200);
    for path in ["/readyz", "/metrics"] {
        let reply = get(format!("{main}{path}")).await;
        assert_eq!(reply.status(), 404, "{path}");
    }
    // Nor does the admin listener serve SCIM.
    let scim = reqwest::Client::new()
        .get(format!("{admin}/scim/v2/Users"))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(scim.status(), 404);
    let listed = reqwest::Client::new()
        .get(format!("{main}/scim/v2/Users"))
        .bearer_auth(common::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
}

#[tokio::test]
async fn without_admin_listen_the_main_listener_serves_health_readiness_and_metrics() {
    let h = Harness::start().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let reply = reqwest::get(format!("{}{path}", h.root)).await.unwrap();
        assert_eq!(reply.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn scimgate_serve_opens_the_admin_listener_from_the_config() {
    let upstream = scimgate::demo::start_legacy(
        scimgate_reference::legacy::Database::Memory,
        common::API_KEY,
    )
    .await
    .unwrap();
    let (port, admin_port) = (common::free_port(), common::free_port());
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("legacy.toml");
    std::fs::write(&mapping, scimgate::demo::LEGACY_MAPPING).unwrap();
    let config = dir.path().join("scimgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"

[upstreams.legacy]
mapping = "legacy.toml"
base_url = "http://{upstream}"
secrets.api_key = {{ value = "{}" }}

[connections.acme]
base_path = "/scim/v2"
upstream = "legacy"
token_sha256 = "{}"
approved_domains = ["example.com"]
"#,
            common::API_KEY,
            hex::encode(server::hash_token(common::TOKEN)),
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = None;
    for _ in 0..100 {
        if let Ok(reply) = reqwest::get(format!("http://127.0.0.1:{admin_port}/readyz")).await {
            ready = Some(reply.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let main = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ready, Some(reqwest::StatusCode::OK));
    assert_eq!(main.unwrap().status(), 404);
}

fn location(reply: &common::Reply) -> String {
    reply.headers["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn public_url_is_the_base_of_every_answered_url_whatever_the_host_says() {
    let public = "https://scim.example.com/idp/acme";
    let h = Harness::start_configured(ServerSettings::default(), |config| {
        config.connections[0].public_url = Some(public.to_string());
    })
    .await;
    let forged = [
        ("host", "user@evil.example"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "evil.example"),
    ];
    let created = h
        .scim_with(
            Method::POST,
            "/Users",
            Some(new_user("pub")),
            Some(common::TOKEN),
            &forged,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(location(&created), format!("{public}/Users/{id}"));
    assert_eq!(
        created.body["meta"]["location"],
        format!("{public}/Users/{id}")
    );
    let group = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "pub",
        "members": [{"value": id}],
    });
    let group = h
        .scim_with(
            Method::POST,
            "/Groups",
            Some(group),
            Some(common::TOKEN),
            &forged,
        )
        .await;
    assert_eq!(group.status, 201, "{}", group.body);
    assert_eq!(
        group.body["members"][0]["$ref"],
        format!("{public}/Users/{id}")
    );
    let config = h
        .scim_with(
            Method::GET,
            "/ServiceProviderConfig",
            None,
            Some(common::TOKEN),
            &forged,
        )
        .await;
    assert_eq!(
        config.body["meta"]["location"],
        format!("{public}/ServiceProviderConfig")
    );
}

#[tokio::test]
async fn without_public_url_a_host_that_is_not_host_and_port_is_refused() {
    let h = Harness::start().await;
    for host in ["user@evil.example", "evil.example/x", "evil.example:99999"] {
        let reply = h
            .scim_with(
                Method::GET,
                "/Users",
                None,
                Some(common::TOKEN),
                &[("host", host)],
            )
            .await;
        assert_scim_error(&reply, 400, None);
    }
    let plain = h
        .scim_with(
            Method::POST,
            "/Users",
            Some(new_user("host")),
            Some(common::TOKEN),
            &[("host", "scim.example.com:8443")],
        )
        .await;
    assert_eq!(plain.status, 201, "{}", plain.body);
    assert!(
        location(&plain).starts_with("http://scim.example.com:8443/scim/v2/Users/"),
        "{}",
        location(&plain)
    );
}

#[tokio::test]
async fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    let forwarded = [
        ("host", "gateway.internal"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "scim.example.com"),
    ];
    for (trusted, expected) in [
        ("127.0.0.1", "https://scim.example.com/scim/v2/Users/"),
        ("10.0.0.0/8", "http://gateway.internal/scim/v2/Users/"),
    ] {
        let settings = ServerSettings {
            trusted_proxies: vec![trusted.parse().unwrap()],
            ..ServerSettings::default()
        };
        let h = Harness::start_with(settings).await;
        let created = h
            .scim_with(
                Method::POST,
                "/Users",
                Some(new_user("fwd")),
                Some(common::TOKEN),
                &forwarded,
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        assert!(
            location(&created).starts_with(expected),
            "{trusted}: {}",
            location(&created)
        );
        assert!(
            created.body["meta"]["location"]
                .as_str()
                .unwrap()
                .starts_with(expected),
            "{trusted}: {}",
            created.body
        );
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_clients_failures_do_not_throttle_another() {
    let h = Harness::start_with(ServerSettings {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..ServerSettings::default()
    })
    .await;
    // A wrong token, forwarded for `client` by the (trusted) loopback peer.
    let guess = async |client: &str| {
        h.scim_with(
            Method::GET,
            "/Users",
            None,
            Some("wrong"),
            &[("x-forwarded-for", client)],
        )
        .await
    };
    for _ in 0..10 {
        assert_scim_error(&guess("192.0.2.1").await, 401, None);
    }
    assert_scim_error(&guess("192.0.2.1").await, 429, None);
    assert_scim_error(&guess("192.0.2.2").await, 401, None);
}
