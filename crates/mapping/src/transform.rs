//! Converts resources between SCIM JSON and upstream JSON as the attribute
//! table of a mapping declares: field paths, value maps, types, defaults and
//! the primary element of multi-valued attributes.

use std::borrow::Cow;

use serde_json::{Map, Value};

use scimgate_scim::json::{Members, Scalar, Tree, View};

mod built;

use built::Object;

use super::{
    AttributeMap, Bindings, Call, Direction, FieldPath, MappingError, ResourceMapping, ScimTarget,
    Source, TemplatePart, UpstreamRequest, ValueType,
};
use scimgate_scim::schema::{AttrType, ResourceSchema};

/// What an attribute absent from the desired SCIM resource means for an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// Leave the upstream field as it is (PUT: the IdP may not sync it).
    Keep,
    /// Clear the upstream field (PATCH removed the attribute).
    Clear,
}

impl ResourceMapping {
    /// The upstream record's id as a SCIM id.
    pub fn upstream_id<'r>(&self, record: impl Into<View<'r>>) -> Result<String, MappingError> {
        self.id_text(record.into()).map(Cow::into_owned)
    }

    fn id_text<'r>(&self, record: View<'r>) -> Result<Cow<'r, str>, MappingError> {
        match self.id.field.read(record).map(View::scalar) {
            Some(Scalar::Str(id)) if !id.is_empty() => Ok(Cow::Borrowed(id)),
            Some(Scalar::Number(id)) => Ok(Cow::Owned(id.to_string())),
            _ => Err(MappingError::MissingId(self.id.field.to_string())),
        }
    }

    /// Builds the SCIM resource for an upstream record (without
    /// `meta.resourceType`/`meta.location`, which depend on the request).
    /// The record is a value, or a tree read from the upstream's text.
    pub fn to_scim<'r>(
        &'r self,
        record: impl Into<View<'r>>,
        schema: &'r ResourceSchema,
    ) -> Result<Value, MappingError> {
        self.build::<Map<String, Value>>(record.into(), schema)
            .map(Value::Object)
    }

    /// [`Self::to_scim`]'s resource, its values lent by the record and the
    /// mapping where they are used as they are: a page of records is
    /// written out without copying each value into a resource first. The
    /// record is a value, or a tree read from the upstream's text.
    pub fn to_scim_tree<'r>(
        &'r self,
        record: impl Into<View<'r>>,
        schema: &'r ResourceSchema,
    ) -> Result<Tree<'r>, MappingError> {
        self.build::<Members<'r>>(record.into(), schema)
            .map(Tree::Object)
    }

    fn build<'r, O: Object<'r>>(
        &'r self,
        record: View<'r>,
        schema: &'r ResourceSchema,
    ) -> Result<O, MappingError> {
        // Sized once: growing a map rehashes it (`id`, `schemas`, `meta`).
        let mut resource = O::with_capacity(self.attributes.len() + 3);
        // The core schema and an extension or two.
        let mut schemas = Vec::with_capacity(3);
        schemas.push(schema.core.id);
        resource.insert("id", O::text(self.id_text(record)?));
        for attribute in &self.attributes {
            if attribute.direction == Direction::Write {
                continue;
            }
            let Some(raw) = attribute.upstream_value(record) else {
                continue;
            };
            let Some(value) = attribute.read::<O>(raw) else {
                continue;
            };
            if let Some(uri) = &attribute.scim.path.uri
                && !schemas.contains(&uri.as_str())
            {
                schemas.push(uri);
            }
            attribute.place(&mut resource, value);
        }
        let schemas = schemas
            .into_iter()
            .map(|uri| O::text(Cow::Borrowed(uri)))
            .collect();
        resource.insert("schemas", O::list(schemas));
        let mut meta = O::with_capacity(5);
        let text =
            |field: &Option<FieldPath>| field.as_ref().and_then(|f| scalar_text(f.read(record)?));
        if let Some(created) = text(&self.meta.created) {
            meta.insert("created", O::text(created));
        }
        if let Some(modified) = text(&self.meta.last_modified) {
            meta.insert("lastModified", O::text(modified));
        }
        if let Some(version) = self.version_text(record) {
            meta.insert("version", O::text(Cow::Owned(format!("W/\"{version}\""))));
        }
        resource.insert("meta", meta.node());
        Ok(resource)
    }

    /// The record's version as the upstream gives it (`meta.version`
    /// without its ETag form).
    pub fn version_of<'r>(&self, record: impl Into<View<'r>>) -> Option<String> {
        self.version_text(record.into()).map(Cow::into_owned)
    }

    fn version_text<'r>(&self, record: View<'r>) -> Option<Cow<'r, str>> {
        scalar_text(self.meta.version.as_ref()?.read(record)?)
    }

    /// The upstream fields and values that create `resource`, with the
    /// declared defaults for attributes the IdP did not send.
    pub fn create_fields(&self, resource: &Value) -> Result<Vec<(FieldPath, Value)>, MappingError> {
        let mut fields = Vec::new();
        for attribute in self.writable() {
            let value = match attribute.extract(resource) {
                Some(Value::Null) | None => attribute
                    .fallback_value(resource)
                    .cloned()
                    .or_else(|| attribute.default.clone()),
                Some(value) => Some(value.clone()),
            };
            if let Some(value) = value {
                for (field, written) in attribute.writes(attribute.write(&value)?) {
                    fields.push((field.clone(), written));
                }
            }
        }
        Ok(fields)
    }

    /// The create request for `resource`: the fields the create call carries
    /// (all, if it names none), in its body template if it has one.
    pub fn create_request(&self, resource: &Value) -> Result<UpstreamRequest, MappingError> {
        let call = &self.create;
        let carried: Vec<(FieldPath, Value)> = self
            .create_fields(resource)?
            .into_iter()
            .filter(|(field, _)| call.fields.is_empty() || call.carries(field))
            .collect();
        let mut request = call.request(Bindings {
            changes: Some(&carried),
            ..Bindings::default()
        })?;
        if !call.has_body_template() {
            let mut body = Map::new();
            for (field, value) in carried {
                field.set(&mut body, value);
            }
            request.body = Some(Value::Object(body));
        }
        Ok(request)
    }

    /// The field changes that make an existing record look freshly created
    /// from `resource` (a restore): its create fields, and every other
    /// writable field, a write-only one such as a password included, cleared
    /// (null), so nothing of the record's earlier life survives.
    pub fn fresh_fields(&self, resource: &Value) -> Result<Vec<(FieldPath, Value)>, MappingError> {
        let mut fields = self.create_fields(resource)?;
        let unset: Vec<(FieldPath, Value)> = self
            .writable()
            .flat_map(|attribute| {
                attribute
                    .fields()
                    .iter()
                    .map(|field| (field.clone(), attribute.cleared()))
            })
            .filter(|(field, _)| !fields.iter().any(|(set, _)| set == field))
            .collect();
        fields.extend(unset);
        Ok(fields)
    }

    /// The upstream fields that change when `current` (the resource as read
    /// from `record`, a value or a tree read from the upstream's text)
    /// becomes `desired`, with their new values (null clears).
    pub fn changes<'r>(
        &self,
        record: impl Into<View<'r>>,
        current: &Value,
        desired: &Value,
        absent: Absent,
    ) -> Result<Vec<(FieldPath, Value)>, MappingError> {
        let record = record.into();
        let mut changes = Vec::new();
        for attribute in self.writable() {
            let wanted = match attribute.extract(desired) {
                Some(value) if !value.is_null() => attribute.write(value)?,
                // An explicit null clears, unless a fallback has a value.
                Some(_) => match attribute.fallback_value(desired) {
                    Some(value) => attribute.write(value)?,
                    None => Value::Null,
                },
                // Only clear what the IdP could see: an upstream value the
                // mapping does not translate (e.g. a soft-delete marker) stays.
                // A fallback, else a default, takes the place of a removed
                // value ("Regular when absent"), as the upstream may not
                // store "nothing".
                None if absent == Absent::Clear
                    && attribute.direction == Direction::Both
                    && attribute.extract(current).is_some() =>
                {
                    match attribute
                        .fallback_value(desired)
                        .or(attribute.default.as_ref())
                    {
                        Some(value) => attribute.write(value)?,
                        None => Value::Null,
                    }
                }
                None => continue,
            };
            for (field, wanted) in attribute.writes(wanted) {
                let held = field.read(record).unwrap_or(View::Value(&Value::Null));
                let same = held.equals(&wanted)
                    || (attribute.means_absent(held) && attribute.means_absent((&wanted).into()));
                if !same {
                    changes.push((field.clone(), wanted));
                }
            }
        }
        Ok(changes)
    }

    /// The update requests that make `changes` on the record `id`: each
    /// update call gets the changes it carries, and a call that carries none
    /// is not sent. A change no call carries (a field the upstream sets only
    /// on create) is refused.
    pub fn update_requests<'r>(
        &self,
        id: &str,
        record: impl Into<View<'r>>,
        changes: Vec<(FieldPath, Value)>,
    ) -> Result<Vec<UpstreamRequest>, MappingError> {
        self.rendered_updates(id, record.into(), changes, false)
    }

    /// As [`Self::update_requests`], the primary call conditional on the
    /// version `record` was read at (`update_precondition`), for a caller
    /// that reads again and retries when the upstream refuses it as stale.
    pub fn conditional_update_requests<'r>(
        &self,
        id: &str,
        record: impl Into<View<'r>>,
        changes: Vec<(FieldPath, Value)>,
    ) -> Result<Vec<UpstreamRequest>, MappingError> {
        self.rendered_updates(id, record.into(), changes, true)
    }

    fn rendered_updates(
        &self,
        id: &str,
        record: View<'_>,
        changes: Vec<(FieldPath, Value)>,
        conditional: bool,
    ) -> Result<Vec<UpstreamRequest>, MappingError> {
        let calls: Vec<&Call> = std::iter::once(&self.update)
            .chain(&self.update_also)
            .collect();
        let mut routed: Vec<Vec<(FieldPath, Value)>> = vec![Vec::new(); calls.len()];
        for (field, value) in changes {
            let position = calls
                .iter()
                .position(|call| call.carries(&field))
                .or_else(|| calls.iter().position(|call| call.fields.is_empty()))
                .ok_or_else(|| MappingError::NotUpdatable {
                    field: field.to_string(),
                })?;
            routed[position].push((field, value));
        }
        let mut requests = Vec::new();
        let mut remaining = routed.iter().filter(|carried| !carried.is_empty()).count();
        // Each call's body starts from the record as the calls before it
        // left it: two calls carrying elements of one array (each sending
        // the array whole) would otherwise undo each other.
        let mut moved_on: Option<Value> = None;
        for (call, carried) in calls.into_iter().zip(routed) {
            if carried.is_empty() {
                continue;
            }
            let current = moved_on.as_ref().map_or(record, View::Value);
            remaining -= 1;
            let mut request = call.request(Bindings {
                id: Some(id),
                changes: Some(&carried),
                ..Bindings::default()
            })?;
            // Only the primary call is conditional, on the version `record`
            // was read at: the upstream versions the record it writes.
            if conditional
                && std::ptr::eq(call, &self.update)
                && let Some(header) = &self.update_precondition
                && let Some(version) = self.version_of(record)
            {
                request.precondition = Some((header.clone(), version));
            }
            let later = (remaining > 0).then(|| carried.clone());
            if !call.has_body_template() {
                request.body = Some(Value::Object(render_fields(call, current, carried)));
            }
            if let Some(made) = later {
                let mut applied = Map::new();
                for (field, value) in made {
                    write_change(&mut applied, current, &field, value);
                }
                if let Value::Object(fields) = moved_on.get_or_insert_with(|| record.to_value()) {
                    merge(fields, applied);
                }
            }
            requests.push(request);
        }
        Ok(requests)
    }

    /// Attributes written as upstream fields: not read-only, not composed,
    /// not changed by calls.
    fn writable(&self) -> impl Iterator<Item = &AttributeMap> {
        self.attributes.iter().filter(|a| {
            !matches!(a.source, Source::Template(_))
                && a.direction != Direction::Read
                && a.set_by.is_empty()
        })
    }

    /// The calls that bring `record` to the `desired` resource's values of
    /// attributes changed by calls (e.g. `:suspend`), in attribute order.
    pub fn state_calls<'r>(
        &self,
        record: impl Into<View<'r>>,
        desired: &Value,
    ) -> Result<Vec<&Call>, MappingError> {
        let record = record.into();
        let mut calls = Vec::new();
        for attribute in self.attributes.iter().filter(|a| !a.set_by.is_empty()) {
            let Some(wanted) = attribute.extract(desired).filter(|v| !v.is_null()) else {
                continue;
            };
            let current = attribute
                .upstream_value(record)
                .and_then(|raw| attribute.read::<Map<String, Value>>(raw));
            if current
                .as_ref()
                .is_some_and(|c| loosely_equal(c.into(), wanted))
            {
                continue;
            }
            let call = attribute
                .set_by
                .iter()
                .find(|(value, _)| loosely_equal(value.into(), wanted))
                .map(|(_, call)| call)
                .ok_or_else(|| MappingError::UnmappedValue {
                    attribute: attribute.scim.path.to_string(),
                    value: wanted.to_string(),
                    accepted: attribute
                        .set_by
                        .iter()
                        .map(|(v, _)| v.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            calls.push(call);
        }
        Ok(calls)
    }
}

/// A string or number as text; anything else is no version or time.
fn scalar_text(value: View<'_>) -> Option<Cow<'_, str>> {
    match value.scalar() {
        Scalar::Str(s) => Some(Cow::Borrowed(s)),
        Scalar::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// The body carrying `changes` for `call`: only them for a partial update,
/// else the whole record with them.
fn render_fields(
    call: &Call,
    record: View<'_>,
    changes: Vec<(FieldPath, Value)>,
) -> Map<String, Value> {
    let mut body = Map::new();
    for (field, value) in changes {
        write_change(&mut body, record, &field, value);
    }
    if call.partial {
        return body;
    }
    let mut full = match record.to_value() {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    merge(&mut full, body);
    full
}

/// One change into a body of changes to `record`; null clears the field.
fn write_change(body: &mut Map<String, Value>, record: View<'_>, field: &FieldPath, value: Value) {
    if value.is_null() {
        field.clear_from(body, record);
    } else {
        field.set_from(body, record, value);
    }
}

fn merge(target: &mut Map<String, Value>, changes: Map<String, Value>) {
    for (key, value) in changes {
        match (target.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(nested)) => merge(existing, nested),
            (_, value) => {
                target.insert(key, value);
            }
        }
    }
}

impl AttributeMap {
    /// The upstream value this attribute reads: its field, or its template
    /// filled in (absent when every field it names is empty). A field's
    /// value is borrowed: reading it into the resource copies it once.
    fn upstream_value<'r>(&self, record: View<'r>) -> Option<Raw<'r>> {
        let present = |field: &FieldPath| field.read(record).filter(|v| !self.means_absent(*v));
        let made = match &self.source {
            Source::Field(field) => return present(field).map(Raw::Lent),
            Source::Fields(fields) => {
                let held: Map<String, Value> = fields
                    .iter()
                    .filter_map(|f| Some((f.to_string(), present(f)?.to_value())))
                    .collect();
                (!held.is_empty()).then_some(Value::Object(held))
            }
            Source::Template(parts) => {
                let mut text = String::new();
                let mut any = false;
                for part in parts {
                    match part {
                        TemplatePart::Text(t) => text.push_str(t),
                        TemplatePart::Field(field) => match present(field).map(View::scalar) {
                            Some(Scalar::Str(s)) if !s.is_empty() => {
                                any = true;
                                text.push_str(s);
                            }
                            Some(Scalar::Number(n)) => {
                                any = true;
                                text.push_str(&n.to_string());
                            }
                            Some(Scalar::Bool(b)) => {
                                any = true;
                                text.push_str(if b { "true" } else { "false" });
                            }
                            _ => {}
                        },
                    }
                }
                any.then(|| Value::from(text.trim()))
            }
        };
        made.map(Raw::Made)
    }

    /// The SCIM value this attribute maps, if the resource carries it;
    /// `Some(Null)` when the IdP sent an explicit null or an empty list.
    pub fn extract<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        self.scim.extract(resource)
    }

    /// The first value the resource holds at one of this attribute's
    /// `fallback` paths.
    fn fallback_value<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        self.fallback
            .iter()
            .find_map(|path| path.extract(resource).filter(|v| !v.is_null()))
    }

    /// Whether an upstream value means "no value" for this field.
    fn means_absent(&self, value: View<'_>) -> bool {
        value.is_null() || self.absent.iter().any(|absent| value.equals(absent))
    }

    /// What clearing this attribute's fields writes: its first `absent`
    /// value, else null.
    fn cleared(&self) -> Value {
        self.absent.first().cloned().unwrap_or(Value::Null)
    }

    /// The upstream fields this attribute writes.
    pub fn fields(&self) -> &[FieldPath] {
        match &self.source {
            Source::Field(field) => std::slice::from_ref(field),
            Source::Fields(fields) => fields,
            Source::Template(_) => &[],
        }
    }

    /// The (field, value) writes of an upstream value from [`Self::write`]:
    /// for several fields, the fields its object names (null clears them all).
    fn writes(&self, written: Value) -> Vec<(&FieldPath, Value)> {
        let written = if written.is_null() {
            self.cleared()
        } else {
            written
        };
        match (&self.source, written) {
            (Source::Field(field), written) => vec![(field, written)],
            // A field the chosen pair does not name is cleared: left as it
            // was, it could keep a privilege the new value does not have.
            (Source::Fields(fields), Value::Object(values)) => fields
                .iter()
                .map(|f| {
                    (
                        f,
                        values
                            .get(&f.to_string())
                            .cloned()
                            .unwrap_or_else(|| self.cleared()),
                    )
                })
                .collect(),
            (Source::Fields(fields), _) => fields.iter().map(|f| (f, self.cleared())).collect(),
            (Source::Template(_), _) => Vec::new(),
        }
    }

    /// Puts a SCIM value at this attribute's place in `resource`.
    fn place<'r, O: Object<'r>>(&'r self, resource: &mut O, value: O::Node) {
        let path = &self.scim.path;
        let container = match &path.uri {
            Some(uri) => match resource.object_entry(uri) {
                Some(extension) => extension,
                None => return,
            },
            None => resource,
        };
        let Some(sub) = &path.sub else {
            container.insert(&path.name, value);
            return;
        };
        let holder = if self.scim.multi_valued {
            container.first_element(&path.name, || O::copy_of(&self.element))
        } else {
            container.object_entry(&path.name)
        };
        if let Some(holder) = holder {
            holder.insert(sub, value);
        }
    }

    /// Upstream value → SCIM value; `None` when it has no SCIM meaning. A
    /// value the record lends is lent on where it is used as it is.
    fn read<'r, O: Object<'r>>(&'r self, raw: Raw<'r>) -> Option<O::Node> {
        match raw {
            Raw::Lent(raw) => self.read_lent::<O>(raw),
            // Made from several fields: nothing in the record to lend.
            Raw::Made(raw) => self
                .read_lent::<Map<String, Value>>(View::Value(&raw))
                .map(O::own),
        }
    }

    fn read_lent<'r, O: Object<'r>>(&'r self, raw: View<'r>) -> Option<O::Node> {
        if raw.is_null() {
            return None;
        }
        if !self.items.is_empty() {
            if !raw.is_array() {
                return None;
            }
            let list: Vec<O::Node> = raw
                .elements()
                .filter_map(|element| {
                    let mut item = O::with_capacity(self.items.len());
                    for (sub, field) in &self.items {
                        if let Some(value) = field.read(element).filter(|v| !self.means_absent(*v))
                        {
                            item.insert(sub, O::lend(value));
                        }
                    }
                    (!item.is_empty()).then(|| item.node())
                })
                .collect();
            return (!list.is_empty()).then(|| O::list(list));
        }
        if !self.values.is_empty() {
            return self
                .values
                .iter()
                .find(|(_, upstream)| match (&self.source, upstream) {
                    // Every field the pair names holds its value.
                    (Source::Fields(_), Value::Object(wanted)) if raw.is_object() => {
                        wanted.iter().all(|(field, value)| {
                            raw.get(field).is_some_and(|h| loosely_equal(h, value))
                        })
                    }
                    _ => loosely_equal(raw, upstream),
                })
                .map(|(scim, _)| O::lend(View::Value(scim)));
        }
        Some(match (self.scim.kind, raw.scalar()) {
            (AttrType::String | AttrType::Reference | AttrType::DateTime, Scalar::Number(n)) => {
                O::text(Cow::Owned(n.to_string()))
            }
            (AttrType::String | AttrType::Reference | AttrType::DateTime, Scalar::Bool(b)) => {
                O::text(Cow::Borrowed(if b { "true" } else { "false" }))
            }
            (AttrType::Boolean, Scalar::Str(s)) => match s.to_ascii_lowercase().as_str() {
                "true" => O::own(Value::Bool(true)),
                "false" => O::own(Value::Bool(false)),
                _ => return None,
            },
            (AttrType::Integer | AttrType::Decimal, Scalar::Str(s)) => {
                serde_json::from_str::<serde_json::Number>(s)
                    .ok()
                    .map(|n| O::own(Value::Number(n)))?
            }
            _ => O::lend(raw),
        })
    }

    /// SCIM value → upstream value, checked against the value map and type.
    fn write(&self, scim: &Value) -> Result<Value, MappingError> {
        if scim.is_null() {
            return Ok(Value::Null);
        }
        if !self.items.is_empty() {
            let Value::Array(list) = scim else {
                return Err(MappingError::WrongType {
                    attribute: self.scim.path.to_string(),
                    expected: "a list",
                    value: scim.to_string(),
                });
            };
            let elements = list
                .iter()
                .map(|item| {
                    let mut element = Map::new();
                    for (sub, field) in &self.items {
                        if let Some(value) = item.get(sub) {
                            field.set(&mut element, value.clone());
                        }
                    }
                    Value::Object(element)
                })
                .collect();
            return Ok(Value::Array(elements));
        }
        if !self.values.is_empty() {
            return self
                .values
                .iter()
                .find(|(candidate, _)| loosely_equal(candidate.into(), scim))
                .map(|(_, upstream)| upstream.clone())
                .ok_or_else(|| MappingError::UnmappedValue {
                    attribute: self.scim.path.to_string(),
                    value: scim.to_string(),
                    accepted: self
                        .values
                        .iter()
                        .map(|(candidate, _)| candidate.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
        }
        let wrong = |expected| MappingError::WrongType {
            attribute: self.scim.path.to_string(),
            expected,
            value: scim.to_string(),
        };
        match (self.value_type, scim) {
            (None, value) => Ok(value.clone()),
            (Some(ValueType::String), Value::String(_)) => Ok(scim.clone()),
            (Some(ValueType::String), Value::Number(n)) => Ok(Value::from(n.to_string())),
            (Some(ValueType::String), Value::Bool(b)) => Ok(Value::from(b.to_string())),
            (Some(ValueType::Integer), Value::Number(n)) if n.is_i64() => Ok(scim.clone()),
            (Some(ValueType::Integer), Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| wrong("an integer")),
            (Some(ValueType::Boolean), Value::Bool(_)) => Ok(scim.clone()),
            (Some(ValueType::Boolean), Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(wrong("a boolean")),
            },
            (Some(ValueType::Integer), _) => Err(wrong("an integer")),
            (Some(ValueType::Boolean), _) => Err(wrong("a boolean")),
            (Some(ValueType::String), _) => Err(wrong("a string")),
        }
    }
}

impl ScimTarget {
    /// The SCIM value at this path, if the resource carries it (of a
    /// multi-valued attribute, its primary element's); `Some(Null)` when the
    /// IdP sent an explicit null or an empty list.
    pub fn extract<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        const NULL: &Value = &Value::Null;
        let path = &self.path;
        let container = match &path.uri {
            Some(uri) => resource.get(uri)?,
            None => resource,
        };
        let top = container.get(&path.name)?;
        let Some(sub) = &path.sub else {
            return Some(top);
        };
        let holder = if self.multi_valued {
            match top {
                Value::Array(items) if items.is_empty() => return Some(NULL),
                Value::Array(items) => primary_element(items)?,
                Value::Null => return Some(NULL),
                other => other,
            }
        } else {
            top
        };
        match holder {
            Value::Null => Some(NULL),
            holder => holder.get(sub),
        }
    }
}

/// The element a single upstream field stands for: primary, else the first.
fn primary_element(items: &[Value]) -> Option<&Value> {
    items
        .iter()
        .find(|item| item.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| items.first())
}

/// Value-map comparison: strings case-insensitively (SCIM's default), the rest exactly.
fn loosely_equal(a: View<'_>, b: &Value) -> bool {
    match (a.scalar(), b) {
        (Scalar::Str(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
        _ => a.equals(b),
    }
}

/// An upstream value an attribute reads: lent by the record (one field's),
/// or made for it (of several fields, or a template).
enum Raw<'r> {
    Lent(View<'r>),
    Made(Value),
}

#[cfg(test)]
impl Raw<'_> {
    fn into_value(self) -> Value {
        match self {
            Raw::Lent(view) => view.to_value(),
            Raw::Made(value) => value,
        }
    }
}

/// One-body views of the field lists, for the tests that read them whole;
/// requests are built by `create_request` and `update_requests`.
#[cfg(test)]
impl ResourceMapping {
    /// The upstream body that creates `resource` (every field, whichever
    /// call carries it).
    pub fn create_body(&self, resource: &Value) -> Result<Map<String, Value>, MappingError> {
        let mut body = Map::new();
        for (field, value) in self.create_fields(resource)? {
            field.set(&mut body, value);
        }
        Ok(body)
    }

    /// As [`Self::fresh_fields`], as one body for the primary update call.
    pub fn fresh_body(
        &self,
        resource: &Value,
        record: &Value,
    ) -> Result<Map<String, Value>, MappingError> {
        let mut body = Map::new();
        for (field, value) in self.fresh_fields(resource)? {
            write_change(&mut body, record.into(), &field, value);
        }
        Ok(body)
    }

    /// The upstream update body for `changes` on the primary update call;
    /// `None` when nothing changes. Without partial updates, the whole record
    /// with the changes.
    pub fn update_body(
        &self,
        record: &Value,
        current: &Value,
        desired: &Value,
        absent: Absent,
    ) -> Result<Option<Map<String, Value>>, MappingError> {
        let changes = self.changes(record, current, desired, absent)?;
        if changes.is_empty() {
            return Ok(None);
        }
        Ok(Some(render_fields(&self.update, record.into(), changes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile;
    use scimgate_diagnostics::{Report, SourceFile};
    use scimgate_scim::schema;
    use serde_json::json;

    fn users() -> ResourceMapping {
        let source = SourceFile::new(
            "legacy.toml",
            include_str!("../../../mappings/upstream/legacy.toml"),
        );
        let mut report = Report::default();
        compile(&source, &mut report)
            .expect("mapping compiles")
            .users
    }

    fn record() -> Value {
        json!({
            "id": 7, "login": "alice@example.com", "first_name": "Alice", "last_name": "Liddell",
            "email": "alice@example.com", "phone": "+1 555", "job_title": null, "role": "viewer",
            "status": "disabled", "manager_id": 3, "version": 4, "created_at": "2026-01-01T00:00:00Z"
        })
    }

    #[test]
    fn record_becomes_scim_with_value_maps_types_and_primary_element() {
        let resource = users().to_scim(&record(), schema::user()).unwrap();
        assert_eq!(resource["id"], "7");
        assert_eq!(resource["active"], false);
        assert_eq!(
            resource["emails"],
            json!([{"type": "work", "primary": true, "value": "alice@example.com"}])
        );
        assert_eq!(resource[schema::ENTERPRISE_USER]["manager"]["value"], "3");
        assert_eq!(resource[schema::USER_TYPE_EXTENSION]["userType"], "Viewer");
        assert_eq!(resource["meta"]["version"], "W/\"4\"");
        assert!(
            resource.get("title").is_none(),
            "null upstream fields are absent"
        );
        assert!(
            resource["schemas"]
                .as_array()
                .unwrap()
                .contains(&json!(schema::ENTERPRISE_USER))
        );
    }

    #[test]
    fn create_body_applies_defaults_for_what_the_idp_did_not_send() {
        let body = users()
            .create_body(&json!({"userName": "bob@example.com"}))
            .unwrap();
        assert_eq!(body["login"], "bob@example.com");
        assert_eq!(body["role"], "member");
        assert_eq!(body["status"], "enabled");
        assert!(!body.contains_key("email"));
    }

    #[test]
    fn unknown_user_type_names_the_accepted_values() {
        let resource =
            json!({"userName": "b@example.com", schema::USER_TYPE_EXTENSION: {"userType": "Boss"}});
        let error = users().create_body(&resource).unwrap_err().to_string();
        assert!(error.contains("\"Regular\", \"External\""), "{error}");
    }

    #[test]
    fn manager_value_must_be_an_integer_upstream() {
        let resource = json!({"userName": "b@example.com", schema::ENTERPRISE_USER: {"manager": {"value": "x1"}}});
        let error = users().create_body(&resource).unwrap_err();
        assert!(
            matches!(
                error,
                MappingError::WrongType {
                    expected: "an integer",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn partial_update_sends_only_changed_fields() {
        let mapping = users();
        let current = mapping.to_scim(&record(), schema::user()).unwrap();
        let mut desired = current.clone();
        desired["name"]["givenName"] = json!("Ally");
        desired["active"] = json!(true);
        let body = mapping
            .update_body(&record(), &current, &desired, Absent::Clear)
            .unwrap()
            .unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"first_name": "Ally", "status": "enabled"})
        );
        assert_eq!(
            mapping
                .update_body(&record(), &current, &current, Absent::Clear)
                .unwrap(),
            None
        );
    }

    #[test]
    fn put_keeps_what_the_idp_did_not_send_and_patch_clears_what_it_removed() {
        let mapping = users();
        let current = mapping.to_scim(&record(), schema::user()).unwrap();
        let mut without_phone = current.clone();
        without_phone
            .as_object_mut()
            .unwrap()
            .remove("phoneNumbers");
        assert_eq!(
            mapping
                .update_body(&record(), &current, &without_phone, Absent::Keep)
                .unwrap(),
            None
        );
        let cleared = mapping
            .update_body(&record(), &current, &without_phone, Absent::Clear)
            .unwrap()
            .unwrap();
        assert_eq!(Value::Object(cleared), json!({"phone": null}));
    }

    #[test]
    fn fresh_body_clears_every_writable_field_the_resource_does_not_set() {
        let body = users()
            .fresh_body(&json!({"userName": "alice", "password": null}), &record())
            .unwrap();
        assert_eq!(body["login"], "alice");
        assert_eq!(body["password"], Value::Null, "a password never survives");
        assert_eq!(body["job_title"], Value::Null);
        assert_eq!(body["role"], "member", "defaults still apply");
    }

    #[test]
    fn write_only_password_is_sent_but_never_read_back() {
        let mapping = users();
        let body = mapping
            .create_body(&json!({"userName": "b@example.com", "password": "s3cret"}))
            .unwrap();
        assert_eq!(body["password"], "s3cret");
        let mut upstream = record();
        upstream["password"] = json!("s3cret");
        let resource = mapping.to_scim(&upstream, schema::user()).unwrap();
        assert!(resource.get("password").is_none());
    }

    #[test]
    fn two_update_calls_carrying_entries_of_one_list_do_not_undo_each_other() {
        let text = include_str!("../../../mappings/upstream/legacy.toml")
            .replacen(
                "[users.update]\nmethod = \"PATCH\"",
                "[[users.update_also]]\nmethod = \"PUT\"\npath = \"/api/v1/users/{id}/extra\"\npartial = true\nfields = ['meta_list[key eq \"floor\"].value']\n\n[users.update]\nmethod = \"PATCH\"",
                1,
            )
            .replacen(
                "field = \"dept\"",
                "field = 'meta_list[key eq \"department\"].value'",
                1,
            )
            .replacen(
                "field = \"employee_no\"",
                "field = 'meta_list[key eq \"floor\"].value'",
                1,
            );
        let source = SourceFile::new("legacy.toml", text);
        let mut report = Report::default();
        let users = compile(&source, &mut report)
            .unwrap_or_else(|| panic!("{report:?}"))
            .users;
        let mut upstream = record();
        upstream["meta_list"] =
            json!([{"key": "department", "value": "R&D"}, {"key": "floor", "value": "1"}]);
        let current = users.to_scim(&upstream, schema::user()).unwrap();
        let mut desired = current.clone();
        desired[schema::ENTERPRISE_USER]["department"] = json!("Ops");
        desired[schema::ENTERPRISE_USER]["employeeNumber"] = json!("2");
        let changes = users
            .changes(&upstream, &current, &desired, Absent::Keep)
            .unwrap();
        let requests = users
            .update_requests("7", &upstream, changes.clone())
            .unwrap();
        // The same from the record as a tree read from its text.
        let text = upstream.to_string();
        let read = scimgate_scim::json::tree_from_str(&text).unwrap();
        assert_eq!(
            users.update_requests("7", read.view(), changes).unwrap(),
            requests
        );
        let lists: Vec<&Value> = requests
            .iter()
            .map(|r| &r.body.as_ref().unwrap()["meta_list"])
            .collect();
        // The second call's list keeps the first call's change.
        assert_eq!(
            lists,
            [
                &json!([{"key": "department", "value": "Ops"}, {"key": "floor", "value": "1"}]),
                &json!([{"key": "department", "value": "Ops"}, {"key": "floor", "value": "2"}]),
            ]
        );
    }

    #[test]
    fn template_composes_a_read_only_value_from_several_fields() {
        let attribute = AttributeMap {
            scim: users().attributes[0].scim.clone(),
            source: Source::Template(vec![
                TemplatePart::Field(FieldPath::parse("first").unwrap()),
                TemplatePart::Text(" ".into()),
                TemplatePart::Field(FieldPath::parse("last").unwrap()),
            ]),
            value_type: None,
            element: Map::new(),
            values: vec![],
            default: None,
            fallback: vec![],
            absent: vec![],
            direction: Direction::Read,
            set_by: vec![],
            items: vec![],
        };
        assert_eq!(
            attribute
                .upstream_value((&json!({"first": "Ada", "last": "Lovelace"})).into())
                .map(Raw::into_value),
            Some(json!("Ada Lovelace"))
        );
        assert_eq!(
            attribute
                .upstream_value((&json!({"first": "Ada"})).into())
                .map(Raw::into_value),
            Some(json!("Ada"))
        );
        assert!(attribute.upstream_value((&json!({})).into()).is_none());
    }

    #[test]
    fn nested_field_paths_read_and_write_inside_objects() {
        let field = FieldPath::parse("profile.name.first").unwrap();
        let mut body = Map::new();
        field.set(&mut body, json!("Ada"));
        assert_eq!(
            Value::Object(body.clone()),
            json!({"profile": {"name": {"first": "Ada"}}})
        );
        assert_eq!(field.get(&Value::Object(body)), Some(&json!("Ada")));
        assert!(FieldPath::parse("a..b").is_none());
    }

    /// Every shipped mapping's users and groups.
    fn shipped() -> Vec<(&'static str, ResourceMapping)> {
        let files = [
            (
                "legacy.toml",
                include_str!("../../../mappings/upstream/legacy.toml"),
            ),
            (
                "directory.toml",
                include_str!("../../../mappings/upstream/directory.toml"),
            ),
            (
                "wrike.toml",
                include_str!("../../../mappings/upstream/wrike.toml"),
            ),
        ];
        // Each also with updates that send the whole record (none ships so).
        let whole: Vec<(&str, String)> = files
            .iter()
            .map(|(name, text)| (*name, text.replace("partial = true", "partial = false")))
            .collect();
        let files = files.map(|(name, text)| (name, text.to_string()));
        let mut mappings = Vec::new();
        for (name, text) in files.into_iter().chain(whole) {
            let mut report = Report::default();
            let mapping = compile(&SourceFile::new(name, &text), &mut report).expect(name);
            mappings.push((name, mapping.users));
            mappings.extend(mapping.groups.map(|groups| (name, groups)));
        }
        mappings
    }

    /// The top-level fields a mapping reads.
    fn read_fields(mapping: &ResourceMapping) -> Vec<String> {
        let meta = [
            &mapping.meta.created,
            &mapping.meta.last_modified,
            &mapping.meta.version,
        ];
        let mut fields: Vec<String> = std::iter::once(&mapping.id.field)
            .chain(meta.into_iter().flatten())
            .map(|f| f.root().to_string())
            .collect();
        for attribute in &mapping.attributes {
            match &attribute.source {
                Source::Field(field) => fields.push(field.root().into()),
                Source::Fields(list) => fields.extend(list.iter().map(|f| f.root().into())),
                Source::Template(parts) => {
                    fields.extend(parts.iter().filter_map(|part| match part {
                        TemplatePart::Field(field) => Some(field.root().into()),
                        TemplatePart::Text(_) => None,
                    }))
                }
            }
        }
        fields
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            prop_oneof![
                Just("enabled".to_string()),
                Just("disabled".to_string()),
                Just("member".to_string()),
                Just("true".to_string()),
                Just("a@example.com".to_string()),
                "[a-z0-9 \"]{0,5}",
            ]
            .prop_map(Value::from),
        ];
        let key = prop_oneof![
            Just("id".to_string()),
            Just("email".to_string()),
            Just("value".to_string()),
            "[a-c]",
        ];
        leaf.prop_recursive(2, 8, 3, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..3)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever a record holds, the resource lent from it is the one
        /// copied from it, and writes the same bytes: one transform builds
        /// both, and this holds its two kinds of object to one behaviour.
        /// An update of the record (to the resource another record makes)
        /// is the same made from the record or from its text.
        #[test]
        fn a_lent_resource_is_the_copied_one(
            which in 0usize..16,
            values in proptest::collection::vec(any_json(), 32),
            wanted in proptest::collection::vec(any_json(), 32),
        ) {
            let mappings = shipped();
            let (name, mapping) = &mappings[which % mappings.len()];
            let schema = if mapping.members.is_some() { schema::group() } else { schema::user() };
            let fields = read_fields(mapping);
            let mut record = Map::new();
            for (field, value) in fields.iter().zip(values) {
                record.insert(field.clone(), value);
            }
            // An id the record always has, so a resource is made.
            record.insert(mapping.id.field.root().into(), json!("7"));
            let record = Value::Object(record);
            // The same record as the upstream sends it, read into a tree
            // of slices of its text.
            let text = record.to_string();
            let read = scimgate_scim::json::tree_from_str(&text).unwrap();
            proptest::prop_assert_eq!(
                mapping.version_of(read.view()),
                mapping.version_of(&record)
            );
            if let Some(soft) = &mapping.soft_delete {
                proptest::prop_assert_eq!(soft.marks(read.view()), soft.marks(&record));
            }
            let copied = mapping.to_scim(&record, schema);
            let mut other = Map::new();
            for (field, value) in fields.iter().zip(wanted) {
                other.insert(field.clone(), value);
            }
            other.insert(mapping.id.field.root().into(), json!("7"));
            if let (Ok(current), Ok(desired)) = (&copied, mapping.to_scim(&Value::Object(other), schema)) {
                for absent in [Absent::Keep, Absent::Clear] {
                    let changes = mapping.changes(&record, current, &desired, absent);
                    let read_changes = mapping.changes(read.view(), current, &desired, absent);
                    proptest::prop_assert_eq!(
                        changes.as_ref().map_err(ToString::to_string),
                        read_changes.as_ref().map_err(ToString::to_string),
                        "{}", name
                    );
                    let Ok(changes) = changes else { continue };
                    let requests = mapping.conditional_update_requests("7", &record, changes.clone());
                    let read_requests = mapping.conditional_update_requests("7", read.view(), changes);
                    proptest::prop_assert_eq!(
                        requests.map_err(|e| e.to_string()),
                        read_requests.map_err(|e| e.to_string()),
                        "{}", name
                    );
                }
                let calls = |record: View<'_>| {
                    mapping
                        .state_calls(record, &desired)
                        .map(|calls| calls.iter().map(|call| std::ptr::from_ref(*call)).collect::<Vec<_>>())
                        .map_err(|e| e.to_string())
                };
                proptest::prop_assert_eq!(calls((&record).into()), calls(read.view()), "{}", name);
            }
            for lent in [
                mapping.to_scim_tree(&record, schema),
                mapping.to_scim_tree(read.view(), schema),
            ] {
                match (&copied, lent) {
                    (Ok(copied), Ok(lent)) => {
                        // A mapping that says so builds its own default projection.
                        if mapping.read_all_returned_by_default {
                            let mut projected = lent.clone();
                            scimgate_scim::projection::project_default(&mut projected, schema);
                            proptest::prop_assert_eq!(&projected, &lent, "{}", name);
                        }
                        let mut written = Vec::new();
                        scimgate_scim::json::write_tree(&mut written, &lent);
                        proptest::prop_assert_eq!(&written, &scimgate_scim::json::to_vec(copied), "{}", name);
                        proptest::prop_assert_eq!(&lent.into_value(), copied);
                    }
                    (copied, lent) => proptest::prop_assert_eq!(
                        copied.as_ref().err().map(|e| e.to_string()),
                        lent.err().map(|e| e.to_string())
                    ),
                }
            }
        }
    }
}
