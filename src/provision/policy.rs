//! Product policy applied before anything reaches the upstream: a connection
//! provisions only users whose every email address is in an approved domain.

use serde_json::Value;

use crate::config::normalise_domain;
use crate::scim::error::{ScimError, ScimType};

/// Checks the user's emails (and a userName that is an address). Domains
/// match exactly after lower-casing and dropping a trailing dot: a sub-domain
/// of an approved domain is not approved.
pub fn check_approved_domains(user: &Value, approved: &[String]) -> Result<(), ScimError> {
    let mut addresses: Vec<&str> = user
        .get("emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|email| email.get("value").and_then(Value::as_str))
        .collect();
    if let Some(user_name) = user.get("userName").and_then(Value::as_str)
        && user_name.contains('@')
    {
        addresses.push(user_name);
    }
    if addresses.is_empty() {
        return Err(ScimError::bad_request(
            ScimType::InvalidValue,
            "the user has no email address; this connection provisions only users with an email in an approved domain",
        ));
    }
    for address in addresses {
        let domain = address
            .rsplit_once('@')
            .and_then(|(_, domain)| normalise_domain(domain));
        let approved_here = domain
            .as_deref()
            .is_some_and(|domain| approved.iter().any(|a| a == domain));
        if !approved_here {
            return Err(ScimError::new(
                http::StatusCode::FORBIDDEN,
                None,
                format!(
                    "the email domain of `{address}` is not approved for this connection (approved: {}); \
                     ask the gateway operator to add it to approved_domains",
                    if approved.is_empty() {
                        "none".to_string()
                    } else {
                        approved.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
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
            assert_eq!(error.status, http::StatusCode::FORBIDDEN, "{address}");
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
        assert_eq!(error.scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn address_with_two_at_signs_uses_the_last_domain() {
        let user = json!({"userName": "a@example.com@evil.io"});
        assert!(check_approved_domains(&user, &approved()).is_err());
    }
}
