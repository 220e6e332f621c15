use super::*;

fn errors_of(text: &str) -> Vec<String> {
    let source = SourceFile::new("m.toml", text);
    let mut report = Report::default();
    let compiled = compile(&source, &mut report);
    assert!(compiled.is_none() || !report.has_errors());
    report.diagnostics.iter().map(|d| d.to_string()).collect()
}

fn legacy_with(from: &str, to: &str) -> String {
    let text = include_str!("../../../../mappings/upstream/legacy.toml");
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

/// `m.toml:LINE:`, LINE the line of `needle`'s first occurrence in `text`
/// (so the tests follow the shipped mappings as they change).
fn at_line_of(text: &str, needle: &str) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in the text"));
    format!("m.toml:{}:", text[..offset].matches('\n').count() + 1)
}

/// Each error, with the `line:col` it points at.
fn located(errors: &[String], needle: &str) -> String {
    errors
        .iter()
        .find(|e| e.contains(needle))
        .unwrap_or_else(|| panic!("no error with {needle:?} in {errors:#?}"))
        .clone()
}

#[test]
fn fallbacks_and_absent_values_are_refused_where_they_cannot_apply() {
    let with = |key: &str| {
        legacy_with(
            "scim = \"emails.value\"\nfield = \"email\"\n",
            &format!("scim = \"emails.value\"\nfield = \"email\"\n{key}\n"),
        )
    };
    let text = with("fallback = [\"emails.value\"]");
    let itself = errors_of(&text);
    let line = at_line_of(&text, "fallback = ");
    assert!(
        located(&itself, "is the attribute itself").contains(&format!("{line}13")),
        "{itself:?}"
    );
    let unknown = errors_of(&with("fallback = [\"nickname\", \"login\"]"));
    assert!(located(&unknown, "`login` is not an attribute").contains(&format!("{line}25")));
    let text = with("direction = \"read\"\nfallback = [\"userName\"]");
    let read_only = errors_of(&text);
    let fallback_line = at_line_of(&text, "fallback = ");
    assert!(located(&read_only, "it is read-only").contains(&format!("{fallback_line}13")));
    let table = errors_of(&with("absent = [\"\", { x = 1 }]"));
    assert!(
        located(&table, "each a string, number or boolean").contains(&format!("{line}10")),
        "{table:?}"
    );
    assert!(
        errors_of(&with(
            "fallback = [\"userName\"]\nabsent = [\"\", 0, false]"
        ))
        .is_empty()
    );
    let whole = errors_of(&legacy_with(
        "timeout_ms = 10000\n",
        "timeout_ms = 10000\nabsent = [[\"\"]]\n",
    ));
    assert!(located(&whole, "`absent` lists upstream values").contains(":10"));
}

#[test]
fn membership_keys_a_style_needs_or_does_not_use_are_named_at_their_own_line() {
    let text = legacy_with("style = \"endpoints\"", "style = \"user_field\"");
    let user_field = errors_of(&text);
    let style = at_line_of(&text, "style = \"user_field\"");
    assert!(located(&user_field, "needs `field`").contains(&format!("{style}9")));
    let member_field = at_line_of(&text, "member_field = ");
    assert!(
        located(&user_field, "does not use `member_field`").contains(&format!("{member_field}16"))
    );
    let add = at_line_of(&text, "add = ");
    assert!(located(&user_field, "does not use `add`").contains(&add));
    let lookup = at_line_of(&text, "lookup = ");
    assert!(located(&user_field, "does not use `lookup`").contains(&lookup));
    let text = include_str!("../../../../mappings/upstream/legacy.toml");
    let start = text.find("[groups.members]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    let no_members = errors_of(&format!("{}{}", &text[..start], &text[end..]));
    assert!(
        // At the groups' `id`, the table's first key.
        located(&no_members, "declares no [groups.members]").contains(&at_line_of(
            text,
            "id = { field = \"id\", type = \"integer\" }\nmeta = { created = \"created_at\", \
             last_modified = \"updated_at\", version = \"version\" }\nupdate_precondition"
        )),
        "{no_members:?}"
    );
}

#[test]
fn member_placeholders_are_refused_where_no_members_are_bound_and_required_where_they_are() {
    let wrike = include_str!("../../../../mappings/upstream/wrike.toml");
    let compile_errors = |text: &str| errors_of(text);
    let text = legacy_with(
        "remove = { method = \"DELETE\", path = \"/api/v1/teams/{id}/members/{member}\" }",
        "remove = { method = \"DELETE\", path = \"/api/v1/teams/{id}/members/{member}\", body = { all = \"{members}\" } }",
    );
    let unbound = compile_errors(&text);
    assert!(located(&unbound, "uses `{members}`").contains(&at_line_of(&text, "remove = ")));
    let text = legacy_with(
        "[users.update]\nmethod = \"PATCH\"\npath = \"/api/v1/users/{id}\"",
        "[users.update]\nmethod = \"PATCH\"\npath = \"/api/v1/users/{id}\"\nbody = { who = \"{member}\" }",
    );
    let on_update = compile_errors(&text);
    assert!(located(&on_update, "uses `{member}`").contains(&at_line_of(&text, "body = { who")));
    let without_ids = wrike.replacen(
        "body = { addMembers = \"{members}\" }",
        "body = { addMembers = [] }",
        1,
    );
    assert_ne!(without_ids, wrike);
    let errors = compile_errors(&without_ids);
    assert!(
        located(&errors, "must send the member ids")
            .contains(&at_line_of(&without_ids, "body = { addMembers = [] }"))
    );
    assert!(compile_errors(wrike).iter().all(|e| !e.contains("error")));
}

#[test]
fn a_list_declared_unpaged_by_design_is_not_warned_about() {
    let paging = "paging = { style = \"page\", page_param = \"page\", size_param = \"per_page\", first_page = 1, max_page_size = 100, total_header = \"X-Total-Count\" }\n";
    let unpaged = errors_of(&legacy_with(paging, ""));
    assert!(located(&unpaged, "declares no paging").contains("style = \"none\""));
    let by_design = errors_of(&legacy_with(paging, "paging = { style = \"none\" }\n"));
    assert!(
        !by_design.iter().any(|e| e.contains("[users.list]")),
        "{by_design:?}"
    );
}

#[test]
fn answer_keys_are_refused_where_the_call_does_not_read_them_at_their_own_line() {
    let text = legacy_with(
        "[users.get]\nmethod = \"GET\"\npath = \"/api/v1/users/{id}\"",
        "[users.get]\nmethod = \"GET\"\npath = \"/api/v1/users/{id}\"\nitems = \"/data/0\"",
    )
    .replacen(
        "[users.list]\nmethod = \"GET\"",
        "[users.list]\nmethod = \"GET\"\nrecord = \"/data/0\"\nid = \"/id\"",
        1,
    )
    .replacen(
        "[users.create]\nmethod = \"POST\"",
        "[users.create]\nmethod = \"POST\"\nid = \"data/0/userId\"",
        1,
    );
    let errors = errors_of(&text);
    let line_of = |needle: &str| {
        let at = text.find(needle).unwrap();
        text[..at].lines().count() + 1
    };
    let items = located(&errors, "`items` applies to list calls");
    assert!(
        items.starts_with(&format!("m.toml:{}:", line_of("items = \"/data/0\""))),
        "{items}"
    );
    located(&errors, "`record` applies to single-record calls");
    located(&errors, "`id` applies to create calls");
    let pointer = located(&errors, "is not a JSON pointer");
    assert!(
        pointer.starts_with(&format!("m.toml:{}:", line_of("id = \"data/0/userId\""))),
        "{pointer}"
    );
}

#[test]
fn array_positions_need_brackets_and_content_types_must_be_sendable() {
    let text = legacy_with("field = \"job_title\"", "field = \"profiles.0.title\"").replacen(
        "path = \"/api/v1/users/{id}\"\npartial = true",
        "path = \"/api/v1/users/{id}\"\npartial = true\ncontent_type = \"text/xml\"",
        1,
    );
    let errors = errors_of(&text);
    located(
        &errors,
        "write it in brackets after the array's name, e.g. `profiles[0].email`",
    );
    located(&errors, "`text/xml` is not a content_type it can honour");
}

#[test]
fn a_body_template_must_fill_every_field_its_call_carries() {
    let text = legacy_with(
        "path = \"/api/v1/users/{id}\"\npartial = true",
        "path = \"/api/v1/users/{id}\"\npartial = true\nfields = [\"job_title\", \"org\"]\nbody = { title = \"{job_title}\" }",
    );
    located(
        &errors_of(&text),
        "`org` is among the call's `fields`, but its body never sends it",
    );
}

#[test]
fn keys_a_template_cannot_honour_are_refused() {
    for key in [
        "values = [{ scim = \"a\", upstream = \"b\" }]",
        "default = \"x\"",
        "type = \"string\"",
    ] {
        let text = legacy_with(
            "field = \"job_title\"",
            &format!("template = \"{{job_title}}\"\n{key}"),
        );
        let errors = errors_of(&text);
        located(&errors, "a `template` is composed text, read-only");
    }
    let text = legacy_with(
        "field = \"job_title\"",
        "field = \"job_title\"\nvalues = [{ scim = \"a\", upstream = { job_title = \"b\", org = \"c\" } }]",
    );
    located(&errors_of(&text), "so drop `field`");
}

#[test]
fn a_form_content_type_or_encoding_makes_a_form_call() {
    for (from, to) in [
        (
            "partial = true",
            "partial = true\ncontent_type = \"application/x-www-form-urlencoded\"",
        ),
        ("partial = true", "partial = true\nencoding = \"form\""),
    ] {
        let text = legacy_with(from, to);
        let source = SourceFile::new("m.toml", &text);
        let mut report = Report::default();
        let mapping = compile(&source, &mut report).unwrap_or_else(|| panic!("{report}"));
        assert_eq!(mapping.users.update.encoding, BodyEncoding::Form, "{to}");
    }
    let text = legacy_with(
        "partial = true",
        "partial = true\nencoding = \"json\"\ncontent_type = \"application/x-www-form-urlencoded\"",
    );
    located(&errors_of(&text), "contradicts `encoding`");
}

#[test]
fn all_mistakes_are_collected_in_one_pass() {
    let text = legacy_with("field = \"job_title\"", "field = \"job..title\"")
        .replacen("scim = \"userName\"", "scim = \"userNmae\"", 1)
        .replacen(
            "base_url = \"http://127.0.0.1:9090\"",
            "base_url = \"ftp://x\"",
            1,
        );
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`job..title` is not a field path"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`userNmae` is not an attribute of the User schemas"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("m.toml:7:12: error: base_url must be an http(s) URL"))
    );
}

#[test]
fn unknown_key_and_bad_enum_value_say_what_was_expected() {
    let errors = errors_of(&legacy_with("method = \"PATCH\"", "method = \"PATCHY\""));
    assert!(
        errors[0].contains("PATCHY") && errors[0].contains("PATCH"),
        "{errors:?}"
    );
    let errors = errors_of(&legacy_with(
        "partial = true",
        "partial = true\npartail = true",
    ));
    assert!(errors[0].contains("partail"), "{errors:?}");
}

#[test]
fn element_on_a_single_valued_attribute_is_refused() {
    let errors = errors_of(&legacy_with(
        "scim = \"title\"\nfield = \"job_title\"",
        "scim = \"title\"\nfield = \"job_title\"\nelement = { type = \"work\" }",
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("only applies to a multi-valued attribute")),
        "{errors:?}"
    );
}

#[test]
fn restore_on_create_needs_a_default_for_the_soft_delete_field() {
    let errors = errors_of(&legacy_with("default = true\n", ""));
    assert!(
        errors.iter().any(|e| e.contains(
            "restore_on_create needs `restore_value` or an attribute mapped to `status`"
        )),
        "{errors:?}"
    );
}

#[test]
fn auth_style_without_its_keys_is_refused() {
    let errors = errors_of(&legacy_with("header = \"X-Api-Key\"\n", ""));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("style = \"header\" needs `header`")),
        "{errors:?}"
    );
}

#[test]
fn error_rules_map_upstream_answers_to_scim_errors() {
    let source = SourceFile::new(
        "m.toml",
        include_str!("../../../../mappings/upstream/legacy.toml"),
    );
    let mapping = compile(&source, &mut Report::default()).unwrap();
    let body = serde_json::json!({"error": {"code": "EMAIL_TAKEN", "message": "email is taken"}});
    let error = mapping.errors.read(StatusCode::CONFLICT, &body);
    assert_eq!(error.status, StatusCode::CONFLICT);
    assert_eq!(error.scim_type, Some(ScimType::Uniqueness));
    assert!(
        error.detail.contains("EMAIL_TAKEN: email is taken"),
        "{}",
        error.detail
    );
    let error = mapping.errors.read(StatusCode::UNPROCESSABLE_ENTITY, &body);
    assert_eq!(
        (error.status, error.scim_type),
        (StatusCode::BAD_REQUEST, Some(ScimType::InvalidValue))
    );
    let error = mapping
        .errors
        .read(StatusCode::INTERNAL_SERVER_ERROR, &serde_json::Value::Null);
    assert_eq!(error.status, StatusCode::BAD_GATEWAY);
    let error = mapping
        .errors
        .read(StatusCode::UNAUTHORIZED, &serde_json::Value::Null);
    assert_eq!(
        error.status,
        StatusCode::BAD_GATEWAY,
        "an upstream 401 is the gateway's problem"
    );
}

#[test]
fn unique_user_names_defaults_to_the_gateway_and_belongs_in_users_only() {
    let declared = "unique_user_names = \"upstream\"\n";
    let trusting = include_str!("../../../../mappings/upstream/legacy.toml");
    let checking = trusting.replacen(declared, "", 1);
    assert_ne!(checking, trusting);
    let compiled = |text: &str| {
        let mut report = Report::default();
        compile(&SourceFile::new("m.toml", text), &mut report).unwrap()
    };
    assert_eq!(
        compiled(trusting).users.unique_user_names,
        UniqueBy::Upstream
    );
    assert_eq!(
        compiled(&checking).users.unique_user_names,
        UniqueBy::Gateway
    );
    let on_groups = checking.replacen(
        "[groups]\n",
        "[groups]\nunique_user_names = \"gateway\"\n",
        1,
    );
    let line = on_groups[..on_groups.find("unique_user_names").unwrap()]
        .lines()
        .count()
        + 1;
    let errors = errors_of(&on_groups);
    assert!(
        located(&errors, "belongs in [users]").contains(&format!("m.toml:{line}:")),
        "{errors:?}"
    );
    let unknown = errors_of(&trusting.replacen("\"upstream\"", "\"nobody\"", 1));
    assert!(!unknown.is_empty());
}

#[test]
fn an_update_precondition_needs_a_version_and_makes_only_the_update_call_conditional() {
    let shipped = include_str!("../../../../mappings/upstream/legacy.toml");
    let mut report = Report::default();
    let mapping = compile(&SourceFile::new("m.toml", shipped), &mut report).unwrap();
    let users = &mapping.users;
    assert_eq!(users.update_precondition.as_ref().unwrap(), "if-match");
    let record = serde_json::json!({"id": 7, "login": "a@example.com", "version": 3});
    let title = crate::FieldPath::parse("job_title").unwrap();
    let unconditional = users
        .update_requests("7", &record, vec![(title.clone(), "Chef".into())])
        .unwrap();
    assert!(unconditional[0].precondition.is_none());
    let requests = users
        .conditional_update_requests("7", &record, vec![(title.clone(), "Chef".into())])
        .unwrap();
    let [update] = requests.as_slice() else {
        panic!("{requests:?}")
    };
    let (header, version) = update.precondition.as_ref().unwrap();
    assert_eq!((header.as_str(), version.as_str()), ("if-match", "3"));
    // A record read without a version makes an unconditional write.
    let unversioned = serde_json::json!({"id": 7});
    let requests = users
        .conditional_update_requests("7", &unversioned, vec![(title, "Chef".into())])
        .unwrap();
    assert!(requests[0].precondition.is_none());

    let no_version = legacy_with("version = \"version\" }\n# Who keeps", "}\n# Who keeps");
    let errors = errors_of(&no_version);
    assert!(
        located(&errors, "declare it in [users]")
            .contains(&at_line_of(&no_version, "update_precondition =")),
        "{errors:?}"
    );
    let bad_header = legacy_with("\"If-Match\"", "\"If Match\"");
    let errors = errors_of(&bad_header);
    assert!(
        located(&errors, "`If Match` is not an HTTP header name")
            .contains(&at_line_of(&bad_header, "update_precondition =")),
        "{errors:?}"
    );
}

#[test]
fn an_upstream_412_reads_as_a_lost_race_unless_a_rule_says_otherwise() {
    let mut report = Report::default();
    let shipped = include_str!("../../../../mappings/upstream/legacy.toml");
    let mapping = compile(&SourceFile::new("m.toml", shipped), &mut report).unwrap();
    let refusal = mapping
        .errors
        .read(StatusCode::PRECONDITION_FAILED, &serde_json::Value::Null);
    assert!(refusal.means_stale());
    assert!(
        !mapping
            .errors
            .read(StatusCode::CONFLICT, &serde_json::Value::Null)
            .means_stale()
    );
}

#[test]
fn an_index_derives_what_the_list_cannot_filter_and_refuses_what_would_have_no_effect() {
    let wrike = include_str!("../../../../mappings/upstream/wrike.toml");
    let mut report = Report::default();
    let mapping = compile(&SourceFile::new("m.toml", wrike), &mut report).unwrap();
    let paths = |index: &Option<crate::IndexSettings>| {
        let index = index.as_ref().expect("an index");
        index
            .attributes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        paths(&mapping.users.index),
        ["userName", "externalId", "emails.value"]
    );
    assert_eq!(
        mapping.users.index.as_ref().unwrap().refresh,
        Duration::from_secs(900)
    );
    assert_eq!(
        paths(&mapping.groups.as_ref().unwrap().index),
        ["displayName", "externalId"]
    );

    // legacy pushes every matching attribute down: an index would do nothing.
    let pointless = legacy_with("[users.filters]", "[users.index]\n\n[users.filters]");
    let errors = errors_of(&pointless);
    assert!(
        located(&errors, "[users.index] has nothing to index")
            .contains(&at_line_of(&pointless, "[users.index]")),
        "{errors:?}"
    );
    // Without externalId's push-down, it alone is derived.
    let derived = legacy_with(
        "[users.filters]\nuserName = \"login\"\n\"emails.value\" = \"email\"\nexternalId = \"external_ref\"\n",
        "[users.index]\n\n[users.filters]\nuserName = \"login\"\n\"emails.value\" = \"email\"\n",
    );
    let mut report = Report::default();
    let mapping = compile(&SourceFile::new("m.toml", &derived), &mut report)
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(paths(&mapping.users.index), ["externalId"]);

    let with = |keys: &str| derived.replacen("[users.index]\n", &format!("{keys}\n"), 1);
    for (keys, expected) in [
        (
            "[users.index]\nattributes = [\"userName\"]",
            "`userName` is pushed down to the upstream by `filters`",
        ),
        (
            "[users.index]\nattributes = [\"active\"]",
            "`active` is not a string",
        ),
        (
            "[users.index]\nattributes = [\"nickName\"]",
            "`nickName` is not read from the upstream",
        ),
        (
            "[users.index]\nattributes = [\"externalId\", \"externalid\"]",
            "`externalid` is named twice",
        ),
        (
            "[users.index]\nrefresh_seconds = 0",
            "`refresh_seconds` is 0; it must be from 1 to 86400",
        ),
    ] {
        let text = with(keys);
        let errors = errors_of(&text);
        let line = keys.lines().nth(1).unwrap();
        assert!(
            located(&errors, expected).contains(&at_line_of(&text, line)),
            "{keys}: {errors:?}"
        );
    }
}

#[test]
fn members_per_call_bounds_only_calls_that_take_lists_of_ids() {
    let wrike = include_str!("../../../../mappings/upstream/wrike.toml");
    let mut report = Report::default();
    let mapping = compile(&SourceFile::new("m.toml", wrike), &mut report).unwrap();
    let Some(crate::Members::GroupField { per_call, .. }) = &mapping.groups.unwrap().members else {
        panic!("wrike.toml's groups hold their members")
    };
    assert_eq!(*per_call, 100);
    let zero = wrike.replacen("members_per_call = 100", "members_per_call = 0", 1);
    let errors = errors_of(&zero);
    assert!(
        located(
            &errors,
            "`members_per_call` is 0; it must be from 1 to 10000"
        )
        .contains(&at_line_of(&zero, "members_per_call")),
        "{errors:?}"
    );
    let endpoints = legacy_with(
        "[groups.members]\n",
        "[groups.members]\nmembers_per_call = 10\n",
    );
    let errors = errors_of(&endpoints);
    assert!(
        located(&errors, "this style sends one member per call")
            .contains(&at_line_of(&endpoints, "members_per_call")),
        "{errors:?}"
    );
}

#[test]
fn a_matching_attribute_neither_pushed_down_nor_indexed_is_a_warning_at_the_list() {
    let wrike = include_str!("../../../../mappings/upstream/wrike.toml");
    let unindexed =
        wrike
            .replacen("[users.index]\n", "", 1)
            .replacen("refresh_seconds = 900\n", "", 1);
    let warnings = errors_of(&unindexed);
    let warning = located(
        &warnings,
        "look-up by userName, externalId, emails.value scans",
    );
    assert!(warning.contains("warning"), "{warning}");
    assert!(
        warning.contains(&at_line_of(&unindexed, "path = \"/api/v4/contacts\"")),
        "{warning}"
    );
    // The shipped mappings push down or index every one.
    for shipped in [
        wrike,
        include_str!("../../../../mappings/upstream/legacy.toml"),
    ] {
        assert!(errors_of(shipped).is_empty(), "{:?}", errors_of(shipped));
    }
}

#[test]
fn a_mapping_knows_whether_it_reads_an_attribute_the_default_set_leaves_out() {
    let compiled = |text: &str| {
        let mut report = Report::default();
        let mapping = compile(&SourceFile::new("m.toml", text), &mut report)
            .unwrap_or_else(|| panic!("{report:?}"));
        mapping.users.read_all_returned_by_default
    };
    let shipped = include_str!("../../../../mappings/upstream/legacy.toml");
    assert!(compiled(shipped), "the password is only written");
    let read_back = legacy_with(
        "scim = \"password\"\nfield = \"password\"\ndirection = \"write\"\n",
        "scim = \"password\"\nfield = \"password\"\ndirection = \"both\"\n",
    );
    assert!(!compiled(&read_back), "a password read is never returned");
}
