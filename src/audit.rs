//! The provisioning audit log: one JSON line per write (create, replace,
//! patch, delete), whatever its outcome, so an operator can answer "why was
//! this user not provisioned?". The correlation id in each line is the one the
//! IdP saw in the error's `detail`.

use std::fs::{File, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

/// One upstream call a write made, as its provisioning record lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The mapping's call (`users.update`), never the path with its ids.
    pub call: String,
    pub method: String,
    /// The upstream's status; 0 when no answer came (timeout, refused connection).
    pub status: u16,
    pub latency_ms: f64,
}

/// The upstream calls of the write being served, collected by the upstream
/// client while a [`Journal::scope`] runs (only writes have one).
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Noted>>);

#[derive(Debug, Default)]
struct Noted {
    steps: Vec<Step>,
    /// The resource as it was before the write (updates and deletes).
    before: Option<serde_json::Value>,
    /// A create that restored a soft-deleted user rather than making one.
    restored: bool,
}

tokio::task_local! {
    static JOURNAL: Journal;
}

impl Journal {
    /// Runs `work` with this journal collecting its upstream calls.
    pub async fn scope<F: Future>(&self, work: F) -> F::Output {
        JOURNAL.scope(self.clone(), work).await
    }

    /// Notes a call if a journal is collecting (a write); nothing otherwise.
    pub fn note(step: impl FnOnce() -> Step) {
        Self::with(|noted| noted.steps.push(step()));
    }

    /// Notes the resource as the write found it.
    pub fn note_before(resource: serde_json::Value) {
        Self::with(|noted| noted.before = Some(resource));
    }

    /// Notes that a create restored a soft-deleted user.
    pub fn note_restored() {
        Self::with(|noted| noted.restored = true);
    }

    fn with(change: impl FnOnce(&mut Noted)) {
        let _ = JOURNAL.try_with(|journal| {
            if let Ok(mut noted) = journal.0.lock() {
                change(&mut noted);
            }
        });
    }

    pub fn steps(&self) -> Vec<Step> {
        self.0
            .lock()
            .map(|noted| noted.steps.clone())
            .unwrap_or_default()
    }

    /// The resource as the write found it, taken: the line is written once.
    pub fn take_before(&self) -> Option<serde_json::Value> {
        self.0.lock().ok().and_then(|mut noted| noted.before.take())
    }

    pub fn restored(&self) -> bool {
        self.0.lock().is_ok_and(|noted| noted.restored)
    }
}

/// One attribute a write changed, old → new. A write-only value (a
/// password) appears only as changed, never with its values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub attribute: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<serde_json::Value>,
}

/// Attributes whose values never appear in a record.
const WRITE_ONLY: &[&str] = &["password"];

/// What changed from `before` to `after` (SCIM resources; `before` null for
/// a create): top-level attributes, sub-attributes of a complex one
/// (`name.givenName`) and an extension's attributes (`urn:…:User:department`);
/// a multi-valued attribute compares whole. `id`, `schemas` and `meta` are
/// not changes.
pub fn changes(before: &serde_json::Value, after: &serde_json::Value) -> Vec<Change> {
    use serde_json::Value;
    let empty = serde_json::Map::new();
    let (before, after) = (
        before.as_object().unwrap_or(&empty),
        after.as_object().unwrap_or(&empty),
    );
    // Each key with its values, in key order. Two resources one mapping
    // built hold their keys in one order: paired by position, no look-up.
    let pairs: Vec<(&String, Option<&Value>, Option<&Value>)> = if in_step(before, after) {
        let mut pairs: Vec<_> = before
            .iter()
            .zip(after.values())
            .map(|((key, old), new)| (key, Some(old), Some(new)))
            .collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        pairs
    } else {
        let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|key| (key, before.get(key), after.get(key)))
            .collect()
    };
    let mut found = Vec::new();
    for (key, old, new) in pairs {
        if matches!(key.as_str(), "id" | "schemas" | "meta") {
            continue;
        }
        let nested = |v: Option<&Value>| v.is_none_or(|v| v.is_object() || v.is_null());
        if nested(old)
            && nested(new)
            && (old.is_some_and(Value::is_object) || new.is_some_and(Value::is_object))
        {
            let separator = if key.starts_with("urn:") { ":" } else { "." };
            for change in changes(old.unwrap_or(&Value::Null), new.unwrap_or(&Value::Null)) {
                found.push(Change {
                    attribute: format!("{key}{separator}{}", change.attribute),
                    ..change
                });
            }
            continue;
        }
        let absent = |v: Option<&Value>| v.is_none_or(Value::is_null);
        if same_but_refs(old, new) || (absent(old) && absent(new)) {
            continue;
        }
        let hidden = WRITE_ONLY.iter().any(|w| key.eq_ignore_ascii_case(w));
        let shown = |v: Option<&Value>| v.filter(|v| !hidden && !v.is_null()).map(without_refs);
        found.push(Change {
            attribute: key.clone(),
            old: shown(old),
            new: shown(new),
        });
    }
    found
}

/// Whether two values are equal once each list element's `$ref` is
/// dropped (`$ref`s are added to every answer, members and manager, not
/// stored): compared in place, nothing copied.
fn same_but_refs(old: Option<&serde_json::Value>, new: Option<&serde_json::Value>) -> bool {
    use serde_json::Value;
    match (old, new) {
        (Some(Value::Array(old)), Some(Value::Array(new))) => {
            old.len() == new.len()
                && old.iter().zip(new).all(|pair| match pair {
                    (Value::Object(a), Value::Object(b)) => {
                        let kept = |o: &'_ serde_json::Map<String, Value>| {
                            o.iter().filter(|(k, _)| *k != "$ref").count()
                        };
                        let stored = |o| serde_json::Map::iter(o).filter(|(k, _)| *k != "$ref");
                        let paired = stored(a)
                            .zip(stored(b))
                            .all(|((ka, va), (kb, vb))| ka == kb && same(va, vb));
                        kept(a) == kept(b)
                            && (paired || stored(a).all(|(k, v)| b.get(k) == Some(v)))
                    }
                    (a, b) => same(a, b),
                })
        }
        (Some(old), Some(new)) => same(old, new),
        (old, new) => old == new,
    }
}

/// Whether two objects hold the same keys in the same order.
fn in_step(
    a: &serde_json::Map<String, serde_json::Value>,
    b: &serde_json::Map<String, serde_json::Value>,
) -> bool {
    a.len() == b.len() && a.keys().zip(b.keys()).all(|(a, b)| a == b)
}

/// `a == b` (objects equal whatever the order of their keys), with no
/// look-up where two objects hold their keys in one order.
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(a), Value::Object(b)) if in_step(a, b) => {
            a.values().zip(b.values()).all(|(a, b)| same(a, b))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (a, b) => a == b,
    }
}

/// `value` with the `$ref` of each element of a list dropped.
fn without_refs(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                let mut item = item.clone();
                if let Some(object) = item.as_object_mut() {
                    object.remove("$ref");
                }
                item
            })
            .collect(),
        other => other.clone(),
    }
}

/// One provisioning write.
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub time: String,
    pub connection: &'a str,
    pub operation: &'a str,
    /// create, restore, update, disable, enable, membership change, delete.
    pub action: &'static str,
    /// The SCIM id (the mapping's ids are the upstream's, so this is also the upstream id).
    pub scim_id: Option<&'a str>,
    pub upstream_id: Option<&'a str>,
    #[serde(rename = "userName", skip_serializing_if = "Option::is_none")]
    pub user_name: Option<&'a str>,
    #[serde(rename = "displayName", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<&'a str>,
    /// "ok" or "failed".
    pub outcome: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    pub correlation_id: &'a str,
    /// The IdP client: its User-Agent and the peer address it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    /// The dialect the request was read with.
    pub dialect: &'a str,
    /// Every upstream call the write made, in order.
    pub steps: Vec<Step>,
    /// The attributes the write changed (empty for a refusal or a delete).
    pub changes: Vec<Change>,
}

#[derive(Debug)]
enum Sink {
    File(Mutex<LineWriter<File>>),
    /// No file configured: lines go to the log under target `scimgate::audit`.
    Log,
}

#[derive(Debug)]
pub struct AuditLog {
    sink: Sink,
}

impl AuditLog {
    pub fn open(path: Option<&Path>) -> std::io::Result<AuditLog> {
        let sink = match path {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                Sink::File(Mutex::new(LineWriter::new(file)))
            }
            None => Sink::Log,
        };
        Ok(AuditLog { sink })
    }

    pub fn write(&self, entry: &Entry<'_>) {
        match &self.sink {
            Sink::File(file) => {
                let Ok(line) = serde_json::to_string(entry) else {
                    return;
                };
                let written = file
                    .lock()
                    .map(|mut file| writeln!(file, "{line}"))
                    .map_err(|_| std::io::Error::other("audit log lock poisoned"));
                if let Err(error) | Ok(Err(error)) = written {
                    tracing::error!(%error, "cannot write the audit log");
                }
            }
            Sink::Log => {
                if !tracing::enabled!(target: AUDIT_TARGET, tracing::Level::INFO) {
                    return;
                }
                match LOG_LINES.get() {
                    Some(writer) => write_log_line(writer, entry),
                    // The line carries its own context: no request spans in it.
                    None => {
                        let Ok(line) = serde_json::to_string(entry) else {
                            return;
                        };
                        tracing::info!(target: AUDIT_TARGET, parent: None, "{line}");
                    }
                }
            }
        }
    }
}

/// The log target of audit lines written to the log.
const AUDIT_TARGET: &str = "scimgate::audit";

/// The log's own writer, set by `serve` ([`write_log_lines_to`]).
static LOG_LINES: OnceLock<Mutex<Box<dyn Write + Send>>> = OnceLock::new();

/// Audit lines without an `audit_log` file go to `writer`, the one `serve`'s
/// JSON log writes to, as log lines whose `fields` is the record itself (not
/// the record encoded again as a string in a log event: half the cost of a
/// write's audit line). Without it (the demo's text log, tests, `explain`)
/// they are log events whose message is the record. Set once per process.
pub fn write_log_lines_to(writer: impl Write + Send + 'static) {
    let _ = LOG_LINES.set(Mutex::new(Box::new(writer)));
}

/// One audit line in the shape of the JSON log's own lines, so a pipeline
/// routes it by `target` as it routes any log line.
#[derive(Serialize)]
struct LogLine<'a> {
    timestamp: &'a str,
    level: &'static str,
    fields: &'a Entry<'a>,
    target: &'static str,
}

fn write_log_line(writer: &Mutex<Box<dyn Write + Send>>, entry: &Entry<'_>) {
    let line = LogLine {
        timestamp: &entry.time,
        level: "INFO",
        fields: entry,
        target: AUDIT_TARGET,
    };
    let Ok(mut bytes) = serde_json::to_vec(&line) else {
        return;
    };
    bytes.push(b'\n');
    // One write per line: the log writer never interleaves two.
    if let Ok(mut writer) = writer.lock()
        && let Err(error) = writer.write_all(&bytes)
    {
        drop(writer);
        tracing::error!(%error, "cannot write an audit line to the log");
    }
}

pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(Some(&path)).unwrap();
        for id in ["1", "2"] {
            log.write(&Entry {
                time: now(),
                connection: "entra",
                operation: "create_user",
                scim_id: Some(id),
                upstream_id: Some(id),
                user_name: Some("a@example.com"),
                display_name: None,
                outcome: "ok",
                status: 201,
                detail: None,
                correlation_id: "c1",
                user_agent: Some("Okta SCIM Client 1.0.0"),
                client_address: None,
                dialect: "okta",
                action: "create",
                steps: vec![],
                changes: vec![],
            });
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["scim_id"], "2");
        assert_eq!(lines[0]["userName"], "a@example.com");
        assert!(lines[0].get("detail").is_none());
    }

    /// A value of a small resource's shape: few enough choices that two
    /// drawn alike happen often.
    fn resource_part() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::{Value, json};
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop::sample::select(vec!["a", "b", "Engineer"]).prop_map(|s| json!(s)),
        ];
        fn object(
            keys: &'static [&'static str],
            values: impl Strategy<Value = Value> + Clone,
        ) -> impl Strategy<Value = Value> + Clone {
            prop::collection::vec(proptest::option::weighted(0.8, values), keys.len()).prop_map(
                move |values| {
                    let fields = keys.iter().zip(values);
                    Value::Object(
                        fields
                            .filter_map(|(k, v)| Some((k.to_string(), v?)))
                            .collect(),
                    )
                },
            )
        }
        // A list's elements hold values or objects (`same` on either).
        let element_value = prop_oneof![leaf.clone(), object(&["x", "y"], leaf.clone())];
        prop_oneof![
            leaf.clone(),
            object(&["givenName", "familyName", "formatted"], leaf),
            prop::collection::vec(object(&["value", "type", "$ref"], element_value), 0..3)
                .prop_map(Value::Array),
        ]
    }

    /// Two resources of one key order, each key held by either or both.
    fn resources_in_one_order()
    -> impl proptest::strategy::Strategy<Value = (serde_json::Value, serde_json::Value)> {
        use proptest::prelude::*;
        const KEYS: [&str; 6] = ["userName", "name", "emails", "title", "meta", "password"];
        let both = (
            proptest::option::weighted(0.9, resource_part()),
            proptest::option::weighted(0.9, resource_part()),
        );
        prop::collection::vec(both, KEYS.len()).prop_map(|values| {
            let mut sides = (serde_json::Map::new(), serde_json::Map::new());
            for (key, (old, new)) in KEYS.iter().zip(values) {
                if let Some(old) = old {
                    sides.0.insert(key.to_string(), old);
                }
                if let Some(new) = new {
                    sides.1.insert(key.to_string(), new);
                }
            }
            (sides.0.into(), sides.1.into())
        })
    }

    /// `value` with every object's keys in reverse order.
    fn reversed(value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .rev()
                    .map(|(k, v)| (k.clone(), reversed(v)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
            other => other.clone(),
        }
    }

    proptest::proptest! {
        /// Resources paired by position (their keys in one order) give the
        /// changes those same resources give looked up key by key.
        #[test]
        fn changes_are_the_same_whatever_the_order_of_the_keys(
            (before, after) in resources_in_one_order()
        ) {
            let paired = changes(&before, &after);
            proptest::prop_assert_eq!(&paired, &changes(&before, &reversed(&after)));
            proptest::prop_assert_eq!(&paired, &changes(&reversed(&before), &after));
            let names: Vec<&str> = paired.iter().map(|c| c.attribute.as_str()).collect();
            proptest::prop_assert!(names.is_sorted(), "{:?}", names);
        }
    }

    #[test]
    fn changes_name_each_attribute_old_and_new_and_never_a_password() {
        use serde_json::json;
        let before = json!({"id": "7", "userName": "a@example.com", "active": true,
            "name": {"givenName": "Ann", "familyName": "Lee"}, "title": "Engineer",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"},
            "meta": {"version": "W/\"1\""}});
        let after = json!({"id": "7", "userName": "a@example.com", "active": false,
            "name": {"givenName": "Anne", "familyName": "Lee"}, "password": "s3cret!",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Ops"},
            "emails": [{"value": "a@example.com"}], "meta": {"version": "W/\"2\""}});
        let found = changes(&before, &after);
        let shown = serde_json::to_string(&found).unwrap();
        assert!(!shown.contains("s3cret"), "{shown}");
        let names: Vec<&str> = found.iter().map(|c| c.attribute.as_str()).collect();
        assert_eq!(
            names,
            [
                "active",
                "emails",
                "name.givenName",
                "password",
                "title",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
            ]
        );
        assert_eq!(
            found[0],
            Change {
                attribute: "active".into(),
                old: Some(json!(true)),
                new: Some(json!(false))
            }
        );
        assert_eq!(
            found[3],
            Change {
                attribute: "password".into(),
                old: None,
                new: None
            }
        );
        assert_eq!(found[4].new, None, "a removed title has no new value");
        assert!(changes(&after, &after).is_empty());
    }

    #[test]
    fn a_log_line_holds_the_record_as_its_fields_in_one_write() {
        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<Vec<u8>>>>);
        impl Write for Capture {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().push(bytes.to_vec());
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture::default();
        let writer: Mutex<Box<dyn Write + Send>> = Mutex::new(Box::new(capture.clone()));
        let entry = Entry {
            time: now(),
            connection: "entra",
            operation: "create_user",
            scim_id: Some("7"),
            upstream_id: Some("7"),
            user_name: Some("a\"b@example.com"),
            display_name: None,
            outcome: "ok",
            status: 201,
            detail: None,
            correlation_id: "c1",
            user_agent: None,
            client_address: None,
            dialect: "entra",
            action: "create",
            steps: vec![],
            changes: vec![],
        };
        write_log_line(&writer, &entry);
        let writes = capture.0.lock().unwrap().clone();
        assert_eq!(writes.len(), 1, "one write per line");
        let text = String::from_utf8(writes[0].clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with('\n'));
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["target"], "scimgate::audit");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["timestamp"], entry.time.as_str());
        assert_eq!(line["fields"]["userName"], "a\"b@example.com");
        assert_eq!(line["fields"]["action"], "create");
    }

    #[test]
    fn a_list_changes_by_its_values_not_by_the_refs_an_answer_adds() {
        use serde_json::json;
        let stored = json!({"members": [{"value": "1"}, {"value": "2"}]});
        let answered = json!({"members": [
            {"value": "1", "$ref": "https://gw/Users/1"},
            {"value": "2", "$ref": "https://gw/Users/2"}]});
        assert!(changes(&stored, &answered).is_empty());
        let grown = json!({"members": [
            {"value": "1", "$ref": "https://gw/Users/1"},
            {"value": "3", "$ref": "https://gw/Users/3"}]});
        let found = changes(&stored, &grown);
        assert_eq!(found.len(), 1);
        // Shown without the refs, on both sides.
        assert_eq!(found[0].new, Some(json!([{"value": "1"}, {"value": "3"}])));
        assert_eq!(found[0].old, Some(json!([{"value": "1"}, {"value": "2"}])));
        let extra = json!({"members": [{"value": "1", "display": "A"}, {"value": "2"}]});
        assert_eq!(
            changes(&stored, &extra).len(),
            1,
            "a sub-attribute more is a change"
        );
        // Compared in depth whatever the order of keys, in step or not.
        let nested = |x: &str, key_order_flipped: bool| match key_order_flipped {
            false => json!({"addresses": [{"type": "work", "geo": {"x": x, "y": "0"}}]}),
            true => json!({"addresses": [{"geo": {"y": "0", "x": x}, "type": "work"}]}),
        };
        for flipped in [false, true] {
            assert!(changes(&nested("1", false), &nested("1", flipped)).is_empty());
            assert_eq!(changes(&nested("1", false), &nested("2", flipped)).len(), 1);
        }
    }

    #[tokio::test]
    async fn a_journal_collects_the_calls_made_in_its_scope_only() {
        let journal = Journal::default();
        let step = |call: &str| Step {
            call: call.into(),
            method: "GET".into(),
            status: 200,
            latency_ms: 1.5,
        };
        Journal::note(|| step("outside"));
        journal
            .scope(async {
                Journal::note(|| step("users.get"));
                Journal::note(|| step("users.update"));
            })
            .await;
        Journal::note(|| step("after"));
        let calls: Vec<String> = journal.steps().into_iter().map(|s| s.call).collect();
        assert_eq!(calls, ["users.get", "users.update"]);
    }
}
