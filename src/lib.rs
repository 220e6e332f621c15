//! scimgate: a SCIM 2.0 gateway in front of legacy REST user-management APIs.
//!
//! A request walks the modules in this order and back:
//! `server` (listen, auth, limits) → `provision` (one SCIM operation, product
//! policy) → `scim` (vendor-neutral protocol core) and `mapping` (SCIM ⇄
//! upstream JSON, declared in mapping files) → `upstream` (HTTP client).
//! Failures travel back as each layer's own typed error and become SCIM
//! error bodies in one place, `server::rescue`.
//!
//! The layers, bottom first, each using only its own and those below:
//! `scim`, `diagnostics`, `metric_labels`, `log_fields`, `telemetry` · `mapping`, `dialect` · `config` ·
//! `upstream`, `audit`, `cluster` · `provision` · `server` · `demo`, `explain`.
//! `scim`, `diagnostics`, `mapping` and `dialect` are crates of their own
//! (`crates/`), re-exported here under those names, so Cargo refuses an
//! upward import between them; `.ci/layers` checks the crates' manifests
//! and this crate's modules (test code included). The reference upstream
//! APIs `scimgate demo`, the tests and the benchmarks run against live in
//! the `scimgate-reference` crate (`reference/`), not here.
#![forbid(unsafe_code)]

pub mod audit;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod explain;
pub mod log_fields;
pub mod metric_labels;
pub mod provision;
pub mod server;
pub mod telemetry;
pub mod upstream;

// The layers that are crates of their own, under the names the rest of the
// gateway (and the fuzz targets) know them by.
pub use scimgate_diagnostics as diagnostics;
pub use scimgate_dialect as dialect;
pub use scimgate_mapping as mapping;
pub use scimgate_scim as scim;
