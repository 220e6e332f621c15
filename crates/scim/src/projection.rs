//! Response projection: `attributes=` and `excludedAttributes=` (RFC 7644
//! §3.4.2.5, §3.9) combined with each attribute's `returned` characteristic
//! (RFC 7643 §2.4).
//!
//! `schemas` and returned=always attributes (`id`) are always kept; returned=
//! never (`password`) is always dropped; returned=request only when asked for.
//! Unknown attributes behave as returned=default, so they survive projection
//! unless excluded or not requested.

use serde_json::{Map, Value};

use crate::json::Tree;
use crate::path::AttrPath;
use crate::schema::{AttributeDef, ResourceSchema, Returned};

/// Applies attributes/excludedAttributes. `attributes=name` keeps the whole
/// complex attribute; `attributes=name.givenName` only that sub-attribute;
/// `meta` is kept unless excluded or not requested. Both lists empty → the
/// default set. Should a client send both, the exclusions apply to what the
/// requested list selected.
pub fn project(
    resource: Value,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
    schema: &ResourceSchema,
) -> Value {
    let Value::Object(mut obj) = resource else {
        return resource;
    };
    let core = Scope {
        urn: schema.core.id,
        is_core: true,
        whole_requested: false,
        attributes,
        excluded,
    };
    // In place: what is kept is moved, never copied.
    obj.retain(|key, value| {
        if key.eq_ignore_ascii_case("schemas") {
            return true;
        }
        if let Value::Object(fields) = value
            && let Some(ext_attrs) = extension_attributes(schema, key)
        {
            return project_extension(key, ext_attrs, fields, attributes, excluded);
        }
        core.project_attribute(key, schema.core.attribute(key), value)
    });
    Value::Object(obj)
}

/// [`project`] with neither list, on a tree: what is never returned, or
/// returned only on request, is left out, in place.
pub fn project_default(resource: &mut Tree<'_>, schema: &ResourceSchema) {
    let Some(members) = resource.as_object_mut() else {
        return;
    };
    members.retain(|key, value| {
        if key.eq_ignore_ascii_case("schemas") {
            return true;
        }
        if let Some(ext_attrs) = extension_attributes(schema, key)
            && let Some(fields) = value.as_object_mut()
        {
            fields.retain(|name, _| {
                returned_by_default(ext_attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name)))
            });
            return !fields.is_empty();
        }
        !schema.core.hidden_by_default(key)
    });
}

/// Whether [`project_default`] leaves out what a resource holds at `key`
/// (an attribute, or an extension's URN) and, in an extension, at its
/// `field`: a resource without any such member is its own default
/// projection.
pub fn hidden_by_default(schema: &ResourceSchema, key: &str, field: Option<&str>) -> bool {
    if key.eq_ignore_ascii_case("schemas") {
        return false;
    }
    if let (Some(field), Some(ext_attrs)) = (field, extension_attributes(schema, key)) {
        return !returned_by_default(
            ext_attrs
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(field)),
        );
    }
    schema.core.hidden_by_default(key)
}

/// Whether the default set (neither list) holds an attribute.
fn returned_by_default(def: Option<&AttributeDef>) -> bool {
    !matches!(
        def.map_or(Returned::Default, |d| d.returned),
        Returned::Never | Returned::Request
    )
}

/// The attribute definitions of the extension stored under `key`: the known
/// ones for a schema extension, none for an unknown `urn:` key.
fn extension_attributes<'s>(schema: &'s ResourceSchema, key: &str) -> Option<&'s [AttributeDef]> {
    if let Some(ext) = schema.extension(key) {
        return Some(&ext.attributes);
    }
    let is_urn = key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    (is_urn && schema.core.attribute(key).is_none()).then_some(&[])
}

/// Projects an extension's fields in place; whether anything is left.
fn project_extension(
    key: &str,
    attrs: &[AttributeDef],
    fields: &mut Map<String, Value>,
    attributes: &[AttrPath],
    excluded: &[AttrPath],
) -> bool {
    let names_extension =
        |p: &AttrPath| p.as_urn().is_some_and(|urn| urn.eq_ignore_ascii_case(key));
    if excluded.iter().any(names_extension) {
        return false;
    }
    let scope = Scope {
        urn: key,
        is_core: false,
        whole_requested: attributes.iter().any(names_extension),
        attributes,
        excluded,
    };
    fields.retain(|name, value| {
        let def = attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name));
        scope.project_attribute(name, def, value)
    });
    !fields.is_empty()
}

/// The schema whose attributes are being projected, and the request.
struct Scope<'a> {
    urn: &'a str,
    /// Unqualified paths name core attributes only (RFC 7644 §3.10).
    is_core: bool,
    /// The whole extension was requested (`attributes=urn:…:enterprise:2.0:User`).
    whole_requested: bool,
    attributes: &'a [AttrPath],
    excluded: &'a [AttrPath],
}

/// Which sub-attributes of an attribute to keep.
enum Selection {
    Whole,
    Subs(Vec<String>),
}

impl Scope<'_> {
    /// The paths in `list` that name attribute `name` of this scope.
    fn naming<'p>(&self, list: &'p [AttrPath], name: &str) -> impl Iterator<Item = &'p AttrPath> {
        let (urn, is_core) = (self.urn, self.is_core);
        let name = name.to_owned();
        list.iter().filter(move |p| {
            p.name.eq_ignore_ascii_case(&name)
                && match &p.uri {
                    None => is_core,
                    Some(uri) => uri.eq_ignore_ascii_case(urn),
                }
        })
    }

    /// Projects one attribute's value in place; whether it is kept.
    fn project_attribute(&self, name: &str, def: Option<&AttributeDef>, value: &mut Value) -> bool {
        let returned = def.map_or(Returned::Default, |d| d.returned);
        match returned {
            Returned::Never => return false,
            Returned::Always => return true,
            Returned::Default | Returned::Request => {}
        }
        // Neither list: the default set, decided without a look at either.
        if self.attributes.is_empty() && self.excluded.is_empty() {
            return returned_by_default(def);
        }
        let requested: Vec<&AttrPath> = self.naming(self.attributes, name).collect();
        let selection = if self.attributes.is_empty() {
            if returned == Returned::Request {
                return false;
            }
            Selection::Whole
        } else if self.whole_requested || requested.iter().any(|p| p.sub.is_none()) {
            Selection::Whole
        } else if requested.is_empty() {
            return false;
        } else {
            Selection::Subs(requested.iter().filter_map(|p| p.sub.clone()).collect())
        };
        let excluded: Vec<&AttrPath> = self.naming(self.excluded, name).collect();
        if excluded.iter().any(|p| p.sub.is_none()) {
            return false;
        }
        let excluded_subs: Vec<&str> = excluded.iter().filter_map(|p| p.sub.as_deref()).collect();
        let keep = |sub: &str| {
            let selected = match &selection {
                Selection::Whole => true,
                Selection::Subs(subs) => subs.iter().any(|s| s.eq_ignore_ascii_case(sub)),
            };
            selected && !excluded_subs.iter().any(|s| s.eq_ignore_ascii_case(sub))
        };
        if matches!(selection, Selection::Whole) && excluded_subs.is_empty() {
            return true;
        }
        filter_subs(value, &keep)
    }
}

/// Keeps only the sub-attributes `keep` accepts, in an object or in each
/// element of an array, in place; whether anything is left.
fn filter_subs(value: &mut Value, keep: &dyn Fn(&str) -> bool) -> bool {
    let filter_object = |fields: &mut Map<String, Value>| {
        fields.retain(|k, _| keep(k));
        !fields.is_empty()
    };
    match value {
        Value::Object(fields) => filter_object(fields),
        Value::Array(items) => {
            items.retain_mut(|item| match item {
                Value::Object(fields) => filter_object(fields),
                // A sub-attribute was asked for; a simple element has none.
                _ => false,
            });
            !items.is_empty()
        }
        // A simple value has no sub-attributes to select.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::path::parse_attribute_list;
    use crate::schema::{ENTERPRISE_USER, GROUP, USER, group, user};

    #[test]
    fn hidden_by_default_names_what_the_default_projection_leaves_out() {
        let resource = alice();
        let mut projected = Tree::Borrowed(&resource);
        project_default(&mut projected, user());
        let projected = projected.into_value();
        for (key, value) in resource.as_object().unwrap() {
            let kept = projected.get(key);
            match value.as_object().filter(|_| key.starts_with("urn:")) {
                Some(fields) => {
                    for field in fields.keys() {
                        let shown = kept.and_then(|k| k.get(field)).is_some();
                        assert_eq!(
                            hidden_by_default(user(), key, Some(field)),
                            !shown,
                            "{key}:{field}"
                        );
                    }
                }
                None => assert_eq!(
                    hidden_by_default(user(), key, None),
                    kept.is_none(),
                    "{key}"
                ),
            }
        }
        assert!(hidden_by_default(user(), "password", None));
        assert!(!hidden_by_default(user(), "schemas", None));
    }

    fn alice() -> Value {
        json!({
            "schemas": [USER, ENTERPRISE_USER],
            "id": "u-1",
            "externalId": "e-1",
            "userName": "alice",
            "password": "hunter2",
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [{"value": "a@work.example", "type": "work"}, {"value": "a@home.example", "type": "home"}],
            "meta": {"resourceType": "User", "location": "/Users/u-1"},
            ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m-1", "displayName": "Bob"}},
            "urn:acme:2.0:User": {"badge": "7"},
            "xCustom": 1
        })
    }

    fn run(attributes: &str, excluded: &str) -> Value {
        let attributes = parse_attribute_list(attributes).unwrap();
        let excluded = parse_attribute_list(excluded).unwrap();
        project(alice(), &attributes, &excluded, user())
    }

    fn keys(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn default_set_drops_never_returned_attributes_only() {
        let mut expected = alice();
        expected.as_object_mut().unwrap().remove("password");
        assert_eq!(run("", ""), expected);
    }

    #[test]
    fn requested_attributes_keep_id_and_schemas_and_drop_meta() {
        assert_eq!(
            run("userName", ""),
            json!({"schemas": [USER, ENTERPRISE_USER], "id": "u-1", "userName": "alice"})
        );
        assert_eq!(
            keys(&run("USERNAME,meta", "")),
            ["schemas", "id", "userName", "meta"]
        );
    }

    #[test]
    fn requesting_a_complex_attribute_keeps_it_whole() {
        assert_eq!(
            run("name", "")["name"],
            json!({"givenName": "Alice", "familyName": "Liddell"})
        );
    }

    #[test]
    fn requesting_a_sub_attribute_keeps_only_it() {
        let projected = run("name.givenName,emails.value", "");
        assert_eq!(projected["name"], json!({"givenName": "Alice"}));
        assert_eq!(
            projected["emails"],
            json!([{"value": "a@work.example"}, {"value": "a@home.example"}])
        );
    }

    #[test]
    fn excluded_attributes_and_sub_attributes_are_dropped() {
        let projected = run("", "emails,name.familyName,meta,id,password");
        assert!(projected.get("emails").is_none());
        assert!(projected.get("meta").is_none());
        assert_eq!(projected["name"], json!({"givenName": "Alice"}));
        assert_eq!(projected["id"], "u-1", "id is always returned");
    }

    #[test]
    fn password_is_never_returned_even_when_requested() {
        assert!(run("password", "").get("password").is_none());
    }

    #[test]
    fn extension_attributes_are_selected_by_urn() {
        let projected = run(&format!("{ENTERPRISE_USER}:manager.value"), "");
        assert_eq!(
            projected[ENTERPRISE_USER],
            json!({"manager": {"value": "m-1"}})
        );
        assert!(projected.get("urn:acme:2.0:User").is_none());
        let projected = run(ENTERPRISE_USER, "");
        assert_eq!(projected[ENTERPRISE_USER], alice()[ENTERPRISE_USER]);
        let projected = run("", &format!("{ENTERPRISE_USER}:department"));
        assert_eq!(
            projected[ENTERPRISE_USER],
            json!({"manager": {"value": "m-1", "displayName": "Bob"}})
        );
        let projected = run("", ENTERPRISE_USER);
        assert!(projected.get(ENTERPRISE_USER).is_none());
        assert_eq!(
            projected["urn:acme:2.0:User"],
            json!({"badge": "7"}),
            "unknown extensions are default"
        );
    }

    #[test]
    fn unqualified_paths_do_not_reach_into_extensions() {
        let projected = run("department", "");
        assert!(projected.get(ENTERPRISE_USER).is_none());
    }

    #[test]
    fn excluding_group_members_drops_them() {
        let team = json!({"schemas": [GROUP], "id": "g-1", "displayName": "Team", "members": [{"value": "u-1"}]});
        let projected = project(team, &[], &[AttrPath::simple("members")], group());
        assert_eq!(
            projected,
            json!({"schemas": [GROUP], "id": "g-1", "displayName": "Team"})
        );
    }

    #[test]
    fn the_default_set_of_a_tree_is_that_of_its_value() {
        let expected = project(alice(), &[], &[], user());
        let value = alice();
        let mut lent = Tree::Borrowed(&value);
        project_default(&mut lent, user());
        assert_eq!(lent.into_value(), expected);
        let mut owned = Tree::Owned(alice());
        project_default(&mut owned, user());
        assert_eq!(owned.into_value(), expected);
        let mut number = Tree::Owned(json!(3));
        project_default(&mut number, user());
        assert_eq!(number.into_value(), json!(3));
    }

    #[test]
    fn non_objects_pass_through() {
        assert_eq!(project(json!(3), &[], &[], user()), json!(3));
    }
}
