//! Executes SCIM operations for one connection against its upstream: the
//! read-modify-write cycles, soft deletion, restore-on-create, group
//! membership, and the approved-domains policy (which users the connection
//! may see and change at all).
//!
//! Every operation validates and renders what it will send before its first
//! upstream write, so a refused request writes nothing; and it holds its
//! resource's lock (`locks`) from the read to the last write.
//!
//! It speaks SCIM resources (JSON values) to the server and upstream calls
//! (rendered from the mapping) to the client; neither vendors nor URLs are
//! known here.

mod error;
pub mod index;
mod list;
mod locks;
mod members;
pub mod policy;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::audit::Journal;
use crate::cluster::{ClusterStore, RemoteLock, StoreDown};
use crate::config::{Connection, OnUnavailable};
use crate::mapping::transform::Absent;
use crate::mapping::{Bindings, ResourceMapping, SoftDelete, UniqueBy, UpstreamRequest};
use crate::scim::json::{Tree, View};
use crate::scim::patch::{PatchOperation, patched};
use crate::scim::schema::{self, Mutability, ResourceSchema};
use crate::upstream::{CallError, UpstreamClient, UpstreamResponse};

pub use error::ProvisionError;
use index::{Lookup, LookupIndex};
pub use list::{ListQuery, ListTotals, Visit};
use locks::ResourceLocks;
use members::{MemberDelta, MembershipChange};

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
    /// Shared by every connection on the same upstream.
    shared: Arc<UpstreamShared>,
}

/// How long a create the upstream refused as a duplicate waits for the
/// look-up index to be read again before its 409 is answered.
const STALE_MISS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Concurrent scans per upstream: each holds up to `scan_cap` records, and
/// the shipped pod has 256 MiB.
const MAX_CONCURRENT_SCANS: usize = 4;

/// What every connection on one upstream shares: the per-resource locks
/// (across replicas too, with a cluster store) and the bound on concurrent
/// scans.
#[derive(Debug)]
pub struct UpstreamShared {
    locks: ResourceLocks,
    /// The store and the upstream's name, which scopes its lock keys.
    cluster: Option<(ClusterStore, String)>,
    scans: tokio::sync::Semaphore,
    /// The look-up indexes the mapping declares (`[users.index]`).
    users_index: Option<Arc<LookupIndex>>,
    groups_index: Option<Arc<LookupIndex>>,
}

impl Default for UpstreamShared {
    fn default() -> Self {
        UpstreamShared::new(None, "", None)
    }
}

impl UpstreamShared {
    pub fn new(
        cluster: Option<&ClusterStore>,
        upstream: &str,
        mapping: Option<&crate::mapping::UpstreamMapping>,
    ) -> Self {
        // With a cluster store the index lives there, shared by the replicas.
        let index = |kind: Kind, resource: Option<&ResourceMapping>| {
            let settings = resource?.index.clone()?;
            let shared = cluster.map(|store| {
                crate::cluster::SharedIndex::new(store, upstream, kind.resource_type())
            });
            Some(Arc::new(LookupIndex::new(kind, settings, shared)))
        };
        UpstreamShared {
            locks: ResourceLocks::default(),
            cluster: cluster.map(|store| (store.clone(), upstream.to_string())),
            scans: tokio::sync::Semaphore::new(MAX_CONCURRENT_SCANS),
            users_index: mapping.and_then(|m| index(Kind::User, Some(&m.users))),
            groups_index: mapping.and_then(|m| index(Kind::Group, m.groups.as_ref())),
        }
    }

    /// Starts keeping the look-up indexes fresh (a full read now, then
    /// every interval) until this is dropped.
    pub fn maintain_indexes(&self, client: &UpstreamClient) {
        for index in [&self.users_index, &self.groups_index]
            .into_iter()
            .flatten()
        {
            index::maintain(index, client.clone());
        }
    }

    /// Each indexed resource type and how far its index is.
    pub async fn index_readiness(&self) -> Vec<(Kind, index::Readiness)> {
        let mut states = Vec::new();
        for (kind, index) in [
            (Kind::User, &self.users_index),
            (Kind::Group, &self.groups_index),
        ] {
            if let Some(index) = index {
                states.push((kind, index.readiness().await));
            }
        }
        states
    }
}

/// A resource's lock, held until dropped; a cluster lock is given back in
/// the background (or expires with its TTL).
pub(crate) struct Held {
    /// `None` only once dropped.
    local: Option<tokio::sync::OwnedMutexGuard<()>>,
    remote: Option<(ClusterStore, RemoteLock)>,
}

impl Drop for Held {
    /// The remote lock is given back in the background, and the local one
    /// only after it: the next waiter here then finds the remote lock free
    /// at its first try instead of polling until the unlock lands.
    fn drop(&mut self) {
        if let Some((store, lock)) = self.remote.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let local = self.local.take();
            runtime.spawn(async move {
                store.unlock(lock).await;
                drop(local);
            });
        }
    }
}

/// An upstream record and the SCIM resource built from it.
#[derive(Debug, Clone)]
pub struct Record {
    pub upstream: Value,
    pub resource: Value,
}

/// What a read of an id answers that is not there for this connection.
fn not_found(kind: Kind, id: &str) -> ProvisionError {
    ProvisionError::NotFound {
        resource_type: kind.resource_type(),
        id: id.to_string(),
    }
}

impl Provisioner {
    pub fn new(
        connection: Connection,
        client: UpstreamClient,
        limits: ListLimits,
        shared: Arc<UpstreamShared>,
    ) -> Self {
        Provisioner {
            connection,
            client,
            limits,
            shared,
        }
    }

    /// Whether this connection may see `resource` as it is now (users only:
    /// groups carry no addresses).
    fn in_scope<'r>(&self, kind: Kind, resource: impl Into<View<'r>>) -> bool {
        kind == Kind::Group || policy::in_scope(resource, &self.connection.approved_domains)
    }

    /// The look-up index of `kind`, if the mapping declares one.
    fn index(&self, kind: Kind) -> Option<&Arc<LookupIndex>> {
        match kind {
            Kind::User => self.shared.users_index.as_ref(),
            Kind::Group => self.shared.groups_index.as_ref(),
        }
    }

    /// Tells the index of `kind` (if any) what a write changed.
    async fn note_write(
        &self,
        kind: Kind,
        id: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) {
        if let Some(index) = self.index(kind) {
            index.note_write(id, before, after).await;
        }
    }

    /// The lock held across one resource's read-modify-write.
    async fn lock_resource(&self, kind: Kind, id: &str) -> Result<Held, ProvisionError> {
        self.hold(resource_key(kind, id)).await
    }

    /// This process's lock of a resource only: with conditional updates
    /// the upstream keeps replicas apart, and this keeps one replica's own
    /// writers from racing each other into retries.
    async fn lock_resource_here(&self, kind: Kind, id: &str) -> Held {
        Held {
            local: Some(self.shared.locks.lock(resource_key(kind, id)).await),
            remote: None,
        }
    }

    /// The lock of `key`: this process's, then (with a cluster store) the
    /// cluster's, so one replica's waiters queue here rather than in Redis.
    async fn hold(&self, key: String) -> Result<Held, ProvisionError> {
        let Some((store, upstream)) = &self.shared.cluster else {
            return Ok(Held {
                local: Some(self.shared.locks.lock(key).await),
                remote: None,
            });
        };
        let remote_key = store.key("lock", &format!("{upstream}:{key}"));
        let local = self.shared.locks.lock(key).await;
        // Polled: a holder's work is one upstream round trip or a few; the
        // wait is bounded by the lock's TTL, past which its holder is dead.
        let deadline = tokio::time::Instant::now() + store.lock_ttl();
        let mut pause = std::time::Duration::from_millis(2);
        // Once another replica was seen holding the lock, Redis going quiet
        // is no reason to go ahead alone: that holder may still be writing.
        let mut seen_held = false;
        loop {
            match store.try_lock(&remote_key).await {
                Ok(Some(lock)) => {
                    return Ok(Held {
                        local: Some(local),
                        remote: Some((store.clone(), lock)),
                    });
                }
                Ok(None) if tokio::time::Instant::now() >= deadline => {
                    return Err(ProvisionError::Contended);
                }
                Ok(None) => {
                    seen_held = true;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                Err(StoreDown) if seen_held => return Err(ProvisionError::Contended),
                Err(StoreDown) if store.on_unavailable() == OnUnavailable::Refuse => {
                    return Err(ProvisionError::ClusterUnavailable);
                }
                Err(StoreDown) => {
                    store.fell_back("lock");
                    return Ok(Held {
                        local: Some(local),
                        remote: None,
                    });
                }
            }
        }
    }

    /// Sends an update call whose answer is not used; it must still be
    /// JSON, as every answer the gateway reads.
    async fn write(&self, request: &UpstreamRequest) -> Result<(), ProvisionError> {
        let answer = self.write_answered(request).await?;
        answer.tree().map_err(CallError::Failed)?;
        Ok(())
    }

    /// Sends an update call, its answer kept as text for the caller to read
    /// ([`UpstreamResponse::tree`]); a conditional one the upstream refused
    /// as stale is [`ProvisionError::Stale`], for the caller to read again.
    /// Any other refusal, a 412 of an unconditional call included, is as it
    /// is.
    async fn write_answered(
        &self,
        request: &UpstreamRequest,
    ) -> Result<UpstreamResponse, ProvisionError> {
        match self.client.call_for_text(request).await {
            Ok(response) => Ok(response),
            Err(CallError::Refused(refusal))
                if refusal.means_stale() && request.precondition.is_some() =>
            {
                Err(ProvisionError::Stale)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// A read-modify-write of one resource, under its lock, or only this
    /// process's when `lock_free` (the mapping's `update_precondition` makes
    /// its one write conditional). `attempt` is told whether it holds the
    /// whole lock. A write
    /// that lost to another since its read is tried again from the read;
    /// with a client's `If-Match` it answers 412 instead, since the version
    /// the client named is gone.
    async fn read_modify_write<T, Attempt>(
        &self,
        kind: Kind,
        id: &str,
        lock_free: bool,
        if_match: Option<&str>,
        attempt: impl Fn(bool) -> Attempt,
    ) -> Result<T, ProvisionError>
    where
        Attempt: Future<Output = Result<Tried<T>, ProvisionError>>,
    {
        let mut locked = !lock_free;
        let mut lost = 0;
        loop {
            let held = match locked {
                true => self.lock_resource(kind, id).await?,
                false => self.lock_resource_here(kind, id).await,
            };
            let outcome = attempt(locked).await;
            drop(held);
            match outcome {
                Ok(Tried::Done(value)) => return Ok(value),
                Ok(Tried::NeedsLock) => locked = true,
                Err(error) if error.is_stale() => {
                    lost += 1;
                    if let Some(if_match) = if_match {
                        return Err(ProvisionError::VersionMismatch(format!(
                            "If-Match {if_match} no longer matches: another change landed first; \
                             read the resource again and retry"
                        )));
                    }
                    if lost >= STALE_TRIES {
                        return Err(ProvisionError::Contended);
                    }
                    // Jittered, so writers that lost together do not
                    // collide again.
                    let pause = rand::random_range(0..=2u64 << lost);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                Err(error) => return Err(error),
            }
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

    fn mapping(&self, kind: Kind) -> Result<&ResourceMapping, ProvisionError> {
        let mapping = self.client.mapping();
        match kind {
            Kind::User => Ok(&mapping.users),
            Kind::Group => mapping.groups.as_ref().ok_or(ProvisionError::NoGroups),
        }
    }

    /// Reads one resource; soft-deleted records do not exist for SCIM.
    pub async fn get(
        &self,
        kind: Kind,
        id: &str,
        with_members: bool,
    ) -> Result<Record, ProvisionError> {
        let answered = self.answered(kind, id).await?;
        let record = self.record(kind, answered, with_members).await?;
        if !self.in_scope(kind, &record.resource) {
            return Err(not_found(kind, id));
        }
        Ok(record)
    }

    /// [`Self::get`]'s resource handed to `visit`, for an answer that is
    /// only written out: a user is lent from the upstream record instead of
    /// copied from it. The steps are `get`'s (the record, then its scope)
    /// and must stay so.
    pub async fn read<R>(
        &self,
        kind: Kind,
        id: &str,
        with_members: bool,
        visit: impl FnOnce(Tree<'_>) -> R,
    ) -> Result<R, ProvisionError> {
        if kind == Kind::Group {
            // A group's members may take calls of their own.
            let record = self.get(kind, id, with_members).await?;
            return Ok(visit(Tree::Owned(record.resource)));
        }
        let mapping = self.mapping(kind)?;
        // The record is read from the answer's text, which the resource
        // borrows: nothing of it is copied before it is written out.
        let response = self.get_call(kind, id, true).await?;
        let answer = response.tree().map_err(CallError::Failed)?;
        let answered = self.live_in(kind, id, answer.view())?;
        let resource = mapping.to_scim_tree(answered, kind.schema())?;
        if !self.in_scope(kind, resource.view()) {
            return Err(not_found(kind, id));
        }
        Ok(visit(resource))
    }

    /// The record of `id` in the get call's answer, unless it is
    /// soft-deleted.
    fn live_in<'a>(
        &self,
        kind: Kind,
        id: &str,
        answer: View<'a>,
    ) -> Result<View<'a>, ProvisionError> {
        let mapping = self.mapping(kind)?;
        let answered = mapping.answered_in(&mapping.get, answer)?;
        match mapping
            .soft_delete
            .as_ref()
            .is_some_and(|s| s.marks(answered))
        {
            true => Err(not_found(kind, id)),
            false => Ok(answered),
        }
    }

    /// [`Self::get`]'s resource, and its record in `answer` (the get call's
    /// answer, read from its text): for an update, which only looks at the
    /// record. The steps are `get`'s and must stay so.
    async fn current_in<'a>(
        &self,
        kind: Kind,
        id: &str,
        answer: View<'a>,
        with_members: bool,
    ) -> Result<(View<'a>, Value), ProvisionError> {
        let record = self.live_in(kind, id, answer)?;
        let resource = self.resource_of(kind, record, with_members).await?;
        if !self.in_scope(kind, &resource) {
            return Err(not_found(kind, id));
        }
        Ok((record, resource))
    }

    /// The upstream record of `id`, unless there is none or it is soft-deleted.
    async fn answered(&self, kind: Kind, id: &str) -> Result<Value, ProvisionError> {
        let mapping = self.mapping(kind)?;
        let response = self.get_call(kind, id, false).await?;
        let answered = mapping.take_answered(&mapping.get, response.body)?;
        if mapping
            .soft_delete
            .as_ref()
            .is_some_and(|s| s.marks(&answered))
        {
            return Err(not_found(kind, id));
        }
        Ok(answered)
    }

    /// The answer of the mapping's get call for `id` (its body kept as
    /// text if `as_text`); an id the mapping cannot hold, or one the
    /// upstream does not know, is not found.
    async fn get_call(
        &self,
        kind: Kind,
        id: &str,
        as_text: bool,
    ) -> Result<UpstreamResponse, ProvisionError> {
        let mapping = self.mapping(kind)?;
        if !mapping.id.accepts(id) {
            return Err(not_found(kind, id));
        }
        let request = mapping.get.request(Bindings::id(id))?;
        let called = match as_text {
            true => self.client.call_for_text(&request).await,
            false => self.client.call(&request).await,
        };
        called.map_err(|error| match error {
            CallError::Missing(_) => not_found(kind, id),
            error => ProvisionError::Upstream(error),
        })
    }

    async fn record(
        &self,
        kind: Kind,
        upstream: Value,
        with_members: bool,
    ) -> Result<Record, ProvisionError> {
        let resource = self
            .resource_of(kind, (&upstream).into(), with_members)
            .await?;
        Ok(Record { upstream, resource })
    }

    /// The resource an upstream record (a value, or a tree read from the
    /// upstream's text) makes, a group's members read if `with_members`.
    async fn resource_of(
        &self,
        kind: Kind,
        record: View<'_>,
        with_members: bool,
    ) -> Result<Value, ProvisionError> {
        let mapping = self.mapping(kind)?;
        let mut resource = mapping.to_scim(record, kind.schema())?;
        if with_members && let Some(members) = &mapping.members {
            let id = mapping.upstream_id(record)?;
            let group = match record.as_value() {
                Some(group) => std::borrow::Cow::Borrowed(group),
                None => std::borrow::Cow::Owned(record.to_value()),
            };
            let list = self.member_list(members, &id, &group).await?;
            resource["members"] = Value::Array(list);
        }
        Ok(resource)
    }

    /// Creates a resource (or, for a userName that matches a soft-deleted
    /// record, restores that record). An upstream that refuses it as a
    /// duplicate the look-up index did not know of has the index read
    /// again first, so the IdP's next look-up finds the holder.
    pub async fn create(&self, kind: Kind, resource: Value) -> Result<Record, ProvisionError> {
        let sent = self.index(kind).map(|_| resource.clone());
        match self.create_unindexed(kind, resource).await {
            Ok(record) => {
                if let Some(id) = record.resource.get("id").and_then(Value::as_str) {
                    self.note_write(kind, id, None, Some(&record.resource))
                        .await;
                }
                Ok(record)
            }
            Err(ProvisionError::Upstream(CallError::Refused(refusal)))
                if refusal.means_conflict() =>
            {
                if let (Some(index), Some(sent)) = (self.index(kind), &sent)
                    && !index.knows_any(sent).await
                {
                    // On a task of its own: a client that hangs up must not
                    // cut a full read short (and leave its lease held), and
                    // the 409 waits for a few seconds of it, not for a
                    // million users' read; past that the read goes on and a
                    // later look-up finds the holder.
                    let (index, client) = (index.clone(), self.client.clone());
                    let asked = tokio::time::Instant::now();
                    let reading = tokio::spawn(async move { index.refresh(&client, asked).await });
                    if let Ok(Ok(Err(error))) = tokio::time::timeout(STALE_MISS_WAIT, reading).await
                    {
                        tracing::warn!(%error, "look-up index not read again after a duplicate");
                    }
                }
                Err(ProvisionError::Upstream(CallError::Refused(refusal)))
            }
            Err(error) => Err(error),
        }
    }

    async fn create_unindexed(
        &self,
        kind: Kind,
        mut resource: Value,
    ) -> Result<Record, ProvisionError> {
        let mapping = self.mapping(kind)?;
        prepare(kind, &mut resource, None)?;
        if kind == Kind::User {
            policy::check_approved_domains(&resource, &self.connection.approved_domains)?;
        }
        let request = mapping.create_request(&resource)?;
        // What follows the create is checked before it: a value no call can
        // set, or a member this connection cannot add, must not leave a
        // half-made resource upstream.
        mapping.state_calls(&Value::Object(Map::new()), &resource)?;
        let wanted = members_of(&resource);
        let membership = self
            .plan_membership(mapping, &BTreeSet::new(), &wanted)
            .await?;
        // The matching keys' locks, always userName (displayName) first and
        // externalId second, so two creates never wait on each other.
        let mut _creating = Vec::new();
        for key in matching_keys(kind, &resource) {
            _creating.push(self.hold(key).await?);
        }
        // Under the lock, so of N identical POSTs one creates and the rest
        // find its user (an upstream that refuses duplicates is trusted to).
        if kind == Kind::User
            && mapping.unique_user_names == UniqueBy::Gateway
            && let Some(user_name) = resource.get("userName").and_then(Value::as_str)
            && self.user_name_holder(user_name).await?.is_some()
        {
            return Err(ProvisionError::Conflict(format!(
                "a user with userName `{user_name}` exists already; look it up by userName and \
                 update it instead"
            )));
        }
        if kind == Kind::User
            && let Some(restored) = self.restore(mapping, &resource).await?
        {
            return Ok(restored);
        }
        let response = self.client.call(&request).await?;
        let (id, answered) = match mapping.created(&response.body) {
            Ok(created) => created,
            Err(error) => (self.find_created(kind, &resource, error).await?, None),
        };
        // A create call that carries only some fields leaves the rest to the
        // update calls, made against the record as created.
        let answered = if mapping.create.fields.is_empty() {
            answered
        } else {
            let created = match answered {
                Some(record) => self.record(kind, record, false).await?,
                None => self.get_any(kind, &id).await?,
            };
            // What the create carried is not sent again, even if the record
            // answers it differently (an address the upstream normalised).
            // Defaults included: the rest is every create field the create
            // call did not carry and the record does not already hold.
            let rest: Vec<_> = mapping
                .create_fields(&resource)?
                .into_iter()
                .filter(|(field, value)| {
                    !mapping.create.carries(field) && field.get(&created.upstream) != Some(value)
                })
                .collect();
            let requests = mapping.update_requests(&id, &created.upstream, rest)?;
            let mut last = Value::Null;
            for request in &requests {
                last = self.client.call(request).await?.body;
            }
            Some(match requests.len() {
                0 => created.upstream,
                1 => self.reread_any(kind, &id, last).await?.upstream,
                _ => self.get_any(kind, &id).await?.upstream,
            })
        };
        if !membership.is_empty() {
            self.apply_membership(mapping, &id, &membership).await?;
        }
        // Attributes set by calls (e.g. created suspended) follow the create.
        let state_set = match &answered {
            Some(record) => self.state_calls(mapping, &id, record, &resource).await?,
            None => {
                let current = self.get(kind, &id, false).await?;
                self.state_calls(mapping, &id, &current.upstream, &resource)
                    .await?
            }
        };
        match answered {
            // Membership written after the create is read back, not taken from its answer.
            Some(record) if !state_set && membership.is_empty() => {
                self.record(kind, record, kind == Kind::Group).await
            }
            _ => self.get(kind, &id, kind == Kind::Group).await,
        }
    }

    /// The id of a resource the upstream made but whose answer named no id:
    /// it is looked up by its matching key, so the IdP gets the user it
    /// asked for instead of a 502 and an orphan it would then collide with.
    async fn find_created(
        &self,
        kind: Kind,
        resource: &Value,
        unreadable: crate::mapping::MappingError,
    ) -> Result<String, ProvisionError> {
        let attribute = match kind {
            Kind::User => "userName",
            Kind::Group => "displayName",
        };
        let failed = || {
            ProvisionError::Unconfirmed(format!(
                "{unreadable}; the upstream may have made the {} but the gateway could not \
                 find it by {attribute} either: look for it upstream before the IdP retries",
                kind.resource_type()
            ))
        };
        let Some(key) = resource.get(attribute).and_then(Value::as_str) else {
            return Err(failed());
        };
        let Ok(quoted) = serde_json::to_string(key) else {
            return Err(failed());
        };
        let Ok(filter) = crate::scim::filter::parse_filter(&format!("{attribute} eq {quoted}"))
        else {
            return Err(failed());
        };
        let query = ListQuery {
            filter: Some(filter),
            start_index: 1,
            count: Some(2),
            with_members: false,
        };
        let mut ids = Vec::new();
        let page = self
            .list(kind, &query, &mut |resource| {
                ids.push(
                    resource
                        .view()
                        .get("id")
                        .and_then(View::as_str)
                        .map(str::to_owned),
                );
            })
            .await
            .map_err(|_| failed())?;
        match ids.as_slice() {
            [only] if page.total_results == 1 => {
                let id = only.as_deref().ok_or_else(failed)?;
                tracing::warn!(
                    upstream_id = %id,
                    "the create answer named no id; found the new resource by its {attribute}"
                );
                Ok(id.to_string())
            }
            _ => Err(failed()),
        }
    }

    /// Makes the calls that set attributes changed by calls; true if any.
    async fn state_calls(
        &self,
        mapping: &ResourceMapping,
        id: &str,
        record: &Value,
        desired: &Value,
    ) -> Result<bool, ProvisionError> {
        let requests = state_requests(mapping, id, record.into(), desired)?;
        for request in &requests {
            self.client.call(request).await?;
        }
        Ok(!requests.is_empty())
    }

    /// Restores the soft-deleted user with `resource`'s userName, if the
    /// mapping restores on create and there is one. The restored user looks
    /// to every reader like one freshly created from `resource`: each mapped
    /// field the POST does not carry goes back to its default or to absent
    /// (a password too), and it belongs to no group.
    async fn restore(
        &self,
        mapping: &ResourceMapping,
        resource: &Value,
    ) -> Result<Option<Record>, ProvisionError> {
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
            .filter(|record| soft.marks(*record))
            .find_map(|record| {
                let scim = mapping.to_scim(record, schema::user()).ok()?;
                let same = scim
                    .get("userName")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.eq_ignore_ascii_case(user_name));
                same.then_some((record, scim))
            });
        let Some((archived, archived_scim)) = archived else {
            return Ok(None);
        };
        // Another connection's former user is not this one's to revive.
        if !self.in_scope(Kind::User, &archived_scim) {
            return Err(ProvisionError::Conflict(format!(
                "a deleted user with userName `{user_name}` is kept upstream outside this \
                 connection's approved domains; it cannot be restored from here"
            )));
        }
        let id = mapping.upstream_id(archived)?;
        let mut changes = mapping.fresh_fields(resource)?;
        if let Some(restored) = &soft.restore_value {
            changes.retain(|(field, _)| *field != soft.field);
            changes.push((soft.field.clone(), restored.clone()));
        }
        let _restoring = self.lock_resource(Kind::User, &id).await?;
        // Rendered once before any group is left: a change no call can make
        // is refused with nothing written.
        mapping.update_requests(&id, archived, changes.clone())?;
        state_requests(mapping, &id, archived.into(), resource)?;
        self.leave_all_groups(&id, archived, Some(&mut changes))
            .await?;
        let requests = mapping.update_requests(&id, archived, changes)?;
        let mut last = Value::Null;
        for request in &requests {
            last = self.client.call(request).await?.body;
        }
        let mut record = if requests.len() == 1 {
            self.reread_any(Kind::User, &id, last).await?
        } else {
            self.get_any(Kind::User, &id).await?
        };
        if self
            .state_calls(mapping, &id, &record.upstream, resource)
            .await?
        {
            record = self.get(Kind::User, &id, false).await?;
        }
        if soft.marks(&record.upstream) {
            return Err(ProvisionError::Misconfigured(
                "the mapping restores soft-deleted users on create, but the create body does not \
                 change the soft-delete field; give that attribute a `default` in the mapping"
                    .to_string(),
            ));
        }
        tracing::info!(upstream_id = %id, "restored a soft-deleted user on create");
        Journal::note_restored();
        Ok(Some(record))
    }

    /// PUT: attributes the IdP does not send stay as they are upstream.
    pub async fn replace(
        &self,
        kind: Kind,
        id: &str,
        mut resource: Value,
        if_match: Option<&str>,
        answer_members: bool,
    ) -> Result<Value, ProvisionError> {
        let mapping = self.mapping(kind)?;
        prepare(kind, &mut resource, Some(id))?;
        let with_members = resource.get("members").is_some();
        let lock_free = mapping.update_precondition.is_some() && !with_members;
        let resource = &resource;
        self.read_modify_write(kind, id, lock_free, if_match, move |locked| async move {
            let read = self.get_call(kind, id, true).await?;
            let answer = read.tree().map_err(CallError::Failed)?;
            let (record, current) = self
                .current_in(kind, id, answer.view(), kind == Kind::Group)
                .await?;
            check_precondition(&current, if_match)?;
            if kind == Kind::User {
                let effective = merged_for_policy(&current, resource);
                policy::check_approved_domains(&effective, &self.connection.approved_domains)?;
            }
            let plan = plan_update(mapping, id, record, &current, resource, Absent::Keep)?;
            if !locked && !plan.is_one_conditional_write() {
                return Ok(Tried::NeedsLock);
            }
            let membership = if with_members {
                self.plan_membership(mapping, &members_of(&current), &members_of(resource))
                    .await?
            } else {
                MembershipChange::default()
            };
            let members = MemberWrite {
                change: membership,
                requested: with_members,
                shown: answer_members,
            };
            self.finish_update(kind, mapping, id, current, plan, members)
                .await
                .map(Tried::Done)
        })
        .await
    }

    /// PATCH, applied read-modify-write. A group's member list is read
    /// only when the change needs it (`MemberDelta::of`) or the answer shows
    /// it (`answer_members`): a group of 100,000 members gains or loses one
    /// in a few calls.
    pub async fn patch(
        &self,
        kind: Kind,
        id: &str,
        operations: &[PatchOperation],
        if_match: Option<&str>,
        answer_members: bool,
    ) -> Result<Value, ProvisionError> {
        let mapping = self.mapping(kind)?;
        // Values are canonical (`parse_patch_request`), so `members` is the key.
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
        let lock_free = mapping.update_precondition.is_some() && !touches_members;
        let delta = match &mapping.members {
            Some(members) if touches_members && members::changes_one_by_one(members) => {
                MemberDelta::of(operations)
            }
            _ => None,
        };
        let delta = &delta;
        self.read_modify_write(kind, id, lock_free, if_match, move |locked| async move {
            let read_members = kind == Kind::Group && touches_members && delta.is_none();
            let read = self.get_call(kind, id, true).await?;
            let answer = read.tree().map_err(CallError::Failed)?;
            let (record, current) = self
                .current_in(kind, id, answer.view(), read_members)
                .await?;
            check_precondition(&current, if_match)?;
            let applied = match delta {
                Some((_, others)) => others.as_slice(),
                None => operations,
            };
            let desired = patched(current.clone(), applied, kind.schema())?;
            keeps_required(kind, &current, &desired)?;
            if kind == Kind::User {
                policy::check_approved_domains(&desired, &self.connection.approved_domains)?;
            }
            let plan = plan_update(mapping, id, record, &current, &desired, Absent::Clear)?;
            if !locked && !plan.is_one_conditional_write() {
                return Ok(Tried::NeedsLock);
            }
            let membership = match delta {
                Some((delta, _)) => self.plan_member_delta(delta).await?,
                None if touches_members => {
                    self.plan_membership(mapping, &members_of(&current), &members_of(&desired))
                        .await?
                }
                None => MembershipChange::default(),
            };
            let members = MemberWrite {
                change: membership,
                requested: touches_members,
                shown: answer_members,
            };
            self.finish_update(kind, mapping, id, current, plan, members)
                .await
                .map(Tried::Done)
        })
        .await
    }

    /// Sends a planned update, then the membership change; everything was
    /// validated before this first write. The resource as it was is the
    /// audit's (and the index's) before, taken once the update is made: a
    /// refused one records no change.
    async fn finish_update(
        &self,
        kind: Kind,
        mapping: &ResourceMapping,
        id: &str,
        before: Value,
        plan: UpdatePlan,
        members: MemberWrite,
    ) -> Result<Value, ProvisionError> {
        let resource = self
            .send_update(kind, mapping, id, &before, plan, members)
            .await?;
        if self.index(kind).is_some() {
            self.note_write(kind, id, Some(&before), Some(&resource))
                .await;
        }
        Journal::note_before(before);
        Ok(resource)
    }

    /// The resource as the update left it (`current` if it sent nothing).
    async fn send_update(
        &self,
        kind: Kind,
        mapping: &ResourceMapping,
        id: &str,
        current: &Value,
        plan: UpdatePlan,
        members: MemberWrite,
    ) -> Result<Value, ProvisionError> {
        let mut resource = None;
        if let Some((last, earlier)) = plan.updates.split_last() {
            for request in earlier {
                self.write(request).await?;
            }
            let answer = self.write_answered(last).await?;
            // The answer is read where the primary update call says its
            // record is; a call that says otherwise is followed by a read.
            resource = Some(
                match earlier.is_empty() && last.record_at == mapping.update.record {
                    true => self.updated_resource(kind, id, &answer).await?,
                    false => {
                        answer.tree().map_err(CallError::Failed)?;
                        self.get_any(kind, id).await?.resource
                    }
                },
            );
        }
        for request in &plan.state {
            self.client.call(request).await?;
        }
        if !plan.state.is_empty() {
            resource = Some(self.get(kind, id, false).await?.resource);
        }
        if members.requested {
            self.apply_membership(mapping, id, &members.change).await?;
            let answer = match self.get(kind, id, members.shown).await {
                // The change is made: a list too long to read is left out
                // of the answer rather than failing a write that landed.
                Err(ProvisionError::TooMany(_)) if members.shown => self.get(kind, id, false).await,
                answer => answer,
            };
            return answer.map(|record| record.resource);
        }
        Ok(resource.unwrap_or_else(|| current.clone()))
    }

    /// Reads a record the caller has just written (its scope was checked on
    /// the state written).
    async fn get_any(&self, kind: Kind, id: &str) -> Result<Record, ProvisionError> {
        let mapping = self.mapping(kind)?;
        let response = self
            .client
            .call(&mapping.get.request(Bindings::id(id))?)
            .await?;
        let answered = mapping.take_answered(&mapping.get, response.body)?;
        self.record(kind, answered, false).await
    }

    /// The resource an update answered with, read from the answer's text,
    /// or from a fresh read if it answered none. Not scope-checked: the
    /// caller checked the state it wrote.
    async fn updated_resource(
        &self,
        kind: Kind,
        id: &str,
        answer: &UpstreamResponse,
    ) -> Result<Value, ProvisionError> {
        let mapping = self.mapping(kind)?;
        let answer = answer.tree().map_err(CallError::Failed)?;
        match mapping.answered_in(&mapping.update, answer.view()) {
            Ok(record) if mapping.upstream_id(record).is_ok() => {
                Ok(mapping.to_scim(record, kind.schema())?)
            }
            _ => Ok(self.get_any(kind, id).await?.resource),
        }
    }

    /// [`Self::updated_resource`] with its record, for a caller that goes
    /// on from the record.
    async fn reread_any(
        &self,
        kind: Kind,
        id: &str,
        answered: Value,
    ) -> Result<Record, ProvisionError> {
        let mapping = self.mapping(kind)?;
        match mapping.take_answered(&mapping.update, answered) {
            Ok(record) if mapping.upstream_id(&record).is_ok() => {
                self.record(kind, record, false).await
            }
            _ => self.get_any(kind, id).await,
        }
    }

    /// DELETE: soft unless the connection enables hard deletes (or the
    /// mapping declares only a hard delete). A soft-deleted user leaves its
    /// groups: while deleted it is no one's member.
    pub async fn delete(
        &self,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<(), ProvisionError> {
        // Always locked: a soft delete leaves groups before its update. A
        // conditional update that lost is tried again from the read, which
        // finds the groups already left.
        let deleted = self
            .read_modify_write(kind, id, false, if_match, move |_| async move {
                self.delete_locked(kind, id, if_match)
                    .await
                    .map(Tried::Done)
            })
            .await?;
        // Soft-deleted too: it is no longer anyone's match.
        self.note_write(kind, id, Some(&deleted), None).await;
        Ok(())
    }

    /// Deletes the resource and answers what it was.
    async fn delete_locked(
        &self,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Value, ProvisionError> {
        let mapping = self.mapping(kind)?;
        let current = self.get(kind, id, false).await?;
        check_precondition(&current.resource, if_match)?;
        Journal::note_before(current.resource.clone());
        let hard = match (&mapping.soft_delete, &mapping.hard_delete) {
            (_, Some(hard)) if self.connection.hard_delete => Some(hard),
            (Some(_), _) => None,
            (None, Some(hard)) => Some(hard),
            (None, None) => {
                return Err(ProvisionError::Undeletable(kind.resource_type()));
            }
        };
        let bindings = Bindings::id(id);
        let request = match (hard, &mapping.soft_delete) {
            (Some(hard), _) => hard.request(bindings)?,
            (
                None,
                Some(SoftDelete {
                    call: Some(call), ..
                }),
            ) => call.request(bindings)?,
            (None, Some(soft)) => {
                let mut marked = vec![(soft.field.clone(), soft.value.clone())];
                // Rendered before any group is left (see `restore`).
                mapping.update_requests(id, &current.upstream, marked.clone())?;
                if kind == Kind::User {
                    // Membership kept on the user is emptied in the same write.
                    self.leave_all_groups(id, &current.upstream, Some(&mut marked))
                        .await?;
                }
                for request in mapping.conditional_update_requests(id, &current.upstream, marked)? {
                    self.write(&request).await?;
                }
                return Ok(current.resource);
            }
            (None, None) => {
                return Err(ProvisionError::Misconfigured(
                    "the mapping declares no delete call".to_string(),
                ));
            }
        };
        self.client.call(&request).await?;
        if kind == Kind::User && hard.is_none() {
            self.leave_all_groups(id, &current.upstream, None).await?;
        }
        Ok(current.resource)
    }

    pub fn limits(&self) -> ListLimits {
        self.limits
    }
}

/// The writes of one update, rendered before the first is sent.
struct UpdatePlan {
    updates: Vec<UpstreamRequest>,
    state: Vec<UpstreamRequest>,
}

impl UpdatePlan {
    /// Whether the plan writes at most once, conditionally on the version
    /// read: then the upstream itself keeps concurrent writes apart.
    fn is_one_conditional_write(&self) -> bool {
        self.state.is_empty() && self.updates.iter().all(|r| r.precondition.is_some())
    }
}

/// The lock key of one resource, in this process and (prefixed) in Redis.
fn resource_key(kind: Kind, id: &str) -> String {
    format!("{}/{id}", kind.endpoint())
}

/// What an update does with a group's members.
#[derive(Debug)]
struct MemberWrite {
    /// The change planned (empty when none).
    change: MembershipChange,
    /// The request names members: they are changed, and the group read again.
    requested: bool,
    /// The answer shows them, so they are read after the change.
    shown: bool,
}

/// One try of a read-modify-write.
enum Tried<T> {
    Done(T),
    /// Tried without the lock, the change turned out to be more than one
    /// conditional write: tried again under the lock.
    NeedsLock,
}

/// How many times a read-modify-write whose conditional write lost to
/// another is read and tried again before answering 503.
const STALE_TRIES: u32 = 5;

/// The calls that make `current` (the resource read from `record`)
/// `desired`.
fn plan_update(
    mapping: &ResourceMapping,
    id: &str,
    record: View<'_>,
    current: &Value,
    desired: &Value,
    absent: Absent,
) -> Result<UpdatePlan, ProvisionError> {
    let changes = mapping.changes(record, current, desired, absent)?;
    let updates = mapping.conditional_update_requests(id, record, changes)?;
    // Attributes set by calls are not in the update bodies, so the record as
    // read is the one these calls move on from.
    let state = state_requests(mapping, id, record, desired)?;
    Ok(UpdatePlan { updates, state })
}

/// The calls that bring `record`'s call-set attributes to `desired`'s.
fn state_requests(
    mapping: &ResourceMapping,
    id: &str,
    record: View<'_>,
    desired: &Value,
) -> Result<Vec<UpstreamRequest>, ProvisionError> {
    mapping
        .state_calls(record, desired)?
        .into_iter()
        .map(|call| call.request(Bindings::id(id)).map_err(ProvisionError::from))
        .collect()
}

/// The keys an IdP matches a resource by before creating it: userName (a
/// group's displayName), case-insensitively, then externalId, exactly (it
/// is the IdP's own id). Two creates sharing either are serialised.
fn matching_keys(kind: Kind, resource: &Value) -> Vec<String> {
    let name = match kind {
        Kind::User => "userName",
        Kind::Group => "displayName",
    };
    let text = |attribute: &str| resource.get(attribute).and_then(Value::as_str);
    let mut keys = Vec::new();
    if let Some(name) = text(name) {
        keys.push(format!(
            "create:{}/{}",
            kind.endpoint(),
            name.to_lowercase()
        ));
    }
    if let Some(external) = text("externalId") {
        keys.push(format!("create:{}/externalId:{external}", kind.endpoint()));
    }
    keys
}

/// A PATCH may not remove a required attribute the resource has (RFC 7643
/// §2.2: `userName`, a group's `displayName`); forwarding it would send the
/// upstream a null it may store.
fn keeps_required(kind: Kind, current: &Value, desired: &Value) -> Result<(), ProvisionError> {
    for attribute in kind.schema().core.attributes.iter().filter(|a| a.required) {
        let present = |resource: &Value| {
            resource
                .get(attribute.name)
                .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
        };
        if present(current) && !present(desired) {
            return Err(ProvisionError::Incomplete(format!(
                "`{}` is required for a {}; it can be replaced but not removed",
                attribute.name,
                kind.resource_type()
            )));
        }
    }
    Ok(())
}

/// Canonical attribute names, then read-only attributes dropped (RFC 7644
/// §3.5.1: a client's values for them are ignored, not checked: Okta sends
/// `meta` dates in its own format), then schema checks. On a PUT, `id` may
/// only repeat the resource's own.
fn prepare(kind: Kind, resource: &mut Value, own_id: Option<&str>) -> Result<(), ProvisionError> {
    let schema = kind.schema();
    if !resource.is_object() {
        return Err(ProvisionError::Malformed(
            "the request body must be a JSON object".to_string(),
        ));
    }
    schema.canonicalize(resource);
    if let (Some(own_id), Some(sent)) = (own_id, resource.get("id"))
        && sent.as_str() != Some(own_id)
        && !sent.is_null()
    {
        return Err(ProvisionError::Immutable(
            "`id` cannot be changed".to_string(),
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
fn check_precondition(current: &Value, if_match: Option<&str>) -> Result<(), ProvisionError> {
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
        Err(ProvisionError::VersionMismatch(format!(
            "If-Match {if_match} does not match the current version {}; read the resource again and retry",
            version.unwrap_or("(none)")
        )))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn creates_are_keyed_by_user_name_then_external_id() {
        let user = json!({"userName": "Ann@Example.com", "externalId": "E-1"});
        assert_eq!(
            matching_keys(Kind::User, &user),
            [
                "create:Users/ann@example.com",
                "create:Users/externalId:E-1"
            ]
        );
        let group = json!({"displayName": "Ops"});
        assert_eq!(matching_keys(Kind::Group, &group), ["create:Groups/ops"]);
        assert!(matching_keys(Kind::User, &json!({})).is_empty());
    }
}
