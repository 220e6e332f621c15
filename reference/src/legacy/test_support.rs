//! Test client for the legacy API: sends requests through the router with `oneshot`
//! and reads answers back as JSON, so tests read like the HTTP exchange they check.

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Database, LegacyApi, LegacyConfig};

pub(crate) const KEY: &str = "test-key-0123456789";

pub(crate) struct Client {
    pub(crate) api: LegacyApi,
    router: Router,
}

/// One answer: status, headers, and the body parsed as JSON (`null` when empty).
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: Value,
}

impl Answer {
    pub(crate) fn error_code(&self) -> &str {
        self.json["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn total(&self) -> u64 {
        self.header("x-total-count")
            .and_then(|v| v.parse().ok())
            .expect("X-Total-Count header")
    }

    /// The `field` of every element of an array answer.
    pub(crate) fn column(&self, field: &str) -> Vec<Value> {
        self.json
            .as_array()
            .expect("array answer")
            .iter()
            .map(|item| item[field].clone())
            .collect()
    }
}

impl Client {
    pub(crate) fn memory() -> Client {
        let api = LegacyApi::open(LegacyConfig {
            api_key: KEY.into(),
            database: Database::Memory,
        })
        .expect("in-memory store opens");
        Client::new(api)
    }

    pub(crate) fn new(api: LegacyApi) -> Client {
        let router = api.router();
        Client { api, router }
    }

    pub(crate) async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        key: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .expect("valid request");
        self.answer(request).await
    }

    /// A JSON write with the key and an `If-Match` header.
    pub(crate) async fn send_if_match(
        &self,
        method: Method,
        path: &str,
        body: Value,
        if_match: &str,
    ) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .header("if-match", if_match)
            .body(Body::from(body.to_string()))
            .expect("valid request");
        self.answer(request).await
    }

    pub(crate) async fn answer(&self, request: Request<Body>) -> Answer {
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

    pub(crate) async fn send_with_key(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Answer {
        let body = body.map(|b| serde_json::to_vec(&b).expect("serializable"));
        self.send_raw(method, path, body, key).await
    }

    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_with_key(method, path, body, Some(KEY)).await
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// Creates a user and returns its id.
    pub(crate) async fn create_user(&self, body: Value) -> i64 {
        let answer = self.post("/api/v1/users", body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        answer.json["id"].as_i64().expect("numeric id")
    }

    /// Creates a team and returns its id.
    pub(crate) async fn create_team(&self, name: &str) -> i64 {
        let answer = self.post("/api/v1/teams", json!({ "name": name })).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        answer.json["id"].as_i64().expect("numeric id")
    }

    pub(crate) async fn add_member(&self, team: i64, user: i64) -> Answer {
        self.post(
            &format!("/api/v1/teams/{team}/members"),
            json!({ "user_id": user }),
        )
        .await
    }
}

pub(crate) use crate::test_db::TempDb;

/// A temp database for this API's test `label`.
pub(crate) fn temp_db(label: &str) -> TempDb {
    TempDb::new("legacy", label)
}

/// Opens the API on `db`.
pub(crate) fn open(db: &TempDb) -> Result<LegacyApi, super::LegacyError> {
    LegacyApi::open(LegacyConfig {
        api_key: KEY.into(),
        database: Database::File(db.path.clone()),
    })
}
