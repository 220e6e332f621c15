//! Test client for the directory API: sends requests through the router with `oneshot`
//! under a bearer token, and reads answers back as JSON, so tests read like the HTTP
//! exchange they check.

use tokio::time::Instant;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::extract::{FORM, JSON, MERGE_PATCH};
use super::oauth::TOKEN_PATH;
use super::problem::{PROBLEM_JSON, TYPE_BASE};
use super::{Database, DirectoryApi, DirectoryConfig, DirectoryError};

pub(crate) const CLIENT_ID: &str = "scimgate-test";
pub(crate) const CLIENT_SECRET: &str = "test-secret-0123456789";

pub(crate) struct Client {
    pub(crate) api: DirectoryApi,
    router: Router,
    token: String,
}

/// One answer: status, headers, and the body parsed as JSON (`null` when empty).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: Value,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 7807 answer with this status and problem slug.
    #[track_caller]
    pub(crate) fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.json);
        assert_eq!(self.header("content-type"), Some(PROBLEM_JSON));
        assert_eq!(
            self.json["type"],
            format!("{TYPE_BASE}{slug}"),
            "{}",
            self.json
        );
        assert_eq!(self.json["status"], status);
        assert!(self.json["title"].is_string(), "{}", self.json);
        assert!(self.json["detail"].is_string(), "{}", self.json);
    }

    /// The `field`s of a problem's `errors`.
    pub(crate) fn error_fields(&self) -> Vec<&str> {
        self.json["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default()
    }

    /// The ids of a page's `items`.
    #[track_caller]
    pub(crate) fn ids(&self) -> Vec<String> {
        self.json["items"]
            .as_array()
            .expect("a page answer")
            .iter()
            .map(|item| item["id"].as_str().expect("string id").to_owned())
            .collect()
    }

    /// A page's `next` cursor.
    pub(crate) fn next(&self) -> Option<String> {
        self.json["next"].as_str().map(str::to_owned)
    }
}

impl Client {
    pub(crate) fn memory() -> Client {
        let api = DirectoryApi::open(DirectoryConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            database: Database::Memory,
        })
        .expect("in-memory store opens");
        Client::new(api)
    }

    /// A client of `api` holding a freshly issued token (issued directly: the token
    /// endpoint has tests of its own).
    pub(crate) fn new(api: DirectoryApi) -> Client {
        let token = api.tokens.issue_at(Instant::now()).expect("token issues");
        Client::with_token(api, &token)
    }

    pub(crate) fn with_token(api: DirectoryApi, token: &str) -> Client {
        let router = api.router();
        Client {
            api,
            router,
            token: token.to_owned(),
        }
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// One request: an optional `(content type, bytes)` body, an optional raw
    /// `Authorization` header, or a bearer token (which wins).
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        authorization: Option<&str>,
        bearer: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        } else if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header("content-type", content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let request = request.body(body).expect("valid request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "answer body is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Answer {
            status,
            headers,
            json,
        }
    }

    /// `POST /oauth/token` with a form body and an optional `Authorization` header.
    pub(crate) async fn token_request(&self, form: &str, authorization: Option<&str>) -> Answer {
        let body = Some((FORM, form.as_bytes().to_vec()));
        self.send_raw(Method::POST, TOKEN_PATH, body, authorization, None)
            .await
    }

    /// A request under this client's token.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        self.send_raw(method, path, body, None, Some(&self.token))
            .await
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    /// `POST` with an `application/json` body.
    pub(crate) async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(
            Method::POST,
            path,
            Some((JSON, body.to_string().into_bytes())),
        )
        .await
    }

    /// `POST` with no body (the `:suspend` / `:unsuspend` actions).
    pub(crate) async fn post_empty(&self, path: &str) -> Answer {
        self.send(Method::POST, path, None).await
    }

    /// `PATCH` with an `application/merge-patch+json` body.
    pub(crate) async fn patch(&self, path: &str, body: Value) -> Answer {
        self.patch_as(path, MERGE_PATCH, body).await
    }

    pub(crate) async fn patch_as(&self, path: &str, content_type: &str, body: Value) -> Answer {
        let body = Some((content_type, body.to_string().into_bytes()));
        self.send(Method::PATCH, path, body).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// Creates a user and returns its id.
    pub(crate) async fn create_user(&self, body: Value) -> String {
        let answer = self.post("/v2/users", body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        answer.json["id"].as_str().expect("string id").to_owned()
    }

    /// Creates a group and returns its id.
    pub(crate) async fn create_group(&self, body: Value) -> String {
        let answer = self.post("/v2/groups", body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        answer.json["id"].as_str().expect("string id").to_owned()
    }
}

pub(crate) use crate::test_db::TempDb;

/// A temp database for this API's test `label`.
pub(crate) fn temp_db(label: &str) -> TempDb {
    TempDb::new("directory", label)
}

/// Opens the API on `db`.
pub(crate) fn open(db: &TempDb) -> Result<DirectoryApi, DirectoryError> {
    DirectoryApi::open(DirectoryConfig {
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        database: Database::File(db.path.clone()),
    })
}
