//! Identifiers and opaque strings the directory hands out: UUID v4 record ids, etags
//! and paging cursors.
//!
//! Ids are random (`rand`'s thread-local CSPRNG), lowercase, hyphenated. A cursor is
//! `base64url("<collection>:<sequence>")`: opaque to clients, but checked on the way
//! back in so a users cursor cannot page through groups, and garbage is a 422 rather
//! than a silent first page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A fresh random UUID version 4, e.g. `1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b`.
pub(crate) fn new_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `text` as a canonical (lowercase) UUID when it has the 8-4-4-4-12 hex shape; any
/// version is accepted so ids minted elsewhere still parse.
pub(crate) fn parse_uuid(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let shaped = bytes.iter().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => *b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    shaped.then(|| text.to_ascii_lowercase())
}

/// A fresh etag: 64 random bits as hex. Changes on every write, means nothing else.
pub(crate) fn new_etag() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// Which list a cursor belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Collection {
    Users,
    Groups,
}

impl Collection {
    fn tag(self) -> &'static str {
        match self {
            Collection::Users => "users",
            Collection::Groups => "groups",
        }
    }
}

/// The cursor that resumes `collection` after the row with sequence number `after`.
pub(crate) fn encode_cursor(collection: Collection, after: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{after}", collection.tag()))
}

/// The sequence number inside a cursor from [`encode_cursor`] for the same collection.
pub(crate) fn decode_cursor(collection: Collection, cursor: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (tag, after) = text.split_once(':')?;
    if tag != collection.tag() || after.is_empty() || !after.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    after.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_uuids_are_version_4_and_distinct() {
        let a = new_uuid();
        let b = new_uuid();
        assert_ne!(a, b);
        assert_eq!(parse_uuid(&a).as_deref(), Some(a.as_str()));
        assert_eq!(a.as_bytes()[14], b'4', "{a}");
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{a}");
    }

    #[test]
    fn uuids_parse_case_insensitively_into_lowercase() {
        assert_eq!(
            parse_uuid("1B4E28BA-2FA1-4D3B-A3F5-EF19B5A7633B").as_deref(),
            Some("1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b")
        );
        for bad in [
            "",
            "1",
            "1b4e28ba2fa14d3ba3f5ef19b5a7633b",
            "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633g",
            "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b:suspend",
            "{1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633}",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip_only_within_their_collection() {
        let cursor = encode_cursor(Collection::Users, 42);
        assert_eq!(decode_cursor(Collection::Users, &cursor), Some(42));
        assert_eq!(decode_cursor(Collection::Groups, &cursor), None);
        for bad in ["", "!!", "42", &URL_SAFE_NO_PAD.encode("users:-1")] {
            assert_eq!(decode_cursor(Collection::Users, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn etags_differ_each_time() {
        assert_ne!(new_etag(), new_etag());
        assert_eq!(new_etag().len(), 16);
    }
}
