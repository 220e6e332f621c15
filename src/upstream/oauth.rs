//! OAuth2 client credentials (RFC 6749 §4.4) toward an upstream: the token is
//! fetched once, shared by every request, refreshed shortly before it
//! expires, and dropped when the upstream answers 401.

use std::time::Duration;

use http::HeaderValue;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::UpstreamError;

/// Refresh this long before the upstream says the token expires.
const EARLY: Duration = Duration::from_secs(30);
/// A token answer is a few hundred bytes; one larger than this is refused
/// before it is buffered (every other upstream read has its own cap too).
const MAX_TOKEN_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub struct TokenSource {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    /// Send the credentials as form fields rather than HTTP Basic.
    pub in_body: bool,
    cached: Mutex<Option<(HeaderValue, Instant)>>,
}

/// The answer's body, or an error once it passes [`MAX_TOKEN_ANSWER_BYTES`].
async fn bounded_body(mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    let too_large = || {
        tracing::warn!(
            limit = MAX_TOKEN_ANSWER_BYTES,
            "upstream token endpoint answered with a body too large for a token"
        );
        UpstreamError::TokenAnswerTooLarge(MAX_TOKEN_ANSWER_BYTES)
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_TOKEN_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| UpstreamError::Unreachable)?
    {
        if body.len() + chunk.len() > MAX_TOKEN_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenSource {
    pub fn new(
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
        in_body: bool,
    ) -> Self {
        TokenSource {
            token_url,
            client_id,
            client_secret,
            scope,
            in_body,
            cached: Mutex::new(None),
        }
    }

    /// The `Authorization` value to send; fetches a token when none is valid.
    /// Concurrent callers wait for one fetch rather than each making one.
    pub async fn authorization(
        &self,
        http: &reqwest::Client,
    ) -> Result<HeaderValue, UpstreamError> {
        let mut cached = self.cached.lock().await;
        if let Some((value, expires)) = cached.as_ref()
            && Instant::now() + EARLY < *expires
        {
            return Ok(value.clone());
        }
        let (value, lifetime) = self.fetch(http).await?;
        *cached = Some((value.clone(), Instant::now() + lifetime));
        Ok(value)
    }

    /// Forgets the token (the upstream refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
    ) -> Result<(HeaderValue, Duration), UpstreamError> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        if self.in_body {
            form.push(("client_id", &self.client_id));
            form.push(("client_secret", &self.client_secret));
        }
        let mut request = http.post(&self.token_url).form(&form);
        if !self.in_body {
            request = request.basic_auth(&self.client_id, Some(&self.client_secret));
        }
        let response = request
            .send()
            .await
            .map_err(|_| UpstreamError::Unreachable)?;
        if !response.status().is_success() {
            tracing::warn!(
                status = response.status().as_u16(),
                "upstream token endpoint refused the client credentials"
            );
            return Err(UpstreamError::TokenRefused(response.status().as_u16()));
        }
        let body = bounded_body(response).await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|_| UpstreamError::BadBody)?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
            .map_err(|_| UpstreamError::BadBody)?;
        value.set_sensitive(true);
        Ok((value, Duration::from_secs(answer.expires_in.unwrap_or(300))))
    }
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn source(server: &MockServer) -> TokenSource {
        TokenSource::new(
            format!("{}/oauth/token", server.uri()),
            "scimgate".into(),
            "secret".into(),
            None,
            false,
        )
    }

    #[tokio::test]
    async fn an_oversized_token_answer_is_refused_not_buffered() {
        let server = MockServer::start().await;
        // Valid JSON with a usable token: only its size is wrong.
        let padding = "x".repeat(MAX_TOKEN_ANSWER_BYTES);
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "t0k3n",
                "expires_in": 3600,
                "padding": padding,
            })))
            .mount(&server)
            .await;
        let answer = source(&server).authorization(&reqwest::Client::new()).await;
        assert!(
            matches!(answer, Err(UpstreamError::TokenAnswerTooLarge(_))),
            "{answer:?}"
        );
    }

    #[tokio::test]
    async fn a_token_answer_within_the_bound_is_used() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": "t0k3n",
                "expires_in": 3600,
            })))
            .mount(&server)
            .await;
        let answer = source(&server)
            .authorization(&reqwest::Client::new())
            .await
            .unwrap();
        assert_eq!(answer, "Bearer t0k3n");
    }
}
