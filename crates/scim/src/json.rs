//! JSON text into a value and back, as serde_json reads and writes it, for
//! less. Reading ([`from_bytes`]):
//! - a body is checked for UTF-8 once, whole, instead of string by string
//!   (a check per string costs more than the string's own bytes: a page of
//!   upstream records holds thousands of short strings);
//! - each object is made, at once, as large as the last one read at its
//!   depth: the records of a page share one shape, and a map that grows
//!   one key at a time is reallocated and re-indexed on the way.
//!
//! Writing ([`to_vec`]): a string is searched for what must be escaped
//! eight bytes at a time, where serde_json looks at each byte in turn (a
//! page of 100 users is about 100 kB of strings). A [`Tree`] is written
//! the same way, its borrowed parts where they lie.

mod read_tree;
mod tree;

pub use read_tree::tree_from_str;
pub use tree::{Members, Scalar, Tree, View, write_tree};

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

/// The compact JSON text of `value`: the bytes `serde_json::to_vec` writes.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write_value(&mut out, value);
    out
}

/// Appends the compact JSON text of `value` to `out`.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // A `Number` is finite, and written as its `Display` (itoa, zmij),
        // as serde_json's serializer writes it.
        Value::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
        Value::String(text) => write_str(out, text),
        Value::Array(items) => write_array(out, items, write_value),
        Value::Object(entries) => write_object(out, entries, write_value),
    }
}

/// `[a,b,…]`, each element written by `write`.
fn write_array<T>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = T>,
    write: fn(&mut Vec<u8>, T),
) {
    out.push(b'[');
    for (at, item) in items.into_iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// `{"k":v,…}`, each value written by `write`.
fn write_object<K: AsRef<str>, T>(
    out: &mut Vec<u8>,
    members: impl IntoIterator<Item = (K, T)>,
    write: fn(&mut Vec<u8>, T),
) {
    out.push(b'{');
    for (at, (key, item)) in members.into_iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        write_str(out, key.as_ref());
        out.push(b':');
        write(out, item);
    }
    out.push(b'}');
}

/// `text` as a JSON string, escaped as serde_json escapes it: `"`, `\`
/// and the control characters, no others.
fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if has_escape(bytes) {
        write_escaped(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

/// Whether `bytes` hold a byte JSON escapes, eight at a time: the last
/// word is the last eight bytes (read twice in part), or, in a shorter
/// text, its bytes gathered as a word padded with spaces.
pub fn has_escape(bytes: &[u8]) -> bool {
    let word = |eight: &[u8]| u64::from_le_bytes(eight.try_into().unwrap_or_default());
    let mut chunks = bytes.chunks_exact(8);
    let mut any = false;
    for chunk in &mut chunks {
        any |= needs_escape(word(chunk));
    }
    if chunks.remainder().is_empty() {
        return any;
    }
    // A short text's bytes are read as two overlapping halves (or three
    // bytes that cover it), not one at a time: most keys and values are
    // short.
    let half = |four: Option<&[u8]>| {
        u64::from(u32::from_le_bytes(
            four.and_then(|four| four.try_into().ok())
                .unwrap_or_default(),
        ))
    };
    let length = bytes.len();
    let last = match length {
        8.. => word(bytes.get(length - 8..).unwrap_or_default()),
        4..=7 => half(bytes.get(..4)) | half(bytes.get(length - 4..)) << 32,
        _ => {
            let at = |index: usize| bytes.get(index).copied().unwrap_or(b' ');
            let [first, middle, end] = [at(0), at(length / 2), at(length.wrapping_sub(1))];
            u64::from_le_bytes([first, middle, end, b' ', b' ', b' ', b' ', b' '])
        }
    };
    any | needs_escape(last)
}

/// `bytes` with each byte JSON escapes written escaped, and runs without
/// one copied whole.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut copied = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let short = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x09 => b't',
            0x0A => b'n',
            0x0C => b'f',
            0x0D => b'r',
            0x00..=0x1F => 0,
            _ => continue,
        };
        out.extend_from_slice(bytes.get(copied..index).unwrap_or_default());
        copied = index + 1;
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let (high, low) = (usize::from(byte >> 4), usize::from(byte & 0xF));
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[high], HEX[low]]);
        }
    }
    out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
}

/// Whether one of the eight bytes of `word` is a control character, `"`
/// or `\` (the bit tricks of "Bit Twiddling Hacks": a byte below `n`, a
/// zero byte after an exclusive or; exact as a yes or no).
fn needs_escape(word: u64) -> bool {
    escapes(word) != 0
}

/// The high bit of each byte of `word` (read little-endian) that is a
/// control character, `"` or `\\`. A flag can be wrong only above a true
/// one (a borrow runs upwards), so the lowest flag is exact: where the
/// first such byte is.
fn escapes(word: u64) -> u64 {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    control | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')))
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

    #[test]
    fn writes_the_bytes_serde_json_writes() {
        let cases = [
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": "42", "n": [1, -3, 2.5, 1e300, 0.1, 18446744073709551615u64, -0.0],
                "t": true, "f": false, "z": null, "empty": {}, "none": [],
                "name": {"givenName": "Jos\u{e9} \u{1F600}"},
            }),
            // Every control character, in whole words and in the tail.
            Value::from((0u8..0x20).map(char::from).collect::<String>()),
            Value::from("\"quoted\" and \\back\\slashed, \u{7f} is not escaped"),
            Value::from("0123456\"89abcde\\ghijklm\n"),
            Value::from("é\u{1}é\u{1f}"),
            Value::from(""),
            serde_json::json!({"\"key\"\n": "\t"}),
        ];
        for value in cases {
            let theirs = serde_json::to_vec(&value).unwrap();
            assert_eq!(
                String::from_utf8(to_vec(&value)).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }

    #[test]
    fn a_word_needs_escaping_exactly_when_one_of_its_bytes_does() {
        let plain = *b"abcdefgh";
        assert!(!needs_escape(u64::from_le_bytes(plain)));
        for at in 0..8 {
            for byte in 0..=u8::MAX {
                let mut word = plain;
                word[at] = byte;
                let escaped = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(
                    needs_escape(u64::from_le_bytes(word)),
                    escaped,
                    "{byte:#x} at {at}"
                );
            }
        }
    }

    #[test]
    fn an_escape_is_found_at_any_place_in_a_text_of_any_length() {
        for length in 0..=24 {
            let plain = vec![b'x'; length];
            assert!(!has_escape(&plain), "{length}");
            for at in 0..length {
                for byte in [b'"', b'\\', 0x00, 0x1F] {
                    let mut text = plain.clone();
                    text[at] = byte;
                    assert!(has_escape(&text), "{byte:#x} at {at} of {length}");
                }
            }
        }
    }

    /// Text with what JSON escapes in it more often than chance would.
    fn text() -> impl Strategy<Value = String> {
        let character = prop_oneof![
            any::<char>(),
            prop::sample::select(vec!['"', '\\', '\n', '\u{0}', '\u{1f}', '\u{7f}', 'a']),
        ];
        prop::collection::vec(character, 0..40).prop_map(String::from_iter)
    }

    fn json() -> impl Strategy<Value = Value> {
        json_with_keys(text().boxed())
    }

    /// Any JSON value, its objects' keys drawn from `keys` (few and short
    /// ones make sibling objects share keys, and repeat them).
    pub(super) fn json_with_keys(
        keys: impl Strategy<Value = String> + Clone + 'static,
    ) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((keys.clone(), inner), 0..8)
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
        fn any_value_is_written_as_serde_json_writes_it(value in json()) {
            prop_assert_eq!(to_vec(&value), serde_json::to_vec(&value).unwrap());
        }

        #[test]
        fn any_bytes_read_as_serde_json_reads_them(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let (ours, serdes) = both(&bytes);
            prop_assert_eq!(ours, serdes);
        }
    }
}
