//! Reads dialect files (`mappings/idp/*.toml`), validating them like the
//! upstream mappings: every mistake at `file:line:col`.

use std::path::Path;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use toml::Spanned;

use super::{Dialect, Dialects, RequestRules, ResponseRules};
use scimgate_diagnostics::{Report, SourceFile};
use scimgate_scim::path::AttrPath;

/// The dialects shipped with scimgate, compiled into the binary.
pub const EMBEDDED: [(&str, &str); 4] = [
    (
        "mappings/idp/entra.toml",
        include_str!("../../../mappings/idp/entra.toml"),
    ),
    (
        "mappings/idp/okta.toml",
        include_str!("../../../mappings/idp/okta.toml"),
    ),
    (
        "mappings/idp/onelogin.toml",
        include_str!("../../../mappings/idp/onelogin.toml"),
    ),
    (
        "mappings/idp/generic.toml",
        include_str!("../../../mappings/idp/generic.toml"),
    ),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DialectFile {
    dialect: DialectSection,
    #[serde(default)]
    request: RequestSection,
    #[serde(default)]
    response: ResponseSection,
    #[serde(default)]
    limits: LimitsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    /// Hold a request over the rate limit up to this long before a 429.
    #[serde(default)]
    max_wait_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DialectSection {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    user_agents: Vec<String>,
    #[serde(default)]
    sends: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSection {
    #[serde(default)]
    string_booleans: bool,
    #[serde(default)]
    blank_is_absent: bool,
    #[serde(default)]
    object_as_list: bool,
    #[serde(default)]
    list_as_object: bool,
    #[serde(default)]
    qualify_extension_attributes: bool,
    #[serde(default)]
    complete_schemas: bool,
    #[serde(default)]
    schema_aliases: Vec<AliasSpec>,
    #[serde(default)]
    attribute_aliases: Vec<AliasSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasSpec {
    from: Spanned<String>,
    to: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseSection {
    content_type: Option<Spanned<String>>,
    group_patch_status: Option<Spanned<u16>>,
}

/// The shipped dialects. They are tested to compile, so a failure here is
/// unreachable in a released binary; it degrades to `generic` only.
pub fn embedded() -> Dialects {
    let mut report = Report::default();
    let all = EMBEDDED
        .iter()
        .filter_map(|(path, text)| compile(&SourceFile::new(*path, *text), &mut report))
        .map(Arc::new)
        .collect();
    Dialects { all }
}

/// The embedded dialects, overridden or extended by every `*.toml` in `dir`.
pub fn load_dir(dir: &Path, report: &mut Report) -> Dialects {
    let mut dialects = embedded();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            report.push(
                SourceFile::new(dir, "")
                    .error_at(None, format!("cannot read the dialects folder: {error}")),
            );
            return dialects;
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let source = match SourceFile::read(&path) {
            Ok(source) => source,
            Err(diagnostic) => {
                report.push(diagnostic);
                continue;
            }
        };
        if let Some(dialect) = compile(&source, report) {
            dialects
                .all
                .retain(|d| !d.name.eq_ignore_ascii_case(&dialect.name));
            dialects.all.push(Arc::new(dialect));
        }
    }
    dialects
}

pub fn compile(source: &SourceFile, report: &mut Report) -> Option<Dialect> {
    let file: DialectFile = match source.parse_toml() {
        Ok(file) => file,
        Err(diagnostic) => {
            report.push(diagnostic);
            return None;
        }
    };
    let before = report.diagnostics.len();
    let mut error = |span: std::ops::Range<usize>, message: String| {
        report.push(source.error_at(Some(span), message))
    };
    let name = file.dialect.name.get_ref().clone();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || name.eq_ignore_ascii_case("auto")
    {
        error(
            file.dialect.name.span(),
            format!("dialect name `{name}` must be letters, digits, `-` or `_`, and not `auto`"),
        );
    }
    let mut schema_aliases = Vec::new();
    for alias in &file.request.schema_aliases {
        if !alias.to.get_ref().starts_with("urn:") {
            error(
                alias.to.span(),
                format!("`{}` is not a schema URN", alias.to.get_ref()),
            );
        }
        schema_aliases.push((alias.from.get_ref().clone(), alias.to.get_ref().clone()));
    }
    let mut attribute_aliases = Vec::new();
    for alias in &file.request.attribute_aliases {
        let from = AttrPath::parse(alias.from.get_ref());
        let to = AttrPath::parse(alias.to.get_ref());
        match (from, to) {
            (Ok(from), Ok(to)) => {
                let known = scimgate_scim::schema::user().find(&to).is_some()
                    || scimgate_scim::schema::group().find(&to).is_some();
                if known {
                    attribute_aliases.push((from, to));
                } else {
                    error(
                        alias.to.span(),
                        format!(
                            "`{}` is not an attribute of the User or Group schemas",
                            alias.to.get_ref()
                        ),
                    );
                }
            }
            (Err(e), _) => error(
                alias.from.span(),
                format!("`{}`: {e}", alias.from.get_ref()),
            ),
            (_, Err(e)) => error(alias.to.span(), format!("`{}`: {e}", alias.to.get_ref())),
        }
    }
    let mut sends = Vec::new();
    for path in &file.dialect.sends {
        match AttrPath::parse(path.get_ref()) {
            Ok(parsed) if scimgate_scim::schema::user().find(&parsed).is_some() => {
                sends.push(parsed)
            }
            _ => error(
                path.span(),
                format!(
                    "`{}` is not an attribute of the User schemas",
                    path.get_ref()
                ),
            ),
        }
    }
    let mut response = ResponseRules::default();
    if let Some(content_type) = &file.response.content_type {
        match content_type.get_ref().as_str() {
            "application/scim+json" | "application/json" => {
                response.content_type =
                    HeaderValue::from_static(if content_type.get_ref() == "application/json" {
                        "application/json"
                    } else {
                        "application/scim+json"
                    });
            }
            other => error(
                content_type.span(),
                format!(
                    "content_type `{other}`: expected \"application/scim+json\" or \"application/json\""
                ),
            ),
        }
    }
    if let Some(status) = &file.response.group_patch_status {
        match *status.get_ref() {
            200 => response.group_patch_status = StatusCode::OK,
            204 => response.group_patch_status = StatusCode::NO_CONTENT,
            other => error(
                status.span(),
                format!("group_patch_status {other}: expected 200 or 204"),
            ),
        }
    }
    if report.diagnostics.len() > before {
        return None;
    }
    Some(Dialect {
        name,
        description: file.dialect.description,
        user_agents: file
            .dialect
            .user_agents
            .iter()
            .map(|ua| ua.to_ascii_lowercase())
            .collect(),
        sends,
        request: RequestRules {
            string_booleans: file.request.string_booleans,
            blank_is_absent: file.request.blank_is_absent,
            object_as_list: file.request.object_as_list,
            list_as_object: file.request.list_as_object,
            qualify_extension_attributes: file.request.qualify_extension_attributes,
            complete_schemas: file.request.complete_schemas,
            schema_aliases,
            attribute_aliases,
        },
        response,
        pacing: std::time::Duration::from_millis(file.limits.max_wait_ms),
        source: source.path.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_dialects_compile_without_diagnostics() {
        for (path, text) in EMBEDDED {
            let mut report = Report::default();
            assert!(
                compile(&SourceFile::new(path, text), &mut report).is_some(),
                "{report}"
            );
            assert!(report.diagnostics.is_empty(), "{report}");
        }
        assert_eq!(embedded().names(), ["entra", "okta", "onelogin", "generic"]);
    }

    #[test]
    fn mistakes_are_reported_at_their_place() {
        let text = "[dialect]\nname = \"x\"\n[response]\ncontent_type = \"text/html\"\ngroup_patch_status = 201\n[[request.attribute_aliases]]\nfrom = \"a\"\nto = \"nope\"\n";
        let mut report = Report::default();
        assert!(compile(&SourceFile::new("d.toml", text), &mut report).is_none());
        let text = report.to_string();
        assert!(
            text.contains("d.toml:4:16: error: content_type `text/html`"),
            "{text}"
        );
        assert!(
            text.contains("d.toml:5:22: error: group_patch_status 201"),
            "{text}"
        );
        assert!(
            text.contains("d.toml:8:6: error: `nope` is not an attribute"),
            "{text}"
        );
    }
}
