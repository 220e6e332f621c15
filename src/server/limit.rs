//! Per-connection rate limits (GCRA, `governor`): a request over the limit is
//! held up to the pacing wait (the connection's, else its dialect's), then
//! answered 429 with the `Retry-After` the limiter computes.

use std::time::Duration;

use crate::cluster::{ClusterStore, RateCheck, SharedRate};
use crate::config::Rate;
use crate::dialect::Dialect;
use crate::scim::error::ScimError;

pub struct ConnectionLimiter {
    connection: String,
    limiter: SharedRate,
    /// The connection's own pacing wait; `None`: the dialect's.
    max_wait: Option<Duration>,
}

impl ConnectionLimiter {
    /// With a cluster store, the rate holds for every replica together.
    pub fn new(
        connection: &str,
        rate: Rate,
        max_wait: Option<Duration>,
        cluster: Option<&ClusterStore>,
    ) -> Self {
        ConnectionLimiter {
            connection: connection.to_string(),
            limiter: SharedRate::new(rate, cluster, &format!("connection:{connection}")),
            max_wait,
        }
    }
}

/// `Ok` once the request may pass (perhaps after a wait); otherwise the 429.
pub async fn admit(limiter: &ConnectionLimiter, dialect: &Dialect) -> Result<(), ScimError> {
    let max_wait = limiter.max_wait.unwrap_or(dialect.pacing);
    let mut waited = Duration::ZERO;
    loop {
        let wait = match limiter.limiter.check().await {
            RateCheck::Allowed => {
                if !waited.is_zero() {
                    tracing::debug!(
                        waited_ms = waited.as_millis() as u64,
                        "request paced by the rate limit"
                    );
                }
                return Ok(());
            }
            RateCheck::Wait(wait) => wait,
            RateCheck::Unavailable => {
                return Err(ScimError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "the gateway cannot reach its cluster store to apply this connection's rate \
                     limit; retry after 1 s",
                )
                .with_retry_after(1));
            }
        };
        if waited + wait > max_wait {
            metrics::counter!("scimgate_rate_limited_total", "connection" => limiter.connection.clone()).increment(1);
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            return Err(ScimError::new(
                http::StatusCode::TOO_MANY_REQUESTS,
                None,
                format!("this connection's rate limit is reached; retry after {seconds} s"),
            )
            .with_retry_after(seconds));
        }
        tokio::time::sleep(wait).await;
        waited += wait;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn dialect(pacing_ms: u64) -> Dialect {
        let mut dialect = Dialect::generic();
        dialect.pacing = Duration::from_millis(pacing_ms);
        dialect
    }

    fn two_per_second(max_wait_ms: Option<u64>) -> ConnectionLimiter {
        let rate = Rate::parse("2/s").unwrap();
        ConnectionLimiter::new("c", rate, max_wait_ms.map(Duration::from_millis), None)
    }

    #[tokio::test(start_paused = true)]
    async fn over_the_limit_a_request_is_paced_up_to_the_dialects_wait() {
        let limiter = two_per_second(None);
        let paced = dialect(600);
        let started = Instant::now();
        for _ in 0..2 {
            assert!(admit(&limiter, &paced).await.is_ok());
        }
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "the burst passes at once"
        );
        // The next slot is 500 ms away, within the 600 ms pacing wait.
        assert!(admit(&limiter, &paced).await.is_ok());
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_wait_a_request_is_refused_at_once_with_retry_after() {
        // The connection's own wait (100 ms) overrides the dialect's (600 ms).
        let limiter = two_per_second(Some(100));
        let paced = dialect(600);
        for _ in 0..2 {
            assert!(admit(&limiter, &paced).await.is_ok());
        }
        let started = Instant::now();
        let refused = admit(&limiter, &paced).await.unwrap_err();
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "no wait it cannot finish"
        );
        assert_eq!(refused.status, http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(1));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(admit(&limiter, &paced).await.is_ok(), "the slot came back");
    }

    #[test]
    fn quota_spreads_the_count_over_the_period_with_the_burst() {
        let rate = Rate::parse("600/min").unwrap();
        let limiter = rate.limiter();
        // The whole burst passes at once, the next one does not.
        for _ in 0..600 {
            assert!(limiter.check().is_ok());
        }
        assert!(limiter.check().is_err());
    }
}
