//! JSON text into a value, as `serde_json::from_slice` reads it, for less:
//! - a body is checked for UTF-8 once, whole, instead of string by string
//!   (a check per string costs more than the string's own bytes: a page of
//!   upstream records holds thousands of short strings);
//! - each object is made, at once, as large as the last one read at its
//!   depth: the records of a page share one shape, and a map that grows
//!   one key at a time is reallocated and re-indexed on the way.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The JSON value `bytes` hold; the same value (keys in the same order), or
/// the same error, as `serde_json::from_slice`, but for one key: the token
/// serde_json's `raw_value` feature reads as a raw value is read here as
/// the ordinary key it is in JSON text.
pub fn from_bytes(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Read again to report where the bytes stop being text, as serde
        // does (its message gives the line and column).
        return serde_json::from_slice(bytes);
    };
    let shapes = Shapes::default();
    let mut reader = serde_json::Deserializer::from_str(text);
    let value = Node {
        shapes: &shapes,
        depth: 0,
    }
    .deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}

/// How deep object sizes are remembered: a page, its records, their
/// complex attributes and those attributes' elements.
const REMEMBERED_DEPTHS: usize = 4;

/// The most keys an object is made room for before it is read: one huge
/// object must not make every later one at its depth huge too.
const LARGEST_HINT: usize = 64;

/// The number of keys of the last object read at each depth.
#[derive(Default)]
struct Shapes([Cell<usize>; REMEMBERED_DEPTHS]);

impl Shapes {
    fn last(&self, depth: usize) -> usize {
        self.0.get(depth).map_or(0, Cell::get).min(LARGEST_HINT)
    }

    fn note(&self, depth: usize, keys: usize) {
        if let Some(last) = self.0.get(depth) {
            last.set(keys);
        }
    }
}

/// One value of the text, `depth` arrays and objects down.
#[derive(Clone, Copy)]
struct Node<'s> {
    shapes: &'s Shapes,
    depth: usize,
}

impl Node<'_> {
    fn below(self) -> Self {
        Node {
            depth: self.depth + 1,
            ..self
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

// As serde_json's own visitor for `Value` reads JSON text.
impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut list = Vec::new();
        while let Some(item) = items.next_element_seed(self.below())? {
            list.push(item);
        }
        Ok(Value::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut object = Map::with_capacity(self.shapes.last(self.depth));
        while let Some(key) = entries.next_key::<String>()? {
            let value = entries.next_value_seed(self.below())?;
            object.insert(key, value);
        }
        self.shapes.note(self.depth, object.len());
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Ours and serde_json's reading of `bytes`, as text: equal texts are
    /// the same values with their keys in the same order.
    fn both(bytes: &[u8]) -> (Result<String, String>, Result<String, String>) {
        (
            from_bytes(bytes)
                .map(|v| v.to_string())
                .map_err(|e| e.to_string()),
            serde_json::from_slice::<Value>(bytes)
                .map(|v| v.to_string())
                .map_err(|e| e.to_string()),
        )
    }

    #[test]
    fn reads_what_serde_json_reads_and_refuses_what_it_refuses() {
        let cases: [&[u8]; 14] = [
            br#"{"a": "b", "n": [1, 2.5, -3, 1e400, 18446744073709551616], "t": true, "z": null}"#,
            "{\"name\": \"Jos\u{e9} \u{1F600}\", \"esc\": \"\\u00e9\\n\"}".as_bytes(),
            br#"[{"id": 1, "b": 2, "a": 3}, {"a": 1}, {"z": 1, "y": 2, "x": 3, "w": 4}, {}]"#,
            br#"{"dup": 1, "other": 2, "dup": 3}"#,
            br#"[[[[[{"deep": {"deeper": [1]}}]]]]]"#,
            b"  [ ]  ",
            b"{\"a\": \"\xff\"}",
            b"{\"a\": \"\xc3\"}",
            b"{\"a\": 1,}",
            b"{\"a\": \"\\ud800\"}",
            b"",
            b"[1] [2]",
            b"{\"a\" 1}",
            b"[1, 2",
        ];
        for bytes in cases {
            let (ours, serdes) = both(bytes);
            assert_eq!(ours, serdes, "{}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn bytes_that_are_not_text_are_refused_where_they_stop_being_text() {
        let error = from_bytes(b"{\n  \"a\": \"ok\",\n  \"b\": \"\xfe\"\n}").unwrap_err();
        assert_eq!(error.line(), 3, "{error}");
    }

    #[test]
    fn an_object_is_made_room_for_as_the_last_one_at_its_depth_up_to_a_bound() {
        let shapes = Shapes::default();
        assert_eq!(shapes.last(1), 0);
        shapes.note(1, 19);
        assert_eq!((shapes.last(0), shapes.last(1)), (0, 19));
        shapes.note(2, 100_000);
        assert_eq!(shapes.last(2), LARGEST_HINT);
        shapes.note(REMEMBERED_DEPTHS, 7);
        assert_eq!(shapes.last(REMEMBERED_DEPTHS), 0);
        let huge = format!(
            "[{{{}}}, {{\"a\": 1}}]",
            (0..1000)
                .map(|n| format!("\"k{n}\": {n}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let read = from_bytes(huge.as_bytes()).unwrap();
        assert_eq!(read[0].as_object().map(Map::len), Some(1000));
        assert_eq!(read[1], serde_json::json!({"a": 1}));
    }

    #[test]
    fn serde_jsons_raw_value_token_is_an_ordinary_key() {
        // serde_json's `raw_value` feature (on in the dependency tree) reads
        // this key as its own token; in JSON text it is a key like another.
        let text = br#"{"$serde_json::private::RawValue": "[1]"}"#;
        let read = from_bytes(text).unwrap();
        assert_eq!(read["$serde_json::private::RawValue"], "[1]");
    }

    #[test]
    fn nesting_past_serde_jsons_limit_is_refused_as_it_refuses_it() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let (ours, serdes) = both(deep.as_bytes());
        assert!(ours.is_err());
        assert_eq!(ours, serdes);
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec(("[a-e]{1,3}", inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_text_reads_as_serde_json_reads_it(value in json(), pretty in any::<bool>()) {
            let text = match pretty {
                true => serde_json::to_string_pretty(&value).unwrap(),
                false => value.to_string(),
            };
            let (ours, serdes) = both(text.as_bytes());
            prop_assert_eq!(ours, serdes);
        }

        #[test]
        fn any_bytes_read_as_serde_json_reads_them(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let (ours, serdes) = both(&bytes);
            prop_assert_eq!(ours, serdes);
        }
    }
}
