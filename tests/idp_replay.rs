//! Replays each IdP's documented request sequences (tests/fixtures/idp/*.json)
//! against the gateway and the reference legacy API, checking the SCIM
//! response and the upstream's state after every step.
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

mod common;

use std::collections::HashMap;

use common::Harness;
use reqwest::Method;
use serde_json::Value;

fn substitute(value: &Value, vars: &HashMap<String, String>) -> Value {
    match value {
        // `${x:int}` alone is the saved `x` as a JSON number (upstream ids).
        Value::String(text) if text.starts_with("${") && text.ends_with(":int}") => {
            let name = &text[2..text.len() - 5];
            let number = vars.get(name).and_then(|v| v.parse::<i64>().ok());
            number
                .map(Value::from)
                .unwrap_or_else(|| Value::String(text.clone()))
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
    let text = std::fs::read_to_string(format!("tests/fixtures/idp/{fixture}.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let h = Harness::start().await;
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
            let context = format!("step `{name}` ({path}): {}", reply.body);
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
                let value = reply
                    .body
                    .pointer(pointer.as_str().unwrap())
                    .unwrap_or_else(|| panic!("{context}: nothing at {pointer}"));
                let value = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                vars.insert(var.clone(), value);
            }
            if let Some(upstream) = step.get("upstream") {
                let upstream = substitute(upstream, &vars);
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
