//! Bearer-token authentication of a connection. Tokens are stored only as
//! SHA-256 hashes (they are 256-bit random values, so a fast hash suffices)
//! and compared in constant time. Repeated failures from one client are
//! throttled (`auth_throttle`).

use std::sync::Arc;
use tokio::time::Instant;

use axum::extract::Request;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth_throttle::{ClientKey, FailureThrottle};
use crate::scim::error::ScimError;

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token: 32 bytes, hex-encoded.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Whether `Authorization` carries a bearer token whose hash is `expected`.
pub fn authorised(header: Option<&str>, expected: &[u8; 32]) -> bool {
    let Some(header) = header else { return false };
    let Some((scheme, token)) = header.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    bool::from(hash_token(token.trim()).ct_eq(expected))
}

/// What [`check`] checks a request against: the connection's token
/// hash, and the router-wide failure budgets.
#[derive(Clone)]
pub struct TokenCheck {
    pub expected: [u8; 32],
    pub throttle: Arc<FailureThrottle>,
    /// Whose `X-Forwarded-For` names the client (see `auth_throttle`).
    pub trusted_proxies: Arc<[crate::config::ProxyNet]>,
}

/// `Ok` for a request with the connection's token; otherwise the refusal.
pub fn check(tokens: &TokenCheck, request: &Request) -> Result<(), ScimError> {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // The token first, always: a valid one is never refused by the failure
    // throttle, whoever else shares its address (see `auth_throttle`).
    if authorised(header, &tokens.expected) {
        return Ok(());
    }
    let client = ClientKey::of(
        request.extensions(),
        request.headers(),
        &tokens.trusted_proxies,
    );
    if let Some(wait) = tokens.throttle.throttled(client, Instant::now()) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        return Err(ScimError::new(
            http::StatusCode::TOO_MANY_REQUESTS,
            None,
            format!(
                "too many failed authentication attempts from this client; retry after {seconds} s"
            ),
        )
        .with_retry_after(seconds));
    }
    tokens.throttle.charge(client, Instant::now());
    Err(ScimError::unauthorized(
        "a valid bearer token for this connection is required (Authorization: Bearer <token>)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_token_with_any_scheme_case_is_authorised() {
        let hash = hash_token("s3cret");
        assert!(authorised(Some("Bearer s3cret"), &hash));
        assert!(authorised(Some("bearer s3cret"), &hash));
    }

    #[test]
    fn wrong_missing_or_basic_tokens_are_refused() {
        let hash = hash_token("s3cret");
        assert!(!authorised(None, &hash));
        assert!(!authorised(Some("Bearer s3cre"), &hash));
        assert!(!authorised(Some("Basic s3cret"), &hash));
        assert!(!authorised(Some("Bearer"), &hash));
        assert!(!authorised(Some(""), &hash));
    }

    fn request(token: &str) -> Request {
        let mut request = Request::builder()
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let peer = std::net::SocketAddr::from(([192, 0, 2, 7], 4711));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        request
    }

    #[test]
    fn valid_token_is_never_refused_by_the_failure_throttle() {
        let gate = TokenCheck {
            expected: hash_token("s3cret"),
            throttle: Arc::new(FailureThrottle::new(2, std::time::Duration::from_secs(60))),
            trusted_proxies: Arc::from([]),
        };
        for _ in 0..2 {
            let refused = check(&gate, &request("guess")).unwrap_err();
            assert_eq!(refused.status, http::StatusCode::UNAUTHORIZED);
        }
        let throttled = check(&gate, &request("guess")).unwrap_err();
        assert_eq!(throttled.status, http::StatusCode::TOO_MANY_REQUESTS);
        // Same address, budget spent: the right token still gets in.
        assert!(check(&gate, &request("s3cret")).is_ok());
        let throttled = check(&gate, &request("guess")).unwrap_err();
        assert_eq!(throttled.status, http::StatusCode::TOO_MANY_REQUESTS);
    }

    #[test]
    fn new_tokens_are_random_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
