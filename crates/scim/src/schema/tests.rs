use serde_json::json;

use super::*;

fn path(s: &str) -> AttrPath {
    AttrPath::parse(s).unwrap()
}

#[test]
fn find_is_case_insensitive_and_resolves_sub_attributes() {
    let found = user().find(&path("NAME.GIVENNAME")).unwrap();
    assert_eq!(found.attr.name, "name");
    assert_eq!(found.sub.map(|s| s.name), Some("givenName"));
    assert_eq!(found.schema.id, USER);
    assert_eq!(found.leaf().name, "givenName");
    assert!(user().find(&path("name.nope")).is_none());
    assert!(user().find(&path("nope")).is_none());
}

#[test]
fn find_resolves_urn_qualified_extension_and_core_attributes() {
    let manager = user()
        .find(&path(
            "urn:ietf:params:scim:schemas:extension:Enterprise:2.0:User:manager.value",
        ))
        .unwrap();
    assert_eq!(manager.schema.id, ENTERPRISE_USER);
    assert_eq!(manager.sub.map(|s| s.name), Some("value"));
    let user_name = user().find(&path(&format!("{USER}:userName"))).unwrap();
    assert_eq!(user_name.schema.id, USER);
    let user_type = user()
        .find(&path(&format!("{USER_TYPE_EXTENSION}:usertype")))
        .unwrap();
    assert_eq!(user_type.attr.canonical_values, USER_TYPES);
    assert!(
        user().find(&path("department")).is_none(),
        "unqualified names are core only"
    );
}

#[test]
fn extension_named_by_recognises_a_whole_extension_urn() {
    assert_eq!(
        user()
            .extension_named_by(&path(ENTERPRISE_USER))
            .map(|e| e.id),
        Some(ENTERPRISE_USER)
    );
    assert!(user().extension_named_by(&path("userName")).is_none());
}

#[test]
fn rfc_attribute_properties_are_as_specified() {
    let core = &user().core;
    let id = core.attribute("id").unwrap();
    assert_eq!(
        (id.mutability, id.returned, id.case_exact),
        (Mutability::ReadOnly, Returned::Always, true)
    );
    let user_name = core.attribute("userName").unwrap();
    assert!(user_name.required && !user_name.case_exact);
    assert_eq!(user_name.uniqueness, Uniqueness::Server);
    let password = core.attribute("password").unwrap();
    assert_eq!(
        (password.mutability, password.returned),
        (Mutability::WriteOnly, Returned::Never)
    );
    let groups = core.attribute("groups").unwrap();
    assert!(groups.multi_valued && groups.mutability == Mutability::ReadOnly);
    assert!(groups.sub_attribute("$ref").is_some());
    assert_eq!(core.attribute("active").unwrap().kind, AttrType::Boolean);
    let members = group().core.attribute("members").unwrap();
    assert_eq!(
        members.sub_attribute("value").unwrap().mutability,
        Mutability::Immutable
    );
    assert!(group().core.attribute("displayName").unwrap().required);
}

#[test]
fn canonicalize_rewrites_known_keys_everywhere_and_keeps_unknown_ones() {
    let mut resource = json!({
        "SCHEMAS": [USER],
        "USERNAME": "alice",
        "Name": {"GivenName": "Alice", "custom": 1},
        "Emails": [{"VALUE": "a@example.com", "Primary": true}],
        "urn:ietf:params:scim:schemas:extension:ENTERPRISE:2.0:User": {"Department": "R&D", "Manager": {"VALUE": "m"}},
        "xCustom": {"Keep": true},
    });
    user().canonicalize(&mut resource);
    assert_eq!(
        resource,
        json!({
            "schemas": [USER],
            "userName": "alice",
            "name": {"givenName": "Alice", "custom": 1},
            "emails": [{"value": "a@example.com", "primary": true}],
            ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m"}},
            "xCustom": {"Keep": true},
        })
    );
    let keys: Vec<&String> = resource.as_object().unwrap().keys().collect();
    assert_eq!(keys[1], "userName", "order is preserved");
}

#[test]
fn canonicalize_renames_below_a_canonical_key_and_keeps_order_and_later_duplicates() {
    let mut resource = json!({
        "schemas": [USER],
        "userName": "alice",
        "name": {"GIVENNAME": "Alice"},
        "emails": [{"value": "a@example.com"}, {"VALUE": "b@example.com"}],
    });
    user().canonicalize(&mut resource);
    assert_eq!(resource["name"], json!({"givenName": "Alice"}));
    assert_eq!(resource["emails"][1], json!({"value": "b@example.com"}));
    let keys: Vec<&String> = resource.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["schemas", "userName", "name", "emails"]);

    // Two spellings of one attribute: the later one's value, in the first
    // one's place, as when every key is rewritten.
    let mut twice = json!({"userName": "first", "title": "t", "USERNAME": "second"});
    user().canonicalize(&mut twice);
    assert_eq!(twice, json!({"userName": "second", "title": "t"}));
    let keys: Vec<&String> = twice.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["userName", "title"]);
}

#[test]
fn validate_accepts_a_well_formed_user() {
    let resource = json!({
        "schemas": [USER, ENTERPRISE_USER],
        "userName": "alice",
        "active": true,
        "name": {"givenName": "Alice"},
        "emails": [{"value": "a@example.com", "primary": true}],
        "meta": {"created": "2024-05-01T12:00:00Z"},
        ENTERPRISE_USER: {"manager": {"value": "m"}},
        "unknown": 5,
    });
    user().validate(&resource).unwrap();
}

#[test]
fn validate_requires_the_core_schema_urn() {
    let error = user().validate(&json!({"userName": "alice"})).unwrap_err();
    assert!(matches!(error, SchemaError::MissingCoreSchema { .. }));
    assert!(error.to_string().contains(USER), "{error}");
}

#[test]
fn validate_requires_user_name_and_group_display_name() {
    let error = user()
        .validate(&json!({"schemas": [USER], "userName": " "}))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "userName: is required for a User and must not be null or empty"
    );
    let error = group().validate(&json!({"schemas": [GROUP]})).unwrap_err();
    assert!(
        error.to_string().starts_with("displayName: is required"),
        "{error}"
    );
}

#[test]
fn validate_names_the_attribute_and_the_expected_type() {
    let cases = [
        (
            json!({"active": "False"}),
            "active: expected a boolean (true or false, without quotes), found the string \"False\"",
        ),
        (
            json!({"emails": {"value": "a"}}),
            "emails: expected an array (the attribute is multi-valued), found an object",
        ),
        (
            json!({"emails": [{"primary": "yes"}]}),
            "emails[0].primary: expected a boolean",
        ),
        (
            json!({"name": "Alice"}),
            "name: expected an object of sub-attributes, found the string \"Alice\"",
        ),
        (
            json!({"meta": {"created": "yesterday"}}),
            "meta.created: expected a dateTime",
        ),
        (
            json!({ENTERPRISE_USER: {"department": 5}}),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department: expected a string",
        ),
        (
            json!({ENTERPRISE_USER: "x"}),
            "expected an object holding the extension's attributes",
        ),
    ];
    for (extra, expected) in cases {
        let mut resource = json!({"schemas": [USER], "userName": "alice"});
        for (k, v) in extra.as_object().unwrap() {
            resource[k] = v.clone();
        }
        let error = user().validate(&resource).unwrap_err().to_string();
        assert!(
            error.starts_with(expected) || error.contains(expected),
            "{error} / {expected}"
        );
    }
}

#[test]
fn validate_rejects_non_objects() {
    assert!(matches!(
        user().validate(&json!([1])),
        Err(SchemaError::NotAnObject { .. })
    ));
}

#[test]
fn schema_document_follows_rfc_7643_section_7() {
    let doc = schema_document(&user().core);
    assert_eq!(doc["schemas"][0], SCHEMA);
    assert_eq!(doc["id"], USER);
    assert_eq!(doc["meta"]["resourceType"], "Schema");
    assert_eq!(doc["meta"]["location"], format!("/Schemas/{USER}"));
    let attrs = doc["attributes"].as_array().unwrap();
    let emails = attrs.iter().find(|a| a["name"] == "emails").unwrap();
    assert_eq!(emails["type"], "complex");
    assert_eq!(emails["multiValued"], true);
    assert_eq!(emails["subAttributes"][2]["canonicalValues"][0], "work");
    let password = attrs.iter().find(|a| a["name"] == "password").unwrap();
    assert_eq!(
        (
            password["mutability"].as_str(),
            password["returned"].as_str()
        ),
        (Some("writeOnly"), Some("never"))
    );
    let ext = schema_document(user().extension(USER_TYPE_EXTENSION).unwrap());
    assert_eq!(ext["attributes"][0]["canonicalValues"], json!(USER_TYPES));
}

#[test]
fn all_schemas_lists_user_extensions_and_group() {
    let ids: Vec<&str> = all_schemas().iter().map(|s| s.id).collect();
    assert_eq!(ids, [USER, ENTERPRISE_USER, USER_TYPE_EXTENSION, GROUP]);
    assert_eq!(
        user().schema_urns(),
        [USER, ENTERPRISE_USER, USER_TYPE_EXTENSION]
    );
    assert_eq!(group().schema_urns(), [GROUP]);
}

#[test]
fn schema_errors_become_invalid_value_or_invalid_syntax() {
    use crate::error::{ScimError, ScimType};
    let missing = ScimError::from(user().validate(&json!({"userName": "a"})).unwrap_err());
    assert_eq!(missing.scim_type, Some(ScimType::InvalidSyntax));
    let wrong = user()
        .validate(&json!({"schemas": [USER], "userName": 5}))
        .unwrap_err();
    let detail = wrong.to_string();
    let wrong = ScimError::from(wrong);
    assert_eq!(
        (wrong.status.as_u16(), wrong.scim_type),
        (400, Some(ScimType::InvalidValue))
    );
    assert_eq!(wrong.detail, detail);
}
