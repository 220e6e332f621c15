//! scimgate: a SCIM 2.0 gateway in front of legacy REST user-management APIs.
//!
//! A request walks the modules in this order and back:
//! `server` (listen, auth, limits) → `provision` (one SCIM operation, product
//! policy) → `scim` (vendor-neutral protocol core) and `mapping` (SCIM ⇄
//! upstream JSON, declared in mapping files) → `upstream` (HTTP client).
//! No module reaches upward. `legacy` is the reference upstream API used by
//! `scimgate demo`, the tests and the benchmarks; `directory` is a second,
//! differently shaped reference API that proves the mapping language general.
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod demo;
pub mod diagnostics;
pub mod dialect;
pub mod directory;
pub mod explain;
pub mod legacy;
pub mod mapping;
pub mod metric_labels;
pub mod provision;
pub mod scim;
pub mod server;
pub mod upstream;
