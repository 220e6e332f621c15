//! The one normaliser every dialect shares: it rewrites a request body into
//! canonical SCIM according to the dialect's rules, guided by the schema
//! (which attributes are boolean, multi-valued, in which extension).

use serde_json::{Map, Value};

use super::Dialect;
use scimgate_scim::path::{AttrPath, PatchPath};
use scimgate_scim::schema::{AttrType, AttributeDef, ResourceSchema};

impl Dialect {
    /// Normalises a resource body (POST, PUT).
    pub fn normalise_resource(&self, schema: &ResourceSchema, body: &mut Value) {
        self.normalise_fragment(schema, body);
        if self.request.complete_schemas {
            complete_schemas(schema, body);
        }
    }

    /// Normalises a PatchOp body: each operation's path and value.
    pub fn normalise_patch(&self, schema: &ResourceSchema, body: &mut Value) {
        let Some(operations) = body
            .as_object_mut()
            .and_then(|b| {
                b.iter_mut()
                    .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
            })
            .and_then(|(_, v)| v.as_array_mut())
        else {
            return;
        };
        for operation in operations {
            let Some(operation) = operation.as_object_mut() else {
                continue;
            };
            let path = operation
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("path"))
                .and_then(|(_, v)| v.as_str())
                .map(|p| self.canonical_patch_path(schema, p));
            if let Some(path) = &path {
                operation.retain(|k, _| !k.eq_ignore_ascii_case("path"));
                operation.insert("path".into(), Value::from(path.clone()));
            }
            let Some((_, value)) = operation
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case("value"))
            else {
                continue;
            };
            match path.as_deref().map(PatchPath::parse) {
                // Path-less: the value is a fragment of the resource.
                None => self.normalise_fragment(schema, value),
                Some(Ok(path)) => {
                    if let Some(resolved) = schema.find(&path.attr) {
                        let target = match (&path.sub_attr, resolved.sub) {
                            (Some(sub), None) => {
                                resolved.attr.sub_attribute(sub).unwrap_or(resolved.attr)
                            }
                            (_, Some(sub)) => sub,
                            (None, None) => resolved.attr,
                        };
                        // A filtered path addresses elements, not the list.
                        let element_level = path.value_filter.is_some() && path.sub_attr.is_none();
                        if !element_level {
                            reshape(&self.request, target, value);
                        }
                        if self.request.string_booleans {
                            coerce_booleans(target, value, element_level);
                        }
                    }
                }
                Some(Err(_)) => {}
            }
        }
    }

    /// Aliases, blanks, single objects and string booleans, on a resource
    /// or a path-less PATCH value.
    fn normalise_fragment(&self, schema: &ResourceSchema, body: &mut Value) {
        let Some(object) = body.as_object_mut() else {
            return;
        };
        let rules = &self.request;
        for (from, to) in &rules.schema_aliases {
            rename_schema(object, from, to);
        }
        for (from, to) in &rules.attribute_aliases {
            move_attribute(object, from, to);
        }
        if rules.blank_is_absent {
            strip_blanks(object);
        }
        for_each_attribute(schema, object, &mut |def, value| {
            reshape(rules, def, value);
            if rules.string_booleans {
                coerce_booleans(def, value, false);
            }
        });
    }

    /// A PATCH path with the dialect's attribute and schema aliases applied.
    fn canonical_patch_path(&self, schema: &ResourceSchema, text: &str) -> String {
        let Ok(mut path) = PatchPath::parse(text) else {
            return text.to_string();
        };
        let mut changed = false;
        if self.request.qualify_extension_attributes
            && path.attr.uri.is_none()
            && schema.core.attribute(&path.attr.name).is_none()
        {
            let owners: Vec<&str> = schema
                .extensions
                .iter()
                .filter(|e| e.attribute(&path.attr.name).is_some())
                .map(|e| e.id)
                .collect();
            if let [only] = owners.as_slice() {
                path.attr.uri = Some((*only).to_string());
                changed = true;
            }
        }
        if let Some(uri) = &path.attr.uri
            && let Some((_, to)) = self
                .request
                .schema_aliases
                .iter()
                .find(|(from, _)| from.eq_ignore_ascii_case(uri))
        {
            path.attr.uri = Some(to.clone());
            changed = true;
        }
        let full = AttrPath {
            sub: path.attr.sub.clone().or_else(|| path.sub_attr.clone()),
            ..path.attr.clone()
        };
        for (from, to) in &self.request.attribute_aliases {
            if from.same_attribute(&full) {
                path.attr = AttrPath {
                    sub: None,
                    ..to.clone()
                };
                path.sub_attr = to.sub.clone();
                changed = true;
            } else if from.sub.is_none()
                && from.same_attribute(&AttrPath {
                    sub: None,
                    ..path.attr.clone()
                })
            {
                path.attr = AttrPath {
                    sub: path.attr.sub.clone(),
                    ..to.clone()
                };
                changed = true;
            }
        }
        if changed {
            path.to_string()
        } else {
            text.to_string()
        }
    }
}

fn key_of(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
}

/// Renames a schema URN in `schemas` and as an extension key.
fn rename_schema(object: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(Value::Array(urns)) = key_of(object, "schemas").and_then(|k| object.get_mut(&k)) {
        for urn in urns.iter_mut() {
            if urn.as_str().is_some_and(|u| u.eq_ignore_ascii_case(from)) {
                *urn = Value::from(to);
            }
        }
    }
    if let Some(key) = key_of(object, from)
        && let Some(value) = object.remove(&key)
    {
        object.insert(to.to_string(), value);
    }
}

/// Moves the value at `from` to `to` unless `to` already has one.
fn move_attribute(object: &mut Map<String, Value>, from: &AttrPath, to: &AttrPath) {
    let Some(value) = take_attribute(object, from) else {
        return;
    };
    let container = match &to.uri {
        Some(uri) => {
            let key = key_of(object, uri).unwrap_or_else(|| uri.clone());
            let entry = object
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            match entry.as_object_mut() {
                Some(extension) => extension,
                None => return,
            }
        }
        None => object,
    };
    let key = key_of(container, &to.name).unwrap_or_else(|| to.name.clone());
    match &to.sub {
        None => {
            container.entry(key).or_insert(value);
        }
        Some(sub) => {
            let entry = container
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(complex) = entry.as_object_mut() {
                let sub_key = key_of(complex, sub).unwrap_or_else(|| sub.clone());
                complex.entry(sub_key).or_insert(value);
            }
        }
    }
}

fn take_attribute(object: &mut Map<String, Value>, path: &AttrPath) -> Option<Value> {
    let Some(uri) = &path.uri else {
        return take_from(object, path);
    };
    let extension_key = key_of(object, uri)?;
    let extension = object.get_mut(&extension_key)?.as_object_mut()?;
    let value = take_from(extension, path)?;
    // An extension emptied by the move is gone, URN and all.
    if extension.is_empty() {
        object.remove(&extension_key);
        if let Some(Value::Array(urns)) = key_of(object, "schemas").and_then(|k| object.get_mut(&k))
        {
            urns.retain(|u| {
                !u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&extension_key))
            });
        }
    }
    Some(value)
}

/// Removes `name` or `name.sub` from one schema's attributes.
fn take_from(container: &mut Map<String, Value>, path: &AttrPath) -> Option<Value> {
    let key = key_of(container, &path.name)?;
    let Some(sub) = &path.sub else {
        return container.remove(&key);
    };
    let complex = container.get_mut(&key)?.as_object_mut()?;
    let sub_key = key_of(complex, sub)?;
    let value = complex.remove(&sub_key)?;
    if complex.is_empty() {
        container.remove(&key);
    }
    Some(value)
}

/// Removes `""` and `null` values, and objects or lists left empty by that.
fn strip_blanks(object: &mut Map<String, Value>) {
    object.retain(|_, value| {
        match value {
            Value::Object(nested) => strip_blanks(nested),
            Value::Array(items) => {
                for item in items.iter_mut() {
                    if let Value::Object(nested) = item {
                        strip_blanks(nested);
                    }
                }
                items.retain(|item| !is_blank(item));
            }
            _ => {}
        }
        !is_blank(value)
    });
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Calls `f` for each top-level attribute of the core schema and of each
/// extension that the object carries.
fn for_each_attribute(
    schema: &ResourceSchema,
    object: &mut Map<String, Value>,
    f: &mut dyn FnMut(&AttributeDef, &mut Value),
) {
    for (key, value) in object.iter_mut() {
        if let Some(def) = schema.core.attribute(key) {
            f(def, value);
        } else if let Some(extension) = schema.extension(key)
            && let Some(fields) = value.as_object_mut()
        {
            for (name, value) in fields.iter_mut() {
                if let Some(def) = extension.attribute(name) {
                    f(def, value);
                }
            }
        }
    }
}

/// Fixes the list/object shape of a value against its attribute's definition.
fn reshape(rules: &super::RequestRules, def: &AttributeDef, value: &mut Value) {
    if rules.object_as_list && def.multi_valued && value.is_object() {
        *value = Value::Array(vec![value.take()]);
    }
    if rules.list_as_object
        && !def.multi_valued
        && def.kind == AttrType::Complex
        && let Value::Array(items) = value
        && items.len() == 1
    {
        *value = items.remove(0);
    }
}

/// Turns `"True"`/`"false"` into booleans wherever `def` says boolean.
/// `element_level`: `value` is one element of a multi-valued attribute.
fn coerce_booleans(def: &AttributeDef, value: &mut Value, element_level: bool) {
    match (def.kind, value) {
        (AttrType::Boolean, value @ Value::String(_)) => {
            let parsed = match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("true") => Some(true),
                Some("false") => Some(false),
                _ => None,
            };
            if let Some(parsed) = parsed {
                *value = Value::Bool(parsed);
            }
        }
        (AttrType::Complex, Value::Array(items)) if def.multi_valued && !element_level => {
            for item in items {
                coerce_booleans(def, item, true);
            }
        }
        (AttrType::Complex, Value::Object(fields)) => {
            for (name, value) in fields.iter_mut() {
                if let Some(sub) = def.sub_attribute(name) {
                    coerce_booleans(sub, value, false);
                }
            }
        }
        _ => {}
    }
}

/// `schemas` = the core URN and each known extension the body uses.
fn complete_schemas(schema: &ResourceSchema, body: &mut Value) {
    let Some(object) = body.as_object_mut() else {
        return;
    };
    let mut urns = vec![Value::from(schema.core.id)];
    for extension in &schema.extensions {
        if key_of(object, extension.id).is_some() {
            urns.push(Value::from(extension.id));
        }
    }
    if let Some(key) = key_of(object, "schemas") {
        object.remove(&key);
    }
    object.insert("schemas".into(), Value::Array(urns));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded;
    use scimgate_scim::schema::{self, ENTERPRISE_USER, USER_TYPE_EXTENSION};
    use serde_json::json;

    fn dialect(name: &str) -> std::sync::Arc<Dialect> {
        embedded().get(name).cloned().unwrap()
    }

    #[test]
    fn entra_string_booleans_become_booleans_on_create_and_in_patch() {
        let entra = dialect("entra");
        let mut user = json!({"schemas": [schema::USER], "userName": "a", "active": "False",
            "emails": [{"value": "a@example.com", "primary": "True"}]});
        entra.normalise_resource(schema::user(), &mut user);
        assert_eq!(user["active"], false);
        assert_eq!(user["emails"][0]["primary"], true);
        let mut patch = json!({"Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "value": {"active": "True"}},
            {"op": "Add", "path": "emails[type eq \"work\"]", "value": {"value": "b", "primary": "true"}}
        ]});
        entra.normalise_patch(schema::user(), &mut patch);
        assert_eq!(patch["Operations"][0]["value"], false);
        assert_eq!(patch["Operations"][1]["value"]["active"], true);
        assert_eq!(patch["Operations"][2]["value"]["primary"], true);
    }

    #[test]
    fn entra_manager_sent_as_a_list_of_one_is_the_manager() {
        let mut patch = json!({"Operations": [{"op": "Add", "path": "manager",
            "value": [{"$ref": "http://x/Users/7", "value": "7"}]}]});
        dialect("entra").normalise_patch(schema::user(), &mut patch);
        assert_eq!(
            patch["Operations"][0]["path"],
            format!("{ENTERPRISE_USER}:manager")
        );
        assert_eq!(
            patch["Operations"][0]["value"],
            json!({"$ref": "http://x/Users/7", "value": "7"})
        );
        let mut user = json!({"schemas": [schema::USER], "userName": "a", ENTERPRISE_USER: {"manager": [{"value": "7"}]}});
        dialect("entra").normalise_resource(schema::user(), &mut user);
        assert_eq!(user[ENTERPRISE_USER]["manager"], json!({"value": "7"}));
    }

    #[test]
    fn generic_leaves_vendor_quirks_for_the_core_to_refuse() {
        let mut user = json!({"schemas": [schema::USER], "userName": "a", "active": "False"});
        dialect("generic").normalise_resource(schema::user(), &mut user);
        assert_eq!(user["active"], "False");
    }

    #[test]
    fn entra_schemas_are_completed_from_the_attributes_sent() {
        let mut user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:user", "urn:bogus"],
            "userName": "a", ENTERPRISE_USER: {"department": "R&D"}});
        dialect("entra").normalise_resource(schema::user(), &mut user);
        assert_eq!(user["schemas"], json!([schema::USER, ENTERPRISE_USER]));
    }

    #[test]
    fn onelogin_blank_values_are_absent_and_objects_become_lists() {
        let mut user = json!({"schemas": ["urn:scim:schemas:core:1.0"], "id": null, "userName": "a@example.com",
            "title": "", "name": {"givenName": "A", "familyName": ""},
            "emails": {"value": "a@example.com", "primary": "true"}, "active": "true",
            "phoneNumbers": [{"value": "", "type": "work"}]});
        dialect("onelogin").normalise_resource(schema::user(), &mut user);
        assert!(
            user.get("id").is_none() && user.get("title").is_none(),
            "{user}"
        );
        assert_eq!(user["name"], json!({"givenName": "A"}));
        assert_eq!(
            user["emails"],
            json!([{"value": "a@example.com", "primary": true}])
        );
        assert_eq!(user["active"], true);
        assert_eq!(user["phoneNumbers"], json!([{"type": "work"}]));
        assert_eq!(user["schemas"][0], schema::USER);
    }

    #[test]
    fn vendor_extension_user_type_lands_in_the_canonical_attribute() {
        // (dialect, body carrying the user type as that vendor names it, PATCH path)
        let cases = [
            (
                "entra",
                json!({"urn:ietf:params:scim:schemas:extension:2.0:scimgate": {"userType": "External"}}),
                "urn:ietf:params:scim:schemas:extension:2.0:scimgate:userType",
            ),
            ("okta", json!({"userType": "External"}), "userType"),
            (
                "onelogin",
                json!({"urn:scim:schemas:extension:scimgate:1.0": {"userType": "External"}}),
                "urn:scim:schemas:extension:scimgate:1.0:userType",
            ),
        ];
        for (name, fragment, path) in cases {
            let d = dialect(name);
            let mut user = json!({"schemas": [schema::USER], "userName": "a"});
            for (key, value) in fragment.as_object().unwrap() {
                user[key] = value.clone();
            }
            d.normalise_resource(schema::user(), &mut user);
            assert_eq!(
                user[USER_TYPE_EXTENSION]["userType"], "External",
                "{name}: {user}"
            );
            assert_eq!(
                user.as_object().unwrap().len(),
                3,
                "{name}: only schemas, userName, extension: {user}"
            );
            let mut patch =
                json!({"Operations": [{"op": "replace", "path": path, "value": "Viewer"}]});
            d.normalise_patch(schema::user(), &mut patch);
            assert_eq!(
                patch["Operations"][0]["path"],
                format!("{USER_TYPE_EXTENSION}:userType"),
                "{name}"
            );
        }
    }

    #[test]
    fn onelogin_manager_id_becomes_manager_value() {
        let mut user = json!({"schemas": [schema::USER], "userName": "a",
            "urn:scim:schemas:extension:enterprise:1.0": {"manager": {"managerId": "7"}}});
        dialect("onelogin").normalise_resource(schema::user(), &mut user);
        assert_eq!(user[ENTERPRISE_USER]["manager"]["value"], "7", "{user}");
    }
}
