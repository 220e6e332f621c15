//! SCIM PATCH (RFC 7644 §3.5.2): parsing a PatchOp body and applying its
//! operations to a resource held as JSON.
//!
//! Operations apply to a copy, in order, and the copy replaces the resource
//! only if every one succeeds, so a failed PATCH changes nothing. Beyond the
//! RFC, the engine accepts what the big IdPs actually send: dotted and
//! URN-qualified keys in a path-less value, `op` in any case, and
//! `emails[type eq "work"].value` creating the element when none matches.

use serde_json::{Map, Value};

use crate::path::{AttrPath, PatchPath, PathError};
use crate::schema::{
    AttributeDef, Mutability, ResourceSchema, SchemaDef, check_attribute, describe, get_ci,
};

mod remove;
mod request;
mod set;

pub use request::parse_patch_request;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchOpKind {
    Add,
    Replace,
    Remove,
}

impl PatchOpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Replace => "replace",
            PatchOpKind::Remove => "remove",
        }
    }

    /// Case-insensitive: Entra ID sends "Add", "Replace", "Remove".
    pub fn parse(name: &str) -> Option<PatchOpKind> {
        [PatchOpKind::Add, PatchOpKind::Replace, PatchOpKind::Remove]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: PatchOpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Why a PATCH failed; `index` is the position in `Operations`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    #[error("PATCH body: {reason}")]
    InvalidRequest { reason: String },
    #[error("Operations[{index}] ({op}): {source}")]
    BadPath {
        index: usize,
        op: &'static str,
        source: PathError,
    },
    #[error("Operations[{index}] ({op}): {reason}")]
    InvalidPath {
        index: usize,
        op: &'static str,
        reason: String,
    },
    #[error("Operations[{index}] ({op}): {reason}")]
    NoTarget {
        index: usize,
        op: &'static str,
        reason: String,
    },
    #[error("Operations[{index}] ({op}): {reason}")]
    InvalidValue {
        index: usize,
        op: &'static str,
        reason: String,
    },
    #[error(
        "Operations[{index}] ({op}): `{attribute}` is readOnly; it can only be \"set\" to the \
         value it already has"
    )]
    Mutability {
        index: usize,
        op: &'static str,
        attribute: String,
    },
    #[error("the resource being patched is not a JSON object")]
    NotAnObject,
}

/// Applies all operations atomically to a copy; on success replaces `resource`.
pub fn apply_patch(
    resource: &mut Value,
    ops: &[PatchOperation],
    schema: &ResourceSchema,
) -> Result<(), PatchError> {
    *resource = patched(resource.clone(), ops, schema)?;
    Ok(())
}

/// `resource` with all operations applied, or the first one's error (the
/// resource is then gone: pass a copy to keep the original, which is what
/// a caller that already holds one does instead of [`apply_patch`]'s).
pub fn patched(
    mut doc: Value,
    ops: &[PatchOperation],
    schema: &ResourceSchema,
) -> Result<Value, PatchError> {
    schema.canonicalize(&mut doc);
    let Some(obj) = doc.as_object_mut() else {
        return Err(PatchError::NotAnObject);
    };
    for (index, op) in ops.iter().enumerate() {
        let cx = Op {
            schema,
            index,
            kind: op.op,
        };
        cx.apply(obj, op)?;
    }
    sync_extension_schemas(obj, schema);
    Ok(doc)
}

/// One operation being applied: what error messages need to say where.
struct Op<'s> {
    schema: &'s ResourceSchema,
    index: usize,
    kind: PatchOpKind,
}

/// What a path names in the resource.
enum Target<'s> {
    /// A whole extension object (`urn:…:enterprise:2.0:User`).
    Extension {
        key: String,
    },
    Attribute(Location<'s>),
}

/// Where one attribute lives.
struct Location<'s> {
    /// Key of the extension object holding it; `None` for the top level.
    ext: Option<String>,
    /// Canonical name when the attribute is known.
    name: String,
    attr: Option<&'s AttributeDef>,
}

impl Location<'_> {
    fn label(&self) -> String {
        match &self.ext {
            Some(ext) => format!("{ext}:{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl<'s> Op<'s> {
    fn op(&self) -> &'static str {
        self.kind.as_str()
    }

    fn invalid_value(&self, reason: impl Into<String>) -> PatchError {
        PatchError::InvalidValue {
            index: self.index,
            op: self.op(),
            reason: reason.into(),
        }
    }

    fn invalid_path(&self, reason: impl Into<String>) -> PatchError {
        PatchError::InvalidPath {
            index: self.index,
            op: self.op(),
            reason: reason.into(),
        }
    }

    fn no_target(&self, reason: impl Into<String>) -> PatchError {
        PatchError::NoTarget {
            index: self.index,
            op: self.op(),
            reason: reason.into(),
        }
    }

    fn bad_path(&self, source: PathError) -> PatchError {
        PatchError::BadPath {
            index: self.index,
            op: self.op(),
            source,
        }
    }

    fn apply(&self, obj: &mut Map<String, Value>, op: &PatchOperation) -> Result<(), PatchError> {
        match (&op.path, &op.value) {
            (None, _) if self.kind == PatchOpKind::Remove => {
                Err(self.no_target("remove needs a `path` naming what to remove"))
            }
            (Some(path), value) if self.kind == PatchOpKind::Remove => {
                self.remove(obj, path, value.as_ref())
            }
            (_, None) => Err(self.invalid_value("`value` is missing; add and replace need one")),
            (None, Some(Value::Object(fields))) => self.set_pathless(obj, fields),
            (None, Some(other)) => Err(self.invalid_value(format!(
                "without a `path`, `value` must be an object of attributes to set, found {}",
                describe(other)
            ))),
            (Some(path), Some(value)) => self.set_path(obj, path, value),
        }
    }

    fn locate(&self, obj: &Map<String, Value>, path: &AttrPath) -> Target<'s> {
        if let Some(ext) = self.schema.extension_named_by(path) {
            return Target::Extension {
                key: ext.id.to_owned(),
            };
        }
        // An extension the schema does not know, already on the resource.
        if let Some(urn) = path.as_urn()
            && let Some(key) = key_ci(obj, &urn)
            && obj.get(&key).is_some_and(Value::is_object)
            && self.schema.find(path).is_none()
        {
            return Target::Extension { key };
        }
        let (ext, schema): (Option<String>, Option<&'s SchemaDef>) = match &path.uri {
            None => (None, Some(&self.schema.core)),
            Some(uri) => match self.schema.schema_by_urn(uri) {
                Some(s) if s.id == self.schema.core.id => (None, Some(s)),
                Some(s) => (Some(s.id.to_owned()), Some(s)),
                None => (Some(key_ci(obj, uri).unwrap_or_else(|| uri.clone())), None),
            },
        };
        let attr = schema.and_then(|s| s.attribute(&path.name));
        Target::Attribute(Location {
            ext,
            name: attr.map_or_else(|| path.name.clone(), |a| a.name.to_owned()),
            attr,
        })
    }

    /// Runs one change to one attribute, then enforces what the schema says
    /// about the result: its type, and that readOnly attributes end as they
    /// began (so re-sending `id` or `meta` unchanged is harmless).
    fn change(
        &self,
        obj: &mut Map<String, Value>,
        loc: &Location<'s>,
        f: impl FnOnce(&mut Map<String, Value>) -> Result<(), PatchError>,
    ) -> Result<(), PatchError> {
        let read_only = loc
            .attr
            .is_some_and(|a| a.mutability == Mutability::ReadOnly);
        let before = read_only.then(|| current(obj, loc).cloned());
        let Some(container) = self.container(obj, loc)? else {
            return Ok(());
        };
        f(container)?;
        if let Some(attr) = loc.attr
            && let Some(value) = get_ci(container, &loc.name)
        {
            check_attribute(attr, value, &loc.label())
                .map_err(|e| self.invalid_value(e.to_string()))?;
        }
        if let Some(before) = before
            && before.as_ref() != current(obj, loc)
        {
            return Err(PatchError::Mutability {
                index: self.index,
                op: self.op(),
                attribute: loc.label(),
            });
        }
        Ok(())
    }

    fn check_filterable(&self, loc: &Location<'s>) -> Result<(), PatchError> {
        match loc.attr {
            Some(attr) if !attr.multi_valued => Err(self.invalid_path(format!(
                "`{}` is not multi-valued, so a value filter `[…]` cannot select elements of it",
                loc.label()
            ))),
            _ => Ok(()),
        }
    }

    /// The object holding `loc`'s attribute, created for add/replace; `None`
    /// when removing from an extension the resource does not have.
    fn container<'m>(
        &self,
        obj: &'m mut Map<String, Value>,
        loc: &Location<'_>,
    ) -> Result<Option<&'m mut Map<String, Value>>, PatchError> {
        let Some(ext) = &loc.ext else {
            return Ok(Some(obj));
        };
        let key = match key_ci(obj, ext) {
            Some(key) => key,
            None if self.kind == PatchOpKind::Remove => return Ok(None),
            None => ext.clone(),
        };
        let slot = obj.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            if self.kind == PatchOpKind::Remove {
                return Ok(None);
            }
            *slot = Value::Object(Map::new());
        }
        match slot {
            Value::Object(container) => Ok(Some(container)),
            other => Err(self.invalid_value(format!(
                "`{ext}` holds {}, not an object of extension attributes",
                describe(other)
            ))),
        }
    }
}

/// The attribute's current value, for the readOnly before/after comparison.
fn current<'m>(obj: &'m Map<String, Value>, loc: &Location<'_>) -> Option<&'m Value> {
    let container = match &loc.ext {
        None => obj,
        Some(ext) => get_ci(obj, ext)?.as_object()?,
    };
    get_ci(container, &loc.name)
}

/// The existing key spelling `name` case-insensitively, exact match first.
fn key_ci(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// The key to write `name` under: the resource's spelling if it has one.
fn slot_key(map: &Map<String, Value>, name: &str) -> String {
    key_ci(map, name).unwrap_or_else(|| name.to_owned())
}

fn remove_ci(map: &mut Map<String, Value>, name: &str) {
    if let Some(key) = key_ci(map, name) {
        map.shift_remove(&key);
    }
}

/// Sets a field; null unsets it (RFC 7643 §2.5: null means unassigned).
fn set_field(map: &mut Map<String, Value>, name: &str, value: &Value) {
    if value.is_null() {
        remove_ci(map, name);
    } else {
        map.insert(slot_key(map, name), value.clone());
    }
}

fn canonical_sub(attr: Option<&AttributeDef>, name: &str) -> String {
    attr.and_then(|a| a.sub_attribute(name))
        .map_or_else(|| name.to_owned(), |s| s.name.to_owned())
}

/// An attribute left empty (`[]`, `{}`, null) is unassigned: drop the key.
fn prune(container: &mut Map<String, Value>, name: &str) {
    let Some(key) = key_ci(container, name) else {
        return;
    };
    let empty = match container.get(&key) {
        Some(Value::Array(items)) => items.is_empty(),
        Some(Value::Object(fields)) => fields.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        container.shift_remove(&key);
    }
}

/// Keeps `schemas` in step with the extensions present: an extension that
/// gained attributes is listed, one left empty is dropped with its URN.
fn sync_extension_schemas(obj: &mut Map<String, Value>, schema: &ResourceSchema) {
    for ext in &schema.extensions {
        let Some(key) = key_ci(obj, ext.id) else {
            continue;
        };
        let empty = match obj.get(&key) {
            Some(Value::Object(fields)) => fields.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            obj.shift_remove(&key);
        }
        let Some(Value::Array(urns)) = obj.get_mut("schemas") else {
            continue;
        };
        let listed = |u: &Value| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(ext.id));
        if empty {
            urns.retain(|u| !listed(u));
        } else if !urns.iter().any(listed) {
            urns.push(Value::from(ext.id));
        }
    }
}

#[cfg(test)]
mod tests;
