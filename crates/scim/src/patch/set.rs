//! add and replace (RFC 7644 §3.5.2.1, §3.5.2.3): setting whole attributes,
//! sub-attributes, extension objects and filter-selected elements.

use serde_json::{Map, Value};

use super::{
    Location, Op, PatchOpKind, Target, canonical_sub, prune, remove_ci, set_field, slot_key,
};
use crate::filter::{CompareOp, Filter, matches_element};
use crate::patch::PatchError;
use crate::path::{AttrPath, PatchPath};
use crate::schema::{AttrType, AttributeDef, describe, get_ci};

impl<'s> Op<'s> {
    /// Each key of a path-less value is itself an attribute path.
    pub(super) fn set_pathless(
        &self,
        obj: &mut Map<String, Value>,
        fields: &Map<String, Value>,
    ) -> Result<(), PatchError> {
        for (key, value) in fields {
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if key.eq_ignore_ascii_case(self.schema.core.id) {
                let Value::Object(inner) = value else {
                    return Err(
                        self.invalid_value(format!("`{key}` must be an object of core attributes"))
                    );
                };
                self.set_pathless(obj, inner)?;
                continue;
            }
            let path = AttrPath::parse(key).map_err(|e| self.bad_path(e))?;
            match self.locate(obj, &path) {
                Target::Extension { key } => self.set_extension(obj, &key, value)?,
                // `"urn:acme:2.0:User": {…}`: an unknown extension sent whole.
                Target::Attribute(Location {
                    attr: None,
                    ext: Some(_),
                    ..
                }) if value.is_object() && path.as_urn().is_some() => {
                    self.set_extension(obj, key, value)?;
                }
                Target::Attribute(loc) => {
                    self.change(obj, &loc, |c| {
                        self.set_in(c, &loc, &PatchPath::attribute(path.clone()), value)
                    })?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn set_path(
        &self,
        obj: &mut Map<String, Value>,
        path: &PatchPath,
        value: &Value,
    ) -> Result<(), PatchError> {
        match self.locate(obj, &path.attr) {
            Target::Extension { .. } if path.value_filter.is_some() => {
                Err(self.invalid_path(format!(
                    "`{}` names an extension, which has no elements for a filter to select",
                    path.attr
                )))
            }
            Target::Extension { key } => self.set_extension(obj, &key, value),
            Target::Attribute(loc) => self.change(obj, &loc, |c| self.set_in(c, &loc, path, value)),
        }
    }

    /// Merges an object of extension attributes into the extension `key`.
    fn set_extension(
        &self,
        obj: &mut Map<String, Value>,
        key: &str,
        value: &Value,
    ) -> Result<(), PatchError> {
        let fields = match value {
            Value::Null => {
                remove_ci(obj, key);
                return Ok(());
            }
            Value::Object(fields) => fields,
            other => {
                return Err(self.invalid_value(format!(
                    "`{key}` is an extension; its value must be an object of its attributes, found {}",
                    describe(other)
                )));
            }
        };
        for (name, value) in fields {
            let mut path = AttrPath::parse(name).map_err(|e| self.bad_path(e))?;
            if path.uri.is_none() {
                path.uri = Some(key.to_owned());
            }
            let Target::Attribute(loc) = self.locate(obj, &path) else {
                return Err(
                    self.invalid_path(format!("`{name}` inside `{key}` names another extension"))
                );
            };
            self.change(obj, &loc, |c| {
                self.set_in(c, &loc, &PatchPath::attribute(path.clone()), value)
            })?;
        }
        Ok(())
    }

    fn set_in(
        &self,
        container: &mut Map<String, Value>,
        loc: &Location<'s>,
        path: &PatchPath,
        value: &Value,
    ) -> Result<(), PatchError> {
        let sub = path
            .attr
            .sub
            .as_deref()
            .or(path.sub_attr.as_deref())
            .map(|s| canonical_sub(loc.attr, s));
        let result = match (&path.value_filter, &sub) {
            (Some(filter), sub) => self.set_filtered(container, loc, filter, sub.as_deref(), value),
            (None, Some(sub)) => self.set_sub(container, loc, sub, value),
            (None, None) => self.set_whole(container, loc, value),
        };
        prune(container, &loc.name);
        result
    }

    fn set_whole(
        &self,
        container: &mut Map<String, Value>,
        loc: &Location<'s>,
        value: &Value,
    ) -> Result<(), PatchError> {
        let key = slot_key(container, &loc.name);
        if value.is_null() {
            container.shift_remove(&key);
            return Ok(());
        }
        let existing = container.get(&key);
        let (multi, complex) = match loc.attr {
            Some(a) => (a.multi_valued, a.kind == AttrType::Complex),
            None => (
                matches!(existing, Some(Value::Array(_))) || value.is_array(),
                matches!(existing, Some(Value::Object(_))) && value.is_object(),
            ),
        };
        if multi {
            let incoming: Vec<Value> = match value {
                Value::Array(items) => items.iter().filter(|v| !v.is_null()).cloned().collect(),
                single => vec![single.clone()],
            };
            if self.kind == PatchOpKind::Replace {
                container.insert(key.clone(), Value::Array(Vec::new()));
            }
            let items = self.array_slot(container, &key, loc)?;
            let mut touched = Vec::new();
            for item in incoming {
                if !items.contains(&item) {
                    items.push(item);
                    touched.push(items.len() - 1);
                }
            }
            settle_primary(items, &touched);
        } else if complex {
            let has_value_sub = loc.attr.and_then(|a| a.sub_attribute("value")).is_some();
            let fields = match value {
                Value::Object(fields) => fields.clone(),
                // Entra ID sends the enterprise `manager` as a bare id string:
                // for a complex attribute with a `value` sub-attribute, a
                // simple value means that sub-attribute.
                Value::String(_) | Value::Number(_) | Value::Bool(_) if has_value_sub => {
                    Map::from_iter([("value".to_owned(), value.clone())])
                }
                _ => {
                    return Err(self.invalid_value(format!(
                        "`{}` is a complex attribute; expected an object of sub-attributes, found {}",
                        loc.label(),
                        describe(value)
                    )));
                }
            };
            let target = self.object_slot(container, &key, loc)?;
            for (name, v) in &fields {
                set_field(target, &canonical_sub(loc.attr, name), v);
            }
        } else {
            container.insert(key, value.clone());
        }
        Ok(())
    }

    /// `name.givenName` or, without a filter, `emails.value` (every element).
    fn set_sub(
        &self,
        container: &mut Map<String, Value>,
        loc: &Location<'s>,
        sub: &str,
        value: &Value,
    ) -> Result<(), PatchError> {
        let key = slot_key(container, &loc.name);
        let multi = loc.attr.map(|a| a.multi_valued);
        match container.get_mut(&key) {
            None | Some(Value::Null) => {
                if value.is_null() {
                    return Ok(());
                }
                let mut element = Map::new();
                element.insert(sub.to_owned(), value.clone());
                let element = Value::Object(element);
                let new = if multi == Some(true) {
                    Value::Array(vec![element])
                } else {
                    element
                };
                container.insert(key, new);
            }
            Some(Value::Object(fields)) => set_field(fields, sub, value),
            Some(Value::Array(items)) => {
                if sub == "primary" && value == &Value::Bool(true) && items.len() > 1 {
                    return Err(self.invalid_value(format!(
                        "cannot make every element of `{0}` primary; select one with a filter, e.g. \
                         `{0}[type eq \"work\"].primary`",
                        loc.label()
                    )));
                }
                if items.is_empty() && !value.is_null() {
                    items.push(Value::Object(Map::new()));
                }
                for item in items.iter_mut() {
                    let Value::Object(fields) = item else {
                        return Err(self.invalid_value(format!(
                            "`{}` holds {} among its elements, which has no sub-attribute `{sub}`",
                            loc.label(),
                            describe(item)
                        )));
                    };
                    set_field(fields, sub, value);
                }
            }
            Some(other) => {
                return Err(self.invalid_value(format!(
                    "`{}` holds {}, so it has no sub-attribute `{sub}`",
                    loc.label(),
                    describe(other)
                )));
            }
        }
        Ok(())
    }

    /// `emails[type eq "work"]` or `emails[type eq "work"].value`: updates the
    /// matching elements, or creates one from the filter's `eq` conditions.
    fn set_filtered(
        &self,
        container: &mut Map<String, Value>,
        loc: &Location<'s>,
        filter: &Filter,
        sub: Option<&str>,
        value: &Value,
    ) -> Result<(), PatchError> {
        self.check_filterable(loc)?;
        let key = slot_key(container, &loc.name);
        let items = self.array_slot(container, &key, loc)?;
        let matched: Vec<usize> = (0..items.len())
            .filter(|&i| {
                items
                    .get(i)
                    .is_some_and(|el| matches_element(filter, el, loc.attr))
            })
            .collect();
        let mut touched = Vec::new();
        if matched.is_empty() {
            if value.is_null() {
                return Ok(());
            }
            let Some(mut element) = element_from_filter(filter, loc.attr) else {
                return Err(self.no_target(format!(
                    "no element of `{}` matches [{filter}], and the filter cannot describe a new one \
                     (only `eq` conditions joined by `and` can)",
                    loc.label()
                )));
            };
            match sub {
                Some(sub) => set_field(&mut element, sub, value),
                None => self.merge_element(&mut element, loc, value)?,
            }
            items.push(Value::Object(element));
            touched.push(items.len() - 1);
        }
        for &i in &matched {
            let Some(Value::Object(element)) = items.get_mut(i) else {
                continue;
            };
            match sub {
                Some(sub) => set_field(element, sub, value),
                None if value.is_null() => element.clear(),
                None if self.kind == PatchOpKind::Replace => {
                    // RFC 7644 §3.5.2.3: matching values are replaced, not merged.
                    element.clear();
                    self.merge_element(element, loc, value)?;
                }
                None => self.merge_element(element, loc, value)?,
            }
            touched.push(i);
        }
        items.retain(|el| el.as_object().is_none_or(|o| !o.is_empty()));
        settle_primary(items, &touched);
        Ok(())
    }

    fn merge_element(
        &self,
        element: &mut Map<String, Value>,
        loc: &Location<'s>,
        value: &Value,
    ) -> Result<(), PatchError> {
        let Value::Object(fields) = value else {
            return Err(self.invalid_value(format!(
                "an element of `{}` must be an object of sub-attributes, found {}",
                loc.label(),
                describe(value)
            )));
        };
        for (name, v) in fields {
            set_field(element, &canonical_sub(loc.attr, name), v);
        }
        Ok(())
    }

    fn array_slot<'m>(
        &self,
        container: &'m mut Map<String, Value>,
        key: &str,
        loc: &Location<'s>,
    ) -> Result<&'m mut Vec<Value>, PatchError> {
        let slot = container.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::Array(Vec::new());
        }
        match slot {
            Value::Array(items) => Ok(items),
            other => Err(self.invalid_value(format!(
                "`{}` holds {}, not a list of values",
                loc.label(),
                describe(other)
            ))),
        }
    }

    fn object_slot<'m>(
        &self,
        container: &'m mut Map<String, Value>,
        key: &str,
        loc: &Location<'s>,
    ) -> Result<&'m mut Map<String, Value>, PatchError> {
        let slot = container.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(fields) => Ok(fields),
            other => Err(self.invalid_value(format!(
                "`{}` holds {}, not an object of sub-attributes",
                loc.label(),
                describe(other)
            ))),
        }
    }
}

/// The element a filter of `and`-ed `eq` conditions describes:
/// `type eq "work"` → `{"type": "work"}`.
fn element_from_filter(filter: &Filter, attr: Option<&AttributeDef>) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.uri.is_none() && path.sub.is_none() && !value.is_null() => {
            let mut element = Map::new();
            element.insert(canonical_sub(attr, &path.name), value.clone());
            Some(element)
        }
        Filter::And(left, right) => {
            let mut element = element_from_filter(left, attr)?;
            element.extend(element_from_filter(right, attr)?);
            Some(element)
        }
        _ => None,
    }
}

/// RFC 7643 §2.4: at most one element is primary. The last element this
/// operation made primary wins; siblings lose the flag.
fn settle_primary(items: &mut [Value], touched: &[usize]) {
    let is_primary = |el: &Value| {
        el.as_object()
            .and_then(|o| get_ci(o, "primary"))
            .is_some_and(|p| p == &Value::Bool(true))
    };
    let Some(&winner) = touched
        .iter()
        .rev()
        .find(|&&i| items.get(i).is_some_and(is_primary))
    else {
        return;
    };
    for (i, el) in items.iter_mut().enumerate() {
        if i != winner
            && is_primary(el)
            && let Some(fields) = el.as_object_mut()
        {
            fields.insert(slot_key(fields, "primary"), Value::Bool(false));
        }
    }
}
