//! The edge, hardened (issue 12): what a shared ingress, idle or hostile
//! connections and oversized or malformed requests meet at the listener.

mod common;

use common::{Harness, assert_scim_error};
use reqwest::Method;

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
