//! scimgate: a SCIM 2.0 gateway in front of legacy REST user-management APIs.
//!
//! A request walks the modules in this order and back:
//! `server` (listen, auth, limits) → `dialect` (vendor quirks) → `scim`
//! (vendor-neutral protocol core) → `mapping` (SCIM ⇄ upstream JSON, declared in
//! mapping files) → `upstream` (HTTP client). No module reaches upward.
#![forbid(unsafe_code)]

pub mod scim;
