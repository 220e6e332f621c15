//! The second reference upstream API: a "modern directory" the gateway translates SCIM
//! into, built to differ from [`crate::legacy`] on every axis so the mapping language
//! is shown to be general.
//!
//! | axis | legacy (`/api/v1`) | directory (`/v2`) |
//! | --- | --- | --- |
//! | auth | static `X-Api-Key` | OAuth2 client credentials → bearer token (300 s) |
//! | ids | integers | UUID v4 strings |
//! | records | flat snake_case | nested camelCase (`profile.firstName`) |
//! | paging | `page`/`per_page` + `X-Total-Count` | `limit`/`cursor` → `{"items", "next"}`, no total |
//! | update | PATCH (partial) and PUT | JSON merge patch only (`application/merge-patch+json`) |
//! | delete | hard | soft (`deleted: true`, undone by PATCH) |
//! | deactivation | `status` field | `POST /v2/users/{id}:suspend` / `:unsuspend` |
//! | groups | member sub-resources | `groupIds` on the user; `?groupId=` to list members |
//! | errors | `{"error":{"code","message"}}` | RFC 7807 `application/problem+json` |
//! | versioning | integer `version` | opaque `etag` |
//!
//! Routes (all but the token endpoint need `Authorization: Bearer <token>`):
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | POST | `/oauth/token` | 200 `{"access_token","token_type","expires_in"}` |
//! | GET | `/v2/users?limit&cursor&username&email&externalKey&groupId&deleted` | 200 page |
//! | POST | `/v2/users` | 201 user + `Location` |
//! | GET, PATCH, DELETE | `/v2/users/{id}` | 200 user / 204 (soft) |
//! | POST | `/v2/users/{id}:suspend`, `/v2/users/{id}:unsuspend` | 200 user |
//! | GET | `/v2/groups?limit&cursor&name` | 200 page |
//! | POST | `/v2/groups` | 201 group + `Location` |
//! | GET, PATCH, DELETE | `/v2/groups/{id}` | 200 group / 204 (hard) |
//!
//! Lists: `limit` defaults to 25 and is clamped to 50; `next` is `null` on the last
//! page; order is creation order. Unknown or repeated query parameters are a 422.
//! `deleted` is an equality filter defaulting to `false`, so `deleted=true` lists only
//! soft-deleted users. `username` and `email` match exactly, ignoring (Unicode) case;
//! `externalKey` and `groupId` match exactly. Soft-deleted users keep their username
//! and email, and `:suspend`, `:unsuspend`, DELETE and an unchanged PATCH are
//! idempotent: a request that changes nothing keeps the `etag`.
//!
//! Layout: this file holds the public API, the router, bearer auth and the answer
//! helpers; `oauth.rs` the token endpoint and token table; `users.rs` and `groups.rs`
//! the handlers; `extract.rs` request parsing; `merge.rs` RFC 7386; `records.rs` the
//! data model and its validation; `ids.rs` UUIDs, etags and cursors; `problem.rs` the
//! wire error; `store.rs` SQLite.

mod extract;
mod groups;
mod ids;
mod merge;
mod oauth;
mod problem;
mod records;
mod store;
mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::header::{AUTHORIZATION, ETAG, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;

use oauth::{TOKEN_PATH, Tokens};
use problem::Problem;
use store::{Store, StoreError};

/// Where the directory keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// Gone when the last [`DirectoryApi`] clone is dropped; for tests.
    Memory,
    /// A SQLite file, created if missing; survives restarts.
    File(PathBuf),
}

/// Everything [`DirectoryApi::open`] needs.
#[derive(Clone)]
pub struct DirectoryConfig {
    /// The one OAuth client allowed to ask for tokens. Must not be empty.
    pub client_id: String,
    /// Its secret. Must not be empty.
    pub client_secret: String,
    pub database: Database,
}

impl std::fmt::Debug for DirectoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

/// Why the directory API could not start.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("the directory OAuth client id must not be empty")]
    EmptyClientId,
    #[error("the directory OAuth client secret must not be empty")]
    EmptyClientSecret,
    #[error("cannot open directory database {database:?}: {source}")]
    Open {
        database: Database,
        source: rusqlite::Error,
    },
    #[error("cannot create the directory database schema: {0}")]
    Schema(rusqlite::Error),
    #[error(
        "directory database has schema version {found}, newer than the {supported} this build knows"
    )]
    SchemaVersion { found: i64, supported: i64 },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The running directory API: a store and an OAuth client. Clones share both, and so
/// share issued tokens.
#[derive(Clone)]
pub struct DirectoryApi {
    store: Arc<Store>,
    tokens: Arc<Tokens>,
}

impl std::fmt::Debug for DirectoryApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryApi").finish_non_exhaustive()
    }
}

impl DirectoryApi {
    /// Opens the database (creating the schema if needed).
    pub fn open(config: DirectoryConfig) -> Result<DirectoryApi, DirectoryError> {
        if config.client_id.is_empty() {
            return Err(DirectoryError::EmptyClientId);
        }
        if config.client_secret.is_empty() {
            return Err(DirectoryError::EmptyClientSecret);
        }
        let store = Store::open(&config.database)?;
        Ok(DirectoryApi {
            store: Arc::new(store),
            tokens: Arc::new(Tokens::new(&config.client_id, &config.client_secret)),
        })
    }

    /// All routes. Everything but `POST /oauth/token` sits behind the bearer check,
    /// unknown paths included, so an unauthenticated caller learns nothing about which
    /// paths exist.
    pub fn router(&self) -> Router {
        Router::new()
            .route(TOKEN_PATH, post(oauth::token))
            .route("/v2/users", get(users::list).post(users::create))
            .route(
                "/v2/users/{id}",
                get(users::get)
                    .patch(users::patch)
                    .delete(users::delete)
                    .post(users::action),
            )
            .route("/v2/groups", get(groups::list).post(groups::create))
            .route(
                "/v2/groups/{id}",
                get(groups::get).patch(groups::patch).delete(groups::delete),
            )
            .fallback(no_route)
            .method_not_allowed_fallback(wrong_method)
            .layer(middleware::from_fn_with_state(self.clone(), require_bearer))
            .with_state(self.clone())
    }

    /// Binds `addr` (port 0 allowed), serves in a background task, returns the bound address.
    pub async fn spawn(self, addr: SocketAddr) -> Result<SocketAddr, DirectoryError> {
        let bind_error = |source| DirectoryError::Bind { addr, source };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let bound = listener.local_addr().map_err(bind_error)?;
        let router = self.router();
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(error = %err, addr = %bound, "directory api server stopped");
            }
        });
        tracing::info!(addr = %bound, "directory api listening");
        Ok(bound)
    }

    /// Revokes every issued token (tests check the gateway fetches a new one).
    pub fn revoke_tokens(&self) {
        self.tokens.revoke_all();
    }

    /// Number of access tokens issued so far (tests check the gateway caches tokens).
    pub fn tokens_issued(&self) -> u64 {
        self.tokens.issued_count()
    }

    /// Runs one store operation on the blocking pool: SQLite calls block, and the
    /// mutex must never be held across an `.await`.
    async fn run<T, F>(&self, operation: F) -> Result<T, Problem>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || operation(&store)).await {
            Ok(result) => result.map_err(Problem::from),
            Err(join) => Err(Problem::internal(format!("store task failed: {join}"))),
        }
    }

    /// Runs `operation` and answers 200 with the record and its `ETag`.
    async fn answer_record<T, F>(&self, operation: F) -> Result<Response, Problem>
    where
        T: Record + Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        Ok(record_response(
            StatusCode::OK,
            &self.run(operation).await?,
            None,
        ))
    }

    /// Runs a list `operation` and answers 200 with `{"items", "next"}`.
    async fn answer_page<T, F>(&self, operation: F) -> Result<Response, Problem>
    where
        T: Serialize + Send + 'static,
        F: FnOnce(&Store) -> Result<store::Page<T>, StoreError> + Send + 'static,
    {
        Ok(Json(self.run(operation).await?).into_response())
    }

    /// Runs `operation` and answers 204 with no body.
    async fn answer_no_content<F>(&self, operation: F) -> Result<Response, Problem>
    where
        F: FnOnce(&Store) -> Result<(), StoreError> + Send + 'static,
    {
        self.run(operation).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

/// A single record the API answers with: serialisable, with an id and an etag.
trait Record: Serialize {
    fn id(&self) -> &str;
    fn etag(&self) -> &str;
}

impl Record for records::User {
    fn id(&self) -> &str {
        &self.id
    }
    fn etag(&self) -> &str {
        &self.etag
    }
}

impl Record for records::Group {
    fn id(&self) -> &str {
        &self.id
    }
    fn etag(&self) -> &str {
        &self.etag
    }
}

/// `record` as JSON with its etag in `ETag` (quoted, as HTTP wants) and, for a
/// creation, `Location: collection/id`.
fn record_response(status: StatusCode, record: &impl Record, collection: Option<&str>) -> Response {
    let mut response = (status, Json(record)).into_response();
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", record.etag())) {
        headers.insert(ETAG, etag);
    }
    if let Some(collection) = collection
        && let Ok(location) = HeaderValue::from_str(&format!("{collection}/{}", record.id()))
    {
        headers.insert(LOCATION, location);
    }
    response
}

/// 201 with the new record, its `ETag` and its `Location`.
fn created(collection: &str, record: &impl Record) -> Response {
    record_response(StatusCode::CREATED, record, Some(collection))
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn require_bearer(State(api): State<DirectoryApi>, request: Request, next: Next) -> Response {
    if request.uri().path() == TOKEN_PATH {
        return next.run(request).await;
    }
    let Some(token) = bearer_token(request.headers()) else {
        return Problem::unauthorized("missing `Authorization: Bearer` token").into_response();
    };
    match api.tokens.valid_at(token, Instant::now()) {
        Ok(true) => next.run(request).await,
        Ok(false) => Problem::unauthorized("unknown or expired bearer token").into_response(),
        Err(problem) => problem.into_response(),
    }
}

async fn no_route(request: Request) -> Problem {
    Problem::not_found(format!("nothing at {}", request.uri().path()))
}

async fn wrong_method(request: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
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
    use super::test_support::{CLIENT_ID, CLIENT_SECRET, Client, open, temp_db};
    use super::*;
    use http::Method;
    use serde_json::json;

    fn config(client_id: &str, client_secret: &str) -> DirectoryConfig {
        DirectoryConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            database: Database::Memory,
        }
    }

    #[test]
    fn empty_client_credentials_are_refused_at_open() {
        assert!(matches!(
            DirectoryApi::open(config("", "secret")),
            Err(DirectoryError::EmptyClientId)
        ));
        assert!(matches!(
            DirectoryApi::open(config("id", "")),
            Err(DirectoryError::EmptyClientSecret)
        ));
    }

    #[test]
    fn config_debug_hides_the_client_secret() {
        let shown = format!("{:?}", config(CLIENT_ID, CLIENT_SECRET));
        assert!(!shown.contains(CLIENT_SECRET), "{shown}");
        assert!(shown.contains(CLIENT_ID), "{shown}");
    }

    #[test]
    fn bearer_tokens_are_read_with_any_scheme_case() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("Bearer", None),
        ] {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer_token(&headers), expected, "{value:?}");
        }
    }

    #[tokio::test]
    async fn missing_or_unknown_bearer_tokens_are_401_even_on_unknown_paths() {
        let client = Client::memory();
        for token in [Some("not-a-token"), None] {
            for path in ["/v2/users", "/v2/groups", "/v2/nowhere", "/"] {
                let answer = client.send_raw(Method::GET, path, None, None, token).await;
                answer.assert_problem(401, "unauthorized");
                assert_eq!(
                    answer.header("www-authenticate"),
                    Some("Bearer realm=\"directory\"")
                );
            }
        }
    }

    #[tokio::test]
    async fn the_api_key_style_of_the_legacy_api_is_not_accepted() {
        let client = Client::memory();
        let answer = client
            .send_raw(Method::GET, "/v2/users", None, None, None)
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn unknown_paths_are_problem_404() {
        let client = Client::memory();
        for path in ["/api/v1/users", "/v2/teams", "/v2/users/a/b"] {
            client.get(path).await.assert_problem(404, "not-found");
        }
    }

    #[tokio::test]
    async fn wrong_methods_are_problem_405() {
        let client = Client::memory();
        let put = client
            .send(
                Method::PUT,
                "/v2/groups",
                Some(("application/json", b"{}".to_vec())),
            )
            .await;
        put.assert_problem(405, "method-not-allowed");
        let get_token = client
            .send_raw(Method::GET, TOKEN_PATH, None, None, None)
            .await;
        get_token.assert_problem(405, "method-not-allowed");
    }

    #[tokio::test]
    async fn a_poisoned_store_answers_500_problem() {
        let client = Client::memory();
        client.api.store.poison_for_test();
        client
            .get("/v2/users")
            .await
            .assert_problem(500, "internal");
    }

    #[tokio::test]
    async fn clones_share_issued_tokens() {
        let client = Client::memory();
        let other = Client::with_token(client.api.clone(), client.token());
        assert_eq!(other.get("/v2/users").await.status, StatusCode::OK);
        assert_eq!(client.api.tokens_issued(), 1);
    }

    #[tokio::test]
    async fn file_database_persists_across_reopen_but_tokens_do_not() {
        let db = temp_db("reopen");
        let first = Client::new(open(&db).unwrap());
        let group = first.create_group(json!({"name": "keepers"})).await;
        let user = first
            .create_user(json!({
                "username": "kept",
                "contact": {"email": "k@example.com"},
                "groupIds": [group]
            }))
            .await;
        first.post_empty(&format!("/v2/users/{user}:suspend")).await;
        let second_user = first.create_user(json!({"username": "gone"})).await;
        first.delete(&format!("/v2/users/{second_user}")).await;
        let old_token = first.token().to_owned();
        drop(first);

        let api = open(&db).unwrap();
        let stale = Client::with_token(api.clone(), &old_token);
        stale
            .get("/v2/users")
            .await
            .assert_problem(401, "unauthorized");

        let second = Client::new(api);
        let kept = second.get(&format!("/v2/users/{user}")).await;
        assert_eq!(kept.status, StatusCode::OK);
        assert_eq!(kept.json["username"], "kept");
        assert_eq!(kept.json["contact"]["email"], "k@example.com");
        assert_eq!(kept.json["suspended"], true);
        assert_eq!(kept.json["groupIds"], json!([group]));
        let members = second.get(&format!("/v2/users?groupId={group}")).await;
        assert_eq!(members.ids(), vec![user.clone()]);
        let deleted = second.get("/v2/users?deleted=true").await;
        assert_eq!(deleted.ids(), [second_user]);
        let taken = second.post("/v2/users", json!({"username": "KEPT"})).await;
        taken.assert_problem(409, "username-taken");
        let next = second.create_user(json!({"username": "next"})).await;
        assert_eq!(
            second.get("/v2/users").await.ids(),
            [user, next],
            "creation order survives reopen"
        );
    }

    #[tokio::test]
    async fn a_database_from_a_newer_build_is_refused() {
        let db = temp_db("newer");
        drop(open(&db).unwrap());
        {
            let conn = rusqlite::Connection::open(&db.path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            open(&db),
            Err(DirectoryError::SchemaVersion {
                found: 99,
                supported: 1
            })
        ));
    }

    #[tokio::test]
    async fn spawn_serves_over_real_http_on_port_zero() {
        let api = DirectoryApi::open(config(CLIENT_ID, CLIENT_SECRET)).unwrap();
        let addr = api.spawn(([127, 0, 0, 1], 0).into()).await.unwrap();
        assert_ne!(addr.port(), 0);
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = format!(
            "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        );
        let request = format!(
            "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"token_type\":\"Bearer\""), "{answer}");
    }
}
