//! The fuzz targets' bodies, one module per target, each `run(&[u8])`.
//!
//! They use only scimgate's public API and crates the main crate already
//! depends on, so `tests/fuzz_regressions.rs` includes this file with
//! `#[path]` and replays a crashing input through the very same function.
#![allow(dead_code)]

pub mod samples;

pub mod attr_path;
pub mod dialect;
pub mod filter;
pub mod json_body;
pub mod mapping_loader;
pub mod patch;
pub mod request;
