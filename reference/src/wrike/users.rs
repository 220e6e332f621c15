//! `/users/{id}` and `/user_types`: the account side of a contact.
//!
//! - `GET /users/{id}` answers the contact as `kind: "users"` (deleted ones too).
//! - `PUT /users/{id}` takes either `profile` alone — JSON
//!   `{"accountId", "role": "User"|"Collaborator", "external"?, "email"?}`, Wrike's
//!   deprecated form, which can express Regular, External and Collaborator only — or
//!   any of `userTypeId` (one of the five types of `/user_types`), `active`
//!   (deactivate / reactivate) and `deleted` (`true` soft-deletes, `false` restores
//!   and reactivates). The email cannot change: a `profile.email` other than the
//!   current one is 400. On a deleted user anything but a restore is 403.
//! - `DELETE /users/{id}` soft-deletes: the record stays, `deleted: true`,
//!   `active: false`, out of every group, hidden from `GET /contacts`.
//! - `GET /user_types` lists the five user types.

use axum::extract::State;
use axum::response::Response;
use serde_json::Value;

use super::contacts::{FIELDS, wants_metadata};
use super::error::ApiError;
use super::params::Params;
use super::records::{Role, UserType};
use super::store::UserUpdate;
use super::{Id, WrikeApi, envelope};

const KIND: &str = "users";

fn single(id: &str) -> Result<(), ApiError> {
    if id.contains(',') {
        return Err(ApiError::invalid_parameter("This method takes one user id"));
    }
    Ok(())
}

pub(super) async fn get(
    State(api): State<WrikeApi>,
    Id(id): Id,
    mut params: Params,
) -> Result<Response, ApiError> {
    single(&id)?;
    let metadata = wants_metadata(&params.fields(FIELDS)?);
    params.finish()?;
    let contacts = api
        .store()
        .read(|state| state.contacts(std::slice::from_ref(&id)))??;
    Ok(envelope(
        KIND,
        contacts
            .iter()
            .map(|c| c.render(api.account_id(), metadata))
            .collect(),
    ))
}

/// The `profile` parameter: the account's id, a role, optionally `external` and the
/// (unchangeable) email.
fn parse_profile(value: Value, account_id: &str) -> Result<(UserType, Option<String>), ApiError> {
    let invalid = |why: &str| ApiError::invalid_parameter(format!("Parameter 'profile': {why}"));
    let Value::Object(mut profile) = value else {
        return Err(invalid("must be a JSON object"));
    };
    match profile.remove("accountId") {
        Some(Value::String(id)) if id == account_id => {}
        Some(Value::String(id)) => {
            return Err(invalid(&format!("account '{id}' is not this account")));
        }
        _ => return Err(invalid("needs the string 'accountId'")),
    }
    let role = match profile.remove("role") {
        Some(Value::String(role)) => Role::parse(&role, "profile.role")?,
        _ => return Err(invalid("needs the string 'role'")),
    };
    let external = match profile.remove("external") {
        None => false,
        Some(Value::Bool(external)) => external,
        Some(_) => return Err(invalid("'external' must be true or false")),
    };
    let email = match profile.remove("email") {
        None => None,
        Some(Value::String(email)) => Some(email),
        Some(_) => return Err(invalid("'email' must be a string")),
    };
    if let Some(extra) = profile.keys().next() {
        return Err(invalid(&format!("unknown member '{extra}'")));
    }
    Ok((UserType::from_role(role, external), email))
}

pub(super) async fn update(
    State(api): State<WrikeApi>,
    Id(id): Id,
    mut params: Params,
) -> Result<Response, ApiError> {
    single(&id)?;
    let profile = params.json("profile")?;
    let user_type = params
        .string("userTypeId")
        .map(|id| UserType::parse_id(&id))
        .transpose()?;
    let active = params.bool("active")?;
    let deleted = params.bool("deleted")?;
    let metadata = wants_metadata(&params.fields(FIELDS)?);
    params.finish()?;
    let update = match profile {
        Some(_) if user_type.is_some() || active.is_some() || deleted.is_some() => {
            return Err(ApiError::invalid_parameter(
                "Parameter 'profile' is mutually exclusive with other parameters",
            ));
        }
        Some(profile) => {
            let (user_type, email) = parse_profile(profile, api.account_id())?;
            UserUpdate {
                user_type: Some(user_type),
                email,
                ..UserUpdate::default()
            }
        }
        None => UserUpdate {
            user_type,
            email: None,
            active,
            deleted,
        },
    };
    let contact = api.store().write(|state| state.update_user(&id, update))?;
    Ok(envelope(
        KIND,
        vec![contact.render(api.account_id(), metadata)],
    ))
}

pub(super) async fn delete(
    State(api): State<WrikeApi>,
    Id(id): Id,
    params: Params,
) -> Result<Response, ApiError> {
    single(&id)?;
    params.finish()?;
    let contact = api.store().write(|state| state.delete_user(&id))?;
    Ok(envelope(
        KIND,
        vec![contact.render(api.account_id(), false)],
    ))
}

pub(super) async fn user_types(params: Params) -> Result<Response, ApiError> {
    params.finish()?;
    Ok(envelope(
        "userTypes",
        UserType::ALL.iter().map(|t| t.render()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use crate::wrike::test_support::{ACCOUNT_ID, Client};
    use serde_json::{Value, json};

    fn profile(answer: &Value) -> &Value {
        &answer["data"][0]["profiles"][0]
    }

    #[tokio::test]
    async fn get_user_is_the_contact_as_kind_users() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let answer = client.get(&format!("/api/v4/users/{id}")).await;
        answer.assert_ok("users");
        assert_eq!(answer.ids(), [id]);
        client
            .get("/api/v4/users/KUAAAA77")
            .await
            .assert_error(404, "resource_not_found");
    }

    #[tokio::test]
    async fn profile_as_form_encoded_json_changes_role_and_external() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let path = format!("/api/v4/users/{id}");
        for (role, external, type_id) in [
            ("User", true, "KTAAAAAB"),
            ("Collaborator", false, "KTAAAAAD"),
            ("User", false, "KTAAAAAA"),
        ] {
            let value = json!({"accountId": ACCOUNT_ID, "role": role, "external": external});
            let answer = client.put(&path, &[("profile", &value.to_string())]).await;
            answer.assert_ok("users");
            let profile = profile(&answer.json);
            assert_eq!(profile["role"], role);
            assert_eq!(profile["external"], external && role == "User");
            assert_eq!(profile["userTypeId"], type_id);
        }
    }

    #[tokio::test]
    async fn user_type_ids_make_all_five_types_distinguishable() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let path = format!("/api/v4/users/{id}");
        let types = client.get("/api/v4/user_types").await;
        types.assert_ok("userTypes");
        let mut seen = Vec::new();
        for user_type in types.json["data"].as_array().unwrap() {
            let type_id = user_type["id"].as_str().unwrap();
            let answer = client.put(&path, &[("userTypeId", type_id)]).await;
            let profile = profile(&answer.json).clone();
            assert_eq!(profile["userTypeId"], type_id);
            assert_eq!(profile["role"], user_type["role"]);
            assert_eq!(profile["external"], user_type["external"]);
            seen.push(profile["userTypeId"].clone());
        }
        assert_eq!(seen.len(), 5);
        client
            .put(&path, &[("userTypeId", "KTAAAAAZ")])
            .await
            .assert_error(400, "invalid_parameter");
    }

    #[tokio::test]
    async fn profile_is_mutually_exclusive_and_checked() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let path = format!("/api/v4/users/{id}");
        let good = json!({"accountId": ACCOUNT_ID, "role": "User"}).to_string();
        client
            .put(&path, &[("profile", &good), ("active", "false")])
            .await
            .assert_error(400, "invalid_parameter");
        for bad in [
            "{not json".to_owned(),
            json!({"accountId": "IEAAAAAB", "role": "User"}).to_string(),
            json!({"accountId": ACCOUNT_ID, "role": "Admin"}).to_string(),
            json!({"accountId": ACCOUNT_ID}).to_string(),
            json!({"accountId": ACCOUNT_ID, "role": "User", "admin": true}).to_string(),
            json!({"accountId": ACCOUNT_ID, "role": "User", "external": "yes"}).to_string(),
        ] {
            client
                .put(&path, &[("profile", &bad)])
                .await
                .assert_error(400, "invalid_parameter");
        }
    }

    #[tokio::test]
    async fn the_email_cannot_change() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let path = format!("/api/v4/users/{id}");
        let same = json!({"accountId": ACCOUNT_ID, "role": "User", "email": "A@example.com"});
        client
            .put(&path, &[("profile", &same.to_string())])
            .await
            .assert_ok("users");
        let other = json!({"accountId": ACCOUNT_ID, "role": "User", "email": "b@example.com"});
        client
            .put(&path, &[("profile", &other.to_string())])
            .await
            .assert_error(400, "invalid_parameter");
    }

    #[tokio::test]
    async fn deactivation_is_distinguishable_from_deletion() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let path = format!("/api/v4/users/{id}");
        let answer = client.put(&path, &[("active", "false")]).await;
        assert_eq!(profile(&answer.json)["active"], false);
        assert_eq!(answer.json["data"][0]["deleted"], false);
        assert_eq!(
            client.get("/api/v4/contacts").await.ids(),
            std::slice::from_ref(&id),
            "a deactivated user is still listed"
        );
        let answer = client.put(&path, &[("active", "true")]).await;
        assert_eq!(profile(&answer.json)["active"], true);
    }

    #[tokio::test]
    async fn delete_is_soft_and_deleted_false_restores() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let path = format!("/api/v4/users/{id}");
        let deleted = client.delete(&path).await;
        deleted.assert_ok("users");
        assert_eq!(deleted.json["data"][0]["deleted"], true);
        assert_eq!(profile(&deleted.json)["active"], false);
        client.delete(&path).await.assert_ok("users");
        let kept = client.get(&format!("/api/v4/contacts/{id}")).await;
        assert_eq!(kept.json["data"][0]["deleted"], true, "the record is kept");
        client
            .put(&path, &[("active", "true")])
            .await
            .assert_error(403, "not_allowed");
        let restored = client
            .put(&path, &[("deleted", "false"), ("userTypeId", "KTAAAAAE")])
            .await;
        restored.assert_ok("users");
        assert_eq!(restored.json["data"][0]["deleted"], false);
        assert_eq!(profile(&restored.json)["active"], true);
        assert_eq!(profile(&restored.json)["userTypeId"], "KTAAAAAE");
        assert_eq!(
            client.get("/api/v4/contacts").await.ids(),
            std::slice::from_ref(&id)
        );
        let again = client.put(&path, &[("deleted", "true")]).await;
        assert_eq!(again.json["data"][0]["deleted"], true);
    }

    #[tokio::test]
    async fn delete_of_an_unknown_user_is_404() {
        let client = Client::memory();
        client
            .delete("/api/v4/users/KUAAAA77")
            .await
            .assert_error(404, "resource_not_found");
    }
}
