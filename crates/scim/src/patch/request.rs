//! Parsing a PatchOp request body (RFC 7644 §3.5.2) into operations.

use serde_json::Value;

use super::{PatchError, PatchOpKind, PatchOperation};
use crate::path::AttrPath;
use crate::path::PatchPath;
use crate::schema::{PATCH_OP, ResourceSchema, describe, get_ci};

/// Parses a PatchOp request body: `schemas` must contain [`PATCH_OP`];
/// `Operations` a non-empty array; `op` accepted in any case. Attribute
/// names inside each value come back in their canonical case (RFC 7643
/// §2.1: they are case-insensitive), so no later reader has to match
/// `{"Value": …}` or a `Members` key by hand.
pub fn parse_patch_request(
    body: &Value,
    schema: &ResourceSchema,
) -> Result<Vec<PatchOperation>, PatchError> {
    let invalid = |reason: String| PatchError::InvalidRequest { reason };
    let Some(obj) = body.as_object() else {
        return Err(invalid(format!(
            "expected a JSON object with `schemas` and `Operations`, found {}",
            describe(body)
        )));
    };
    let has_schema = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|urns| {
            urns.iter()
                .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP)))
        });
    if !has_schema {
        return Err(invalid(format!(
            "`schemas` must be an array containing \"{PATCH_OP}\""
        )));
    }
    let operations = match get_ci(obj, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        Some(Value::Array(_)) => {
            return Err(invalid(
                "`Operations` is empty; send at least one operation".into(),
            ));
        }
        Some(other) => {
            return Err(invalid(format!(
                "`Operations` must be an array, found {}",
                describe(other)
            )));
        }
        None => return Err(invalid("`Operations` is missing".into())),
    };
    operations
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let mut operation = parse_operation(i, op)?;
            canonicalize_value(&mut operation, schema);
            Ok(operation)
        })
        .collect()
}

fn parse_operation(index: usize, op: &Value) -> Result<PatchOperation, PatchError> {
    let invalid = |reason: String| PatchError::InvalidRequest {
        reason: format!("Operations[{index}]: {reason}"),
    };
    let Some(obj) = op.as_object() else {
        return Err(invalid(format!(
            "expected an object, found {}",
            describe(op)
        )));
    };
    let kind = match get_ci(obj, "op") {
        Some(Value::String(name)) => PatchOpKind::parse(name).ok_or_else(|| {
            invalid(format!(
                "unknown op {}; expected \"add\", \"replace\" or \"remove\"",
                Value::from(name.as_str())
            ))
        })?,
        Some(other) => {
            return Err(invalid(format!(
                "`op` must be a string, found {}",
                describe(other)
            )));
        }
        None => {
            return Err(invalid(
                "`op` is missing; expected \"add\", \"replace\" or \"remove\"".into(),
            ));
        }
    };
    let path = match get_ci(obj, "path") {
        None | Some(Value::Null) => None,
        // Some clients send "" for "no path".
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => {
            Some(
                PatchPath::parse(text).map_err(|source| PatchError::BadPath {
                    index,
                    op: kind.as_str(),
                    source,
                })?,
            )
        }
        Some(other) => {
            return Err(PatchError::InvalidPath {
                index,
                op: kind.as_str(),
                reason: format!("`path` must be a string, found {}", describe(other)),
            });
        }
    };
    Ok(PatchOperation {
        op: kind,
        path,
        value: get_ci(obj, "value").cloned(),
    })
}

/// Canonical key case inside an operation's value: for a path, the value of
/// the attribute it names; without one, every key of the object, including
/// URN-qualified core keys (`urn:…:core:2.0:Group:members` → `members`).
fn canonicalize_value(operation: &mut PatchOperation, schema: &ResourceSchema) {
    let Some(value) = operation.value.as_mut() else {
        return;
    };
    match &operation.path {
        Some(path) => {
            let mut attr = path.attr.clone();
            if attr.sub.is_none() && path.value_filter.is_none() {
                attr.sub.clone_from(&path.sub_attr);
            }
            schema.canonicalize_at(&attr, value);
        }
        None => {
            let Some(fields) = value.as_object_mut() else {
                return;
            };
            let old = std::mem::take(fields);
            for (key, mut inner) in old {
                // `{"urn:…:core:2.0:Group": {"members": […]}}`: its keys are
                // top-level attributes, lifted so readers find them there.
                if key.eq_ignore_ascii_case(schema.core.id)
                    && let Value::Object(core) = &mut inner
                {
                    let mut lifted = Value::Object(std::mem::take(core));
                    schema.canonicalize(&mut lifted);
                    if let Value::Object(lifted) = lifted {
                        fields.extend(lifted);
                    }
                    continue;
                }
                let canonical = match AttrPath::parse(&key) {
                    Ok(path)
                        if path
                            .uri
                            .as_deref()
                            .is_some_and(|uri| uri.eq_ignore_ascii_case(schema.core.id))
                            && path.sub.is_none() =>
                    {
                        schema.core.attribute(&path.name).map(|a| a.name.to_owned())
                    }
                    _ => None,
                };
                match canonical {
                    Some(name) => {
                        schema.canonicalize_at(&AttrPath::simple(&name), &mut inner);
                        fields.insert(name, inner);
                    }
                    None => {
                        fields.insert(key, inner);
                    }
                }
            }
            schema.canonicalize(value);
            // Dotted and URN-qualified keys name attributes too.
            if let Some(fields) = value.as_object_mut() {
                for (key, inner) in fields.iter_mut() {
                    if let Ok(path) = AttrPath::parse(key)
                        && (path.sub.is_some() || path.uri.is_some())
                    {
                        schema.canonicalize_at(&path, inner);
                    }
                }
            }
        }
    }
}
