//! Evaluating a parsed [`Filter`] against a resource (or, for PATCH value
//! paths, against one element of a multi-valued attribute).

use std::cmp::Ordering;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CompareOp, Filter};
use crate::json::{Scalar, View};
use crate::path::AttrPath;
use crate::schema::{AttrType, AttributeDef, ResourceSchema};

/// Evaluates against a resource. String comparison honours caseExact from the
/// schema (case-insensitive for unknown attributes); a comparison against a
/// multi-valued attribute is true if any element matches; a complex
/// multi-valued attribute compared without a sub-attribute compares its
/// `value` sub-attribute; `dateTime` compares chronologically; gt/ge/lt/le on
/// booleans or complex values are false; `pr` is false for null, "", [] and
/// {}. `ne` is true when the attribute is absent; `eq null` is true when it is
/// absent or null.
pub fn matches<'r>(
    filter: &Filter,
    resource: impl Into<View<'r>>,
    schema: &ResourceSchema,
) -> bool {
    let resource = resource.into();
    resource.is_object() && eval(filter, resource, Scope::Resource(schema))
}

/// Evaluates a value-path filter against one element of a multi-valued
/// attribute; `parent` supplies the sub-attribute definitions (caseExact).
pub fn matches_element<'e>(
    filter: &Filter,
    element: impl Into<View<'e>>,
    parent: Option<&AttributeDef>,
) -> bool {
    let element = element.into();
    element.is_object() && eval(filter, element, Scope::Element(parent))
}

#[derive(Clone, Copy)]
enum Scope<'s> {
    Resource(&'s ResourceSchema),
    /// Inside a value path: names are sub-attributes of this attribute.
    Element(Option<&'s AttributeDef>),
}

/// What a path points at: the attribute's value and its definitions.
struct Resolved<'v, 's> {
    value: Option<View<'v>>,
    attr: Option<&'s AttributeDef>,
    sub: Option<&'s AttributeDef>,
}

/// `obj` is an object (a resource or an element).
fn resolve<'v, 's>(obj: View<'v>, path: &AttrPath, scope: Scope<'s>) -> Resolved<'v, 's> {
    let (container, attr) = match scope {
        Scope::Element(parent) => (Some(obj), parent.and_then(|p| p.sub_attribute(&path.name))),
        Scope::Resource(schema) => {
            let container = match &path.uri {
                None => Some(obj),
                Some(uri) if uri.eq_ignore_ascii_case(schema.core.id) => Some(obj),
                Some(uri) => obj.get_ci(uri).filter(|c| c.is_object()),
            };
            (container, schema.find(&path.parent()).map(|r| r.attr))
        }
    };
    let sub = match (&path.sub, attr) {
        (Some(sub), Some(attr)) => attr.sub_attribute(sub),
        _ => None,
    };
    Resolved {
        value: container.and_then(|c| c.get_ci(&path.name)),
        attr,
        sub,
    }
}

/// The leaf values a comparison looks at, with the definition that governs them.
fn leaves<'v, 's>(
    resolved: &Resolved<'v, 's>,
    path: &AttrPath,
    present: bool,
) -> (Vec<View<'v>>, Option<&'s AttributeDef>) {
    let Some(value) = resolved.value else {
        return (Vec::new(), resolved.sub.or(resolved.attr));
    };
    if let Some(sub) = &path.sub {
        let pick = |v: View<'v>| v.get_ci(sub);
        let found = match value.is_array() {
            true => value.elements().filter_map(pick).collect(),
            false => pick(value).into_iter().collect(),
        };
        return (found, resolved.sub);
    }
    if present {
        // `pr` asks about the attribute itself, not its elements.
        return (vec![value], resolved.attr);
    }
    let value_def = || resolved.attr.and_then(|a| a.sub_attribute("value"));
    if value.is_array() {
        let found = value
            .elements()
            .filter_map(|item| match item.is_object() {
                true => item.get_ci("value"),
                false => Some(item),
            })
            .collect();
        return (found, value_def().or(resolved.attr));
    }
    if value.is_object() && resolved.attr.is_some_and(|a| a.kind == AttrType::Complex) {
        return (value.get_ci("value").into_iter().collect(), value_def());
    }
    (vec![value], resolved.attr)
}

fn eval(filter: &Filter, obj: View<'_>, scope: Scope<'_>) -> bool {
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
            let found: Vec<View<'_>> = found
                .into_iter()
                .filter(|v| v.scalar() != Scalar::Null)
                .collect();
            match (op, value) {
                (CompareOp::Eq, Value::Null) => found.is_empty(),
                (CompareOp::Ne, Value::Null) => !found.is_empty(),
                (CompareOp::Ne, _) if found.is_empty() => true,
                _ => found
                    .into_iter()
                    .any(|actual| compare(actual.scalar(), *op, value, def)),
            }
        }
        Filter::ValuePath { path, filter } => {
            let resolved = resolve(obj, path, scope);
            let element_scope = Scope::Element(resolved.attr);
            match resolved.value {
                Some(items) if items.is_array() => items
                    .elements()
                    .filter(|element| element.is_object())
                    .any(|element| eval(filter, element, element_scope)),
                Some(element) if element.is_object() => eval(filter, element, element_scope),
                _ => false,
            }
        }
    }
}

fn is_present(value: View<'_>) -> bool {
    match value.scalar() {
        Scalar::Null => false,
        Scalar::Str(s) => !s.is_empty(),
        Scalar::Bool(_) | Scalar::Number(_) => true,
        Scalar::Composite if value.is_array() => value.elements().any(is_present),
        Scalar::Composite => !value.is_empty_object(),
    }
}

fn compare(
    actual: Scalar<'_>,
    op: CompareOp,
    expected: &Value,
    def: Option<&AttributeDef>,
) -> bool {
    let ordering = match (actual, expected) {
        (Scalar::Str(a), Value::String(b)) => {
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
                    (a.to_string(), b.clone())
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
        (Scalar::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => match (a.as_u64(), b.as_u64()) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => a
                    .as_f64()
                    .zip(b.as_f64())
                    .and_then(|(a, b)| a.partial_cmp(&b)),
            },
        },
        (Scalar::Bool(a), Value::Bool(b)) => {
            return match op {
                CompareOp::Eq => a == *b,
                CompareOp::Ne => a != *b,
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
