//! A transport that sends nothing: it records each upstream call (secrets
//! masked) and answers from a given record, so `scimgate explain` can show
//! what a SCIM request would do upstream without touching it.

use std::sync::Mutex;

use http::{HeaderMap, Method, StatusCode};
use serde_json::{Map, Value};

use super::UpstreamResponse;
use crate::mapping::UpstreamRequest;

/// One call the gateway would have made.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub method: Method,
    pub url: String,
    /// Header names and values, secrets shown as `****`.
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
}

#[derive(Debug, Default)]
pub struct Recorder {
    /// What reads answer with, and what writes are merged into.
    record: Value,
    calls: Mutex<Vec<RecordedCall>>,
}

impl Recorder {
    pub fn new(record: Value) -> Self {
        Recorder {
            record,
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub(super) fn answer(
        &self,
        url: String,
        headers: Vec<(String, String)>,
        request: &UpstreamRequest,
    ) -> UpstreamResponse {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(RecordedCall {
                method: request.method.clone(),
                url,
                headers,
                body: request.body.clone(),
            });
        }
        let (status, body) = match (&request.list_items, &request.method) {
            // Lists answer empty: a create's look-ups find nothing to restore.
            (Some(pointer), _) => (StatusCode::OK, wrap_at(pointer, Value::Array(Vec::new()))),
            (None, &Method::GET) => (StatusCode::OK, self.in_shape(request, self.record.clone())),
            (None, &Method::DELETE) => (StatusCode::NO_CONTENT, Value::Null),
            (None, _) => {
                let mut merged = self.record.clone();
                if let (Some(target), Some(Value::Object(changes))) =
                    (merged.as_object_mut(), &request.body)
                {
                    merge(target, changes);
                }
                (StatusCode::OK, self.in_shape(request, merged))
            }
        };
        UpstreamResponse {
            status,
            headers: HeaderMap::new(),
            body,
            text: String::new(),
        }
    }
}

impl Recorder {
    /// A record answered where the call's mapping reads it: inside its
    /// envelope, or for a create that answers only an id, just that id.
    fn in_shape(&self, request: &UpstreamRequest, record: Value) -> Value {
        if let Some(pointer) = &request.id_at {
            let id = self.record.get("id").cloned().unwrap_or(Value::from("1"));
            return wrap_at(pointer, id);
        }
        match &request.record_at {
            Some(pointer) => wrap_at(pointer, record),
            None => record,
        }
    }
}

/// `value` placed at a JSON pointer in otherwise empty containers (a
/// numeric segment is an array position).
fn wrap_at(pointer: &str, value: Value) -> Value {
    let mut body = value;
    for key in pointer
        .split('/')
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        body = match key.parse::<usize>() {
            Ok(position) => {
                let mut items = vec![Value::Object(Map::new()); position];
                items.push(body);
                Value::Array(items)
            }
            Err(_) => {
                let mut object = Map::new();
                object.insert(key.replace("~1", "/").replace("~0", "~"), body);
                Value::Object(object)
            }
        };
    }
    body
}

/// JSON merge-patch (RFC 7386) of `changes` into `target`.
fn merge(target: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (key, value) in changes {
        match (target.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(nested)) => merge(existing, nested),
            (_, Value::Null) => {
                target.remove(key);
            }
            (_, value) => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(method: Method, list_items: Option<&str>, body: Option<Value>) -> UpstreamRequest {
        UpstreamRequest {
            method,
            path: "/x".into(),
            query: vec![],
            body,
            content_type: None,
            encoding: Default::default(),
            list_items: list_items.map(str::to_string),
            record_at: None,
            id_at: None,
            label: "users.get".into(),
            template: "/x".into(),
            precondition: None,
        }
    }

    #[test]
    fn lists_answer_empty_in_the_declared_shape() {
        let recorder = Recorder::new(json!({"id": 1}));
        let answer = recorder.answer(
            "u".into(),
            vec![],
            &request(Method::GET, Some("/data/items"), None),
        );
        assert_eq!(answer.body, json!({"data": {"items": []}}));
        let answer = recorder.answer("u".into(), vec![], &request(Method::GET, Some(""), None));
        assert_eq!(answer.body, json!([]));
    }

    #[test]
    fn writes_answer_the_record_with_the_changes_and_are_recorded() {
        let recorder = Recorder::new(json!({"id": 1, "name": {"first": "A", "last": "B"}}));
        let answer = recorder.answer(
            "http://u/users/1".into(),
            vec![("x-api-key".into(), "****".into())],
            &request(
                Method::PATCH,
                None,
                Some(json!({"name": {"first": "C", "last": null}})),
            ),
        );
        assert_eq!(answer.body, json!({"id": 1, "name": {"first": "C"}}));
        let calls = recorder.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].url, "http://u/users/1");
        assert_eq!(calls[0].headers[0].1, "****");
    }
}
