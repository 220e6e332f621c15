#![allow(
    clippy::disallowed_methods,
    reason = "test clients read small bodies the tests wrote"
)]

use std::sync::Mutex;

use axum::extract::Path;
use axum::routing::get;
use http::header;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tower::ServiceExt;

use crate::scim::error::ERROR_SCHEMA;
use crate::server::response::SCIM_CONTENT_TYPE;

use super::super::tls::test_certs::TestPki;
use super::super::tls::{Tls, TlsFiles};
use super::*;

/// Bound on anything a test waits for: generous, only there so a broken
/// server fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing after {PATIENCE:?}"))
}

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<io::Result<()>>,
}

async fn start(router: Router, settings: ListenSettings, tls: Option<Arc<Tls>>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, router, settings, tls, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, server }
}

fn app() -> Router {
    Router::new()
        .route(
            "/hello",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                format!("hello {}", peer.ip())
            }),
        )
        .route(
            "/sleep",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "too late"
            }),
        )
}

fn get_request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
}

/// Sends `request` on a new connection and reads until the server closes.
async fn exchange(addr: SocketAddr, request: impl AsRef<[u8]>) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_ref()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Reads one response with a content-length body off a kept-alive stream.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buffer = Vec::new();
    loop {
        let text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return text;
            }
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(read > 0, "connection closed mid-response: {text}");
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// A client that trusts only `ca_pem` and finds `localhost` at `addr`.
fn tls_client(ca_pem: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

fn https(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

/// The leaf certificate the server presents to a new connection.
async fn presented_leaf(addr: SocketAddr, ca_pems: &[&str]) -> io::Result<Vec<u8>> {
    let mut roots = RootCertStore::empty();
    for pem in ca_pems {
        roots
            .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let stream = TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), stream)
        .await?;
    let (_, session) = stream.get_ref();
    Ok(session.peer_certificates().unwrap()[0].to_vec())
}

fn with_pki(pki: &TestPki) -> (tempfile::TempDir, TlsFiles, Arc<Tls>) {
    let dir = tempfile::tempdir().unwrap();
    let files = pki.write(dir.path());
    let tls = Arc::new(Tls::load(files.clone()).unwrap());
    (dir, files, tls)
}

#[tokio::test]
async fn plain_http1_request_is_served_with_the_peer_address() {
    let server = start(app(), ListenSettings::default(), None).await;
    let answer = within("GET /hello", exchange(server.addr, get_request("/hello")))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("hello 127.0.0.1"), "{answer}");
}

#[tokio::test]
async fn plain_tcp_speaks_h2c_with_prior_knowledge() {
    let server = start(app(), ListenSettings::default(), None).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("http://{}/hello", server.addr);
    let response = within("h2c GET", client.get(url).send()).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "hello 127.0.0.1");
}

#[tokio::test]
async fn http2_over_tls_is_negotiated_by_alpn() {
    let pki = TestPki::new("a");
    let (_dir, _files, tls) = with_pki(&pki);
    let server = start(app(), ListenSettings::default(), Some(tls)).await;
    let client = tls_client(&pki.ca_pem, server.addr);
    let response = within("h2 GET", client.get(https(server.addr, "/hello")).send())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "hello 127.0.0.1");
}

#[tokio::test]
async fn reload_serves_the_new_certificate_and_survives_a_broken_one() {
    let (a, b) = (TestPki::new("a"), TestPki::new("b"));
    let (_dir, files, tls) = with_pki(&a);
    let server = start(app(), ListenSettings::default(), Some(tls.clone())).await;
    let both = [a.ca_pem.as_str(), b.ca_pem.as_str()];
    assert_eq!(
        within("handshake", presented_leaf(server.addr, &both))
            .await
            .unwrap(),
        a.leaf_der
    );

    std::fs::write(&files.cert, &b.leaf_pem).unwrap();
    std::fs::write(&files.key, &b.key_pem).unwrap();
    tls.reload().unwrap();
    assert_eq!(
        within("handshake", presented_leaf(server.addr, &both))
            .await
            .unwrap(),
        b.leaf_der
    );
    let answer = within(
        "GET trusting B",
        tls_client(&b.ca_pem, server.addr)
            .get(https(server.addr, "/hello"))
            .send(),
    )
    .await;
    assert_eq!(answer.unwrap().status(), StatusCode::OK);
    let answer = within(
        "GET trusting A",
        tls_client(&a.ca_pem, server.addr)
            .get(https(server.addr, "/hello"))
            .send(),
    )
    .await;
    assert!(answer.is_err(), "a client trusting only A still connects");

    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\n!!\n").unwrap();
    assert!(tls.reload().is_err());
    let answer = within(
        "GET trusting B",
        tls_client(&b.ca_pem, server.addr)
            .get(https(server.addr, "/hello"))
            .send(),
    )
    .await;
    assert_eq!(answer.unwrap().status(), StatusCode::OK);
    assert_eq!(
        within("handshake", presented_leaf(server.addr, &both))
            .await
            .unwrap(),
        b.leaf_der
    );
}

#[tokio::test]
async fn slow_request_heads_are_cut_off_while_others_are_served() {
    let settings = ListenSettings {
        header_read_timeout: Duration::from_millis(200),
        ..ListenSettings::default()
    };
    let server = start(app(), settings, None).await;
    // Half a head, then nothing: classic slowloris.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /hello HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    // Not a byte: hyper's own timer has not started yet for this one.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Half an HTTP/2 preface: stuck while hyper decides on the protocol.
    let mut half_preface = TcpStream::connect(server.addr).await.unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();

    let answer = within("GET /hello", exchange(server.addr, get_request("/hello")))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    for (name, stream) in [
        ("slow", &mut slow),
        ("silent", &mut silent),
        ("half preface", &mut half_preface),
    ] {
        let mut rest = Vec::new();
        // EOF or a reset: either way the server let go.
        let _ = within(name, stream.read_to_end(&mut rest)).await;
        let rest = String::from_utf8_lossy(&rest);
        assert!(!rest.contains("200 OK"), "{name}: {rest}");
    }
}

#[tokio::test]
async fn oversized_head_is_refused_and_the_next_client_served() {
    let server = start(app(), ListenSettings::default(), None).await;
    let big = format!(
        "GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    // The server may close before it has read everything: a failed write
    // or a reset is a refusal too.
    if let Ok(answer) = within("oversized GET", exchange(server.addr, big)).await {
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );
    }
    let fits = format!(
        "GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    let answer = within("12 KiB head", exchange(server.addr, fits))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

#[tokio::test]
async fn beyond_max_connections_a_client_waits_for_one_to_close() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let router = Router::new().route(
        "/log/{name}",
        get(move |Path(name): Path<String>| async move {
            log.lock().unwrap().push(name);
            "ok"
        }),
    );
    let settings = ListenSettings {
        max_connections: 1,
        ..ListenSettings::default()
    };
    let server = start(router, settings, None).await;

    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first
        .write_all(b"GET /log/first-1 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    within("first-1", read_response(&mut first)).await;

    // Connects (the kernel queues it) but is not accepted.
    let second = tokio::spawn(exchange(server.addr, get_request("/log/second")));
    // Only gives a broken limit the chance to show; the assertions below
    // hold however long this takes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    first
        .write_all(b"GET /log/first-2 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    within("first-2", read_response(&mut first)).await;
    assert_eq!(*seen.lock().unwrap(), ["first-1", "first-2"]);
    assert!(!second.is_finished());

    drop(first);
    let answer = within("second", second).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(*seen.lock().unwrap(), ["first-1", "first-2", "second"]);
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_a_scim_503_over_the_wire() {
    let settings = ListenSettings {
        request_timeout: Duration::from_millis(200),
        ..ListenSettings::default()
    };
    let server = start(app(), settings, None).await;
    let url = format!("http://{}/sleep", server.addr);
    let response = within("GET /sleep", reqwest::get(url)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert_eq!(response.headers()[header::CONTENT_TYPE], SCIM_CONTENT_TYPE);
    // The deadline's answer is correlated like any other.
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "schemas": [ERROR_SCHEMA],
            "status": "503",
            "detail": format!("the request took longer than the gateway allows (0.2s) (correlation id {id})"),
        })
    );
}

#[tokio::test(start_paused = true)]
async fn request_deadline_counts_from_the_head_not_the_clock() {
    let service = RouterService {
        routes: app().into(),
        peer: SocketAddr::from(([192, 0, 2, 1], 4711)),
        tls: false,
        request_timeout: Duration::from_secs(60),
        first_request: Arc::new(AtomicBool::new(false)),
        activity: Arc::new(Activity::new()),
        unread_body: Arc::default(),
    };
    let request = Request::get("/sleep").body(Body::empty()).unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("the request took longer than the gateway allows (60s) (correlation id "),
        "{body}"
    );

    // A quick route is untouched, and sees the peer it was given.
    let request = Request::get("/hello").body(Body::empty()).unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, "hello 192.0.2.1");
    assert!(service.first_request.load(Ordering::Relaxed));
}

/// A route that reports when it has started and finishes when released.
fn held_route() -> (Router, mpsc::UnboundedReceiver<()>, Arc<Notify>) {
    let (started, on_start) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let released = release.clone();
    let router = Router::new().route(
        "/hold",
        get(move || async move {
            let _ = started.send(());
            released.notified().await;
            "done"
        }),
    );
    (router, on_start, release)
}

async fn wait_until_refused(addr: SocketAddr) {
    within("listener to close", async {
        while let Ok(stream) = TcpStream::connect(addr).await {
            drop(stream);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn shutdown_refuses_new_clients_and_lets_in_flight_requests_finish() {
    let (router, mut on_start, release) = held_route();
    let server = start(router, ListenSettings::default(), None).await;
    let in_flight = tokio::spawn(exchange(server.addr, get_request("/hold")));
    within("handler start", on_start.recv()).await.unwrap();

    server.stop.send(()).unwrap();
    wait_until_refused(server.addr).await;
    assert!(!server.server.is_finished(), "returned before draining");

    release.notify_one();
    let answer = within("in-flight answer", in_flight)
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("done"), "{answer}");
    within("serve to return", server.server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn drain_timeout_closes_what_is_still_running() {
    let (router, mut on_start, _never_released) = held_route();
    let settings = ListenSettings {
        drain_timeout: Duration::from_millis(200),
        ..ListenSettings::default()
    };
    let server = start(router, settings, None).await;
    let in_flight = tokio::spawn(exchange(server.addr, get_request("/hold")));
    within("handler start", on_start.recv()).await.unwrap();

    server.stop.send(()).unwrap();
    within("serve to return", server.server)
        .await
        .unwrap()
        .unwrap();
    let answer = within("in-flight answer", in_flight).await.unwrap();
    // Closed without an answer: EOF (empty) or a reset.
    assert!(
        answer.is_err() || answer.as_ref().unwrap().is_empty(),
        "{answer:?}"
    );
}

#[tokio::test]
async fn failed_handshakes_and_resets_do_not_stop_the_accept_loop() {
    let pki = TestPki::new("a");
    let (_dir, _files, tls) = with_pki(&pki);
    let server = start(app(), ListenSettings::default(), Some(tls)).await;

    // Plain HTTP on the TLS port.
    let answer = within("plain to TLS", exchange(server.addr, get_request("/hello"))).await;
    assert!(!answer.unwrap_or_default().contains("200 OK"));
    // A client that does not trust the certificate aborts the handshake.
    let stranger = TestPki::new("stranger");
    assert!(
        within(
            "untrusted",
            presented_leaf(server.addr, &[&stranger.ca_pem])
        )
        .await
        .is_err()
    );
    // A reset in the middle of a head.
    let reset = TcpStream::connect(server.addr).await.unwrap();
    reset.set_zero_linger().unwrap();
    drop(reset);

    let response = within(
        "GET after failures",
        tls_client(&pki.ca_pem, server.addr)
            .get(https(server.addr, "/hello"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn extreme_settings_are_clamped_instead_of_panicking() {
    let settings = ListenSettings {
        max_connections: 0,
        header_read_timeout: Duration::MAX,
        max_header_bytes: 0,
        request_timeout: Duration::MAX,
        drain_timeout: Duration::MAX,
    };
    let server = start(app(), settings, None).await;
    let answer = within("GET /hello", exchange(server.addr, get_request("/hello")))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    server.stop.send(()).unwrap();
    within("serve to return", server.server)
        .await
        .unwrap()
        .unwrap();
}
