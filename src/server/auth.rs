//! Bearer-token authentication of a connection. Tokens are stored only as
//! SHA-256 hashes (they are 256-bit random values, so a fast hash suffices)
//! and compared in constant time. Repeated failures from one client are
//! throttled (`auth_guard`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth_guard::{AuthGuard, ClientKey};
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
pub struct Gate {
    pub expected: [u8; 32],
    pub guard: Arc<AuthGuard>,
}

/// `Ok` for a request with the connection's token; otherwise the refusal.
pub fn check(gate: &Gate, request: &Request) -> Result<(), ScimError> {
    let client = ClientKey::of(request.extensions());
    // Throttled clients are refused before the token is compared, so a
    // throttled guess is not even evaluated (see `auth_guard`).
    if let Some(wait) = gate.guard.throttled(client, Instant::now()) {
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
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if authorised(header, &gate.expected) {
        Ok(())
    } else {
        gate.guard.charge(client, Instant::now());
        Err(ScimError::unauthorized(
            "a valid bearer token for this connection is required (Authorization: Bearer <token>)",
        ))
    }
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

    #[test]
    fn new_tokens_are_random_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
