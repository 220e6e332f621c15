//! Validates a mapping file and compiles it into the runtime model, reporting
//! every mistake at `file:line:col` with what was expected.

use std::path::Path;
use std::time::Duration;

use http::{HeaderName, Method, StatusCode};
use serde_json::{Map, Value};
use toml::Spanned;

use super::call::BodyPlaceholder;
use super::file::{
    AttributeSpec, AuthSection, AuthStyle, CallSpec, CredentialsIn, Direction, EncodingSpec,
    MappingFile, MembersSpec, MembersStyle, MethodSpec, PagingSpec, ResourceSection, UniqueBy,
};
use super::{
    AttributeMap, Auth, BodyEncoding, Call, ErrorMap, ErrorRule, FieldPath, FilterParam, IdField,
    Members, MetaFields, Paging, PagingStyle, Placeholder, ResourceMapping, ScimTarget, SoftDelete,
    TotalSource, UpstreamMapping,
};
use super::{Source, TemplatePart};
use scimgate_diagnostics::{Report, SourceFile};
use scimgate_scim::error::ScimType;
use scimgate_scim::path::AttrPath;
use scimgate_scim::projection::hidden_by_default;
use scimgate_scim::schema::{self, AttrType, ResourceSchema};

mod attribute;
mod call;
mod index;

use call::CallRole;

/// Reads and compiles one mapping file; `None` when it has errors (all in `report`).
pub fn load(path: &Path, report: &mut Report) -> Option<UpstreamMapping> {
    match SourceFile::read(path) {
        Ok(source) => compile(&source, report),
        Err(diagnostic) => {
            report.push(diagnostic);
            None
        }
    }
}

pub fn compile(source: &SourceFile, report: &mut Report) -> Option<UpstreamMapping> {
    let file: MappingFile = match source.parse_toml() {
        Ok(file) => file,
        Err(diagnostic) => {
            report.push(diagnostic);
            return None;
        }
    };
    let before = report.diagnostics.len();
    let mut cx = Compiler {
        source,
        report,
        absent: Vec::new(),
    };
    if let Some(values) = &file.upstream.absent {
        cx.absent = cx.absent_values(values).unwrap_or_default();
    }
    let base_url = cx.base_url(&file.upstream.base_url);
    let auth = cx.auth(&file.upstream.auth);
    let errors = cx.errors(&file);
    let users = cx.resource("users", &file.users, schema::user());
    let groups = file
        .groups
        .as_ref()
        .map(|section| cx.resource("groups", section, schema::group()));
    if let (Some(Some(groups)), Some(section)) = (&groups, &file.groups)
        && groups.members.is_none()
    {
        cx.report.push(source.warning_at(
            Some(section.id.field.span()),
            "[groups] declares no [groups.members]: group membership will not be provisioned",
        ));
    }
    let failed = report.diagnostics[before..]
        .iter()
        .any(|d| d.severity == scimgate_diagnostics::Severity::Error);
    if failed {
        return None;
    }
    Some(UpstreamMapping {
        name: file.upstream.name.into_inner(),
        base_url: base_url?,
        timeout: Duration::from_millis(file.upstream.timeout_ms.unwrap_or(10_000)),
        auth: auth?,
        errors,
        users: users?,
        groups: groups.flatten(),
        source: source.path.clone(),
        tests: file
            .tests
            .iter()
            .map(|test| {
                let (line, col) = source.line_col(test.name.span().start);
                let call = |spec: &super::file::TestCallSpec| super::TestCall {
                    method: method_of(spec.method),
                    path: spec.path.clone(),
                    body: spec.body.as_ref().map(toml_to_json),
                };
                super::MappingTest {
                    name: test.name.get_ref().clone(),
                    line,
                    column: col,
                    request: call(&test.request),
                    record: test.record.as_ref().map(toml_to_json),
                    calls: test
                        .calls
                        .as_ref()
                        .map(|calls| calls.iter().map(call).collect()),
                    status: test.status,
                }
            })
            .collect(),
    })
}

struct Compiler<'a> {
    source: &'a SourceFile,
    report: &'a mut Report,
    /// The mapping's `[upstream] absent`, for attributes without their own.
    absent: Vec<Value>,
}

impl Compiler<'_> {
    fn error<T>(&mut self, span: std::ops::Range<usize>, message: impl Into<String>) -> Option<T> {
        self.report.push(self.source.error_at(Some(span), message));
        None
    }

    fn base_url(&mut self, url: &Spanned<String>) -> Option<String> {
        match url::Url::parse(url.get_ref()) {
            Ok(parsed)
                if matches!(parsed.scheme(), "http" | "https")
                    && parsed.query().is_none()
                    && parsed.fragment().is_none()
                    && parsed.username().is_empty()
                    && parsed.password().is_none() =>
            {
                Some(url.get_ref().trim_end_matches('/').to_string())
            }
            Ok(_) => self.error(
                url.span(),
                "base_url must be an http(s) URL without credentials, query or fragment \
                 (credentials belong in [upstream.auth])",
            ),
            Err(error) => self.error(
                url.span(),
                format!("base_url is not a valid URL ({error}); expected e.g. \"https://api.example.com\""),
            ),
        }
    }

    fn auth(&mut self, auth: &AuthSection) -> Option<Auth> {
        let mut required = |value: &Option<Spanned<String>>, key: &str| match value {
            Some(value) => Some(value.get_ref().clone()),
            None => {
                self.report.push(self.source.error_at(
                    None,
                    format!(
                        "[upstream.auth] style = \"{}\" needs `{key}`",
                        style_name(auth.style)
                    ),
                ));
                None
            }
        };
        Some(match auth.style {
            AuthStyle::None => Auth::None,
            AuthStyle::Header => {
                let secret = required(&auth.secret, "secret");
                let header = required(&auth.header, "header")?;
                let Ok(name) = HeaderName::from_bytes(header.as_bytes()) else {
                    let span = auth.header.as_ref().map(|h| h.span()).unwrap_or_default();
                    return self.error(span, format!("`{header}` is not a valid HTTP header name"));
                };
                Auth::Header {
                    header: name,
                    prefix: auth.prefix.clone(),
                    secret: secret?,
                }
            }
            AuthStyle::Bearer => Auth::Bearer {
                secret: required(&auth.secret, "secret")?,
            },
            AuthStyle::Basic => {
                let username = required(&auth.username, "username");
                Auth::Basic {
                    secret: required(&auth.secret, "secret")?,
                    username: username?,
                }
            }
            AuthStyle::Oauth2ClientCredentials => {
                let client_id = required(&auth.client_id, "client_id");
                let secret = required(&auth.secret, "secret");
                let token_url = required(&auth.token_url, "token_url")?;
                let valid = token_url.starts_with('/')
                    || url::Url::parse(&token_url)
                        .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !valid {
                    let span = auth
                        .token_url
                        .as_ref()
                        .map(|t| t.span())
                        .unwrap_or_default();
                    return self.error(
                        span,
                        format!("token_url `{token_url}` must be an http(s) URL or a path relative to base_url"),
                    );
                }
                Auth::OAuth2ClientCredentials {
                    token_url,
                    client_id: client_id?,
                    secret: secret?,
                    scope: auth.scope.clone(),
                    in_body: auth.credentials == CredentialsIn::Body,
                }
            }
        })
    }

    fn errors(&mut self, file: &MappingFile) -> ErrorMap {
        let section = &file.errors;
        let mut rules = Vec::new();
        for rule in &section.rules {
            let scim_status = match StatusCode::from_u16(*rule.scim_status.get_ref()) {
                Ok(status) if status.is_client_error() || status.is_server_error() => status,
                _ => {
                    self.error::<()>(
                        rule.scim_status.span(),
                        "scim_status must be an HTTP error status (400-599)",
                    );
                    continue;
                }
            };
            let scim_type = match &rule.scim_type {
                None => None,
                Some(name) => match ScimType::parse(name.get_ref()) {
                    Some(scim_type) => Some(scim_type),
                    None => {
                        self.error::<()>(
                            name.span(),
                            format!(
                                "unknown scim_type `{}`; expected one of RFC 7644's: invalidFilter, \
                                 tooMany, uniqueness, mutability, invalidSyntax, invalidPath, \
                                 noTarget, invalidValue, invalidVers, sensitive",
                                name.get_ref()
                            ),
                        );
                        continue;
                    }
                },
            };
            if let Some(text) = &rule.message_contains
                && section.message_pointer.is_none()
            {
                self.error::<()>(
                    text.span(),
                    "`message_contains` needs `message_pointer` in [errors], to know where the message is",
                );
            }
            rules.push(ErrorRule {
                status: rule.status,
                code: rule.code.clone(),
                message_contains: rule
                    .message_contains
                    .as_ref()
                    .map(|t| t.get_ref().to_lowercase()),
                scim_status,
                scim_type,
            });
        }
        for pointer in [&section.code_pointer, &section.message_pointer]
            .into_iter()
            .flatten()
        {
            if !pointer.get_ref().is_empty() && !pointer.get_ref().starts_with('/') {
                self.error::<()>(
                    pointer.span(),
                    "a JSON pointer must be empty or start with `/`, e.g. \"/error/code\"",
                );
            }
        }
        ErrorMap {
            code_pointer: section.code_pointer.as_ref().map(|p| p.get_ref().clone()),
            message_pointer: section
                .message_pointer
                .as_ref()
                .map(|p| p.get_ref().clone()),
            rules,
        }
    }

    fn field(&mut self, field: &Spanned<String>) -> Option<FieldPath> {
        match FieldPath::parse_checked(field.get_ref()) {
            Ok(path) => Some(path),
            Err(reason) => self.error(
                field.span(),
                format!(
                    "`{}` is not a field path: {reason}; expected names joined by dots, with \
                     an array element in brackets, e.g. \"profile.firstName\", \
                     \"profiles[0].email\", \"metadata[key eq \\\"department\\\"].value\"",
                    field.get_ref()
                ),
            ),
        }
    }

    fn resource(
        &mut self,
        section_name: &str,
        section: &ResourceSection,
        schema: &'static ResourceSchema,
    ) -> Option<ResourceMapping> {
        let id = self.field(&section.id.field).map(|field| IdField {
            field,
            value_type: section.id.value_type,
        });
        let id_only = [Placeholder::Id];
        let list = self.call(
            &section.list,
            CallRole::List,
            &[],
            &[],
            &format!("[{section_name}.list]"),
        );
        if list.is_some() && section.list.paging.is_none() {
            self.report.push(self.source.warning_at(
                Some(section.list.path.span()),
                format!(
                    "[{section_name}.list] declares no paging: every list reads the whole upstream \
                     collection; if the upstream has none, say so with paging = {{ style = \"none\" }}"
                ),
            ));
        }
        let get = self.call(
            &section.get,
            CallRole::Record,
            &id_only,
            &id_only,
            &format!("[{section_name}.get]"),
        );
        let create = self.call(
            &section.create,
            CallRole::Create,
            &[],
            &[],
            &format!("[{section_name}.create]"),
        );
        let update = self.call(
            &section.update,
            CallRole::Update,
            &id_only,
            &id_only,
            &format!("[{section_name}.update]"),
        );
        let mut update_also = Vec::new();
        for (position, spec) in section.update_also.iter().enumerate() {
            let what = format!("[[{section_name}.update_also]] #{}", position + 1);
            if spec.fields.is_empty() {
                self.error::<()>(
                    spec.path.span(),
                    format!("{what}: an additional update call must list the `fields` it carries"),
                );
            }
            if let Some(call) = self.call(spec, CallRole::Update, &id_only, &id_only, &what) {
                update_also.push(call);
            }
        }
        let hard_delete = section.delete.hard.as_ref().map(|spec| {
            self.call(
                spec,
                CallRole::Action,
                &id_only,
                &id_only,
                &format!("[{section_name}.delete.hard]"),
            )
        });
        let soft_delete = section.delete.soft.as_ref().map(|soft| {
            let call = soft.call.as_ref().map(|spec| {
                self.call(
                    spec,
                    CallRole::Action,
                    &id_only,
                    &id_only,
                    &format!("[{section_name}.delete.soft.call]"),
                )
            });
            let field = self.field(&soft.field)?;
            Some(SoftDelete {
                field,
                value: toml_to_json(&soft.value),
                lookup_query: soft
                    .lookup_query
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                call: call.flatten(),
                restore_value: soft.restore_value.as_ref().map(toml_to_json),
            })
        });
        if section.delete.soft.is_none() && section.delete.hard.is_none() {
            self.report.push(self.source.warning_at(
                None,
                format!("[{section_name}.delete] declares neither `soft` nor `hard`: DELETE will be refused"),
            ));
        }
        let mut filters = Vec::new();
        for (path, param) in &section.filters {
            if let Some(path) = self.scim_path(path, schema, false) {
                filters.push(FilterParam {
                    path: path.path,
                    param: param.get_ref().clone(),
                });
            }
        }
        let mut attributes = Vec::new();
        for spec in &section.attributes {
            if let Some(attribute) = self.attribute(spec, schema) {
                attributes.push(attribute);
            }
        }
        if section.delete.restore_on_create
            && let Some(soft) = &section.delete.soft
            && soft.restore_value.is_none()
            && !section.attributes.iter().any(|a| {
                a.field
                    .as_ref()
                    .is_some_and(|f| f.get_ref() == soft.field.get_ref())
                    && a.default.is_some()
            })
        {
            self.error::<()>(
                soft.field.span(),
                format!(
                    "restore_on_create needs `restore_value` or an attribute mapped to `{}` with a \
                     `default`, so a restored record stops being marked deleted",
                    soft.field.get_ref()
                ),
            );
        }
        let members = section
            .members
            .as_ref()
            .map(|members| self.members(section_name, members));
        let unique_user_names = match &section.unique_user_names {
            Some(by) if section_name != "users" => self.error(
                by.span(),
                format!(
                    "`unique_user_names` belongs in [users]; [{section_name}] has no userNames"
                ),
            ),
            Some(by) => Some(*by.get_ref()),
            None => Some(UniqueBy::Gateway),
        };
        let update_precondition = match &section.update_precondition {
            None => Some(None),
            Some(header) if section.meta.version.is_none() => self.error(
                header.span(),
                format!(
                    "`update_precondition` sends the version the record was read at; \
                     declare it in [{section_name}] `meta = {{ version = \"<field>\" }}`"
                ),
            ),
            Some(header) => match http::HeaderName::from_bytes(header.get_ref().as_bytes()) {
                Ok(name) => Some(Some(name)),
                Err(_) => self.error(
                    header.span(),
                    format!("`{}` is not an HTTP header name", header.get_ref()),
                ),
            },
        };
        let index = match &section.index {
            Some(spec) => Some(self.index(section_name, spec, schema, &filters, &attributes)),
            None => {
                self.advise_index(section_name, section, &filters, &attributes);
                None
            }
        };
        let meta = MetaFields {
            created: section.meta.created.as_ref().and_then(|f| self.field(f)),
            last_modified: section
                .meta
                .last_modified
                .as_ref()
                .and_then(|f| self.field(f)),
            version: section.meta.version.as_ref().and_then(|f| self.field(f)),
        };
        let read_all_returned_by_default = attributes
            .iter()
            .filter(|attribute| attribute.direction != Direction::Write)
            .all(|attribute| {
                let path = &attribute.scim.path;
                let hidden = match &path.uri {
                    Some(uri) => hidden_by_default(schema, uri, Some(&path.name)),
                    None => hidden_by_default(schema, &path.name, None),
                };
                !hidden
            });
        Some(ResourceMapping {
            id: id?,
            meta,
            list: list?,
            get: get?,
            create: create?,
            update: update?,
            update_also,
            // A broken soft/hard/members section is already reported as an
            // error, so the whole mapping is refused; flatten is safe here.
            soft_delete: soft_delete.flatten(),
            hard_delete: hard_delete.flatten(),
            restore_on_create: section.delete.restore_on_create,
            unique_user_names: unique_user_names?,
            update_precondition: update_precondition?,
            filters,
            attributes,
            members: members.flatten(),
            index: index.flatten(),
            read_all_returned_by_default,
        })
    }

    fn members(&mut self, section_name: &str, spec: &MembersSpec) -> Option<Members> {
        /// A request of 10,000 ids is already larger than most APIs take.
        const MAX_MEMBERS_PER_CALL: usize = 10_000;
        let both = [Placeholder::Id, Placeholder::Member];
        let id_only = [Placeholder::Id];
        let at = format!("[{section_name}.members]");
        let display_field = match &spec.display_field {
            Some(field) => Some(self.field(field)?),
            None => None,
        };
        // Which keys each style uses; any other key given is a mistake.
        let style_span = spec.style.span();
        let members_style = *spec.style.get_ref();
        let (needed, style): (&[&str], &str) = match members_style {
            MembersStyle::Endpoints => (&["list", "member_field", "add", "remove"], "endpoints"),
            MembersStyle::GroupField => (&["field"], "group_field"),
            MembersStyle::UserField => (&["field", "list"], "user_field"),
        };
        let call_span = |call: &Option<CallSpec>| call.as_ref().map(|c| c.path.span());
        let given = [
            ("list", call_span(&spec.list)),
            (
                "member_field",
                spec.member_field.as_ref().map(Spanned::span),
            ),
            ("add", call_span(&spec.add)),
            ("remove", call_span(&spec.remove)),
            ("lookup", call_span(&spec.lookup)),
            ("field", spec.field.as_ref().map(Spanned::span)),
        ];
        let mut complete = true;
        let per_call = match &spec.members_per_call {
            None => usize::MAX,
            Some(count) if members_style != MembersStyle::GroupField || spec.add.is_none() => {
                self.report.push(self.source.error_at(
                    Some(count.span()),
                    format!("{at} `members_per_call` bounds the ids of one `add` or `remove` call of style = \"group_field\"; this style sends {}", if members_style == MembersStyle::GroupField { "the whole list through the update call" } else { "one member per call" }),
                ));
                complete = false;
                usize::MAX
            }
            Some(count) if !(1..=MAX_MEMBERS_PER_CALL).contains(count.get_ref()) => {
                self.report.push(self.source.error_at(
                    Some(count.span()),
                    format!("{at} `members_per_call` is {}; it must be from 1 to {MAX_MEMBERS_PER_CALL}", count.get_ref()),
                ));
                complete = false;
                usize::MAX
            }
            Some(count) => *count.get_ref(),
        };
        if members_style == MembersStyle::GroupField && spec.add.is_some() != spec.remove.is_some()
        {
            self.report.push(self.source.error_at(
                spec.add.as_ref().or(spec.remove.as_ref()).map(|c| c.path.span()),
                format!("{at} style = \"group_field\" takes `add` and `remove` together (they change the list by `{{members}}`), or neither (the update writes the whole list)"),
            ));
            complete = false;
        }
        for (key, span) in given {
            let optional = matches!(key, "member_field" | "add" | "remove")
                && members_style == MembersStyle::GroupField
                || key == "lookup" && members_style == MembersStyle::Endpoints;
            if needed.contains(&key) && span.is_none() {
                self.report.push(self.source.error_at(
                    Some(style_span.clone()),
                    format!("{at} style = \"{style}\" needs `{key}`"),
                ));
                complete = false;
            } else if let Some(span) = span.filter(|_| !needed.contains(&key) && !optional) {
                self.report.push(self.source.error_at(
                    Some(span),
                    format!("{at} style = \"{style}\" does not use `{key}`"),
                ));
                complete = false;
            }
        }
        if !complete {
            return None;
        }
        let call = |cx: &mut Self,
                    spec: &Option<CallSpec>,
                    role: CallRole,
                    allowed: &[Placeholder],
                    what: &str| {
            spec.as_ref().and_then(|spec| {
                cx.call(
                    spec,
                    role,
                    allowed,
                    &id_only,
                    &format!("[{section_name}.members.{what}]"),
                )
            })
        };
        let field = |cx: &mut Self, field: &Option<Spanned<String>>| {
            field.as_ref().and_then(|f| cx.field(f))
        };
        Some(match members_style {
            MembersStyle::Endpoints => Members::Endpoints {
                list: call(self, &spec.list, CallRole::List, &id_only, "list")?,
                member_field: field(self, &spec.member_field)?,
                display_field,
                add: call(self, &spec.add, CallRole::Action, &both, "add")?,
                remove: call(self, &spec.remove, CallRole::Action, &both, "remove")?,
                lookup: match &spec.lookup {
                    Some(_) => Some(call(self, &spec.lookup, CallRole::Action, &both, "lookup")?),
                    None => None,
                },
            },
            MembersStyle::GroupField => Members::GroupField {
                field: field(self, &spec.field)?,
                member_field: match &spec.member_field {
                    Some(f) => Some(self.field(f)?),
                    None => None,
                },
                per_call,
                add: match &spec.add {
                    Some(_) => Some(call(self, &spec.add, CallRole::MemberIds, &id_only, "add")?),
                    None => None,
                },
                remove: match &spec.remove {
                    Some(_) => Some(call(
                        self,
                        &spec.remove,
                        CallRole::MemberIds,
                        &id_only,
                        "remove",
                    )?),
                    None => None,
                },
            },
            MembersStyle::UserField => Members::UserField {
                field: field(self, &spec.field)?,
                list: call(self, &spec.list, CallRole::List, &id_only, "list")?,
                display_field,
            },
        })
    }
}

fn method_of(method: MethodSpec) -> Method {
    match method {
        MethodSpec::Get => Method::GET,
        MethodSpec::Post => Method::POST,
        MethodSpec::Put => Method::PUT,
        MethodSpec::Patch => Method::PATCH,
        MethodSpec::Delete => Method::DELETE,
    }
}

/// TOML has no null; everything else converts one to one.
pub(crate) fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::from(s.as_str()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::from(*b),
        toml::Value::Datetime(d) => Value::from(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

fn style_name(style: AuthStyle) -> &'static str {
    match style {
        AuthStyle::None => "none",
        AuthStyle::Header => "header",
        AuthStyle::Bearer => "bearer",
        AuthStyle::Basic => "basic",
        AuthStyle::Oauth2ClientCredentials => "oauth2_client_credentials",
    }
}

#[cfg(test)]
mod tests;
