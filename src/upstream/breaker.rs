//! A circuit breaker per upstream: after enough consecutive failures it
//! opens and requests fail fast (503 with Retry-After) instead of piling onto
//! an API that is down; after the cooldown one request probes its recovery.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BreakerSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

/// Whether a request may go, and if it is the half-open probe.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Go {
        probe: bool,
    },
    /// Fail fast; the upstream may be tried again after this long.
    Refused(Duration),
}

/// An admitted request's duty to report its outcome. If it is dropped
/// unreported (the IdP gave up and the future was dropped, or the upstream
/// budget refused the call before it was sent), a half-open probe is given
/// back, so the next request probes: otherwise the breaker would wait for an
/// outcome that never comes and refuse every request until a reload.
#[derive(Debug)]
pub struct Outcome<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Outcome<'_> {
    pub fn record(mut self, success: bool) {
        self.reported = true;
        self.breaker.record(success, self.probe);
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.abandon_probe();
        }
    }
}

impl Breaker {
    pub fn new(spec: BreakerSpec) -> Self {
        Breaker {
            threshold: spec.failures.max(1),
            cooldown: Duration::from_millis(spec.cooldown_ms),
            inner: Mutex::new(Inner {
                failures: 0,
                open_until: None,
                probing: false,
            }),
        }
    }

    pub fn state(&self) -> State {
        let Ok(inner) = self.inner.lock() else {
            return State::Closed;
        };
        match inner.open_until {
            None => State::Closed,
            Some(until) if Instant::now() < until => State::Open,
            Some(_) => State::HalfOpen,
        }
    }

    fn admit(&self) -> Admission {
        // A poisoned lock means a panic elsewhere; let traffic through.
        let Ok(mut inner) = self.inner.lock() else {
            return Admission::Go { probe: false };
        };
        match inner.open_until {
            None => Admission::Go { probe: false },
            Some(until) => {
                let now = Instant::now();
                if now < until {
                    Admission::Refused(until - now)
                } else if inner.probing {
                    Admission::Refused(Duration::from_secs(1))
                } else {
                    inner.probing = true;
                    Admission::Go { probe: true }
                }
            }
        }
    }

    /// Admits a request and hands back the duty to report its outcome.
    pub fn admit_tracked(&self) -> Result<Outcome<'_>, Duration> {
        match self.admit() {
            Admission::Go { probe } => Ok(Outcome {
                breaker: self,
                probe,
                reported: false,
            }),
            Admission::Refused(wait) => Err(wait),
        }
    }

    /// A probe that ended without an outcome: the breaker stays half-open
    /// and the next request becomes the probe.
    fn abandon_probe(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.probing = false;
        }
    }

    /// Records the outcome of an admitted request.
    fn record(&self, success: bool, probe: bool) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if probe {
            inner.probing = false;
        }
        if success {
            inner.failures = 0;
            inner.open_until = None;
            return;
        }
        inner.failures = inner.failures.saturating_add(1);
        if probe || inner.failures >= self.threshold {
            inner.open_until = Some(Instant::now() + self.cooldown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSpec {
            failures: 3,
            cooldown_ms: 10_000,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_then_probes_after_the_cooldown() {
        let b = breaker();
        for _ in 0..2 {
            assert_eq!(b.admit(), Admission::Go { probe: false });
            b.record(false, false);
        }
        assert_eq!(b.state(), State::Closed);
        b.record(false, false);
        assert_eq!(b.state(), State::Open);
        assert!(matches!(b.admit(), Admission::Refused(d) if d <= Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.admit(), Admission::Go { probe: true });
        // Only one probe at a time.
        assert!(matches!(b.admit(), Admission::Refused(_)));
        b.record(true, true);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.admit(), Admission::Go { probe: false });
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again_and_a_success_resets_the_count() {
        let b = breaker();
        b.record(false, false);
        b.record(false, false);
        b.record(true, false);
        b.record(false, false);
        assert_eq!(
            b.state(),
            State::Closed,
            "the count restarts after a success"
        );
        for _ in 0..3 {
            b.record(false, false);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.admit(), Admission::Go { probe: true });
        b.record(false, true);
        assert_eq!(b.state(), State::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_without_an_outcome_lets_the_next_request_probe() {
        let b = breaker();
        for _ in 0..3 {
            b.record(false, false);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        let probe = b.admit_tracked().expect("the cooldown is over");
        assert!(b.admit_tracked().is_err(), "one probe at a time");
        drop(probe);
        let next = b
            .admit_tracked()
            .expect("the abandoned probe was given back");
        next.record(true);
        assert_eq!(b.state(), State::Closed);
    }
}
