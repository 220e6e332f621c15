//! Group membership in the three shapes a mapping can declare: member
//! endpoints, a member list on the group, or a group list on each user.
//! Reading builds SCIM `members`; writing turns a desired member set into
//! the upstream calls that reach it.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::ProvisionError;
use super::{Kind, Provisioner};
use crate::mapping::{Bindings, FieldPath, Members, ResourceMapping, id_text};
use crate::upstream::CallError;

impl Provisioner {
    /// The SCIM `members` of a group (`$ref` is added by the server, which
    /// knows the base URL). `group` is the group's upstream record.
    pub(super) async fn member_list(
        &self,
        members: &Members,
        group_id: &str,
        group: &Value,
    ) -> Result<Vec<Value>, ProvisionError> {
        let bindings = Bindings::id(group_id);
        let entries: Vec<(String, Option<String>)> = match members {
            Members::Endpoints {
                list,
                member_field,
                display_field,
                ..
            } => self
                .fetch_all(list, bindings)
                .await?
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
            Members::UserField {
                list,
                display_field,
                ..
            } => {
                let users = &self.client.mapping().users;
                self.fetch_all(list, bindings)
                    .await?
                    .iter()
                    .filter(|user| !users.soft_delete.as_ref().is_some_and(|s| s.marks(user)))
                    .filter_map(|user| {
                        let id = users.upstream_id(user).ok()?;
                        Some((id, display_of(display_field.as_ref(), user)))
                    })
                    .collect()
            }
        };
        Ok(entries
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
            .collect())
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
        for member in &added {
            if self.member_state(member).await? != MemberState::Visible {
                return Err(ProvisionError::ForeignMember(member.clone()));
            }
        }
        let mut kept = Vec::new();
        for member in &removed {
            if self.member_state(member).await? == MemberState::Foreign {
                kept.push(member.clone());
            }
        }
        removed.retain(|member| !kept.contains(member));
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
                    self.client.call(&request).await?;
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
                ..
            } => {
                let ids = |members: &[String]| {
                    Value::Array(members.iter().map(|m| users.id.typed(m)).collect())
                };
                for (call, members) in [(add, &change.added), (remove, &change.removed)] {
                    if members.is_empty() {
                        continue;
                    }
                    let list = ids(members);
                    let request = call.request(Bindings {
                        id: Some(group_id),
                        members: Some(&list),
                        ..Bindings::default()
                    })?;
                    self.client.call(&request).await?;
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
                for request in users.update_requests(user_id, now, vec![emptied])? {
                    self.client.call(&request).await?;
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
        let bindings = Bindings::id(user_id);
        // The user's list of groups is read-modify-written: two groups
        // changing it at once would otherwise undo each other.
        let _held = self.lock_resource(Kind::User, user_id).await?;
        let record = match self.client.call(&users.get.request(bindings)?).await {
            Ok(response) => users.take_answered(&users.get, response.body)?,
            Err(CallError::Missing(_)) if !joining => return Ok(()),
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
            _ => return Ok(()),
        }
        let change = vec![(field.clone(), Value::Array(groups))];
        for request in users.update_requests(user_id, &record, change)? {
            self.client.call(&request).await?;
        }
        Ok(())
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    /// A user in this connection's scope.
    Visible,
    /// Another connection's user: it exists, but not for this connection.
    Foreign,
    /// No such (live) user upstream.
    Missing,
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
