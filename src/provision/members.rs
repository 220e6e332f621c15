//! Group membership in the three shapes a mapping can declare: member
//! endpoints, a member list on the group, or a group list on each user.
//! Reading builds SCIM `members`; writing turns a desired member set into
//! the upstream calls that reach it.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::ProvisionError;
use super::{Kind, Provisioner, Tried};
use crate::mapping::{Bindings, FieldPath, Members, ResourceMapping, id_text};
use crate::scim::filter::{CompareOp, Filter};
use crate::scim::patch::{PatchOpKind, PatchOperation};
use crate::upstream::CallError;

/// Pages of members read ahead of a streamed answer.
const PAGES_AHEAD: usize = 2;

impl Provisioner {
    /// The SCIM `members` of a group (`$ref` is added by the server, which
    /// knows the base URL). `group` is the group's upstream record.
    pub(super) async fn member_list(
        &self,
        members: &Members,
        group_id: &str,
        group: &Value,
    ) -> Result<Vec<Value>, ProvisionError> {
        let listed = match members {
            Members::Endpoints { list, .. } | Members::UserField { list, .. } => self
                .fetch_all(list, Bindings::id(group_id))
                .await
                .map_err(|error| too_many_members(group_id, error))?,
            Members::GroupField { .. } => Vec::new(),
        };
        Ok(self.members_of_page(members, group, &listed))
    }

    /// The SCIM members a page of a list call names (`listed`), or the
    /// group record holds (`group_field`).
    fn members_of_page(&self, members: &Members, group: &Value, listed: &[Value]) -> Vec<Value> {
        let users = &self.client.mapping().users;
        let entries: Vec<(String, Option<String>)> = match members {
            Members::Endpoints {
                member_field,
                display_field,
                ..
            } => listed
                .iter()
                .filter_map(|record| {
                    let value = member_field.get(record).and_then(id_text)?;
                    Some((value, display_of(display_field.as_ref(), record)))
                })
                .collect(),
            Members::GroupField {
                field,
                member_field,
                ..
            } => field
                .get(group)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|element| {
                    let id = match member_field {
                        Some(inner) => inner.get(element),
                        None => Some(element),
                    };
                    id.and_then(id_text).map(|id| (id, None))
                })
                .collect(),
            Members::UserField { display_field, .. } => listed
                .iter()
                .filter(|user| !users.soft_delete.as_ref().is_some_and(|s| s.marks(*user)))
                .filter_map(|user| {
                    let id = users.upstream_id(user).ok()?;
                    Some((id, display_of(display_field.as_ref(), user)))
                })
                .collect(),
        };
        entries
            .into_iter()
            .map(|(value, display)| {
                let mut member = Map::new();
                member.insert("value".into(), Value::from(value));
                if let Some(display) = display {
                    member.insert("display".into(), Value::from(display));
                }
                member.insert("type".into(), Value::from("User"));
                Value::Object(member)
            })
            .collect()
    }

    /// Whether a group's members are read from a list call, page by page,
    /// so that an answer can stream them rather than hold them all.
    pub fn lists_members(&self) -> bool {
        let groups = self.client.mapping().groups.as_ref();
        matches!(
            groups.and_then(|g| g.members.as_ref()),
            Some(Members::Endpoints { .. } | Members::UserField { .. })
        )
    }

    /// The members of the group `group_id`, a page at a time as they are
    /// read, at most two pages ahead of their reader: a group
    /// of 100,000 is answered in the memory of a few pages, past scan_cap.
    /// A failure ends the pages with it.
    pub fn member_pages(
        &self,
        group_id: &str,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<Value>, ProvisionError>> {
        let (pages, receiver) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let provisioner = self.clone();
        let group_id = group_id.to_string();
        tokio::spawn(async move {
            let Some(members) = provisioner
                .client
                .mapping()
                .groups
                .as_ref()
                .and_then(|g| g.members.as_ref())
            else {
                return;
            };
            let (Members::Endpoints { list, .. } | Members::UserField { list, .. }) = members
            else {
                return;
            };
            let request = match list.request(Bindings::id(&group_id)) {
                Ok(request) => request,
                Err(error) => {
                    let _ = pages.send(Err(error.into())).await;
                    return;
                }
            };
            let mut listed = super::list::Pages::new(list, &request, 0, None);
            loop {
                let page = match listed.next(&provisioner.client).await {
                    Ok(Some(page)) => Ok(provisioner.members_of_page(members, &Value::Null, &page)),
                    Ok(None) => return,
                    Err(error) => Err(error),
                };
                let failed = page.is_err();
                // The reader hung up (the client went away): stop reading.
                if pages.send(page).await.is_err() || failed {
                    return;
                }
            }
        });
        receiver
    }

    /// Checks a membership change before anything is written: every member
    /// added must be a user this connection sees, and a member it does not
    /// see (another connection's user) is never removed by it, not even by a
    /// `replace` of the whole list. A member that no longer exists upstream
    /// may be removed.
    pub(super) async fn plan_membership(
        &self,
        groups: &ResourceMapping,
        before: &BTreeSet<String>,
        after: &BTreeSet<String>,
    ) -> Result<MembershipChange, ProvisionError> {
        let added: Vec<String> = after.difference(before).cloned().collect();
        let mut removed: Vec<String> = before.difference(after).cloned().collect();
        if added.is_empty() && removed.is_empty() {
            return Ok(MembershipChange::default());
        }
        if groups.members.is_none() {
            return Err(ProvisionError::NoMembership);
        }
        self.check_members(&added, &mut removed).await?;
        let mut members = before.clone();
        for member in &removed {
            members.remove(member);
        }
        members.extend(added.iter().cloned());
        Ok(MembershipChange {
            added,
            removed,
            members,
        })
    }

    /// A membership change the IdP stated member by member (see
    /// [`MemberDelta::of`]), checked as [`Self::plan_membership`] checks
    /// one, for the styles that change members one by one: the group's
    /// member list is never read.
    pub(super) async fn plan_member_delta(
        &self,
        delta: &MemberDelta,
    ) -> Result<MembershipChange, ProvisionError> {
        let added: Vec<String> = delta.added.iter().cloned().collect();
        let mut removed: Vec<String> = delta.removed.iter().cloned().collect();
        self.check_members(&added, &mut removed).await?;
        Ok(MembershipChange {
            added,
            removed,
            // Only the whole-list style writes it, and it takes no deltas.
            members: BTreeSet::new(),
        })
    }

    /// Refuses a member added that this connection does not see, and keeps
    /// out of `removed` the members that are another connection's users.
    async fn check_members(
        &self,
        added: &[String],
        removed: &mut Vec<String>,
    ) -> Result<(), ProvisionError> {
        for member in added {
            if self.member_state(member).await? != MemberState::Visible {
                return Err(ProvisionError::ForeignMember(member.clone()));
            }
        }
        let mut kept = Vec::new();
        for member in removed.iter() {
            if self.member_state(member).await? == MemberState::Foreign {
                kept.push(member.clone());
            }
        }
        removed.retain(|member| !kept.contains(member));
        Ok(())
    }

    /// Whether `member` is a member of the group `group_id` (its upstream
    /// `record` at hand), asked without reading the member list: the
    /// mapping's `lookup` call, the group's own list field, or the user's
    /// list of groups, else by paging the member list until it is found.
    pub(super) async fn has_member(
        &self,
        members: &Members,
        group_id: &str,
        record: &Value,
        member: &str,
    ) -> Result<bool, ProvisionError> {
        let users = &self.client.mapping().users;
        if !users.id.accepts(member) {
            return Ok(false);
        }
        match members {
            Members::Endpoints {
                lookup: Some(lookup),
                ..
            } => {
                let typed = users.id.typed(member);
                let request = lookup.request(Bindings::member(group_id, &typed))?;
                match self.client.call(&request).await {
                    Ok(_) => Ok(true),
                    Err(CallError::Missing(_)) => Ok(false),
                    Err(error) => Err(error.into()),
                }
            }
            Members::Endpoints {
                lookup: None,
                list,
                member_field,
                ..
            } => {
                // Page by page until found: one page in memory, no scan_cap.
                let request = list.request(Bindings::id(group_id))?;
                let mut found = false;
                super::list::walk_pages(&self.client, list, &request, 0, None, |page| {
                    found = page.iter().any(|record| {
                        member_field
                            .get(record)
                            .and_then(id_text)
                            .is_some_and(|value| value.eq_ignore_ascii_case(member))
                    });
                    Ok(!found)
                })
                .await?;
                Ok(found)
            }
            Members::GroupField { .. } => {
                let listed = self.member_list(members, group_id, record).await?;
                // Compared as the scan compares `members.value`: not case-exact.
                Ok(listed.iter().any(|m| {
                    m.get("value")
                        .and_then(id_text)
                        .is_some_and(|value| value.eq_ignore_ascii_case(member))
                }))
            }
            Members::UserField { field, .. } => {
                let request = users.get.request(Bindings::id(member))?;
                let user = match self.client.call(&request).await {
                    Ok(response) => users.take_answered(&users.get, response.body)?,
                    Err(CallError::Missing(_)) => return Ok(false),
                    Err(error) => return Err(error.into()),
                };
                if users.soft_delete.as_ref().is_some_and(|s| s.marks(&user)) {
                    return Ok(false);
                }
                Ok(field
                    .get(&user)
                    .and_then(Value::as_array)
                    .is_some_and(|groups| {
                        groups.iter().any(|g| {
                            id_text(g).is_some_and(|value| value.eq_ignore_ascii_case(group_id))
                        })
                    }))
            }
        }
    }

    /// Whether `id` is a user this connection sees, another's, or none.
    async fn member_state(&self, id: &str) -> Result<MemberState, ProvisionError> {
        let users = &self.client.mapping().users;
        if !users.id.accepts(id) {
            return Ok(MemberState::Missing);
        }
        let request = users.get.request(Bindings::id(id))?;
        let record = match self.client.call(&request).await {
            Ok(response) => users.take_answered(&users.get, response.body)?,
            Err(CallError::Missing(_)) => return Ok(MemberState::Missing),
            Err(error) => return Err(error.into()),
        };
        if users.soft_delete.as_ref().is_some_and(|s| s.marks(&record)) {
            return Ok(MemberState::Missing);
        }
        let resource = users.to_scim(&record, crate::scim::schema::user())?;
        Ok(if self.in_scope(Kind::User, &resource) {
            MemberState::Visible
        } else {
            MemberState::Foreign
        })
    }

    /// Makes a planned membership change upstream. Adding a present member
    /// and removing an absent one are not errors (the IdP may retry).
    pub(super) async fn apply_membership(
        &self,
        groups: &ResourceMapping,
        group_id: &str,
        change: &MembershipChange,
    ) -> Result<(), ProvisionError> {
        if change.is_empty() {
            return Ok(());
        }
        let Some(members) = &groups.members else {
            return Err(ProvisionError::NoMembership);
        };
        let users = &self.client.mapping().users;
        match members {
            Members::Endpoints { add, remove, .. } => {
                for member in &change.added {
                    let typed = users.id.typed(member);
                    let request = add.request(Bindings::member(group_id, &typed))?;
                    match self.client.call(&request).await {
                        // Already a member: a change named member by member
                        // re-adds one the IdP retried.
                        Ok(_) => {}
                        Err(CallError::Refused(refusal)) if refusal.means_conflict() => {}
                        Err(error) => return Err(error.into()),
                    }
                }
                for member in &change.removed {
                    let typed = users.id.typed(member);
                    let request = remove.request(Bindings::member(group_id, &typed))?;
                    ignore_not_found(self.client.call(&request).await)?;
                }
            }
            Members::GroupField {
                add: Some(add),
                remove: Some(remove),
                per_call,
                ..
            } => {
                let ids = |members: &[String]| {
                    Value::Array(members.iter().map(|m| users.id.typed(m)).collect())
                };
                for (call, members) in [(add, &change.added), (remove, &change.removed)] {
                    // At most `members_per_call` ids a call, in order.
                    for chunk in members.chunks((*per_call).max(1)) {
                        let list = ids(chunk);
                        let request = call.request(Bindings {
                            id: Some(group_id),
                            members: Some(&list),
                            ..Bindings::default()
                        })?;
                        self.client.call(&request).await?;
                    }
                }
            }
            Members::GroupField {
                field,
                member_field,
                ..
            } => {
                self.write_member_field(
                    groups,
                    group_id,
                    field,
                    member_field.as_ref(),
                    &change.members,
                )
                .await?;
            }
            Members::UserField { field, .. } => {
                let group_value = groups.id.typed(group_id);
                for (member, joining) in change
                    .added
                    .iter()
                    .map(|m| (m, true))
                    .chain(change.removed.iter().map(|m| (m, false)))
                {
                    self.move_user(member, field, &group_value, joining).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes a group's whole member list (membership kept on the group).
    async fn write_member_field(
        &self,
        groups: &ResourceMapping,
        group_id: &str,
        field: &FieldPath,
        member_field: Option<&FieldPath>,
        members: &BTreeSet<String>,
    ) -> Result<(), ProvisionError> {
        let users = &self.client.mapping().users;
        let list = members
            .iter()
            .map(|member| {
                let typed = users.id.typed(member);
                match member_field {
                    Some(inner) => {
                        let mut element = Map::new();
                        inner.set(&mut element, typed);
                        Value::Object(element)
                    }
                    None => typed,
                }
            })
            .collect();
        let change = vec![(field.clone(), Value::Array(list))];
        for request in groups.update_requests(group_id, &Value::Null, change)? {
            self.client.call(&request).await?;
        }
        Ok(())
    }

    /// Takes a user out of every group, for a soft delete and a restore: a
    /// deleted user is no one's member, and a restored one starts with no
    /// memberships (they may have been another person's). With membership
    /// kept on the user, the emptied list joins `user_changes` when the
    /// caller is about to write the user anyway, else written here.
    pub(super) async fn leave_all_groups(
        &self,
        user_id: &str,
        user_record: &Value,
        user_changes: Option<&mut Vec<(FieldPath, Value)>>,
    ) -> Result<(), ProvisionError> {
        let mapping = self.client.mapping();
        let (Some(groups), users) = (&mapping.groups, &mapping.users) else {
            return Ok(());
        };
        let Some(members) = &groups.members else {
            return Ok(());
        };
        match members {
            Members::UserField { field, .. } => {
                let belongs = field
                    .get(user_record)
                    .and_then(Value::as_array)
                    .is_some_and(|list| !list.is_empty());
                if !belongs {
                    return Ok(());
                }
                let emptied = (field.clone(), Value::Array(Vec::new()));
                if let Some(changes) = user_changes {
                    changes.push(emptied);
                    return Ok(());
                }
                // The record as it is now: a delete call may have changed it.
                let answer = self
                    .client
                    .call(&users.get.request(Bindings::id(user_id))?)
                    .await?
                    .body;
                let now = users.answered(&users.get, &answer)?;
                for request in users.conditional_update_requests(user_id, now, vec![emptied])? {
                    self.write(&request).await?;
                }
            }
            Members::Endpoints { .. } | Members::GroupField { .. } => {
                let typed = users.id.typed(user_id);
                for group in self.fetch_all(&groups.list, Bindings::default()).await? {
                    let group_id = groups.upstream_id(&group)?;
                    let listed = self.member_list(members, &group_id, &group).await?;
                    let belongs = listed
                        .iter()
                        .any(|m| m.get("value").and_then(id_text).as_deref() == Some(user_id));
                    if !belongs {
                        continue;
                    }
                    match members {
                        Members::Endpoints { remove, .. } => {
                            let request = remove.request(Bindings::member(&group_id, &typed))?;
                            ignore_not_found(self.client.call(&request).await)?;
                        }
                        Members::GroupField {
                            remove: Some(remove),
                            ..
                        } => {
                            let only = Value::Array(vec![typed.clone()]);
                            let request = remove.request(Bindings {
                                id: Some(&group_id),
                                members: Some(&only),
                                ..Bindings::default()
                            })?;
                            self.client.call(&request).await?;
                        }
                        Members::GroupField {
                            field,
                            member_field,
                            ..
                        } => {
                            let _held = self.lock_resource(Kind::Group, &group_id).await?;
                            // Re-read under the lock: the list may have changed.
                            let current = self.get(Kind::Group, &group_id, true).await?;
                            let mut kept = super::members_of(&current.resource);
                            if kept.remove(user_id) {
                                self.write_member_field(
                                    groups,
                                    &group_id,
                                    field,
                                    member_field.as_ref(),
                                    &kept,
                                )
                                .await?;
                            }
                        }
                        Members::UserField { .. } => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds or removes one group id in a user's list of groups.
    async fn move_user(
        &self,
        user_id: &str,
        field: &FieldPath,
        group: &Value,
        joining: bool,
    ) -> Result<(), ProvisionError> {
        let users = &self.client.mapping().users;
        // The user's list of groups is read-modify-written under the user's
        // lock (two groups changing it at once would undo each other), and
        // conditionally where the mapping can: a lock-free change of the
        // user elsewhere makes it read again.
        self.read_modify_write(Kind::User, user_id, false, None, move |_| async move {
            let request = users.get.request(Bindings::id(user_id))?;
            let record = match self.client.call(&request).await {
                Ok(response) => users.take_answered(&users.get, response.body)?,
                Err(CallError::Missing(_)) if !joining => return Ok(Tried::Done(())),
                Err(error) => return Err(error.into()),
            };
            let mut groups: Vec<Value> = field
                .get(&record)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let present = groups.iter().any(|g| id_text(g) == id_text(group));
            match (joining, present) {
                (true, false) => groups.push(group.clone()),
                (false, true) => groups.retain(|g| id_text(g) != id_text(group)),
                _ => return Ok(Tried::Done(())),
            }
            let change = vec![(field.clone(), Value::Array(groups))];
            for request in users.conditional_update_requests(user_id, &record, change)? {
                self.write(&request).await?;
            }
            Ok(Tried::Done(()))
        })
        .await
    }
}

/// A membership change as planned: the members added and removed, and the
/// whole list after it (for upstreams that keep the list on the group).
#[derive(Debug, Default)]
pub(super) struct MembershipChange {
    added: Vec<String>,
    removed: Vec<String>,
    members: BTreeSet<String>,
}

impl MembershipChange {
    pub(super) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Whether a style changes members one by one (a call per member, or each
/// user's group list), so a change needs no read of a member list.
pub(super) fn changes_one_by_one(members: &Members) -> bool {
    matches!(
        members,
        // A `group_field` list is in the group record anyway: read whole,
        // it costs no call and keeps present members from being re-added.
        Members::Endpoints { .. } | Members::UserField { .. }
    )
}

/// Members a PATCH adds and removes, as it names them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct MemberDelta {
    added: BTreeSet<String>,
    removed: BTreeSet<String>,
}

impl MemberDelta {
    /// The member operations of a group PATCH, with the others, when they
    /// only add and remove named members: `add` of values, `remove` of
    /// `members[value eq "…"]` or of values (Entra's form). `None` when one
    /// needs the whole list: a `replace`, a `remove` of every member, a
    /// filter on anything but `value`, members set at the root.
    pub(super) fn of(operations: &[PatchOperation]) -> Option<(MemberDelta, Vec<PatchOperation>)> {
        let mut delta = MemberDelta::default();
        let mut rest = Vec::new();
        for operation in operations {
            let Some(path) = &operation.path else {
                if operation
                    .value
                    .as_ref()
                    .is_some_and(|v| v.get("members").is_some())
                {
                    return None;
                }
                rest.push(operation.clone());
                continue;
            };
            if !path.attr.name.eq_ignore_ascii_case("members") {
                rest.push(operation.clone());
                continue;
            }
            if path.attr.sub.is_some() || path.sub_attr.is_some() {
                return None;
            }
            match (operation.op, &path.value_filter, &operation.value) {
                (PatchOpKind::Add, None, Some(value)) => {
                    for member in member_values(value)? {
                        delta.removed.remove(&member);
                        delta.added.insert(member);
                    }
                }
                (PatchOpKind::Remove, filter, value) => {
                    let named = match (filter, value) {
                        (Some(filter), None) => vec![filtered_value(filter)?],
                        (None, Some(value)) => member_values(value)?,
                        _ => return None,
                    };
                    for member in named {
                        delta.added.remove(&member);
                        delta.removed.insert(member);
                    }
                }
                _ => return None,
            }
        }
        Some((delta, rest))
    }
}

/// `X` of `value eq "X"`.
fn filtered_value(filter: &Filter) -> Option<String> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Value::String(value),
        } if path.name.eq_ignore_ascii_case("value") && path.sub.is_none() => Some(value.clone()),
        _ => None,
    }
}

/// The `value`s of `[{"value": "X"}, …]` (or of one such object).
fn member_values(value: &Value) -> Option<Vec<String>> {
    let one = |member: &Value| {
        member
            .get("value")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match value {
        Value::Array(members) => members.iter().map(one).collect(),
        Value::Object(_) => one(value).map(|member| vec![member]),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    /// A user in this connection's scope.
    Visible,
    /// Another connection's user: it exists, but not for this connection.
    Foreign,
    /// No such (live) user upstream.
    Missing,
}

/// A member list too long to read, said with what avoids reading it.
fn too_many_members(group_id: &str, error: ProvisionError) -> ProvisionError {
    match error {
        ProvisionError::TooMany(why) => ProvisionError::TooMany(format!(
            "group {group_id}: {why}; read it with excludedAttributes=members, and change its \
             members by naming them (add, or remove members[value eq \"…\"]), which reads no list"
        )),
        other => other,
    }
}

fn display_of(field: Option<&FieldPath>, record: &Value) -> Option<String> {
    field
        .and_then(|f| f.get(record))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn ignore_not_found<T>(result: Result<T, CallError>) -> Result<(), ProvisionError> {
    match result {
        Ok(_) | Err(CallError::Missing(_)) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::patch::parse_patch_request;
    use serde_json::json;

    fn delta_of(operations: Value) -> Option<(Vec<&'static str>, Vec<String>, Vec<String>)> {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": operations,
        });
        let operations = parse_patch_request(&body, crate::scim::schema::group()).unwrap();
        let (delta, rest) = MemberDelta::of(&operations)?;
        let rest = rest
            .iter()
            .map(|op| if op.path.is_some() { "path" } else { "root" })
            .collect();
        Some((
            rest,
            delta.added.into_iter().collect(),
            delta.removed.into_iter().collect(),
        ))
    }

    #[test]
    fn adds_and_removes_of_named_members_are_a_delta_in_order() {
        let named = delta_of(json!([
            {"op": "add", "path": "members", "value": [{"value": "1"}, {"value": "2"}]},
            {"op": "remove", "path": "members[value eq \"2\"]"},
            {"op": "remove", "path": "members", "value": [{"value": "3"}]},
            {"op": "replace", "path": "displayName", "value": "Ops"},
        ]));
        let expected = (
            vec!["path"],
            vec!["1".to_string()],
            vec!["2".into(), "3".into()],
        );
        assert_eq!(named, Some(expected));
        let readded = delta_of(json!([
            {"op": "remove", "path": "members[value eq \"1\"]"},
            {"op": "add", "path": "members", "value": {"value": "1"}},
        ]));
        assert_eq!(readded, Some((vec![], vec!["1".to_string()], vec![])));
    }

    #[test]
    fn changes_that_need_the_whole_list_are_no_delta() {
        for operations in [
            json!([{"op": "replace", "path": "members", "value": []}]),
            json!([{"op": "replace", "path": "members", "value": [{"value": "1"}]}]),
            json!([{"op": "remove", "path": "members"}]),
            json!([{"op": "remove", "path": "members[display eq \"Ann\"]"}]),
            json!([{"op": "remove", "path": "members[value ne \"1\"]"}]),
            json!([{"op": "add", "value": {"members": [{"value": "1"}]}}]),
        ] {
            assert_eq!(delta_of(operations.clone()), None, "{operations}");
        }
    }
}
