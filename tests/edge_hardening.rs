//! The edge, hardened (issue 12): what a shared ingress, idle or hostile
//! connections and oversized or malformed requests meet at the listener.

mod common;

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
