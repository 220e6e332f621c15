//! Attributes: the SCIM path, where the value comes from (a field, several
//! fields through a value map, a template), fallbacks and absent values.

use super::*;

impl Compiler<'_> {
    /// Resolves a SCIM path against the schema; `whole_list` allows a
    /// multi-valued complex attribute (mapped with `items`).
    pub(super) fn scim_path(
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

    pub(super) fn attribute(
        &mut self,
        spec: &AttributeSpec,
        schema: &ResourceSchema,
    ) -> Option<AttributeMap> {
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
    pub(super) fn fallback(
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
    pub(super) fn absent_values(
        &mut self,
        values: &Spanned<Vec<toml::Value>>,
    ) -> Option<Vec<Value>> {
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
    pub(super) fn fields_of_values(&mut self, spec: &AttributeSpec) -> Option<Source> {
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
    pub(super) fn template(&mut self, template: &Spanned<String>) -> Option<Vec<TemplatePart>> {
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

/// A multi-field value's keys in the field paths' canonical spelling, so a
/// read and a write find them whatever spacing the operator used.
pub(super) fn canonical_fields(upstream: Value) -> Value {
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
