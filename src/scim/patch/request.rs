//! Parsing a PatchOp request body (RFC 7644 §3.5.2) into operations.

use serde_json::Value;

use super::{PatchError, PatchOpKind, PatchOperation};
use crate::scim::path::PatchPath;
use crate::scim::schema::{PATCH_OP, describe, get_ci};

/// Parses a PatchOp request body: `schemas` must contain [`PATCH_OP`];
/// `Operations` a non-empty array; `op` accepted in any case.
pub fn parse_patch_request(body: &Value) -> Result<Vec<PatchOperation>, PatchError> {
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
        .map(|(i, op)| parse_operation(i, op))
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
