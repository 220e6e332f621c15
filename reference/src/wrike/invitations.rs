//! `/invitations`: how users are created.
//!
//! `POST /invitations` takes `email` (required), `firstName`, `lastName`, and either
//! `role` (`User` | `Collaborator`, default `User`) with `external` (default `false`)
//! or `userTypeId` — not both. `subject` and `message` (the invitation email's) are
//! accepted and not used. The answer is the invitation, `status: "Pending"`, whose
//! `userId` names the contact that exists from then on. An email a live contact holds
//! (ignoring case) is 400 `invalid_parameter`; one a deleted contact holds restores
//! that contact as a fresh user under its old id.
//!
//! `GET /invitations` lists every invitation sent.

use axum::extract::State;
use axum::response::Response;

use super::error::ApiError;
use super::params::Params;
use super::records::{Role, UserType, check_email, check_text};
use super::store::NewInvitation;
use super::{WrikeApi, envelope};

const KIND: &str = "invitations";

/// Longest accepted `subject` / `message`.
const MAX_MESSAGE: usize = 10_000;

pub(super) async fn list(
    State(api): State<WrikeApi>,
    params: Params,
) -> Result<Response, ApiError> {
    params.finish()?;
    let invitations = api.store().read(|state| state.invitations())?;
    Ok(envelope(
        KIND,
        invitations
            .iter()
            .map(|i| i.render(api.account_id()))
            .collect(),
    ))
}

pub(super) async fn create(
    State(api): State<WrikeApi>,
    mut params: Params,
) -> Result<Response, ApiError> {
    let email = params.required_string("email")?;
    check_email(&email)?;
    let first_name = params.string("firstName");
    let last_name = params.string("lastName");
    for (name, text) in [("firstName", &first_name), ("lastName", &last_name)] {
        if let Some(text) = text {
            check_text(name, text)?;
        }
    }
    let role = params
        .string("role")
        .map(|role| Role::parse(&role, "role"))
        .transpose()?;
    let external = params.bool("external")?;
    let user_type_id = params.string("userTypeId");
    for name in ["subject", "message"] {
        if params
            .string(name)
            .is_some_and(|text| text.chars().count() > MAX_MESSAGE)
        {
            return Err(ApiError::invalid_parameter(format!(
                "Parameter '{name}' is longer than {MAX_MESSAGE} characters"
            )));
        }
    }
    params.finish()?;
    let user_type = match user_type_id {
        Some(_) if role.is_some() || external.is_some() => {
            return Err(ApiError::invalid_parameter(
                "Parameter 'userTypeId' is mutually exclusive with 'role' and 'external'",
            ));
        }
        Some(id) => UserType::parse_id(&id)?,
        None => UserType::from_role(role.unwrap_or(Role::User), external.unwrap_or(false)),
    };
    let invitation = api.store().write(|state| {
        state.invite(NewInvitation {
            email,
            first_name,
            last_name,
            user_type,
        })
    })?;
    Ok(envelope(KIND, vec![invitation.render(api.account_id())]))
}

#[cfg(test)]
mod tests {
    use crate::wrike::test_support::{ACCOUNT_ID, Client};
    use serde_json::json;

    #[tokio::test]
    async fn an_invitation_creates_the_contact_named_by_user_id() {
        let client = Client::memory();
        let answer = client
            .post(
                "/api/v4/invitations",
                &[
                    ("email", "ada@example.com"),
                    ("firstName", "Ada"),
                    ("lastName", "Lovelace"),
                    ("role", "User"),
                    ("external", "true"),
                    ("subject", "Welcome"),
                    ("message", "Join us"),
                ],
            )
            .await;
        answer.assert_ok("invitations");
        let invitation = &answer.json["data"][0];
        let user_id = invitation["userId"].as_str().unwrap();
        assert_eq!(invitation["accountId"], ACCOUNT_ID);
        assert_eq!(invitation["email"], "ada@example.com");
        assert_eq!(invitation["firstName"], "Ada");
        assert_eq!(invitation["lastName"], "Lovelace");
        assert_eq!(invitation["role"], "User");
        assert_eq!(invitation["external"], true);
        assert_eq!(invitation["status"], "Pending");
        assert_ne!(invitation["id"], invitation["userId"]);
        let contact = client.get(&format!("/api/v4/contacts/{user_id}")).await;
        let record = &contact.json["data"][0];
        assert_eq!(record["firstName"], "Ada");
        assert_eq!(record["deleted"], false);
        assert_eq!(
            record["profiles"][0],
            json!({
                "accountId": ACCOUNT_ID, "email": "ada@example.com", "role": "User",
                "external": true, "admin": false, "owner": false, "active": true,
                "userTypeId": "KTAAAAAB"
            })
        );
        let listed = client.get("/api/v4/invitations").await;
        listed.assert_ok("invitations");
        assert_eq!(listed.json["data"][0]["userId"], user_id);
    }

    #[tokio::test]
    async fn a_second_invitation_for_a_live_email_is_refused() {
        let client = Client::memory();
        client.invite("ada@example.com").await;
        let answer = client
            .post("/api/v4/invitations", &[("email", "ADA@example.com")])
            .await;
        answer.assert_error(400, "invalid_parameter");
        assert_eq!(
            answer.json["errorDescription"],
            "User with such email already exists"
        );
        assert_eq!(client.get("/api/v4/contacts").await.ids().len(), 1);
    }

    #[tokio::test]
    async fn inviting_a_deleted_users_email_restores_the_same_contact() {
        let client = Client::memory();
        let id = client.invite("ada@example.com").await;
        client
            .put(&format!("/api/v4/contacts/{id}"), &[("title", "Old")])
            .await
            .assert_ok("contacts");
        client
            .delete(&format!("/api/v4/users/{id}"))
            .await
            .assert_ok("users");
        let again = client.invite("ada@example.com").await;
        assert_eq!(again, id);
        let record = client.get(&format!("/api/v4/contacts/{id}")).await;
        assert_eq!(record.json["data"][0]["deleted"], false);
        assert_eq!(record.json["data"][0]["title"], "");
    }

    #[tokio::test]
    async fn user_type_id_picks_any_of_the_five_and_excludes_role() {
        let client = Client::memory();
        let answer = client
            .post(
                "/api/v4/invitations",
                &[("email", "v@example.com"), ("userTypeId", "KTAAAAAE")],
            )
            .await;
        assert_eq!(answer.json["data"][0]["userTypeId"], "KTAAAAAE");
        assert_eq!(answer.json["data"][0]["role"], "Collaborator");
        client
            .post(
                "/api/v4/invitations",
                &[
                    ("email", "w@example.com"),
                    ("userTypeId", "KTAAAAAE"),
                    ("role", "User"),
                ],
            )
            .await
            .assert_error(400, "invalid_parameter");
    }

    #[tokio::test]
    async fn bad_invitations_are_refused() {
        let client = Client::memory();
        client
            .post("/api/v4/invitations", &[("firstName", "No email")])
            .await
            .assert_error(400, "parameter_required");
        for params in [
            &[("email", "not-an-email")][..],
            &[("email", "a@example.com"), ("role", "Owner")][..],
            &[("email", "a@example.com"), ("external", "1")][..],
        ] {
            client
                .post("/api/v4/invitations", params)
                .await
                .assert_error(400, "invalid_parameter");
        }
        client
            .post(
                "/api/v4/invitations",
                &[("email", "a@example.com"), ("title", "x")],
            )
            .await
            .assert_error(400, "invalid_request");
        assert!(client.get("/api/v4/contacts").await.ids().is_empty());
    }
}
