//! `attr_path`: attribute paths, PATCH paths and attribute lists parse
//! without panicking, and what parses prints as text that parses back equal.

use scimgate::scim::path::{AttrPath, PatchPath, parse_attribute_list};

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = AttrPath::parse(text) {
        let printed = path.to_string();
        let reparsed = AttrPath::parse(&printed).unwrap_or_else(|error| {
            panic!("attribute path {text:?} prints as {printed:?}, which does not parse: {error}")
        });
        assert_eq!(
            path, reparsed,
            "attribute path {text:?} prints as {printed:?}, which parses differently"
        );
        let _ = path.parent();
        let _ = path.as_urn();
    }
    if let Ok(path) = PatchPath::parse(text) {
        let printed = path.to_string();
        let reparsed = PatchPath::parse(&printed).unwrap_or_else(|error| {
            panic!("PATCH path {text:?} prints as {printed:?}, which does not parse: {error}")
        });
        assert_eq!(
            path, reparsed,
            "PATCH path {text:?} prints as {printed:?}, which parses differently"
        );
    }
    if let Ok(list) = parse_attribute_list(text) {
        let printed = list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let reparsed = parse_attribute_list(&printed).unwrap_or_else(|error| {
            panic!("attribute list {text:?} prints as {printed:?}, which does not parse: {error}")
        });
        assert_eq!(
            list, reparsed,
            "attribute list {text:?} prints as {printed:?}, which parses differently"
        );
    }
}
