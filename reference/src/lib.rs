//! The reference upstream APIs the scimgate gateway is run against: small, faithful
//! stand-ins for the kinds of REST user APIs it translates SCIM into. The demo, the
//! integration tests and the benchmarks start them in-process (usually on
//! `127.0.0.1:0`) and point a mapping file at them.
//!
//! Each API lives in its own module and differs from the others on every axis the
//! mapping language has to cover (auth, ids, record shapes, paging, update verbs,
//! deletion, errors):
//!
//! - [`legacy`]: a flat snake_case API with a static key, integer ids, page
//!   paging and member sub-resources.
//! - [`directory`]: a nested camelCase API behind OAuth2 client credentials, UUIDs,
//!   cursor paging, merge-patch updates, soft deletion and groups kept on users.
//! - [`wrike`]: shaped like Wrike's public REST API v4 — `{"kind", "data": [...]}`
//!   envelopes, form-encoded parameters holding JSON text, users created by
//!   invitation, soft deletion, `{"errorDescription", "error"}` errors.
//!
//! The gateway depends on this crate only for `scimgate demo` and
//! `scimgate legacy-api`; its request path never calls into it.
#![forbid(unsafe_code)]

pub mod directory;
pub mod legacy;
pub mod wrike;

#[cfg(test)]
mod test_db;
