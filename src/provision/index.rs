//! The look-up index of an upstream that cannot filter its list: for each
//! matching attribute the mapping indexes (`[users.index]`), the hash of a
//! value → the upstream ids holding it. An IdP's `userName eq …` is then one
//! read by id instead of a scan of every user.
//!
//! The index only proposes: every candidate is read by id and checked
//! against the whole filter before it is answered, so a stale entry (or a
//! hash collision) costs a read, never a wrong or deleted user. A miss may be
//! stale (a user made upstream behind the gateway's back); a create that
//! then collides refreshes the index before its 409 is answered.
//!
//! Kept fresh three ways: a full read at start (look-ups scan until it is
//! done), another every `refresh_seconds` with jitter, and every write that
//! passes through the gateway. Writes made while a full read runs are kept
//! in a journal and replayed onto its result, so none is lost to the swap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::Value;

use super::{Kind, ProvisionError};
use crate::cluster::{SharedIndex, StoreDown};
use crate::mapping::{Bindings, IndexSettings, ResourceMapping, UpstreamMapping};
use crate::scim::filter::{CompareOp, Filter};
use crate::scim::path::AttrPath;
use crate::upstream::UpstreamClient;

/// How long one replica may take to read a shared index in full before
/// another may (a streamed read is bounded by 10 minutes itself).
const FULL_READ_LEASE: Duration = Duration::from_secs(15 * 60);

/// One resource type's index on one upstream, shared by its connections.
#[derive(Debug)]
pub struct LookupIndex {
    kind: Kind,
    settings: IndexSettings,
    /// The index itself, in this process (without a cluster store)…
    state: Mutex<State>,
    /// …or in Redis, shared by every replica.
    shared: Option<SharedIndex>,
    /// Held across a full read, so concurrent refreshes make one; it keeps
    /// when the last one started.
    reading: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

#[derive(Debug, Default)]
struct State {
    /// `None` until the first full read is in.
    keys: Option<Keys>,
    /// How many records the last full read found.
    records: usize,
    /// Writes seen while a full read runs, replayed onto its result.
    journal: Option<Vec<Change>>,
}

/// The hash of (attribute, value) → the slots of the ids holding it,
/// laid out for size: 17 bytes a key in the table, each id's text once in
/// one buffer. A million users' three attributes take about 100 MB.
#[derive(Debug, Default)]
struct Keys {
    /// A key → its one slot, or [`SEVERAL`] | its index in `several`.
    table: HashMap<u64, u32>,
    /// The slots of keys held by more than one id (rare). A list emptied by
    /// deletes stays until the next full read.
    several: Vec<Vec<u32>>,
    /// Every id's text, end to end, and each slot's (start, length) in it;
    /// a removed id's slot is [`GONE`] until the next full read.
    ids: String,
    slots: Vec<(u32, u32)>,
}

/// The mark of a table entry that indexes `Keys::several`.
const SEVERAL: u32 = 1 << 31;
const GONE: (u32, u32) = (u32::MAX, 0);

/// The (attribute, value) hashes of one resource.
type KeySet = Vec<u64>;

#[derive(Debug, Clone)]
struct Change {
    id: Arc<str>,
    before: KeySet,
    after: KeySet,
}

/// What a look-up found, or that the index cannot tell yet.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// Upstream ids that may hold the value, to be read and checked.
    Candidates(Vec<String>),
    /// The first full read is not done: scan instead.
    NotReady,
}

/// How far one full read got, for the log and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Building,
    Ready { records: usize },
}

impl LookupIndex {
    pub fn new(kind: Kind, settings: IndexSettings, shared: Option<SharedIndex>) -> Self {
        LookupIndex {
            kind,
            settings,
            state: Mutex::new(State::default()),
            shared,
            reading: tokio::sync::Mutex::new(None),
        }
    }

    /// The attribute and value of the `eq` this index can answer, if the
    /// filter has one it must satisfy (alone, or `and`-ed with others).
    pub fn answerable<'f>(&self, filter: &'f Filter) -> Option<(usize, &'f str)> {
        match filter {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value: Value::String(value),
            } => self.position(path).map(|at| (at, value.as_str())),
            // `emails[type eq "work"].value eq "x"` and `emails[value eq "x"]`.
            Filter::ValuePath { path, filter } => {
                let inner = |filter: &'f Filter| match filter {
                    Filter::Compare {
                        path: inner,
                        op: CompareOp::Eq,
                        value: Value::String(value),
                    } if inner.uri.is_none() && inner.sub.is_none() => {
                        let flattened = AttrPath {
                            uri: path.uri.clone(),
                            name: path.name.clone(),
                            sub: Some(inner.name.clone()),
                        };
                        self.position(&flattened).map(|at| (at, value.as_str()))
                    }
                    _ => None,
                };
                match filter.as_ref() {
                    Filter::And(left, right) => inner(left).or_else(|| inner(right)),
                    other => inner(other),
                }
            }
            Filter::And(left, right) => self.answerable(left).or_else(|| self.answerable(right)),
            _ => None,
        }
    }

    /// The ids that may hold `value` of the attribute at `at`.
    pub async fn lookup(&self, at: usize, value: &str) -> Lookup {
        let Some(path) = self.settings.attributes.get(at) else {
            return Lookup::NotReady;
        };
        let hash = key_hash(path, value);
        if let Some(shared) = &self.shared {
            // Redis unreachable: the scan still answers, if slowly.
            return match shared.lookup(hash).await {
                Ok(Some(ids)) => Lookup::Candidates(ids),
                Ok(None) | Err(StoreDown) => Lookup::NotReady,
            };
        }
        let state = self.state();
        let Some(keys) = &state.keys else {
            return Lookup::NotReady;
        };
        Lookup::Candidates(
            keys.holders(hash)
                .iter()
                .filter_map(|&slot| keys.id(slot))
                .map(str::to_string)
                .collect(),
        )
    }

    /// Whether any of `resource`'s indexed values has a holder (true while
    /// the index cannot tell: not read yet, or Redis down).
    pub async fn knows_any(&self, resource: &Value) -> bool {
        let keys = self.key_set(resource);
        if let Some(shared) = &self.shared {
            for hash in keys {
                match shared.lookup(hash).await {
                    Ok(Some(ids)) if ids.is_empty() => {}
                    _ => return true,
                }
            }
            return false;
        }
        let state = self.state();
        let Some(table) = &state.keys else {
            return true;
        };
        keys.iter().any(|hash| !table.holders(*hash).is_empty())
    }

    /// The memory the index holds, in bytes: its heap here, from its
    /// tables' capacities, or what Redis reports.
    pub async fn bytes(&self) -> usize {
        match &self.shared {
            Some(shared) => shared.bytes().await.unwrap_or_default() as usize,
            None => self.state().keys.as_ref().map_or(0, Keys::heap_bytes),
        }
    }

    pub async fn readiness(&self) -> Readiness {
        if let Some(shared) = &self.shared {
            return match shared.readiness().await {
                Ok(Some(read)) => Readiness::Ready {
                    records: read.records as usize,
                },
                _ => Readiness::Building,
            };
        }
        let state = self.state();
        match &state.keys {
            None => Readiness::Building,
            Some(_) => Readiness::Ready {
                records: state.records,
            },
        }
    }

    /// A write that passed through the gateway: `id` held `before` (none
    /// for a create) and holds `after` (none once deleted).
    pub async fn note_write(&self, id: &str, before: Option<&Value>, after: Option<&Value>) {
        let change = Change {
            id: Arc::from(id),
            before: before.map(|r| self.key_set(r)).unwrap_or_default(),
            after: after.map(|r| self.key_set(r)).unwrap_or_default(),
        };
        if change.before == change.after && before.is_some() {
            return;
        }
        if let Some(shared) = &self.shared {
            // Lost with Redis down: a stale miss then answers 409 and reads
            // again, a stale hit is refused by its read; the next full read
            // mends both.
            if shared
                .write(id, &change.before, &change.after)
                .await
                .is_err()
            {
                shared.store().fell_back("index");
            }
            return;
        }
        let mut state = self.state();
        if let Some(keys) = &mut state.keys {
            apply(keys, &change);
        }
        if let Some(journal) = &mut state.journal {
            journal.push(change);
        }
    }

    /// Reads the whole list again, unless one that started after `asked`
    /// has just finished: a burst of stale misses makes one read.
    pub async fn refresh(
        &self,
        client: &UpstreamClient,
        asked: tokio::time::Instant,
    ) -> Result<Readiness, ProvisionError> {
        let mut last_started = self.reading.lock().await;
        if last_started.is_some_and(|started| started >= asked) {
            return Ok(self.readiness().await);
        }
        *last_started = Some(tokio::time::Instant::now());
        if let Some(shared) = &self.shared {
            return self.refresh_shared(shared, client).await;
        }
        self.state().journal = Some(Vec::new());
        let built = self.read_all(client).await;
        let mut state = self.state();
        let journal = state.journal.take().unwrap_or_default();
        let (mut keys, records) = built?;
        for change in &journal {
            apply(&mut keys, change);
        }
        state.keys = Some(keys);
        state.records = records;
        Ok(Readiness::Ready { records })
    }

    /// One replica reads and fills Redis while holding the lease; another
    /// that wants a read meanwhile waits for that one instead.
    async fn refresh_shared(
        &self,
        shared: &SharedIndex,
        client: &UpstreamClient,
    ) -> Result<Readiness, ProvisionError> {
        let down = |_| ProvisionError::ClusterUnavailable;
        let Some(token) = shared.begin(FULL_READ_LEASE).await.map_err(down)? else {
            let deadline = tokio::time::Instant::now() + FULL_READ_LEASE;
            while shared.building().await.map_err(down)? {
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return Ok(self.readiness().await);
        };
        let (keys, records) = self.read_all(client).await?;
        shared.fill(keys.entries()).await.map_err(down)?;
        drop(keys);
        match shared.finish(&token, records).await.map_err(down)? {
            true => Ok(Readiness::Ready { records }),
            // The lease ran out and another replica reads now.
            false => Ok(self.readiness().await),
        }
    }

    /// Whether another replica read the shared index in full within most
    /// of an interval: then this one's turn is skipped.
    async fn read_lately_elsewhere(&self) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let (Ok(Some(read)), Ok(now)) = (shared.readiness().await, shared.now().await) else {
            return false;
        };
        let lately = self.settings.refresh.mul_f64(0.8).as_secs();
        now.saturating_sub(read.read_at) < lately
    }

    /// Every live record's keys, read a page at a time, or item by item
    /// from an unpaged list (which may hold the whole account).
    async fn read_all(&self, client: &UpstreamClient) -> Result<(Keys, usize), ProvisionError> {
        let shared = client.shared_mapping();
        let mapping = resource_mapping(&shared, self.kind)?;
        let request = mapping.list.request(Bindings::default())?;
        let empty = Build {
            keys: Keys::default(),
            records: 0,
            failure: None,
        };
        let mut build = if mapping.list.paging.is_some() {
            let mut build = empty;
            super::list::fetch_each(client, &mapping.list, &request, |record| {
                build.add(mapping, self.kind, &self.settings.attributes, record);
                Ok(())
            })
            .await?;
            build
        } else {
            let (kind, attributes) = (self.kind, self.settings.attributes.clone());
            let build = Arc::new(Mutex::new(empty));
            let building = build.clone();
            let parsing = shared.clone();
            let visit = move |record: Value| {
                if let Ok(mapping) = resource_mapping(&parsing, kind) {
                    lock(&building).add(mapping, kind, &attributes, &record);
                }
            };
            let items = mapping.list.items_pointer();
            let (_, found) = client.visit_items(&request, items, visit).await?;
            if !found {
                return Err(crate::mapping::MappingError::NotAList.into());
            }
            std::mem::take(&mut *lock(&build))
        };
        if let Some(failure) = build.failure.take() {
            return Err(failure);
        }
        build.keys.table.shrink_to_fit();
        build.keys.ids.shrink_to_fit();
        build.keys.slots.shrink_to_fit();
        Ok((build.keys, build.records))
    }

    fn key_set(&self, resource: &Value) -> KeySet {
        key_set(&self.settings.attributes, resource)
    }

    fn position(&self, path: &AttrPath) -> Option<usize> {
        self.settings
            .attributes
            .iter()
            .position(|indexed| indexed.same_attribute(path))
    }

    /// Never held across an await; a panic elsewhere cannot poison what
    /// is only a cache, so a poisoned lock is taken as it is.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keeps `index` fresh until it is dropped (a reload made a new one): a
/// full read now, then every interval with ±10 % jitter so replicas and
/// upstreams do not read in step.
pub fn maintain(index: &Arc<LookupIndex>, client: UpstreamClient) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak: Weak<LookupIndex> = Arc::downgrade(index);
    let interval = index.settings.refresh;
    // Present from the first scrape, at zero until the first read is in.
    let labels = [
        ("upstream", client.mapping().name.clone()),
        ("resource", index.kind.resource_type().to_string()),
    ];
    metrics::gauge!("scimgate_lookup_index_records", &labels).set(0.0);
    metrics::gauge!("scimgate_lookup_index_bytes", &labels).set(0.0);
    runtime.spawn(async move {
        loop {
            let Some(index) = weak.upgrade() else {
                return;
            };
            let resource = index.kind.resource_type();
            let started = tokio::time::Instant::now();
            let outcome = match index.read_lately_elsewhere().await {
                true => Ok(Readiness::Building),
                false => index.refresh(&client, started).await,
            };
            match outcome {
                Ok(Readiness::Ready { records }) => {
                    let bytes = index.bytes().await;
                    let labels = [
                        ("upstream", client.mapping().name.clone()),
                        ("resource", resource.to_string()),
                    ];
                    metrics::gauge!("scimgate_lookup_index_records", &labels).set(records as f64);
                    metrics::gauge!("scimgate_lookup_index_bytes", &labels).set(bytes as f64);
                    tracing::info!(
                        upstream = %client.mapping().name,
                        resource,
                        records,
                        bytes,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "look-up index read in full"
                    )
                }
                Ok(Readiness::Building) => {}
                Err(error) => tracing::warn!(
                    upstream = %client.mapping().name,
                    resource,
                    %error,
                    "look-up index not refreshed; look-ups use the last one (or scan)"
                ),
            }
            drop(index);
            let jitter = rand::random_range(0.9..=1.1);
            tokio::time::sleep(interval.mul_f64(jitter).max(Duration::from_millis(100))).await;
        }
    });
}

/// A full read's result as it grows.
#[derive(Debug, Default)]
struct Build {
    keys: Keys,
    records: usize,
    /// The first record that could not be read: the read fails with it.
    failure: Option<ProvisionError>,
}

impl Build {
    fn add(
        &mut self,
        mapping: &ResourceMapping,
        kind: Kind,
        attributes: &[AttrPath],
        record: &Value,
    ) {
        if self.failure.is_some()
            || mapping
                .soft_delete
                .as_ref()
                .is_some_and(|s| s.marks(record))
        {
            return;
        }
        let read = mapping
            .to_scim(record, kind.schema())
            .and_then(|resource| Ok((mapping.upstream_id(record)?, resource)));
        match read {
            Ok((id, resource)) => {
                self.records += 1;
                let change = Change {
                    id: Arc::from(id),
                    before: Vec::new(),
                    after: key_set(attributes, &resource),
                };
                apply(&mut self.keys, &change);
            }
            Err(error) => self.failure = Some(error.into()),
        }
    }
}

fn resource_mapping(
    mapping: &UpstreamMapping,
    kind: Kind,
) -> Result<&ResourceMapping, ProvisionError> {
    match kind {
        Kind::User => Ok(&mapping.users),
        Kind::Group => mapping.groups.as_ref().ok_or(ProvisionError::NoGroups),
    }
}

/// A build's lock; only a panic while holding it poisons it, and the
/// build is then lost anyway.
fn lock(build: &Mutex<Build>) -> MutexGuard<'_, Build> {
    build
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn key_set(attributes: &[AttrPath], resource: &Value) -> KeySet {
    let mut set = Vec::new();
    for path in attributes {
        for value in values_at(resource, path) {
            let hash = key_hash(path, value);
            if !set.contains(&hash) {
                set.push(hash);
            }
        }
    }
    set
}

fn apply(keys: &mut Keys, change: &Change) {
    let known = change
        .before
        .iter()
        .chain(&change.after)
        .find_map(|hash| keys.slot_of(*hash, &change.id));
    let slot = match known {
        Some(slot) => slot,
        None if change.after.is_empty() => return,
        None => match keys.add_id(&change.id) {
            Some(slot) => slot,
            None => return,
        },
    };
    for hash in &change.before {
        if !change.after.contains(hash) {
            keys.unhold(*hash, slot);
        }
    }
    for hash in &change.after {
        keys.hold(*hash, slot);
    }
    if change.after.is_empty() {
        keys.slots[slot as usize] = GONE;
    }
}

impl Keys {
    fn holders(&self, hash: u64) -> &[u32] {
        match self.table.get(&hash) {
            None => &[],
            Some(entry) if entry & SEVERAL != 0 => self
                .several
                .get((entry & !SEVERAL) as usize)
                .map_or(&[], Vec::as_slice),
            Some(slot) => std::slice::from_ref(slot),
        }
    }

    fn id(&self, slot: u32) -> Option<&str> {
        let (start, length) = *self.slots.get(slot as usize)?;
        self.ids
            .get(start as usize..start as usize + length as usize)
            .filter(|_| (start, length) != GONE)
    }

    /// The slot of `id` among the holders of `hash`.
    fn slot_of(&self, hash: u64, id: &str) -> Option<u32> {
        self.holders(hash)
            .iter()
            .copied()
            .find(|&slot| self.id(slot) == Some(id))
    }

    /// A new slot for `id`; `None` past 2³¹ slots or 4 GiB of ids, which
    /// the next full read starts afresh.
    fn add_id(&mut self, id: &str) -> Option<u32> {
        let slot = u32::try_from(self.slots.len())
            .ok()
            .filter(|s| s & SEVERAL == 0)?;
        let start = u32::try_from(self.ids.len()).ok()?;
        let length = u32::try_from(id.len()).ok()?;
        start.checked_add(length)?;
        self.ids.push_str(id);
        self.slots.push((start, length));
        Some(slot)
    }

    fn hold(&mut self, hash: u64, slot: u32) {
        let Some(&entry) = self.table.get(&hash) else {
            self.table.insert(hash, slot);
            return;
        };
        if entry & SEVERAL != 0 {
            if let Some(list) = self.several.get_mut((entry & !SEVERAL) as usize)
                && !list.contains(&slot)
            {
                list.push(slot);
            }
        } else if entry != slot {
            let Ok(at) = u32::try_from(self.several.len()) else {
                return;
            };
            self.several.push(vec![entry, slot]);
            self.table.insert(hash, SEVERAL | at);
        }
    }

    fn unhold(&mut self, hash: u64, slot: u32) {
        let Some(&entry) = self.table.get(&hash) else {
            return;
        };
        if entry & SEVERAL == 0 {
            if entry == slot {
                self.table.remove(&hash);
            }
            return;
        }
        let Some(list) = self.several.get_mut((entry & !SEVERAL) as usize) else {
            return;
        };
        list.retain(|&held| held != slot);
        match list.as_slice() {
            [] => {
                self.table.remove(&hash);
            }
            [only] => {
                let only = *only;
                list.clear();
                list.shrink_to_fit();
                self.table.insert(hash, only);
            }
            _ => {}
        }
    }

    /// Every key and the ids holding it.
    fn entries(&self) -> impl Iterator<Item = (u64, Vec<&str>)> {
        self.table.keys().map(|&hash| {
            let ids = self
                .holders(hash)
                .iter()
                .filter_map(|&slot| self.id(slot))
                .collect();
            (hash, ids)
        })
    }

    fn heap_bytes(&self) -> usize {
        // std's table keeps a power of two of buckets, at most 7/8 full,
        // and a control byte for each (and a group's width more).
        let buckets = (self.table.capacity() * 8 / 7).next_power_of_two();
        let table = buckets * (std::mem::size_of::<(u64, u32)>() + 1) + 16;
        let several: usize = self
            .several
            .iter()
            .map(|list| list.capacity() * 4 + std::mem::size_of::<Vec<u32>>())
            .sum();
        table
            + several
            + self.ids.capacity()
            + self.slots.capacity() * std::mem::size_of::<(u32, u32)>()
    }
}

/// The key of one attribute's value: the first 8 bytes of a SHA-256 of
/// the attribute's path and the value in lower case, the same in every
/// replica and every build (the shared index outlives both). Values are
/// compared case-insensitively: a superset of what the filter matches,
/// which the confirming read then narrows; a collision only adds a
/// candidate, which that read refuses.
fn key_hash(path: &AttrPath, value: &str) -> u64 {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(path.to_string().to_lowercase().as_bytes());
    hasher.update([0]);
    hasher.update(value.to_lowercase().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The string values of `path` in a SCIM resource (each element's, for a
/// multi-valued attribute).
fn values_at<'r>(resource: &'r Value, path: &AttrPath) -> Vec<&'r str> {
    let field = |object: &'r Value, name: &str| -> Option<&'r Value> {
        object
            .as_object()?
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    };
    let holder = match &path.uri {
        Some(uri) => field(resource, uri),
        None => Some(resource),
    };
    let Some(attribute) = holder.and_then(|h| field(h, &path.name)) else {
        return Vec::new();
    };
    let elements: Vec<&Value> = match attribute {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    elements
        .into_iter()
        .filter_map(|element| match &path.sub {
            Some(sub) => field(element, sub),
            None => Some(element),
        })
        .filter_map(Value::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The local index never waits: its futures are ready at once.
    fn now<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("the local index waited"),
        }
    }

    fn index() -> LookupIndex {
        let paths = ["userName", "externalId", "emails.value"]
            .map(|p| AttrPath::parse(p).unwrap())
            .to_vec();
        LookupIndex::new(
            Kind::User,
            IndexSettings {
                attributes: paths,
                refresh: Duration::from_secs(60),
            },
            None,
        )
    }

    fn ready(index: &LookupIndex) {
        index.state().keys = Some(Keys::default());
    }

    fn user(name: &str, external: &str) -> Value {
        json!({"id": "x", "userName": name, "externalId": external,
               "emails": [{"value": name, "type": "work"}]})
    }

    fn found(index: &LookupIndex, filter: &str) -> Lookup {
        let filter = crate::scim::filter::parse_filter(filter).unwrap();
        let (at, value) = index.answerable(&filter).expect("answerable");
        now(index.lookup(at, value))
    }

    fn ids(list: &[&str]) -> Lookup {
        Lookup::Candidates(list.iter().map(|id| id.to_string()).collect())
    }

    #[test]
    fn an_index_not_read_yet_cannot_answer_and_knows_of_everything() {
        let index = index();
        assert_eq!(found(&index, r#"userName eq "a""#), Lookup::NotReady);
        assert!(now(index.knows_any(&user("a", "1"))));
        assert_eq!(now(index.readiness()), Readiness::Building);
    }

    #[test]
    fn writes_move_a_user_between_keys_and_a_delete_removes_it() {
        let index = index();
        ready(&index);
        let before = user("Alice@Example.com", "e-1");
        now(index.note_write("U1", None, Some(&before)));
        assert_eq!(
            found(&index, r#"userName eq "alice@example.COM""#),
            ids(&["U1"])
        );
        assert_eq!(
            found(
                &index,
                r#"emails[type eq "work"].value eq "alice@example.com""#
            ),
            ids(&["U1"])
        );
        assert_eq!(
            found(&index, r#"emails[value eq "alice@example.com"]"#),
            ids(&["U1"])
        );
        assert_eq!(found(&index, r#"externalId eq "e-1""#), ids(&["U1"]));
        let renamed = user("alice.b@example.com", "e-1");
        now(index.note_write("U1", Some(&before), Some(&renamed)));
        assert_eq!(
            found(&index, r#"userName eq "alice@example.com""#),
            ids(&[])
        );
        assert_eq!(
            found(
                &index,
                r#"userName eq "alice.b@example.com" and active eq true"#
            ),
            ids(&["U1"])
        );
        assert_eq!(found(&index, r#"externalId eq "e-1""#), ids(&["U1"]));
        now(index.note_write("U1", Some(&renamed), None));
        assert_eq!(found(&index, r#"externalId eq "e-1""#), ids(&[]));
        assert!(!now(index.knows_any(&renamed)));
    }

    #[test]
    fn a_value_held_by_two_lists_both_until_one_lets_go() {
        let index = index();
        ready(&index);
        now(index.note_write("U1", None, Some(&user("a@x", "shared"))));
        now(index.note_write("U2", None, Some(&user("b@x", "shared"))));
        now(index.note_write("U2", None, Some(&user("b@x", "shared"))));
        assert_eq!(
            found(&index, r#"externalId eq "shared""#),
            ids(&["U1", "U2"])
        );
        now(index.note_write("U1", Some(&user("a@x", "shared")), None));
        assert_eq!(found(&index, r#"externalId eq "shared""#), ids(&["U2"]));
    }

    #[test]
    fn only_an_eq_on_an_indexed_attribute_that_the_filter_requires_is_answerable() {
        let index = index();
        for text in [
            r#"userName eq "a" or externalId eq "b""#,
            r#"userName ne "a""#,
            r#"userName sw "a""#,
            r#"not (userName eq "a")"#,
            r#"displayName eq "a""#,
            r#"name.givenName eq "a""#,
            r#"emails[type eq "work"]"#,
        ] {
            let filter = crate::scim::filter::parse_filter(text).unwrap();
            assert_eq!(index.answerable(&filter), None, "{text}");
        }
    }

    #[tokio::test]
    async fn writes_made_while_a_full_read_runs_are_replayed_onto_it() {
        let index = index();
        ready(&index);
        // A full read starts: the journal opens.
        index.state().journal = Some(Vec::new());
        now(index.note_write("U9", None, Some(&user("late@x", "9"))));
        // What the read found did not see U9 yet, but still holds U1,
        // deleted meanwhile.
        let mut built = Keys::default();
        apply(
            &mut built,
            &Change {
                id: Arc::from("U1"),
                before: Vec::new(),
                after: index.key_set(&user("gone@x", "1")),
            },
        );
        now(index.note_write("U1", Some(&user("gone@x", "1")), None));
        let journal = index.state().journal.take().unwrap();
        for change in &journal {
            apply(&mut built, change);
        }
        index.state().keys = Some(built);
        assert_eq!(found(&index, r#"userName eq "late@x""#), ids(&["U9"]));
        assert_eq!(found(&index, r#"userName eq "gone@x""#), ids(&[]));
    }

    proptest::proptest! {
        /// Any sequence of creates, changes and deletes leaves each value's
        /// candidates exactly the users holding it, as a plain map has them.
        #[test]
        fn the_index_agrees_with_a_plain_map_after_any_writes(
            writes in proptest::collection::vec((0..5usize, proptest::option::of((0..4usize, 0..3usize))), 0..60)
        ) {
            let index = index();
            ready(&index);
            let mut model: std::collections::BTreeMap<usize, Value> = Default::default();
            for (who, held) in writes {
                let id = format!("U{who}");
                let after = held.map(|(name, external)| {
                    user(&format!("n{name}@x"), &format!("e{external}"))
                });
                now(index.note_write(&id, model.get(&who), after.as_ref()));
                match after {
                    Some(resource) => model.insert(who, resource),
                    None => model.remove(&who),
                };
            }
            for (attribute, values) in [("userName", ["n0@x", "n1@x", "n2@x", "n3@x"].as_slice()), ("externalId", &["e0", "e1", "e2"])] {
                for value in values {
                    let mut expected: Vec<String> = model
                        .iter()
                        .filter(|(_, r)| r[attribute] == *value)
                        .map(|(who, _)| format!("U{who}"))
                        .collect();
                    let Lookup::Candidates(mut got) = found(&index, &format!("{attribute} eq \"{value}\"")) else {
                        panic!("not ready")
                    };
                    got.sort();
                    expected.sort();
                    proptest::prop_assert_eq!(got, expected, "{} {}", attribute, value);
                }
            }
        }
    }
}
