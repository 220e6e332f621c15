//! The SCIM schemas this gateway serves (RFC 7643 §4, §7, §8.7): User with the
//! enterprise and scimgate user-type extensions, and Group.
//!
//! The definitions are data: filters read caseExact and types from them, PATCH
//! and projection read mutability and `returned`, `/Schemas` prints them. The
//! attribute tables themselves live in `schema/defs.rs`.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::path::AttrPath;

mod defs;
pub use defs::USER_TYPES;

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Custom extension carrying the product's user type (Regular, External, Collaborator, Contributor, Viewer).
pub const USER_TYPE_EXTENSION: &str = "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The schema of schema representations (RFC 7643 §7).
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

#[derive(Debug, Clone)]
pub struct AttributeDef {
    pub name: &'static str,
    pub kind: AttrType,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub description: &'static str,
    pub sub_attributes: Vec<AttributeDef>,
}

#[derive(Debug, Clone)]
pub struct SchemaDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: Vec<AttributeDef>,
    /// The names of the attributes a default answer leaves out, found once:
    /// every resource written is checked against them.
    hidden: std::sync::OnceLock<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
pub struct ResourceSchema {
    /// "User"
    pub name: &'static str,
    /// "/Users"
    pub endpoint: &'static str,
    pub description: &'static str,
    pub core: SchemaDef,
    pub extensions: Vec<SchemaDef>,
}

/// What [`ResourceSchema::find`] resolved a path to.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedAttr<'a> {
    pub schema: &'a SchemaDef,
    pub attr: &'a AttributeDef,
    pub sub: Option<&'a AttributeDef>,
}

impl ResolvedAttr<'_> {
    /// The definition of the leaf the path names: the sub-attribute if any.
    pub fn leaf(&self) -> &AttributeDef {
        self.sub.unwrap_or(self.attr)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("resource: expected a JSON object, found {found}")]
    NotAnObject { found: String },
    #[error("schemas: must be an array containing \"{expected}\" for a {resource}")]
    MissingCoreSchema {
        resource: &'static str,
        expected: &'static str,
    },
    #[error("{attribute}: is required for a {resource} and must not be null or empty")]
    MissingRequired {
        resource: &'static str,
        attribute: String,
    },
    #[error("{attribute}: expected {expected}, found {found}")]
    WrongType {
        attribute: String,
        expected: &'static str,
        found: String,
    },
}

static USER_SCHEMA: LazyLock<ResourceSchema> = LazyLock::new(defs::user);
static GROUP_SCHEMA: LazyLock<ResourceSchema> = LazyLock::new(defs::group);

pub fn user() -> &'static ResourceSchema {
    &USER_SCHEMA
}

pub fn group() -> &'static ResourceSchema {
    &GROUP_SCHEMA
}

pub fn all_schemas() -> Vec<&'static SchemaDef> {
    let mut all = vec![&user().core];
    all.extend(user().extensions.iter());
    all.push(&group().core);
    all
}

impl AttributeDef {
    /// Case-insensitive sub-attribute lookup.
    pub fn sub_attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

impl SchemaDef {
    /// Case-insensitive attribute lookup.
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Whether a default answer (neither `attributes` nor
    /// `excludedAttributes`) leaves out its attribute `name`: one returned
    /// never, or only on request.
    pub fn hidden_by_default(&self, name: &str) -> bool {
        self.hidden
            .get_or_init(|| {
                self.attributes
                    .iter()
                    .filter(|a| matches!(a.returned, Returned::Never | Returned::Request))
                    .map(|a| a.name)
                    .collect()
            })
            .iter()
            .any(|hidden| hidden.eq_ignore_ascii_case(name))
    }
}

impl ResourceSchema {
    /// Case-insensitive lookup of a (possibly URN-qualified, possibly sub-)
    /// attribute. Unqualified names refer to the core schema, as RFC 7644
    /// §3.10 says.
    pub fn find(&self, path: &AttrPath) -> Option<ResolvedAttr<'_>> {
        let schema = match &path.uri {
            None => &self.core,
            Some(uri) => self.schema_by_urn(uri)?,
        };
        let attr = schema.attribute(&path.name)?;
        let sub = match &path.sub {
            None => None,
            Some(sub) => Some(attr.sub_attribute(sub)?),
        };
        Some(ResolvedAttr { schema, attr, sub })
    }

    /// The core schema or an extension, by case-insensitive URN.
    pub fn schema_by_urn(&self, urn: &str) -> Option<&SchemaDef> {
        if self.core.id.eq_ignore_ascii_case(urn) {
            Some(&self.core)
        } else {
            self.extension(urn)
        }
    }

    /// An extension schema by case-insensitive URN.
    pub fn extension(&self, urn: &str) -> Option<&SchemaDef> {
        self.extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(urn))
    }

    /// The extension a path names as a whole (`urn:…:enterprise:2.0:User`
    /// parses as attribute `User` of URI `urn:…:2.0`).
    pub fn extension_named_by(&self, path: &AttrPath) -> Option<&SchemaDef> {
        path.as_urn().and_then(|urn| self.extension(&urn))
    }

    pub fn schema_urns(&self) -> Vec<&'static str> {
        let mut urns = vec![self.core.id];
        urns.extend(self.extensions.iter().map(|e| e.id));
        urns
    }

    /// Rewrites known attribute keys (top level, extension objects,
    /// sub-attributes, inside multi-valued elements) to their canonical case;
    /// unknown keys are untouched.
    pub fn canonicalize(&self, resource: &mut Value) {
        let Some(obj) = resource.as_object_mut() else {
            return;
        };
        rebuild_keys(obj, |key, value| {
            if key.eq_ignore_ascii_case("schemas") {
                Some("schemas")
            } else if let Some(attr) = self.core.attribute(key) {
                canonicalize_attribute(attr, value);
                Some(attr.name)
            } else if let Some(ext) = self.extension(key) {
                if let Some(inner) = value.as_object_mut() {
                    canonicalize_object(&ext.attributes, inner);
                }
                Some(ext.id)
            } else {
                None
            }
        });
    }

    /// Rewrites the keys of `value`, the value of the attribute `path`
    /// names, to their canonical case (a complex value's sub-attributes, an
    /// extension object's attributes). Unknown paths are left alone.
    pub fn canonicalize_at(&self, path: &AttrPath, value: &mut Value) {
        if let Some(ext) = self.extension_named_by(path) {
            if let Some(inner) = value.as_object_mut() {
                canonicalize_object(&ext.attributes, inner);
            }
            return;
        }
        let Some(found) = self.find(path) else {
            return;
        };
        canonicalize_attribute(found.leaf(), value);
    }

    /// Type checks known attributes, required attributes and that `schemas`
    /// contains the core URN. Unknown attributes are not checked.
    pub fn validate(&self, resource: &Value) -> Result<(), SchemaError> {
        let Some(obj) = resource.as_object() else {
            return Err(SchemaError::NotAnObject {
                found: describe(resource),
            });
        };
        let has_core = get_ci(obj, "schemas")
            .and_then(Value::as_array)
            .is_some_and(|urns| {
                urns.iter().any(|u| {
                    u.as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(self.core.id))
                })
            });
        if !has_core {
            return Err(SchemaError::MissingCoreSchema {
                resource: self.name,
                expected: self.core.id,
            });
        }
        for attr in self.core.attributes.iter().filter(|a| a.required) {
            let missing = match get_ci(obj, attr.name) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                Some(_) => false,
            };
            if missing {
                return Err(SchemaError::MissingRequired {
                    resource: self.name,
                    attribute: attr.name.to_owned(),
                });
            }
        }
        for (key, value) in obj {
            if let Some(attr) = self.core.attribute(key) {
                check_attribute(attr, value, attr.name)?;
            } else if let Some(ext) = self.extension(key) {
                check_extension(ext, value)?;
            }
        }
        Ok(())
    }
}

/// Type checks one extension object and its known attributes.
pub fn check_extension(ext: &SchemaDef, value: &Value) -> Result<(), SchemaError> {
    let inner = match value {
        Value::Null => return Ok(()),
        Value::Object(inner) => inner,
        other => {
            return Err(SchemaError::WrongType {
                attribute: ext.id.to_owned(),
                expected: "an object holding the extension's attributes",
                found: describe(other),
            });
        }
    };
    for (key, value) in inner {
        if let Some(attr) = ext.attribute(key) {
            check_attribute(attr, value, &format!("{}:{}", ext.id, attr.name))?;
        }
    }
    Ok(())
}

/// Type checks one attribute's value; `label` names it in the error. Null is
/// always accepted: it means "unassigned".
pub fn check_attribute(attr: &AttributeDef, value: &Value, label: &str) -> Result<(), SchemaError> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) if attr.multi_valued => {
            for (i, item) in items.iter().enumerate() {
                check_single(attr, item, &format!("{label}[{i}]"))?;
            }
            Ok(())
        }
        other if attr.multi_valued => Err(SchemaError::WrongType {
            attribute: label.to_owned(),
            expected: "an array (the attribute is multi-valued)",
            found: describe(other),
        }),
        other => check_single(attr, other, label),
    }
}

fn check_single(attr: &AttributeDef, value: &Value, label: &str) -> Result<(), SchemaError> {
    let expected = match (attr.kind, value) {
        (_, Value::Null) => return Ok(()),
        (AttrType::Complex, Value::Object(inner)) => {
            for (key, v) in inner {
                if let Some(sub) = attr.sub_attribute(key) {
                    check_attribute(sub, v, &format!("{label}.{}", sub.name))?;
                }
            }
            return Ok(());
        }
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_))
        | (AttrType::Boolean, Value::Bool(_))
        | (AttrType::Decimal, Value::Number(_)) => return Ok(()),
        (AttrType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => return Ok(()),
        (AttrType::DateTime, Value::String(s)) if OffsetDateTime::parse(s, &Rfc3339).is_ok() => {
            return Ok(());
        }
        (AttrType::Complex, _) => "an object of sub-attributes",
        (AttrType::String, _) => "a string",
        (AttrType::Reference, _) => "a string (a reference URI)",
        (AttrType::Binary, _) => "a base64-encoded string",
        (AttrType::Boolean, _) => "a boolean (true or false, without quotes)",
        (AttrType::Decimal, _) => "a number",
        (AttrType::Integer, _) => "an integer",
        (AttrType::DateTime, _) => "a dateTime string (RFC 3339, e.g. \"2024-05-01T12:00:00Z\")",
    };
    Err(SchemaError::WrongType {
        attribute: label.to_owned(),
        expected,
        found: describe(value),
    })
}

/// A short description of a JSON value for error messages.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            let cut: String = s.chars().take(40).collect();
            format!("the string {}…", Value::from(cut))
        }
        Value::String(s) => format!("the string {}", Value::from(s.as_str())),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Case-insensitive key lookup, exact match first.
pub fn get_ci<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Rebuilds a map, renaming each key to what `rename` returns (if anything)
/// while keeping the order; `rename` may also rewrite the value.
fn rebuild_keys(
    obj: &mut Map<String, Value>,
    mut rename: impl FnMut(&str, &mut Value) -> Option<&'static str>,
) {
    // Values are canonicalised in place. The map is rebuilt only when a key
    // changes: what the gateway built itself (a PATCH's base, from the
    // mapping) is canonical already, and rebuilding re-hashes every key.
    let mut renamed = false;
    for (key, value) in obj.iter_mut() {
        renamed |= rename(key, value).is_some_and(|canonical| canonical != key);
    }
    if !renamed {
        return;
    }
    // Canonicalising is idempotent: the values are visited again, cheaply.
    let old = std::mem::take(obj);
    for (key, mut value) in old {
        match rename(&key, &mut value) {
            Some(canonical) => obj.insert(canonical.to_owned(), value),
            None => obj.insert(key, value),
        };
    }
}

fn canonicalize_object(attrs: &[AttributeDef], obj: &mut Map<String, Value>) {
    rebuild_keys(obj, |key, value| {
        let attr = attrs.iter().find(|a| a.name.eq_ignore_ascii_case(key))?;
        canonicalize_attribute(attr, value);
        Some(attr.name)
    });
}

fn canonicalize_attribute(attr: &AttributeDef, value: &mut Value) {
    if attr.sub_attributes.is_empty() {
        return;
    }
    match value {
        Value::Object(inner) => canonicalize_object(&attr.sub_attributes, inner),
        Value::Array(items) => {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                canonicalize_object(&attr.sub_attributes, item);
            }
        }
        _ => {}
    }
}

/// RFC 7643 §7 representation of a schema, for GET /Schemas. `meta.location`
/// is relative; the server prefixes its base URL.
pub fn schema_document(schema: &SchemaDef) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(attribute_document).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "Schema",
            "location": format!("/Schemas/{}", schema.id),
        },
    })
}

fn attribute_document(attr: &AttributeDef) -> Value {
    let mut doc = json!({
        "name": attr.name,
        "type": match attr.kind {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        },
        "multiValued": attr.multi_valued,
        "description": attr.description,
        "required": attr.required,
        "caseExact": attr.case_exact,
        "mutability": match attr.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        },
        "returned": match attr.returned {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        },
        "uniqueness": match attr.uniqueness {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        },
    });
    if let Some(doc) = doc.as_object_mut() {
        if !attr.canonical_values.is_empty() {
            doc.insert("canonicalValues".into(), json!(attr.canonical_values));
        }
        if !attr.reference_types.is_empty() {
            doc.insert("referenceTypes".into(), json!(attr.reference_types));
        }
        if !attr.sub_attributes.is_empty() {
            let subs = attr.sub_attributes.iter().map(attribute_document).collect();
            doc.insert("subAttributes".into(), Value::Array(subs));
        }
    }
    doc
}

#[cfg(test)]
mod tests;
