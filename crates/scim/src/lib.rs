//! The vendor-neutral SCIM 2.0 core (RFC 7643 / RFC 7644): schemas, filters,
//! attribute paths, PATCH, projection and the wire error. It knows no vendor
//! and no upstream URL; resources are plain JSON values so unknown extensions
//! survive untouched.

pub mod error;
pub mod filter;
pub mod json;
pub mod patch;
pub mod path;
pub mod projection;
pub mod schema;
