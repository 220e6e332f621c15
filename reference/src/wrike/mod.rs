//! A reference upstream shaped like Wrike's public REST API v4 (users and groups of
//! one account), for the gateway to be run against. `docs/research/wrike-api.md`
//! records what is taken from the real API and what is simplified.
//!
//! | axis | this API |
//! | --- | --- |
//! | auth | `Authorization: bearer <permanent token>` (or `?access_token=`) |
//! | ids | `KUAAAAAA`-style strings; account `IEAAAAAA`-style (configured) |
//! | answers | `{"kind": "<kind>", "data": [ … ]}` — `data` is an array even for one record |
//! | parameters | query string or `application/x-www-form-urlencoded` body; arrays and objects as JSON text |
//! | create | `POST /invitations`: the invitation's `userId` names the new contact |
//! | update | `PUT` with the parameters to change |
//! | delete | users soft (`deleted: true`, undone by `PUT /users/{id}` `deleted=false`); groups hard |
//! | deactivation | `PUT /users/{id}` `active=false` / `active=true` (profile `active`) |
//! | groups | `memberIds` on the group; `addMembers` / `removeMembers` |
//! | paging, filters | none: lists are whole; `deleted=true` lists the deleted contacts instead |
//! | errors | `{"errorDescription", "error"}` with Wrike's codes and statuses |
//!
//! Routes (all under `/api/v4`, all need the token, all answer 200 on success):
//!
//! | method | path | parameters | `kind` |
//! | --- | --- | --- | --- |
//! | GET | `/contacts` | `deleted`, `fields` | `contacts` |
//! | GET | `/contacts/{id},{id},…` (≤ 100) | `fields` | `contacts` |
//! | PUT | `/contacts/{id}` | `firstName`, `lastName`, `title`, `phone`, `companyName`, `location`, `metadata`, `fields` | `contacts` |
//! | GET | `/users/{id}` | `fields` | `users` |
//! | PUT | `/users/{id}` | `profile` (alone) or `userTypeId`, `active`, `deleted`; `fields` | `users` |
//! | DELETE | `/users/{id}` | — | `users` (the deleted record) |
//! | GET | `/user_types` | — | `userTypes` |
//! | GET | `/account` | — | `accounts` |
//! | GET | `/invitations` | — | `invitations` |
//! | POST | `/invitations` | `email`, `firstName`, `lastName`, `role`, `external` or `userTypeId`, `subject`, `message` | `invitations` |
//! | GET | `/groups` | `fields` | `groups` |
//! | POST | `/groups` | `title`, `members`, `metadata` | `groups` |
//! | GET | `/groups/{id}` | `fields` | `groups` |
//! | PUT | `/groups/{id}` | `title`, `addMembers`, `removeMembers`, `metadata`, `fields` | `groups` |
//! | DELETE | `/groups/{id}` | — | `groups` (`data: []`) |
//!
//! `fields=["metadata"]` adds `metadata` to contacts and groups; without it they have
//! none. An unsupported or repeated parameter is 400 `invalid_request`, a malformed
//! value 400 `invalid_parameter`; an unknown path or a verb a path lacks is 404
//! `method_not_found`.
//!
//! Layout: this file holds the public API, the router, the token check and the
//! answer envelope; `account.rs`, `contacts.rs`, `users.rs`, `invitations.rs` and
//! `groups.rs` the handlers; `params.rs` parameter parsing; `records.rs` the data
//! model, its validation and rendering; `store.rs` the state and its rules;
//! `error.rs` the wire error.

mod account;
mod contacts;
mod error;
mod groups;
mod invitations;
mod params;
mod records;
mod store;
mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::header::AUTHORIZATION;
use http::request::Parts;
use serde_json::{Value, json};

pub use error::{ApiError, ErrorCode};
use store::Store;

/// The base path of every route.
pub const BASE_PATH: &str = "/api/v4";

/// Where the API keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// Gone when the last [`WrikeApi`] clone is dropped; for tests.
    Memory,
    /// A JSON file, created if missing and rewritten after every change.
    File(PathBuf),
}

/// Everything [`WrikeApi::open`] needs.
#[derive(Clone)]
pub struct WrikeConfig {
    /// The permanent access token clients send as `Authorization: bearer <token>`.
    /// Must not be empty.
    pub token: String,
    /// The one account's id, shown as `accountId` (`IEAAAAAA`-style). Must not be
    /// empty.
    pub account_id: String,
    pub database: Database,
}

impl std::fmt::Debug for WrikeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrikeConfig")
            .field("token", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("database", &self.database)
            .finish()
    }
}

/// Why the Wrike API could not start.
#[derive(Debug, thiserror::Error)]
pub enum WrikeError {
    #[error("the Wrike API token must not be empty")]
    EmptyToken,
    #[error("the Wrike account id must not be empty")]
    EmptyAccountId,
    #[error("cannot open the Wrike data file {path:?}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the Wrike data file {path:?} is not readable: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "the Wrike data file has format version {found}, newer than the {supported} this build knows"
    )]
    FormatVersion { found: u32, supported: u32 },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot seed the Wrike store: {0}")]
    Seed(#[source] error::ApiError),
}

/// The running API. Clones share the store.
#[derive(Clone)]
pub struct WrikeApi {
    inner: Arc<Inner>,
}

struct Inner {
    token: String,
    account_id: String,
    store: Store,
}

impl std::fmt::Debug for WrikeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrikeApi")
            .field("account_id", &self.inner.account_id)
            .finish_non_exhaustive()
    }
}

impl WrikeApi {
    /// Checks the config and opens (or creates) the store.
    pub fn open(config: WrikeConfig) -> Result<WrikeApi, WrikeError> {
        if config.token.is_empty() {
            return Err(WrikeError::EmptyToken);
        }
        if config.account_id.is_empty() {
            return Err(WrikeError::EmptyAccountId);
        }
        let store = Store::open(&config.database)?;
        Ok(WrikeApi {
            inner: Arc::new(Inner {
                token: config.token,
                account_id: config.account_id,
                store,
            }),
        })
    }

    /// Seeds `count` active users at once (`user{n}@{domain}`, externalId
    /// `ext-{n}`): an account at enterprise scale without 100,000 invitations.
    pub fn seed_contacts(&self, count: usize, domain: &str) -> Result<(), WrikeError> {
        self.inner
            .store
            .write(|state| {
                state.seed_contacts(count, domain);
                Ok(())
            })
            .map_err(WrikeError::Seed)
    }

    /// The account id records carry.
    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    /// All routes. Every path, unknown ones included, sits behind the token check, so
    /// an unauthenticated caller learns nothing about which paths exist.
    pub fn router(&self) -> Router {
        let path = |tail: &str| format!("{BASE_PATH}{tail}");
        Router::new()
            .route(&path("/contacts"), get(contacts::list))
            .route(
                &path("/contacts/{ids}"),
                get(contacts::get).put(contacts::update),
            )
            .route(
                &path("/users/{id}"),
                get(users::get).put(users::update).delete(users::delete),
            )
            .route(&path("/user_types"), get(users::user_types))
            .route(&path("/account"), get(account::get))
            .route(
                &path("/invitations"),
                get(invitations::list).post(invitations::create),
            )
            .route(&path("/groups"), get(groups::list).post(groups::create))
            .route(
                &path("/groups/{id}"),
                get(groups::get).put(groups::update).delete(groups::delete),
            )
            .fallback(no_method)
            .method_not_allowed_fallback(no_method)
            .layer(middleware::from_fn_with_state(self.clone(), require_token))
            .with_state(self.clone())
    }

    /// Binds `addr` (port 0 allowed), serves in a background task, returns the bound
    /// address.
    pub async fn spawn(self, addr: SocketAddr) -> Result<SocketAddr, WrikeError> {
        let bind_error = |source| WrikeError::Bind { addr, source };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        let router = self.router();
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(error = %err, addr = %bound, "wrike api server stopped");
            }
        });
        tracing::info!(addr = %bound, "wrike api listening");
        Ok(bound)
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// `{"kind": kind, "data": data}`, 200.
fn envelope(kind: &str, data: Vec<Value>) -> Response {
    Json(json!({"kind": kind, "data": data})).into_response()
}

/// A path segment, percent-decoded; a malformed one is 400 `invalid_parameter`
/// rather than the framework's plain-text rejection.
struct Id(String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Id, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| Id(id))
            .map_err(|err| ApiError::invalid_parameter(format!("Invalid id in the path: {err}")))
    }
}

/// The token of `Authorization: bearer <token>` (scheme in any case), or else of the
/// `access_token` query parameter.
fn presented_token(request: &Request) -> Option<String> {
    if let Some(value) = request.headers().get(AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.trim().split_once(' ')?;
        let token = token.trim();
        return (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
            .then(|| token.to_owned());
    }
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == params::ACCESS_TOKEN)
        .map(|(_, token)| token.into_owned())
        .filter(|token| !token.is_empty())
}

/// Compares without an early exit, so the time taken says nothing about how much of
/// a guess was right.
fn same_token(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    let mut difference = a.len() ^ b.len();
    for (i, byte) in b.iter().enumerate() {
        difference |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

async fn require_token(State(api): State<WrikeApi>, request: Request, next: Next) -> Response {
    match presented_token(&request) {
        Some(token) if same_token(&token, &api.inner.token) => next.run(request).await,
        Some(_) => ApiError::new(
            ErrorCode::NotAuthorized,
            "Authorization is invalid, malformed or expired",
        )
        .into_response(),
        None => ApiError::new(
            ErrorCode::NotAuthorized,
            "Authorization header (bearer token) or access_token parameter is required",
        )
        .into_response(),
    }
}

async fn no_method(request: Request) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotFound,
        format!(
            "Method {} {} does not exist",
            request.method(),
            request.uri().path()
        ),
    )
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{ACCOUNT_ID, Client, TOKEN};
    use super::*;
    use http::{Method, StatusCode};

    fn config(token: &str, account_id: &str) -> WrikeConfig {
        WrikeConfig {
            token: token.into(),
            account_id: account_id.into(),
            database: Database::Memory,
        }
    }

    #[test]
    fn empty_token_or_account_is_refused_at_open() {
        assert!(matches!(
            WrikeApi::open(config("", ACCOUNT_ID)),
            Err(WrikeError::EmptyToken)
        ));
        assert!(matches!(
            WrikeApi::open(config(TOKEN, "")),
            Err(WrikeError::EmptyAccountId)
        ));
    }

    #[test]
    fn config_debug_hides_the_token() {
        let shown = format!("{:?}", config(TOKEN, ACCOUNT_ID));
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains(ACCOUNT_ID), "{shown}");
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token("abc", "abc"));
        for other in ["", "ab", "abd", "abcd"] {
            assert!(!same_token(other, "abc"), "{other}");
        }
    }

    #[tokio::test]
    async fn missing_or_wrong_tokens_are_401_not_authorized_even_on_unknown_paths() {
        let client = Client::memory();
        for authorization in [
            None,
            Some("bearer wrong-token"),
            Some("Basic dXNlcjpwYXNz"),
            Some("bearer "),
        ] {
            for path in ["/api/v4/contacts", "/api/v4/groups", "/api/v4/nowhere", "/"] {
                let answer = client
                    .send_raw(Method::GET, path, None, authorization)
                    .await;
                answer.assert_error(401, "not_authorized");
            }
        }
    }

    #[tokio::test]
    async fn the_token_is_accepted_as_bearer_in_any_case_or_as_access_token() {
        let client = Client::memory();
        for authorization in [format!("bearer {TOKEN}"), format!("Bearer {TOKEN}")] {
            let answer = client
                .send_raw(Method::GET, "/api/v4/contacts", None, Some(&authorization))
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        }
        let answer = client
            .send_raw(
                Method::GET,
                &format!("/api/v4/contacts?access_token={TOKEN}"),
                None,
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    }

    #[tokio::test]
    async fn unknown_paths_and_missing_verbs_are_404_method_not_found() {
        let client = Client::memory();
        for (method, path) in [
            (Method::GET, "/api/v4/tasks"),
            (Method::GET, "/api/v3/contacts"),
            (Method::GET, "/api/v4/users"),
            (Method::POST, "/api/v4/contacts"),
            (Method::DELETE, "/api/v4/contacts/KUAAAAAA"),
            (Method::PATCH, "/api/v4/groups/KUAAAAAA"),
        ] {
            client
                .send(method, path, None)
                .await
                .assert_error(404, "method_not_found");
        }
    }

    #[tokio::test]
    async fn json_bodies_are_refused_as_invalid_request() {
        let client = Client::memory();
        let answer = client
            .send(
                Method::POST,
                "/api/v4/invitations",
                Some(("application/json", br#"{"email":"a@b.co"}"#.to_vec())),
            )
            .await;
        answer.assert_error(400, "invalid_request");
    }

    #[tokio::test]
    async fn a_poisoned_store_answers_500_server_error() {
        let client = Client::memory();
        client.api.store().poison_for_test();
        client
            .get("/api/v4/contacts")
            .await
            .assert_error(500, "server_error");
    }

    #[tokio::test]
    async fn a_file_database_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            WrikeApi::open(WrikeConfig {
                database: Database::File(dir.path().join("wrike.json")),
                ..config(TOKEN, ACCOUNT_ID)
            })
            .unwrap()
        };
        let first = Client::new(open());
        let user = first.invite("kept@example.com").await;
        let group = first
            .create_group(&[("title", "Keepers"), ("members", &format!("[\"{user}\"]"))])
            .await;
        drop(first);
        let second = Client::new(open());
        let answer = second.get(&format!("/api/v4/groups/{group}")).await;
        assert_eq!(answer.json["data"][0]["memberIds"], json!([user]));
        let contact = second.get(&format!("/api/v4/contacts/{user}")).await;
        assert_eq!(
            contact.json["data"][0]["profiles"][0]["email"],
            "kept@example.com"
        );
    }

    #[tokio::test]
    async fn spawn_serves_over_real_http_on_port_zero() {
        let api = WrikeApi::open(config(TOKEN, ACCOUNT_ID)).unwrap();
        let addr = api.spawn(([127, 0, 0, 1], 0).into()).await.unwrap();
        assert_ne!(addr.port(), 0);
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = "email=net%40example.com&firstName=Net";
        let request = format!(
            "POST /api/v4/invitations HTTP/1.1\r\nHost: x\r\nAuthorization: bearer {TOKEN}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"kind\":\"invitations\""), "{answer}");
        assert!(answer.contains("\"userId\":\"KUAAAAAA\""), "{answer}");
    }
}
