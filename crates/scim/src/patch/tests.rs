use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::schema::{ENTERPRISE_USER, GROUP, PATCH_OP, USER, USER_TYPE_EXTENSION, group, user};

fn alice() -> Value {
    json!({
        "schemas": [USER],
        "id": "u-1",
        "userName": "alice",
        "active": true,
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "emails": [
            {"value": "alice@work.example", "type": "work", "primary": true},
            {"value": "alice@home.example", "type": "home"}
        ],
        "meta": {"resourceType": "User", "created": "2024-05-01T12:00:00Z"},
        "xUnknown": {"kept": [1, 2]}
    })
}

fn body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// Parses and applies `ops` to `resource` as a User.
fn patch(resource: &mut Value, ops: Value) -> Result<(), PatchError> {
    let ops = parse_patch_request(&body(ops), user())?;
    apply_patch(resource, &ops, user())
}

fn patched(ops: Value) -> Value {
    let mut resource = alice();
    patch(&mut resource, ops).unwrap_or_else(|e| panic!("{e}"));
    resource
}

fn patch_error(ops: Value) -> PatchError {
    let mut resource = alice();
    let before = resource.clone();
    let error = patch(&mut resource, ops).unwrap_err();
    assert_eq!(resource, before, "a failed PATCH changes nothing");
    error
}

// ---------------------------------------------------------------- request

#[test]
fn request_ops_are_case_insensitive_and_empty_paths_mean_none() {
    let ops = parse_patch_request(
        &body(json!([
            {"op": "Add", "path": "title", "value": "x"},
            {"OP": "REPLACE", "Path": "", "Value": {"title": "y"}},
            {"op": "remove", "path": "title"}
        ])),
        user(),
    )
    .unwrap();
    assert_eq!(
        ops.iter().map(|o| o.op).collect::<Vec<_>>(),
        [PatchOpKind::Add, PatchOpKind::Replace, PatchOpKind::Remove]
    );
    assert!(ops[1].path.is_none());
    assert_eq!(ops[1].value, Some(json!({"title": "y"})));
}

#[test]
fn request_structure_errors_say_what_is_missing() {
    let cases = [
        (
            json!({"Operations": []}),
            "`schemas` must be an array containing",
        ),
        (body(json!([])), "`Operations` is empty"),
        (json!({"schemas": [PATCH_OP]}), "`Operations` is missing"),
        (body(json!({})), "`Operations` must be an array"),
        (
            body(json!([{"path": "x"}])),
            "Operations[0]: `op` is missing",
        ),
        (body(json!([{"op": "upsert"}])), "unknown op \"upsert\""),
        (body(json!(["add"])), "Operations[0]: expected an object"),
    ];
    for (request, expected) in cases {
        let error = parse_patch_request(&request, user())
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{error} / {expected}");
    }
    let error = parse_patch_request(
        &body(json!([{"op": "add", "path": "emails[type eq]"}])),
        user(),
    )
    .unwrap_err();
    assert!(
        matches!(error, PatchError::BadPath { index: 0, .. }),
        "{error}"
    );
}

// ---------------------------------------------------------------- add / replace without path

#[test]
fn patch_without_path_merges_dotted_keys() {
    let resource = patched(json!([{"op": "replace", "value": {
        "name.givenName": "Alicia",
        "DISPLAYNAME": "Alicia L.",
        "schemas": ["ignored"],
    }}]));
    assert_eq!(
        resource["name"],
        json!({"givenName": "Alicia", "familyName": "Liddell"})
    );
    assert_eq!(resource["displayName"], "Alicia L.");
    assert_eq!(resource["schemas"], json!([USER]));
}

#[test]
fn patch_without_path_accepts_urn_qualified_extension_keys() {
    let resource = patched(json!([{"op": "add", "value": {
        format!("{ENTERPRISE_USER}:department"): "R&D",
        format!("{ENTERPRISE_USER}:manager.value"): "m-1",
    }}]));
    assert_eq!(
        resource[ENTERPRISE_USER],
        json!({"department": "R&D", "manager": {"value": "m-1"}})
    );
    assert_eq!(
        resource["schemas"],
        json!([USER, ENTERPRISE_USER]),
        "the extension is listed"
    );
}

#[test]
fn patch_without_path_merges_an_extension_object() {
    let mut resource = alice();
    resource[ENTERPRISE_USER] = json!({"department": "R&D", "costCenter": "42"});
    patch(
        &mut resource,
        json!([{"op": "replace", "value": {
            ENTERPRISE_USER: {"Department": "Sales", "manager": {"value": "m-2"}},
            USER_TYPE_EXTENSION: {"userType": "Viewer"},
        }}]),
    )
    .unwrap();
    assert_eq!(
        resource[ENTERPRISE_USER],
        json!({"department": "Sales", "costCenter": "42", "manager": {"value": "m-2"}})
    );
    assert_eq!(resource[USER_TYPE_EXTENSION], json!({"userType": "Viewer"}));
}

#[test]
fn patch_without_path_keeps_unknown_extensions_whole() {
    let resource =
        patched(json!([{"op": "add", "value": {"urn:acme:scim:2.0:User": {"badge": "7"}}}]));
    assert_eq!(resource["urn:acme:scim:2.0:User"], json!({"badge": "7"}));
    assert_eq!(resource["xUnknown"], json!({"kept": [1, 2]}));
}

#[test]
fn add_on_multi_valued_appends_skipping_exact_duplicates() {
    let resource = patched(json!([{"op": "add", "path": "emails", "value": [
        {"value": "alice@home.example", "type": "home"},
        {"value": "a@other.example", "type": "other"}
    ]}]));
    let emails = resource["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 3);
    assert_eq!(emails[2]["value"], "a@other.example");
}

#[test]
fn replace_on_multi_valued_replaces_the_array() {
    let resource = patched(
        json!([{"op": "replace", "path": "emails", "value": [{"value": "new@example.com"}]}]),
    );
    assert_eq!(resource["emails"], json!([{"value": "new@example.com"}]));
}

#[test]
fn add_and_replace_on_complex_merge_sub_attributes() {
    let resource = patched(json!([
        {"op": "add", "path": "name", "value": {"middleName": "P"}},
        {"op": "replace", "path": "name", "value": {"givenName": "Al", "familyName": null}}
    ]));
    assert_eq!(
        resource["name"],
        json!({"givenName": "Al", "middleName": "P"})
    );
}

#[test]
fn new_primary_element_clears_primary_on_siblings() {
    let resource = patched(
        json!([{"op": "add", "path": "emails", "value": [{"value": "n@example.com", "primary": true}]}]),
    );
    let emails = resource["emails"].as_array().unwrap();
    assert_eq!(emails[0]["primary"], false);
    assert_eq!(emails[2]["primary"], true);
}

// ---------------------------------------------------------------- with path

#[test]
fn path_targets_attribute_sub_attribute_and_extension_attribute() {
    let resource = patched(json!([
        {"op": "replace", "path": "ACTIVE", "value": false},
        {"op": "replace", "path": "name.givenName", "value": "Alicia"},
        {"op": "add", "path": format!("{ENTERPRISE_USER}:manager"), "value": {"value": "m-1"}},
        {"op": "add", "path": format!("{USER}:title"), "value": "Dr"}
    ]));
    assert_eq!(resource["active"], false);
    assert_eq!(resource["name"]["givenName"], "Alicia");
    assert_eq!(
        resource[ENTERPRISE_USER]["manager"],
        json!({"value": "m-1"})
    );
    assert_eq!(resource["title"], "Dr");
}

#[test]
fn bare_value_for_a_complex_attribute_sets_its_value_sub_attribute() {
    let resource = patched(
        json!([{"op": "Add", "path": format!("{ENTERPRISE_USER}:manager"), "value": "m-7"}]),
    );
    assert_eq!(
        resource[ENTERPRISE_USER]["manager"],
        json!({"value": "m-7"})
    );
    let error = patch_error(json!([{"op": "add", "path": "name", "value": "Alice"}]));
    assert!(
        error.to_string().contains("`name` is a complex attribute"),
        "{error}"
    );
}

#[test]
fn path_naming_a_whole_extension_merges_into_it() {
    let resource =
        patched(json!([{"op": "add", "path": ENTERPRISE_USER, "value": {"division": "East"}}]));
    assert_eq!(resource[ENTERPRISE_USER], json!({"division": "East"}));
}

#[test]
fn filtered_path_updates_matching_elements_only() {
    let resource = patched(
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "w@example.com"}]),
    );
    assert_eq!(resource["emails"][0]["value"], "w@example.com");
    assert_eq!(resource["emails"][1]["value"], "alice@home.example");
}

#[test]
fn filtered_path_without_match_creates_the_element_from_eq_conditions() {
    let resource = patched(json!([
        {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"},
        {"op": "replace", "path": "addresses[type eq \"work\"].locality", "value": "Paris"},
        {"op": "replace", "path": "addresses[type eq \"work\"].country", "value": "FR"}
    ]));
    assert_eq!(
        resource["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555"}])
    );
    assert_eq!(
        resource["addresses"],
        json!([{"type": "work", "locality": "Paris", "country": "FR"}])
    );
}

#[test]
fn filtered_path_that_cannot_describe_an_element_is_no_target() {
    let error = patch_error(
        json!([{"op": "add", "path": "emails[type eq \"other\" or type eq \"x\"].display", "value": "x"}]),
    );
    assert!(matches!(error, PatchError::NoTarget { .. }), "{error}");
    assert!(
        error.to_string().contains("no element of `emails` matches"),
        "{error}"
    );
}

#[test]
fn replace_with_filter_and_no_sub_attribute_replaces_the_element() {
    let resource = patched(
        json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "h@example.com", "type": "home"}}]),
    );
    assert_eq!(
        resource["emails"][1],
        json!({"value": "h@example.com", "type": "home"})
    );
}

#[test]
fn making_one_filtered_element_primary_clears_the_others() {
    let resource = patched(
        json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
    );
    assert_eq!(resource["emails"][0]["primary"], false);
    assert_eq!(resource["emails"][1]["primary"], true);
}

#[test]
fn wrong_value_types_are_invalid_value() {
    let cases = [
        json!([{"op": "replace", "path": "active", "value": "False"}]),
        json!([{"op": "replace", "path": "name", "value": "Alice"}]),
        json!([{"op": "add", "value": "x"}]),
        json!([{"op": "add", "path": "title"}]),
        json!([{"op": "replace", "path": ENTERPRISE_USER, "value": 5}]),
    ];
    for ops in cases {
        let error = patch_error(ops.clone());
        assert!(
            matches!(error, PatchError::InvalidValue { .. }),
            "{ops}: {error}"
        );
    }
    let error = patch_error(json!([{"op": "replace", "path": "active", "value": "False"}]));
    assert_eq!(
        error.to_string(),
        "Operations[0] (replace): active: expected a boolean (true or false, without quotes), found the string \"False\""
    );
}

#[test]
fn filter_on_single_valued_attribute_is_invalid_path() {
    let error = patch_error(
        json!([{"op": "replace", "path": "name[givenName eq \"A\"].familyName", "value": "x"}]),
    );
    assert!(matches!(error, PatchError::InvalidPath { .. }), "{error}");
}

// ---------------------------------------------------------------- readOnly

#[test]
fn read_only_attributes_accept_only_their_current_value() {
    patched(json!([{"op": "replace", "value": {"id": "u-1", "meta": {"resourceType": "User"}}}]));
    patched(json!([{"op": "replace", "path": "id", "value": "u-1"}]));
    let error = patch_error(json!([{"op": "replace", "path": "id", "value": "u-2"}]));
    assert_eq!(
        error.to_string(),
        "Operations[0] (replace): `id` is readOnly; it can only be \"set\" to the value it already has"
    );
    assert!(matches!(
        patch_error(json!([{"op": "remove", "path": "meta"}])),
        PatchError::Mutability { .. }
    ));
    assert!(matches!(
        patch_error(json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}])),
        PatchError::Mutability { .. }
    ));
}

#[test]
fn later_failure_rolls_back_earlier_operations() {
    let error = patch_error(json!([
        {"op": "replace", "path": "title", "value": "Dr"},
        {"op": "replace", "path": "id", "value": "other"}
    ]));
    assert!(matches!(error, PatchError::Mutability { index: 1, .. }));
}

// ---------------------------------------------------------------- remove

#[test]
fn remove_requires_a_path() {
    let error = patch_error(json!([{"op": "remove"}]));
    assert!(matches!(error, PatchError::NoTarget { .. }), "{error}");
}

#[test]
fn remove_targets_attribute_sub_attribute_and_matching_elements() {
    let resource = patched(json!([
        {"op": "remove", "path": "active"},
        {"op": "remove", "path": "name.familyName"},
        {"op": "remove", "path": "emails[type eq \"work\"]"}
    ]));
    assert!(resource.get("active").is_none());
    assert_eq!(resource["name"], json!({"givenName": "Alice"}));
    assert_eq!(
        resource["emails"],
        json!([{"value": "alice@home.example", "type": "home"}])
    );
}

#[test]
fn remove_with_filter_matching_nothing_is_a_no_op() {
    let resource = patched(
        json!([{"op": "remove", "path": "emails[type eq \"other\"]"}, {"op": "remove", "path": "title"}]),
    );
    let mut expected = alice();
    user().canonicalize(&mut expected);
    assert_eq!(resource, expected);
}

#[test]
fn remove_of_last_element_or_sub_attribute_unassigns_the_attribute() {
    let resource = patched(json!([
        {"op": "remove", "path": "emails[value ew \".example\"]"},
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "name.familyName"}
    ]));
    assert!(resource.get("emails").is_none());
    assert!(resource.get("name").is_none());
}

#[test]
fn remove_with_value_list_removes_only_listed_members() {
    let mut team = json!({"schemas": [GROUP], "id": "g-1", "displayName": "Team", "members": [{"value": "u-1"}, {"value": "u-2", "display": "Bob"}, {"value": "u-3"}]});
    let ops = parse_patch_request(
        &body(json!([
            {"op": "Remove", "path": "members", "value": [{"value": "u-2"}, {"value": "u-9"}]}
        ])),
        user(),
    )
    .unwrap();
    apply_patch(&mut team, &ops, group()).unwrap();
    assert_eq!(team["members"], json!([{"value": "u-1"}, {"value": "u-3"}]));
}

#[test]
fn group_members_add_and_remove_by_filter() {
    let mut team = json!({"schemas": [GROUP], "displayName": "Team"});
    let ops = parse_patch_request(
        &body(json!([
            {"op": "add", "path": "members", "value": [{"value": "u-1"}, {"value": "u-2"}]},
            {"op": "add", "path": "members", "value": [{"value": "u-1"}]},
            {"op": "remove", "path": "members[value eq \"u-1\"]"}
        ])),
        group(),
    )
    .unwrap();
    apply_patch(&mut team, &ops, group()).unwrap();
    assert_eq!(team["members"], json!([{"value": "u-2"}]));
}

#[test]
fn removing_an_extension_empties_it_out_of_schemas() {
    let mut resource = alice();
    resource["schemas"] = json!([USER, ENTERPRISE_USER]);
    resource[ENTERPRISE_USER] = json!({"manager": {"value": "m-1"}});
    patch(
        &mut resource,
        json!([{"op": "remove", "path": format!("{ENTERPRISE_USER}:manager")}]),
    )
    .unwrap();
    assert!(resource.get(ENTERPRISE_USER).is_none());
    assert_eq!(resource["schemas"], json!([USER]));
}

#[test]
fn remove_whole_extension_by_urn() {
    let mut resource = alice();
    resource[ENTERPRISE_USER] = json!({"department": "R&D"});
    patch(
        &mut resource,
        json!([{"op": "remove", "path": ENTERPRISE_USER}]),
    )
    .unwrap();
    assert!(resource.get(ENTERPRISE_USER).is_none());
}

#[test]
fn attribute_names_are_canonicalised_to_schema_case() {
    let resource = patched(
        json!([{"op": "add", "path": "NickName", "value": "Al"}, {"op": "add", "path": "xunknown", "value": 1}]),
    );
    assert_eq!(resource["nickName"], "Al");
    assert_eq!(
        resource["xUnknown"], 1,
        "unknown attributes keep the resource's spelling"
    );
}

// ---------------------------------------------------------------- properties

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z@.]{0,8}".prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn any_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("value".to_owned()),
                    Just("type".to_owned()),
                    Just("primary".to_owned()),
                    "[a-z]{1,4}"
                ],
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("userName".to_owned()),
        Just("name".to_owned()),
        Just("emails".to_owned()),
        Just("active".to_owned()),
        Just("id".to_owned()),
        Just("meta".to_owned()),
        Just("xCustom".to_owned()),
        Just(ENTERPRISE_USER.to_owned()),
        "[a-z]{1,5}",
    ]
}

fn resource() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(key(), any_value(), 0..6).prop_map(|m| {
        let mut obj: serde_json::Map<String, Value> = m.into_iter().collect();
        obj.insert("schemas".into(), json!([USER]));
        Value::Object(obj)
    })
}

fn path_text() -> impl Strategy<Value = String> {
    prop_oneof![
        key(),
        Just("name.givenName".to_owned()),
        Just("emails.value".to_owned()),
        Just("emails[type eq \"work\"]".to_owned()),
        Just("emails[type eq \"work\"].value".to_owned()),
        Just("emails[value co \"@\" or primary eq true].primary".to_owned()),
        Just(format!("{ENTERPRISE_USER}:manager.value")),
        Just(format!("{ENTERPRISE_USER}:department")),
        Just("xCustom[a pr].b".to_owned()),
        "[a-z]{1,3}(\\.[a-z]{1,3})?",
    ]
}

fn operation() -> impl Strategy<Value = PatchOperation> {
    (
        prop_oneof![
            Just(PatchOpKind::Add),
            Just(PatchOpKind::Replace),
            Just(PatchOpKind::Remove)
        ],
        proptest::option::of(path_text()),
        proptest::option::of(any_value()),
    )
        .prop_map(|(op, path, value)| PatchOperation {
            op,
            path: path.and_then(|p| PatchPath::parse(&p).ok()),
            value,
        })
}

fn well_formed_user() -> impl Strategy<Value = Value> {
    (
        "[a-z]{1,8}",
        proptest::option::of("[A-Z][a-z]{0,6}"),
        prop::collection::vec(
            (
                "[a-z]{1,6}@example\\.com",
                prop_oneof![Just("work"), Just("home")],
            ),
            0..3,
        ),
        proptest::option::of("[A-Z]{1,4}"),
    )
        .prop_map(|(user_name, display, emails, department)| {
            let mut resource =
                json!({"schemas": [USER], "id": "u-1", "userName": user_name, "xCustom": {"k": 1}});
            if let Some(display) = display {
                resource["displayName"] = json!(display);
            }
            if !emails.is_empty() {
                resource["emails"] = emails
                    .into_iter()
                    .map(|(value, kind)| json!({"value": value, "type": kind}))
                    .collect();
            }
            if let Some(department) = department {
                resource["schemas"] = json!([USER, ENTERPRISE_USER]);
                resource[ENTERPRISE_USER] = json!({"department": department});
            }
            resource
        })
}

proptest! {
    #[test]
    fn random_operations_on_random_resources_never_panic(
        mut resource in resource(),
        ops in prop::collection::vec(operation(), 1..5),
    ) {
        let before = resource.clone();
        if apply_patch(&mut resource, &ops, user()).is_err() {
            prop_assert_eq!(resource, before);
        }
    }

    #[test]
    fn random_request_bodies_never_panic(ops in any_value()) {
        if let Ok(ops) = parse_patch_request(&body(ops), user()) {
            let mut resource = alice();
            let _ = apply_patch(&mut resource, &ops, user());
        }
    }

    #[test]
    fn adding_then_removing_an_email_restores_the_original(
        original in well_formed_user(),
        local in "[a-z]{1,8}",
    ) {
        let fresh = format!("fresh-{local}@new.example");
        let mut resource = original.clone();
        let ops = parse_patch_request(&body(json!([
            {"op": "add", "path": "emails", "value": [{"value": fresh, "type": "other"}]},
            {"op": "remove", "path": "emails", "value": [{"value": fresh}]},
        ])), user()).unwrap();
        apply_patch(&mut resource, &ops, user()).unwrap();
        prop_assert_eq!(resource, original);
    }

    #[test]
    fn adding_then_removing_an_absent_attribute_restores_the_original(
        original in well_formed_user(),
        value in "[a-z]{0,8}",
        path in prop_oneof![
            Just("nickName".to_owned()),
            Just("name.middleName".to_owned()),
            Just(format!("{ENTERPRISE_USER}:costCenter")),
            Just("phoneNumbers[type eq \"work\"].value".to_owned()),
        ],
    ) {
        let mut resource = original.clone();
        let remove_path = if path.starts_with("phoneNumbers") { "phoneNumbers[type eq \"work\"]".to_owned() } else { path.clone() };
        let ops = parse_patch_request(&body(json!([
            {"op": "add", "path": path, "value": value},
            {"op": "remove", "path": remove_path},
        ])), user()).unwrap();
        apply_patch(&mut resource, &ops, user()).unwrap();
        prop_assert_eq!(resource, original);
    }
}

#[test]
fn patch_errors_become_400s_with_the_matching_scim_type() {
    use crate::error::{ScimError, ScimType};
    let cases = [
        (json!([{"op": "remove"}]), ScimType::NoTarget),
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            ScimType::Mutability,
        ),
        (
            json!([{"op": "replace", "path": "active", "value": 1}]),
            ScimType::InvalidValue,
        ),
        (
            json!([{"op": "replace", "path": "name[a pr]", "value": {}}]),
            ScimType::InvalidPath,
        ),
        (
            json!([{"op": "replace", "path": "a..b", "value": 1}]),
            ScimType::InvalidPath,
        ),
        (json!([{"op": "merge"}]), ScimType::InvalidSyntax),
    ];
    for (ops, scim_type) in cases {
        let error = patch(&mut alice(), ops.clone()).unwrap_err();
        let wire = ScimError::from(error.clone());
        assert_eq!(
            (wire.status.as_u16(), wire.scim_type),
            (400, Some(scim_type)),
            "{ops}"
        );
        assert_eq!(wire.detail, error.to_string());
    }
}

#[test]
fn sub_attribute_names_in_values_match_in_any_case() {
    let mut team = json!({"schemas": [GROUP], "id": "g-1", "displayName": "Team", "members": [{"value": "1"}]});
    let ops = parse_patch_request(
        &body(json!([
            {"op": "replace", "path": "members", "value": [{"Value": "4"}, {"VALUE": "6"}]}
        ])),
        group(),
    )
    .unwrap();
    apply_patch(&mut team, &ops, group()).unwrap();
    assert_eq!(team["members"], json!([{"value": "4"}, {"value": "6"}]));

    let resource = patched(json!([
        {"op": "replace", "path": "emails", "value": [{"VALUE": "new@example.com", "Primary": true}]}
    ]));
    assert_eq!(
        resource["emails"],
        json!([{"value": "new@example.com", "primary": true}])
    );
}

#[test]
fn path_less_member_keys_are_canonical_in_any_case_and_urn_qualified() {
    let nested =
        json!({"urn:ietf:params:scim:schemas:core:2.0:Group": {"Members": [{"Value": "7"}]}});
    let nested_ops =
        parse_patch_request(&body(json!([{"op": "add", "value": nested}])), group()).unwrap();
    assert_eq!(
        nested_ops[0].value,
        Some(json!({"members": [{"value": "7"}]}))
    );
    for key in [
        "members",
        "Members",
        "urn:ietf:params:scim:schemas:core:2.0:Group:members",
    ] {
        let ops = parse_patch_request(
            &body(json!([{"op": "add", "value": {key: [{"Value": "7"}]}}])),
            group(),
        )
        .unwrap();
        assert_eq!(
            ops[0].value,
            Some(json!({"members": [{"value": "7"}]})),
            "{key}"
        );
    }
}

#[test]
fn patching_a_value_given_away_is_patching_in_place() {
    let ops = body(json!([
        {"op": "replace", "path": "name.FAMILYNAME", "value": "Hargreaves"},
        {"op": "add", "path": "title", "value": "Engineer"}
    ]));
    let ops = parse_patch_request(&ops, user()).unwrap();
    let mut in_place = alice();
    apply_patch(&mut in_place, &ops, user()).unwrap();
    let given = super::patched(alice(), &ops, user()).unwrap();
    assert_eq!(given.to_string(), in_place.to_string());
    assert_eq!(given["name"]["familyName"], "Hargreaves");

    let failing = body(json!([
        {"op": "add", "path": "title", "value": "Engineer"},
        {"op": "replace", "path": "id", "value": "u-2"}
    ]));
    let failing = parse_patch_request(&failing, user()).unwrap();
    let error = super::patched(alice(), &failing, user()).unwrap_err();
    let mut untouched = alice();
    assert_eq!(
        apply_patch(&mut untouched, &failing, user())
            .unwrap_err()
            .to_string(),
        error.to_string()
    );
    assert_eq!(untouched, alice());
}
