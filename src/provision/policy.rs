//! Product policy applied before anything reaches the upstream: a connection
//! provisions only users whose every email address is in an approved domain,
//! and sees only such users (its scope, [`in_scope`]).

use crate::scim::json::View;

/// Why the approved-domains policy refuses a user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "the user has no email address; this connection provisions only users with an email in an approved domain"
    )]
    NoAddress,
    /// `address` is quoted escaped: it may hold control characters.
    #[error("`{address}` is not an email address the gateway accepts: {reason}")]
    Malformed {
        address: String,
        reason: &'static str,
    },
    #[error(
        "the email domain of `{address}` is not approved for this connection (approved: {approved}); \
         ask the gateway operator to add it to approved_domains"
    )]
    NotApproved { address: String, approved: String },
}

/// Checks the user's emails (and a userName that is an address). Domains
/// match exactly after lower-casing and dropping a trailing dot: a sub-domain
/// of an approved domain is not approved.
pub fn check_approved_domains<'u>(
    user: impl Into<View<'u>>,
    approved: &[String],
) -> Result<(), PolicyError> {
    let user = user.into();
    // Checked on every read (the scope), so nothing is allocated unless refused.
    let emails = || {
        user.get("emails")
            .into_iter()
            .flat_map(View::elements)
            .filter_map(|email| email.get("value").and_then(View::as_str))
    };
    let user_name = user
        .get("userName")
        .and_then(View::as_str)
        .filter(|user_name| user_name.contains('@'))
        // One of the emails already (as it mostly is): the same answer.
        .filter(|user_name| !emails().any(|email| email == *user_name));
    let mut addresses = emails().chain(user_name).peekable();
    if addresses.peek().is_none() {
        return Err(PolicyError::NoAddress);
    }
    for address in addresses {
        let domain = parse_address(address).map_err(|reason| PolicyError::Malformed {
            address: address.escape_debug().to_string(),
            reason,
        })?;
        // `approved` is normalised (ASCII, lower case, no trailing dot) and
        // `domain` is well formed, so this is `normalise_domain` and `==`.
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let approved_here = approved.iter().any(|a| a.eq_ignore_ascii_case(domain));
        if !approved_here {
            return Err(PolicyError::NotApproved {
                address: address.to_string(),
                approved: if approved.is_empty() {
                    "none".to_string()
                } else {
                    approved.join(", ")
                },
            });
        }
    }
    Ok(())
}

/// Whether a user as it is now belongs to this connection: every address it
/// has, well formed and approved. A user outside the scope does not exist
/// for the connection (RFC 7644 lets a provider hide resources per client).
pub fn in_scope<'u>(user: impl Into<View<'u>>, approved: &[String]) -> bool {
    check_approved_domains(user, approved).is_ok()
}

/// Bytes of the characters RFC 5322 allows unquoted in a dot-atom local
/// part: every byte of a character that is not ASCII is one too, so a text
/// is atext exactly when each of its bytes is (no character is decoded).
fn is_atext(byte: u8) -> bool {
    // A `match`, not a search of the list: every read checks every address.
    matches!(byte, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&'
        | b'\'' | b'*' | b'+' | b'-' | b'/' | b'=' | b'?' | b'^' | b'_' | b'`' | b'{' | b'|'
        | b'}' | b'~')
        || !byte.is_ascii()
}

/// Checks `address` strictly (one `@`; a dot-atom local part of at most 64
/// bytes; a domain of dot-separated labels of letters, digits and inner
/// hyphens, one trailing dot allowed) and returns its domain. Quoted local
/// parts, whitespace, commas, angle brackets and control characters are
/// refused: each has been used to make one address read as another.
fn parse_address(address: &str) -> Result<&str, &'static str> {
    let Some((local, domain)) = address.split_once('@') else {
        return Err("it has no `@`");
    };
    if domain.contains('@') {
        return Err("it has more than one `@`");
    }
    if local.is_empty() || local.len() > 64 {
        return Err("the part before `@` must be 1 to 64 characters");
    }
    if !local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
    {
        return Err(
            "the part before `@` may hold letters, digits and !#$%&'*+-/=?^_`{|}~, with single inner dots",
        );
    }
    let labels = domain.strip_suffix('.').unwrap_or(domain);
    if labels.is_empty() || labels.len() > 253 {
        return Err("the domain must be 1 to 253 characters");
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            // An ASCII label without decoding it; another one letter by letter.
            && (label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                || !label.is_ascii() && label.chars().all(|c| c.is_alphanumeric() || c == '-'))
    };
    if !labels.split('.').all(label_ok) {
        return Err("the domain must be dot-separated labels of letters, digits and inner hyphens");
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn approved() -> Vec<String> {
        vec!["example.com".to_string()]
    }

    #[test]
    fn approved_domain_passes_in_any_case_and_with_trailing_dot() {
        let user =
            json!({"userName": "Alice+tag@EXAMPLE.com.", "emails": [{"value": "a@Example.COM"}]});
        assert!(check_approved_domains(&user, &approved()).is_ok());
    }

    #[test]
    fn sub_domain_and_look_alike_are_refused() {
        for address in [
            "a@sub.example.com",
            "a@example.com.evil.io",
            "a@example.co",
            "a@exаmple.com",
        ] {
            let user = json!({"userName": "alice", "emails": [{"value": address}]});
            let error = check_approved_domains(&user, &approved()).unwrap_err();
            assert!(
                matches!(error, PolicyError::NotApproved { .. }),
                "{address}"
            );
        }
    }

    #[test]
    fn every_email_must_be_approved_not_only_the_primary() {
        let user = json!({"userName": "alice@example.com", "emails": [
            {"value": "alice@example.com", "primary": true},
            {"value": "alice@other.org"}
        ]});
        assert!(check_approved_domains(&user, &approved()).is_err());
    }

    #[test]
    fn user_without_any_address_is_refused() {
        let error = check_approved_domains(&json!({"userName": "alice"}), &approved()).unwrap_err();
        assert_eq!(error, PolicyError::NoAddress);
    }

    #[test]
    fn malformed_addresses_are_refused_as_invalid_values() {
        for address in [
            "a@example.com@evil.io",
            "eve@evil.org@example.com",
            "<eve@evil.org>@example.com",
            "eve@evil.org,bob@example.com",
            "eve@evil.org\n@example.com",
            "eve@ example.com",
            "eve@example.com..",
            "\"eve@evil.org\"@example.com",
            "eve..x@example.com",
            "eve@-example.com",
            "@example.com",
        ] {
            for user in [
                json!({"userName": "alice", "emails": [{"value": address}]}),
                json!({"userName": address, "emails": [{"value": "alice@example.com"}]}),
            ] {
                let error = check_approved_domains(&user, &approved()).unwrap_err();
                assert!(
                    matches!(error, PolicyError::Malformed { .. }),
                    "{address:?}"
                );
            }
        }
    }

    #[test]
    fn a_local_part_holds_exactly_the_atext_of_rfc_5322() {
        const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";
        for byte in 0x21u8..0x7f {
            let c = char::from(byte);
            if c == '.' || c == '@' {
                continue;
            }
            let address = format!("a{c}b@example.com");
            let accepted = check_approved_domains(&json!({"userName": address}), &approved());
            let atext = c.is_ascii_alphanumeric() || ATEXT.contains(c);
            assert_eq!(accepted.is_ok(), atext, "{address:?}: {accepted:?}");
        }
        let non_ascii = json!({"userName": "jos\u{e9}@example.com"});
        assert!(check_approved_domains(&non_ascii, &approved()).is_ok());
    }

    #[test]
    fn a_domain_label_may_hold_letters_and_digits_of_any_script_and_inner_hyphens() {
        for domain in [
            "b\u{fc}cher.example",
            "xn--bcher-kva.example",
            "\u{661}2-3.example",
        ] {
            assert_eq!(
                parse_address(&format!("a@{domain}")),
                Ok(domain),
                "{domain}"
            );
        }
        for domain in [
            "b\u{fc}\u{2026}cher.example",
            "-b\u{fc}.example",
            "a_b.example",
        ] {
            assert!(parse_address(&format!("a@{domain}")).is_err(), "{domain}");
        }
    }

    #[test]
    fn users_outside_the_approved_domains_are_out_of_scope() {
        let ours = json!({"userName": "a@example.com", "emails": [{"value": "a@example.com"}]});
        let theirs = json!({"userName": "b@example.org", "emails": [{"value": "b@example.org"}]});
        let mixed = json!({"userName": "c@example.com", "emails": [{"value": "c@example.org"}]});
        let no_address = json!({"userName": "d"});
        // A userName that is not one of the emails is checked on its own.
        let named_elsewhere =
            json!({"userName": "e@example.org", "emails": [{"value": "e@example.com"}]});
        assert!(in_scope(&ours, &approved()));
        for user in [theirs, mixed, no_address, named_elsewhere] {
            assert!(!in_scope(&user, &approved()), "{user}");
        }
    }
}
