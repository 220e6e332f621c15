//! `filter`: a parsed filter prints as text that parses back to the same
//! AST, and evaluating it against a user never panics.

use std::sync::OnceLock;

use scimgate::scim::filter::{matches, parse_filter};
use scimgate::scim::schema;
use serde_json::Value;

fn user() -> &'static Value {
    static USER: OnceLock<Value> = OnceLock::new();
    USER.get_or_init(super::samples::rich_user)
}

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(filter) = parse_filter(text) else {
        return;
    };
    let printed = filter.to_string();
    let reparsed = parse_filter(&printed).unwrap_or_else(|error| {
        panic!("filter {text:?} prints as {printed:?}, which does not parse: {error}")
    });
    assert_eq!(
        filter, reparsed,
        "filter {text:?} prints as {printed:?}, which parses to a different AST"
    );
    let _ = matches(&filter, user(), schema::user());
    let _ = matches(&filter, &super::samples::group(), schema::group());
}
