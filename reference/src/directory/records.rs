//! The directory's data model — users and groups as nested camelCase JSON — and the
//! rules a written document must follow.
//!
//! Writes go through one path for both create and update: the client's body is a JSON
//! merge patch applied to the record's *writable document* (an empty one for a
//! create), and the merged result is validated here as a whole into [`UserFields`] or
//! [`GroupFields`], collecting every bad field with its dotted path rather than
//! stopping at the first. References to other records (manager, groups) are shaped
//! here and checked for existence by the store.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::parse_uuid;
use super::problem::FieldError;

/// Longest single-line text field, in characters.
pub(crate) const MAX_TEXT: usize = 255;
/// Longest group description, in characters.
pub(crate) const MAX_DESCRIPTION: usize = 1024;
/// Most phone numbers one user may have.
pub(crate) const MAX_PHONES: usize = 20;
/// Most groups one user may be in.
pub(crate) const MAX_GROUPS: usize = 1000;

// ───────────────────────────── users ─────────────────────────────

/// What the user is to the organisation; `standard` unless said otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    #[default]
    Standard,
    Guest,
    Partner,
    Editor,
    Readonly,
}

impl Kind {
    pub(crate) const NAMES: &[&str] = &["standard", "guest", "partner", "editor", "readonly"];

    fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "standard" => Kind::Standard,
            "guest" => Kind::Guest,
            "partner" => Kind::Partner,
            "editor" => Kind::Editor,
            "readonly" => Kind::Readonly,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Profile {
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) department: Option<String>,
    pub(crate) company: Option<String>,
    pub(crate) employee_id: Option<String>,
    pub(crate) kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Phone {
    pub(crate) number: String,
    pub(crate) label: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Contact {
    pub(crate) email: Option<String>,
    pub(crate) phones: Vec<Phone>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManagerRef {
    pub(crate) id: String,
}

/// A user as the API answers with it and as the store keeps it (one JSON document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) username: String,
    pub(crate) profile: Profile,
    pub(crate) contact: Contact,
    pub(crate) manager: Option<ManagerRef>,
    pub(crate) external_key: Option<String>,
    pub(crate) suspended: bool,
    pub(crate) deleted: bool,
    pub(crate) group_ids: Vec<String>,
    pub(crate) created_at: String,
    pub(crate) modified_at: String,
    pub(crate) etag: String,
}

/// The part of a user a merge patch may change. `suspended` is not here: only the
/// `:suspend` and `:unsuspend` calls change it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserFields {
    pub(crate) username: String,
    pub(crate) profile: Profile,
    pub(crate) contact: Contact,
    pub(crate) manager: Option<ManagerRef>,
    pub(crate) external_key: Option<String>,
    pub(crate) deleted: bool,
    pub(crate) group_ids: Vec<String>,
}

/// Top-level keys a user patch may hold.
const USER_WRITABLE: &[&str] = &[
    "username",
    "profile",
    "contact",
    "manager",
    "externalKey",
    "deleted",
    "groupIds",
];
const USER_READ_ONLY: &[&str] = &["id", "createdAt", "modifiedAt", "etag"];
const PROFILE_KEYS: &[&str] = &[
    "firstName",
    "lastName",
    "title",
    "department",
    "company",
    "employeeId",
    "kind",
];

impl User {
    pub(crate) fn fields(&self) -> UserFields {
        UserFields {
            username: self.username.clone(),
            profile: self.profile.clone(),
            contact: self.contact.clone(),
            manager: self.manager.clone(),
            external_key: self.external_key.clone(),
            deleted: self.deleted,
            group_ids: self.group_ids.clone(),
        }
    }

    pub(crate) fn set_fields(&mut self, fields: UserFields) {
        let UserFields {
            username,
            profile,
            contact,
            manager,
            external_key,
            deleted,
            group_ids,
        } = fields;
        self.username = username;
        self.profile = profile;
        self.contact = contact;
        self.manager = manager;
        self.external_key = external_key;
        self.deleted = deleted;
        self.group_ids = group_ids;
    }
}

/// Whether a write creates a record or patches an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    Create,
    Patch,
}

/// The top-level keys of a user patch that no merge may carry, each named with why.
pub(crate) fn check_user_patch_keys(patch: &Map<String, Value>, write: Write) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for key in patch.keys() {
        let message = if USER_READ_ONLY.contains(&key.as_str()) {
            "is read-only".to_owned()
        } else if key == "suspended" {
            "cannot be written; use POST /v2/users/{id}:suspend or :unsuspend".to_owned()
        } else if key == "deleted" && write == Write::Create {
            "cannot be set on create; DELETE a user to mark it deleted".to_owned()
        } else if USER_WRITABLE.contains(&key.as_str()) {
            continue;
        } else {
            format!(
                "unknown field; writable fields: {}",
                USER_WRITABLE.join(", ")
            )
        };
        errors.push(FieldError::new(key.clone(), message));
    }
    errors
}

impl UserFields {
    /// The writable document a merge patch applies to: these fields as JSON, with
    /// absent values left out (in a merge patch, absent and `null` are the same).
    pub(crate) fn document(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        strip_nulls(&mut value);
        value
    }

    /// Validates a merged user document, naming every bad field.
    pub(crate) fn from_document(doc: &Value) -> Result<UserFields, Vec<FieldError>> {
        let mut check = Check::default();
        let Some(top) = check.object("", doc, USER_WRITABLE) else {
            return Err(check.finish_with("", "a user must be a JSON object"));
        };
        let username = check.required_text("username", top.get("username"));

        let mut profile = Profile::default();
        if let Some(fields) = top
            .get("profile")
            .and_then(|v| check.object("profile", v, PROFILE_KEYS))
        {
            for (key, slot) in [
                ("firstName", &mut profile.first_name),
                ("lastName", &mut profile.last_name),
                ("title", &mut profile.title),
                ("department", &mut profile.department),
                ("company", &mut profile.company),
                ("employeeId", &mut profile.employee_id),
            ] {
                *slot = check.nullable_text(&format!("profile.{key}"), fields.get(key));
            }
            if let Some(kind) = fields.get("kind").filter(|v| !v.is_null()) {
                match kind.as_str().and_then(Kind::parse) {
                    Some(kind) => profile.kind = kind,
                    None => check.error(
                        "profile.kind",
                        format!("must be one of: {}", Kind::NAMES.join(", ")),
                    ),
                }
            }
        }

        let mut contact = Contact::default();
        if let Some(fields) = top
            .get("contact")
            .and_then(|v| check.object("contact", v, &["email", "phones"]))
        {
            contact.email = check.email("contact.email", fields.get("email"));
            contact.phones = check.phones(fields.get("phones"));
        }

        let manager = top
            .get("manager")
            .and_then(|v| check.object("manager", v, &["id"]))
            .and_then(|fields| check.reference("manager.id", fields.get("id")))
            .map(|id| ManagerRef { id });

        let external_key = check.nullable_text("externalKey", top.get("externalKey"));
        let deleted = match top.get("deleted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(deleted)) => *deleted,
            Some(_) => {
                check.error("deleted", "must be true or false");
                false
            }
        };
        let group_ids = check.group_ids(top.get("groupIds"));

        check.finish(UserFields {
            username: username.unwrap_or_default(),
            profile,
            contact,
            manager,
            external_key,
            deleted,
            group_ids,
        })
    }
}

// ───────────────────────────── groups ─────────────────────────────

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) created_at: String,
    pub(crate) modified_at: String,
    pub(crate) etag: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct GroupFields {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
}

const GROUP_WRITABLE: &[&str] = &["name", "description"];
const GROUP_READ_ONLY: &[&str] = &["id", "createdAt", "modifiedAt", "etag"];

impl Group {
    pub(crate) fn fields(&self) -> GroupFields {
        GroupFields {
            name: self.name.clone(),
            description: self.description.clone(),
        }
    }
}

/// The top-level keys of a group patch that no merge may carry.
pub(crate) fn check_group_patch_keys(patch: &Map<String, Value>) -> Vec<FieldError> {
    patch
        .keys()
        .filter(|key| !GROUP_WRITABLE.contains(&key.as_str()))
        .map(|key| {
            let message = if GROUP_READ_ONLY.contains(&key.as_str()) {
                "is read-only".to_owned()
            } else if key == "members" || key == "memberIds" {
                "groups hold no members; set `groupIds` on each user instead".to_owned()
            } else {
                format!(
                    "unknown field; writable fields: {}",
                    GROUP_WRITABLE.join(", ")
                )
            };
            FieldError::new(key.clone(), message)
        })
        .collect()
}

impl GroupFields {
    pub(crate) fn document(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        strip_nulls(&mut value);
        value
    }

    pub(crate) fn from_document(doc: &Value) -> Result<GroupFields, Vec<FieldError>> {
        let mut check = Check::default();
        let Some(top) = check.object("", doc, GROUP_WRITABLE) else {
            return Err(check.finish_with("", "a group must be a JSON object"));
        };
        let name = check.required_text("name", top.get("name"));
        let description = check.text(
            "description",
            top.get("description"),
            MAX_DESCRIPTION,
            Lines::Multi,
        );
        check.finish(GroupFields {
            name: name.unwrap_or_default(),
            description,
        })
    }
}

// ─────────────────────────── validation ───────────────────────────

/// Removes every `null` member, recursively.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[derive(Clone, Copy)]
enum Lines {
    /// No control characters at all.
    Single,
    /// Line breaks and tabs allowed, other control characters not.
    Multi,
}

/// Collects field errors while a document is read.
#[derive(Default)]
struct Check {
    errors: Vec<FieldError>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl Check {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }

    fn finish_with(mut self, field: &str, message: &str) -> Vec<FieldError> {
        if self.errors.is_empty() {
            self.error(field, message);
        }
        self.errors
    }

    /// `value` as an object whose keys are all in `allowed`; `null` is `None`
    /// silently, anything else not an object is `None` with an error.
    fn object<'a>(
        &mut self,
        path: &str,
        value: &'a Value,
        allowed: &[&str],
    ) -> Option<&'a Map<String, Value>> {
        match value {
            Value::Null => None,
            Value::Object(map) => {
                for key in map.keys() {
                    if !allowed.contains(&key.as_str()) {
                        self.error(
                            join(path, key),
                            format!("unknown field; allowed here: {}", allowed.join(", ")),
                        );
                    }
                }
                Some(map)
            }
            _ => {
                self.error(path, "must be an object or null");
                None
            }
        }
    }

    /// A nullable single-line text field of at most [`MAX_TEXT`] characters.
    fn nullable_text(&mut self, path: &str, value: Option<&Value>) -> Option<String> {
        self.text(path, value, MAX_TEXT, Lines::Single)
    }

    fn text(
        &mut self,
        path: &str,
        value: Option<&Value>,
        max: usize,
        lines: Lines,
    ) -> Option<String> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                let bad = |c: char| match lines {
                    Lines::Single => c.is_control(),
                    Lines::Multi => c.is_control() && !matches!(c, '\n' | '\r' | '\t'),
                };
                if text.chars().count() > max {
                    self.error(path, format!("must be at most {max} characters"));
                    None
                } else if text.chars().any(bad) {
                    self.error(path, "must not contain control characters");
                    None
                } else {
                    Some(text.clone())
                }
            }
            Some(_) => {
                self.error(path, "must be a string or null");
                None
            }
        }
    }

    /// A required single-line text field that is not blank.
    fn required_text(&mut self, path: &str, value: Option<&Value>) -> Option<String> {
        if matches!(value, None | Some(Value::Null)) {
            self.error(path, "is required");
            return None;
        }
        let text = self.nullable_text(path, value)?;
        if text.trim().is_empty() {
            self.error(path, "must not be blank");
            return None;
        }
        Some(text)
    }

    /// `null` or an address with exactly one `@`, something each side, no whitespace.
    fn email(&mut self, path: &str, value: Option<&Value>) -> Option<String> {
        let address = self.nullable_text(path, value)?;
        let well_formed = match address.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !address.chars().any(char::is_whitespace)
            }
            None => false,
        };
        if well_formed {
            Some(address)
        } else {
            self.error(path, "must be an address with exactly one `@`, or null");
            None
        }
    }

    /// `contact.phones`: `null` (none) or an array of `{"number", "label"}`.
    fn phones(&mut self, value: Option<&Value>) -> Vec<Phone> {
        let items = match value {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_PHONES => items,
            Some(_) => {
                self.error(
                    "contact.phones",
                    format!("must be an array of at most {MAX_PHONES} phones, or null"),
                );
                return Vec::new();
            }
        };
        let mut phones = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let path = format!("contact.phones[{index}]");
            if item.is_null() {
                self.error(&path, "must be an object");
                continue;
            }
            let Some(fields) = self.object(&path, item, &["number", "label"]) else {
                continue;
            };
            let number = self.required_text(&join(&path, "number"), fields.get("number"));
            let label = self.nullable_text(&join(&path, "label"), fields.get("label"));
            if let Some(number) = number {
                phones.push(Phone { number, label });
            }
        }
        phones
    }

    /// A required id of another record: a UUID string, lowercased.
    fn reference(&mut self, path: &str, value: Option<&Value>) -> Option<String> {
        match value.and_then(Value::as_str).and_then(parse_uuid) {
            Some(id) => Some(id),
            None => {
                self.error(path, "must be a UUID string");
                None
            }
        }
    }

    /// `groupIds`: `null` (none) or an array of UUID strings; repeats are dropped.
    fn group_ids(&mut self, value: Option<&Value>) -> Vec<String> {
        let items = match value {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_GROUPS => items,
            Some(_) => {
                self.error(
                    "groupIds",
                    format!("must be an array of at most {MAX_GROUPS} group ids, or null"),
                );
                return Vec::new();
            }
        };
        let mut ids: Vec<String> = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if let Some(id) = self.reference(&format!("groupIds[{index}]"), Some(item))
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields_of(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_minimal_user_document_gets_defaults() {
        let fields = UserFields::from_document(&json!({"username": "ada"})).unwrap();
        assert_eq!(fields.username, "ada");
        assert_eq!(fields.profile.kind, Kind::Standard);
        assert_eq!(fields.contact, Contact::default());
        assert!(!fields.deleted);
        assert!(fields.group_ids.is_empty());
    }

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let errors = UserFields::from_document(&json!({
            "username": "  ",
            "profile": {"kind": "admin", "nickname": "x", "title": 3},
            "contact": {"email": "nope", "phones": [{"label": "work"}, 7, null]},
            "manager": {"id": "42"},
            "groupIds": ["not-a-uuid"],
            "deleted": "yes"
        }))
        .unwrap_err();
        assert_eq!(
            fields_of(errors),
            [
                "username",
                "profile.nickname",
                "profile.title",
                "profile.kind",
                "contact.email",
                "contact.phones[0].number",
                "contact.phones[1]",
                "contact.phones[2]",
                "manager.id",
                "deleted",
                "groupIds[0]",
            ]
        );
    }

    #[test]
    fn group_ids_are_lowercased_and_deduplicated() {
        let id = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b";
        let fields = UserFields::from_document(
            &json!({"username": "a", "groupIds": [id, id.to_uppercase(), id]}),
        )
        .unwrap();
        assert_eq!(fields.group_ids, [id]);
    }

    #[test]
    fn the_writable_document_leaves_out_nulls() {
        let fields = UserFields::from_document(&json!({"username": "a"})).unwrap();
        assert_eq!(
            fields.document(),
            json!({
                "username": "a",
                "profile": {"kind": "standard"},
                "contact": {"phones": []},
                "deleted": false,
                "groupIds": []
            })
        );
    }

    #[test]
    fn patch_keys_name_read_only_and_dedicated_fields() {
        let patch =
            json!({"id": 1, "suspended": true, "deleted": true, "nick": 1, "username": "a"});
        let Value::Object(map) = patch else {
            unreachable!()
        };
        let errors = check_user_patch_keys(&map, Write::Create);
        assert_eq!(fields_of(errors), ["id", "suspended", "deleted", "nick"]);
        let errors = check_user_patch_keys(&map, Write::Patch);
        assert_eq!(fields_of(errors), ["id", "suspended", "nick"]);
    }

    #[test]
    fn groups_need_a_name_and_allow_multi_line_descriptions() {
        let group =
            GroupFields::from_document(&json!({"name": "ops", "description": "a\nb"})).unwrap();
        assert_eq!(group.description.as_deref(), Some("a\nb"));
        let errors = GroupFields::from_document(&json!({"description": "x"})).unwrap_err();
        assert_eq!(fields_of(errors), ["name"]);
    }
}
