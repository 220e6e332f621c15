//! `GET /account`: the one account this API serves, so a client can learn the
//! `accountId` that `PUT /users/{id}` `profile` needs.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::error::ApiError;
use super::params::Params;
use super::{WrikeApi, envelope};

pub(super) async fn get(State(api): State<WrikeApi>, params: Params) -> Result<Response, ApiError> {
    params.finish()?;
    Ok(envelope(
        "accounts",
        vec![json!({
            "id": api.account_id(),
            "name": "Reference account",
            "dateFormat": "MM/dd/yyyy",
            "firstDayOfWeek": "Mon",
            "workDays": ["Mon", "Tue", "Wed", "Thu", "Fri"],
        })],
    ))
}

#[cfg(test)]
mod tests {
    use crate::wrike::test_support::{ACCOUNT_ID, Client};

    #[tokio::test]
    async fn the_account_is_an_envelope_with_the_configured_id() {
        let client = Client::memory();
        let answer = client.get("/api/v4/account").await;
        answer.assert_ok("accounts");
        assert_eq!(answer.ids(), [ACCOUNT_ID]);
        client
            .get("/api/v4/account?fields=%5B%5D")
            .await
            .assert_error(400, "invalid_request");
    }
}
