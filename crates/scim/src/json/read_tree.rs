//! JSON text into a [`Tree`] that borrows the text: each key and string
//! without an escape is a slice of it, so reading an upstream record makes
//! no `String` per key and per string and hashes no key. A record only
//! read (mapped into a resource and written out) never needs more.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::Shapes;
use super::tree::{Members, Tree};

/// The value `text` holds, as a tree of its parts: the same value (keys in
/// the same order, a repeated key's last value in its first place), or the
/// same error, as [`super::from_bytes`] reads.
pub fn tree_from_str(text: &str) -> Result<Tree<'_>, serde_json::Error> {
    let shapes = Shapes::default();
    let mut reader = serde_json::Deserializer::from_str(text);
    let tree = Part {
        shapes: &shapes,
        depth: 0,
    }
    .deserialize(&mut reader)?;
    reader.end()?;
    Ok(tree)
}

/// One value of the text, `depth` arrays and objects down.
#[derive(Clone, Copy)]
struct Part<'s> {
    shapes: &'s Shapes,
    depth: usize,
}

impl Part<'_> {
    fn below(self) -> Self {
        Part {
            depth: self.depth + 1,
            ..self
        }
    }
}

impl<'de> DeserializeSeed<'de> for Part<'_> {
    type Value = Tree<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Tree<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

// As `from_bytes`'s visitor, strings lent where the text holds them as they are.
impl<'de> Visitor<'de> for Part<'_> {
    type Value = Tree<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Tree<'de>, E> {
        Ok(Tree::Owned(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Tree<'de>, E> {
        Ok(Tree::Owned(Value::Number(value.into())))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Tree<'de>, E> {
        Ok(Tree::Owned(Value::Number(value.into())))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Tree<'de>, E> {
        Ok(Tree::Owned(
            Number::from_f64(value).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Tree<'de>, E> {
        Ok(Tree::Text(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Tree<'de>, E> {
        Ok(Tree::Text(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Tree<'de>, E> {
        Ok(Tree::Text(Cow::Owned(value)))
    }

    fn visit_unit<E>(self) -> Result<Tree<'de>, E> {
        Ok(Tree::Owned(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Tree<'de>, A::Error> {
        let mut list = Vec::with_capacity(self.shapes.last(self.depth));
        while let Some(item) = items.next_element_seed(self.below())? {
            list.push(item);
        }
        self.shapes.note(self.depth, list.len());
        Ok(Tree::Array(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Tree<'de>, A::Error> {
        let mut read = Vec::with_capacity(self.shapes.last(self.depth));
        while let Some(key) = entries.next_key_seed(Key)? {
            let value = entries.next_value_seed(self.below())?;
            read.push((key, value));
        }
        self.shapes.note(self.depth, read.len());
        Ok(Tree::Object(without_repeats(read)))
    }
}

/// A key, lent where the text holds it as it is.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string key")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(value))
    }
}

/// Objects this large find a repeated key by hashing; smaller ones by
/// comparing, which costs less than hashing each key.
const COMPARED: usize = 32;

/// An object's members as read, each key once: a repeated key's last value
/// in its first place, as `serde_json::Map` keeps it. A repeat is looked
/// for in a way that stays linear in the object's size, for an upstream
/// that sends a huge one.
fn without_repeats<'a>(read: Vec<(Cow<'a, str>, Tree<'a>)>) -> Members<'a> {
    let repeats = if read.len() <= COMPARED {
        read.iter()
            .enumerate()
            .any(|(at, (key, _))| read[..at].iter().any(|(held, _)| held == key))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(read.len());
        !read.iter().all(|(key, _)| seen.insert(&**key))
    };
    if !repeats {
        return Members::from_unique(read);
    }
    let mut places: HashMap<Cow<'a, str>, usize> = HashMap::with_capacity(read.len());
    let mut kept: Vec<(Cow<'a, str>, Tree<'a>)> = Vec::with_capacity(read.len());
    for (key, value) in read {
        match places.get(&key) {
            Some(&at) => kept[at].1 = value,
            None => {
                places.insert(key.clone(), kept.len());
                kept.push((key, value));
            }
        }
    }
    Members::from_unique(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::json::{from_bytes, to_vec, write_tree};

    /// What both readers make of `text`, as values and as the bytes written
    /// of them (equal bytes: the same keys in the same order).
    fn both(
        text: &str,
    ) -> (
        Result<(Value, Vec<u8>), String>,
        Result<(Value, Vec<u8>), String>,
    ) {
        let tree = tree_from_str(text)
            .map(|tree| {
                let mut written = Vec::new();
                write_tree(&mut written, &tree);
                (tree.into_value(), written)
            })
            .map_err(|e| e.to_string());
        let value = from_bytes(text.as_bytes())
            .map(|value| {
                let written = to_vec(&value);
                (value, written)
            })
            .map_err(|e| e.to_string());
        (tree, value)
    }

    #[test]
    fn reads_what_from_bytes_reads_and_refuses_what_it_refuses() {
        let many: String = format!(
            "{{{}, \"k3\": \"again\"}}",
            (0..40)
                .map(|n| format!("\"k{n}\": {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let cases = [
            r#"{"a": "b", "n": [1, 2.5, -3, 1e400, 18446744073709551616], "t": true, "z": null}"#,
            "{\"name\": \"Jos\u{e9} \u{1F600}\", \"esc\": \"\\u00e9\\n\", \"k\\u0041\": 1}",
            r#"[{"id": 1, "b": 2, "a": 3}, {"a": 1}, {"z": 1, "y": 2, "x": 3, "w": 4}, {}]"#,
            r#"{"dup": 1, "other": 2, "dup": 3}"#,
            r#"{"dup": 1, "d\u0075p": 2}"#,
            &many,
            r#"[[[[[{"deep": {"deeper": [1]}}]]]]]"#,
            "  [ ]  ",
            "{\"a\": 1,}",
            "{\"a\": \"\\ud800\"}",
            "",
            "[1] [2]",
            "{\"a\" 1}",
            "\"text\"",
        ];
        for case in cases {
            let (tree, value) = both(case);
            assert_eq!(tree, value, "{case}");
        }
    }

    #[test]
    fn strings_without_escapes_are_lent_by_the_text() {
        let text = r#"{"login": "ada", "note": "a\nb"}"#;
        let tree = tree_from_str(text).unwrap();
        let Tree::Object(members) = &tree else {
            panic!("not an object: {tree:?}");
        };
        let lent: Vec<bool> = members
            .iter()
            .map(|(_, value)| matches!(value, Tree::Text(Cow::Borrowed(_))))
            .collect();
        assert_eq!(lent, [true, false]);
    }

    #[test]
    fn nesting_past_serde_jsons_limit_is_refused() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let (tree, value) = both(&deep);
        assert!(tree.is_err());
        assert_eq!(tree, value);
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[a-c\"\\\\\u{1}é/]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON text, and any repeat of a key in it, reads as
        /// `from_bytes` reads it.
        #[test]
        fn any_text_reads_as_from_bytes_reads_it(value in any_json(), pretty in any::<bool>()) {
            let text = match pretty {
                true => serde_json::to_string_pretty(&value).unwrap(),
                false => value.to_string(),
            };
            let (tree, read) = both(&text);
            prop_assert_eq!(tree, read);
            let repeated = format!("{{\"a\": 1, \"b\": {text}, \"a\": {text}}}");
            let (tree, read) = both(&repeated);
            prop_assert_eq!(tree, read);
        }

        /// Bytes that are not JSON are refused by both, never a panic.
        #[test]
        fn any_text_is_read_or_refused_alike(text in "[\\[\\]{}\":,a-c0-9 \\\\n-]{0,24}") {
            let (tree, read) = both(&text);
            prop_assert_eq!(tree.is_ok(), read.is_ok());
            if let (Ok(tree), Ok(read)) = (tree, read) {
                prop_assert_eq!(tree, read);
            }
        }
    }
}
