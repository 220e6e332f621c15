//! What `to_scim` builds a resource into: a `serde_json` map, which copies
//! each value it is given, for a resource the gateway goes on working
//! with; or a [`Members`] tree, which lends them, for one that is only
//! written out. One transform builds both, so they cannot disagree.

use std::borrow::Cow;

use serde_json::{Map, Value};

use scimgate_scim::json::{Members, Tree, View};

/// An object under construction, and the values it holds.
pub(super) trait Object<'r>: Sized {
    type Node;

    fn with_capacity(capacity: usize) -> Self;
    /// A copy of a map of the mapping's (an element's fixed sub-attributes).
    fn copy_of(map: &'r Map<String, Value>) -> Self;
    /// What the record (or the mapping) holds, lent where the object can.
    fn lend(value: View<'r>) -> Self::Node;
    fn own(value: Value) -> Self::Node;
    fn text(text: Cow<'r, str>) -> Self::Node;
    fn list(items: Vec<Self::Node>) -> Self::Node;
    fn node(self) -> Self::Node;
    fn is_empty(&self) -> bool;
    /// As `Map::insert`: a key already there keeps its place.
    fn insert(&mut self, key: &'r str, value: Self::Node);
    /// The object at `key`, made (or replacing what is not an object).
    fn object_entry(&mut self, key: &'r str) -> Option<&mut Self>;
    /// The first element of the array at `key` (made, or replacing what is
    /// not an array), `element` pushed if it is empty; `None` if that first
    /// element is not an object.
    fn first_element(&mut self, key: &'r str, element: impl FnOnce() -> Self) -> Option<&mut Self>;
}

impl<'r> Object<'r> for Map<String, Value> {
    type Node = Value;

    fn with_capacity(capacity: usize) -> Self {
        Map::with_capacity(capacity)
    }

    fn copy_of(map: &'r Map<String, Value>) -> Self {
        map.clone()
    }

    fn lend(value: View<'r>) -> Value {
        value.to_value()
    }

    fn own(value: Value) -> Value {
        value
    }

    fn text(text: Cow<'r, str>) -> Value {
        Value::String(text.into_owned())
    }

    fn list(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    fn node(self) -> Value {
        Value::Object(self)
    }

    fn is_empty(&self) -> bool {
        Map::is_empty(self)
    }

    fn insert(&mut self, key: &'r str, value: Value) {
        Map::insert(self, key.to_owned(), value);
    }

    fn object_entry(&mut self, key: &'r str) -> Option<&mut Self> {
        // One look-up (an extension's key is a long URN to hash), not three.
        let slot = self.entry(key).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        slot.as_object_mut()
    }

    fn first_element(&mut self, key: &'r str, element: impl FnOnce() -> Self) -> Option<&mut Self> {
        let list = self.entry(key).or_insert_with(|| Value::Array(Vec::new()));
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        let items = list.as_array_mut()?;
        if items.is_empty() {
            items.push(Value::Object(element()));
        }
        items.first_mut()?.as_object_mut()
    }
}

impl<'r> Object<'r> for Members<'r> {
    type Node = Tree<'r>;

    fn with_capacity(capacity: usize) -> Self {
        Members::with_capacity(capacity)
    }

    fn copy_of(map: &'r Map<String, Value>) -> Self {
        let mut members = Members::with_capacity(map.len() + 1);
        for (key, value) in map {
            members.insert(key.as_str(), Tree::Borrowed(value));
        }
        members
    }

    fn lend(value: View<'r>) -> Tree<'r> {
        match value {
            View::Value(value) => Tree::Borrowed(value),
            // A part of a record read from text: a string slice of it, a
            // number, or (rarely) a whole object, copied as a tree.
            View::Tree(tree) => tree.clone(),
        }
    }

    fn own(value: Value) -> Tree<'r> {
        Tree::Owned(value)
    }

    fn text(text: Cow<'r, str>) -> Tree<'r> {
        Tree::Text(text)
    }

    fn list(items: Vec<Tree<'r>>) -> Tree<'r> {
        Tree::Array(items)
    }

    fn node(self) -> Tree<'r> {
        Tree::Object(self)
    }

    fn is_empty(&self) -> bool {
        Members::is_empty(self)
    }

    fn insert(&mut self, key: &'r str, value: Tree<'r>) {
        Members::insert(self, key, value);
    }

    fn object_entry(&mut self, key: &'r str) -> Option<&mut Self> {
        Members::object_entry(self, key)
    }

    fn first_element(&mut self, key: &'r str, element: impl FnOnce() -> Self) -> Option<&mut Self> {
        let items = self.array_entry(key)?;
        if items.is_empty() {
            items.push(Tree::Object(element()));
        }
        items.first_mut()?.as_object_mut()
    }
}
