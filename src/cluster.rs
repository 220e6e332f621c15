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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::{ClusterSettings, Limiter, OnUnavailable, Rate};

/// The rate cell: `ARGV[1]` µs between requests, `ARGV[2]` µs of burst
/// tolerance. Answers 0 and charges the cell when the request may pass,
/// otherwise the µs to wait, charging nothing (a refused request costs the
/// others nothing). Numbers are formatted with `%.0f`: Lua's default
/// conversion of a large number loses digits.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local wait = next_tat - now - tolerance
if wait > 0 then return string.format('%.0f', wait) end
local ttl = math.ceil((next_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl)
return '0'
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
    Allowed,
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

    /// One request against the rate cell `key`.
    pub async fn admit(&self, key: &str, rate: Rate) -> Result<Admission, StoreDown> {
        let interval = (rate.per.as_micros() / u128::from(rate.count.get())).max(1);
        let tolerance = interval * u128::from(rate.burst.get());
        let mut connection = self.inner.connection.clone();
        let answer: Result<String, _> = self
            .inner
            .gcra
            .key(key)
            .arg(interval.to_string())
            .arg(tolerance.to_string())
            .invoke_async(&mut connection)
            .await;
        let wait: u64 = self.observe(answer)?.parse().map_err(|_| StoreDown)?;
        Ok(match wait {
            0 => Admission::Allowed,
            micros => Admission::Wait(Duration::from_micros(micros)),
        })
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
            match store.admit(key, self.rate).await {
                Ok(Admission::Allowed) => return RateCheck::Allowed,
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
}
