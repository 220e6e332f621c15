//! The reference legacy user API: a stand-in for a customer's old REST
//! user-management service, which the gateway translates SCIM into.
//!
//! It is deliberately *not* SCIM: numeric ids, flat snake_case records, page/per_page
//! paging with an `X-Total-Count` header, `X-Api-Key` auth and its own error body
//! `{"error":{"code":"…","message":"…"}}`. `scimgate demo`, the end-to-end tests and the
//! benchmarks run it over real HTTP.
//!
//! Routes (all under `/api/v1`, all requiring `X-Api-Key`):
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | GET | `/users?page&per_page&login&email&external_ref&status` | 200 array + `X-Total-Count` |
//! | POST | `/users` | 201 user + `Location` |
//! | GET, PATCH, PUT, DELETE | `/users/{id}` | 200 user / 204 |
//! | GET | `/teams?page&per_page&name&external_ref` | 200 array + `X-Total-Count` |
//! | POST | `/teams` | 201 team + `Location` |
//! | GET, PATCH, DELETE | `/teams/{id}` | 200 team / 204 |
//! | GET | `/teams/{id}/members?page&per_page` | 200 array + `X-Total-Count` |
//! | POST | `/teams/{id}/members` | 201 new member, 200 existing one |
//! | DELETE | `/teams/{id}/members/{user_id}` | 204 |
//!
//! Layout: this file holds the public API, the router, auth and the answer helpers the
//! handlers share; `users.rs` and `teams.rs` the handlers and body rules; `extract.rs`
//! request parsing; `error.rs` the wire error; `records.rs` the data model; `store.rs`
//! SQLite.

mod error;
mod extract;
mod records;
mod store;
mod teams;
mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use http::header::LOCATION;
use serde::Serialize;

use error::ApiError;
use store::{Store, StoreError};

/// Where the legacy API keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// Gone when the last [`LegacyApi`] clone is dropped; for tests.
    Memory,
    /// A SQLite file, created if missing; survives restarts.
    File(PathBuf),
}

/// Everything [`LegacyApi::open`] needs.
#[derive(Clone)]
pub struct LegacyConfig {
    /// The value every request must send in `X-Api-Key`. Must not be empty.
    pub api_key: String,
    pub database: Database,
}

impl std::fmt::Debug for LegacyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyConfig")
            .field("api_key", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

/// Why the legacy API could not start.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("the legacy API key must not be empty")]
    EmptyApiKey,
    #[error("cannot open legacy database {database:?}: {source}")]
    Open {
        database: Database,
        source: rusqlite::Error,
    },
    #[error("cannot create or migrate the legacy database schema: {0}")]
    Migrate(rusqlite::Error),
    #[error(
        "legacy database has schema version {found}, newer than the {supported} this build knows"
    )]
    SchemaVersion { found: i64, supported: i64 },
    #[error("cannot seed the legacy database: {0}")]
    Seed(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The running legacy API: a store and an API key. Clones share the store.
#[derive(Clone)]
pub struct LegacyApi {
    store: Arc<Store>,
    api_key: Arc<[u8]>,
}

impl std::fmt::Debug for LegacyApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyApi").finish_non_exhaustive()
    }
}

impl LegacyApi {
    /// Opens the database (creating the schema if needed).
    pub fn open(config: LegacyConfig) -> Result<LegacyApi, LegacyError> {
        if config.api_key.is_empty() {
            return Err(LegacyError::EmptyApiKey);
        }
        let store = Store::open(&config.database)?;
        Ok(LegacyApi {
            store: Arc::new(store),
            api_key: Arc::from(config.api_key.into_bytes()),
        })
    }

    /// The API without its unique logins and emails: it then creates a
    /// second user with a login already taken, as many legacy APIs do, so
    /// only the gateway can keep an IdP's retries from duplicating users.
    pub fn allowing_duplicates(self) -> Result<LegacyApi, LegacyError> {
        self.store
            .allow_duplicates()
            .map_err(LegacyError::Migrate)?;
        Ok(self)
    }

    /// Adds a team of `members` new users (`{name}-{n}@example.com`) in one
    /// transaction, for tests and benchmarks of large groups; answers its id.
    pub fn seed_team(&self, name: &str, members: usize) -> Result<i64, LegacyError> {
        self.store
            .seed_team(name, members)
            .map_err(|error| LegacyError::Seed(error.to_string()))
    }

    /// All routes, behind the API-key check (unknown paths included, so an
    /// unauthenticated caller learns nothing about which paths exist).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/users", get(users::list).post(users::create))
            .route(
                "/api/v1/users/{id}",
                get(users::get)
                    .patch(users::patch)
                    .put(users::replace)
                    .delete(users::delete),
            )
            .route("/api/v1/teams", get(teams::list).post(teams::create))
            .route(
                "/api/v1/teams/{id}",
                get(teams::get).patch(teams::patch).delete(teams::delete),
            )
            .route(
                "/api/v1/teams/{id}/members",
                get(teams::list_members).post(teams::add_member),
            )
            .route(
                "/api/v1/teams/{id}/members/{user_id}",
                get(teams::get_member).delete(teams::remove_member),
            )
            .fallback(no_route)
            .method_not_allowed_fallback(wrong_method)
            .layer(middleware::from_fn_with_state(
                self.clone(),
                require_api_key,
            ))
            .with_state(self.clone())
    }

    /// Binds `addr` (port 0 allowed), serves in a background task, returns the bound address.
    pub async fn spawn(self, addr: SocketAddr) -> Result<SocketAddr, LegacyError> {
        let bind_error = |source| LegacyError::Bind { addr, source };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        let router = self.router();
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(error = %err, addr = %bound, "legacy api server stopped");
            }
        });
        tracing::info!(addr = %bound, "legacy api listening");
        Ok(bound)
    }

    /// Runs one store operation on the blocking pool: SQLite calls block, and the
    /// mutex must never be held across an `.await`.
    async fn run<T, F>(&self, operation: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || operation(&store)).await {
            Ok(result) => result.map_err(ApiError::from),
            Err(join) => Err(ApiError::internal(format!("store task failed: {join}"))),
        }
    }

    /// Runs `operation` and answers 200 with its result as JSON.
    async fn answer_json<T, F>(&self, operation: F) -> Result<Response, ApiError>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        Ok(Json(self.run(operation).await?).into_response())
    }

    /// Runs a list `operation` and answers 200 with the page as a JSON array and the
    /// count of all matching rows in `X-Total-Count`.
    async fn answer_page<T, F>(&self, operation: F) -> Result<Response, ApiError>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Store) -> Result<(Vec<T>, u64), StoreError> + Send + 'static,
    {
        let (items, total) = self.run(operation).await?;
        Ok(([("x-total-count", total.to_string())], Json(items)).into_response())
    }

    /// Runs `operation` and answers 204 with no body.
    async fn answer_no_content<F>(&self, operation: F) -> Result<Response, ApiError>
    where
        F: FnOnce(&Store) -> Result<(), StoreError> + Send + 'static,
    {
        self.run(operation).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

/// 201 with the new `record` and its `Location`: `collection/id`.
fn created(collection: &str, id: i64, record: impl Serialize) -> Response {
    let location = format!("{collection}/{id}");
    (StatusCode::CREATED, [(LOCATION, location)], Json(record)).into_response()
}

/// Equal-length byte strings compared without an early exit, so the time taken does
/// not reveal how long a correct prefix the caller guessed. The length itself is not
/// secret.
fn keys_match(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    let difference = presented
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

async fn require_api_key(State(api): State<LegacyApi>, request: Request, next: Next) -> Response {
    let presented = request.headers().get("x-api-key").map(|v| v.as_bytes());
    if presented.is_some_and(|key| keys_match(key, &api.api_key)) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

async fn no_route(request: Request) -> ApiError {
    ApiError::not_found(format!("nothing at {}", request.uri().path()))
}

async fn wrong_method(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{Client, KEY};
    use super::*;
    use http::Method;
    use serde_json::json;

    #[test]
    fn keys_match_only_on_identical_bytes() {
        assert!(keys_match(b"secret", b"secret"));
        assert!(!keys_match(b"secreT", b"secret"));
        assert!(!keys_match(b"secret!", b"secret"));
        assert!(!keys_match(b"", b"secret"));
    }

    #[test]
    fn an_empty_api_key_is_refused_at_open() {
        let config = LegacyConfig {
            api_key: String::new(),
            database: Database::Memory,
        };
        assert!(matches!(
            LegacyApi::open(config),
            Err(LegacyError::EmptyApiKey)
        ));
    }

    #[test]
    fn config_debug_hides_the_api_key() {
        let config = LegacyConfig {
            api_key: KEY.into(),
            database: Database::Memory,
        };
        assert!(!format!("{config:?}").contains(KEY));
    }

    #[tokio::test]
    async fn wrong_or_missing_api_key_is_401_even_on_unknown_paths() {
        let client = Client::memory();
        for key in [Some("nope"), Some(""), None] {
            for path in ["/api/v1/users", "/api/v1/nowhere"] {
                let response = client.send_with_key(Method::GET, path, None, key).await;
                assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{key:?} {path}");
                assert_eq!(response.error_code(), "UNAUTHORIZED");
            }
        }
    }

    #[tokio::test]
    async fn unknown_paths_are_json_404() {
        let client = Client::memory();
        let response = client.get("/api/v2/users").await;
        assert_eq!(response.status, StatusCode::NOT_FOUND);
        assert_eq!(response.error_code(), "NOT_FOUND");
    }

    #[tokio::test]
    async fn wrong_methods_are_json_405() {
        let client = Client::memory();
        let response = client
            .send(Method::PUT, "/api/v1/teams/1", Some(json!({})))
            .await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.error_code(), "METHOD_NOT_ALLOWED");
    }

    #[tokio::test]
    async fn a_poisoned_store_answers_500_json() {
        let client = Client::memory();
        client.api.store.poison_for_test();
        let response = client.get("/api/v1/users").await;
        assert_eq!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.error_code(), "INTERNAL");
    }

    #[tokio::test]
    async fn file_database_persists_across_reopen() {
        let path = std::env::temp_dir().join(format!(
            "scimgate-legacy-{}-{}.sqlite",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let open = || {
            LegacyApi::open(LegacyConfig {
                api_key: KEY.into(),
                database: Database::File(path.clone()),
            })
            .unwrap()
        };
        let first = Client::new(open());
        let user = first
            .create_user(json!({"login": "kept", "email": "k@example.com"}))
            .await;
        let team = first.create_team("keepers").await;
        first.add_member(team, user).await;
        drop(first);

        let second = Client::new(open());
        let response = second.get(&format!("/api/v1/users/{user}")).await;
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.json["login"], "kept");
        let members = second.get(&format!("/api/v1/teams/{team}/members")).await;
        assert_eq!(members.json[0]["user_id"], user);
        let next = second.create_user(json!({"login": "next"})).await;
        assert!(next > user, "ids keep increasing after reopen");
        drop(second);

        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }

    #[tokio::test]
    async fn spawn_serves_over_real_http_on_port_zero() {
        let api = LegacyApi::open(LegacyConfig {
            api_key: KEY.into(),
            database: Database::Memory,
        })
        .unwrap();
        let addr = api.spawn(([127, 0, 0, 1], 0).into()).await.unwrap();
        assert_ne!(addr.port(), 0);
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /api/v1/users HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\nConnection: close\r\n\r\n"
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("x-total-count: 0"),
            "{answer}"
        );
    }
}
