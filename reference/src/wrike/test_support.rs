//! Test client for the Wrike API: sends requests through the router with `oneshot`
//! under the bearer token, form-encodes parameters as Wrike clients do, and reads
//! answers back as JSON, so tests read like the HTTP exchange they check.

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::params::FORM;
use super::{Database, WrikeApi, WrikeConfig};

pub(crate) const TOKEN: &str = "eyJ0dCI6InAiLCJhbGciOiJIUzI1NiIsInR2IjoiMSJ9.test";
pub(crate) const ACCOUNT_ID: &str = "IEAAAAAA";

pub(crate) struct Client {
    pub(crate) api: WrikeApi,
    router: Router,
}

/// One answer: status and the body parsed as JSON.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) json: Value,
}

impl Answer {
    /// Asserts a 200 envelope of this kind whose `data` is an array.
    #[track_caller]
    pub(crate) fn assert_ok(&self, kind: &str) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.json);
        assert_eq!(self.json["kind"], kind, "{}", self.json);
        assert!(self.json["data"].is_array(), "{}", self.json);
    }

    /// Asserts a Wrike error with this status and code.
    #[track_caller]
    pub(crate) fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.json);
        assert_eq!(self.json["error"], code, "{}", self.json);
        assert!(self.json["errorDescription"].is_string(), "{}", self.json);
        assert_eq!(
            self.json.as_object().map(|o| o.len()),
            Some(2),
            "{}",
            self.json
        );
    }

    /// The ids of `data`.
    #[track_caller]
    pub(crate) fn ids(&self) -> Vec<String> {
        self.json["data"]
            .as_array()
            .expect("an envelope answer")
            .iter()
            .map(|record| record["id"].as_str().expect("string id").to_owned())
            .collect()
    }
}

fn form(params: &[(&str, &str)]) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
        .into_bytes()
}

impl Client {
    pub(crate) fn memory() -> Client {
        let api = WrikeApi::open(WrikeConfig {
            token: TOKEN.into(),
            account_id: ACCOUNT_ID.into(),
            database: Database::Memory,
        })
        .expect("in-memory store opens");
        Client::new(api)
    }

    pub(crate) fn new(api: WrikeApi) -> Client {
        let router = api.router();
        Client { api, router }
    }

    /// One request with an optional `(content type, bytes)` body and an optional raw
    /// `Authorization` header.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        authorization: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(value) = authorization {
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
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "answer body is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Answer { status, json }
    }

    /// A request under the token (`Authorization: bearer`).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let authorization = format!("bearer {TOKEN}");
        self.send_raw(method, path, body, Some(&authorization))
            .await
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    /// `POST` with form-encoded parameters.
    pub(crate) async fn post(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        self.send(Method::POST, path, Some((FORM, form(params))))
            .await
    }

    /// `PUT` with form-encoded parameters.
    pub(crate) async fn put(&self, path: &str, params: &[(&str, &str)]) -> Answer {
        self.send(Method::PUT, path, Some((FORM, form(params))))
            .await
    }

    pub(crate) async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None).await
    }

    /// Invites `email` as a regular user and returns the new contact's id.
    pub(crate) async fn invite(&self, email: &str) -> String {
        let answer = self.post("/api/v4/invitations", &[("email", email)]).await;
        answer.assert_ok("invitations");
        answer.json["data"][0]["userId"]
            .as_str()
            .expect("string userId")
            .to_owned()
    }

    /// Creates a group and returns its id.
    pub(crate) async fn create_group(&self, params: &[(&str, &str)]) -> String {
        let answer = self.post("/api/v4/groups", params).await;
        answer.assert_ok("groups");
        answer.json["data"][0]["id"]
            .as_str()
            .expect("string id")
            .to_owned()
    }
}
