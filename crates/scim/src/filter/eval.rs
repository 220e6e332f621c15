//! Evaluating a parsed [`Filter`] against a resource (or, for PATCH value
//! paths, against one element of a multi-valued attribute).

use std::cmp::Ordering;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CompareOp, Filter};
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, ResourceSchema, get_ci};

/// Evaluates against a resource. String comparison honours caseExact from the
/// schema (case-insensitive for unknown attributes); a comparison against a
/// multi-valued attribute is true if any element matches; a complex
/// multi-valued attribute compared without a sub-attribute compares its
/// `value` sub-attribute; `dateTime` compares chronologically; gt/ge/lt/le on
/// booleans or complex values are false; `pr` is false for null, "", [] and
/// {}. `ne` is true when the attribute is absent; `eq null` is true when it is
/// absent or null.
pub fn matches(filter: &Filter, resource: &Value, schema: &ResourceSchema) -> bool {
    resource
        .as_object()
        .is_some_and(|obj| eval(filter, obj, Scope::Resource(schema)))
}

/// Evaluates a value-path filter against one element of a multi-valued
/// attribute; `parent` supplies the sub-attribute definitions (caseExact).
pub fn matches_element(filter: &Filter, element: &Value, parent: Option<&AttributeDef>) -> bool {
    element
        .as_object()
        .is_some_and(|obj| eval(filter, obj, Scope::Element(parent)))
}

#[derive(Clone, Copy)]
enum Scope<'s> {
    Resource(&'s ResourceSchema),
    /// Inside a value path: names are sub-attributes of this attribute.
    Element(Option<&'s AttributeDef>),
}

/// What a path points at: the attribute's value and its definitions.
struct Resolved<'v, 's> {
    value: Option<&'v Value>,
    attr: Option<&'s AttributeDef>,
    sub: Option<&'s AttributeDef>,
}

fn resolve<'v, 's>(
    obj: &'v Map<String, Value>,
    path: &AttrPath,
    scope: Scope<'s>,
) -> Resolved<'v, 's> {
    let (container, attr) = match scope {
        Scope::Element(parent) => (Some(obj), parent.and_then(|p| p.sub_attribute(&path.name))),
        Scope::Resource(schema) => {
            let container = match &path.uri {
                None => Some(obj),
                Some(uri) if uri.eq_ignore_ascii_case(schema.core.id) => Some(obj),
                Some(uri) => get_ci(obj, uri).and_then(Value::as_object),
            };
            (container, schema.find(&path.parent()).map(|r| r.attr))
        }
    };
    let sub = match (&path.sub, attr) {
        (Some(sub), Some(attr)) => attr.sub_attribute(sub),
        _ => None,
    };
    Resolved {
        value: container.and_then(|c| get_ci(c, &path.name)),
        attr,
        sub,
    }
}

/// The leaf values a comparison looks at, with the definition that governs them.
fn leaves<'v, 's>(
    resolved: &Resolved<'v, 's>,
    path: &AttrPath,
    present: bool,
) -> (Vec<&'v Value>, Option<&'s AttributeDef>) {
    let Some(value) = resolved.value else {
        return (Vec::new(), resolved.sub.or(resolved.attr));
    };
    if let Some(sub) = &path.sub {
        let pick = |v: &'v Value| v.as_object().and_then(|o| get_ci(o, sub));
        let found = match value {
            Value::Array(items) => items.iter().filter_map(pick).collect(),
            other => pick(other).into_iter().collect(),
        };
        return (found, resolved.sub);
    }
    match value {
        // `pr` asks about the attribute itself, not its elements.
        _ if present => (vec![value], resolved.attr),
        Value::Array(items) => {
            let value_def = resolved.attr.and_then(|a| a.sub_attribute("value"));
            let found = items
                .iter()
                .filter_map(|item| match item {
                    Value::Object(o) => get_ci(o, "value"),
                    other => Some(other),
                })
                .collect();
            (found, value_def.or(resolved.attr))
        }
        Value::Object(o) if resolved.attr.is_some_and(|a| a.kind == AttrType::Complex) => {
            let value_def = resolved.attr.and_then(|a| a.sub_attribute("value"));
            (get_ci(o, "value").into_iter().collect(), value_def)
        }
        other => (vec![other], resolved.attr),
    }
}

fn eval(filter: &Filter, obj: &Map<String, Value>, scope: Scope<'_>) -> bool {
    match filter {
        Filter::And(left, right) => eval(left, obj, scope) && eval(right, obj, scope),
        Filter::Or(left, right) => eval(left, obj, scope) || eval(right, obj, scope),
        Filter::Not(inner) => !eval(inner, obj, scope),
        Filter::Present(path) => {
            let resolved = resolve(obj, path, scope);
            let (found, _) = leaves(&resolved, path, true);
            found.into_iter().any(is_present)
        }
        Filter::Compare { path, op, value } => {
            let resolved = resolve(obj, path, scope);
            let (found, def) = leaves(&resolved, path, false);
            let found: Vec<&Value> = found.into_iter().filter(|v| !v.is_null()).collect();
            match (op, value) {
                (CompareOp::Eq, Value::Null) => found.is_empty(),
                (CompareOp::Ne, Value::Null) => !found.is_empty(),
                (CompareOp::Ne, _) if found.is_empty() => true,
                _ => found
                    .into_iter()
                    .any(|actual| compare(actual, *op, value, def)),
            }
        }
        Filter::ValuePath { path, filter } => {
            let resolved = resolve(obj, path, scope);
            let element_scope = Scope::Element(resolved.attr);
            match resolved.value {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_object)
                    .any(|element| eval(filter, element, element_scope)),
                Some(Value::Object(element)) => eval(filter, element, element_scope),
                _ => false,
            }
        }
    }
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(o) => !o.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn compare(actual: &Value, op: CompareOp, expected: &Value, def: Option<&AttributeDef>) -> bool {
    let ordering = match (actual, expected) {
        (Value::String(a), Value::String(b)) => {
            if def.is_some_and(|d| d.kind == AttrType::DateTime)
                && let (Ok(a), Ok(b)) = (
                    OffsetDateTime::parse(a, &Rfc3339),
                    OffsetDateTime::parse(b, &Rfc3339),
                )
            {
                if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                    return false;
                }
                Some(a.cmp(&b))
            } else {
                let case_exact = def.is_some_and(|d| d.case_exact);
                let (a, b) = if case_exact {
                    (a.clone(), b.clone())
                } else {
                    (a.to_lowercase(), b.to_lowercase())
                };
                match op {
                    CompareOp::Co => return a.contains(&b),
                    CompareOp::Sw => return a.starts_with(&b),
                    CompareOp::Ew => return a.ends_with(&b),
                    _ => Some(a.cmp(&b)),
                }
            }
        }
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => match (a.as_u64(), b.as_u64()) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(a, b)| a.partial_cmp(&b)),
            },
        },
        (Value::Bool(a), Value::Bool(b)) => {
            return match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                _ => false,
            };
        }
        // Different kinds are never equal, and have no order.
        _ => return op == CompareOp::Ne,
    };
    let Some(ordering) = ordering else {
        return op == CompareOp::Ne;
    };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}
