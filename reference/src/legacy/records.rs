//! The legacy API's records: users, teams and memberships as stored and answered,
//! and the partial writes (`UserPatch`, `TeamPatch`) that handlers build from request
//! bodies and the store applies inside its transactions.
//!
//! Field order in the `Serialize` derives is the wire order.

use serde::Serialize;

/// What a user may do in the customer's product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Member,
    External,
    Collaborator,
    Contributor,
    Viewer,
}

impl Role {
    pub(crate) const NAMES: &[&str] = &[
        "member",
        "external",
        "collaborator",
        "contributor",
        "viewer",
    ];

    pub(crate) fn parse(text: &str) -> Option<Role> {
        Some(match text {
            "member" => Role::Member,
            "external" => Role::External,
            "collaborator" => Role::Collaborator,
            "contributor" => Role::Contributor,
            "viewer" => Role::Viewer,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::External => "external",
            Role::Collaborator => "collaborator",
            Role::Contributor => "contributor",
            Role::Viewer => "viewer",
        }
    }
}

/// Whether a user can sign in; `archived` is the customer's soft delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Enabled,
    Disabled,
    Archived,
}

impl Status {
    pub(crate) const NAMES: &[&str] = &["enabled", "disabled", "archived"];

    pub(crate) fn parse(text: &str) -> Option<Status> {
        Some(match text {
            "enabled" => Status::Enabled,
            "disabled" => Status::Disabled,
            "archived" => Status::Archived,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Enabled => "enabled",
            Status::Disabled => "disabled",
            Status::Archived => "archived",
        }
    }
}

/// The stored, client-controlled part of a user (everything but id, times and version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct UserFields {
    pub(crate) login: String,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) display_name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) job_title: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) org: Option<String>,
    pub(crate) dept: Option<String>,
    pub(crate) employee_no: Option<String>,
    pub(crate) manager_id: Option<i64>,
    pub(crate) external_ref: Option<String>,
    pub(crate) role: Role,
    pub(crate) status: Status,
    /// The password itself is never stored: there is no hashing crate in this build,
    /// and a reference API has no use for it beyond "was one set".
    pub(crate) has_password: bool,
}

impl UserFields {
    /// A user with only a login: every nullable field null, defaults elsewhere.
    pub(crate) fn new(login: String) -> UserFields {
        UserFields {
            login,
            first_name: None,
            last_name: None,
            display_name: None,
            email: None,
            job_title: None,
            phone: None,
            org: None,
            dept: None,
            employee_no: None,
            manager_id: None,
            external_ref: None,
            role: Role::Member,
            status: Status::Enabled,
            has_password: false,
        }
    }
}

/// A user as stored and as answered on the wire (field order is the wire order).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct User {
    pub(crate) id: i64,
    #[serde(flatten)]
    pub(crate) fields: UserFields,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) version: i64,
}

/// A password write: a new password always counts as a change (it cannot be compared).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PasswordChange {
    Set,
    Clear,
}

/// How an update treats the fields it does not mention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UpdateMode {
    /// PATCH: untouched fields keep their values.
    Merge,
    /// PUT: untouched fields become null or their default (the password excepted).
    Replace,
}

/// The fields of a write, each `None` when the body did not mention it.
/// For nullable fields the inner `Option` is the new value, `None` meaning null.
#[derive(Clone, Debug, Default)]
pub(crate) struct UserPatch {
    pub(crate) login: Option<String>,
    pub(crate) first_name: Option<Option<String>>,
    pub(crate) last_name: Option<Option<String>>,
    pub(crate) display_name: Option<Option<String>>,
    pub(crate) email: Option<Option<String>>,
    pub(crate) job_title: Option<Option<String>>,
    pub(crate) phone: Option<Option<String>>,
    pub(crate) org: Option<Option<String>>,
    pub(crate) dept: Option<Option<String>>,
    pub(crate) employee_no: Option<Option<String>>,
    pub(crate) manager_id: Option<Option<i64>>,
    pub(crate) external_ref: Option<Option<String>>,
    pub(crate) role: Option<Role>,
    pub(crate) status: Option<Status>,
    pub(crate) password: Option<PasswordChange>,
}

impl UserPatch {
    /// The fields after this write. A PUT keeps the password: it is write-only, so a
    /// client replacing a user it has just read could never send it back.
    pub(crate) fn apply(self, current: &UserFields, mode: UpdateMode) -> UserFields {
        let base = match mode {
            UpdateMode::Merge => current.clone(),
            UpdateMode::Replace => UserFields {
                has_password: current.has_password,
                ..UserFields::new(current.login.clone())
            },
        };
        UserFields {
            login: self.login.unwrap_or(base.login),
            first_name: self.first_name.unwrap_or(base.first_name),
            last_name: self.last_name.unwrap_or(base.last_name),
            display_name: self.display_name.unwrap_or(base.display_name),
            email: self.email.unwrap_or(base.email),
            job_title: self.job_title.unwrap_or(base.job_title),
            phone: self.phone.unwrap_or(base.phone),
            org: self.org.unwrap_or(base.org),
            dept: self.dept.unwrap_or(base.dept),
            employee_no: self.employee_no.unwrap_or(base.employee_no),
            manager_id: self.manager_id.unwrap_or(base.manager_id),
            external_ref: self.external_ref.unwrap_or(base.external_ref),
            role: self.role.unwrap_or(base.role),
            status: self.status.unwrap_or(base.status),
            has_password: match self.password {
                Some(PasswordChange::Set) => true,
                Some(PasswordChange::Clear) => false,
                None => base.has_password,
            },
        }
    }
}

/// Filters of the user list; all present ones must match.
#[derive(Clone, Debug, Default)]
pub(crate) struct UserFilter {
    pub(crate) login: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) external_ref: Option<String>,
    /// Allow-list of statuses; empty means any.
    pub(crate) statuses: Vec<Status>,
}

/// The stored, client-controlled part of a team (everything but id, times and version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct TeamFields {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    /// The identity provider's id for the group (Entra ID's objectId, sent as SCIM
    /// `externalId`). Not unique: the API only stores and searches it.
    pub(crate) external_ref: Option<String>,
}

/// A team as stored and as answered on the wire (field order is the wire order).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Team {
    pub(crate) id: i64,
    #[serde(flatten)]
    pub(crate) fields: TeamFields,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) version: i64,
}

/// The fields of a team write, `None` when not mentioned.
/// For nullable fields the inner `Option` is the new value, `None` meaning null.
#[derive(Clone, Debug, Default)]
pub(crate) struct TeamPatch {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<Option<String>>,
    pub(crate) external_ref: Option<Option<String>>,
}

impl TeamPatch {
    /// The fields after this write; untouched fields keep their values.
    pub(crate) fn apply(self, current: &TeamFields) -> TeamFields {
        TeamFields {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            description: self
                .description
                .unwrap_or_else(|| current.description.clone()),
            external_ref: self
                .external_ref
                .unwrap_or_else(|| current.external_ref.clone()),
        }
    }
}

/// Filters of the team list; all present ones must match.
#[derive(Clone, Debug, Default)]
pub(crate) struct TeamFilter {
    /// Exact, case-insensitive.
    pub(crate) name: Option<String>,
    /// Exact, case-sensitive.
    pub(crate) external_ref: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Member {
    pub(crate) user_id: i64,
    pub(crate) login: String,
    pub(crate) added_at: String,
}

/// Whether adding a member created the membership or found it already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Added {
    New,
    Existing,
}
