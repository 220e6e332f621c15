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
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::Value;

use super::{Kind, ProvisionError};
use crate::mapping::{Bindings, IndexSettings};
use crate::scim::filter::{CompareOp, Filter};
use crate::scim::path::AttrPath;
use crate::upstream::UpstreamClient;

/// One resource type's index on one upstream, shared by its connections.
#[derive(Debug)]
pub struct LookupIndex {
    kind: Kind,
    settings: IndexSettings,
    state: Mutex<State>,
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

/// Per indexed attribute (in `IndexSettings::attributes` order).
type Keys = Vec<HashMap<u64, Holders>>;

/// The ids holding one value: almost always one.
#[derive(Debug, Clone)]
enum Holders {
    One(Arc<str>),
    Many(Vec<Arc<str>>),
}

/// (attribute, value hash) pairs of one resource.
type KeySet = Vec<(usize, u64)>;

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
    Candidates(Vec<Arc<str>>),
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
    pub fn new(kind: Kind, settings: IndexSettings) -> Self {
        LookupIndex {
            kind,
            settings,
            state: Mutex::new(State::default()),
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
    pub fn lookup(&self, at: usize, value: &str) -> Lookup {
        let state = self.state();
        let Some(keys) = &state.keys else {
            return Lookup::NotReady;
        };
        let holders = keys.get(at).and_then(|map| map.get(&value_hash(value)));
        Lookup::Candidates(match holders {
            None => Vec::new(),
            Some(Holders::One(id)) => vec![id.clone()],
            Some(Holders::Many(ids)) => ids.clone(),
        })
    }

    /// Whether any of `resource`'s indexed values has a holder (true while
    /// the index is not ready: it cannot tell).
    pub fn knows_any(&self, resource: &Value) -> bool {
        let keys = self.key_set(resource);
        let state = self.state();
        let Some(maps) = &state.keys else {
            return true;
        };
        keys.iter()
            .any(|(at, hash)| maps.get(*at).is_some_and(|map| map.contains_key(hash)))
    }

    pub fn readiness(&self) -> Readiness {
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
    pub fn note_write(&self, id: &str, before: Option<&Value>, after: Option<&Value>) {
        let change = Change {
            id: Arc::from(id),
            before: before.map(|r| self.key_set(r)).unwrap_or_default(),
            after: after.map(|r| self.key_set(r)).unwrap_or_default(),
        };
        if change.before == change.after && before.is_some() {
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
            return Ok(self.readiness());
        }
        *last_started = Some(tokio::time::Instant::now());
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

    async fn read_all(&self, client: &UpstreamClient) -> Result<(Keys, usize), ProvisionError> {
        let mapping = match self.kind {
            Kind::User => &client.mapping().users,
            Kind::Group => client
                .mapping()
                .groups
                .as_ref()
                .ok_or(ProvisionError::NoGroups)?,
        };
        let request = mapping.list.request(Bindings::default())?;
        let mut keys: Keys = vec![HashMap::new(); self.settings.attributes.len()];
        let mut records = 0;
        super::list::fetch_each(client, &mapping.list, &request, |record| {
            if mapping
                .soft_delete
                .as_ref()
                .is_some_and(|s| s.marks(record))
            {
                return Ok(());
            }
            let resource = mapping.to_scim(record, self.kind.schema())?;
            let id: Arc<str> = Arc::from(mapping.upstream_id(record)?);
            let after = self.key_set(&resource);
            records += 1;
            apply(
                &mut keys,
                &Change {
                    id,
                    before: Vec::new(),
                    after,
                },
            );
            Ok(())
        })
        .await?;
        for map in &mut keys {
            map.shrink_to_fit();
        }
        Ok((keys, records))
    }

    fn key_set(&self, resource: &Value) -> KeySet {
        let mut set = Vec::new();
        for (at, path) in self.settings.attributes.iter().enumerate() {
            for value in values_at(resource, path) {
                let hash = value_hash(value);
                if !set.contains(&(at, hash)) {
                    set.push((at, hash));
                }
            }
        }
        set
    }

    fn position(&self, path: &AttrPath) -> Option<usize> {
        self.settings
            .attributes
            .iter()
            .position(|indexed| same_path(indexed, path))
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
    runtime.spawn(async move {
        loop {
            let Some(index) = weak.upgrade() else {
                return;
            };
            let resource = index.kind.resource_type();
            let started = tokio::time::Instant::now();
            match index.refresh(&client, started).await {
                Ok(Readiness::Ready { records }) => tracing::info!(
                    upstream = %client.mapping().name,
                    resource,
                    records,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "look-up index read in full"
                ),
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

fn apply(keys: &mut Keys, change: &Change) {
    for (at, hash) in &change.before {
        if change.after.contains(&(*at, *hash)) {
            continue;
        }
        let Some(map) = keys.get_mut(*at) else {
            continue;
        };
        let emptied = match map.get_mut(hash) {
            Some(Holders::One(id)) => **id == *change.id,
            Some(Holders::Many(ids)) => {
                ids.retain(|id| **id != *change.id);
                if let [only] = ids.as_slice() {
                    let only = only.clone();
                    map.insert(*hash, Holders::One(only));
                }
                false
            }
            None => false,
        };
        if emptied {
            map.remove(hash);
        }
    }
    for (at, hash) in &change.after {
        let Some(map) = keys.get_mut(*at) else {
            continue;
        };
        match map.get_mut(hash) {
            None => {
                map.insert(*hash, Holders::One(change.id.clone()));
            }
            Some(Holders::One(id)) if **id == *change.id => {}
            Some(Holders::One(id)) => {
                let first = id.clone();
                map.insert(*hash, Holders::Many(vec![first, change.id.clone()]));
            }
            Some(Holders::Many(ids)) => {
                if !ids.iter().any(|id| **id == *change.id) {
                    ids.push(change.id.clone());
                }
            }
        }
    }
}

/// Values are compared case-insensitively: a superset of what the filter
/// matches, which the confirming read then narrows.
fn value_hash(value: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for c in value.chars().flat_map(char::to_lowercase) {
        c.hash(&mut hasher);
    }
    hasher.finish()
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

fn same_path(a: &AttrPath, b: &AttrPath) -> bool {
    let same = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        (None, None) => true,
        _ => false,
    };
    a.name.eq_ignore_ascii_case(&b.name) && same(&a.sub, &b.sub) && same(&a.uri, &b.uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        )
    }

    fn ready(index: &LookupIndex) {
        index.state().keys = Some(vec![HashMap::new(); 3]);
    }

    fn user(name: &str, external: &str) -> Value {
        json!({"id": "x", "userName": name, "externalId": external,
               "emails": [{"value": name, "type": "work"}]})
    }

    fn found(index: &LookupIndex, filter: &str) -> Lookup {
        let filter = crate::scim::filter::parse_filter(filter).unwrap();
        let (at, value) = index.answerable(&filter).expect("answerable");
        index.lookup(at, value)
    }

    fn ids(list: &[&str]) -> Lookup {
        Lookup::Candidates(list.iter().map(|id| Arc::from(*id)).collect())
    }

    #[test]
    fn an_index_not_read_yet_cannot_answer_and_knows_of_everything() {
        let index = index();
        assert_eq!(found(&index, r#"userName eq "a""#), Lookup::NotReady);
        assert!(index.knows_any(&user("a", "1")));
        assert_eq!(index.readiness(), Readiness::Building);
    }

    #[test]
    fn writes_move_a_user_between_keys_and_a_delete_removes_it() {
        let index = index();
        ready(&index);
        let before = user("Alice@Example.com", "e-1");
        index.note_write("U1", None, Some(&before));
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
        index.note_write("U1", Some(&before), Some(&renamed));
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
        index.note_write("U1", Some(&renamed), None);
        assert_eq!(found(&index, r#"externalId eq "e-1""#), ids(&[]));
        assert!(!index.knows_any(&renamed));
    }

    #[test]
    fn a_value_held_by_two_lists_both_until_one_lets_go() {
        let index = index();
        ready(&index);
        index.note_write("U1", None, Some(&user("a@x", "shared")));
        index.note_write("U2", None, Some(&user("b@x", "shared")));
        index.note_write("U2", None, Some(&user("b@x", "shared")));
        assert_eq!(
            found(&index, r#"externalId eq "shared""#),
            ids(&["U1", "U2"])
        );
        index.note_write("U1", Some(&user("a@x", "shared")), None);
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
        index.note_write("U9", None, Some(&user("late@x", "9")));
        // What the read found did not see U9 yet, but still holds U1,
        // deleted meanwhile.
        let mut built: Keys = vec![HashMap::new(); 3];
        apply(
            &mut built,
            &Change {
                id: Arc::from("U1"),
                before: Vec::new(),
                after: index.key_set(&user("gone@x", "1")),
            },
        );
        index.note_write("U1", Some(&user("gone@x", "1")), None);
        let journal = index.state().journal.take().unwrap();
        for change in &journal {
            apply(&mut built, change);
        }
        index.state().keys = Some(built);
        assert_eq!(found(&index, r#"userName eq "late@x""#), ids(&["U9"]));
        assert_eq!(found(&index, r#"userName eq "gone@x""#), ids(&[]));
    }
}
