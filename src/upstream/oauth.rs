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
        let answer: TokenAnswer = response.json().await.map_err(|_| UpstreamError::BadBody)?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
            .map_err(|_| UpstreamError::BadBody)?;
        value.set_sensitive(true);
        Ok((value, Duration::from_secs(answer.expires_in.unwrap_or(300))))
    }
}
