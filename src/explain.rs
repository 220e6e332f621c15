//! `scimgate explain`: what one SCIM request would do, without sending
//! anything upstream: the request after the connection's dialect, the
//! upstream calls (secrets masked), and the SCIM answer the gateway would
//! build from a given upstream record.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::config::GatewayConfig;
use crate::provision::Kind;
use crate::server::{self, ServerError, hash_token, new_token};
use crate::upstream::{RecordedCall, Recorder, UpstreamClient};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("no connection `{0}` in the config (connections: {1})")]
    UnknownConnection(String, String),
    #[error(
        "the path must start with /Users or /Groups (relative to the connection's base path), got `{0}`"
    )]
    BadPath(String),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("the request could not be built: {0}")]
    Request(String),
}

/// One request to explain.
pub struct Question {
    pub connection: String,
    pub method: Method,
    /// Relative to the connection's base path: `/Users/7`, `/Groups?filter=…`.
    pub path: String,
    pub body: Option<Value>,
    pub user_agent: Option<String>,
    /// The upstream record reads answer with (default: one with just the id).
    pub record: Option<Value>,
}

pub struct Explanation {
    pub dialect: String,
    pub request: Option<Value>,
    pub calls: Vec<RecordedCall>,
    pub status: u16,
    pub response: Value,
}

pub async fn explain(
    config: &GatewayConfig,
    question: Question,
) -> Result<Explanation, ExplainError> {
    let Some(connection) = config
        .connections
        .iter()
        .find(|c| c.name == question.connection)
    else {
        let names: Vec<&str> = config.connections.iter().map(|c| c.name.as_str()).collect();
        return Err(ExplainError::UnknownConnection(
            question.connection,
            names.join(", "),
        ));
    };
    let (kind, id) = resource_of(&question.path)?;
    let dialect = config
        .dialects
        .choice(&connection.dialect)
        .map(|choice| choice.resolve(question.user_agent.as_deref()).clone());
    let request = question.body.clone().map(|mut body| {
        if let Some(dialect) = &dialect {
            if question.method == Method::PATCH {
                dialect.normalise_patch(kind.schema(), &mut body);
            } else {
                dialect.normalise_resource(kind.schema(), &mut body);
            }
        }
        body
    });
    let upstream = config.upstream(&connection.upstream);
    let record = question.record.clone().unwrap_or_else(|| {
        let mut record = serde_json::Map::new();
        if let Some(mapping) = upstream.map(|u| &u.mapping) {
            let resource = match kind {
                Kind::User => Some(&mapping.users),
                Kind::Group => mapping.groups.as_ref(),
            };
            if let Some(resource) = resource {
                // Reads find the record the path names; creates get id 1.
                let id = id.clone().unwrap_or_else(|| "1".to_string());
                let mut object = serde_json::Map::new();
                resource.id.field.set(&mut object, resource.id.typed(&id));
                record = object;
            }
        }
        Value::Object(record)
    });
    // The real router, with this connection's token replaced by a one-off
    // one and upstream clients that record instead of sending.
    let recorder = Arc::new(Recorder::new(record));
    let token = new_token();
    let mut config = config.clone();
    for c in &mut config.connections {
        if c.name == connection.name {
            c.token_sha256 = hash_token(&token);
        }
    }
    let router = server::router_with(&config, None, |u| {
        UpstreamClient::recording(u, recorder.clone())
    })?;
    let mut builder = Request::builder()
        .method(question.method.clone())
        .uri(format!("{}{}", connection.base_path, question.path))
        .header("authorization", format!("Bearer {token}"))
        .header("host", "scimgate.explain");
    if let Some(agent) = &question.user_agent {
        builder = builder.header("user-agent", agent);
    }
    let body = match &question.body {
        Some(body) => {
            builder = builder.header("content-type", "application/scim+json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let request_built = builder
        .body(body)
        .map_err(|e| ExplainError::Request(e.to_string()))?;
    let response = router
        .oneshot(request_built)
        .await
        .map_err(|e| ExplainError::Request(e.to_string()))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let response = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Explanation {
        dialect: dialect
            .map(|d| d.name.clone())
            .unwrap_or_else(|| connection.dialect.clone()),
        request,
        calls: recorder.calls(),
        status,
        response,
    })
}

/// `/Users/7?x` → (User, Some("7")); `/Groups` → (Group, None).
fn resource_of(path: &str) -> Result<(Kind, Option<String>), ExplainError> {
    let bare = path.split('?').next().unwrap_or("");
    let mut parts = bare.trim_start_matches('/').split('/');
    let kind = match parts.next() {
        Some("Users") => Kind::User,
        Some("Groups") => Kind::Group,
        _ => return Err(ExplainError::BadPath(path.to_string())),
    };
    let id = parts
        .next()
        .filter(|s| !s.is_empty() && !s.starts_with('.'))
        .map(str::to_string);
    Ok((kind, id))
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        writeln!(f, "== the request after the `{}` dialect", self.dialect)?;
        match &self.request {
            Some(body) => writeln!(f, "{}", pretty(body))?,
            None => writeln!(f, "(no body)")?,
        }
        writeln!(f, "\n== upstream calls it would make (nothing was sent)")?;
        if self.calls.is_empty() {
            writeln!(f, "(none)")?;
        }
        for (n, call) in self.calls.iter().enumerate() {
            writeln!(f, "{}. {} {}", n + 1, call.method, call.url)?;
            for (name, value) in &call.headers {
                writeln!(f, "   {name}: {value}")?;
            }
            if let Some(body) = &call.body {
                for line in pretty(body).lines() {
                    writeln!(f, "   {line}")?;
                }
            }
        }
        writeln!(
            f,
            "\n== the SCIM answer, built from the given upstream record"
        )?;
        writeln!(f, "{}", self.status)?;
        if !self.response.is_null() {
            writeln!(f, "{}", pretty(&self.response))?;
        }
        Ok(())
    }
}

/// Runs the tests a mapping file carries through [`explain`]: each request
/// on a connection with the generic dialect approving example.com, reads
/// answering with the test's record. Returns one error per failure, at the
/// test's name.
pub async fn run_mapping_tests(
    mapping: &crate::mapping::UpstreamMapping,
) -> Vec<crate::diagnostics::Diagnostic> {
    let mut failures = Vec::new();
    let secrets = mapping
        .auth
        .secret_name()
        .map(|name| (name.to_string(), crate::config::Secret::new("test-secret")))
        .into_iter()
        .collect();
    let config = match crate::demo::config_for(
        mapping.clone(),
        std::net::SocketAddr::from(([127, 0, 0, 1], 9)),
        secrets,
        &new_token(),
        &["example.com".to_string()],
        crate::config::ServerSettings::default(),
    ) {
        Ok(config) => config,
        Err(error) => {
            return vec![crate::diagnostics::Diagnostic {
                severity: crate::diagnostics::Severity::Error,
                file: mapping.source.clone(),
                line: 1,
                column: 1,
                message: format!("its tests cannot run: {error}"),
            }];
        }
    };
    let base = config
        .upstreams
        .first()
        .map(|u| u.mapping.base_url.trim_end_matches('/').to_string())
        .unwrap_or_default();
    for test in &mapping.tests {
        let fail = |what: String| crate::diagnostics::Diagnostic {
            severity: crate::diagnostics::Severity::Error,
            file: mapping.source.clone(),
            line: test.line,
            column: test.column,
            message: format!("test `{}`: {what}", test.name),
        };
        let question = Question {
            connection: "demo-generic".into(),
            method: test.request.method.clone(),
            path: test.request.path.clone(),
            body: test.request.body.clone(),
            user_agent: None,
            record: test.record.clone(),
        };
        let explained = match explain(&config, question).await {
            Ok(explained) => explained,
            Err(error) => {
                failures.push(fail(error.to_string()));
                continue;
            }
        };
        if let Some(status) = test.status
            && status != explained.status
        {
            failures.push(fail(format!(
                "expected status {status}, got {}: {}",
                explained.status, explained.response
            )));
        }
        let Some(expected) = &test.calls else {
            continue;
        };
        let made: Vec<crate::mapping::TestCall> = explained
            .calls
            .iter()
            .map(|call| crate::mapping::TestCall {
                method: call.method.clone(),
                path: call
                    .url
                    .strip_prefix(&base)
                    .unwrap_or(&call.url)
                    .to_string(),
                body: call.body.clone(),
            })
            .collect();
        let show = |call: &crate::mapping::TestCall| match &call.body {
            Some(body) => format!("{} {} {body}", call.method, call.path),
            None => format!("{} {}", call.method, call.path),
        };
        let mut calls_match = true;
        for (position, wanted) in expected.iter().enumerate() {
            let got = made.get(position);
            let same = got.is_some_and(|got| {
                got.method == wanted.method
                    && got.path == wanted.path
                    && (wanted.body.is_none() || got.body == wanted.body)
            });
            if !same {
                failures.push(fail(format!(
                    "call {}: expected {}, got {}",
                    position + 1,
                    show(wanted),
                    got.map(show).unwrap_or_else(|| "no call".into())
                )));
                calls_match = false;
                break;
            }
        }
        if calls_match && made.len() > expected.len() {
            failures.push(fail(format!(
                "{} more call(s) than expected, first {}",
                made.len() - expected.len(),
                show(&made[expected.len()])
            )));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerSettings;
    use serde_json::json;

    fn config() -> GatewayConfig {
        crate::demo::gateway_config(
            ([127, 0, 0, 1], 9).into(),
            "k3y-secret",
            "t",
            &["example.com".into()],
            ServerSettings::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn patch_shows_the_entra_normalisation_the_calls_and_the_answer() {
        let question = Question {
            connection: "demo-entra".into(),
            method: Method::PATCH,
            path: "/Users/7".into(),
            body: Some(
                json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
            ),
            user_agent: None,
            record: Some(
                json!({"id": 7, "login": "a@example.com", "email": "a@example.com", "status": "enabled", "role": "member", "version": 3}),
            ),
        };
        let explained = explain(&config(), question).await.unwrap();
        assert_eq!(
            explained.request.as_ref().unwrap()["Operations"][0]["value"],
            false
        );
        let calls: Vec<String> = explained
            .calls
            .iter()
            .map(|c| format!("{} {}", c.method, c.url))
            .collect();
        assert_eq!(
            calls,
            [
                "GET http://127.0.0.1:9/api/v1/users/7",
                "PATCH http://127.0.0.1:9/api/v1/users/7"
            ]
        );
        assert_eq!(explained.calls[1].body, Some(json!({"status": "disabled"})));
        // The write is conditional on the version read.
        assert!(
            explained.calls[1]
                .headers
                .contains(&("if-match".to_string(), "3".to_string())),
            "{:?}",
            explained.calls[1].headers
        );
        assert_eq!(explained.status, 200);
        assert_eq!(explained.response["active"], false);
        let text = explained.to_string();
        assert!(
            text.contains("X-Api-Key: ****") || text.contains("x-api-key: ****"),
            "{text}"
        );
        assert!(!text.contains("k3y-secret"), "{text}");
    }

    #[tokio::test]
    async fn create_shows_the_restore_look_up_then_the_create() {
        let question = Question {
            connection: "demo-generic".into(),
            method: Method::POST,
            path: "/Users".into(),
            body: Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "b@example.com"}),
            ),
            user_agent: None,
            record: None,
        };
        let explained = explain(&config(), question).await.unwrap();
        let methods: Vec<&Method> = explained.calls.iter().map(|c| &c.method).collect();
        assert_eq!(methods, [&Method::GET, &Method::POST]);
        assert!(
            explained.calls[0].url.contains("status=archived"),
            "{}",
            explained.calls[0].url
        );
        assert_eq!(explained.status, 201, "{}", explained.response);
    }

    #[tokio::test]
    async fn unknown_connection_names_the_known_ones() {
        let question = Question {
            connection: "nope".into(),
            method: Method::GET,
            path: "/Users".into(),
            body: None,
            user_agent: None,
            record: None,
        };
        let error = explain(&config(), question)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("demo-entra"), "{error}");
    }
}
