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
    MappingFile, MembersSpec, MembersStyle, MethodSpec, PagingSpec, ResourceSection,
};
use super::{
    AttributeMap, Auth, BodyEncoding, Call, ErrorMap, ErrorRule, FieldPath, FilterParam, IdField,
    Members, MetaFields, Paging, PagingStyle, Placeholder, ResourceMapping, ScimTarget, SoftDelete,
    TotalSource, UpstreamMapping,
};
use super::{Source, TemplatePart};
use crate::diagnostics::{Report, SourceFile};
use crate::scim::error::ScimType;
use crate::scim::path::AttrPath;
use crate::scim::schema::{self, AttrType, ResourceSchema};

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
        .any(|d| d.severity == crate::diagnostics::Severity::Error);
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
        match reqwest::Url::parse(url.get_ref()) {
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
                    || reqwest::Url::parse(&token_url)
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

    fn call(
        &mut self,
        spec: &CallSpec,
        role: CallRole,
        allowed: &[Placeholder],
        required: &[Placeholder],
        what: &str,
    ) -> Option<Call> {
        self.call_answer_keys(spec, role, what)?;
        let method = method_of(spec.method);
        let body = spec.body.as_ref().map(|b| toml_to_json(b.get_ref()));
        let query = spec
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let call = match Call::new(method, spec.path.get_ref(), allowed, query, body) {
            Ok(call) => call,
            Err(message) => return self.error(spec.path.span(), format!("{what}: {message}")),
        };
        for placeholder in required {
            if !call.uses(*placeholder) {
                let token = match placeholder {
                    Placeholder::Id => "{id}",
                    Placeholder::Member => "{member}",
                };
                return self.error(
                    spec.path.span(),
                    format!("{what}: the path (or a query value) must contain `{token}` to name the record"),
                );
            }
        }
        // `{member}` and `{members}` are bound only where the gateway has
        // members to name; anywhere else they would fail every request.
        let placeholders = call.body_placeholders();
        let span = || spec.body.as_ref().map(|b| b.span()).unwrap_or_default();
        let member = placeholders.contains(&BodyPlaceholder::Member);
        let members = placeholders.contains(&BodyPlaceholder::Members);
        if member && !allowed.contains(&Placeholder::Member) {
            return self.error(
                span(),
                format!(
                    "{what}: the body uses `{{member}}`, which only a members `add` or `remove` \
                     call of style \"endpoints\" has"
                ),
            );
        }
        if members != (role == CallRole::MemberIds) {
            let message = if members {
                format!(
                    "{what}: the body uses `{{members}}`, which only a members `add` or `remove` \
                     call of style \"group_field\" has"
                )
            } else {
                format!(
                    "{what}: the body must send the member ids as `\"{{members}}\"`, e.g. \
                     body = {{ addMembers = \"{{members}}\" }}"
                )
            };
            let at = if spec.body.is_some() {
                span()
            } else {
                spec.path.span()
            };
            return self.error(at, message);
        }
        if spec.paging.is_some() && role != CallRole::List {
            return self.error(
                spec.path.span(),
                format!("{what}: `paging` applies to list calls only"),
            );
        }
        let paging = spec.paging.as_ref().and_then(paging);
        let mut call = call.with_paging(paging, spec.items.as_ref().map(|i| i.get_ref().clone()));
        call.is_list = role == CallRole::List;
        call.label = what.trim_matches(['[', ']']).to_string();
        call.record = spec.record.as_ref().map(|r| r.get_ref().clone());
        call.id_at = spec.id.as_ref().map(|r| r.get_ref().clone());
        if !spec.fields.is_empty() && !matches!(role, CallRole::Create | CallRole::Update) {
            return self.error(
                spec.fields[0].span(),
                format!("{what}: `fields` applies to create and update calls"),
            );
        }
        for field in &spec.fields {
            call.fields.push(self.field(field)?);
        }
        // With a body template, the call carries exactly what it sends: a
        // field it lists but never fills would be routed to it and dropped.
        let used_fields = call.body_fields();
        if !used_fields.is_empty()
            && let Some(unsent) = call.fields.iter().find(|f| !used_fields.contains(f))
        {
            let span = spec.body.as_ref().map(|b| b.span()).unwrap_or_default();
            return self.error(
                span,
                format!(
                    "{what}: `{unsent}` is among the call's `fields`, but its body never sends it; \
                     with a body template, list exactly the `{{field}}` placeholders it fills"
                ),
            );
        }
        // A `{field}` in the body must be one the call carries.
        for used in used_fields {
            if call.fields.is_empty() || !call.carries(&used) {
                let span = spec.body.as_ref().map(|b| b.span()).unwrap_or_default();
                return self.error(
                    span,
                    format!(
                        "{what}: the body uses `{{{used}}}`, which is not among the call's `fields`; \
                         list it there so the call is sent when it changes"
                    ),
                );
            }
        }
        call.partial = spec.partial;
        let encoding = spec.encoding.as_ref().map(|e| *e.get_ref());
        if let Some(content_type) = &spec.content_type {
            let media = content_type.get_ref().to_ascii_lowercase();
            let essence = media.split(';').next().unwrap_or_default().trim();
            let json = essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"));
            let form = essence == BodyEncoding::FORM_MEDIA_TYPE;
            if content_type.get_ref().parse::<http::HeaderValue>().is_err() || !(json || form) {
                return self.error(
                    content_type.span(),
                    format!(
                        "{what}: the gateway sends bodies as JSON or as a form, so `{}` is not a \
                         content_type it can honour; expected \"application/json\", a JSON type \
                         such as \"application/merge-patch+json\", or \"{}\"",
                        content_type.get_ref(),
                        BodyEncoding::FORM_MEDIA_TYPE
                    ),
                );
            }
            match (form, encoding) {
                (true, Some(EncodingSpec::Form) | None) => call.encoding = BodyEncoding::Form,
                (false, Some(EncodingSpec::Json) | None) => {
                    call.content_type = Some(content_type.get_ref().clone());
                }
                _ => {
                    return self.error(
                        content_type.span(),
                        format!(
                            "{what}: content_type `{}` contradicts `encoding`; give one of them",
                            content_type.get_ref()
                        ),
                    );
                }
            }
        } else {
            call.encoding = match encoding {
                Some(EncodingSpec::Form) => BodyEncoding::Form,
                Some(EncodingSpec::Query) => BodyEncoding::Query,
                Some(EncodingSpec::Json) | None => BodyEncoding::Json,
            };
        }
        Some(call)
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
        let meta = MetaFields {
            created: section.meta.created.as_ref().and_then(|f| self.field(f)),
            last_modified: section
                .meta
                .last_modified
                .as_ref()
                .and_then(|f| self.field(f)),
            version: section.meta.version.as_ref().and_then(|f| self.field(f)),
        };
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
            filters,
            attributes,
            members: members.flatten(),
        })
    }

    fn members(&mut self, section_name: &str, spec: &MembersSpec) -> Option<Members> {
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
            ("field", spec.field.as_ref().map(Spanned::span)),
        ];
        let mut complete = true;
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
                && members_style == MembersStyle::GroupField;
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
            },
            MembersStyle::GroupField => Members::GroupField {
                field: field(self, &spec.field)?,
                member_field: match &spec.member_field {
                    Some(f) => Some(self.field(f)?),
                    None => None,
                },
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

    /// Resolves a SCIM path against the schema; `whole_list` allows a
    /// multi-valued complex attribute (mapped with `items`).
    fn scim_path(
        &mut self,
        text: &Spanned<String>,
        schema: &ResourceSchema,
        whole_list: bool,
    ) -> Option<ScimTarget> {
        let parsed = match AttrPath::parse(text.get_ref()) {
            Ok(path) => path,
            Err(error) => return self.error(text.span(), format!("`{}`: {error}", text.get_ref())),
        };
        let Some(resolved) = schema.find(&parsed) else {
            let known = schema.schema_urns().join(", ");
            return self.error(
                text.span(),
                format!(
                    "`{}` is not an attribute of the {} schemas ({known}); extension attributes are \
                     written with their URN, e.g. \"{}:department\"",
                    text.get_ref(),
                    schema.name,
                    schema::ENTERPRISE_USER
                ),
            );
        };
        let uri = (resolved.schema.id != schema.core.id).then(|| resolved.schema.id.to_string());
        let leaf = resolved.sub.unwrap_or(resolved.attr);
        if leaf.kind == AttrType::Complex && !(whole_list && resolved.attr.multi_valued) {
            return self.error(
                text.span(),
                format!(
                    "`{}` is a complex attribute; map each sub-attribute instead, e.g. \"{}.{}\"",
                    text.get_ref(),
                    resolved.attr.name,
                    resolved
                        .attr
                        .sub_attributes
                        .first()
                        .map(|a| a.name)
                        .unwrap_or("value")
                ),
            );
        }
        Some(ScimTarget {
            path: AttrPath {
                uri,
                name: resolved.attr.name.to_string(),
                sub: resolved.sub.map(|s| s.name.to_string()),
            },
            multi_valued: resolved.attr.multi_valued,
            kind: leaf.kind,
        })
    }

    fn attribute(&mut self, spec: &AttributeSpec, schema: &ResourceSchema) -> Option<AttributeMap> {
        let target = self.scim_path(&spec.scim, schema, spec.items.is_some());
        let tables =
            !spec.values.is_empty() && spec.values.iter().all(|pair| pair.upstream.is_table());
        let source = match (&spec.field, &spec.template) {
            (Some(field), None) => {
                if tables {
                    return self.error(
                        field.span(),
                        format!(
                            "`{}`: its values map onto several fields (their `upstream` are \
                             tables of field = value), so drop `field`",
                            spec.scim.get_ref()
                        ),
                    );
                }
                self.field(field).map(Source::Field)
            }
            (None, Some(template)) => {
                if spec.direction != Direction::Both && spec.direction != Direction::Read {
                    return self.error(
                        template.span(),
                        "a `template` composes a read-only value; drop `direction`",
                    );
                }
                let ignored = [
                    ("values", !spec.values.is_empty()),
                    ("default", spec.default.is_some()),
                    ("set_by", !spec.set_by.is_empty()),
                    ("type", spec.value_type.is_some()),
                ];
                if let Some((key, _)) = ignored.iter().find(|(_, given)| *given) {
                    return self.error(
                        template.span(),
                        format!(
                            "`{}`: a `template` is composed text, read-only, so `{key}` would \
                             have no effect; map the value with `field` instead",
                            spec.scim.get_ref()
                        ),
                    );
                }
                self.template(template).map(Source::Template)
            }
            (None, None) if tables => self.fields_of_values(spec),
            _ => {
                return self.error(
                    spec.scim.span(),
                    format!(
                        "`{}`: give exactly one of `field` (an upstream field), `template` \
                         (composed, read-only), or `values` whose `upstream` are tables of \
                         field = value (one value onto several fields)",
                        spec.scim.get_ref()
                    ),
                );
            }
        };
        let mut set_by = Vec::new();
        for entry in &spec.set_by {
            let what = format!("set_by for `{}`", spec.scim.get_ref());
            if let Some(call) = self.call(
                &entry.call,
                CallRole::Action,
                &[Placeholder::Id],
                &[Placeholder::Id],
                &what,
            ) {
                set_by.push((toml_to_json(&entry.value), call));
            }
        }
        let target = target?;
        if target.path.name == "id" || target.path.name == "meta" {
            return self.error(
                spec.scim.span(),
                "`id` and `meta` come from [<resource>.id] and [<resource>.meta], not from attributes",
            );
        }
        let element = match &spec.element {
            None => Map::new(),
            Some(table) if target.multi_valued => {
                match toml_to_json(&toml::Value::Table(table.get_ref().clone())) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                }
            }
            Some(table) => {
                return self.error(
                    table.span(),
                    format!(
                        "`element` only applies to a multi-valued attribute; `{}` is single-valued",
                        spec.scim.get_ref()
                    ),
                );
            }
        };
        let mut items = Vec::new();
        if let Some(table) = &spec.items {
            let definition = schema.find(&target.path).map(|r| r.attr);
            if !target.multi_valued || target.path.sub.is_some() {
                return self.error(
                    table.span(),
                    format!(
                        "`items` maps a whole multi-valued attribute; `{}` is not one",
                        spec.scim.get_ref()
                    ),
                );
            }
            for (sub, field) in table.get_ref() {
                let known = definition
                    .and_then(|d| d.sub_attribute(sub))
                    .map(|d| d.name.to_string());
                let (Some(sub), Some(field)) = (known, field.as_str().and_then(FieldPath::parse))
                else {
                    return self.error(
                        table.span(),
                        format!("items: `{sub}` must be a sub-attribute of `{}` mapped to an element field name", spec.scim.get_ref()),
                    );
                };
                items.push((sub, field));
            }
        }
        if target.multi_valued && target.path.sub.is_none() && items.is_empty() {
            return self.error(
                spec.scim.span(),
                format!(
                    "`{}` is multi-valued; map one sub-attribute of its primary element, e.g. \"{}.value\", or the whole list with `items`",
                    spec.scim.get_ref(),
                    target.path.name
                ),
            );
        }
        let source = source?;
        let direction = match source {
            Source::Template(_) => Direction::Read,
            Source::Field(_) | Source::Fields(_) => spec.direction,
        };
        let fallback = self.fallback(spec, &target, direction, schema)?;
        let absent = match &spec.absent {
            Some(values) => self.absent_values(values)?,
            None => self.absent.clone(),
        };
        Some(AttributeMap {
            scim: target,
            source,
            value_type: spec.value_type,
            element,
            values: spec
                .values
                .iter()
                .map(|pair| {
                    (
                        toml_to_json(&pair.scim),
                        canonical_fields(toml_to_json(&pair.upstream)),
                    )
                })
                .collect(),
            default: spec.default.as_ref().map(toml_to_json),
            fallback,
            absent,
            direction,
            set_by,
            items,
        })
    }

    /// An attribute's `fallback` paths: single values of the same schema,
    /// for an attribute that is written as a field.
    fn fallback(
        &mut self,
        spec: &AttributeSpec,
        target: &ScimTarget,
        direction: Direction,
        schema: &ResourceSchema,
    ) -> Option<Vec<ScimTarget>> {
        let Some(first) = spec.fallback.first() else {
            return Some(Vec::new());
        };
        let ignored_because = if direction == Direction::Read {
            Some("it is read-only")
        } else if !spec.set_by.is_empty() {
            Some("it is changed by its `set_by` calls")
        } else if spec.items.is_some() {
            Some("it maps a whole list")
        } else {
            None
        };
        if let Some(reason) = ignored_because {
            return self.error(
                first.span(),
                format!(
                    "`{}`: `fallback` gives a value to write, but {reason}; drop `fallback`",
                    spec.scim.get_ref()
                ),
            );
        }
        let mut paths = Vec::new();
        for text in &spec.fallback {
            let path = self.scim_path(text, schema, false)?;
            if path.path == target.path {
                return self.error(
                    text.span(),
                    format!(
                        "`{}` is the attribute itself; a fallback names another SCIM path, e.g. \"userName\"",
                        text.get_ref()
                    ),
                );
            }
            paths.push(path);
        }
        Some(paths)
    }

    /// An `absent` list: scalar upstream values (TOML has no null; a JSON
    /// null always means absent).
    fn absent_values(&mut self, values: &Spanned<Vec<toml::Value>>) -> Option<Vec<Value>> {
        let mut absent = Vec::new();
        for value in values.get_ref() {
            match value {
                toml::Value::String(_)
                | toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_) => absent.push(toml_to_json(value)),
                other => {
                    return self.error(
                        values.span(),
                        format!(
                            "`absent` lists upstream values that mean \"no value\", each a string, \
                             number or boolean, e.g. absent = [\"\"]; got a {}",
                            other.type_str()
                        ),
                    );
                }
            }
        }
        Some(absent)
    }

    /// The fields a multi-field value map names, in first-named order.
    fn fields_of_values(&mut self, spec: &AttributeSpec) -> Option<Source> {
        let mut fields: Vec<FieldPath> = Vec::new();
        for pair in &spec.values {
            let Some(table) = pair.upstream.as_table() else {
                continue;
            };
            for name in table.keys() {
                match FieldPath::parse_checked(name) {
                    Ok(field) if !fields.contains(&field) => fields.push(field),
                    Ok(_) => {}
                    Err(reason) => {
                        return self.error(
                            spec.scim.span(),
                            format!(
                                "`{}`: `{name}` in its values is not a field path: {reason}",
                                spec.scim.get_ref()
                            ),
                        );
                    }
                }
            }
        }
        Some(Source::Fields(fields))
    }

    /// "{profile.firstName} {profile.lastName}" → text and field parts.
    fn template(&mut self, template: &Spanned<String>) -> Option<Vec<TemplatePart>> {
        let mut parts = Vec::new();
        let mut rest = template.get_ref().as_str();
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                return self.error(
                    template.span(),
                    "unclosed `{` in template; write fields as {profile.firstName}",
                );
            };
            let name = &rest[open + 1..open + close];
            let Some(field) = FieldPath::parse(name) else {
                return self.error(
                    template.span(),
                    format!("`{{{name}}}` in template is not a field path"),
                );
            };
            parts.push(TemplatePart::Field(field));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest.to_string()));
        }
        if !parts.iter().any(|p| matches!(p, TemplatePart::Field(_))) {
            return self.error(
                template.span(),
                "a template names at least one field, e.g. \"{first} {last}\"",
            );
        }
        Some(parts)
    }
}

/// What a call's answer is, which decides the keys that say where things
/// are in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallRole {
    /// Answers records: `items` (and `paging`).
    List,
    /// Answers one record: `record`.
    Record,
    /// Answers the new record (`record`), or something else holding its id (`id`).
    Create,
    /// Answers the record, maybe (`record`); carries `fields`.
    Update,
    /// Its answer is not read.
    Action,
    /// Its answer is not read; its body carries member ids as `{members}`.
    MemberIds,
}

impl Compiler<'_> {
    /// Refuses answer keys a call's role does not read, at the key itself,
    /// and checks the pointers given.
    fn call_answer_keys(&mut self, spec: &CallSpec, role: CallRole, what: &str) -> Option<()> {
        let mut ok = true;
        let mut refuse = |cx: &mut Self, key: &Option<Spanned<String>>, message: String| {
            if let Some(key) = key {
                cx.error::<()>(key.span(), format!("{what}: {message}"));
                ok = false;
            }
        };
        if role != CallRole::List {
            refuse(
                self,
                &spec.items,
                "`items` applies to list calls; where a single record is in the answer is \
                 `record` (e.g. record = \"/data/0\")"
                    .into(),
            );
        }
        if !matches!(role, CallRole::Record | CallRole::Create | CallRole::Update) {
            refuse(
                self,
                &spec.record,
                match role {
                    CallRole::List => "`record` applies to single-record calls; a list's records \
                                       are at `items`"
                        .into(),
                    _ => "`record` has no effect here: this call's answer is not read".into(),
                },
            );
        }
        if role != CallRole::Create {
            refuse(
                self,
                &spec.id,
                "`id` applies to create calls whose answer is not the new record".into(),
            );
        } else if spec.id.is_some() && spec.record.is_some() {
            refuse(
                self,
                &spec.record,
                "give `record` (the answer is the new record) or `id` (it only names it), not both"
                    .into(),
            );
        }
        for pointer in [&spec.items, &spec.record, &spec.id].into_iter().flatten() {
            let text = pointer.get_ref();
            if !text.is_empty() && !text.starts_with('/') {
                self.error::<()>(
                    pointer.span(),
                    format!(
                        "{what}: `{text}` is not a JSON pointer; it starts with `/`, e.g. \"/data/0\" (\"\" is the whole answer)"
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(())
    }
}

fn paging(spec: &PagingSpec) -> Option<Paging> {
    let total = |header: &Option<String>, pointer: &Option<String>| match (header, pointer) {
        (Some(header), _) => TotalSource::Header(header.clone()),
        (None, Some(pointer)) => TotalSource::Pointer(pointer.clone()),
        (None, None) => TotalSource::Unknown,
    };
    let (style, size_param, max_page_size, total) = match spec {
        PagingSpec::None {} => return None,
        PagingSpec::Page {
            page_param,
            size_param,
            first_page,
            max_page_size,
            total_header,
            total_pointer,
        } => (
            PagingStyle::Page {
                page_param: page_param.clone(),
                first_page: *first_page,
            },
            size_param,
            max_page_size,
            total(total_header, total_pointer),
        ),
        PagingSpec::Offset {
            offset_param,
            limit_param,
            max_page_size,
            total_header,
            total_pointer,
        } => (
            PagingStyle::Offset {
                offset_param: offset_param.clone(),
            },
            limit_param,
            max_page_size,
            total(total_header, total_pointer),
        ),
        PagingSpec::Cursor {
            cursor_param,
            size_param,
            max_page_size,
            next_pointer,
            total_header,
            total_pointer,
        } => (
            PagingStyle::Cursor {
                cursor_param: cursor_param.clone(),
                next_pointer: next_pointer.clone(),
            },
            size_param,
            max_page_size,
            total(total_header, total_pointer),
        ),
        PagingSpec::Link {
            size_param,
            max_page_size,
            total_header,
            total_pointer,
        } => (
            PagingStyle::Link,
            size_param,
            max_page_size,
            total(total_header, total_pointer),
        ),
    };
    Some(Paging {
        style,
        size_param: size_param.clone(),
        max_page_size: (*max_page_size).max(1),
        total,
    })
}

/// TOML has no null; everything else converts one to one.
fn method_of(method: MethodSpec) -> Method {
    match method {
        MethodSpec::Get => Method::GET,
        MethodSpec::Post => Method::POST,
        MethodSpec::Put => Method::PUT,
        MethodSpec::Patch => Method::PATCH,
        MethodSpec::Delete => Method::DELETE,
    }
}

/// A multi-field value's keys in the field paths' canonical spelling, so a
/// read and a write find them whatever spacing the operator used.
fn canonical_fields(upstream: Value) -> Value {
    match upstream {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| match FieldPath::parse(&name) {
                    Some(field) => (field.to_string(), value),
                    None => (name, value),
                })
                .collect(),
        ),
        other => other,
    }
}

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
mod tests {
    use super::*;

    fn errors_of(text: &str) -> Vec<String> {
        let source = SourceFile::new("m.toml", text);
        let mut report = Report::default();
        let compiled = compile(&source, &mut report);
        assert!(compiled.is_none() || !report.has_errors());
        report.diagnostics.iter().map(|d| d.to_string()).collect()
    }

    fn legacy_with(from: &str, to: &str) -> String {
        let text = include_str!("../../mappings/upstream/legacy.toml");
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1)
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
        let itself = errors_of(&with("fallback = [\"emails.value\"]"));
        assert!(
            located(&itself, "is the attribute itself").contains("m.toml:93:13"),
            "{itself:?}"
        );
        let unknown = errors_of(&with("fallback = [\"nickname\", \"login\"]"));
        assert!(located(&unknown, "`login` is not an attribute").contains("m.toml:93:25"));
        let read_only = errors_of(&with("direction = \"read\"\nfallback = [\"userName\"]"));
        assert!(located(&read_only, "it is read-only").contains("m.toml:94:13"));
        let table = errors_of(&with("absent = [\"\", { x = 1 }]"));
        assert!(
            located(&table, "each a string, number or boolean").contains("m.toml:93:10"),
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
        let user_field = errors_of(&legacy_with(
            "style = \"endpoints\"",
            "style = \"user_field\"",
        ));
        assert!(located(&user_field, "needs `field`").contains("m.toml:185:9"));
        assert!(located(&user_field, "does not use `member_field`").contains("m.toml:187:16"));
        assert!(located(&user_field, "does not use `add`").contains("m.toml:189:"));
        let text = include_str!("../../mappings/upstream/legacy.toml");
        let start = text.find("[groups.members]").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        let no_members = errors_of(&format!("{}{}", &text[..start], &text[end..]));
        assert!(
            located(&no_members, "declares no [groups.members]").contains("m.toml:148:"),
            "{no_members:?}"
        );
    }

    #[test]
    fn member_placeholders_are_refused_where_no_members_are_bound_and_required_where_they_are() {
        let wrike = include_str!("../../mappings/upstream/wrike.toml");
        let compile_errors = |text: &str| errors_of(text);
        let unbound = compile_errors(&legacy_with(
            "remove = { method = \"DELETE\", path = \"/api/v1/teams/{id}/members/{member}\" }",
            "remove = { method = \"DELETE\", path = \"/api/v1/teams/{id}/members/{member}\", body = { all = \"{members}\" } }",
        ));
        assert!(located(&unbound, "uses `{members}`").contains("m.toml:190:"));
        let on_update = compile_errors(&legacy_with(
            "[users.update]\nmethod = \"PATCH\"\npath = \"/api/v1/users/{id}\"",
            "[users.update]\nmethod = \"PATCH\"\npath = \"/api/v1/users/{id}\"\nbody = { who = \"{member}\" }",
        ));
        assert!(located(&on_update, "uses `{member}`").contains("m.toml:58:"));
        let without_ids = wrike.replacen(
            "body = { addMembers = \"{members}\" }",
            "body = { addMembers = [] }",
            1,
        );
        assert_ne!(without_ids, wrike);
        let errors = compile_errors(&without_ids);
        assert!(located(&errors, "must send the member ids").contains("m.toml:230:"));
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
            include_str!("../../mappings/upstream/legacy.toml"),
        );
        let mapping = compile(&source, &mut Report::default()).unwrap();
        let body =
            serde_json::json!({"error": {"code": "EMAIL_TAKEN", "message": "email is taken"}});
        let error = mapping.errors.to_scim(StatusCode::CONFLICT, &body);
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert_eq!(error.scim_type, Some(ScimType::Uniqueness));
        assert!(
            error.detail.contains("EMAIL_TAKEN: email is taken"),
            "{}",
            error.detail
        );
        let error = mapping
            .errors
            .to_scim(StatusCode::UNPROCESSABLE_ENTITY, &body);
        assert_eq!(
            (error.status, error.scim_type),
            (StatusCode::BAD_REQUEST, Some(ScimType::InvalidValue))
        );
        let error = mapping
            .errors
            .to_scim(StatusCode::INTERNAL_SERVER_ERROR, &serde_json::Value::Null);
        assert_eq!(error.status, StatusCode::BAD_GATEWAY);
        let error = mapping
            .errors
            .to_scim(StatusCode::UNAUTHORIZED, &serde_json::Value::Null);
        assert_eq!(
            error.status,
            StatusCode::BAD_GATEWAY,
            "an upstream 401 is the gateway's problem"
        );
    }
}
