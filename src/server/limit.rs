//! Per-connection rate limits (GCRA, `governor`): a request over the limit is
//! held up to the pacing wait (the connection's, else its dialect's), then
//! answered 429 with the `Retry-After` the limiter computes.

use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, RateLimiter};

use crate::config::Rate;
use crate::dialect::Dialect;
use crate::scim::error::ScimError;

pub struct ConnectionLimiter {
    connection: String,
    limiter: DefaultDirectRateLimiter,
    /// The connection's own pacing wait; `None`: the dialect's.
    max_wait: Option<Duration>,
}

impl ConnectionLimiter {
    pub fn new(connection: &str, rate: Rate, max_wait: Option<Duration>) -> Self {
        ConnectionLimiter {
            connection: connection.to_string(),
            limiter: RateLimiter::direct(rate.quota()),
            max_wait,
        }
    }
}

/// `Ok` once the request may pass (perhaps after a wait); otherwise the 429.
pub async fn admit(limiter: &ConnectionLimiter, dialect: &Dialect) -> Result<(), ScimError> {
    let max_wait = limiter.max_wait.unwrap_or(dialect.pacing);
    let mut waited = Duration::ZERO;
    loop {
        let Err(not_until) = limiter.limiter.check() else {
            if !waited.is_zero() {
                tracing::debug!(
                    waited_ms = waited.as_millis() as u64,
                    "request paced by the rate limit"
                );
            }
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
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

    #[test]
    fn quota_spreads_the_count_over_the_period_with_the_burst() {
        let rate = Rate::parse("600/min").unwrap();
        let limiter = RateLimiter::direct(rate.quota());
        // The whole burst passes at once, the next one does not.
        for _ in 0..600 {
            assert!(limiter.check().is_ok());
        }
        assert!(limiter.check().is_err());
    }
}
