//! Inputs the fuzz targets in `fuzz/` found crashing, replayed through the
//! very same harness functions (`fuzz/src/`, included below), so each stays
//! fixed. Add one `#[test]` per minimised crash, named for what it exercised;
//! the bytes are the artifact libFuzzer wrote to `fuzz/artifacts/<target>/`.

#[path = "../fuzz/src/lib.rs"]
mod harness;

/// `request`: DELETE on the Users collection (a route that serves only GET
/// and POST) with a valid token. The framework answered 405 with an empty
/// body; every non-2xx answer must be a SCIM error JSON.
#[test]
fn request_method_not_allowed_answers_a_scim_error() {
    // method 4 = DELETE, prefix 0 = /scim/v2/Users, flags 0 (valid bearer
    // token, application/scim+json), no suffix, no body.
    harness::request::run(&[0x04, 0x00, 0x00, 0x00]);
}
