//! Attribute paths (RFC 7644 §3.10) and PATCH paths (§3.5.2): the names an IdP
//! uses to point into a resource, in filters, PATCH operations and the
//! `attributes=`/`excludedAttributes=` query parameters.
//!
//! Parsing is purely syntactic; whether a path names a known attribute is the
//! schema's business ([`crate::schema::ResourceSchema::find`]). Names
//! compare case-insensitively everywhere, so nothing here lower-cases them:
//! the IdP's spelling is kept for error messages and re-printing.

use std::fmt;

use crate::filter::{Filter, FilterError, parse_filter};

/// Longest path accepted; real paths are well under 200 bytes, and a cap keeps
/// hostile input from costing anything.
const MAX_PATH_LEN: usize = 8 * 1024;

/// An attribute path: `userName`, `name.givenName`,
/// `urn:…:enterprise:2.0:User:department`, `urn:…:enterprise:2.0:User:manager.value`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// Schema URN qualifying the attribute, as written.
    pub uri: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path: is empty; expected an attribute name such as `userName` or `name.givenName`")]
    Empty,
    #[error("path: `{path}` is not a valid attribute path: {reason}")]
    Invalid { path: String, reason: String },
    #[error("path: invalid value filter in `{path}`: {source}")]
    Filter {
        path: String,
        source: Box<FilterError>,
    },
}

fn invalid(path: &str, reason: impl Into<String>) -> PathError {
    PathError::Invalid {
        path: preview(path),
        reason: reason.into(),
    }
}

/// Error messages quote the input; a multi-kilobyte path would drown the reason.
fn preview(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(MAX).collect();
        cut.push('…');
        cut
    }
}

/// `ATTRNAME = ALPHA *(nameChar)` plus a leading `$` for `$ref`.
pub fn is_attr_name(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-'))
}

fn check_name(path: &str, name: &str, what: &str) -> Result<(), PathError> {
    if name.is_empty() {
        return Err(invalid(path, format!("the {what} is missing")));
    }
    if !is_attr_name(name) {
        return Err(invalid(
            path,
            format!(
                "`{}` is not a valid {what}: names start with a letter (or `$`) and contain only \
                 letters, digits, `_`, `-` and `$`",
                preview(name)
            ),
        ));
    }
    Ok(())
}

fn starts_with_urn(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

impl AttrPath {
    /// The same attribute and sub-attribute, compared as the schema's
    /// names are (case-insensitively, the URN too).
    pub fn same_attribute(&self, other: &AttrPath) -> bool {
        let same = |x: &Option<String>, y: &Option<String>| match (x, y) {
            (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
            (None, None) => true,
            _ => false,
        };
        self.name.eq_ignore_ascii_case(&other.name)
            && same(&self.sub, &other.sub)
            && same(&self.uri, &other.uri)
    }

    pub fn parse(s: &str) -> Result<AttrPath, PathError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH_LEN {
            return Err(invalid(
                s,
                format!("it is {} bytes long; the limit is {MAX_PATH_LEN}", s.len()),
            ));
        }
        let (uri, rest) = if starts_with_urn(s) {
            // The URN itself contains `:` and `.` (`…:2.0:User`), so the attribute
            // is whatever follows the last `:`.
            let Some((uri, rest)) = s.rsplit_once(':') else {
                return Err(invalid(s, "expected `urn:<schema>:<attribute>`"));
            };
            if uri.len() <= 3 {
                return Err(invalid(
                    s,
                    "a URN-qualified path needs the schema URN before the attribute name, e.g. \
                     `urn:ietf:params:scim:schemas:core:2.0:User:userName`",
                ));
            }
            if rest.is_empty() {
                return Err(invalid(
                    s,
                    "expected an attribute name after the schema URN",
                ));
            }
            (Some(uri.to_owned()), rest)
        } else {
            (None, s)
        };
        let (name, sub) = match rest.split_once('.') {
            None => (rest, None),
            Some((name, sub)) => (name, Some(sub)),
        };
        check_name(s, name, "attribute name")?;
        if let Some(sub) = sub {
            if sub.contains('.') {
                return Err(invalid(
                    s,
                    "SCIM attributes have at most one level of sub-attributes (`name.givenName`)",
                ));
            }
            check_name(s, sub, "sub-attribute name")?;
        }
        Ok(AttrPath {
            uri,
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }

    /// An unqualified top-level attribute; `name` is taken as is.
    pub fn simple(name: &str) -> AttrPath {
        AttrPath {
            uri: None,
            name: name.to_owned(),
            sub: None,
        }
    }

    /// The same path without its sub-attribute.
    pub fn parent(&self) -> AttrPath {
        AttrPath {
            uri: self.uri.clone(),
            name: self.name.clone(),
            sub: None,
        }
    }

    /// `uri:name` when the path has a URI and no sub-attribute: such a path may
    /// name a whole extension (`urn:…:enterprise:2.0:User`) rather than an
    /// attribute, which only the schema (or the resource) can tell.
    pub fn as_urn(&self) -> Option<String> {
        match (&self.uri, &self.sub) {
            (Some(uri), None) => Some(format!("{uri}:{}", self.name)),
            _ => None,
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// A PATCH path (RFC 7644 §3.5.2 PATH grammar): attrPath, or valuePath with
/// optional trailing sub-attribute: `emails[type eq "work"].value`,
/// `members[value eq "2819c223"]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    /// Selects elements of a multi-valued attribute; paths inside it are
    /// relative to the element.
    pub value_filter: Option<Filter>,
    /// Sub-attribute after the filter (`].value`).
    pub sub_attr: Option<String>,
}

impl PatchPath {
    pub fn parse(s: &str) -> Result<PatchPath, PathError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.len() > MAX_PATH_LEN {
            return Err(invalid(
                s,
                format!("it is {} bytes long; the limit is {MAX_PATH_LEN}", s.len()),
            ));
        }
        let Some(open) = s.find('[') else {
            if s.contains(']') {
                return Err(invalid(s, "found `]` without a matching `[`"));
            }
            return Ok(PatchPath {
                attr: AttrPath::parse(s)?,
                value_filter: None,
                sub_attr: None,
            });
        };
        let attr_text = s.get(..open).unwrap_or_default();
        if attr_text.trim().is_empty() {
            return Err(invalid(s, "expected an attribute name before `[`"));
        }
        let attr = AttrPath::parse(attr_text)?;
        if attr.sub.is_some() {
            return Err(invalid(
                s,
                "a value filter `[…]` selects elements of a multi-valued attribute, so it cannot \
                 follow a sub-attribute",
            ));
        }
        let inner_start = open + 1;
        let close = matching_bracket(s, inner_start)
            .ok_or_else(|| invalid(s, format!("the `[` at position {open} is never closed")))?;
        let inner = s.get(inner_start..close).unwrap_or_default();
        let filter = parse_filter(inner).map_err(|e| PathError::Filter {
            path: preview(s),
            source: Box::new(e),
        })?;
        let rest = s.get(close + 1..).unwrap_or_default();
        let sub_attr = if rest.is_empty() {
            None
        } else if let Some(sub) = rest.strip_prefix('.') {
            check_name(s, sub, "sub-attribute name after `]`")?;
            Some(sub.to_owned())
        } else {
            return Err(invalid(
                s,
                format!(
                    "unexpected `{}` after `]`; expected `.subAttribute` or the end of the path",
                    preview(rest)
                ),
            ));
        };
        Ok(PatchPath {
            attr,
            value_filter: Some(filter),
            sub_attr,
        })
    }

    /// A path addressing a whole attribute, with no filter.
    pub fn attribute(attr: AttrPath) -> PatchPath {
        PatchPath {
            attr,
            value_filter: None,
            sub_attr: None,
        }
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.value_filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Byte index of the `]` closing a value filter that starts at `start`,
/// skipping brackets inside quoted strings (`[value eq "a]b"]`). A nested `[`
/// is left for the filter parser to reject with its own message.
fn matching_bracket(s: &str, start: usize) -> Option<usize> {
    let tail = s.get(start..)?;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, c) in tail.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' => depth += 1,
            ']' if depth == 0 => return Some(start + offset),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// `attributes=`/`excludedAttributes=` comma-separated lists. Empty entries
/// (`a,,b`, a trailing comma) are skipped: they carry no meaning and some
/// clients produce them.
pub fn parse_attribute_list(s: &str) -> Result<Vec<AttrPath>, PathError> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(AttrPath::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    #[test]
    fn simple_and_dotted_paths_split_into_name_and_sub() {
        assert_eq!(
            AttrPath::parse("userName").unwrap(),
            AttrPath::simple("userName")
        );
        let path = AttrPath::parse("name.givenName").unwrap();
        assert_eq!(
            (path.name.as_str(), path.sub.as_deref()),
            ("name", Some("givenName"))
        );
        assert_eq!(
            AttrPath::parse("members.$ref").unwrap().sub.as_deref(),
            Some("$ref")
        );
    }

    #[test]
    fn urn_prefix_is_everything_before_the_last_colon() {
        let path = AttrPath::parse(&format!("{ENTERPRISE}:manager.value")).unwrap();
        assert_eq!(path.uri.as_deref(), Some(ENTERPRISE));
        assert_eq!(path.name, "manager");
        assert_eq!(path.sub.as_deref(), Some("value"));
        let upper = AttrPath::parse("URN:ietf:params:scim:schemas:core:2.0:User:userName").unwrap();
        assert_eq!(
            upper.uri.as_deref(),
            Some("URN:ietf:params:scim:schemas:core:2.0:User")
        );
    }

    #[test]
    fn whole_extension_urn_is_reported_by_as_urn() {
        let path = AttrPath::parse(ENTERPRISE).unwrap();
        assert_eq!(path.as_urn().as_deref(), Some(ENTERPRISE));
        assert_eq!(AttrPath::parse("name.givenName").unwrap().as_urn(), None);
    }

    #[test]
    fn malformed_paths_say_what_is_wrong() {
        let error = AttrPath::parse("name.given.name").unwrap_err().to_string();
        assert!(error.contains("at most one level"), "{error}");
        let error = AttrPath::parse("1abc").unwrap_err().to_string();
        assert!(error.contains("start with a letter"), "{error}");
        assert_eq!(AttrPath::parse("  ").unwrap_err(), PathError::Empty);
        assert!(AttrPath::parse("urn:x:").is_err());
        assert!(AttrPath::parse("urn:userName").is_err());
        assert!(AttrPath::parse("name.").is_err());
    }

    #[test]
    fn display_reprints_the_parsed_path() {
        for text in [
            "userName",
            "name.givenName",
            &format!("{ENTERPRISE}:manager.value"),
        ] {
            assert_eq!(AttrPath::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn patch_path_with_filter_and_trailing_sub_attribute() {
        let path = PatchPath::parse(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(path.attr, AttrPath::simple("emails"));
        assert_eq!(path.value_filter.unwrap().to_string(), r#"type eq "work""#);
        assert_eq!(path.sub_attr.as_deref(), Some("value"));
    }

    #[test]
    fn patch_path_filter_may_contain_brackets_in_strings() {
        let path = PatchPath::parse(r#"members[value eq "a]b"]"#).unwrap();
        assert_eq!(path.value_filter.unwrap().to_string(), r#"value eq "a]b""#);
        assert_eq!(path.sub_attr, None);
    }

    #[test]
    fn patch_path_errors_are_specific() {
        let error = PatchPath::parse(r#"emails[type eq "work""#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("never closed"), "{error}");
        let error = PatchPath::parse(r#"emails[type eqq "work"]"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("comparison operator"), "{error}");
        let error = PatchPath::parse(r#"emails[type eq "work"]x"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("after `]`"), "{error}");
        assert!(PatchPath::parse(r#"name.givenName[x pr]"#).is_err());
        assert!(PatchPath::parse("emails]").is_err());
    }

    #[test]
    fn patch_path_accepts_urn_qualified_value_paths() {
        let text = format!(r#"{ENTERPRISE}:manager"#);
        assert_eq!(PatchPath::parse(&text).unwrap().attr.name, "manager");
    }

    #[test]
    fn attribute_lists_are_comma_separated_and_trimmed() {
        let list = parse_attribute_list(" userName, name.givenName ,,").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].sub.as_deref(), Some("givenName"));
        assert!(parse_attribute_list("").unwrap().is_empty());
        assert!(parse_attribute_list("userName,9").is_err());
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z$][A-Za-z0-9_$-]{0,8}"
    }

    fn attr_path() -> impl Strategy<Value = AttrPath> {
        (
            proptest::option::of("urn(:[a-z0-9.]{1,6}){1,4}"),
            name(),
            proptest::option::of(name()),
        )
            .prop_map(|(uri, name, sub)| AttrPath { uri, name, sub })
    }

    proptest! {
        #[test]
        fn printed_attr_paths_parse_back_unchanged(path in attr_path()) {
            prop_assert_eq!(AttrPath::parse(&path.to_string()).unwrap(), path);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,64}") {
            let _ = AttrPath::parse(&s);
            let _ = PatchPath::parse(&s);
            let _ = parse_attribute_list(&s);
        }

        #[test]
        fn bracket_soup_never_panics(s in r#"[a-z\[\]". =\\]{0,40}"#) {
            let _ = PatchPath::parse(&s);
        }
    }
}
