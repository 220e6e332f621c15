//! Serialises work on one resource within this process: a read-modify-write
//! (PATCH, PUT, DELETE, a membership change) holds its resource's lock from
//! the read to the last write, and a create holds the lock of its matching
//! key (userName, a group's displayName) from the look-up to the write. So
//! two PATCHes cannot interleave and lose one's change, exactly one of N
//! requests carrying the same `If-Match` wins, and N identical POSTs make one
//! user. One table serves every connection on an upstream.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

/// Entries are weak: a key's lock lives while someone holds or waits for it.
#[derive(Debug, Default)]
pub struct ResourceLocks {
    table: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

/// Dead entries are swept when the table has grown past this and doubled.
const SWEEP_AT: usize = 1024;

impl ResourceLocks {
    /// Waits for the lock of `key`; dropping the guard releases it.
    pub async fn lock(&self, key: String) -> OwnedMutexGuard<()> {
        let lock = {
            // A poisoned table only means a panic while it was held; its
            // entries are still sound weak references.
            let mut table = self
                .table
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if table.len() >= SWEEP_AT && table.len().is_power_of_two() {
                table.retain(|_, lock| lock.strong_count() > 0);
            }
            match table.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    table.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn one_key_is_held_by_one_request_at_a_time_and_others_go_on() {
        let locks = Arc::new(ResourceLocks::default());
        let first = locks.lock("Users/1".into()).await;
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _second = locks.lock("Users/1".into()).await;
            })
        };
        // Another resource is not held up.
        tokio::time::timeout(Duration::from_secs(1), locks.lock("Users/2".into()))
            .await
            .expect("another key is free");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "the same key waits");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("released")
            .expect("no panic");
    }

    #[tokio::test]
    async fn released_keys_do_not_accumulate() {
        let locks = ResourceLocks::default();
        for i in 0..5000 {
            drop(locks.lock(format!("Users/{i}")).await);
        }
        let size = locks.table.lock().unwrap().len();
        assert!(size <= 2 * SWEEP_AT, "{size} entries kept");
    }
}
