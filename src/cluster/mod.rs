//! What the replicas of one gateway share, through Redis (`[cluster]`): each
//! connection's and each upstream's rate as one GCRA cell for the whole
//! cluster, each upstream's in-flight slots, and the per-resource locks that
//! serialise creates and read-modify-writes across replicas.
//!
//! Every decision is one round trip: the rate cell is a Lua script (Redis
//! runs scripts atomically) reading Redis's own clock, so replicas whose
//! clocks differ still agree; a lock is `SET NX PX` with a random token,
//! released by a compare-and-delete script, and kept alive while held, so a
//! crashed replica's locks expire after their TTL; an in-flight slot is a
//! member of a sorted set scored by its expiry, taken by a script that
//! first drops the expired ones.
//!
//! When Redis cannot be reached the operator's choice applies
//! (`on_unavailable`): `local` falls back to this replica's own limiters and
//! in-process locks, with a warning and the `scimgate_cluster_fallback_total`
//! metric; `refuse` answers 503 with `Retry-After`. The connection manager
//! reconnects by itself; `/readyz` reports the store while it is down.

mod index;

pub use index::SharedIndex;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::{ClusterSettings, Limiter, OnUnavailable, Rate};

/// The rate cell: `ARGV[1]` µs between requests, `ARGV[2]` µs of burst
/// tolerance, `ARGV[3]` requests wanted, `ARGV[4]` requests taken earlier
/// and not spent, given back first. Takes as many of the wanted as the cell
/// has room for and answers `{taken, 0}`; with no room, `{0, µs to wait}`,
/// charging nothing (a refused request costs the others nothing). Numbers
/// are formatted with `%.0f`: Lua's default conversion of a large number
/// loses digits.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local returned = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') - returned * interval
if tat < now then tat = now end
local room = math.floor((now + tolerance - tat) / interval)
if room < 1 then return {0, string.format('%.0f', tat + interval - now - tolerance)} end
local taken = math.min(wanted, room)
local next_tat = tat + taken * interval
local ttl = math.ceil((next_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl)
return {taken, '0'}
";

/// Deletes the lock only if it still holds our token.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Extends the lock only if it still holds our token.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// Takes one of `ARGV[1]` in-flight slots for `ARGV[2]` ms under id
/// `ARGV[3]`, dropping the slots whose time ran out first (a dead
/// replica's); answers 1 if taken, 0 if all are in use.
const LEASE: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Redis could not answer; what that means is `on_unavailable`'s to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cluster store (Redis) cannot be reached")]
pub struct StoreDown;

/// A rate decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// This many requests may pass (at least one, at most as many as asked).
    Allowed(u32),
    /// Not before this long; nothing was charged.
    Wait(Duration),
}

/// The shared store of one gateway process; cheap to clone.
#[derive(Clone)]
pub struct ClusterStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    prefix: String,
    on_unavailable: OnUnavailable,
    lock_ttl: Duration,
    /// Whether the last round trip succeeded (for `/readyz`, and to warn
    /// once per outage rather than per request).
    up: AtomicBool,
    /// Locks this process holds (token → key), kept alive by one task for
    /// all of them, started with the first lock.
    held: std::sync::Mutex<std::collections::HashMap<String, String>>,
    keep_alive: std::sync::OnceLock<()>,
    gcra: redis::Script,
    lease: redis::Script,
    unlock: redis::Script,
    extend: redis::Script,
    index_write: redis::Script,
    index_finish: redis::Script,
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("ClusterStore")
            .field("prefix", &self.inner.prefix)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

/// A lock held in Redis; [`ClusterStore::unlock`] gives it back, and it
/// expires by itself if this replica dies holding it.
#[derive(Debug)]
pub struct RemoteLock {
    key: String,
    token: String,
    /// Where it is registered for the keep-alive; dropping it leaves.
    held: std::sync::Weak<Inner>,
}

impl Drop for RemoteLock {
    fn drop(&mut self) {
        if let Some(inner) = self.held.upgrade()
            && let Ok(mut held) = inner.held.lock()
        {
            held.remove(&self.token);
        }
    }
}

/// One in-flight slot of an upstream, held in Redis.
#[derive(Debug)]
pub struct Lease {
    key: String,
    id: String,
}

impl ClusterStore {
    /// Connects lazily: a gateway whose Redis is down starts, and follows
    /// `on_unavailable` until Redis answers.
    pub fn connect(settings: &ClusterSettings) -> Result<ClusterStore, redis::RedisError> {
        let client = redis::Client::open(settings.redis_url.expose())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(ClusterStore {
            inner: Arc::new(Inner {
                connection,
                prefix: settings.key_prefix.clone(),
                on_unavailable: settings.on_unavailable,
                lock_ttl: settings.lock_ttl,
                up: AtomicBool::new(true),
                held: Default::default(),
                keep_alive: std::sync::OnceLock::new(),
                gcra: redis::Script::new(GCRA),
                lease: redis::Script::new(LEASE),
                unlock: redis::Script::new(UNLOCK),
                extend: redis::Script::new(EXTEND),
                index_write: redis::Script::new(index::WRITE),
                index_finish: redis::Script::new(index::FINISH),
            }),
        })
    }

    /// How long a lock outlives a holder that stopped extending it.
    pub fn lock_ttl(&self) -> Duration {
        self.inner.lock_ttl
    }

    pub fn on_unavailable(&self) -> OnUnavailable {
        self.inner.on_unavailable
    }

    /// Whether the last round trip reached Redis.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// One round trip, for `/readyz`.
    pub async fn ping(&self) -> bool {
        let mut connection = self.inner.connection.clone();
        let answer: Result<String, _> = redis::cmd("PING").query_async(&mut connection).await;
        self.observe(answer).is_ok()
    }

    /// The key of `name` under this gateway's prefix.
    pub fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{name}", self.inner.prefix)
    }

    /// Up to `wanted` requests against the rate cell `key`, after giving
    /// back `returned` taken before and not spent.
    pub async fn admit(
        &self,
        key: &str,
        rate: Rate,
        wanted: u32,
        returned: u32,
    ) -> Result<Admission, StoreDown> {
        let interval = (rate.per.as_micros() / u128::from(rate.count.get())).max(1);
        let tolerance = interval * u128::from(rate.burst.get());
        let mut connection = self.inner.connection.clone();
        let answer: Result<(u32, String), _> = self
            .inner
            .gcra
            .key(key)
            .arg(interval.to_string())
            .arg(tolerance.to_string())
            .arg(wanted.max(1))
            .arg(returned)
            .invoke_async(&mut connection)
            .await;
        let (taken, wait) = self.observe(answer)?;
        if taken > 0 {
            return Ok(Admission::Allowed(taken.min(wanted.max(1))));
        }
        let micros: u64 = wait.parse().map_err(|_| StoreDown)?;
        Ok(Admission::Wait(Duration::from_micros(micros.max(1))))
    }

    /// Takes the lock `key` if it is free.
    pub async fn try_lock(&self, key: &str) -> Result<Option<RemoteLock>, StoreDown> {
        let token = hex::encode(rand::random::<[u8; 16]>());
        let ttl_ms = self.inner.lock_ttl.as_millis() as u64;
        let mut connection = self.inner.connection.clone();
        let answer: Result<Option<String>, _> = redis::cmd("SET")
            .arg(key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut connection)
            .await;
        let taken = match self.observe(answer) {
            Ok(taken) => taken,
            Err(down) => {
                // The SET may have landed with only its answer lost: give
                // the token back when Redis can hear it, or the key waits
                // out its TTL with no one holding it.
                self.forget(RemoteLock {
                    key: key.to_string(),
                    token,
                    held: std::sync::Weak::new(),
                });
                return Err(down);
            }
        };
        if taken.is_none() {
            return Ok(None);
        }
        // Kept alive while held: an operation may outlast the TTL (a slow
        // upstream, retries); a dead replica stops extending it.
        if let Ok(mut held) = self.inner.held.lock() {
            held.insert(token.clone(), key.to_string());
        }
        self.inner.keep_alive.get_or_init(|| {
            tokio::spawn(keep_alive(Arc::downgrade(&self.inner)));
        });
        Ok(Some(RemoteLock {
            key: key.to_string(),
            token,
            held: Arc::downgrade(&self.inner),
        }))
    }

    /// Takes one of `max` in-flight slots of `key` for at most the lock TTL.
    pub async fn try_lease(&self, key: &str, max: usize) -> Result<Option<Lease>, StoreDown> {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let mut connection = self.inner.connection.clone();
        let answer: Result<i64, _> = self
            .inner
            .lease
            .key(key)
            .arg(max)
            .arg(self.inner.lock_ttl.as_millis() as u64)
            .arg(&id)
            .invoke_async(&mut connection)
            .await;
        let lease = Lease {
            key: key.to_string(),
            id,
        };
        match self.observe(answer) {
            Ok(1) => Ok(Some(lease)),
            Ok(_) => Ok(None),
            Err(down) => {
                // As for a lock: the slot may be taken with its answer lost.
                let store = self.clone();
                tokio::spawn(async move { store.release(lease).await });
                Err(down)
            }
        }
    }

    /// Gives a slot back (if Redis is down, its TTL will).
    pub async fn release(&self, lease: Lease) {
        let mut connection = self.inner.connection.clone();
        let answer: Result<i64, _> = redis::cmd("ZREM")
            .arg(&lease.key)
            .arg(&lease.id)
            .query_async(&mut connection)
            .await;
        let _ = self.observe(answer);
    }

    /// Gives back in the background a lock whose taking went unanswered.
    fn forget(&self, lock: RemoteLock) {
        let store = self.clone();
        tokio::spawn(async move { store.unlock(lock).await });
    }

    /// Gives a lock back (if Redis is down, its TTL will).
    pub async fn unlock(&self, lock: RemoteLock) {
        let mut connection = self.inner.connection.clone();
        let answer: Result<i64, _> = self
            .inner
            .unlock
            .key(&lock.key)
            .arg(&lock.token)
            .invoke_async(&mut connection)
            .await;
        let _ = self.observe(answer);
    }

    /// Records whether Redis answered; warns once when it stops and once
    /// when it is back.
    fn observe<T>(&self, answer: Result<T, redis::RedisError>) -> Result<T, StoreDown> {
        match answer {
            Ok(value) => {
                if !self.inner.up.swap(true, Ordering::Relaxed) {
                    tracing::warn!("the cluster store (Redis) answers again");
                }
                Ok(value)
            }
            Err(error) => {
                if self.inner.up.swap(false, Ordering::Relaxed) {
                    // The error names the address, never the password.
                    tracing::warn!(
                        kind = ?error.kind(),
                        on_unavailable = self.inner.on_unavailable.as_str(),
                        "the cluster store (Redis) cannot be reached"
                    );
                }
                Err(StoreDown)
            }
        }
    }

    /// Counts one decision taken by this replica alone because Redis was down.
    pub fn fell_back(&self, what: &'static str) {
        metrics::counter!("scimgate_cluster_fallback_total", "what" => what).increment(1);
    }
}

/// Extends every lock this process holds, every third of the TTL, until the
/// store is gone; a lock whose key no longer holds its token was lost
/// (Redis restarted without it) and stops being extended.
async fn keep_alive(store: std::sync::Weak<Inner>) {
    loop {
        let every = match store.upgrade() {
            Some(inner) => inner.lock_ttl / 3,
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(inner) = store.upgrade() else { return };
        let held: Vec<(String, String)> = match inner.held.lock() {
            Ok(held) => held.iter().map(|(t, k)| (t.clone(), k.clone())).collect(),
            Err(_) => return,
        };
        let ttl_ms = inner.lock_ttl.as_millis() as u64;
        for (token, key) in held {
            let mut connection = inner.connection.clone();
            let extended: Result<i64, _> = inner
                .extend
                .key(&key)
                .arg(&token)
                .arg(ttl_ms)
                .invoke_async(&mut connection)
                .await;
            if matches!(extended, Ok(0))
                && let Ok(mut held) = inner.held.lock()
            {
                held.remove(&token);
            }
        }
    }
}

/// A rate shared by every replica when there is a cluster store, else this
/// replica's own (and this replica's own while the store is down, under
/// `on_unavailable = "local"`).
#[derive(Debug)]
pub struct SharedRate {
    rate: Rate,
    local: Limiter,
    cluster: Option<(ClusterStore, String)>,
    /// Whether `on_unavailable = "refuse"` refuses here.
    refuses: bool,
    /// How many requests one round trip asks the shared cell for.
    batch: u32,
    /// Requests already charged to the shared cell and not yet spent.
    reserve: std::sync::Mutex<Reserve>,
}

/// Requests a replica took from the shared cell ahead of need: spent
/// without a round trip until they run out or [`RESERVE_WINDOW`] has
/// passed; those left then are given back with the next round trip. They
/// were charged when taken, so the cluster never passes more than its rate.
#[derive(Debug)]
struct Reserve {
    requests: u32,
    until: tokio::time::Instant,
    /// Taken, no longer spendable, not yet given back.
    unreturned: u32,
}

impl Reserve {
    /// Moves what is left to be given back once the window has passed.
    fn expire(&mut self, now: tokio::time::Instant) {
        if now >= self.until {
            self.unreturned = self.unreturned.saturating_add(self.requests);
            self.requests = 0;
        }
    }
}

/// How long taken requests stay spendable, and so what a batch is: the
/// requests the rate allows in this window (10 ms of the rate), between 1
/// and [`MAX_BATCH`], and never more than a quarter of the burst.
const RESERVE_WINDOW: Duration = Duration::from_millis(10);
const MAX_BATCH: u32 = 32;

/// How many requests one round trip takes under `rate`: 1 (a round trip
/// each, exact) unless the rate is high enough that batching changes
/// nothing a client could see.
fn batch_of(rate: Rate) -> u32 {
    let per_window =
        f64::from(rate.count.get()) * RESERVE_WINDOW.as_secs_f64() / rate.per.as_secs_f64();
    let by_burst = (rate.burst.get() / 4).max(1);
    (per_window.floor() as u32)
        .clamp(1, MAX_BATCH)
        .min(by_burst)
}

/// What a [`SharedRate`] says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateCheck {
    Allowed,
    /// Not before this long; nothing was charged.
    Wait(Duration),
    /// The store is down and the operator chose `refuse`.
    Unavailable,
}

impl SharedRate {
    /// `key` names the cell in the store: one per connection or upstream.
    pub fn new(rate: Rate, cluster: Option<&ClusterStore>, key: &str) -> Self {
        SharedRate {
            rate,
            local: rate.limiter(),
            cluster: cluster.map(|store| (store.clone(), store.key("rate", key))),
            refuses: true,
            batch: batch_of(rate),
            reserve: std::sync::Mutex::new(Reserve {
                requests: 0,
                until: tokio::time::Instant::now(),
                unreturned: 0,
            }),
        }
    }

    /// As [`SharedRate::new`], but falling back to this replica's own rate
    /// while the store is down whatever `on_unavailable` says: an upstream
    /// budget is checked on every call of an operation, and refusing its
    /// second call would leave the first one's write behind.
    pub fn never_refusing(rate: Rate, cluster: Option<&ClusterStore>, key: &str) -> Self {
        SharedRate {
            refuses: false,
            ..Self::new(rate, cluster, key)
        }
    }

    pub async fn check(&self) -> RateCheck {
        if let Some((store, key)) = &self.cluster {
            if self.spend_reserved() {
                return RateCheck::Allowed;
            }
            let returned = self.take_unreturned();
            match store.admit(key, self.rate, self.batch, returned).await {
                Ok(Admission::Allowed(taken)) => {
                    self.reserve_more(taken - 1);
                    return RateCheck::Allowed;
                }
                Ok(Admission::Wait(wait)) => return RateCheck::Wait(wait),
                Err(StoreDown)
                    if self.refuses && store.on_unavailable() == OnUnavailable::Refuse =>
                {
                    return RateCheck::Unavailable;
                }
                Err(StoreDown) => store.fell_back("rate"),
            }
        }
        match self.local.check() {
            Ok(()) => RateCheck::Allowed,
            Err(not_until) => RateCheck::Wait(not_until.wait_time_from(self.local.clock().now())),
        }
    }

    /// Spends one reserved request, if one is left and still in its window.
    fn spend_reserved(&self) -> bool {
        if self.batch == 1 {
            return false;
        }
        let mut reserve = self.reserve();
        reserve.expire(tokio::time::Instant::now());
        if reserve.requests == 0 {
            return false;
        }
        reserve.requests -= 1;
        true
    }

    /// What is to be given back with this round trip.
    fn take_unreturned(&self) -> u32 {
        if self.batch == 1 {
            return 0;
        }
        let mut reserve = self.reserve();
        reserve.expire(tokio::time::Instant::now());
        std::mem::take(&mut reserve.unreturned)
    }

    /// Keeps requests taken beyond the one being answered, for one window.
    fn reserve_more(&self, requests: u32) {
        if requests == 0 {
            return;
        }
        let mut reserve = self.reserve();
        let now = tokio::time::Instant::now();
        reserve.expire(now);
        reserve.requests += requests;
        reserve.until = now + RESERVE_WINDOW;
    }

    fn reserve(&self) -> std::sync::MutexGuard<'_, Reserve> {
        // A poisoned reserve still holds sound counts.
        self.reserve
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, per_ms: u64, burst: u32) -> Rate {
        Rate {
            count: std::num::NonZeroU32::new(count).unwrap(),
            per: Duration::from_millis(per_ms),
            burst: std::num::NonZeroU32::new(burst).unwrap(),
        }
    }

    #[test]
    fn batches_are_one_request_unless_the_rate_is_high() {
        // Rates an IdP is held to, and upstream budgets: exact, one round trip each.
        assert_eq!(batch_of(rate(20, 1000, 20)), 1);
        assert_eq!(batch_of(rate(600, 60_000, 100)), 1);
        assert_eq!(batch_of(rate(99, 1000, 1000)), 1);
        // 10 ms of the rate, capped by a quarter of the burst and by MAX_BATCH.
        assert_eq!(batch_of(rate(2000, 1000, 400)), 20);
        assert_eq!(batch_of(rate(2000, 1000, 40)), 10);
        assert_eq!(batch_of(rate(1_000_000, 1000, 100_000)), MAX_BATCH);
    }

    #[tokio::test(start_paused = true)]
    async fn reserved_requests_are_spent_in_their_window_then_given_back() {
        let shared = SharedRate::new(rate(2000, 1000, 400), None, "idp");
        shared.reserve_more(3);
        assert!(shared.spend_reserved());
        assert_eq!(shared.take_unreturned(), 0, "still spendable");
        tokio::time::advance(RESERVE_WINDOW).await;
        assert!(!shared.spend_reserved(), "the window has passed");
        assert_eq!(shared.take_unreturned(), 2);
        assert_eq!(shared.take_unreturned(), 0, "given back once");
    }
}
