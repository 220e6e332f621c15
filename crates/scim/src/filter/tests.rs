use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::schema::{ENTERPRISE_USER, USER, group, user};

fn parse(s: &str) -> Filter {
    parse_filter(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn error(s: &str) -> String {
    parse_filter(s).unwrap_err().to_string()
}

fn alice() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE_USER],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "Alice@Example.com",
        "externalId": "Ext-1",
        "active": true,
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "emails": [
            {"value": "alice@work.example", "type": "work", "primary": true},
            {"value": "alice@home.example", "type": "home"}
        ],
        "x509Certificates": [],
        "nickName": "",
        "meta": {"created": "2024-05-01T12:00:00Z", "lastModified": "2024-05-02T09:30:00+02:00"},
        ENTERPRISE_USER: {"department": "R&D", "manager": {"value": "m-1"}},
        "loginCount": 42
    })
}

fn user_matches(filter: &str) -> bool {
    matches(&parse(filter), &alice(), user())
}

#[test]
fn comparison_parses_into_path_op_and_json_value() {
    assert_eq!(
        parse(r#"userName Eq "a\"b""#),
        Filter::Compare {
            path: AttrPath::simple("userName"),
            op: CompareOp::Eq,
            value: json!("a\"b")
        }
    );
    assert_eq!(parse("x gt -1.5e3").to_string(), "x gt -1500.0");
    assert_eq!(parse("x eq TRUE").to_string(), "x eq true");
    assert_eq!(parse("x ne null").to_string(), "x ne null");
    assert_eq!(
        parse("title PR"),
        Filter::Present(AttrPath::simple("title"))
    );
}

#[test]
fn floats_print_and_parse_back_exactly() {
    // serde_json's default float parser can be an ulp off; this one was.
    let value = json!(-7.687521147095871e223);
    let filter = Filter::Compare {
        path: AttrPath::simple("x"),
        op: CompareOp::Ew,
        value,
    };
    assert_eq!(parse(&filter.to_string()), filter);
}

#[test]
fn and_binds_tighter_than_or() {
    let filter = parse("a pr or b pr and c pr");
    let Filter::Or(_, right) = &filter else {
        panic!("{filter:?}")
    };
    assert!(matches!(**right, Filter::And(..)));
    assert_eq!(
        parse("(a pr or b pr) and c pr").to_string(),
        "(a pr or b pr) and c pr"
    );
}

#[test]
fn not_and_grouping_are_case_insensitive() {
    assert_eq!(
        parse("NOT (a pr) AND (b pr)").to_string(),
        "not (a pr) and b pr"
    );
    assert_eq!(parse("not(a pr)").to_string(), "not (a pr)");
}

#[test]
fn value_paths_keep_their_inner_filter_relative() {
    let filter = parse(r#"emails[type eq "work" and value co "@example.com"]"#);
    let Filter::ValuePath {
        path,
        filter: inner,
    } = &filter
    else {
        panic!("{filter:?}")
    };
    assert_eq!(path, &AttrPath::simple("emails"));
    assert!(matches!(**inner, Filter::And(..)));
}

#[test]
fn entra_trailing_sub_attribute_comparison_becomes_a_value_path() {
    assert_eq!(
        parse(r#"emails[type eq "work"].value eq "x""#),
        parse(r#"emails[type eq "work" and value eq "x"]"#)
    );
}

#[test]
fn urn_qualified_paths_are_accepted() {
    let filter = parse(&format!(r#"{ENTERPRISE_USER}:manager.value eq "m-1""#));
    assert!(matches(&filter, &alice(), user()));
}

#[test]
fn errors_point_at_the_offending_token() {
    assert_eq!(
        error(r#"userName eqq "x""#),
        "filter: expected a comparison operator (eq, ne, co, sw, ew, gt, ge, lt, le) or `pr` after \
         `userName` at position 9, found `eqq`"
    );
    assert!(error(r#"userName eq bob"#).contains("a value after `eq`"));
    assert!(error(r#"userName eq "bob"#).contains("never closed"));
    assert!(error(r#"(a pr"#).contains("`)` to close the `(` at position 0"));
    assert!(error(r#"emails[type pr"#).contains("`]` to close `emails[`"));
    assert!(error(r#"a pr b pr"#).contains("`and`, `or` or the end"));
    assert!(error(r#"a pr and"#).contains("found the end of the filter"));
    assert!(error(r#"a[b[c pr]]"#).contains("cannot contain another"));
    assert!(error("a eq 1 ; drop").contains("unexpected character `;`"));
    assert!(error("9a pr").contains("not a valid attribute path"));
    assert_eq!(parse_filter("   "), Err(FilterError::Empty));
}

#[test]
fn hostile_input_is_refused_without_recursing_deeply() {
    let deep = format!("{}a pr{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(matches!(
        parse_filter(&deep),
        Err(FilterError::TooLong { .. })
    ));
    let deep = format!("{}a pr{}", "(".repeat(33), ")".repeat(33));
    assert!(error(&deep).contains("more than 32 levels"));
    let ok = format!("{}a pr{}", "(".repeat(32), ")".repeat(32));
    assert!(parse_filter(&ok).is_ok());
    let nots = format!("{}a pr{}", "not (".repeat(40), ")".repeat(40));
    assert!(matches!(
        parse_filter(&nots),
        Err(FilterError::TooDeep { .. })
    ));
    // The longest chain 8 KiB allows is ~900 deep; printing and evaluating
    // it must fit a test thread's 2 MiB stack (a tokio worker's size).
    let long_chain = vec!["a pr"; 900].join(" or ");
    let filter = parse(&long_chain);
    assert_eq!(filter.to_string(), long_chain);
    assert!(!matches(&filter, &alice(), user()));
}

#[test]
fn string_comparison_is_case_insensitive_unless_case_exact() {
    assert!(user_matches(r#"userName eq "alice@example.com""#));
    assert!(user_matches(r#"USERNAME sw "ALICE""#));
    assert!(user_matches(r#"externalId eq "Ext-1""#));
    assert!(
        !user_matches(r#"externalId eq "ext-1""#),
        "externalId is caseExact"
    );
    assert!(user_matches(r#"unknownAttr eq "x" or nickName eq """#));
}

#[test]
fn contains_starts_and_ends_with() {
    assert!(user_matches(r#"name.familyName co "DDE""#));
    assert!(user_matches(r#"name.familyName ew "ell""#));
    assert!(!user_matches(r#"name.familyName sw "ell""#));
}

#[test]
fn multi_valued_attributes_match_if_any_element_matches() {
    assert!(user_matches(r#"emails.value ew "@home.example""#));
    assert!(
        user_matches(r#"emails co "home""#),
        "compares each element's value"
    );
    assert!(user_matches(
        r#"emails[type eq "work" and primary eq true]"#
    ));
    assert!(!user_matches(
        r#"emails[type eq "home" and primary eq true]"#
    ));
    assert!(user_matches(
        r#"emails[type eq "work"].value eq "ALICE@work.example""#
    ));
    assert!(!user_matches(
        r#"emails[type eq "home"].value eq "alice@work.example""#
    ));
}

#[test]
fn group_members_compare_on_value() {
    let resource = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g", "members": [{"value": "u-1"}, {"value": "u-2"}]});
    assert!(matches(&parse(r#"members eq "u-2""#), &resource, group()));
    assert!(matches(
        &parse(r#"members[value eq "u-1"]"#),
        &resource,
        group()
    ));
    assert!(!matches(&parse(r#"members eq "u-3""#), &resource, group()));
}

#[test]
fn date_times_compare_chronologically() {
    // 09:30+02:00 is 07:30Z, so it is *before* a naive string comparison would say.
    assert!(user_matches(
        r#"meta.lastModified lt "2024-05-02T08:00:00Z""#
    ));
    assert!(user_matches(
        r#"meta.lastModified eq "2024-05-02T07:30:00Z""#
    ));
    assert!(user_matches(r#"meta.created ge "2024-05-01T12:00:00Z""#));
    assert!(!user_matches(r#"meta.created gt "2024-05-01T12:00:00Z""#));
}

#[test]
fn numbers_and_booleans_compare_by_kind() {
    assert!(user_matches("loginCount gt 41"));
    assert!(user_matches("loginCount le 42.0"));
    assert!(user_matches("active eq true"));
    assert!(!user_matches("active gt false"), "booleans have no order");
    assert!(
        !user_matches("name gt \"a\""),
        "complex values have no order"
    );
    assert!(
        !user_matches(r#"active eq "true""#),
        "a string is not a boolean"
    );
}

#[test]
fn present_is_false_for_empty_values() {
    assert!(user_matches("emails pr"));
    assert!(user_matches("name.givenName pr"));
    assert!(!user_matches("nickName pr"));
    assert!(!user_matches("x509Certificates pr"));
    assert!(!user_matches("title pr"));
    let empty = json!({"name": {}});
    assert!(!matches(&parse("name pr"), &empty, user()));
}

#[test]
fn null_ne_and_not_semantics() {
    assert!(user_matches("title eq null"));
    assert!(!user_matches("userName eq null"));
    assert!(user_matches("userName ne null"));
    assert!(
        user_matches(r#"title ne "x""#),
        "ne is true for an absent attribute"
    );
    assert!(user_matches(r#"not (userName eq "bob")"#));
    assert!(user_matches(
        r#"userName eq "bob" or (active eq true and not (title pr))"#
    ));
}

#[test]
fn extension_attributes_need_their_urn() {
    assert!(!user_matches(r#"department eq "R&D""#));
    assert!(user_matches(&format!(
        r#"{ENTERPRISE_USER}:department eq "r&d""#
    )));
    assert!(user_matches(&format!(r#"{USER}:userName pr"#)));
}

#[test]
fn non_object_resources_match_nothing() {
    assert!(!matches(&parse("a pr"), &json!("x"), user()));
}

// ---------------------------------------------------------------- properties

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z][A-Za-z0-9_]{0,6}"
}

fn attr_path() -> impl Strategy<Value = AttrPath> {
    (
        proptest::option::of(Just(ENTERPRISE_USER.to_owned())),
        name(),
        proptest::option::of(name()),
    )
        .prop_map(|(uri, name, sub)| AttrPath { uri, name, sub })
}

fn comp_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Co),
        Just(CompareOp::Sw),
        Just(CompareOp::Ew),
        Just(CompareOp::Gt),
        Just(CompareOp::Ge),
        Just(CompareOp::Lt),
        Just(CompareOp::Le),
    ]
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (attr_path(), op(), comp_value()).prop_map(|(path, op, value)| Filter::Compare {
            path,
            op,
            value
        }),
        attr_path().prop_map(Filter::Present),
    ]
}

/// Filters without value paths, usable both at top level and inside one.
fn plain_filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    let value_path = (name(), plain_filter()).prop_map(|(name, inner)| Filter::ValuePath {
        path: AttrPath::simple(&name),
        filter: Box::new(inner),
    });
    prop_oneof![plain_filter(), value_path].prop_recursive(3, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

/// Paths and values alice holds (and some she does not), in any case.
fn alice_leaf() -> impl Strategy<Value = Filter> {
    let path = prop_oneof![
        Just("userName"),
        Just("USERNAME"),
        Just("id"),
        Just("active"),
        Just("name.givenName"),
        Just("name"),
        Just("emails"),
        Just("emails.value"),
        Just("emails.Type"),
        Just("emails.primary"),
        Just("x509Certificates"),
        Just("nickName"),
        Just("meta.created"),
        Just("loginCount"),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        Just("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
        Just("absent"),
    ]
    .prop_map(|p| AttrPath::parse(p).unwrap());
    let value = prop_oneof![
        Just(json!("alice@example.com")),
        Just(json!("Alice")),
        Just(json!("alice")),
        Just(json!("work")),
        Just(json!("r&d")),
        Just(json!("m-1")),
        Just(json!("2024-05-01T13:00:00+01:00")),
        Just(json!(42)),
        Just(json!(41.5)),
        Just(json!(true)),
        Just(json!(false)),
        Just(json!("")),
        Just(Value::Null),
    ];
    prop_oneof![
        (path.clone(), op(), value).prop_map(|(path, op, value)| Filter::Compare {
            path,
            op,
            value
        }),
        path.prop_map(Filter::Present),
    ]
}

fn alice_filter() -> impl Strategy<Value = Filter> {
    let value_path =
        (prop_oneof![Just("emails"), Just("name")], alice_leaf()).prop_map(|(name, inner)| {
            Filter::ValuePath {
                path: AttrPath::simple(name),
                filter: Box::new(inner),
            }
        });
    prop_oneof![alice_leaf(), value_path].prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Filter::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Filter::Not(Box::new(a))),
        ]
    })
}

/// `value` as a tree taken apart at every level, its strings lent as text.
fn taken_apart(value: &Value) -> crate::json::Tree<'_> {
    use crate::json::{Members, Tree};
    match value {
        Value::Object(map) => {
            let mut members = Members::default();
            for (key, item) in map {
                members.insert(key.as_str(), taken_apart(item));
            }
            Tree::Object(members)
        }
        Value::Array(items) => Tree::Array(items.iter().map(taken_apart).collect()),
        Value::String(text) => Tree::Text(text.as_str().into()),
        other => Tree::Borrowed(other),
    }
}

proptest! {
    /// A filter says the same of a resource whether it is a value or a
    /// tree made from one (a page of users is filtered as trees).
    #[test]
    fn a_tree_matches_as_its_value_does(filter in prop_oneof![alice_filter(), filter()]) {
        let value = alice();
        let expected = matches(&filter, &value, user());
        prop_assert_eq!(matches(&filter, taken_apart(&value).view(), user()), expected, "{}", filter);
        prop_assert_eq!(matches(&filter, crate::json::Tree::Borrowed(&value).view(), user()), expected, "{}", filter);
    }

    #[test]
    fn printed_filters_parse_back_to_the_same_tree(filter in filter()) {
        let printed = filter.to_string();
        prop_assert_eq!(parse_filter(&printed), Ok(filter), "{}", printed);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,80}") {
        let _ = parse_filter(&s);
    }

    #[test]
    fn filter_shaped_noise_never_panics(s in r#"[a-z ()\[\]".\\0-9:-]{0,60}|((and|or|not|pr|eq|\(|\)|\[|\]|"x"|a|1| )){0,30}"#) {
        if let Ok(filter) = parse_filter(&s) {
            let _ = matches(&filter, &alice(), user());
        }
    }

    #[test]
    fn evaluation_never_panics(filter in filter()) {
        let _ = matches(&filter, &alice(), user());
        let _ = matches(&filter, &json!({"emails": [1, "x", null, {"value": [1]}]}), user());
    }
}

#[test]
fn filter_and_path_errors_become_invalid_filter_and_invalid_path() {
    use crate::error::{ScimError, ScimType};
    let error = parse_filter("userName eqq 1").unwrap_err();
    let wire = ScimError::from(error.clone());
    assert_eq!(
        (wire.status.as_u16(), wire.scim_type),
        (400, Some(ScimType::InvalidFilter))
    );
    assert_eq!(wire.detail, error.to_string());
    let wire = ScimError::from(AttrPath::parse("a.b.c").unwrap_err());
    assert_eq!(wire.scim_type, Some(ScimType::InvalidPath));
}

#[test]
fn references_is_decided_by_the_parsed_filter_not_its_text() {
    let named = |text: &str| parse_filter(text).unwrap().references("members");
    assert!(named(r#"members[value eq "1"]"#));
    assert!(named(r#"displayName eq "x" and not (Members pr)"#));
    assert!(!named(r#"displayName eq "members""#));
    assert!(!named(
        r#"displayName co "members" or externalId eq "members""#
    ));
}
