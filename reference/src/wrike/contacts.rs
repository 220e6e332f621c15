//! `/contacts`: the users of the account as contacts.
//!
//! - `GET /contacts?deleted=&fields=` lists every contact whose `deleted` flag equals
//!   `deleted` (default `false`), in creation order, unpaged. There is no filter by
//!   email or name.
//! - `GET /contacts/{id},{id},…` answers the contacts named (deleted ones too), in the
//!   order named; any unknown id is 404.
//! - `PUT /contacts/{id}` changes contact fields; `metadata` entries upsert by key and
//!   `value: null` removes a key. An empty `title`, `phone`, `companyName` or
//!   `location` clears it; an unset one is answered as `""`. A deleted contact is 403
//!   `not_allowed`.

use axum::extract::State;
use axum::response::Response;

use super::error::ApiError;
use super::params::Params;
use super::records::{MAX_IDS, METADATA_FIELD, check_text, parse_metadata};
use super::store::ContactUpdate;
use super::{Id, WrikeApi, envelope};

const KIND: &str = "contacts";

/// The optional fields contacts have.
pub(super) const FIELDS: &[&str] = &[METADATA_FIELD];

pub(super) fn wants_metadata(fields: &[String]) -> bool {
    fields.iter().any(|f| f == METADATA_FIELD)
}

pub(super) async fn list(
    State(api): State<WrikeApi>,
    mut params: Params,
) -> Result<Response, ApiError> {
    let deleted = params.bool("deleted")?.unwrap_or(false);
    let metadata = wants_metadata(&params.fields(FIELDS)?);
    params.finish()?;
    let contacts = api.store().read(|state| state.list_contacts(deleted))?;
    let account = api.account_id();
    Ok(envelope(
        KIND,
        contacts
            .iter()
            .map(|c| c.render(account, metadata))
            .collect(),
    ))
}

/// Splits `a,b,c`; empty, too many or repeated ids are 400.
fn split_ids(ids: &str) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = ids.split(',').map(str::to_owned).collect();
    if ids.iter().any(String::is_empty) {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid id list '{}'",
            ids.join(",")
        )));
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::invalid_parameter(format!(
            "At most {MAX_IDS} ids"
        )));
    }
    if let Some((i, id)) = ids
        .iter()
        .enumerate()
        .find(|(i, id)| ids[..*i].contains(id))
    {
        return Err(ApiError::invalid_parameter(format!(
            "Id '{id}' is named twice (position {})",
            i + 1
        )));
    }
    Ok(ids)
}

pub(super) async fn get(
    State(api): State<WrikeApi>,
    Id(ids): Id,
    mut params: Params,
) -> Result<Response, ApiError> {
    let ids = split_ids(&ids)?;
    let metadata = wants_metadata(&params.fields(FIELDS)?);
    params.finish()?;
    let contacts = api.store().read(|state| state.contacts(&ids))??;
    let account = api.account_id();
    Ok(envelope(
        KIND,
        contacts
            .iter()
            .map(|c| c.render(account, metadata))
            .collect(),
    ))
}

/// An optional text field: empty clears it.
fn optional_text(params: &mut Params, name: &str) -> Result<Option<Option<String>>, ApiError> {
    match params.string(name) {
        None => Ok(None),
        Some(text) => {
            check_text(name, &text)?;
            Ok(Some((!text.is_empty()).then_some(text)))
        }
    }
}

fn name_text(params: &mut Params, name: &str) -> Result<Option<String>, ApiError> {
    let text = params.string(name);
    if let Some(text) = &text {
        check_text(name, text)?;
    }
    Ok(text)
}

pub(super) async fn update(
    State(api): State<WrikeApi>,
    Id(id): Id,
    mut params: Params,
) -> Result<Response, ApiError> {
    if id.contains(',') {
        return Err(ApiError::invalid_parameter(
            "Modify Contact takes one contact id",
        ));
    }
    let update = ContactUpdate {
        first_name: name_text(&mut params, "firstName")?,
        last_name: name_text(&mut params, "lastName")?,
        title: optional_text(&mut params, "title")?,
        phone: optional_text(&mut params, "phone")?,
        company_name: optional_text(&mut params, "companyName")?,
        location: optional_text(&mut params, "location")?,
        metadata: params.json("metadata")?.map(parse_metadata).transpose()?,
    };
    let metadata = wants_metadata(&params.fields(FIELDS)?);
    params.finish()?;
    let contact = api
        .store()
        .write(|state| state.update_contact(&id, update))?;
    Ok(envelope(
        KIND,
        vec![contact.render(api.account_id(), metadata)],
    ))
}

#[cfg(test)]
mod tests {
    use crate::wrike::test_support::Client;
    use serde_json::json;

    #[tokio::test]
    async fn list_is_an_envelope_of_live_contacts_in_creation_order() {
        let client = Client::memory();
        let empty = client.get("/api/v4/contacts").await;
        assert_eq!(empty.json, json!({"kind": "contacts", "data": []}));
        let a = client.invite("a@example.com").await;
        let b = client.invite("b@example.com").await;
        let answer = client.get("/api/v4/contacts").await;
        assert_eq!(answer.json["kind"], "contacts");
        assert_eq!(answer.ids(), [a, b]);
    }

    #[tokio::test]
    async fn deleted_contacts_are_listed_only_with_deleted_true() {
        let client = Client::memory();
        let kept = client.invite("kept@example.com").await;
        let gone = client.invite("gone@example.com").await;
        client
            .delete(&format!("/api/v4/users/{gone}"))
            .await
            .assert_ok("users");
        assert_eq!(
            client.get("/api/v4/contacts").await.ids(),
            std::slice::from_ref(&kept)
        );
        assert_eq!(
            client.get("/api/v4/contacts?deleted=false").await.ids(),
            [kept]
        );
        let deleted = client.get("/api/v4/contacts?deleted=true").await;
        assert_eq!(deleted.ids(), [gone]);
        assert_eq!(deleted.json["data"][0]["deleted"], true);
    }

    #[tokio::test]
    async fn there_is_no_filter_by_email_or_name() {
        let client = Client::memory();
        client.invite("a@example.com").await;
        for query in [
            "email=a@example.com",
            "emails=%5B%22a@example.com%22%5D",
            "name=A",
            "firstName=A",
        ] {
            client
                .get(&format!("/api/v4/contacts?{query}"))
                .await
                .assert_error(400, "invalid_request");
        }
        client
            .get("/api/v4/contacts?deleted=maybe")
            .await
            .assert_error(400, "invalid_parameter");
    }

    #[tokio::test]
    async fn a_single_contact_is_still_an_array_and_ids_may_be_comma_separated() {
        let client = Client::memory();
        let a = client.invite("a@example.com").await;
        let b = client.invite("b@example.com").await;
        let one = client.get(&format!("/api/v4/contacts/{a}")).await;
        one.assert_ok("contacts");
        assert_eq!(one.ids(), std::slice::from_ref(&a));
        assert_eq!(one.json["data"][0]["type"], "Person");
        let two = client.get(&format!("/api/v4/contacts/{b},{a}")).await;
        assert_eq!(two.ids(), [b.clone(), a.clone()]);
        client
            .get(&format!("/api/v4/contacts/{a},KUAAAA77"))
            .await
            .assert_error(404, "resource_not_found");
        for bad in [
            format!("{a},"),
            format!("{a},{a}"),
            vec![a.as_str(); 101].join(","),
        ] {
            client
                .get(&format!("/api/v4/contacts/{bad}"))
                .await
                .assert_error(400, "invalid_parameter");
        }
    }

    #[tokio::test]
    async fn put_changes_fields_and_empty_clears_optional_ones() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let path = format!("/api/v4/contacts/{id}");
        let answer = client
            .put(
                &path,
                &[
                    ("firstName", "Ada"),
                    ("lastName", "Lovelace"),
                    ("title", "Engineer"),
                    ("phone", "+44 20 7946 0000"),
                    ("companyName", "Analytical Engines"),
                    ("location", "London"),
                ],
            )
            .await;
        answer.assert_ok("contacts");
        let record = &answer.json["data"][0];
        assert_eq!(record["firstName"], "Ada");
        assert_eq!(record["lastName"], "Lovelace");
        assert_eq!(record["title"], "Engineer");
        assert_eq!(record["phone"], "+44 20 7946 0000");
        assert_eq!(record["companyName"], "Analytical Engines");
        assert_eq!(record["location"], "London");
        let cleared = client.put(&path, &[("title", ""), ("phone", "")]).await;
        let record = &cleared.json["data"][0];
        assert_eq!(record["title"], "", "{record}");
        assert_eq!(record["phone"], "", "{record}");
        assert_eq!(record["companyName"], "Analytical Engines");
    }

    #[tokio::test]
    async fn metadata_upserts_by_key_null_removes_and_is_shown_only_when_asked() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let path = format!("/api/v4/contacts/{id}");
        client
            .put(
                &path,
                &[(
                    "metadata",
                    r#"[{"key":"department","value":"R&D"},{"key":"costCenter","value":"42"}]"#,
                )],
            )
            .await
            .assert_ok("contacts");
        let answer = client
            .put(
                &path,
                &[
                    (
                        "metadata",
                        r#"[{"key":"department","value":"Sales"},{"key":"costCenter","value":null}]"#,
                    ),
                    ("fields", r#"["metadata"]"#),
                ],
            )
            .await;
        assert_eq!(
            answer.json["data"][0]["metadata"],
            json!([{"key": "department", "value": "Sales"}])
        );
        let plain = client.get(&path).await;
        assert!(plain.json["data"][0].get("metadata").is_none());
        let listed = client
            .get("/api/v4/contacts?fields=%5B%22metadata%22%5D")
            .await;
        assert_eq!(
            listed.json["data"][0]["metadata"],
            json!([{"key": "department", "value": "Sales"}])
        );
    }

    #[tokio::test]
    async fn malformed_or_unknown_parameters_are_refused() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let path = format!("/api/v4/contacts/{id}");
        client
            .put(&path, &[("metadata", "[{\"key\":")])
            .await
            .assert_error(400, "invalid_parameter");
        client
            .put(&path, &[("email", "b@example.com")])
            .await
            .assert_error(400, "invalid_request");
        client
            .put(&path, &[("fields", r#"["avatar"]"#)])
            .await
            .assert_error(400, "invalid_parameter");
        client
            .put("/api/v4/contacts/KUAAAA77", &[("title", "x")])
            .await
            .assert_error(404, "resource_not_found");
    }

    #[tokio::test]
    async fn parameters_may_come_in_the_query_string() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        let answer = client
            .send(
                http::Method::PUT,
                &format!("/api/v4/contacts/{id}?title=Chief"),
                None,
            )
            .await;
        assert_eq!(answer.json["data"][0]["title"], "Chief");
    }

    #[tokio::test]
    async fn a_deleted_contact_cannot_be_modified() {
        let client = Client::memory();
        let id = client.invite("a@example.com").await;
        client
            .delete(&format!("/api/v4/users/{id}"))
            .await
            .assert_ok("users");
        client
            .put(&format!("/api/v4/contacts/{id}"), &[("title", "x")])
            .await
            .assert_error(403, "not_allowed");
    }
}
