//! Group membership in the three shapes a mapping can declare: member
//! endpoints, a member list on the group, or a group list on each user.
//! Reading builds SCIM `members`; writing turns a desired member set into
//! the upstream calls that reach it.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::Provisioner;
use crate::mapping::{Bindings, FieldPath, Members, ResourceMapping, id_text};
use crate::scim::error::{ScimError, ScimType};

impl Provisioner {
    /// The SCIM `members` of a group (`$ref` is added by the server, which
    /// knows the base URL). `group` is the group's upstream record.
    pub(super) async fn member_list(
        &self,
        members: &Members,
        group_id: &str,
        group: &Value,
    ) -> Result<Vec<Value>, ScimError> {
        let bindings = Bindings {
            id: Some(group_id),
            member: None,
        };
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

    /// Makes the group's upstream membership go from `before` to `after`.
    /// Adding a present member and removing an absent one are not errors
    /// (the IdP may retry).
    pub(super) async fn apply_membership(
        &self,
        groups: &ResourceMapping,
        group_id: &str,
        before: &BTreeSet<String>,
        after: &BTreeSet<String>,
    ) -> Result<(), ScimError> {
        let Some(members) = &groups.members else {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                "this connection's upstream mapping declares no group membership",
            ));
        };
        let users = &self.client.mapping().users;
        for member in after.difference(before) {
            if !users.id.accepts(member) {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    format!("member `{member}` is not a user id of this connection"),
                ));
            }
        }
        let added: Vec<&String> = after.difference(before).collect();
        let removed: Vec<&String> = before.difference(after).collect();
        match members {
            Members::Endpoints { add, remove, .. } => {
                for member in added {
                    let typed = users.id.typed(member);
                    let request = add.request(Bindings {
                        id: Some(group_id),
                        member: Some(&typed),
                    })?;
                    self.client.call(&request).await?;
                }
                for member in removed {
                    let typed = users.id.typed(member);
                    let request = remove.request(Bindings {
                        id: Some(group_id),
                        member: Some(&typed),
                    })?;
                    ignore_not_found(self.client.call(&request).await)?;
                }
            }
            Members::GroupField {
                field,
                member_field,
            } => {
                if added.is_empty() && removed.is_empty() {
                    return Ok(());
                }
                let list = after
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
                let mut body = Map::new();
                field.set(&mut body, Value::Array(list));
                let mut request = groups.update.request(Bindings {
                    id: Some(group_id),
                    member: None,
                })?;
                request.body = Some(Value::Object(body));
                self.client.call(&request).await?;
            }
            Members::UserField { field, .. } => {
                let group_value = groups.id.typed(group_id);
                for (member, joining) in added
                    .into_iter()
                    .map(|m| (m, true))
                    .chain(removed.into_iter().map(|m| (m, false)))
                {
                    self.move_user(member, field, &group_value, joining).await?;
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
    ) -> Result<(), ScimError> {
        let users = &self.client.mapping().users;
        let bindings = Bindings {
            id: Some(user_id),
            member: None,
        };
        let record = match self.client.call(&users.get.request(bindings)?).await {
            Ok(response) => response.body,
            Err(error) if error.status == http::StatusCode::NOT_FOUND && !joining => return Ok(()),
            Err(error) => return Err(error),
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
        let mut changes = Map::new();
        field.set(&mut changes, Value::Array(groups));
        let body = if users.update.partial {
            changes
        } else {
            let mut full = record.as_object().cloned().unwrap_or_default();
            full.extend(changes);
            full
        };
        let mut request = users.update.request(bindings)?;
        request.body = Some(Value::Object(body));
        self.client.call(&request).await?;
        Ok(())
    }
}

fn display_of(field: Option<&FieldPath>, record: &Value) -> Option<String> {
    field
        .and_then(|f| f.get(record))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn ignore_not_found<T>(result: Result<T, ScimError>) -> Result<(), ScimError> {
    match result {
        Err(error) if error.status == http::StatusCode::NOT_FOUND => Ok(()),
        other => other.map(|_| ()),
    }
}
