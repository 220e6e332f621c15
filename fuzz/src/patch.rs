//! `patch`: any JSON body as a PatchOp, applied to a rich user and to a
//! group. Errors are fine; panics are not, and a failed PATCH changes nothing.

use scimgate::scim::patch::{apply_patch, parse_patch_request};
use scimgate::scim::schema;
use serde_json::Value;

pub fn run(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(ops) = parse_patch_request(&body, schema::user()) else {
        return;
    };
    for (resource, schema) in [
        (super::samples::rich_user(), schema::user()),
        (super::samples::group(), schema::group()),
    ] {
        let mut patched = resource.clone();
        match apply_patch(&mut patched, &ops, schema) {
            Ok(()) => {
                // A patched resource can be patched again (no panic on re-apply).
                let _ = apply_patch(&mut patched, &ops, schema);
            }
            Err(_) => assert_eq!(patched, resource, "a failed PATCH changed the resource"),
        }
    }
}
