//! remove (RFC 7644 §3.5.2.2): attributes, sub-attributes, filter-selected
//! elements, and the elements listed in `value`.

use serde_json::{Map, Value};

use super::{Location, Op, PatchError, Target, canonical_sub, key_ci, prune, remove_ci};
use crate::filter::matches_element;
use crate::path::PatchPath;
use crate::schema::get_ci;

impl<'s> Op<'s> {
    pub(super) fn remove(
        &self,
        obj: &mut Map<String, Value>,
        path: &PatchPath,
        value: Option<&Value>,
    ) -> Result<(), PatchError> {
        match self.locate(obj, &path.attr) {
            Target::Extension { .. } if path.value_filter.is_some() => {
                Err(self.invalid_path(format!(
                    "`{}` names an extension, which has no elements for a filter to select",
                    path.attr
                )))
            }
            Target::Extension { key } => {
                remove_ci(obj, &key);
                Ok(())
            }
            Target::Attribute(loc) => {
                self.change(obj, &loc, |c| self.remove_in(c, &loc, path, value))
            }
        }
    }

    fn remove_in(
        &self,
        container: &mut Map<String, Value>,
        loc: &Location<'s>,
        path: &PatchPath,
        value: Option<&Value>,
    ) -> Result<(), PatchError> {
        let Some(key) = key_ci(container, &loc.name) else {
            // Nothing there: removing it is already done.
            return Ok(());
        };
        let sub = path
            .attr
            .sub
            .as_deref()
            .or(path.sub_attr.as_deref())
            .map(|s| canonical_sub(loc.attr, s));
        match (&path.value_filter, sub, container.get_mut(&key)) {
            // Entra: `{"op":"remove","path":"members","value":[{"value":"id"}]}`
            // removes the listed members, not all of them.
            (None, None, Some(Value::Array(items))) if value.is_some_and(|v| !v.is_null()) => {
                let listed = match value {
                    Some(Value::Array(listed)) => listed.as_slice(),
                    Some(single) => std::slice::from_ref(single),
                    None => &[],
                };
                let case_exact = loc
                    .attr
                    .and_then(|a| a.sub_attribute("value"))
                    .is_some_and(|d| d.case_exact);
                items.retain(|el| !listed.iter().any(|l| same_element(el, l, case_exact)));
            }
            (None, None, _) => {
                container.shift_remove(&key);
            }
            (None, Some(sub), Some(Value::Object(fields))) => remove_ci(fields, &sub),
            (None, Some(sub), Some(Value::Array(items))) => {
                for fields in items.iter_mut().filter_map(Value::as_object_mut) {
                    remove_ci(fields, &sub);
                }
                items.retain(|el| el.as_object().is_none_or(|o| !o.is_empty()));
            }
            (Some(filter), sub, Some(Value::Array(items))) => {
                self.check_filterable(loc)?;
                match sub {
                    None => items.retain(|el| !matches_element(filter, el, loc.attr)),
                    Some(sub) => {
                        for el in items
                            .iter_mut()
                            .filter(|el| matches_element(filter, &**el, loc.attr))
                        {
                            if let Some(fields) = el.as_object_mut() {
                                remove_ci(fields, &sub);
                            }
                        }
                    }
                }
            }
            (Some(_), _, _) => self.check_filterable(loc)?,
            // A sub-attribute of a simple value does not exist: nothing to remove.
            (None, Some(_), _) => {}
        }
        prune(container, &key);
        Ok(())
    }
}

/// Whether `element` is one of the values a remove listed: compared by their
/// `value` sub-attribute when both have one, whole otherwise.
fn same_element(element: &Value, listed: &Value, case_exact: bool) -> bool {
    let key = |v: &Value| match v {
        Value::Object(fields) => get_ci(fields, "value").cloned(),
        other => Some(other.clone()),
    };
    match (key(element), key(listed)) {
        (Some(Value::String(a)), Some(Value::String(b))) if !case_exact => {
            a.to_lowercase() == b.to_lowercase()
        }
        (Some(a), Some(b)) => a == b,
        _ => element == listed,
    }
}
