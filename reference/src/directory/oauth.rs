//! OAuth 2.0 client-credentials auth (RFC 6749 §4.4): `POST /oauth/token` trades the
//! configured client id and secret for a bearer token that every other route needs.
//!
//! The client authenticates either with HTTP Basic (id and secret form-urlencoded, then
//! base64, per §2.3.1) or with `client_id`/`client_secret` body fields — never both.
//! Issued tokens live in memory only, as SHA-256 digests with their expiry, so a
//! memory dump reveals no usable token and a lookup's timing reveals nothing about a
//! token's bytes. Credentials are compared as digests in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderMap;
use http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::DirectoryApi;
use super::extract::FormBody;
use super::problem::Problem;

/// Where tokens are issued; the one route that needs no bearer token.
pub(crate) const TOKEN_PATH: &str = "/oauth/token";

/// How long an issued token is good for; answered as `expires_in`.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(300);

type Digest32 = [u8; 32];

fn digest(bytes: &[u8]) -> Digest32 {
    Sha256::digest(bytes).into()
}

/// The configured client and the tokens issued to it.
pub(crate) struct Tokens {
    client_id: Digest32,
    client_secret: Digest32,
    /// Digest of each live token → when it stops being valid.
    issued: Mutex<HashMap<Digest32, Instant>>,
    count: AtomicU64,
}

impl Tokens {
    pub(crate) fn new(client_id: &str, client_secret: &str) -> Tokens {
        Tokens {
            client_id: digest(client_id.as_bytes()),
            client_secret: digest(client_secret.as_bytes()),
            issued: Mutex::new(HashMap::new()),
            count: AtomicU64::new(0),
        }
    }

    /// Both halves are compared, always, without an early exit.
    fn credentials_match(&self, id: &[u8], secret: &[u8]) -> bool {
        let id_ok = digest(id).ct_eq(&self.client_id);
        let secret_ok = digest(secret).ct_eq(&self.client_secret);
        (id_ok & secret_ok).into()
    }

    /// A new token valid until `now + TOKEN_TTL`. Expired tokens are forgotten here,
    /// so the table holds at most one TTL's worth of issues.
    pub(crate) fn issue_at(&self, now: Instant) -> Result<String, Problem> {
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let mut issued = self
            .issued
            .lock()
            .map_err(|_| Problem::internal("token table mutex poisoned"))?;
        issued.retain(|_, expires| *expires > now);
        issued.insert(digest(token.as_bytes()), now + TOKEN_TTL);
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(token)
    }

    /// Whether `token` was issued here and has not expired at `now`.
    pub(crate) fn valid_at(&self, token: &str, now: Instant) -> Result<bool, Problem> {
        let issued = self
            .issued
            .lock()
            .map_err(|_| Problem::internal("token table mutex poisoned"))?;
        Ok(issued
            .get(&digest(token.as_bytes()))
            .is_some_and(|expires| *expires > now))
    }

    /// Forgets every issued token, as a restart or a revocation would.
    pub(crate) fn revoke_all(&self) {
        if let Ok(mut issued) = self.issued.lock() {
            issued.clear();
        }
    }

    pub(crate) fn issued_count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Moves every live token's expiry `by` into the past, as if that much time passed.
    #[cfg(test)]
    pub(crate) fn age_for_test(&self, by: Duration) {
        if let Ok(mut issued) = self.issued.lock() {
            for expires in issued.values_mut() {
                *expires = expires.checked_sub(by).unwrap_or(*expires);
            }
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XY` a byte.
/// `None` for a malformed escape.
fn form_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

/// A client id and secret, as raw bytes.
type Credentials = (Vec<u8>, Vec<u8>);

/// Client credentials from `Authorization: Basic …`: `None` when there is no Basic
/// header, an error when there is one that does not decode.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<Credentials>, Problem> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| Problem::invalid_client())?;
    let Some((scheme, encoded)) = text.trim().split_once(' ') else {
        return Err(Problem::invalid_client());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Problem::invalid_client());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| Problem::invalid_client())?;
    let text = String::from_utf8(decoded).map_err(|_| Problem::invalid_client())?;
    let (id, secret) = text.split_once(':').ok_or_else(Problem::invalid_client)?;
    let id = form_decode(id).ok_or_else(Problem::invalid_client)?;
    let secret = form_decode(secret).ok_or_else(Problem::invalid_client)?;
    Ok(Some((id, secret)))
}

/// `POST /oauth/token`.
pub(super) async fn token(
    State(api): State<DirectoryApi>,
    headers: HeaderMap,
    FormBody(form): FormBody,
) -> Result<Response, Problem> {
    let mut fields: Vec<(&str, &str)> = Vec::new();
    for (key, value) in &form {
        if fields.iter().any(|(seen, _)| seen == key) {
            return Err(Problem::oauth(
                "invalid_request",
                format!("parameter `{key}` is given more than once"),
            ));
        }
        fields.push((key, value));
    }
    let field = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(Problem::oauth(
                "unsupported_grant_type",
                format!("grant_type `{other}` is not supported; use `client_credentials`"),
            ));
        }
        None => {
            return Err(Problem::oauth(
                "invalid_request",
                "parameter `grant_type` is required",
            ));
        }
    }
    let in_body = (field("client_id"), field("client_secret"));
    let (id, secret) = match (basic_credentials(&headers)?, in_body) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            return Err(Problem::oauth(
                "invalid_request",
                "send client credentials either as HTTP Basic or in the body, not both",
            ));
        }
        (Some(basic), _) => basic,
        (None, (Some(id), Some(secret))) => (id.as_bytes().to_vec(), secret.as_bytes().to_vec()),
        (None, _) => return Err(Problem::invalid_client()),
    };
    if !api.tokens.credentials_match(&id, &secret) {
        return Err(Problem::invalid_client());
    }
    let token = api.tokens.issue_at(Instant::now())?;
    let body = json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL.as_secs(),
    });
    Ok((
        [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
        Json(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{CLIENT_ID, CLIENT_SECRET, Client};
    use super::*;
    use http::{Method, StatusCode};

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn form_decoding_handles_plus_and_escapes() {
        assert_eq!(form_decode("a+b%3A%2fc").as_deref(), Some(&b"a b:/c"[..]));
        assert_eq!(form_decode("%"), None);
        assert_eq!(form_decode("%4"), None);
        assert_eq!(form_decode("%zz"), None);
    }

    #[test]
    fn tokens_are_valid_until_their_expiry_and_not_after() {
        let tokens = Tokens::new("id", "secret");
        let start = Instant::now();
        let token = tokens.issue_at(start).unwrap();
        assert!(tokens.valid_at(&token, start).unwrap());
        assert!(
            tokens
                .valid_at(&token, start + TOKEN_TTL - Duration::from_millis(1))
                .unwrap()
        );
        assert!(!tokens.valid_at(&token, start + TOKEN_TTL).unwrap());
        assert!(!tokens.valid_at("never-issued", start).unwrap());
        assert_eq!(tokens.issued_count(), 1);
    }

    #[test]
    fn expired_tokens_are_forgotten_at_the_next_issue() {
        let tokens = Tokens::new("id", "secret");
        let start = Instant::now();
        tokens.issue_at(start).unwrap();
        tokens.issue_at(start + TOKEN_TTL).unwrap();
        assert_eq!(tokens.issued.lock().unwrap().len(), 1);
        assert_eq!(tokens.issued_count(), 2);
    }

    #[tokio::test]
    async fn token_is_issued_for_form_field_credentials() {
        let client = Client::memory();
        let before = client.api.tokens_issued();
        let body = format!(
            "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        );
        let answer = client.token_request(&body, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        assert_eq!(answer.json["token_type"], "Bearer");
        assert_eq!(answer.json["expires_in"], 300);
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        assert_eq!(client.api.tokens_issued(), before + 1);
        let token = answer.json["access_token"].as_str().unwrap();
        assert!(token.len() >= 40, "{token}");
        let users = client
            .send_raw(Method::GET, "/v2/users", None, None, Some(token))
            .await;
        assert_eq!(users.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn token_is_issued_for_http_basic_credentials() {
        let client = Client::memory();
        let answer = client
            .token_request(
                "grant_type=client_credentials",
                Some(&basic(CLIENT_ID, CLIENT_SECRET)),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let token = answer.json["access_token"].as_str().unwrap();
        let users = client
            .send_raw(Method::GET, "/v2/users", None, None, Some(token))
            .await;
        assert_eq!(users.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn basic_credentials_are_form_urlencoded_before_base64() {
        let api = DirectoryApi::open(super::super::DirectoryConfig {
            client_id: "svc:gateway".into(),
            client_secret: "p@ss word+1".into(),
            database: super::super::Database::Memory,
        })
        .unwrap();
        let client = Client::new(api);
        let answer = client
            .token_request(
                "grant_type=client_credentials",
                Some(&basic("svc%3Agateway", "p%40ss+word%2B1")),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let in_body = client
            .token_request(
                "grant_type=client_credentials&client_id=svc%3Agateway&client_secret=p%40ss+word%2B1",
                None,
            )
            .await;
        assert_eq!(in_body.status, StatusCode::OK, "{}", in_body.json);
    }

    #[tokio::test]
    async fn wrong_secret_or_unknown_client_is_401_invalid_client() {
        let client = Client::memory();
        let before = client.api.tokens_issued();
        let wrong_body =
            format!("grant_type=client_credentials&client_id={CLIENT_ID}&client_secret=wrong");
        let cases = [
            client.token_request(&wrong_body, None).await,
            client
                .token_request(
                    "grant_type=client_credentials",
                    Some(&basic("someone-else", CLIENT_SECRET)),
                )
                .await,
            client
                .token_request("grant_type=client_credentials", Some(&basic(CLIENT_ID, "")))
                .await,
            client
                .token_request("grant_type=client_credentials", Some("Basic !!!"))
                .await,
            client
                .token_request("grant_type=client_credentials", Some("Bearer abc"))
                .await,
            client
                .token_request("grant_type=client_credentials", None)
                .await,
        ];
        for answer in cases {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.json);
            answer.assert_problem(401, "unauthorized");
            assert_eq!(answer.json["error"], "invalid_client");
            assert!(answer.header("www-authenticate").is_some());
        }
        assert_eq!(client.api.tokens_issued(), before);
    }

    #[tokio::test]
    async fn malformed_token_requests_are_400_with_an_oauth_error() {
        let client = Client::memory();
        let good = format!("client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}");
        let both = basic(CLIENT_ID, CLIENT_SECRET);
        let cases = [
            (good.clone(), None, "invalid_request"),
            (
                format!("grant_type=password&{good}"),
                None,
                "unsupported_grant_type",
            ),
            (
                format!("grant_type=client_credentials&grant_type=client_credentials&{good}"),
                None,
                "invalid_request",
            ),
            (
                format!("grant_type=client_credentials&{good}"),
                Some(both.as_str()),
                "invalid_request",
            ),
        ];
        for (body, header, code) in cases {
            let answer = client.token_request(&body, header).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(answer.json["error"], code, "{body}");
        }
    }

    #[tokio::test]
    async fn token_requests_must_be_form_encoded() {
        let client = Client::memory();
        let answer = client
            .send_raw(
                Method::POST,
                TOKEN_PATH,
                Some((
                    "application/json",
                    br#"{"grant_type":"client_credentials"}"#.to_vec(),
                )),
                None,
                None,
            )
            .await;
        answer.assert_problem(415, "unsupported-media-type");
    }

    #[tokio::test]
    async fn expired_tokens_are_refused_with_401() {
        let client = Client::memory();
        assert_eq!(client.get("/v2/users").await.status, StatusCode::OK);
        client.api.tokens.age_for_test(TOKEN_TTL);
        let answer = client.get("/v2/users").await;
        answer.assert_problem(401, "unauthorized");
        assert!(
            answer
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer"))
        );
    }

    #[tokio::test]
    async fn a_token_nearly_expired_still_works() {
        let client = Client::memory();
        client
            .api
            .tokens
            .age_for_test(TOKEN_TTL - Duration::from_secs(5));
        assert_eq!(client.get("/v2/users").await.status, StatusCode::OK);
    }
}
