//! A JSON value whose parts may be borrowed from other values: a resource
//! built from an upstream record lends the record's strings instead of
//! copying each into a map of its own, and is written out as it stands.
//! Objects are lists of members in insertion order, with the insertion
//! rules of `serde_json::Map` (with `preserve_order`): a key already there
//! keeps its place and takes the new value. So [`Tree::into_value`] gives
//! the value the same inserts into a `Map` give, and [`write_tree`] the
//! bytes [`super::to_vec`] writes of it.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{write_array, write_object, write_str, write_value};

/// A JSON value, whole or in parts lent by others.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree<'a> {
    /// A value another holds (a field of an upstream record), lent whole.
    Borrowed(&'a Value),
    /// A value made for this tree (a converted type), or given to it.
    Owned(Value),
    /// A string, lent (an id, a schema URN) or made (a link, a version).
    Text(Cow<'a, str>),
    Array(Vec<Tree<'a>>),
    Object(Members<'a>),
}

/// An object's members, in insertion order, each key once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Members<'a>(Vec<(Cow<'a, str>, Tree<'a>)>);

impl<'a> Members<'a> {
    pub fn with_capacity(capacity: usize) -> Self {
        Members(Vec::with_capacity(capacity))
    }

    /// As `Map::insert`: a key already there keeps its place.
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: Tree<'a>) {
        let key = key.into();
        match self.0.iter_mut().find(|(held, _)| *held == key) {
            Some((_, held)) => *held = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Tree<'a>> {
        self.0.iter().find(|(held, _)| held == key).map(|(_, v)| v)
    }

    /// [`Self::get`], looking first at position `near`; with the position.
    fn get_near(&self, key: &str, near: usize) -> Option<(usize, &Tree<'a>)> {
        if let Some((held, value)) = self.0.get(near)
            && held == key
        {
            return Some((near, value));
        }
        let at = self.0.iter().position(|(held, _)| held == key)?;
        Some((at, &self.0[at].1))
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Tree<'a>> {
        self.0
            .iter_mut()
            .find(|(held, _)| held == key)
            .map(|(_, v)| v)
    }

    /// The object at `key`, made (or replacing what is not an object).
    /// Always `Some`: it is an `Option` because the object is found again
    /// after it is put there, and a lost one is a `None`, not a panic.
    pub fn object_entry(&mut self, key: impl Into<Cow<'a, str>>) -> Option<&mut Members<'a>> {
        // A complex attribute or an extension: a few members each.
        let slot = self.entry(key.into(), || Tree::Object(Members::with_capacity(4)));
        if slot.as_object_mut().is_none() {
            *slot = Tree::Object(Members::default());
        }
        slot.as_object_mut()
    }

    /// The array at `key`, made (or replacing what is not an array).
    /// Always `Some`, as [`Self::object_entry`].
    pub fn array_entry(&mut self, key: impl Into<Cow<'a, str>>) -> Option<&mut Vec<Tree<'a>>> {
        // A multi-valued attribute a resource is built with: its primary element.
        let slot = self.entry(key.into(), || Tree::Array(Vec::with_capacity(1)));
        if slot.as_array_mut().is_none() {
            *slot = Tree::Array(Vec::new());
        }
        slot.as_array_mut()
    }

    fn entry(&mut self, key: Cow<'a, str>, make: impl FnOnce() -> Tree<'a>) -> &mut Tree<'a> {
        let at = match self.0.iter().position(|(held, _)| *held == key) {
            Some(at) => at,
            None => {
                self.0.push((key, make()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    /// Keeps the members `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Tree<'a>) -> bool) {
        self.0.retain_mut(|(key, value)| keep(key, value));
    }

    /// Members whose keys the caller has made unique (a reader that has
    /// already dropped a repeated key's earlier values).
    pub(super) fn from_unique(members: Vec<(Cow<'a, str>, Tree<'a>)>) -> Self {
        Members(members)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tree<'a>)> {
        self.0.iter().map(|(key, value)| (&**key, value))
    }

    pub fn into_map(self) -> Map<String, Value> {
        let mut map = Map::with_capacity(self.0.len());
        for (key, value) in self.0 {
            map.insert(key.into_owned(), value.into_value());
        }
        map
    }
}

impl<'a> Tree<'a> {
    /// Its members, if it is an object: one lent whole is taken apart
    /// (each member still lent) so that it can be changed.
    pub fn as_object_mut(&mut self) -> Option<&mut Members<'a>> {
        let members = match self {
            Tree::Object(members) => return Some(members),
            Tree::Borrowed(Value::Object(map)) => Members(
                map.iter()
                    .map(|(key, value)| (Cow::Borrowed(key.as_str()), Tree::Borrowed(value)))
                    .collect(),
            ),
            Tree::Owned(Value::Object(map)) => Members(
                std::mem::take(map)
                    .into_iter()
                    .map(|(key, value)| (Cow::Owned(key), Tree::Owned(value)))
                    .collect(),
            ),
            _ => return None,
        };
        *self = Tree::Object(members);
        match self {
            Tree::Object(members) => Some(members),
            _ => None,
        }
    }

    /// Its elements, if it is an array, taken apart as objects are.
    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Tree<'a>>> {
        let items = match self {
            Tree::Array(items) => return Some(items),
            Tree::Borrowed(Value::Array(items)) => items.iter().map(Tree::Borrowed).collect(),
            Tree::Owned(Value::Array(items)) => {
                std::mem::take(items).into_iter().map(Tree::Owned).collect()
            }
            _ => return None,
        };
        *self = Tree::Array(items);
        match self {
            Tree::Array(items) => Some(items),
            _ => None,
        }
    }

    /// A read-only look at it.
    pub fn view(&self) -> View<'_> {
        View::Tree(self)
    }

    pub fn into_value(self) -> Value {
        match self {
            Tree::Borrowed(value) => value.clone(),
            Tree::Owned(value) => value,
            Tree::Text(text) => Value::String(text.into_owned()),
            Tree::Array(items) => Value::Array(items.into_iter().map(Tree::into_value).collect()),
            Tree::Object(members) => Value::Object(members.into_map()),
        }
    }
}

/// Appends the compact JSON text of `tree`: [`super::to_vec`]'s bytes of
/// [`Tree::into_value`], without making the value.
pub fn write_tree(out: &mut Vec<u8>, tree: &Tree<'_>) {
    match tree {
        Tree::Borrowed(value) => write_value(out, value),
        Tree::Owned(value) => write_value(out, value),
        Tree::Text(text) => write_str(out, text),
        Tree::Array(items) => write_array(out, items, write_tree),
        Tree::Object(members) => write_object(out, members.iter(), write_tree),
    }
}

/// A read-only look into a [`Tree`] or a `Value`: the filter evaluator and
/// the scope check read resources of either kind through it.
#[derive(Debug, Clone, Copy)]
pub enum View<'t> {
    Tree(&'t Tree<'t>),
    Value(&'t Value),
}

impl<'t> View<'t> {
    pub fn get(self, key: &str) -> Option<View<'t>> {
        match self {
            View::Value(value) | View::Tree(&Tree::Borrowed(value)) => member(value, key),
            View::Tree(Tree::Owned(value)) => member(value, key),
            View::Tree(Tree::Object(members)) => members.get(key).map(View::Tree),
            View::Tree(Tree::Text(_) | Tree::Array(_)) => None,
        }
    }

    /// [`Self::get`], looking first at position `near` of an object's
    /// members: the records of a page share one shape, so a mapping's field
    /// is where it was in the last. Returns where the key was found (`near`
    /// where that is not known: a large object is hashed).
    pub fn get_near(self, key: &str, near: usize) -> Option<(View<'t>, usize)> {
        match self {
            View::Value(value) | View::Tree(&Tree::Borrowed(value)) => {
                member_near(value, key, near)
            }
            View::Tree(Tree::Owned(value)) => member_near(value, key, near),
            View::Tree(Tree::Object(members)) => members
                .get_near(key, near)
                .map(|(at, value)| (View::Tree(value), at)),
            View::Tree(Tree::Text(_) | Tree::Array(_)) => None,
        }
    }

    /// The value a JSON pointer (RFC 6901) names in it, as
    /// `Value::pointer` finds it.
    pub fn pointer(self, pointer: &str) -> Option<View<'t>> {
        if pointer.is_empty() {
            return Some(self);
        }
        let tokens = pointer.strip_prefix('/')?;
        tokens.split('/').try_fold(self, |at, token| {
            let token = token.replace("~1", "/").replace("~0", "~");
            if at.is_array() {
                // As serde_json: no sign, no leading zero.
                if token.starts_with('+') || (token.len() > 1 && token.starts_with('0')) {
                    return None;
                }
                let index = token.parse::<usize>().ok()?;
                at.elements().nth(index)
            } else {
                at.get(&token)
            }
        })
    }

    pub fn is_null(self) -> bool {
        matches!(self.scalar(), Scalar::Null)
    }

    /// A copy of the value it shows.
    pub fn to_value(self) -> Value {
        match self {
            View::Value(value) => value.clone(),
            View::Tree(tree) => tree.clone().into_value(),
        }
    }

    /// Whether it shows the value `other` is (objects equal whatever the
    /// order of their keys, as `Value`'s equality has them).
    pub fn equals(self, other: &Value) -> bool {
        if let Some(value) = self.as_value() {
            return value == other;
        }
        match (self, other) {
            (View::Tree(Tree::Text(text)), Value::String(other)) => text == other,
            (View::Tree(Tree::Array(items)), Value::Array(others)) => {
                items.len() == others.len()
                    && items.iter().zip(others).all(|(a, b)| a.view().equals(b))
            }
            (View::Tree(Tree::Object(members)), Value::Object(others)) => {
                members.len() == others.len()
                    && members
                        .iter()
                        .all(|(key, a)| others.get(key).is_some_and(|b| a.view().equals(b)))
            }
            _ => false,
        }
    }

    pub fn as_str(self) -> Option<&'t str> {
        match self {
            View::Value(value) | View::Tree(&Tree::Borrowed(value)) => value.as_str(),
            View::Tree(Tree::Owned(value)) => value.as_str(),
            View::Tree(Tree::Text(text)) => Some(text),
            View::Tree(Tree::Array(_) | Tree::Object(_)) => None,
        }
    }

    /// Its members, in order, if it is an object, else none.
    pub fn members(self) -> impl Iterator<Item = (&'t str, View<'t>)> {
        let (trees, values) = match self {
            View::Tree(Tree::Object(members)) => (Some(members), None),
            _ => (None, self.as_value().and_then(Value::as_object)),
        };
        let trees = trees.into_iter().flat_map(|members| members.iter());
        let values = values.into_iter().flatten();
        trees
            .map(|(key, value)| (key, View::Tree(value)))
            .chain(values.map(|(key, value)| (key.as_str(), View::Value(value))))
    }

    /// Its elements if it is an array, else none.
    pub fn elements(self) -> impl Iterator<Item = View<'t>> {
        let (trees, values): (&[Tree<'t>], &[Value]) = match self {
            View::Value(Value::Array(items)) | View::Tree(&Tree::Borrowed(Value::Array(items))) => {
                (&[], items)
            }
            View::Tree(Tree::Owned(Value::Array(items))) => (&[], items),
            View::Tree(Tree::Array(items)) => (items, &[]),
            _ => (&[], &[]),
        };
        trees
            .iter()
            .map(View::Tree)
            .chain(values.iter().map(View::Value))
    }
}

/// A value that is not an array or an object, as a comparison reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'t> {
    Null,
    Bool(bool),
    Number(&'t serde_json::Number),
    Str(&'t str),
    /// An array or an object.
    Composite,
}

impl<'t> View<'t> {
    /// The value it is, where it is one whole (not a tree of parts).
    pub fn as_value(self) -> Option<&'t Value> {
        match self {
            View::Value(value) | View::Tree(&Tree::Borrowed(value)) => Some(value),
            View::Tree(Tree::Owned(value)) => Some(value),
            View::Tree(Tree::Text(_) | Tree::Array(_) | Tree::Object(_)) => None,
        }
    }

    /// The member `key`, else the first whose key matches it in any case
    /// (SCIM names are case-insensitive).
    pub fn get_ci(self, key: &str) -> Option<View<'t>> {
        if let Some(Value::Object(map)) = self.as_value() {
            return map
                .get(key)
                .or_else(|| {
                    map.iter()
                        .find(|(held, _)| held.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                })
                .map(View::Value);
        }
        let View::Tree(Tree::Object(members)) = self else {
            return None;
        };
        members
            .get(key)
            .or_else(|| {
                members
                    .iter()
                    .find(|(held, _)| held.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
            .map(View::Tree)
    }

    pub fn is_array(self) -> bool {
        matches!(self, View::Tree(Tree::Array(_))) || self.as_value().is_some_and(Value::is_array)
    }

    pub fn is_object(self) -> bool {
        matches!(self, View::Tree(Tree::Object(_))) || self.as_value().is_some_and(Value::is_object)
    }

    /// Whether it is an object without members.
    pub fn is_empty_object(self) -> bool {
        match self {
            View::Tree(Tree::Object(members)) => members.is_empty(),
            _ => self
                .as_value()
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty),
        }
    }

    pub fn scalar(self) -> Scalar<'t> {
        if let View::Tree(Tree::Text(text)) = self {
            return Scalar::Str(text);
        }
        match self.as_value() {
            Some(Value::Null) => Scalar::Null,
            Some(Value::Bool(b)) => Scalar::Bool(*b),
            Some(Value::Number(n)) => Scalar::Number(n),
            Some(Value::String(s)) => Scalar::Str(s),
            _ => Scalar::Composite,
        }
    }
}

/// Objects of up to this many keys are searched in order rather than hashed.
const SEARCHED_IN_ORDER: usize = 32;

/// The member `key` of an object value. A small object is searched in
/// order: comparing keys, most of which differ in length, costs less than
/// hashing the one looked for (SipHash), and every read of a record looks
/// up each mapped field.
fn member<'t>(value: &'t Value, key: &str) -> Option<View<'t>> {
    match value {
        Value::Object(map) if map.len() <= SEARCHED_IN_ORDER => map
            .iter()
            .find(|(held, _)| *held == key)
            .map(|(_, v)| View::Value(v)),
        value => value.get(key).map(View::Value),
    }
}

/// [`member`], looking first at position `near`.
fn member_near<'t>(value: &'t Value, key: &str, near: usize) -> Option<(View<'t>, usize)> {
    match value {
        Value::Object(map) if map.len() <= SEARCHED_IN_ORDER => {
            if let Some((held, found)) = map.iter().nth(near)
                && held == key
            {
                return Some((View::Value(found), near));
            }
            map.iter()
                .enumerate()
                .find(|(_, (held, _))| *held == key)
                .map(|(at, (_, found))| (View::Value(found), at))
        }
        value => value.get(key).map(|found| (View::Value(found), near)),
    }
}

impl<'t> From<&'t Value> for View<'t> {
    fn from(value: &'t Value) -> Self {
        View::Value(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    use crate::json::to_vec;

    /// One change, made to a `Map` and to `Members` alike.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, Value),
        /// The object at the key (made, or replacing another value), and
        /// an insert into it.
        IntoObject(String, String, Value),
        /// The array at the key, an object pushed when it is empty, and an
        /// insert into its first element if that is an object.
        IntoFirstElement(String, String, Value),
    }

    fn apply_to_map(map: &mut Map<String, Value>, op: &Op) {
        match op {
            Op::Insert(key, value) => {
                map.insert(key.clone(), value.clone());
            }
            Op::IntoObject(key, sub, value) => {
                let slot = map.entry(key.clone()).or_insert_with(|| json!({}));
                if !slot.is_object() {
                    *slot = json!({});
                }
                if let Some(object) = slot.as_object_mut() {
                    object.insert(sub.clone(), value.clone());
                }
            }
            Op::IntoFirstElement(key, sub, value) => {
                let slot = map.entry(key.clone()).or_insert_with(|| json!([]));
                if !slot.is_array() {
                    *slot = json!([]);
                }
                let Value::Array(items) = slot else { return };
                if items.is_empty() {
                    items.push(json!({}));
                }
                if let Some(Value::Object(first)) = items.first_mut() {
                    first.insert(sub.clone(), value.clone());
                }
            }
        }
    }

    /// The same change on `Members`, each value lent (`lend`) or owned.
    fn apply_to_members<'a>(members: &mut Members<'a>, op: &'a Op, lend: bool) {
        let tree = |value: &'a Value| match lend {
            true => Tree::Borrowed(value),
            false => Tree::Owned(value.clone()),
        };
        match op {
            Op::Insert(key, value) => members.insert(key.as_str(), tree(value)),
            Op::IntoObject(key, sub, value) => {
                if let Some(object) = members.object_entry(key.as_str()) {
                    object.insert(sub.as_str(), tree(value));
                }
            }
            Op::IntoFirstElement(key, sub, value) => {
                let Some(items) = members.array_entry(key.as_str()) else {
                    return;
                };
                if items.is_empty() {
                    items.push(Tree::Object(Members::default()));
                }
                if let Some(first) = items.first_mut().and_then(Tree::as_object_mut) {
                    first.insert(sub.as_str(), tree(value));
                }
            }
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        crate::json::tests::json_with_keys("[a-c]")
    }

    fn any_op() -> impl Strategy<Value = Op> {
        let key = "[a-d]";
        prop_oneof![
            (key, any_value()).prop_map(|(k, v)| Op::Insert(k, v)),
            (key, key, any_value()).prop_map(|(k, s, v)| Op::IntoObject(k, s, v)),
            (key, key, any_value()).prop_map(|(k, s, v)| Op::IntoFirstElement(k, s, v)),
        ]
    }

    proptest! {
        /// Whatever the inserts, the tree is the map they make and writes
        /// its bytes, whether its values are lent or owned.
        #[test]
        fn a_tree_is_the_map_the_same_inserts_make(
            ops in prop::collection::vec(any_op(), 0..12),
            lend in any::<bool>(),
        ) {
            let mut map = Map::new();
            let mut members = Members::default();
            for op in &ops {
                apply_to_map(&mut map, op);
                apply_to_members(&mut members, op, lend);
            }
            let expected = Value::Object(map);
            let tree = Tree::Object(members);
            let mut written = Vec::new();
            write_tree(&mut written, &tree);
            prop_assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(to_vec(&expected)).unwrap());
            prop_assert_eq!(tree.into_value(), expected);
        }

        /// An object's members, seen in a value or in the tree read from
        /// its text, are its keys in order with its values; anything else
        /// has none.
        #[test]
        fn the_members_of_a_view_are_those_of_the_value(value in any_value()) {
            let text = value.to_string();
            let read = crate::json::tree_from_str(&text).unwrap();
            // The value as read back (a float's text need not round-trip).
            let value = crate::json::from_bytes(text.as_bytes()).unwrap();
            let expected: Vec<(&str, Value)> = value
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, value)| (key.as_str(), value.clone()))
                .collect();
            for view in [View::Value(&value), read.view()] {
                let members: Vec<(&str, Value)> =
                    view.members().map(|(key, value)| (key, value.to_value())).collect();
                prop_assert_eq!(&members, &expected);
            }
        }

        /// A value lent whole and then taken apart is still that value.
        #[test]
        fn a_lent_value_taken_apart_is_unchanged(value in any_value()) {
            let mut lent = Tree::Borrowed(&value);
            lent.as_object_mut();
            lent.as_array_mut();
            let mut owned = Tree::Owned(value.clone());
            owned.as_object_mut();
            owned.as_array_mut();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            write_tree(&mut a, &lent);
            write_tree(&mut b, &owned);
            prop_assert_eq!(&a, &to_vec(&value));
            prop_assert_eq!(&b, &a);
            prop_assert_eq!(lent.into_value(), value.clone());
            prop_assert_eq!(owned.into_value(), value);
        }
    }

    #[test]
    fn a_pointer_finds_in_a_view_what_it_finds_in_the_value() {
        let value = json!({"data": [{"id": 1, "a/b": {"~k": "x"}}, "two"], "": {"": 3}, "0": 4});
        let text = value.to_string();
        let read = crate::json::tree_from_str(&text).unwrap();
        let pointers = [
            "",
            "/data",
            "/data/0",
            "/data/1",
            "/data/2",
            "/data/01",
            "/data/+1",
            "/data/-",
            "/data/0/a~1b/~0k",
            "/data/0/a/b",
            "/",
            "//",
            "/0",
            "/0/x",
            "data",
            "/missing",
        ];
        for pointer in pointers {
            let expected = value.pointer(pointer);
            for view in [View::from(&value), read.view()] {
                assert_eq!(
                    view.pointer(pointer).map(View::to_value).as_ref(),
                    expected,
                    "{pointer}"
                );
            }
        }
    }

    #[test]
    fn a_view_equals_the_value_it_shows_whatever_its_keys_order() {
        let text = r#"{"a": [1, "x", {"b": null}], "c": true}"#;
        let read = crate::json::tree_from_str(text).unwrap();
        assert!(
            read.view()
                .equals(&json!({"c": true, "a": [1, "x", {"b": null}]}))
        );
        for other in [
            json!({"a": [1, "x", {"b": null}]}),
            json!({"a": [1, "X", {"b": null}], "c": true}),
            json!({"a": [1, "x", {"b": null}, 2], "c": true}),
            json!({"a": [1, "x", {"b": 0}], "c": true}),
            json!([1]),
        ] {
            assert!(!read.view().equals(&other), "{other}");
        }
    }

    #[test]
    fn a_view_reads_trees_and_values_alike() {
        let record = json!({"emails": [{"value": "a@x"}, {"value": "b@x"}], "userName": "u"});
        let mut members = Members::default();
        members.insert("userName", Tree::Text("u".into()));
        let emails = members.array_entry("emails").unwrap();
        emails.push(Tree::Borrowed(&record["emails"][0]));
        let mut second = Members::default();
        second.insert("value", Tree::Text("b@x".into()));
        emails.push(Tree::Object(second));
        let tree = Tree::Object(members);
        for view in [tree.view(), View::from(&record)] {
            assert_eq!(view.get("userName").and_then(View::as_str), Some("u"));
            let values: Vec<_> = view
                .get("emails")
                .into_iter()
                .flat_map(View::elements)
                .filter_map(|email| email.get("value").and_then(View::as_str))
                .collect();
            assert_eq!(values, ["a@x", "b@x"]);
            assert!(view.get("absent").is_none());
            assert_eq!(view.get("userName").map(|v| v.elements().count()), Some(0));
        }
    }
}
