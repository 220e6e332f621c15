//! Field paths: where a value lives in upstream JSON.
//!
//! Names joined by dots reach into objects (`profile.firstName`); a bracket
//! after a name picks one element of an array, by position (`profiles[0]`)
//! or by a key it holds, in the valuePath syntax SCIM itself uses
//! (`profiles[accountId eq "IEAAAAAA"].role`,
//! `metadata[key eq "department"].value`). One grammar reads and writes:
//! writing upserts the element a bracket names (creating it, with its key,
//! when none matches) and leaves the array's other elements alone.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value};

use scimgate_scim::json::View;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
    /// The element whose `key` holds `value`.
    Matching {
        key: String,
        value: Value,
    },
}

/// A path into upstream JSON, and where its first key was found in the
/// last record read (records of one upstream share a shape).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath(Vec<Segment>, Place);

/// A position to look at first: a hint shared by the threads that read
/// records, so it is atomic; a stale one costs a search, never a wrong
/// answer. Two paths are equal whatever their hints.
#[derive(Debug, Default)]
struct Place(AtomicUsize);

impl Clone for Place {
    fn clone(&self) -> Self {
        Place(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

impl PartialEq for Place {
    fn eq(&self, _: &Place) -> bool {
        true
    }
}

/// The largest array position a path may name: writing position N creates
/// the N elements before it, so it is bounded like any other allocation.
pub const MAX_POSITION: usize = 1000;

/// Why a text is not a field path; shown to the operator at the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    #[error("it is empty or has an empty name between dots")]
    EmptyName,
    #[error(
        "`{0}` is an array position: write it in brackets after the array's name, e.g. `profiles[{0}].email`"
    )]
    BareIndex(String),
    #[error("a `[` is never closed")]
    Unclosed,
    #[error("`[{0}]` is neither a position (`[0]`) nor a key match (`[key eq \"value\"]`)")]
    BadSelector(String),
    #[error("position `[{0}]` is past {MAX_POSITION}; a write there would fill the array up to it")]
    PositionTooLarge(usize),
    #[error("`[` must follow an array's name")]
    SelectorFirst,
    #[error("`{0}` cannot be in a field name")]
    BadCharacter(char),
}

impl FieldPath {
    pub fn parse(text: &str) -> Option<FieldPath> {
        Self::parse_checked(text).ok()
    }

    pub fn parse_checked(text: &str) -> Result<FieldPath, FieldPathError> {
        let mut segments = Vec::new();
        let mut rest = text;
        loop {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() {
                return Err(if rest.starts_with('[') && segments.is_empty() {
                    FieldPathError::SelectorFirst
                } else {
                    FieldPathError::EmptyName
                });
            }
            if let Some(bad) = name.chars().find(|c| matches!(c, ']' | '"' | ' ')) {
                return Err(FieldPathError::BadCharacter(bad));
            }
            if name.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FieldPathError::BareIndex(name.to_string()));
            }
            segments.push(Segment::Key(name.to_string()));
            rest = &rest[end..];
            while let Some(inner) = rest.strip_prefix('[') {
                let close = closing_bracket(inner).ok_or(FieldPathError::Unclosed)?;
                segments.push(selector(&inner[..close])?);
                rest = &inner[close + 1..];
            }
            match rest.strip_prefix('.') {
                Some(next) => rest = next,
                None if rest.is_empty() => break,
                None => return Err(FieldPathError::EmptyName),
            }
        }
        Ok(FieldPath(segments, Place::default()))
    }

    /// Whether the path goes through an array (a write must then start from
    /// the record's array, or it would drop the other elements).
    pub fn crosses_array(&self) -> bool {
        self.0.iter().any(|s| !matches!(s, Segment::Key(_)))
    }

    /// The top-level key the path starts with.
    pub fn root(&self) -> &str {
        match self.0.first() {
            Some(Segment::Key(key)) => key,
            _ => "",
        }
    }

    pub fn get<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        // A view of a value shows values all the way down.
        self.read(View::Value(record)).and_then(View::as_value)
    }

    /// The field in a record of either kind: a value, or a tree read from
    /// the upstream's text.
    pub fn read<'a>(&self, record: View<'a>) -> Option<View<'a>> {
        let (first, rest) = self.0.split_first()?;
        let top = match first {
            Segment::Key(key) => {
                let near = self.1.0.load(Ordering::Relaxed);
                let (top, at) = record.get_near(key, near)?;
                if at != near {
                    self.1.0.store(at, Ordering::Relaxed);
                }
                top
            }
            // A path starts with a name (`parse_checked`).
            _ => return None,
        };
        rest.iter().try_fold(top, |value, segment| match segment {
            Segment::Key(key) => value.get(key),
            Segment::Index(index) => value.elements().nth(*index),
            Segment::Matching { key, value: wanted } => value
                .elements()
                .find(|element| element.get(key).is_some_and(|held| held.equals(wanted))),
        })
    }

    /// Sets the field, creating objects, arrays and the element a bracket
    /// names as needed.
    pub fn set(&self, record: &mut Map<String, Value>, value: Value) {
        let Some((Segment::Key(first), rest)) = self.0.split_first() else {
            return;
        };
        let slot = record.entry(first.clone()).or_insert(Value::Null);
        set_in(slot, rest, value);
    }

    /// As [`Self::set`] into a body of changes to `base`: a path through an
    /// array first copies `base`'s array into the body, so the write changes
    /// one element and keeps the rest.
    pub fn set_from(&self, changes: &mut Map<String, Value>, base: View<'_>, value: Value) {
        self.seed(changes, base);
        self.set(changes, value);
    }

    /// Marks the field absent in a body of changes to `base` (the record as
    /// it is): null at the field itself, or at the object holding it when
    /// that object would be left empty (`{"manager": null}`, not
    /// `{"manager": {"id": null}}`, which an API validating nested objects
    /// refuses) — never at an object that holds other fields
    /// (`{"profile": {"title": null}}`, not `{"profile": null}`). A field the
    /// record lacks is nulled at the first segment the record lacks; inside
    /// an array element the record lacks, nothing is written (it is absent).
    pub fn clear_from(&self, changes: &mut Map<String, Value>, base: View<'_>) {
        self.seed(changes, base);
        let prefix = |end: usize| FieldPath(self.0[..end].to_vec(), Place::default());
        let mut end = self.0.len();
        let lacks = |end: usize| prefix(end).read(base).is_none_or(View::is_null);
        if lacks(self.0.len()) {
            let Some(missing) = (1..=self.0.len()).find(|&end| lacks(end)) else {
                return;
            };
            if !matches!(self.0[missing - 1], Segment::Key(_)) {
                return;
            }
            end = missing;
        } else {
            while end >= 2 {
                let (Segment::Key(leaf), Segment::Key(_)) = (&self.0[end - 1], &self.0[end - 2])
                else {
                    break;
                };
                let alone = prefix(end - 1).read(base).is_some_and(|held| {
                    held.is_object() && held.members().all(|(k, v)| k == leaf || v.is_null())
                });
                if !alone {
                    break;
                }
                end -= 1;
            }
        }
        prefix(end).set(changes, Value::Null);
    }

    fn seed(&self, changes: &mut Map<String, Value>, base: View<'_>) {
        if self.crosses_array()
            && !changes.contains_key(self.root())
            && let Some(current) = base.get(self.root())
        {
            changes.insert(self.root().to_string(), current.to_value());
        }
    }
}

fn set_in(slot: &mut Value, path: &[Segment], value: Value) {
    let Some((segment, rest)) = path.split_first() else {
        *slot = value;
        return;
    };
    let next = match segment {
        Segment::Key(key) => {
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(map) = slot else { return };
            map.entry(key.clone()).or_insert(Value::Null)
        }
        Segment::Index(index) => {
            ensure_array(slot);
            let Value::Array(items) = slot else { return };
            // Positions past the end are filled with empty objects, so the
            // named position exists (the upstream numbered it, not us).
            while items.len() <= *index {
                items.push(Value::Object(Map::new()));
            }
            &mut items[*index]
        }
        Segment::Matching { key, value: wanted } => {
            ensure_array(slot);
            let Value::Array(items) = slot else { return };
            let position = match items.iter().position(|e| e.get(key) == Some(wanted)) {
                Some(position) => position,
                None => {
                    let mut element = Map::new();
                    element.insert(key.clone(), wanted.clone());
                    items.push(Value::Object(element));
                    items.len() - 1
                }
            };
            &mut items[position]
        }
    };
    set_in(next, rest, value);
}

fn ensure_array(slot: &mut Value) {
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
}

/// The `]` closing a selector, skipping brackets inside a quoted value.
fn closing_bracket(text: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (position, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ']' if !quoted => return Some(position),
            _ => {}
        }
    }
    None
}

fn selector(text: &str) -> Result<Segment, FieldPathError> {
    let bad = || FieldPathError::BadSelector(text.to_string());
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let position: usize = trimmed.parse().map_err(|_| bad())?;
        if position > MAX_POSITION {
            return Err(FieldPathError::PositionTooLarge(position));
        }
        return Ok(Segment::Index(position));
    }
    let mut parts = trimmed.splitn(3, ' ');
    let (Some(key), Some(op), Some(literal)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !op.eq_ignore_ascii_case("eq") || key.is_empty() || key.contains(['.', '[', '"']) {
        return Err(bad());
    }
    let value: Value = serde_json::from_str(literal.trim()).map_err(|_| bad())?;
    if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
        return Err(bad());
    }
    Ok(Segment::Matching {
        key: key.to_string(),
        value,
    })
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Matching { key, value } => write!(f, "[{key} eq {value}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> FieldPath {
        FieldPath::parse_checked(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// `check` on `record` as a value, then as a tree read from its text:
    /// a body of changes to it is the same from either.
    fn on_both(record: &Value, check: impl Fn(View<'_>)) {
        check(record.into());
        let text = record.to_string();
        let tree = scimgate_scim::json::tree_from_str(&text).unwrap();
        check(tree.view());
    }

    fn contact() -> Value {
        json!({
            "id": "KUAAAAAA",
            "profiles": [
                {"accountId": "IEAAAAAA", "email": "a@example.com", "role": "User"},
                {"accountId": "IEBBBBBB", "email": "a@other.example", "role": "Collaborator"}
            ],
            "metadata": [{"key": "department", "value": "R&D"}, {"key": "floor", "value": "3"}]
        })
    }

    #[test]
    fn a_field_is_found_whatever_the_shape_of_the_record_before() {
        let path = FieldPath::parse("b.c").unwrap();
        let big: Value = (0..40)
            .map(|n| (format!("k{n}"), json!(n)))
            .chain([("b".to_string(), json!({"c": "big"}))])
            .collect::<Map<_, _>>()
            .into();
        let texts = [
            r#"{"b": {"c": "x"}, "y": 1}"#,
            r#"{"a": 1, "y": 1, "b": {"c": "t"}}"#,
            r#"{"b": 1}"#,
        ];
        let trees: Vec<_> = texts
            .iter()
            .map(|t| scimgate_scim::json::tree_from_str(t).unwrap())
            .collect();
        let records = [
            json!({"a": 1, "b": {"c": "first"}}),
            json!({"b": {"c": "second"}, "a": 1}),
            json!({"a": 1, "z": 2}),
            big,
            json!({"a": 1, "z": 2, "b": {"c": "last"}}),
        ];
        for _ in 0..2 {
            for record in &records {
                let expected = record.pointer("/b/c").and_then(Value::as_str);
                assert_eq!(
                    path.get(record).and_then(Value::as_str),
                    expected,
                    "{record}"
                );
            }
            for (tree, text) in trees.iter().zip(texts) {
                let value: Value = serde_json::from_str(text).unwrap();
                let expected = value.pointer("/b/c").and_then(Value::as_str);
                assert_eq!(
                    path.read(tree.view()).and_then(View::as_str),
                    expected,
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn reads_array_elements_by_position_and_by_key() {
        let record = contact();
        assert_eq!(
            path("profiles[0].email").get(&record),
            Some(&json!("a@example.com"))
        );
        assert_eq!(
            path(r#"profiles[accountId eq "IEBBBBBB"].role"#).get(&record),
            Some(&json!("Collaborator"))
        );
        assert_eq!(
            path(r#"metadata[key eq "department"].value"#).get(&record),
            Some(&json!("R&D"))
        );
        assert_eq!(path(r#"metadata[key eq "desk"].value"#).get(&record), None);
        assert_eq!(path("profiles[5].email").get(&record), None);
    }

    #[test]
    fn writing_an_element_upserts_it_and_keeps_the_others() {
        on_both(&contact(), |record| {
            let mut changes = Map::new();
            path(r#"metadata[key eq "department"].value"#).set_from(
                &mut changes,
                record,
                json!("Ops"),
            );
            path(r#"metadata[key eq "desk"].value"#).set_from(&mut changes, record, json!("7B"));
            path(r#"profiles[accountId eq "IEAAAAAA"].role"#).set_from(
                &mut changes,
                record,
                json!("Collaborator"),
            );
            assert_eq!(
                Value::Object(changes),
                json!({
                    "metadata": [
                        {"key": "department", "value": "Ops"},
                        {"key": "floor", "value": "3"},
                        {"key": "desk", "value": "7B"}
                    ],
                    "profiles": [
                        {"accountId": "IEAAAAAA", "email": "a@example.com", "role": "Collaborator"},
                        {"accountId": "IEBBBBBB", "email": "a@other.example", "role": "Collaborator"}
                    ]
                })
            );
        });
    }

    #[test]
    fn writing_into_a_new_record_builds_the_arrays() {
        let mut body = Map::new();
        path("profiles[0].email").set(&mut body, json!("a@example.com"));
        path("profiles[0].role").set(&mut body, json!("User"));
        path(r#"metadata[key eq "department"].value"#).set(&mut body, json!("R&D"));
        assert_eq!(
            Value::Object(body),
            json!({
                "profiles": [{"email": "a@example.com", "role": "User"}],
                "metadata": [{"key": "department", "value": "R&D"}]
            })
        );
    }

    #[test]
    fn clearing_nulls_the_field_or_an_object_it_alone_fills_never_a_shared_parent() {
        on_both(&json!({"manager": {"id": "42"}}), |record| {
            let mut body = Map::new();
            path("manager.id").clear_from(&mut body, record);
            assert_eq!(Value::Object(body), json!({"manager": null}));
        });
        on_both(&json!({}), |record| {
            let mut body = Map::new();
            path("manager.id").clear_from(&mut body, record);
            assert_eq!(
                Value::Object(body),
                json!({"manager": null}),
                "absent: at the first missing segment"
            );
        });
        on_both(
            &json!({"profile": {"title": "Engineer", "firstName": "Alice"}}),
            |profile| {
                let mut body = Map::new();
                path("profile.title").clear_from(&mut body, profile);
                assert_eq!(Value::Object(body), json!({"profile": {"title": null}}));
                let mut body = Map::new();
                path("profile.department").clear_from(&mut body, profile);
                assert_eq!(
                    Value::Object(body),
                    json!({"profile": {"department": null}})
                );
            },
        );
        on_both(
            &json!({"profile": {"title": "Engineer", "firstName": null}}),
            |profile| {
                let mut body = Map::new();
                path("profile.title").clear_from(&mut body, profile);
                assert_eq!(
                    Value::Object(body),
                    json!({"profile": null}),
                    "the others are null: the object is left empty"
                );
            },
        );
        on_both(&contact(), |record| {
            let mut body = Map::new();
            path(r#"metadata[key eq "department"].value"#).clear_from(&mut body, record);
            path(r#"metadata[key eq "desk"].value"#).clear_from(&mut body, record);
            assert_eq!(
                body["metadata"],
                json!([{"key": "department", "value": null}, {"key": "floor", "value": "3"}]),
                "a missing element is absent already"
            );
        });
    }

    #[test]
    fn malformed_paths_say_what_would_work() {
        for (text, expected) in [
            ("profiles.0.email", FieldPathError::BareIndex("0".into())),
            ("", FieldPathError::EmptyName),
            ("a..b", FieldPathError::EmptyName),
            ("[0].a", FieldPathError::SelectorFirst),
            ("profiles[0", FieldPathError::Unclosed),
            (
                "profiles[accountId = \"x\"]",
                FieldPathError::BadSelector("accountId = \"x\"".into()),
            ),
            (
                "profiles[accountId eq x]",
                FieldPathError::BadSelector("accountId eq x".into()),
            ),
            ("profiles[0]x", FieldPathError::EmptyName),
            (
                "x[4294967295].y",
                FieldPathError::PositionTooLarge(4294967295),
            ),
        ] {
            assert_eq!(FieldPath::parse_checked(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "a.b",
            "profiles[0].email",
            r#"metadata[key eq "a]b"].value"#,
            "x[n eq 3]",
        ] {
            assert_eq!(path(text).to_string(), text);
            assert_eq!(path(&path(text).to_string()), path(text));
        }
    }

    #[test]
    fn a_field_is_found_in_small_and_large_records_alike() {
        for size in [1, 31, 32, 33, 200] {
            let record: Map<String, Value> =
                (0..size).map(|n| (format!("f{n}"), json!(n))).collect();
            let record = Value::Object(record);
            for n in [0, size / 2, size - 1] {
                assert_eq!(
                    path(&format!("f{n}")).get(&record),
                    Some(&json!(n)),
                    "{size}"
                );
            }
            assert_eq!(path("absent").get(&record), None, "{size}");
            assert_eq!(path("f0.inner").get(&record), None, "{size}");
        }
    }
}
