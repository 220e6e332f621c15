//! The Wrike API's state and the rules every write keeps: in memory behind one
//! `std::sync::Mutex`, locked only for one operation (never across an `.await`), and,
//! for [`Database::File`], written out as one JSON document after every write.
//!
//! Invariants:
//! - contacts are never removed: deletion is soft (`deleted: true`), so ids stay valid;
//! - an email (compared ignoring case) belongs to at most one contact, deleted or not;
//!   a new invitation for a deleted contact's email restores that contact;
//! - a group's `memberIds` name live (not deleted) contacts, each once;
//! - a write that fails changes nothing: every operation checks everything first, and
//!   a file-backed store writes a copy of the state and keeps it only once saved.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use super::error::ApiError;
use super::records::{
    CONTACT_PREFIX, Contact, Group, INVITATION_PREFIX, Invitation, Metadata, MetadataChange,
    UserType, apply_metadata, wrike_id,
};
use super::{Database, WrikeError};

/// Version of the file format below; a newer file is refused.
const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    version: u32,
    /// Sequence of the next id (contacts, groups and invitations share it).
    next_seq: u64,
    /// In creation order.
    contacts: Vec<Contact>,
    groups: Vec<Group>,
    invitations: Vec<Invitation>,
    /// Positions in `contacts` by id and by lower-case email, rebuilt on
    /// load: an account of 100,000 users is read by id in O(1).
    #[serde(skip)]
    contact_at: ContactPositions,
}

#[derive(Clone, Debug, Default)]
struct ContactPositions {
    by_id: std::collections::HashMap<String, usize>,
    by_email: std::collections::HashMap<String, usize>,
}

/// What `POST /invitations` asks for.
#[derive(Debug)]
pub(crate) struct NewInvitation {
    pub(crate) email: String,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) user_type: UserType,
}

/// What `PUT /contacts/{id}` changes; `Some(None)` clears an optional field.
#[derive(Debug, Default)]
pub(crate) struct ContactUpdate {
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) title: Option<Option<String>>,
    pub(crate) phone: Option<Option<String>>,
    pub(crate) company_name: Option<Option<String>>,
    pub(crate) location: Option<Option<String>>,
    pub(crate) metadata: Option<Vec<MetadataChange>>,
}

/// What `PUT /users/{id}` changes.
#[derive(Debug, Default)]
pub(crate) struct UserUpdate {
    pub(crate) user_type: Option<UserType>,
    /// The email a `profile` names; it must be the current one.
    pub(crate) email: Option<String>,
    pub(crate) active: Option<bool>,
    pub(crate) deleted: Option<bool>,
}

/// What `PUT /groups/{id}` changes.
#[derive(Debug, Default)]
pub(crate) struct GroupUpdate {
    pub(crate) title: Option<String>,
    pub(crate) add_members: Vec<String>,
    pub(crate) remove_members: Vec<String>,
    pub(crate) metadata: Option<Vec<MetadataChange>>,
}

fn contact_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Contact '{id}' not found"))
}

fn group_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Group '{id}' not found"))
}

/// Now as Wrike writes dates: `2026-12-01T20:15:00Z`.
fn now() -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

impl State {
    fn next_id(&mut self, prefix: &str) -> String {
        let id = wrike_id(prefix, self.next_seq);
        self.next_seq += 1;
        id
    }

    fn contact_index(&self, id: &str) -> Result<usize, ApiError> {
        self.contact_at
            .by_id
            .get(id)
            .copied()
            .ok_or_else(|| contact_not_found(id))
    }

    fn push_contact(&mut self, contact: Contact) {
        let at = self.contacts.len();
        self.contact_at.by_id.insert(contact.id.clone(), at);
        self.contact_at
            .by_email
            .insert(contact.email.to_lowercase(), at);
        self.contacts.push(contact);
    }

    fn reindex(&mut self) {
        self.contact_at = ContactPositions::default();
        for (at, contact) in self.contacts.iter().enumerate() {
            self.contact_at.by_id.insert(contact.id.clone(), at);
            self.contact_at
                .by_email
                .insert(contact.email.to_lowercase(), at);
        }
    }

    /// Bulk-seeds `count` active users (`user{n}@{domain}`, externalId
    /// `ext-{n}`), for tests and benchmarks of accounts at scale.
    pub(crate) fn seed_contacts(&mut self, count: usize, domain: &str) {
        for n in 0..count {
            let id = self.next_id(CONTACT_PREFIX);
            self.push_contact(Contact {
                id,
                first_name: format!("User{n}"),
                last_name: "Seeded".into(),
                email: format!("user{n}@{domain}"),
                user_type: UserType::Regular,
                active: true,
                deleted: false,
                title: None,
                phone: None,
                company_name: None,
                location: None,
                metadata: vec![Metadata {
                    key: "externalId".into(),
                    value: format!("ext-{n}"),
                }],
            });
        }
    }

    fn group_index(&self, id: &str) -> Result<usize, ApiError> {
        self.groups
            .iter()
            .position(|g| g.id == id)
            .ok_or_else(|| group_not_found(id))
    }

    /// All contacts whose `deleted` equals `deleted`, in creation order.
    pub(crate) fn list_contacts(&self, deleted: bool) -> Vec<Contact> {
        self.contacts
            .iter()
            .filter(|c| c.deleted == deleted)
            .cloned()
            .collect()
    }

    /// The contacts named, in the order named; deleted ones included.
    pub(crate) fn contacts(&self, ids: &[String]) -> Result<Vec<Contact>, ApiError> {
        ids.iter()
            .map(|id| Ok(self.contacts[self.contact_index(id)?].clone()))
            .collect()
    }

    pub(crate) fn invitations(&self) -> Vec<Invitation> {
        self.invitations.clone()
    }

    /// Sends an invitation: creates its contact, or restores the deleted contact that
    /// holds the email (as a fresh user: names from the invitation, every other
    /// field cleared, active, no groups). Refused when a live contact holds it.
    pub(crate) fn invite(&mut self, new: NewInvitation) -> Result<Invitation, ApiError> {
        let key = new.email.to_lowercase();
        let holder = self.contact_at.by_email.get(&key).copied();
        let fresh = |id: String| Contact {
            id,
            first_name: new.first_name.clone().unwrap_or_default(),
            last_name: new.last_name.clone().unwrap_or_default(),
            email: new.email.clone(),
            user_type: new.user_type,
            active: true,
            deleted: false,
            title: None,
            phone: None,
            company_name: None,
            location: None,
            metadata: Vec::new(),
        };
        let user_id = match holder {
            Some(i) if !self.contacts[i].deleted => {
                return Err(ApiError::invalid_parameter(
                    "User with such email already exists",
                ));
            }
            Some(i) => {
                let id = self.contacts[i].id.clone();
                self.contacts[i] = fresh(id.clone());
                id
            }
            None => {
                let id = self.next_id(CONTACT_PREFIX);
                self.push_contact(fresh(id.clone()));
                id
            }
        };
        let invitation = Invitation {
            id: self.next_id(INVITATION_PREFIX),
            first_name: new.first_name,
            last_name: new.last_name,
            email: new.email,
            user_type: new.user_type,
            invitation_date: now(),
            user_id,
        };
        self.invitations.push(invitation.clone());
        Ok(invitation)
    }

    /// `PUT /contacts/{id}`: refused on a deleted contact.
    pub(crate) fn update_contact(
        &mut self,
        id: &str,
        update: ContactUpdate,
    ) -> Result<Contact, ApiError> {
        let i = self.contact_index(id)?;
        let contact = &mut self.contacts[i];
        if contact.deleted {
            return Err(ApiError::not_allowed(format!(
                "Contact '{id}' is deleted; restore it with PUT /users/{id} deleted=false first"
            )));
        }
        let metadata = match &update.metadata {
            Some(changes) => Some(apply_metadata(&contact.metadata, changes)?),
            None => None,
        };
        if let Some(first_name) = update.first_name {
            contact.first_name = first_name;
        }
        if let Some(last_name) = update.last_name {
            contact.last_name = last_name;
        }
        for (field, value) in [
            (&mut contact.title, update.title),
            (&mut contact.phone, update.phone),
            (&mut contact.company_name, update.company_name),
            (&mut contact.location, update.location),
        ] {
            if let Some(value) = value {
                *field = value;
            }
        }
        if let Some(metadata) = metadata {
            contact.metadata = metadata;
        }
        Ok(contact.clone())
    }

    /// `PUT /users/{id}`. On a deleted user only a restore (`deleted=false`, which
    /// also reactivates unless `active=false` comes with it) is allowed. The email
    /// cannot change.
    pub(crate) fn update_user(
        &mut self,
        id: &str,
        update: UserUpdate,
    ) -> Result<Contact, ApiError> {
        let i = self.contact_index(id)?;
        let contact = &self.contacts[i];
        if contact.deleted && update.deleted != Some(false) {
            return Err(ApiError::not_allowed(format!(
                "User '{id}' is deleted; restore it with deleted=false"
            )));
        }
        if let Some(email) = &update.email
            && email.to_lowercase() != contact.email.to_lowercase()
        {
            return Err(ApiError::invalid_parameter(
                "Parameter 'profile': a user's email cannot be changed",
            ));
        }
        let contact = &mut self.contacts[i];
        if update.deleted == Some(false) && contact.deleted {
            contact.deleted = false;
            contact.active = true;
        }
        if let Some(user_type) = update.user_type {
            contact.user_type = user_type;
        }
        if let Some(active) = update.active {
            contact.active = active;
        }
        if update.deleted == Some(true) {
            return self.delete_user(id);
        }
        Ok(self.contacts[i].clone())
    }

    /// Soft deletion: the record stays (`deleted: true`, inactive) and leaves its
    /// groups. Deleting a deleted user changes nothing.
    pub(crate) fn delete_user(&mut self, id: &str) -> Result<Contact, ApiError> {
        let i = self.contact_index(id)?;
        let contact = &mut self.contacts[i];
        contact.deleted = true;
        contact.active = false;
        for group in &mut self.groups {
            group.member_ids.retain(|member| member != id);
        }
        Ok(self.contacts[i].clone())
    }

    /// Refuses ids that are not live contacts.
    fn check_members(&self, name: &str, ids: &[String]) -> Result<(), ApiError> {
        for id in ids {
            match self.contact_index(id).ok().map(|at| &self.contacts[at]) {
                Some(contact) if !contact.deleted => {}
                Some(_) => {
                    return Err(ApiError::invalid_parameter(format!(
                        "Parameter '{name}': contact '{id}' is deleted"
                    )));
                }
                None => {
                    return Err(ApiError::invalid_parameter(format!(
                        "Parameter '{name}': contact '{id}' does not exist"
                    )));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn list_groups(&self) -> Vec<Group> {
        self.groups.clone()
    }

    pub(crate) fn group(&self, id: &str) -> Result<Group, ApiError> {
        Ok(self.groups[self.group_index(id)?].clone())
    }

    pub(crate) fn create_group(
        &mut self,
        title: String,
        members: Vec<String>,
        metadata: Vec<MetadataChange>,
    ) -> Result<Group, ApiError> {
        self.check_members("members", &members)?;
        let metadata = apply_metadata(&[], &metadata)?;
        let mut member_ids: Vec<String> = Vec::with_capacity(members.len());
        for member in members {
            if !member_ids.contains(&member) {
                member_ids.push(member);
            }
        }
        let group = Group {
            id: self.next_id(CONTACT_PREFIX),
            title,
            member_ids,
            metadata,
        };
        self.groups.push(group.clone());
        Ok(group)
    }

    /// `PUT /groups/{id}`: `removeMembers` may name any contact (a non-member is
    /// ignored), `addMembers` only live ones (a member is ignored); an id in both is
    /// refused.
    pub(crate) fn update_group(
        &mut self,
        id: &str,
        update: GroupUpdate,
    ) -> Result<Group, ApiError> {
        let i = self.group_index(id)?;
        self.check_members("addMembers", &update.add_members)?;
        for member in &update.remove_members {
            self.contact_index(member).map_err(|_| {
                ApiError::invalid_parameter(format!(
                    "Parameter 'removeMembers': contact '{member}' does not exist"
                ))
            })?;
            if update.add_members.contains(member) {
                return Err(ApiError::invalid_parameter(format!(
                    "Contact '{member}' is in both addMembers and removeMembers"
                )));
            }
        }
        let metadata = match &update.metadata {
            Some(changes) => Some(apply_metadata(&self.groups[i].metadata, changes)?),
            None => None,
        };
        let group = &mut self.groups[i];
        if let Some(title) = update.title {
            group.title = title;
        }
        group
            .member_ids
            .retain(|member| !update.remove_members.contains(member));
        for member in update.add_members {
            if !group.member_ids.contains(&member) {
                group.member_ids.push(member);
            }
        }
        if let Some(metadata) = metadata {
            group.metadata = metadata;
        }
        Ok(group.clone())
    }

    /// Hard deletion.
    pub(crate) fn delete_group(&mut self, id: &str) -> Result<(), ApiError> {
        let i = self.group_index(id)?;
        self.groups.remove(i);
        Ok(())
    }
}

/// The state and, for a file database, where it is saved.
#[derive(Debug)]
pub(crate) struct Store {
    state: Mutex<State>,
    file: Option<PathBuf>,
}

impl Store {
    pub(crate) fn open(database: &Database) -> Result<Store, WrikeError> {
        let (state, file) = match database {
            Database::Memory => (State::default(), None),
            Database::File(path) => (load(path)?, Some(path.clone())),
        };
        Ok(Store {
            state: Mutex::new(state),
            file,
        })
    }

    /// Runs a read-only operation.
    pub(crate) fn read<T>(&self, operation: impl FnOnce(&State) -> T) -> Result<T, ApiError> {
        let state = self
            .state
            .lock()
            .map_err(|_| ApiError::server_error("store lock poisoned"))?;
        Ok(operation(&state))
    }

    /// Runs a write: kept only if it succeeds (and, for a file, is saved).
    pub(crate) fn write<T>(
        &self,
        operation: impl FnOnce(&mut State) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| ApiError::server_error("store lock poisoned"))?;
        match &self.file {
            None => operation(&mut state),
            Some(path) => {
                let mut next = state.clone();
                let result = operation(&mut next)?;
                save(path, &next).map_err(|err| {
                    ApiError::server_error(format!("cannot save {}: {err}", path.display()))
                })?;
                *state = next;
                Ok(result)
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn poison_for_test(&self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = self.state.lock();
            panic!("poisoning the store for a test");
        }));
    }
}

fn load(path: &Path) -> Result<State, WrikeError> {
    let open_error = |source: std::io::Error| WrikeError::Open {
        path: path.to_path_buf(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let state = State {
                version: FORMAT_VERSION,
                ..State::default()
            };
            save(path, &state).map_err(open_error)?;
            return Ok(state);
        }
        Err(err) => return Err(open_error(err)),
    };
    let mut state: State = serde_json::from_str(&text).map_err(|source| WrikeError::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    state.reindex();
    if state.version > FORMAT_VERSION {
        return Err(WrikeError::FormatVersion {
            found: state.version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(state)
}

/// Writes the state next to `path` and renames it over, so a crash leaves the old
/// file or the new one, never half of one.
fn save(path: &Path, state: &State) -> std::io::Result<()> {
    let mut state_text = serde_json::to_vec(&State {
        version: FORMAT_VERSION,
        ..state.clone()
    })
    .map_err(std::io::Error::other)?;
    state_text.push(b'\n');
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    std::fs::write(&temp, state_text)?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrike::error::ErrorCode;

    fn invite(state: &mut State, email: &str) -> Invitation {
        state
            .invite(NewInvitation {
                email: email.into(),
                first_name: Some("First".into()),
                last_name: None,
                user_type: UserType::Regular,
            })
            .unwrap()
    }

    #[test]
    fn emails_are_unique_ignoring_case_and_a_deleted_holder_is_restored() {
        let mut state = State::default();
        let first = invite(&mut state, "a@example.com");
        let err = state
            .invite(NewInvitation {
                email: "A@Example.com".into(),
                first_name: None,
                last_name: None,
                user_type: UserType::Viewer,
            })
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameter);
        state
            .update_contact(
                &first.user_id,
                ContactUpdate {
                    title: Some(Some("Old title".into())),
                    ..ContactUpdate::default()
                },
            )
            .unwrap();
        state.delete_user(&first.user_id).unwrap();
        let again = invite(&mut state, "A@example.com");
        assert_eq!(again.user_id, first.user_id, "the same contact comes back");
        assert_ne!(again.id, first.id);
        let contact = &state
            .contacts(std::slice::from_ref(&first.user_id))
            .unwrap()[0];
        assert!(!contact.deleted && contact.active);
        assert_eq!(contact.title, None, "restored as a fresh user");
        assert_eq!(contact.email, "A@example.com");
        assert_eq!(state.list_contacts(false).len(), 1);
    }

    #[test]
    fn failed_group_updates_change_nothing() {
        let mut state = State::default();
        let member = invite(&mut state, "m@example.com").user_id;
        let group = state
            .create_group("Team".into(), vec![member.clone()], Vec::new())
            .unwrap();
        let err = state
            .update_group(
                &group.id,
                GroupUpdate {
                    title: Some("Renamed".into()),
                    add_members: vec!["KUAAAA77".into()],
                    ..GroupUpdate::default()
                },
            )
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameter);
        assert_eq!(state.group(&group.id).unwrap(), group);
    }

    #[test]
    fn deleted_users_leave_their_groups() {
        let mut state = State::default();
        let member = invite(&mut state, "m@example.com").user_id;
        let group = state
            .create_group("Team".into(), vec![member.clone()], Vec::new())
            .unwrap();
        state.delete_user(&member).unwrap();
        assert!(state.group(&group.id).unwrap().member_ids.is_empty());
        state
            .update_user(
                &member,
                UserUpdate {
                    deleted: Some(false),
                    ..UserUpdate::default()
                },
            )
            .unwrap();
        assert!(
            state.group(&group.id).unwrap().member_ids.is_empty(),
            "a restore does not bring memberships back"
        );
    }

    #[test]
    fn a_file_store_persists_and_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wrike.json");
        let database = Database::File(path.clone());
        let store = Store::open(&database).unwrap();
        let user = store
            .write(|state| {
                state.invite(NewInvitation {
                    email: "kept@example.com".into(),
                    first_name: None,
                    last_name: None,
                    user_type: UserType::Contributor,
                })
            })
            .unwrap()
            .user_id;
        drop(store);
        let reopened = Store::open(&database).unwrap();
        let contacts = reopened
            .read(|state| state.contacts(std::slice::from_ref(&user)))
            .unwrap()
            .unwrap();
        assert_eq!(contacts[0].user_type, UserType::Contributor);
        let next = reopened
            .write(|state| state.create_group("After reopen".into(), Vec::new(), Vec::new()))
            .unwrap();
        assert_ne!(next.id, user, "the id sequence survives reopen");

        std::fs::write(
            &path,
            r#"{"version": 99, "next_seq": 0, "contacts": [], "groups": [], "invitations": []}"#,
        )
        .unwrap();
        assert!(matches!(
            Store::open(&database),
            Err(WrikeError::FormatVersion {
                found: 99,
                supported: 1
            })
        ));
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(
            Store::open(&database),
            Err(WrikeError::Corrupt { .. })
        ));
    }
}
