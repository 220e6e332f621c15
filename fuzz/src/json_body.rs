//! `json_body`: the gateway's JSON reader (`scim::json::from_bytes`, for
//! upstream answers and request bodies) reads any bytes as serde_json
//! reads them: the same value with its keys in the same order, or the same
//! error; and its writer (`scim::json::to_vec`, for every answer and
//! upstream body) writes what it read back as serde_json writes it. The
//! tree reader (`scim::json::tree_from_str`, for upstream records only
//! read) accepts the same texts as `from_bytes`, to the same values.

use scimgate::scim::json::{from_bytes, to_vec, tree_from_str, write_tree};

/// The key serde_json's `raw_value` feature (on in the dependency tree)
/// reads as its own token, not as a key: the gateway reads it as the key
/// it is.
const SERDE_RAW_VALUE_TOKEN: &[u8] = b"$serde_json::private::RawValue";

pub fn run(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let tree = tree_from_str(text).map(|tree| {
            let mut written = Vec::new();
            write_tree(&mut written, &tree);
            written
        });
        let value = from_bytes(data).map(|v| to_vec(&v));
        assert_eq!(
            tree.ok(),
            value.ok(),
            "{text:?} reads otherwise as a tree than as a value"
        );
    }
    if data
        .windows(SERDE_RAW_VALUE_TOKEN.len())
        .any(|w| w == SERDE_RAW_VALUE_TOKEN)
    {
        let _ = from_bytes(data);
        return;
    }
    // Each side's value written by that side's writer.
    let ours = from_bytes(data)
        .map(|v| to_vec(&v))
        .map_err(|e| e.to_string());
    let serdes = serde_json::from_slice::<serde_json::Value>(data)
        .map(|v| serde_json::to_vec(&v).unwrap_or_default())
        .map_err(|e| e.to_string());
    assert_eq!(
        ours,
        serdes,
        "{:?} reads otherwise than serde_json reads it",
        String::from_utf8_lossy(data)
    );
}
