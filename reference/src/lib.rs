//! The reference upstream APIs the scimgate gateway is run against: small, faithful
//! stand-ins for the kinds of REST user APIs it translates SCIM into. The demo, the
//! integration tests and the benchmarks start them in-process (usually on
//! `127.0.0.1:0`) and point a mapping file at them.
//!
//! Each API lives in its own module and differs from the others on every axis the
//! mapping language has to cover (auth, ids, record shapes, paging, update verbs,
//! deletion, errors):
//!
//! - [`wrike`]: shaped like Wrike's public REST API v4 — `{"kind", "data": [...]}`
//!   envelopes, form-encoded parameters holding JSON text, users created by
//!   invitation, soft deletion, `{"errorDescription", "error"}` errors.
//!
//! Nothing here is used by the gateway itself.

pub mod wrike;
