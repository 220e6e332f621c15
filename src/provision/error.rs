//! Why a SCIM operation could not be carried out, in the provisioner's own
//! terms. Which status and `scimType` each reason becomes is decided at the
//! server's error boundary (`server::rescue`), not here.

use crate::mapping::MappingError;
use crate::scim::patch::PatchError;
use crate::scim::schema::SchemaError;
use crate::upstream::CallError;

use super::policy::PolicyError;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// An upstream call failed or was refused.
    #[error(transparent)]
    Upstream(#[from] CallError),
    /// The mapping could not render a call or read an answer.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// A PATCH operation does not apply to the resource.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// The resource breaks the SCIM schema.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The connection's policy refuses the user (approved domains).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// No such resource for this connection (deleted, soft-deleted, out of
    /// its scope, or an id no record can have).
    #[error("{resource_type} {id} not found")]
    NotFound {
        resource_type: &'static str,
        id: String,
    },
    /// The connection's mapping declares no groups.
    #[error("this connection's upstream mapping declares no groups")]
    NoGroups,
    /// The mapping declares groups but no way to change their members.
    #[error("this connection's upstream mapping declares no group membership")]
    NoMembership,
    /// A member to add is not a user this connection sees.
    #[error("member `{0}` is not a user of this connection")]
    ForeignMember(String),
    /// The mapping declares no call that deletes this resource type.
    #[error("the upstream mapping declares no way to delete a {0}")]
    Undeletable(&'static str),
    /// The request's resource is malformed (no core schema, say).
    #[error("{0}")]
    Malformed(String),
    /// The request would change what may not change (an id, say).
    #[error("{0}")]
    Immutable(String),
    /// The request leaves out an attribute the resource must keep.
    #[error("{0}")]
    Incomplete(String),
    /// Answering would read more records than the gateway allows.
    #[error("{0}")]
    TooMany(String),
    /// The resource collides with one the connection may not take over.
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` names another version than the current one.
    #[error("{0}")]
    VersionMismatch(String),
    /// The mapping cannot do what the operation needs; the operator must fix it.
    #[error("{0}")]
    Misconfigured(String),
    /// The upstream may have made the change, but the gateway cannot confirm it.
    #[error("{0}")]
    Unconfirmed(String),
    /// Another replica held the resource's lock for its whole TTL, or
    /// conditional writes kept losing to others.
    #[error("another request is changing this resource; retry after 1 s")]
    Contended,
    /// The cluster store is down and the operator chose `refuse`.
    #[error("the gateway cannot reach its cluster store to serialise this change; retry after 1 s")]
    ClusterUnavailable,
    /// A conditional write the upstream refused because the record changed
    /// since it was read (`update_precondition`): read again and retried by
    /// the caller, never meant to reach the IdP.
    #[error("the resource changed while it was being written; retry after 1 s")]
    Stale,
    /// The gateway is stopping and takes no more upstream work.
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

impl ProvisionError {
    /// A conditional write the upstream refused because the record changed
    /// since it was read (`update_precondition`).
    pub fn is_stale(&self) -> bool {
        matches!(self, ProvisionError::Stale)
    }
}
