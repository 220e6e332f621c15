//! Executes SCIM operations for one connection against its upstream: the
//! read-modify-write cycles, soft deletion, restore-on-create, group
//! membership, and the approved-domains policy.
//!
//! It speaks SCIM resources (JSON values) to the server and upstream calls
//! (rendered from the mapping) to the client; neither vendors nor URLs are
//! known here.

mod list;
mod members;
pub mod policy;

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::config::Connection;
use crate::mapping::transform::Absent;
use crate::mapping::{Bindings, ResourceMapping, SoftDelete};
use crate::scim::error::{ScimError, ScimType};
use crate::scim::patch::{PatchOperation, apply_patch};
use crate::scim::schema::{self, Mutability, ResourceSchema};
use crate::upstream::UpstreamClient;

pub use list::{ListPage, ListQuery};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn schema(self) -> &'static ResourceSchema {
        match self {
            Kind::User => schema::user(),
            Kind::Group => schema::group(),
        }
    }

    /// `meta.resourceType`.
    pub fn resource_type(self) -> &'static str {
        self.schema().name
    }

    /// Path segment under the base URL: `Users`, `Groups`.
    pub fn endpoint(self) -> &'static str {
        self.schema().endpoint.trim_start_matches('/')
    }
}

/// Limits that bound the work one list request may cause.
#[derive(Debug, Clone, Copy)]
pub struct ListLimits {
    pub scan_cap: usize,
    pub max_results: usize,
}

/// One connection's view of its upstream.
#[derive(Debug, Clone)]
pub struct Provisioner {
    pub connection: Connection,
    client: UpstreamClient,
    limits: ListLimits,
}

/// An upstream record and the SCIM resource built from it.
#[derive(Debug, Clone)]
pub struct Record {
    pub upstream: Value,
    pub resource: Value,
}

impl Provisioner {
    pub fn new(connection: Connection, client: UpstreamClient, limits: ListLimits) -> Self {
        Provisioner {
            connection,
            client,
            limits,
        }
    }

    pub fn supports(&self, kind: Kind) -> bool {
        self.mapping(kind).is_ok()
    }

    /// The mapping of a resource type, for discovery to describe truthfully.
    pub fn resource_mapping(&self, kind: Kind) -> Option<&ResourceMapping> {
        self.mapping(kind).ok()
    }

    /// Whether the upstream gives versions, so ETags and If-Match work.
    pub fn versioned(&self) -> bool {
        self.client.mapping().users.meta.version.is_some()
    }

    fn mapping(&self, kind: Kind) -> Result<&ResourceMapping, ScimError> {
        let mapping = self.client.mapping();
        match kind {
            Kind::User => Ok(&mapping.users),
            Kind::Group => mapping.groups.as_ref().ok_or_else(|| {
                ScimError::not_found("this connection's upstream mapping declares no groups")
            }),
        }
    }

    /// Reads one resource; soft-deleted records do not exist for SCIM.
    pub async fn get(&self, kind: Kind, id: &str, with_members: bool) -> Result<Record, ScimError> {
        let mapping = self.mapping(kind)?;
        let not_found = || ScimError::not_found(format!("{} {id} not found", kind.resource_type()));
        if !mapping.id.accepts(id) {
            return Err(not_found());
        }
        let request = mapping.get.request(Bindings {
            id: Some(id),
            member: None,
        })?;
        let response = self.client.call(&request).await.map_err(|error| {
            if error.status == StatusCode::NOT_FOUND {
                not_found()
            } else {
                error
            }
        })?;
        if mapping
            .soft_delete
            .as_ref()
            .is_some_and(|s| s.marks(&response.body))
        {
            return Err(not_found());
        }
        self.record(kind, response.body, with_members).await
    }

    async fn record(
        &self,
        kind: Kind,
        upstream: Value,
        with_members: bool,
    ) -> Result<Record, ScimError> {
        let mapping = self.mapping(kind)?;
        let mut resource = mapping.to_scim(&upstream, kind.schema())?;
        if with_members && let Some(members) = &mapping.members {
            let id = mapping.upstream_id(&upstream)?;
            let list = self.member_list(members, &id, &upstream).await?;
            resource["members"] = Value::Array(list);
        }
        Ok(Record { upstream, resource })
    }

    /// Creates a resource (or, for a userName that matches a soft-deleted
    /// record, restores that record).
    pub async fn create(&self, kind: Kind, mut resource: Value) -> Result<Record, ScimError> {
        let mapping = self.mapping(kind)?;
        prepare(kind, &mut resource, None)?;
        if kind == Kind::User {
            policy::check_approved_domains(&resource, &self.connection.approved_domains)?;
        }
        let body = Value::Object(mapping.create_body(&resource)?);
        if kind == Kind::User
            && let Some(restored) = self.restore(mapping, &resource, &body).await?
        {
            return Ok(restored);
        }
        let mut request = mapping.create.request(Bindings::default())?;
        request.body = Some(body);
        let response = self.client.call(&request).await?;
        let id = mapping.upstream_id(&response.body)?;
        let wanted = members_of(&resource);
        if !wanted.is_empty() {
            self.apply_membership(mapping, &id, &BTreeSet::new(), &wanted)
                .await?;
        }
        // Attributes set by calls (e.g. created suspended) follow the create.
        if self
            .state_calls(mapping, &id, &response.body, &resource)
            .await?
        {
            return self.get(kind, &id, kind == Kind::Group).await;
        }
        self.record(kind, response.body, kind == Kind::Group).await
    }

    /// Makes the calls that set attributes changed by calls; true if any.
    async fn state_calls(
        &self,
        mapping: &ResourceMapping,
        id: &str,
        record: &Value,
        desired: &Value,
    ) -> Result<bool, ScimError> {
        let calls = mapping.state_calls(record, desired)?;
        for call in &calls {
            let request = call.request(Bindings {
                id: Some(id),
                member: None,
            })?;
            self.client.call(&request).await?;
        }
        Ok(!calls.is_empty())
    }

    async fn restore(
        &self,
        mapping: &ResourceMapping,
        resource: &Value,
        body: &Value,
    ) -> Result<Option<Record>, ScimError> {
        let (Some(soft), true) = (&mapping.soft_delete, mapping.restore_on_create) else {
            return Ok(None);
        };
        let Some(user_name) = resource.get("userName").and_then(Value::as_str) else {
            return Ok(None);
        };
        let Some(param) = mapping
            .filters
            .iter()
            .find(|f| f.path.name == "userName" && f.path.uri.is_none())
        else {
            return Ok(None);
        };
        let mut request = mapping.list.request(Bindings::default())?;
        request.query = soft.lookup_query.clone();
        request
            .query
            .push((param.param.clone(), user_name.to_string()));
        let response = self.client.call(&request).await?;
        let archived = mapping
            .list
            .items(&response.body)
            .into_iter()
            .flatten()
            .find(|record| {
                soft.marks(record)
                    && mapping
                        .to_scim(record, schema::user())
                        .ok()
                        .and_then(|r| {
                            r.get("userName")
                                .and_then(Value::as_str)
                                .map(|u| u.eq_ignore_ascii_case(user_name))
                        })
                        .unwrap_or(false)
            });
        let Some(archived) = archived else {
            return Ok(None);
        };
        let id = mapping.upstream_id(archived)?;
        let mut update = mapping.update.request(Bindings {
            id: Some(&id),
            member: None,
        })?;
        let mut body = body.clone();
        if let (Some(restored), Some(object)) = (&soft.restore_value, body.as_object_mut()) {
            soft.field.set(object, restored.clone());
        }
        update.body = Some(body);
        let response = self.client.call(&update).await?;
        let mut record = self.reread(Kind::User, &id, response.body).await?;
        if self
            .state_calls(mapping, &id, &record.upstream, resource)
            .await?
        {
            record = self.get(Kind::User, &id, false).await?;
        }
        if soft.marks(&record.upstream) {
            return Err(ScimError::internal(
                "the mapping restores soft-deleted users on create, but the create body does not \
                 change the soft-delete field; give that attribute a `default` in the mapping",
            ));
        }
        tracing::info!(upstream_id = %id, "restored a soft-deleted user on create");
        Ok(Some(record))
    }

    /// PUT: attributes the IdP does not send stay as they are upstream.
    pub async fn replace(
        &self,
        kind: Kind,
        id: &str,
        mut resource: Value,
        if_match: Option<&str>,
    ) -> Result<Record, ScimError> {
        let mapping = self.mapping(kind)?;
        let current = self.get(kind, id, kind == Kind::Group).await?;
        check_precondition(&current.resource, if_match)?;
        prepare(kind, &mut resource, Some(id))?;
        if kind == Kind::User {
            let effective = merged_for_policy(&current.resource, &resource);
            policy::check_approved_domains(&effective, &self.connection.approved_domains)?;
        }
        let record = self
            .update(kind, mapping, id, &current, &resource, Absent::Keep)
            .await?;
        if resource.get("members").is_some() {
            self.apply_membership(
                mapping,
                id,
                &members_of(&current.resource),
                &members_of(&resource),
            )
            .await?;
            return self.get(kind, id, true).await;
        }
        Ok(record)
    }

    /// PATCH, applied read-modify-write.
    pub async fn patch(
        &self,
        kind: Kind,
        id: &str,
        operations: &[PatchOperation],
        if_match: Option<&str>,
    ) -> Result<Record, ScimError> {
        let mapping = self.mapping(kind)?;
        let touches_members = operations.iter().any(|op| {
            op.path
                .as_ref()
                .is_some_and(|p| p.attr.name.eq_ignore_ascii_case("members"))
                || op.path.is_none()
                    && op
                        .value
                        .as_ref()
                        .is_some_and(|v| v.get("members").is_some())
        });
        let current = self
            .get(kind, id, kind == Kind::Group && touches_members)
            .await?;
        check_precondition(&current.resource, if_match)?;
        let mut desired = current.resource.clone();
        apply_patch(&mut desired, operations, kind.schema())?;
        if kind == Kind::User {
            policy::check_approved_domains(&desired, &self.connection.approved_domains)?;
        }
        let record = self
            .update(kind, mapping, id, &current, &desired, Absent::Clear)
            .await?;
        if touches_members {
            self.apply_membership(
                mapping,
                id,
                &members_of(&current.resource),
                &members_of(&desired),
            )
            .await?;
            return self.get(kind, id, true).await;
        }
        Ok(record)
    }

    async fn update(
        &self,
        kind: Kind,
        mapping: &ResourceMapping,
        id: &str,
        current: &Record,
        desired: &Value,
        absent: Absent,
    ) -> Result<Record, ScimError> {
        let body = mapping.update_body(&current.upstream, &current.resource, desired, absent)?;
        let mut record = current.clone();
        if let Some(body) = body {
            let mut request = mapping.update.request(Bindings {
                id: Some(id),
                member: None,
            })?;
            request.body = Some(Value::Object(body));
            let response = self.client.call(&request).await?;
            record = self.reread(kind, id, response.body).await?;
        }
        if self
            .state_calls(mapping, id, &record.upstream, desired)
            .await?
        {
            record = self.get(kind, id, false).await?;
        }
        Ok(record)
    }

    /// The record an update answered with, or a fresh read if it answered none.
    async fn reread(&self, kind: Kind, id: &str, answered: Value) -> Result<Record, ScimError> {
        let mapping = self.mapping(kind)?;
        if answered.is_object() && mapping.upstream_id(&answered).is_ok() {
            self.record(kind, answered, false).await
        } else {
            self.get(kind, id, false).await
        }
    }

    /// DELETE: soft unless the connection enables hard deletes (or the
    /// mapping declares only a hard delete).
    pub async fn delete(
        &self,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ScimError> {
        let mapping = self.mapping(kind)?;
        let current = self.get(kind, id, false).await?;
        check_precondition(&current.resource, if_match)?;
        let hard = match (&mapping.soft_delete, &mapping.hard_delete) {
            (_, Some(hard)) if self.connection.hard_delete => Some(hard),
            (Some(_), _) => None,
            (None, Some(hard)) => Some(hard),
            (None, None) => {
                return Err(ScimError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                    format!(
                        "the upstream mapping declares no way to delete a {}",
                        kind.resource_type()
                    ),
                ));
            }
        };
        let bindings = Bindings {
            id: Some(id),
            member: None,
        };
        let request = match (hard, &mapping.soft_delete) {
            (Some(hard), _) => hard.request(bindings)?,
            (
                None,
                Some(SoftDelete {
                    call: Some(call), ..
                }),
            ) => call.request(bindings)?,
            (None, Some(soft)) => {
                let mut marked = Map::new();
                soft.field.set(&mut marked, soft.value.clone());
                let body = if mapping.update.partial {
                    marked
                } else {
                    let mut full = current.upstream.as_object().cloned().unwrap_or_default();
                    full.extend(marked);
                    full
                };
                let mut request = mapping.update.request(bindings)?;
                request.body = Some(Value::Object(body));
                request
            }
            (None, None) => return Err(ScimError::internal("no delete call")),
        };
        self.client.call(&request).await?;
        Ok(())
    }

    pub fn limits(&self) -> ListLimits {
        self.limits
    }
}

/// Canonical attribute names, then read-only attributes dropped (RFC 7644
/// §3.5.1: a client's values for them are ignored, not checked: Okta sends
/// `meta` dates in its own format), then schema checks. On a PUT, `id` may
/// only repeat the resource's own.
fn prepare(kind: Kind, resource: &mut Value, own_id: Option<&str>) -> Result<(), ScimError> {
    let schema = kind.schema();
    if !resource.is_object() {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "the request body must be a JSON object",
        ));
    }
    schema.canonicalize(resource);
    if let (Some(own_id), Some(sent)) = (own_id, resource.get("id"))
        && sent.as_str() != Some(own_id)
        && !sent.is_null()
    {
        return Err(ScimError::bad_request(
            ScimType::Mutability,
            "`id` cannot be changed",
        ));
    }
    if let Some(object) = resource.as_object_mut() {
        object.retain(|key, _| {
            key != "id"
                && key != "meta"
                && !schema
                    .core
                    .attribute(key)
                    .is_some_and(|a| a.mutability == Mutability::ReadOnly)
        });
    }
    schema.validate(resource)?;
    Ok(())
}

/// If-Match (RFC 7644 §3.14): `*` or the current `meta.version`.
fn check_precondition(current: &Value, if_match: Option<&str>) -> Result<(), ScimError> {
    let Some(if_match) = if_match else {
        return Ok(());
    };
    let version = current.pointer("/meta/version").and_then(Value::as_str);
    let matches = if_match.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || Some(tag) == version
            || version.is_some_and(|v| v.trim_start_matches("W/") == tag)
    });
    if matches {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!(
                "If-Match {if_match} does not match the current version {}; read the resource again and retry",
                version.unwrap_or("(none)")
            ),
        ))
    }
}

/// What the user will look like after a PUT that keeps absent attributes.
fn merged_for_policy(current: &Value, sent: &Value) -> Value {
    let mut merged = current.clone();
    if let (Some(merged), Some(sent)) = (merged.as_object_mut(), sent.as_object()) {
        for (key, value) in sent {
            merged.insert(key.clone(), value.clone());
        }
    }
    merged
}

/// Member ids listed in a resource's `members`.
fn members_of(resource: &Value) -> BTreeSet<String> {
    resource
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("value"))
        .filter_map(crate::mapping::id_text)
        .collect()
}
