//! The upstream mapping file exactly as an operator writes it (TOML).
//!
//! These structs only describe shape: unknown keys are refused and enum
//! values are checked by serde, so toml reports them at `line:col` with the
//! accepted values. Cross-references (SCIM paths, placeholders, secret names)
//! are checked when [`super::load`] compiles this into the runtime model.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    pub upstream: UpstreamSection,
    #[serde(default)]
    pub errors: ErrorsSection,
    pub users: ResourceSection,
    pub groups: Option<ResourceSection>,
    /// Example SCIM requests and the upstream calls they must make, run by
    /// `scimgate check`.
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

/// One test a mapping carries: a SCIM request (on a connection with the
/// generic dialect, approving example.com), optionally the upstream record
/// reads answer with, and what must come of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    pub name: Spanned<String>,
    pub request: TestCallSpec,
    /// The upstream record every read answers with (default: just its id).
    pub record: Option<toml::Value>,
    /// The upstream calls, in order, each `{ method, path, body }`; `path`
    /// includes the query, if any; a call's `body` is compared whole when given.
    pub calls: Option<Vec<TestCallSpec>>,
    /// The SCIM answer's status.
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCallSpec {
    pub method: MethodSpec,
    pub path: String,
    pub body: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    pub name: Spanned<String>,
    pub base_url: Spanned<String>,
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub auth: AuthSection,
    /// Upstream values that mean "no value" in every field (e.g. `""`):
    /// read as absent, and the first is what clearing a field writes.
    /// An attribute's own `absent` replaces this list for its field.
    pub absent: Option<Spanned<Vec<toml::Value>>>,
}

/// How the gateway authenticates to the upstream. `secret` names an entry of
/// the gateway config's `[upstreams.<name>.secrets]`, never the secret itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    #[serde(default)]
    pub style: AuthStyle,
    /// `header` style: the header carrying the secret.
    pub header: Option<Spanned<String>>,
    /// `header` style: text before the secret (e.g. "Token ").
    #[serde(default)]
    pub prefix: String,
    /// `basic` style: the user name.
    pub username: Option<Spanned<String>>,
    pub secret: Option<Spanned<String>>,
    /// `oauth2_client_credentials` style: the token endpoint, the client id,
    /// an optional scope, and how the credentials are sent.
    pub token_url: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    pub scope: Option<String>,
    #[serde(default)]
    pub credentials: CredentialsIn,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialsIn {
    /// HTTP Basic, as RFC 6749 §2.3.1 prefers.
    #[default]
    Basic,
    /// `client_id`/`client_secret` form fields.
    Body,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStyle {
    #[default]
    None,
    Header,
    Bearer,
    Basic,
    Oauth2ClientCredentials,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsSection {
    /// JSON pointer to the machine-readable error code in the upstream's body.
    pub code_pointer: Option<Spanned<String>>,
    /// JSON pointer to the human-readable message in the upstream's body.
    pub message_pointer: Option<Spanned<String>>,
    #[serde(default)]
    pub rules: Vec<ErrorRuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRuleSpec {
    /// The upstream HTTP status this rule matches.
    pub status: u16,
    /// Optionally also the upstream's error code (at `code_pointer`).
    pub code: Option<String>,
    /// Optionally also text the upstream's message (at `message_pointer`)
    /// contains, case-insensitive: for APIs that tell a duplicate from other
    /// refusals only in words ("already exists").
    pub message_contains: Option<Spanned<String>>,
    pub scim_status: Spanned<u16>,
    pub scim_type: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSection {
    pub id: IdSpec,
    #[serde(default)]
    pub meta: MetaSpec,
    pub list: CallSpec,
    pub get: CallSpec,
    pub create: CallSpec,
    pub update: CallSpec,
    /// More update calls, each with the `fields` it carries, for upstreams
    /// that change one record through several endpoints.
    #[serde(default)]
    pub update_also: Vec<CallSpec>,
    pub delete: DeleteSpec,
    /// SCIM attribute path → upstream query parameter, for `eq` push-down.
    #[serde(default)]
    pub filters: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub attributes: Vec<AttributeSpec>,
    pub members: Option<MembersSpec>,
    /// `[users]` only: who keeps userNames unique (default: the gateway).
    pub unique_user_names: Option<Spanned<UniqueBy>>,
    /// The header in which the update call sends the version it was read
    /// at, for an upstream that refuses (412) a write to a newer one.
    pub update_precondition: Option<Spanned<String>>,
    /// Look-ups the list call cannot filter answered from the gateway's
    /// own index of the upstream, rather than by scanning the list.
    pub index: Option<Spanned<IndexSpec>>,
}

/// `[users.index]` / `[groups.index]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// The matching attributes indexed (default: userName, externalId and
    /// emails.value for users, displayName and externalId for groups, less
    /// those `filters` pushes down).
    pub attributes: Option<Vec<Spanned<String>>>,
    /// How often the whole list is read again (default 900), with jitter.
    pub refresh_seconds: Option<Spanned<u64>>,
}

/// Who refuses a second user with a userName already taken.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UniqueBy {
    /// The gateway looks the userName up before every create (one more
    /// upstream call), for upstreams that would take a duplicate.
    #[default]
    Gateway,
    /// The upstream refuses a taken userName itself (its error rules then
    /// say how); the gateway makes no look-up.
    Upstream,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdSpec {
    pub field: Spanned<String>,
    #[serde(rename = "type", default)]
    pub value_type: ValueType,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    #[default]
    String,
    Integer,
    Boolean,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaSpec {
    pub created: Option<Spanned<String>>,
    pub last_modified: Option<Spanned<String>>,
    pub version: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MethodSpec {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    pub method: MethodSpec,
    pub path: Spanned<String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// A JSON body template; a string equal to `"{member}"` is replaced by the id.
    pub body: Option<Spanned<toml::Value>>,
    pub paging: Option<PagingSpec>,
    /// List calls: JSON pointer to the array of records in the answer ("" =
    /// the body).
    pub items: Option<Spanned<String>>,
    /// Get, create and update calls: JSON pointer to the record in the answer
    /// (default: the body), e.g. "/data/0" for `{"data": [{…}]}`.
    pub record: Option<Spanned<String>>,
    /// Create calls whose answer is not the new record (an invitation, a job):
    /// JSON pointer to the new record's id; the record is then read with the
    /// get call.
    pub id: Option<Spanned<String>>,
    /// Update calls only: the upstream takes partial bodies (only changed fields).
    #[serde(default)]
    pub partial: bool,
    /// Media type of the body: "application/json" (the default), another
    /// JSON type such as "application/merge-patch+json", or
    /// "application/x-www-form-urlencoded" (the same as `encoding = "form"`).
    pub content_type: Option<Spanned<String>>,
    /// Create and update calls: the upstream fields this call carries (an
    /// object or array name carries what is inside it). An update made of
    /// several calls sends only the calls whose fields changed; a create
    /// that carries some fields leaves the rest to the update calls.
    #[serde(default)]
    pub fields: Vec<Spanned<String>>,
    /// How the body is sent: "json" (default), "form" (form-encoded, an
    /// object or array field as its JSON text) or "query" (as query
    /// parameters, encoded as for "form").
    pub encoding: Option<Spanned<EncodingSpec>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncodingSpec {
    Json,
    Form,
    Query,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum PagingSpec {
    /// The upstream answers every record in one response, by design: says
    /// so, so `check` does not warn that the list is unpaged.
    None {},
    /// `?page=N&per_page=M`, pages counted from `first_page`.
    Page {
        page_param: String,
        size_param: String,
        #[serde(default = "one")]
        first_page: u64,
        max_page_size: u64,
        total_header: Option<String>,
        total_pointer: Option<String>,
    },
    /// `?offset=N&limit=M`.
    Offset {
        offset_param: String,
        limit_param: String,
        max_page_size: u64,
        total_header: Option<String>,
        total_pointer: Option<String>,
    },
    /// `?cursor=C&limit=M`, the next cursor at `next_pointer` in each answer.
    Cursor {
        cursor_param: String,
        size_param: String,
        max_page_size: u64,
        next_pointer: String,
        total_header: Option<String>,
        total_pointer: Option<String>,
    },
    /// The next page in the `Link: <…>; rel="next"` header.
    Link {
        size_param: String,
        max_page_size: u64,
        total_header: Option<String>,
        total_pointer: Option<String>,
    },
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteSpec {
    pub soft: Option<SoftDeleteSpec>,
    pub hard: Option<CallSpec>,
    #[serde(default)]
    pub restore_on_create: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftDeleteSpec {
    /// Upstream field that marks a record deleted, and the marking value.
    pub field: Spanned<String>,
    pub value: toml::Value,
    /// The call that marks a record (default: the update call writing `field`).
    pub call: Option<CallSpec>,
    /// What a restore writes to `field` (default: the create body must set it).
    pub restore_value: Option<toml::Value>,
    /// Query parameters that list only deleted records (for restore-on-create).
    #[serde(default)]
    pub lookup_query: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    /// Upstream → SCIM only.
    Read,
    /// SCIM → upstream only (e.g. passwords).
    Write,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    pub scim: Spanned<String>,
    /// The upstream field (dotted for nested objects); or, instead,
    pub field: Option<Spanned<String>>,
    /// a read-only value composed of upstream fields: "{first} {last}".
    pub template: Option<Spanned<String>>,
    /// Changes of this attribute are made by calls rather than field writes
    /// (e.g. `active` by `:suspend`/`:unsuspend`).
    #[serde(default)]
    pub set_by: Vec<SetBySpec>,
    #[serde(rename = "type")]
    pub value_type: Option<ValueType>,
    /// For a sub-attribute of a multi-valued attribute: the sub-attributes the
    /// single element carries when built from the upstream record.
    pub element: Option<Spanned<toml::Table>>,
    /// For a whole multi-valued attribute mapped to an upstream array of
    /// objects: SCIM sub-attribute → field of an upstream element.
    pub items: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub values: Vec<ValueMapSpec>,
    /// SCIM value used on create when the IdP sends none.
    pub default: Option<toml::Value>,
    /// SCIM paths whose value is written when the IdP sends none for this
    /// attribute, tried in order before `default` (e.g. the primary email,
    /// else `userName`).
    #[serde(default)]
    pub fallback: Vec<Spanned<String>>,
    /// Upstream values of this field that mean "no value" (replaces the
    /// mapping's `[upstream] absent`; `[]` for none).
    pub absent: Option<Spanned<Vec<toml::Value>>>,
    #[serde(default)]
    pub direction: Direction,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBySpec {
    /// The SCIM value this call sets.
    pub value: toml::Value,
    pub call: CallSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueMapSpec {
    pub scim: toml::Value,
    pub upstream: toml::Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersSpec {
    pub style: Spanned<MembersStyle>,
    /// `endpoints`: the call listing a group's members; `user_field`: the
    /// call listing the users of a group.
    pub list: Option<CallSpec>,
    /// `endpoints`: field of a listed member holding the user's id;
    /// `group_field`: field of an element holding it, when elements are objects.
    pub member_field: Option<Spanned<String>>,
    /// Field of a listed member (or user) that becomes the member's `display`.
    pub display_field: Option<Spanned<String>>,
    pub add: Option<CallSpec>,
    pub remove: Option<CallSpec>,
    /// `endpoints`, optional: the call that answers whether one user is a
    /// member (2xx) or not (404), so a membership check reads no list.
    pub lookup: Option<CallSpec>,
    /// `group_field`: the group's array of member ids; `user_field`: the
    /// user's array of group ids.
    pub field: Option<Spanned<String>>,
    /// `group_field` with `add` and `remove`: the most ids one call carries.
    pub members_per_call: Option<Spanned<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembersStyle {
    /// Members listed, added and removed through their own endpoints.
    Endpoints,
    /// The group record holds the list of member ids; changed by the group's update call.
    GroupField,
    /// Each user record holds the list of its group ids; changed by the users' update call.
    UserField,
}
