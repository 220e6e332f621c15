//! Calls: method, path and placeholders, body and its encoding, the keys
//! that say where things are in the answer, and paging.

use super::*;

impl Compiler<'_> {
    pub(super) fn call(
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
        call.label = std::sync::Arc::from(what.trim_matches(['[', ']']));
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
}

/// What a call's answer is, which decides the keys that say where things
/// are in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallRole {
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
    pub(super) fn call_answer_keys(
        &mut self,
        spec: &CallSpec,
        role: CallRole,
        what: &str,
    ) -> Option<()> {
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

pub(super) fn paging(spec: &PagingSpec) -> Option<Paging> {
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
