//! Rates as operators write them ("20/s", "600/min") and the GCRA quota the
//! connection limiters and upstream budgets both take from them, on a clock
//! tokio drives (so paused-time tests drive the limiters too).

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};

/// `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: std::num::NonZeroU32,
    pub per: std::time::Duration,
    /// Requests allowed at once.
    pub burst: std::num::NonZeroU32,
}

impl Rate {
    /// The GCRA quota of this rate, for the connection limiters and the
    /// upstream budgets alike.
    pub fn quota(&self) -> governor::Quota {
        let period = self.per / self.count.get();
        governor::Quota::with_period(period.max(std::time::Duration::from_nanos(1)))
            .unwrap_or_else(|| governor::Quota::per_second(self.count))
            .allow_burst(self.burst)
    }

    /// A GCRA limiter of this rate on tokio's clock.
    pub fn limiter(&self) -> Limiter {
        governor::RateLimiter::direct_with_clock(self.quota(), TokioClock::new())
    }

    /// "20/s", "600/min", "5000/h".
    pub fn parse(text: &str) -> Option<Rate> {
        let (count, unit) = text.trim().split_once('/')?;
        let count: std::num::NonZeroU32 = count.trim().parse().ok()?;
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return None,
        };
        Some(Rate {
            count,
            per: std::time::Duration::from_secs(seconds),
            burst: count,
        })
    }
}

/// A direct (unkeyed) GCRA limiter on [`TokioClock`].
pub type Limiter =
    governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Duration>>;

/// governor's clock read from `tokio::time`: the wall clock in service, and
/// the runtime's paused clock in tests, so a limiter's decisions and the
/// waits it asks for follow `tokio::time::advance`.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    /// Time since the clock was made: governor only subtracts and adds.
    type Instant = std::time::Duration;

    fn now(&self) -> Self::Instant {
        self.origin.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_limiter_refills_as_tokio_time_advances() {
        let limiter = Rate::parse("2/s").unwrap().limiter();
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_ok());
        let not_until = limiter.check().unwrap_err();
        let wait = not_until.wait_time_from(limiter.clock().now());
        assert_eq!(wait, std::time::Duration::from_millis(500));
        tokio::time::advance(std::time::Duration::from_millis(499)).await;
        assert!(limiter.check().is_err());
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
    }
}
