//! An upstream's budget, shared by every connection that uses it: a request
//! rate and a cap on requests in flight. A request waits for the budget at
//! most `queue_timeout`, then fails with a retryable error: never an
//! unbounded queue in front of a fragile API.

use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::UpstreamError;
use crate::cluster::{ClusterStore, Lease, RateCheck, SharedRate, StoreDown};
use crate::config::Budget as BudgetSettings;

#[derive(Debug)]
pub struct Budget {
    rate: Option<SharedRate>,
    in_flight: Option<std::sync::Arc<Semaphore>>,
    /// With a cluster store: the upstream's `max_in_flight` slots for every
    /// replica together, under this key.
    shared_slots: Option<(ClusterStore, String, usize)>,
    queue_timeout: Duration,
}

/// Held while a request is in flight.
pub struct Ticket {
    _permit: Option<OwnedSemaphorePermit>,
    lease: Option<(ClusterStore, Lease)>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((store, lease)) = self.lease.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { store.release(lease).await });
        }
    }
}

impl Budget {
    /// With a cluster store, the rate holds for every replica together
    /// (`upstream` names its cell).
    pub fn new(settings: &BudgetSettings, cluster: Option<&ClusterStore>, upstream: &str) -> Self {
        Budget {
            rate: settings.rate.map(|rate| {
                SharedRate::never_refusing(rate, cluster, &format!("upstream:{upstream}"))
            }),
            in_flight: settings
                .max_in_flight
                .map(|n| std::sync::Arc::new(Semaphore::new(n))),
            shared_slots: cluster
                .zip(settings.max_in_flight)
                .map(|(store, max)| (store.clone(), store.key("in_flight", upstream), max)),
            queue_timeout: settings.queue_timeout,
        }
    }

    /// Waits (bounded) for a rate slot, then for an in-flight slot.
    pub async fn admit(&self) -> Result<Ticket, UpstreamError> {
        let deadline = Instant::now() + self.queue_timeout;
        if let Some(rate) = &self.rate {
            loop {
                let wait = match rate.check().await {
                    // A never-refusing rate (see `new`) does not answer
                    // `Unavailable`: it falls back to this replica's own.
                    RateCheck::Allowed | RateCheck::Unavailable => break,
                    RateCheck::Wait(wait) => wait,
                };
                if Instant::now() + wait > deadline {
                    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
                    return Err(UpstreamError::RateBudget(seconds));
                }
                tokio::time::sleep(wait).await;
            }
        }
        let permit = match &self.in_flight {
            None => None,
            Some(semaphore) => {
                match tokio::time::timeout_at(deadline, semaphore.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => Some(permit),
                    // Timed out, or the semaphore was closed (never, here).
                    _ => return Err(UpstreamError::Saturated),
                }
            }
        };
        // After this replica's own slot: its waiters queue here, not in Redis.
        let lease = match &self.shared_slots {
            Some((store, key, max)) => shared_slot(store, key, *max, deadline).await?,
            None => None,
        };
        Ok(Ticket {
            _permit: permit,
            lease,
        })
    }
}

/// One of the upstream's in-flight slots across the cluster, waited for
/// until `deadline` (polled: a slot frees when a call ends).
async fn shared_slot(
    store: &ClusterStore,
    key: &str,
    max: usize,
    deadline: Instant,
) -> Result<Option<(ClusterStore, Lease)>, UpstreamError> {
    let mut pause = Duration::from_millis(2);
    loop {
        match store.try_lease(key, max).await {
            Ok(Some(lease)) => return Ok(Some((store.clone(), lease))),
            Ok(None) if Instant::now() + pause > deadline => {
                return Err(UpstreamError::Saturated);
            }
            Ok(None) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            // Never refused here, whatever `on_unavailable` says: this is one
            // call of an operation whose earlier calls may have written.
            Err(StoreDown) => {
                store.fell_back("in_flight");
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;

    fn budget(rate: Option<&str>, in_flight: Option<usize>) -> Budget {
        Budget::new(
            &BudgetSettings {
                rate: rate.and_then(Rate::parse),
                max_in_flight: in_flight,
                queue_timeout: Duration::from_millis(50),
                max_retry_after_s: 300,
                breaker: Default::default(),
            },
            None,
            "test",
        )
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_cap_waits_then_refuses() {
        let budget = budget(None, Some(2));
        let first = budget.admit().await.unwrap();
        let _second = budget.admit().await.unwrap();
        assert!(matches!(
            budget.admit().await,
            Err(UpstreamError::Saturated)
        ));
        drop(first);
        assert!(
            budget.admit().await.is_ok(),
            "a freed slot admits the next request"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_budget_refuses_past_the_burst_with_retry_after() {
        let budget = budget(Some("3/min"), None);
        for _ in 0..3 {
            assert!(budget.admit().await.is_ok());
        }
        // The next slot is 20 s away, past the 50 ms queue: refused at once.
        let started = Instant::now();
        match budget.admit().await {
            Err(UpstreamError::RateBudget(seconds)) => assert_eq!(seconds, 20),
            other => panic!("expected a rate refusal, got {:?}", other.map(|_| ())),
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(budget.admit().await.is_ok(), "the slot is back after 20 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_slot_within_the_queue_timeout_is_waited_for() {
        // 40/s: a slot every 25 ms, inside the 50 ms queue timeout.
        let budget = budget(Some("40/s"), None);
        for _ in 0..40 {
            assert!(budget.admit().await.is_ok());
        }
        let started = Instant::now();
        assert!(budget.admit().await.is_ok());
        assert_eq!(started.elapsed(), Duration::from_millis(25));
    }
}
