//! Replays each IdP's documented request sequences (tests/fixtures/idp/*.json)
//! against the gateway in front of each reference upstream (legacy,
//! directory, Wrike-shaped), checking the SCIM response and the upstream's
//! state after every step. The fixtures state upstream expectations in the
//! legacy API's terms; for the other upstreams they are translated into the
//! harness's upstream view (`Harness::upstream_user`, `upstream_group`).
//!
//! Fixture format: `base_path` (the demo connection to use), `headers` sent
//! with every request, and `steps`, each with `name`, `source` (where the
//! request shape is documented), `request` {method, path, body}, `expect`
//! {status, content_type, body (a subset to find), absent (JSON pointers)},
//! optional `save` {variable: JSON pointer into the response}, `repeat` N
//! (the step runs N times with `${n}` = 1..N) and `upstream` {path, status,
//! body, length}: a GET on the reference API after the step. `${name}` in
//! paths and bodies is replaced by saved variables (and `${n}`); a value that
//! is exactly `${name:int}` becomes that variable as a JSON number.

use scimgate_test_support as common;

use std::collections::HashMap;

use common::{Backend, Harness};
use reqwest::Method;
use serde_json::Value;

fn substitute(value: &Value, vars: &HashMap<String, String>) -> Value {
    match value {
        // `${x:int}` alone is the saved `x` as a JSON number (upstream ids).
        Value::String(text) if text.starts_with("${") && text.ends_with(":int}") => {
            // An upstream whose ids are not numbers keeps them as text.
            let name = &text[2..text.len() - 5];
            match vars.get(name) {
                Some(value) => value
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(value.clone())),
                None => Value::String(text.clone()),
            }
        }
        Value::String(text) => Value::String(substitute_text(text, vars)),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (substitute_text(k, vars), substitute(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn substitute_text(text: &str, vars: &HashMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out
}

/// Every key of `expected` is in `actual` with a matching value; every
/// element of an expected array matches some element of the actual one;
/// `"*"` matches any present value.
fn contains(actual: &Value, expected: &Value, at: &str) -> Result<(), String> {
    match (actual, expected) {
        (_, Value::String(s)) if s == "*" => Ok(()),
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, wanted) in expected {
                let found = actual
                    .get(key)
                    .ok_or_else(|| format!("{at}/{key} is missing"))?;
                contains(found, wanted, &format!("{at}/{key}"))?;
            }
            Ok(())
        }
        (Value::Array(actual), Value::Array(expected)) => {
            for (i, wanted) in expected.iter().enumerate() {
                if !actual.iter().any(|a| contains(a, wanted, at).is_ok()) {
                    return Err(format!("{at}[{i}]: no element matches {wanted}"));
                }
            }
            Ok(())
        }
        (actual, expected) if actual == expected => Ok(()),
        (actual, expected) => Err(format!("{at}: expected {expected}, got {actual}")),
    }
}

async fn replay(fixture: &str) {
    for backend in common::BACKENDS {
        replay_on(fixture, backend).await;
    }
}

/// A legacy user field, as the harness's upstream view names it and holds it.
fn neutral_user_field(field: &str, value: &Value) -> Option<(&'static str, Value)> {
    let view = |name| Some((name, value.clone()));
    match field {
        "login" => view("userName"),
        "first_name" => view("givenName"),
        "last_name" => view("familyName"),
        "email" => view("email"),
        "phone" => view("phone"),
        "job_title" => view("title"),
        "dept" => view("department"),
        "org" => view("organization"),
        "external_ref" => view("externalId"),
        "status" => match value.as_str() {
            Some("enabled") => Some(("active", Value::Bool(true))),
            Some("disabled") => Some(("active", Value::Bool(false))),
            Some("archived") => Some(("deleted", Value::Bool(true))),
            _ => None,
        },
        "role" => {
            let user_type = match value.as_str()? {
                "member" => "Regular",
                "external" => "External",
                "collaborator" => "Collaborator",
                "contributor" => "Contributor",
                "viewer" => "Viewer",
                _ => return None,
            };
            Some(("userType", Value::from(user_type)))
        }
        // Kept by the legacy API alone (employee number, manager id).
        _ => None,
    }
}

/// Checks a fixture's legacy-shaped upstream expectation on another upstream.
async fn check_upstream_view(h: &Harness, upstream: &Value, context: &str) {
    // The Wrike-shaped API keeps one address per user, its login; the IdP's
    // work email is checked there as the userName.
    let one_address = h.backend == Backend::Wrike;
    let path = upstream["path"].as_str().unwrap();
    let status = upstream["status"].as_u64().unwrap_or(200);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["users", id] if !id.contains('?') => {
            let view = h.upstream_user(id).await;
            if status == 404 {
                assert!(view.is_none(), "{context}: {view:?}");
                return;
            }
            let view = view.unwrap_or_else(|| panic!("{context}: no such user upstream"));
            for (field, wanted) in upstream["body"].as_object().into_iter().flatten() {
                let Some((name, wanted)) = neutral_user_field(field, wanted) else {
                    continue;
                };
                if one_address && name == "email" {
                    continue;
                }
                let wanted = match (name, wanted) {
                    // Addresses compare without case, as SCIM's userName does.
                    ("email" | "userName", Value::String(s)) => Value::from(s.to_lowercase()),
                    (_, wanted) => wanted,
                };
                let got = match &view[name] {
                    Value::String(s) if name == "email" || name == "userName" => {
                        Value::from(s.to_lowercase())
                    }
                    other => other.clone(),
                };
                assert_eq!(got, wanted, "{context}: {name} in {view}");
            }
        }
        ["teams", id] => {
            let group = h.upstream_group(id).await;
            if status == 404 {
                assert!(group.is_none(), "{context}: {group:?}");
                return;
            }
            let group = group.unwrap_or_else(|| panic!("{context}: no such group upstream"));
            if let Some(name) = upstream["body"].get("name") {
                assert_eq!(&group["name"], name, "{context}");
            }
        }
        ["teams", id, "members"] => {
            let group = h
                .upstream_group(id)
                .await
                .unwrap_or_else(|| panic!("{context}: no such group upstream"));
            let members = group["members"].as_array().cloned().unwrap_or_default();
            if let Some(length) = upstream.get("length").and_then(Value::as_u64) {
                assert_eq!(members.len() as u64, length, "{context}: {group}");
            }
            for wanted in upstream["body"].as_array().into_iter().flatten() {
                let id = match &wanted["user_id"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => continue,
                };
                assert!(
                    members.iter().any(|m| m.as_str() == Some(id.as_str())),
                    "{context}: {id} not among {group}"
                );
            }
        }
        // Legacy-only look-ups (`/users?login=`) have no counterpart.
        _ => {}
    }
}

async fn replay_on(fixture: &str, backend: Backend) {
    let text = std::fs::read_to_string(format!("tests/fixtures/idp/{fixture}.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let h = Harness::start_on(backend).await;
    let base_path = fixture["base_path"].as_str().unwrap();
    let mut headers: Vec<(String, String)> =
        vec![("authorization".into(), format!("Bearer {}", common::TOKEN))];
    for (name, value) in fixture["headers"].as_object().into_iter().flatten() {
        headers.push((name.clone(), value.as_str().unwrap().to_string()));
    }
    let mut vars: HashMap<String, String> = HashMap::new();
    for step in fixture["steps"].as_array().unwrap() {
        let name = step["name"].as_str().unwrap();
        assert!(
            step["source"].as_str().is_some_and(|s| !s.is_empty()),
            "{name}: every step cites its source"
        );
        let repeat = step.get("repeat").and_then(Value::as_u64).unwrap_or(1);
        for n in 1..=repeat {
            vars.insert("n".into(), n.to_string());
            let request = substitute(&step["request"], &vars);
            let method =
                Method::from_bytes(request["method"].as_str().unwrap().as_bytes()).unwrap();
            let path = format!("{base_path}{}", request["path"].as_str().unwrap());
            let body = request.get("body").map(|b| b.to_string());
            let reply = h.send(method, &path, &headers, body).await;
            let expect = substitute(&step["expect"], &vars);
            let context = format!("{backend:?}, step `{name}` ({path}): {}", reply.body);
            assert_eq!(
                reply.status.as_u16() as u64,
                expect["status"].as_u64().unwrap(),
                "{context}"
            );
            if let Some(content_type) = expect.get("content_type").and_then(Value::as_str) {
                let got = reply
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                assert!(
                    got.starts_with(content_type),
                    "{context}: content type {got}"
                );
            }
            if let Some(wanted) = expect.get("body") {
                contains(&reply.body, wanted, "").unwrap_or_else(|e| panic!("{context}: {e}"));
            }
            for pointer in expect
                .get("absent")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let pointer = pointer.as_str().unwrap();
                assert!(
                    reply.body.pointer(pointer).is_none(),
                    "{context}: {pointer} should be absent"
                );
            }
            for (var, pointer) in step
                .get("save")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let pointer = pointer.as_str().unwrap();
                // The Wrike-shaped API keeps no dates: `meta` has none to save.
                if backend == Backend::Wrike && pointer.starts_with("/meta/") {
                    continue;
                }
                let value = reply
                    .body
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("{context}: nothing at {pointer}"));
                let value = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                vars.insert(var.clone(), value);
            }
            if let Some(upstream) = step.get("upstream") {
                let upstream = substitute(upstream, &vars);
                if backend != Backend::Legacy {
                    let context =
                        format!("{backend:?}, step `{name}`, upstream {}", upstream["path"]);
                    check_upstream_view(&h, &upstream, &context).await;
                    continue;
                }
                let reply = h.upstream(upstream["path"].as_str().unwrap()).await;
                let context = format!(
                    "step `{name}`, upstream {}: {}",
                    upstream["path"], reply.body
                );
                assert_eq!(
                    reply.status.as_u16() as u64,
                    upstream["status"].as_u64().unwrap_or(200),
                    "{context}"
                );
                if let Some(wanted) = upstream.get("body") {
                    contains(&reply.body, wanted, "").unwrap_or_else(|e| panic!("{context}: {e}"));
                }
                if let Some(length) = upstream.get("length").and_then(Value::as_u64) {
                    assert_eq!(
                        reply.body.as_array().map(Vec::len),
                        Some(length as usize),
                        "{context}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn entra_id_sequences_replay() {
    replay("entra").await;
}

#[tokio::test]
async fn entra_id_with_aad_opt_scim_062020_flag_sequences_replay() {
    replay("entra-flagged").await;
}

#[tokio::test]
async fn okta_sequences_replay() {
    replay("okta").await;
}

#[tokio::test]
async fn onelogin_sequences_replay() {
    replay("onelogin").await;
}
