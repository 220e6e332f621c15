//! The HTTP client toward one upstream API: pooled connections, the mapping's
//! auth, timeouts, bounded retries of idempotent calls, and a typed
//! [`CallError`] for every call that does not succeed (never the upstream's
//! raw body).

mod breaker;
mod budget;
mod oauth;
mod recorder;
mod stream;

pub use recorder::{RecordedCall, Recorder};

use std::sync::Arc;
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use rand::Rng;
use serde_json::Value;

use crate::audit::{Journal, Step};
use crate::cluster::ClusterStore;
use crate::config::Upstream;
use crate::mapping::{Auth, BodyEncoding, Refusal, UpstreamMapping, UpstreamRequest, form_pairs};
use crate::scim::json::Tree;

/// A call that did not succeed. Callers decide on the variant, never on a
/// status; what the IdP is told is decided at the server's error boundary.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The mapping's error rules read the answer as: the record is not there.
    #[error("{}", .0.detail)]
    Missing(Refusal),
    /// The upstream refused the call, as the mapping's error rules read it.
    #[error("{}", .0.detail)]
    Refused(Refusal),
    /// The upstream asks the gateway to slow down (HTTP 429 or 503); its
    /// `Retry-After`, capped, is passed on.
    #[error("{}", .refusal.detail)]
    Throttled { refusal: Refusal, retry_after: u64 },
    /// No usable answer: unreachable, timed out, over a limit, unreadable.
    #[error(transparent)]
    Failed(#[from] UpstreamError),
}

/// One attempt as a provisioning record lists it.
fn step(request: &UpstreamRequest, status: u16, elapsed: Duration) -> Step {
    Step {
        call: request.label.to_string(),
        method: request.method.to_string(),
        status,
        latency_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
    }
}

/// Upstream bodies larger than this are refused rather than buffered.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
const RETRIES: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream API did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the upstream API could not be reached")]
    Unreachable,
    #[error("the upstream API answered with a body that is not JSON")]
    BadBody,
    #[error("the upstream record's version cannot be sent in a header (update_precondition)")]
    BadVersion,
    #[error("the upstream API answered with more than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error(
        "the upstream's token endpoint answered with more than {0} bytes, too many for a token"
    )]
    TokenAnswerTooLarge(usize),
    #[error("the upstream client could not be built: {0}")]
    Setup(String),
    #[error("secret `{0}` for the upstream auth header is not a valid header value")]
    BadSecret(String),
    #[error("the upstream API's request budget is spent; retry after {0} s")]
    RateBudget(u64),
    #[error("the upstream API already has as many requests in flight as the gateway allows")]
    Saturated,
    #[error(
        "the upstream API has been failing; the gateway stops calling it for {0} s and then tries again"
    )]
    CircuitOpen(u64),
    #[error(
        "the upstream's token endpoint refused the gateway's client credentials (HTTP {0}); check the upstream secrets in the gateway config"
    )]
    TokenRefused(u16),
}

#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as a value; null when it was streamed, or kept as `text`.
    pub body: Value,
    /// A success's body as text, for a call that asked for it so
    /// ([`UpstreamClient::call_for_text`]); empty otherwise.
    pub text: String,
}

impl UpstreamResponse {
    /// The answer read from its `text` ([`UpstreamClient::call_for_text`])
    /// into a tree that borrows it: the value [`UpstreamClient::call`]'s
    /// `body` holds, a body of only whitespace being null as there.
    pub fn tree(&self) -> Result<Tree<'_>, UpstreamError> {
        if self.text.bytes().all(|byte| byte.is_ascii_whitespace()) {
            return Ok(Tree::Owned(Value::Null));
        }
        crate::scim::json::tree_from_str(&self.text).map_err(|_| UpstreamError::BadBody)
    }
}

/// How a call's answer body is read.
#[derive(Clone, Copy)]
enum Reading<'s> {
    /// Whole, into a value.
    Value,
    /// A success's whole, kept as text for the caller to read into a tree
    /// that borrows it; a failure's into a value, for the error table.
    Text,
    /// A success's chunk by chunk into a stream (never retried: part of it
    /// may be taken already).
    Stream(&'s BodyStream),
}

/// The HTTP client every upstream call goes through, before its TLS
/// settings; the benchmark's bare forwarder (its floor) is built on it too.
pub fn http_client(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
}

/// How long a streamed list may take, its body included.
const STREAM_TIMEOUT: Duration = Duration::from_secs(600);

/// Where a streamed answer's body goes, chunk by chunk.
type BodyStream = tokio::sync::mpsc::Sender<bytes::Bytes>;

/// An upstream answered in this process instead of over the network: each
/// request goes to it exactly as it would be sent, and its answer is read as
/// an HTTP one (the in-process instruction benchmark's, whose count then
/// holds the gateway's work and none of a socket's).
pub type InProcess = Arc<
    dyn Fn(
            http::Request<bytes::Bytes>,
        ) -> std::pin::Pin<Box<dyn Future<Output = http::Response<bytes::Bytes>> + Send>>
        + Send
        + Sync,
>;

/// `request` answered by `serve`, as a response from the network would be.
async fn answer_in_process(serve: &InProcess, request: reqwest::Request) -> reqwest::Response {
    let mut sent = http::Request::new(
        request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(bytes::Bytes::copy_from_slice)
            .unwrap_or_default(),
    );
    *sent.method_mut() = request.method().clone();
    *sent.headers_mut() = request.headers().clone();
    // The URL is one reqwest built from a parsed base: always a URI.
    if let Ok(uri) = request.url().as_str().parse() {
        *sent.uri_mut() = uri;
    }
    reqwest::Response::from(serve(sent).await)
}

/// A client bound to one upstream; cheap to clone.
#[derive(Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    mapping: Arc<UpstreamMapping>,
    /// `mapping.base_url`, parsed once: each call only sets the path.
    base_url: reqwest::Url,
    /// The upstream's name as a metric label, shared rather than copied.
    label: metrics::SharedString,
    auth: Option<(HeaderName, HeaderValue)>,
    tokens: Option<Arc<oauth::TokenSource>>,
    /// Set by `scimgate explain`: record calls instead of sending them.
    recorder: Option<Arc<Recorder>>,
    /// Set by the instruction benchmark: answered in this process.
    in_process: Option<InProcess>,
    budget: Arc<budget::Budget>,
    breaker: Arc<breaker::Breaker>,
    /// The upstream's secret values, masked in any upstream text quoted.
    secrets: Arc<[String]>,
    max_retry_after_s: u64,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("upstream", &self.mapping.name)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    pub fn new(upstream: &Upstream) -> Result<Self, UpstreamError> {
        Self::with_cluster(upstream, None)
    }

    /// A client whose request rate, with a cluster store, holds for every
    /// replica together.
    pub fn with_cluster(
        upstream: &Upstream,
        cluster: Option<&ClusterStore>,
    ) -> Result<Self, UpstreamError> {
        let mapping = upstream.mapping.clone();
        let mut builder = http_client(mapping.timeout);
        if let Some(ca) = &upstream.tls.ca_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(ca).map_err(|_| {
                UpstreamError::Setup("the upstream CA file is not PEM certificates".into())
            })? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if let Some(identity) = &upstream.tls.identity_pem {
            // The message never quotes the key.
            let identity =
                reqwest::Identity::from_pem(identity.expose().as_bytes()).map_err(|_| {
                    UpstreamError::Setup(
                        "the upstream client certificate or key is not usable PEM".into(),
                    )
                })?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| UpstreamError::Setup(e.to_string()))?;
        let secret = |name: &str| {
            upstream
                .secrets
                .get(name)
                .map(|s| s.expose().to_string())
                .ok_or_else(|| UpstreamError::BadSecret(name.to_string()))
        };
        let sensitive = |name: &str, value: String| {
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| UpstreamError::BadSecret(name.to_string()))?;
            value.set_sensitive(true);
            Ok::<_, UpstreamError>(value)
        };
        let auth = match &mapping.auth {
            Auth::None | Auth::OAuth2ClientCredentials { .. } => None,
            Auth::Header {
                header,
                prefix,
                secret: name,
            } => Some((
                header.clone(),
                sensitive(name, format!("{prefix}{}", secret(name)?))?,
            )),
            Auth::Bearer { secret: name } => Some((
                AUTHORIZATION,
                sensitive(name, format!("Bearer {}", secret(name)?))?,
            )),
            Auth::Basic {
                username,
                secret: name,
            } => {
                use base64::Engine;
                let credentials = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", secret(name)?));
                Some((
                    AUTHORIZATION,
                    sensitive(name, format!("Basic {credentials}"))?,
                ))
            }
        };
        let tokens = match &mapping.auth {
            Auth::OAuth2ClientCredentials {
                token_url,
                client_id,
                secret: name,
                scope,
                in_body,
            } => Some(Arc::new(oauth::TokenSource::new(
                // A path is relative to the (possibly overridden) base URL.
                if token_url.starts_with('/') {
                    format!("{}{token_url}", mapping.base_url)
                } else {
                    token_url.clone()
                },
                client_id.clone(),
                secret(name)?,
                scope.clone(),
                *in_body,
            ))),
            _ => None,
        };
        let base_url = reqwest::Url::parse(&mapping.base_url)
            .map_err(|e| UpstreamError::Setup(format!("base_url: {e}")))?;
        let label = metrics::SharedString::from(Arc::<str>::from(mapping.name.as_str()));
        let secrets = upstream
            .secrets
            .values()
            .map(|s| s.expose().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(UpstreamClient {
            secrets,
            max_retry_after_s: upstream.budget.max_retry_after_s,
            http,
            base_url,
            label,
            mapping,
            auth,
            tokens,
            recorder: None,
            in_process: None,
            budget: Arc::new(budget::Budget::new(
                &upstream.budget,
                cluster,
                &upstream.name,
            )),
            breaker: Arc::new(breaker::Breaker::new(upstream.budget.breaker)),
        })
    }

    /// A client that records calls into `recorder` and sends nothing.
    pub fn recording(upstream: &Upstream, recorder: Arc<Recorder>) -> Result<Self, UpstreamError> {
        let mut client = Self::new(upstream)?;
        client.recorder = Some(recorder);
        Ok(client)
    }

    /// A client whose calls `serve` answers in this process: everything
    /// but the socket, as [`new`](Self::new)'s.
    pub fn in_process(upstream: &Upstream, serve: InProcess) -> Result<Self, UpstreamError> {
        let mut client = Self::new(upstream)?;
        client.in_process = Some(serve);
        Ok(client)
    }

    pub fn mapping(&self) -> &UpstreamMapping {
        &self.mapping
    }

    /// The mapping, for work that outlives a borrow of the client (a
    /// blocking thread's).
    pub fn shared_mapping(&self) -> Arc<UpstreamMapping> {
        self.mapping.clone()
    }

    /// Sends the request; non-2xx answers become SCIM errors through the
    /// mapping's error table.
    pub async fn call(&self, request: &UpstreamRequest) -> Result<UpstreamResponse, CallError> {
        self.call_with(request, Reading::Value).await
    }

    /// [`call`](Self::call), a success's body kept as checked UTF-8 text
    /// (`text`; `body` is then null) for the caller to read into a tree
    /// that borrows it: an answer only mapped and written out is never
    /// copied into a value first.
    pub async fn call_for_text(
        &self,
        request: &UpstreamRequest,
    ) -> Result<UpstreamResponse, CallError> {
        self.call_with(request, Reading::Text).await
    }

    /// [`call`](Self::call), a success's body read as `reading` says.
    async fn call_with(
        &self,
        request: &UpstreamRequest,
        reading: Reading<'_>,
    ) -> Result<UpstreamResponse, CallError> {
        let response = self.send_with(request, reading).await?;
        if response.status.is_success() {
            return Ok(response);
        }
        let clean = |message: &str| redact(message, &self.secrets);
        let mut refusal = self
            .mapping
            .errors
            .read_cleaned(response.status, &response.body, &clean);
        refusal.detail = redact(&refusal.detail, &self.secrets);
        if response.status == StatusCode::TOO_MANY_REQUESTS
            || response.status == StatusCode::SERVICE_UNAVAILABLE
        {
            let seconds = response
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(5)
                .min(self.max_retry_after_s);
            refusal.status = response.status;
            refusal.scim_type = None;
            return Err(CallError::Throttled {
                refusal,
                retry_after: seconds,
            });
        }
        // The mapping's error rules decide what the answer means (a 403
        // "deleted" may mean not found); callers decide on the variant.
        Err(if refusal.means_missing() {
            CallError::Missing(refusal)
        } else {
            CallError::Refused(refusal)
        })
    }

    /// Sends with bounded, jittered retries for idempotent methods only: a
    /// create is never sent twice.
    pub async fn send(&self, request: &UpstreamRequest) -> Result<UpstreamResponse, UpstreamError> {
        self.send_with(request, Reading::Value).await
    }

    /// A streamed body is never retried: part of it may be taken already.
    async fn send_with(
        &self,
        request: &UpstreamRequest,
        reading: Reading<'_>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        if let Some(recorder) = &self.recorder {
            let mut answer =
                recorder.answer(self.url_of(request), self.masked_headers(request), request);
            if let Reading::Text = reading {
                answer.text = answer.body.take().to_string();
            }
            return Ok(answer);
        }
        let idempotent = matches!(request.method, Method::GET | Method::PUT | Method::DELETE)
            && !matches!(reading, Reading::Stream(_));
        let mut attempt = 0;
        loop {
            let result = self.guarded(request, reading).await;
            let retryable = match &result {
                Err(UpstreamError::Unreachable) | Err(UpstreamError::Timeout(_)) => true,
                Ok(response) => matches!(
                    response.status,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                ),
                Err(_) => false,
            };
            if !(idempotent && retryable && attempt < RETRIES) {
                return result;
            }
            attempt += 1;
            let base = 50u64 << attempt;
            let jitter = rand::rng().random_range(0..=base);
            tracing::debug!(
                attempt,
                retryable = true,
                "retrying idempotent upstream call"
            );
            tokio::time::sleep(Duration::from_millis(base + jitter)).await;
        }
    }

    /// One attempt behind the circuit breaker and the upstream's budget.
    async fn guarded(
        &self,
        request: &UpstreamRequest,
        reading: Reading<'_>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let outcome = self.breaker.admit_tracked().map_err(|wait| {
            UpstreamError::CircuitOpen(wait.as_secs_f64().ceil().max(1.0) as u64)
        })?;
        // A refusal by the budget drops `outcome` unreported: the probe, if
        // this was it, goes back to the breaker.
        let _ticket = self.budget.admit().await?;
        let result = self.send_once(request, reading).await;
        let healthy = match &result {
            Ok(response) => !response.status.is_server_error(),
            Err(UpstreamError::Unreachable | UpstreamError::Timeout(_)) => false,
            // A refused token or a bad body is not the upstream being down.
            Err(_) => true,
        };
        let before = self.breaker.state();
        outcome.record(healthy);
        let after = self.breaker.state();
        if before != after {
            tracing::warn!(upstream = %self.mapping.name, state = ?after, "upstream circuit breaker changed state");
            let value = match after {
                breaker::State::Closed => 0.0,
                breaker::State::Open => 1.0,
                breaker::State::HalfOpen => 2.0,
            };
            metrics::gauge!("scimgate_upstream_breaker_state", "upstream" => self.label.clone())
                .set(value);
        }
        result
    }

    /// The full URL of a request, as it would be sent.
    fn url_of(&self, request: &UpstreamRequest) -> String {
        let mut url = format!("{}{}", self.mapping.base_url, request.path);
        let mut pairs = request.query.clone();
        if let (BodyEncoding::Query, Some(body)) = (request.encoding, &request.body) {
            pairs.extend(form_pairs(body));
        }
        if !pairs.is_empty() {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs.iter())
                .finish();
            url.push('?');
            url.push_str(&query);
        }
        url
    }

    /// The headers a request would carry, secrets masked.
    fn masked_headers(&self, request: &UpstreamRequest) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if let Some((name, _)) = &self.auth {
            headers.push((name.to_string(), "****".to_string()));
        }
        if self.tokens.is_some() {
            headers.push((AUTHORIZATION.to_string(), "Bearer ****".to_string()));
        }
        if let Some((name, version)) = &request.precondition {
            headers.push((name.to_string(), version.clone()));
        }
        if request.body.is_some() {
            let content_type = match request.encoding {
                BodyEncoding::Json => request
                    .content_type
                    .as_deref()
                    .unwrap_or("application/json"),
                BodyEncoding::Form => BodyEncoding::FORM_MEDIA_TYPE,
                BodyEncoding::Query => return headers,
            };
            headers.push((CONTENT_TYPE.to_string(), content_type.to_string()));
        }
        headers
    }

    /// One exchange; with OAuth2, a 401 drops the token and retries once
    /// with a fresh one (it may have been revoked or expired early).
    async fn send_once(
        &self,
        request: &UpstreamRequest,
        reading: Reading<'_>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let response = self.exchange(request, reading).await?;
        if response.status == StatusCode::UNAUTHORIZED
            && let Some(tokens) = &self.tokens
        {
            tokens.invalidate().await;
            return self.exchange(request, reading).await;
        }
        Ok(response)
    }

    /// A call that got no (whole) answer, marked on its span.
    fn transport_failure(&self, error: &reqwest::Error, trace: &tracing::Span) -> UpstreamError {
        let (failure, error_type) = if error.is_timeout() {
            (UpstreamError::Timeout(self.mapping.timeout), "timeout")
        } else {
            (UpstreamError::Unreachable, "unreachable")
        };
        crate::telemetry::failed(trace, error_type);
        failure
    }

    /// The call's client span when traces are exported (`Span::none()`
    /// otherwise): one per attempt, named by the mapping's path template,
    /// never by the path sent, which carries ids.
    fn trace_span(&self, request: &UpstreamRequest) -> tracing::Span {
        if !crate::telemetry::enabled() {
            return tracing::Span::none();
        }
        let method = request.method.as_str();
        tracing::info_span!(
            target: crate::telemetry::TARGET,
            "upstream call",
            otel.name = format!("{method} {}", request.template).as_str(),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            "http.request.method" = method,
            "url.template" = &*request.template,
            "server.address" = self.base_url.host_str(),
            "server.port" = self.base_url.port_or_known_default(),
            "http.response.status_code" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            "scimgate.upstream" = self.mapping.name.as_str(),
            "scimgate.call" = &*request.label,
        )
    }

    async fn exchange(
        &self,
        request: &UpstreamRequest,
        reading: Reading<'_>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        // The base URL's path, then the mapping's (already percent-encoded)
        // path; `set_path` escapes anything that would start a query.
        let mut url = self.base_url.clone();
        let path = format!(
            "{}{}",
            self.base_url.path().trim_end_matches('/'),
            request.path
        );
        url.set_path(&path);
        if !request.query.is_empty() {
            // Straight into the URL: reqwest's `query` goes through serde.
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .header(http::header::ACCEPT, "application/json");
        if let Reading::Stream(_) = reading {
            // A whole account's list, read as it arrives: the mapping's
            // timeout is for one call's answer, not a million records.
            builder = builder.timeout(STREAM_TIMEOUT.max(self.mapping.timeout));
        }
        if let Some((name, value)) = &self.auth {
            builder = builder.header(name.clone(), value.clone());
        }
        if let Some(tokens) = &self.tokens {
            builder = builder.header(AUTHORIZATION, tokens.authorization(&self.http).await?);
        }
        if let Some((name, version)) = &request.precondition {
            let value =
                http::HeaderValue::from_str(version).map_err(|_| UpstreamError::BadVersion)?;
            builder = builder.header(name.clone(), value);
        }
        if let Some(body) = &request.body {
            builder = match request.encoding {
                BodyEncoding::Json => builder
                    .header(
                        CONTENT_TYPE,
                        request
                            .content_type
                            .as_deref()
                            .unwrap_or("application/json"),
                    )
                    .body(crate::scim::json::to_vec(body)),
                BodyEncoding::Form => builder
                    .header(CONTENT_TYPE, BodyEncoding::FORM_MEDIA_TYPE)
                    .body(
                        form_urlencoded::Serializer::new(String::new())
                            .extend_pairs(form_pairs(body))
                            .finish(),
                    ),
                BodyEncoding::Query => builder.query(&form_pairs(body)),
            };
        }
        let trace = self.trace_span(request);
        if !trace.is_none() {
            builder = builder.headers(crate::telemetry::trace_headers(&trace));
        }
        let started = tokio::time::Instant::now();
        let sent = match &self.in_process {
            None => builder.send().await,
            Some(serve) => match builder.build() {
                Ok(built) => Ok(answer_in_process(serve, built).await),
                Err(error) => Err(error),
            },
        };
        let mut response = sent.map_err(|error| {
            // A write's provisioning record lists the attempt that got no answer too.
            Journal::note(|| step(request, 0, started.elapsed()));
            self.transport_failure(&error, &trace)
        })?;
        let status = response.status();
        // A client span is a failed call for a 4xx too.
        crate::telemetry::answered(&trace, status, status.as_u16() >= 400);
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        let streamed = match reading {
            Reading::Stream(stream) if status.is_success() => Some(stream),
            _ => None,
        };
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport_failure(&error, &trace))?
        {
            if let Some(stream) = streamed {
                // Its reader has stopped (the body's end was parsed, or it
                // was not JSON): what is left is of no use.
                if stream.send(chunk).await.is_err() {
                    break;
                }
                continue;
            }
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(UpstreamError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        let elapsed = started.elapsed();
        Journal::note(|| step(request, status.as_u16(), elapsed));
        metrics::histogram!(
            "scimgate_upstream_request_duration_seconds",
            "upstream" => self.label.clone(),
            "method" => crate::metric_labels::method(&request.method),
            "status" => crate::metric_labels::status(status)
        )
        .record(elapsed.as_secs_f64());
        tracing::debug!(
            upstream = %self.mapping.name,
            method = %request.method,
            path = %request.path,
            status = status.as_u16(),
            elapsed_us = elapsed.as_micros() as u64,
            "upstream call"
        );
        if let Reading::Text = reading
            && status.is_success()
        {
            // Read as JSON by the caller; a success's garbage is a
            // protocol failure there too.
            let text = String::from_utf8(bytes).map_err(|_| UpstreamError::BadBody)?;
            return Ok(UpstreamResponse {
                status,
                headers,
                body: Value::Null,
                text,
            });
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            match crate::scim::json::from_bytes(&bytes) {
                Ok(body) => body,
                // An error page in HTML still carries its status; only a
                // success with garbage is a protocol failure.
                Err(_) if !status.is_success() => Value::Null,
                Err(_) => return Err(UpstreamError::BadBody),
            }
        };
        Ok(UpstreamResponse {
            status,
            headers,
            body,
            text: String::new(),
        })
    }

    /// One GET of the base URL with this upstream's own client (its TLS
    /// settings: a private CA, a client certificate) and static auth, for
    /// readiness: any HTTP answer proves the upstream reachable. It passes
    /// neither breaker nor budget (a probe must not spend the IdPs'
    /// requests) and fetches no OAuth2 token (one per probe would load the
    /// token endpoint).
    pub async fn probe(&self) -> Result<StatusCode, UpstreamError> {
        const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
        if self.recorder.is_some() {
            return Ok(StatusCode::OK);
        }
        let mut request = self.http.get(self.base_url.clone()).timeout(PROBE_TIMEOUT);
        if let Some((name, value)) = &self.auth {
            request = request.header(name.clone(), value.clone());
        }
        let response = request.send().await.map_err(|error| {
            if error.is_timeout() {
                UpstreamError::Timeout(PROBE_TIMEOUT)
            } else {
                UpstreamError::Unreachable
            }
        })?;
        Ok(response.status())
    }
}

/// `text` with every secret value and any credential it carries masked: a
/// URL's userinfo (`scheme://user:password@`) and the token after `Bearer`
/// or `Basic`. Upstreams have echoed all three in error messages.
fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "****");
        }
    }
    let mut masked = String::with_capacity(out.len());
    let mut words = out.split_whitespace().peekable();
    while let Some(word) = words.next() {
        let word = match word.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('@') {
                Some((userinfo, host)) if !userinfo.contains('/') => {
                    format!("{scheme}://****@{host}")
                }
                _ => word.to_string(),
            },
            None => word.to_string(),
        };
        masked.push_str(&word);
        let scheme = word.trim_start_matches(['"', '\'', '(']);
        if (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic"))
            && words.peek().is_some()
        {
            words.next();
            masked.push_str(" ****");
        }
        if words.peek().is_some() {
            masked.push(' ');
        }
    }
    masked
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn secrets_urls_with_passwords_and_auth_tokens_are_masked() {
        let secrets = ["e2e-upstream-key".to_string()];
        let text = "bad key e2e-upstream-key for postgres://app:hunter2@db:5432/users, \
                    header Authorization: Bearer abc.def.ghi ok";
        let masked = redact(text, &secrets);
        for leaked in ["e2e-upstream-key", "hunter2", "abc.def.ghi"] {
            assert!(!masked.contains(leaked), "{masked}");
        }
        assert!(masked.contains("postgres://****@db:5432/users"), "{masked}");
        assert!(masked.ends_with("Bearer **** ok"), "{masked}");
        let tabbed = redact("Authorization:\tBearer\tabc.def", &[]);
        assert!(!tabbed.contains("abc.def"), "{tabbed}");
    }
}
