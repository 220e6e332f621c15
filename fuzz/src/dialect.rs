//! `dialect`: any JSON body through every shipped dialect's normalisers,
//! then the core schema's canonicalize and validate. Never panics.

use std::sync::OnceLock;

use scimgate::dialect::{Dialects, embedded};
use scimgate::scim::schema;
use serde_json::Value;

fn dialects() -> &'static Dialects {
    static DIALECTS: OnceLock<Dialects> = OnceLock::new();
    DIALECTS.get_or_init(embedded)
}

pub fn run(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for dialect in &dialects().all {
        for schema in [schema::user(), schema::group()] {
            let mut resource = body.clone();
            dialect.normalise_resource(schema, &mut resource);
            schema.canonicalize(&mut resource);
            let _ = schema.validate(&resource);

            let mut patch = body.clone();
            dialect.normalise_patch(schema, &mut patch);
            let _ = scimgate::scim::patch::parse_patch_request(&patch, schema);
        }
    }
}
