//! Group membership through the mapping's member calls: reading the member
//! list, and turning a desired `members` set into add/remove calls.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{Provisioner, members_of};
use crate::mapping::{Bindings, Members, ResourceMapping};
use crate::scim::error::{ScimError, ScimType};

impl Provisioner {
    /// The SCIM `members` of a group (`$ref` is added by the server, which
    /// knows the base URL).
    pub(super) async fn member_list(
        &self,
        members: &Members,
        group_id: &str,
    ) -> Result<Vec<Value>, ScimError> {
        let Members::Endpoints {
            list,
            member_field,
            display_field,
            ..
        } = members;
        let records = self
            .fetch_all(
                list,
                Bindings {
                    id: Some(group_id),
                    member: None,
                },
            )
            .await?;
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let value = match member_field.get(&record) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            let mut member = Map::new();
            member.insert("value".into(), Value::from(value));
            if let Some(display) = display_field
                .as_ref()
                .and_then(|f| f.get(&record))
                .and_then(Value::as_str)
            {
                member.insert("display".into(), Value::from(display));
            }
            member.insert("type".into(), Value::from("User"));
            out.push(Value::Object(member));
        }
        Ok(out)
    }

    /// Adds and removes members one call each; adding a present member and
    /// removing an absent one are not errors (the IdP may retry).
    pub(super) async fn change_members(
        &self,
        members: &Members,
        group_id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ScimError> {
        let Members::Endpoints {
            add: add_call,
            remove: remove_call,
            ..
        } = members;
        let users = &self.client.mapping().users.id;
        for member in add.iter().chain(remove) {
            if !users.accepts(member) {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    format!("member `{member}` is not a user id of this connection"),
                ));
            }
        }
        for member in add {
            let typed = users.typed(member);
            let request = add_call.request(Bindings {
                id: Some(group_id),
                member: Some(&typed),
            })?;
            self.client.call(&request).await?;
        }
        for member in remove {
            let typed = users.typed(member);
            let request = remove_call.request(Bindings {
                id: Some(group_id),
                member: Some(&typed),
            })?;
            match self.client.call(&request).await {
                Err(error) if error.status == http::StatusCode::NOT_FOUND => {}
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    /// Makes the upstream membership equal the desired resource's `members`.
    pub(super) async fn sync_members(
        &self,
        mapping: &ResourceMapping,
        group_id: &str,
        current: &Value,
        desired: &Value,
    ) -> Result<(), ScimError> {
        let Some(members) = &mapping.members else {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                "this connection's upstream mapping declares no group membership calls",
            ));
        };
        let before: BTreeSet<String> = members_of(current).into_iter().collect();
        let after: BTreeSet<String> = members_of(desired).into_iter().collect();
        let add: Vec<String> = after.difference(&before).cloned().collect();
        let remove: Vec<String> = before.difference(&after).cloned().collect();
        self.change_members(members, group_id, &add, &remove).await
    }
}
