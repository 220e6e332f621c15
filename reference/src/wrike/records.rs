//! The data model — contacts (users), groups, invitations, user types, metadata — the
//! validation of what clients send for it, and its rendering as Wrike's JSON records.
//!
//! Stored records are plain structs; the wire shape is built by `render` so that one
//! stored field (a contact's user type) can appear as several wire fields (`role`,
//! `external`, `userTypeId` of the account profile), and optional fields (`metadata`)
//! appear only when the request's `fields` asks for them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// Longest accepted name, title, phone, company name or location.
pub(crate) const MAX_TEXT: usize = 255;
/// Most metadata entries one record holds (and one request may send).
pub(crate) const MAX_METADATA: usize = 100;
pub(crate) const MAX_METADATA_KEY: usize = 50;
pub(crate) const MAX_METADATA_VALUE: usize = 1000;
/// Most ids one `GET /contacts/{ids}` may name.
pub(crate) const MAX_IDS: usize = 100;

/// The optional field of contacts and groups that `fields=["metadata"]` adds.
pub(crate) const METADATA_FIELD: &str = "metadata";

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A Wrike-looking id: a two-letter entity prefix and six base32 digits of `seq`
/// (`KU` + 0 = `KUAAAAAA`, `KU` + 1 = `KUAAAAAB`).
pub(crate) fn wrike_id(prefix: &str, seq: u64) -> String {
    let mut digits = [b'A'; 6];
    let mut rest = seq;
    for digit in digits.iter_mut().rev() {
        *digit = BASE32[(rest % 32) as usize];
        rest /= 32;
    }
    format!("{prefix}{}", String::from_utf8_lossy(&digits))
}

/// Prefix of contact (user) and group ids: Wrike groups are contacts too.
pub(crate) const CONTACT_PREFIX: &str = "KU";
/// Prefix of invitation ids.
pub(crate) const INVITATION_PREFIX: &str = "KV";

/// The legacy `role` of an account profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    User,
    Collaborator,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::User => "User",
            Role::Collaborator => "Collaborator",
        }
    }

    pub(crate) fn parse(text: &str, name: &str) -> Result<Role, ApiError> {
        match text {
            "User" => Ok(Role::User),
            "Collaborator" => Ok(Role::Collaborator),
            other => Err(ApiError::invalid_parameter(format!(
                "Parameter '{name}' must be User or Collaborator, not '{other}'"
            ))),
        }
    }
}

/// The five default Wrike user types (licences). `userTypeId` names one exactly; the
/// deprecated `role` + `external` pair can express only Regular, External and
/// Collaborator, and shows Contributor and Viewer (limited licences) as
/// `role: "Collaborator"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum UserType {
    Regular,
    External,
    Contributor,
    Collaborator,
    Viewer,
}

impl UserType {
    pub(crate) const ALL: [UserType; 5] = [
        UserType::Regular,
        UserType::External,
        UserType::Contributor,
        UserType::Collaborator,
        UserType::Viewer,
    ];

    pub(crate) fn id(self) -> &'static str {
        match self {
            UserType::Regular => "KTAAAAAA",
            UserType::External => "KTAAAAAB",
            UserType::Contributor => "KTAAAAAC",
            UserType::Collaborator => "KTAAAAAD",
            UserType::Viewer => "KTAAAAAE",
        }
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            UserType::Regular => "Regular User",
            UserType::External => "External User",
            UserType::Contributor => "Contributor",
            UserType::Collaborator => "Collaborator",
            UserType::Viewer => "Viewer",
        }
    }

    pub(crate) fn role(self) -> Role {
        match self {
            UserType::Regular | UserType::External => Role::User,
            UserType::Contributor | UserType::Collaborator | UserType::Viewer => Role::Collaborator,
        }
    }

    pub(crate) fn external(self) -> bool {
        self == UserType::External
    }

    /// The type a `role` + `external` pair means (`external` is ignored for
    /// collaborators).
    pub(crate) fn from_role(role: Role, external: bool) -> UserType {
        match (role, external) {
            (Role::User, false) => UserType::Regular,
            (Role::User, true) => UserType::External,
            (Role::Collaborator, _) => UserType::Collaborator,
        }
    }

    pub(crate) fn parse_id(id: &str) -> Result<UserType, ApiError> {
        UserType::ALL
            .into_iter()
            .find(|t| t.id() == id)
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!("Parameter 'userTypeId': no user type '{id}'"))
            })
    }

    pub(crate) fn render(self) -> Value {
        json!({
            "id": self.id(),
            "title": self.title(),
            "role": self.role().as_str(),
            "external": self.external(),
            "isDefault": self == UserType::Regular,
        })
    }
}

/// One `{"key", "value"}` metadata entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Metadata {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// One entry of a `metadata` parameter: set `key` to `value`, or remove it (`null`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MetadataChange {
    pub(crate) key: String,
    pub(crate) value: Option<String>,
}

/// Reads a `metadata` parameter: a JSON array of at most 100 `{"key": string,
/// "value": string | null}` objects, each key once.
pub(crate) fn parse_metadata(value: Value) -> Result<Vec<MetadataChange>, ApiError> {
    let invalid = |why: String| ApiError::invalid_parameter(format!("Parameter 'metadata': {why}"));
    let Value::Array(entries) = value else {
        return Err(invalid(
            "must be a JSON array of {\"key\", \"value\"} objects".into(),
        ));
    };
    if entries.len() > MAX_METADATA {
        return Err(invalid(format!("at most {MAX_METADATA} entries")));
    }
    let mut changes: Vec<MetadataChange> = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Object(mut object) = entry else {
            return Err(invalid("each entry must be an object".into()));
        };
        let key = match object.remove("key") {
            Some(Value::String(key)) if !key.is_empty() => key,
            _ => return Err(invalid("each entry needs a non-empty string 'key'".into())),
        };
        if key.chars().count() > MAX_METADATA_KEY {
            return Err(invalid(format!(
                "key '{key}' is longer than {MAX_METADATA_KEY}"
            )));
        }
        let value = match object.remove("value") {
            Some(Value::String(value)) => Some(value),
            Some(Value::Null) => None,
            _ => {
                return Err(invalid(format!(
                    "entry '{key}' needs a 'value' that is a string or null"
                )));
            }
        };
        if let Some(extra) = object.keys().next() {
            return Err(invalid(format!(
                "unknown member '{extra}' in entry '{key}'"
            )));
        }
        if value
            .as_ref()
            .is_some_and(|v| v.chars().count() > MAX_METADATA_VALUE)
        {
            return Err(invalid(format!(
                "value of '{key}' is longer than {MAX_METADATA_VALUE}"
            )));
        }
        if changes.iter().any(|c| c.key == key) {
            return Err(invalid(format!("key '{key}' appears twice")));
        }
        changes.push(MetadataChange { key, value });
    }
    Ok(changes)
}

/// `existing` with `changes` applied: a string value replaces the entry of its key (in
/// place) or is appended; `null` removes the key. Refused when more than 100 remain.
pub(crate) fn apply_metadata(
    existing: &[Metadata],
    changes: &[MetadataChange],
) -> Result<Vec<Metadata>, ApiError> {
    let mut merged = existing.to_vec();
    for change in changes {
        let at = merged.iter().position(|m| m.key == change.key);
        match (&change.value, at) {
            (Some(value), Some(i)) => merged[i].value = value.clone(),
            (Some(value), None) => merged.push(Metadata {
                key: change.key.clone(),
                value: value.clone(),
            }),
            (None, Some(i)) => {
                merged.remove(i);
            }
            (None, None) => {}
        }
    }
    if merged.len() > MAX_METADATA {
        return Err(ApiError::invalid_parameter(format!(
            "Parameter 'metadata': a record holds at most {MAX_METADATA} entries"
        )));
    }
    Ok(merged)
}

fn render_metadata(metadata: &[Metadata]) -> Value {
    Value::Array(
        metadata
            .iter()
            .map(|m| json!({"key": m.key, "value": m.value}))
            .collect(),
    )
}

/// A text parameter: at most 255 characters, no control characters.
pub(crate) fn check_text(name: &str, text: &str) -> Result<(), ApiError> {
    if text.chars().count() > MAX_TEXT {
        return Err(ApiError::invalid_parameter(format!(
            "Parameter '{name}' is longer than {MAX_TEXT} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::invalid_parameter(format!(
            "Parameter '{name}' contains control characters"
        )));
    }
    Ok(())
}

/// An email address as Wrike takes it: `local@domain.tld`, no spaces, at most 254.
pub(crate) fn check_email(email: &str) -> Result<(), ApiError> {
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "Parameter 'email': '{email}' is not a valid email address"
        )))
    }
}

/// A contact of type `Person`: a user of the one account, with one profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Contact {
    pub(crate) id: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) email: String,
    pub(crate) user_type: UserType,
    /// False once deactivated (`PUT /users/{id}` `active=false`); the user keeps
    /// its record, its email and its groups.
    pub(crate) active: bool,
    /// True once deleted (`DELETE /users/{id}`); undone by `deleted=false`.
    pub(crate) deleted: bool,
    pub(crate) title: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) company_name: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) metadata: Vec<Metadata>,
}

impl Contact {
    /// The wire record; `metadata` only when asked for.
    pub(crate) fn render(&self, account_id: &str, with_metadata: bool) -> Value {
        let mut record = Map::new();
        record.insert("id".into(), json!(self.id));
        record.insert("firstName".into(), json!(self.first_name));
        record.insert("lastName".into(), json!(self.last_name));
        record.insert("type".into(), json!("Person"));
        record.insert(
            "profiles".into(),
            json!([{
                "accountId": account_id,
                "email": self.email,
                "role": self.user_type.role().as_str(),
                "external": self.user_type.external(),
                "admin": false,
                "owner": false,
                "active": self.active,
                "userTypeId": self.user_type.id(),
            }]),
        );
        record.insert(
            "avatarUrl".into(),
            json!(format!("https://www.wrike.com/avatars/{}.png", self.id)),
        );
        record.insert("timezone".into(), json!("UTC"));
        record.insert("locale".into(), json!("en"));
        record.insert("deleted".into(), json!(self.deleted));
        record.insert("me".into(), json!(false));
        // Unset text fields are answered as "" (as the stub the mapping
        // language was first tried against did), so a mapping must say
        // that "" means no value.
        for (name, value) in [
            ("title", &self.title),
            ("companyName", &self.company_name),
            ("phone", &self.phone),
            ("location", &self.location),
        ] {
            record.insert(name.into(), json!(value.as_deref().unwrap_or_default()));
        }
        record.insert("primaryEmail".into(), json!(self.email));
        if with_metadata {
            record.insert("metadata".into(), render_metadata(&self.metadata));
        }
        Value::Object(record)
    }
}

/// A user group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) title: String,
    /// Contact ids, in the order they were added.
    pub(crate) member_ids: Vec<String>,
    pub(crate) metadata: Vec<Metadata>,
}

impl Group {
    pub(crate) fn render(&self, account_id: &str, with_metadata: bool) -> Value {
        let letters: String = self
            .title
            .split_whitespace()
            .filter_map(|word| word.chars().next())
            .flat_map(char::to_uppercase)
            .take(2)
            .collect();
        let mut record = Map::new();
        record.insert("id".into(), json!(self.id));
        record.insert("accountId".into(), json!(account_id));
        record.insert("title".into(), json!(self.title));
        record.insert("memberIds".into(), json!(self.member_ids));
        record.insert("childIds".into(), json!([]));
        record.insert("parentIds".into(), json!([]));
        record.insert(
            "avatar".into(),
            json!({"letters": letters, "color": "#607D8B"}),
        );
        record.insert("myTeam".into(), json!(false));
        if with_metadata {
            record.insert("metadata".into(), render_metadata(&self.metadata));
        }
        Value::Object(record)
    }
}

/// An invitation: how users are created. It stays `Pending` (nobody accepts here);
/// its contact exists from the moment it is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Invitation {
    pub(crate) id: String,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) email: String,
    pub(crate) user_type: UserType,
    /// `yyyy-MM-ddTHH:mm:ssZ`.
    pub(crate) invitation_date: String,
    /// The contact the invitation created (or restored).
    pub(crate) user_id: String,
}

impl Invitation {
    pub(crate) fn render(&self, account_id: &str) -> Value {
        let mut record = Map::new();
        record.insert("id".into(), json!(self.id));
        record.insert("accountId".into(), json!(account_id));
        if let Some(first_name) = &self.first_name {
            record.insert("firstName".into(), json!(first_name));
        }
        if let Some(last_name) = &self.last_name {
            record.insert("lastName".into(), json!(last_name));
        }
        record.insert("email".into(), json!(self.email));
        record.insert("status".into(), json!("Pending"));
        record.insert("invitationDate".into(), json!(self.invitation_date));
        record.insert("role".into(), json!(self.user_type.role().as_str()));
        record.insert("external".into(), json!(self.user_type.external()));
        record.insert("userTypeId".into(), json!(self.user_type.id()));
        record.insert("userId".into(), json!(self.user_id));
        Value::Object(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wrike::error::ErrorCode;

    #[test]
    fn ids_look_like_wrike_ids() {
        assert_eq!(wrike_id("KU", 0), "KUAAAAAA");
        assert_eq!(wrike_id("KU", 1), "KUAAAAAB");
        assert_eq!(wrike_id("KU", 32), "KUAAAABA");
        assert_eq!(wrike_id("KU", 31), "KUAAAAA7");
    }

    #[test]
    fn the_five_user_types_are_distinct_and_round_trip() {
        let ids: std::collections::HashSet<_> = UserType::ALL.iter().map(|t| t.id()).collect();
        assert_eq!(ids.len(), 5);
        for user_type in UserType::ALL {
            assert_eq!(UserType::parse_id(user_type.id()).unwrap(), user_type);
        }
        assert_eq!(UserType::from_role(Role::User, false), UserType::Regular);
        assert_eq!(UserType::from_role(Role::User, true), UserType::External);
        assert_eq!(
            UserType::from_role(Role::Collaborator, true),
            UserType::Collaborator
        );
        assert_eq!(UserType::Viewer.role(), Role::Collaborator);
        assert!(UserType::parse_id("KTAAAAAZ").is_err());
    }

    #[test]
    fn metadata_upserts_in_place_and_null_removes() {
        let existing = vec![
            Metadata {
                key: "department".into(),
                value: "R&D".into(),
            },
            Metadata {
                key: "costCenter".into(),
                value: "42".into(),
            },
        ];
        let changes = parse_metadata(json!([
            {"key": "department", "value": "Sales"},
            {"key": "costCenter", "value": null},
            {"key": "building", "value": "B"},
            {"key": "absent", "value": null}
        ]))
        .unwrap();
        let merged = apply_metadata(&existing, &changes).unwrap();
        assert_eq!(
            merged,
            vec![
                Metadata {
                    key: "department".into(),
                    value: "Sales".into()
                },
                Metadata {
                    key: "building".into(),
                    value: "B".into()
                },
            ]
        );
    }

    #[test]
    fn malformed_metadata_is_invalid_parameter() {
        for bad in [
            json!({"key": "a", "value": "b"}),
            json!([{"value": "b"}]),
            json!([{"key": "", "value": "b"}]),
            json!([{"key": "a"}]),
            json!([{"key": "a", "value": 1}]),
            json!([{"key": "a", "value": "b", "extra": 1}]),
            json!([{"key": "a", "value": "b"}, {"key": "a", "value": "c"}]),
            json!(["a"]),
        ] {
            let err = parse_metadata(bad.clone()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidParameter, "{bad}");
        }
        let too_many: Vec<_> = (0..=MAX_METADATA)
            .map(|i| json!({"key": format!("k{i}"), "value": "v"}))
            .collect();
        assert!(parse_metadata(Value::Array(too_many)).is_err());
    }

    #[test]
    fn emails_are_checked() {
        for good in ["a@b.co", "first.last+tag@example.com"] {
            check_email(good).unwrap();
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a@b.co.", "a b@c.de", "a@b@c.de",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn contacts_render_the_account_profile_unset_text_as_empty_and_metadata_on_request() {
        let contact = Contact {
            id: "KUAAAAAA".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@example.com".into(),
            user_type: UserType::External,
            active: true,
            deleted: false,
            title: Some("Engineer".into()),
            phone: None,
            company_name: None,
            location: None,
            metadata: vec![Metadata {
                key: "department".into(),
                value: "R&D".into(),
            }],
        };
        let plain = contact.render("IEAAAAAA", false);
        assert_eq!(
            plain["profiles"],
            json!([{
                "accountId": "IEAAAAAA", "email": "ada@example.com", "role": "User",
                "external": true, "admin": false, "owner": false, "active": true,
                "userTypeId": "KTAAAAAB"
            }])
        );
        assert_eq!(plain["title"], "Engineer");
        assert_eq!(plain["phone"], "");
        assert!(plain.get("metadata").is_none());
        let full = contact.render("IEAAAAAA", true);
        assert_eq!(
            full["metadata"],
            json!([{"key": "department", "value": "R&D"}])
        );
    }
}
