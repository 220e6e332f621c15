//! The look-up index kept in Redis, so that every replica answers from one
//! (`provision::index` decides what goes in; this is where it lives).
//!
//! Per upstream and resource type, under one hash tag:
//! - `…:cur`, a hash: the hex of a key's hash → a JSON array of the ids
//!   holding it; `…:meta`, when it was last read in full and how many
//!   records that found (absent: never read, look-ups scan);
//! - `…:building`, a lease with a random token held by the one replica
//!   reading the upstream in full into `…:next`; `…:journal`, the writes
//!   made meanwhile, replayed onto `…:next` by the script that then swaps
//!   it in, so no write is lost between the read and the swap.
//!
//! Bounded by the upstream: one field per distinct value of an indexed
//! attribute, emptied fields deleted, the whole hash replaced at each full
//! read (so entries of users deleted behind the gateway's back go too).

use std::time::Duration;

use super::{ClusterStore, StoreDown};

/// `apply(key, {id, n, before₁…beforeₙ, after…})`: moves `id` from the
/// fields it held to the ones it holds now.
macro_rules! apply_lua {
    () => {
        r"
local function holders(key, field)
  local value = redis.call('HGET', key, field)
  if value then return cjson.decode(value) end
  return {}
end
local function store(key, field, ids)
  if #ids == 0 then redis.call('HDEL', key, field)
  else redis.call('HSET', key, field, cjson.encode(ids)) end
end
local function apply(key, args)
  local id = args[1]
  local before = tonumber(args[2])
  local after = {}
  for i = 3 + before, #args do after[args[i]] = true end
  for i = 3, 2 + before do
    if not after[args[i]] then
      local kept = {}
      for _, held in ipairs(holders(key, args[i])) do
        if held ~= id then table.insert(kept, held) end
      end
      store(key, args[i], kept)
    end
  end
  for i = 3 + before, #args do
    local ids = holders(key, args[i])
    local present = false
    for _, held in ipairs(ids) do if held == id then present = true end end
    if not present then
      table.insert(ids, id)
      store(key, args[i], ids)
    end
  end
end
"
    };
}

/// KEYS: cur, meta, building, journal. A write applies where the index
/// has been read, and is kept for the read under way, if one is.
pub(super) const WRITE: &str = concat!(
    apply_lua!(),
    r"
if redis.call('EXISTS', KEYS[2]) == 1 then apply(KEYS[1], ARGV) end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('RPUSH', KEYS[4], cjson.encode(ARGV)) end
return 1
"
);

/// KEYS: next, cur, journal, building, meta; ARGV: the lease's token, the
/// records read. Replays the journal onto the new index and swaps it in,
/// unless the lease was lost (another replica reads now).
pub(super) const FINISH: &str = concat!(
    apply_lua!(),
    r"
if redis.call('GET', KEYS[4]) ~= ARGV[1] then return 0 end
for _, entry in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  apply(KEYS[1], cjson.decode(entry))
end
redis.call('UNLINK', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('RENAME', KEYS[1], KEYS[2]) end
redis.call('DEL', KEYS[3], KEYS[4])
local clock = redis.call('TIME')
redis.call('SET', KEYS[5], ARGV[2] .. ' ' .. clock[1])
return 1
"
);

/// KEYS: building, next, journal. Takes the lease and starts afresh.
const BEGIN: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('DEL', KEYS[2], KEYS[3])
  return 1
end
return 0
";

/// Fields sent per `HSET` while an index is filled.
const FILL_BATCH: usize = 1000;

/// One resource type's index on one upstream, in Redis.
#[derive(Debug, Clone)]
pub struct SharedIndex {
    store: ClusterStore,
    /// `<prefix>index:{<upstream>:<resource>}`: one hash tag, so a Redis
    /// Cluster keeps every key of it in one slot (the scripts need that).
    base: String,
}

/// How far the shared index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedReadiness {
    pub records: u64,
    /// Redis's clock (Unix seconds) when it was last read in full.
    pub read_at: u64,
}

impl SharedIndex {
    pub fn new(store: &ClusterStore, upstream: &str, resource: &str) -> Self {
        SharedIndex {
            store: store.clone(),
            base: format!("{}index:{{{upstream}:{resource}}}", store.inner.prefix),
        }
    }

    fn key(&self, part: &str) -> String {
        format!("{}:{part}", self.base)
    }

    /// The ids holding `hash`; `None` while the index was never read.
    pub async fn lookup(&self, hash: u64) -> Result<Option<Vec<String>>, StoreDown> {
        let mut connection = self.store.inner.connection.clone();
        let answer: Result<(bool, Option<String>), _> = redis::pipe()
            .exists(self.key("meta"))
            .hget(self.key("cur"), field(hash))
            .query_async(&mut connection)
            .await;
        match self.store.observe(answer)? {
            (false, _) => Ok(None),
            (true, None) => Ok(Some(Vec::new())),
            (true, Some(ids)) => serde_json::from_str(&ids).map(Some).map_err(|_| StoreDown),
        }
    }

    /// A write that passed through one of the replicas.
    pub async fn write(&self, id: &str, before: &[u64], after: &[u64]) -> Result<(), StoreDown> {
        let mut invocation = self.store.inner.index_write.prepare_invoke();
        invocation
            .key(self.key("cur"))
            .key(self.key("meta"))
            .key(self.key("building"))
            .key(self.key("journal"))
            .arg(id)
            .arg(before.len());
        for hash in before.iter().chain(after) {
            invocation.arg(field(*hash));
        }
        let mut connection = self.store.inner.connection.clone();
        let answer: Result<i64, _> = invocation.invoke_async(&mut connection).await;
        self.store.observe(answer).map(drop)
    }

    /// The lease of a full read, if no replica holds it; its token.
    pub async fn begin(&self, lease: Duration) -> Result<Option<String>, StoreDown> {
        let token = hex::encode(rand::random::<[u8; 16]>());
        let mut connection = self.store.inner.connection.clone();
        let answer: Result<i64, _> = redis::Script::new(BEGIN)
            .key(self.key("building"))
            .key(self.key("next"))
            .key(self.key("journal"))
            .arg(&token)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut connection)
            .await;
        Ok((self.store.observe(answer)? == 1).then_some(token))
    }

    /// Writes a full read's entries (hash → ids) into the new index.
    pub async fn fill<'a>(
        &self,
        entries: impl Iterator<Item = (u64, Vec<&'a str>)>,
    ) -> Result<(), StoreDown> {
        let next = self.key("next");
        let mut batch = Vec::with_capacity(FILL_BATCH);
        let mut entries = entries.peekable();
        while entries.peek().is_some() {
            batch.clear();
            batch.extend(
                entries.by_ref().take(FILL_BATCH).map(|(hash, ids)| {
                    (field(hash), serde_json::to_string(&ids).unwrap_or_default())
                }),
            );
            let mut connection = self.store.inner.connection.clone();
            let answer: Result<i64, _> = redis::cmd("HSET")
                .arg(&next)
                .arg(&batch)
                .query_async(&mut connection)
                .await;
            self.store.observe(answer)?;
        }
        Ok(())
    }

    /// Swaps the new index in; false if the lease was lost meanwhile.
    pub async fn finish(&self, token: &str, records: usize) -> Result<bool, StoreDown> {
        let mut connection = self.store.inner.connection.clone();
        let answer: Result<i64, _> = self
            .store
            .inner
            .index_finish
            .key(self.key("next"))
            .key(self.key("cur"))
            .key(self.key("journal"))
            .key(self.key("building"))
            .key(self.key("meta"))
            .arg(token)
            .arg(records)
            .invoke_async(&mut connection)
            .await;
        Ok(self.store.observe(answer)? == 1)
    }

    /// When it was last read in full, if ever.
    pub async fn readiness(&self) -> Result<Option<SharedReadiness>, StoreDown> {
        let mut connection = self.store.inner.connection.clone();
        let answer: Result<Option<String>, _> = redis::cmd("GET")
            .arg(self.key("meta"))
            .query_async(&mut connection)
            .await;
        Ok(self.store.observe(answer)?.and_then(|meta| {
            let (records, read_at) = meta.split_once(' ')?;
            Some(SharedReadiness {
                records: records.parse().ok()?,
                read_at: read_at.parse().ok()?,
            })
        }))
    }

    /// Whether a replica is reading the upstream in full now.
    pub async fn building(&self) -> Result<bool, StoreDown> {
        let mut connection = self.store.inner.connection.clone();
        let answer: Result<bool, _> = redis::cmd("EXISTS")
            .arg(self.key("building"))
            .query_async(&mut connection)
            .await;
        self.store.observe(answer)
    }

    /// Redis's clock, Unix seconds.
    pub async fn now(&self) -> Result<u64, StoreDown> {
        let mut connection = self.store.inner.connection.clone();
        let answer: Result<(u64, u64), _> = redis::cmd("TIME").query_async(&mut connection).await;
        self.store.observe(answer).map(|(seconds, _)| seconds)
    }

    /// What the index takes in Redis (`MEMORY USAGE`, sampled).
    pub async fn bytes(&self) -> Result<u64, StoreDown> {
        let mut connection = self.store.inner.connection.clone();
        let answer: Result<Option<u64>, _> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(self.key("cur"))
            .query_async(&mut connection)
            .await;
        self.store.observe(answer).map(Option::unwrap_or_default)
    }

    pub fn store(&self) -> &ClusterStore {
        &self.store
    }
}

/// A key's hash as its field: hex, so the journal's JSON stays text.
fn field(hash: u64) -> String {
    format!("{hash:016x}")
}
