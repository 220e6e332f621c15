//! `json_body`: the gateway's JSON reader (`scim::json::from_bytes`, for
//! upstream answers and request bodies) reads any bytes as serde_json
//! reads them: the same value with its keys in the same order, or the same
//! error.

use scimgate::scim::json::from_bytes;

pub fn run(data: &[u8]) {
    let ours = from_bytes(data)
        .map(|v| v.to_string())
        .map_err(|e| e.to_string());
    let serdes = serde_json::from_slice::<serde_json::Value>(data)
        .map(|v| v.to_string())
        .map_err(|e| e.to_string());
    assert_eq!(
        ours,
        serdes,
        "{:?} reads otherwise than serde_json reads it",
        String::from_utf8_lossy(data)
    );
}
