//! HTTP connections waiting for their request headers, bounded by
//! `--max-handshakes`.
//!
//! A connection that has sent no complete request head (a handshake in
//! progress, or a keep-alive connection between requests) holds hyper's
//! read buffer and connection state, about 20 KiB of RSS, and
//! `--handshake-timeout` bounds it only in time. Slowloris opens thousands
//! of them. This set bounds their number.
//!
//! Past the bound the connection waiting *longest* is closed, not the
//! newcomer: a real client sends its headers within a round trip, so it is
//! never the oldest, and refusing newcomers instead would let an attacker
//! holding every slot lock real clients out until its connections time out.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// The connections waiting for a request head, oldest first.
pub struct Handshakes {
    max: usize,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    next: u64,
    by_age: BTreeMap<u64, Arc<Slot>>,
}

/// One connection's place in [`Handshakes`]; it is in the set between
/// [`Handshakes::wait`] and [`Handshakes::done`] (or its eviction).
#[derive(Default)]
pub struct Slot {
    /// Its key in `by_age`; 0 while not waiting.
    key: AtomicU64,
    evicted: Notify,
}

impl Slot {
    /// Resolves once this connection was evicted to make room.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Handshakes {
    pub fn new(max: usize) -> Handshakes {
        Handshakes {
            max: max.max(1),
            waiting: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `slot` starts waiting for a request head. Returns how many waiting
    /// connections were evicted to make room (0 or 1).
    pub fn wait(&self, slot: &Arc<Slot>) -> u64 {
        let mut w = self.lock();
        if slot.key.load(Relaxed) != 0 {
            return 0;
        }
        let mut evicted = 0;
        while w.by_age.len() >= self.max {
            let Some((_, oldest)) = w.by_age.pop_first() else {
                break;
            };
            oldest.key.store(0, Relaxed);
            // Stored as a permit if its connection is not polling right now.
            oldest.evicted.notify_one();
            evicted += 1;
        }
        w.next += 1;
        let key = w.next;
        slot.key.store(key, Relaxed);
        w.by_age.insert(key, slot.clone());
        evicted
    }

    /// `slot` got its request head, or its connection ended.
    pub fn done(&self, slot: &Slot) {
        let mut w = self.lock();
        let key = slot.key.swap(0, Relaxed);
        if key != 0 {
            w.by_age.remove(&key);
        }
    }

    /// Connections waiting now.
    pub fn len(&self) -> usize {
        self.lock().by_age.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn is_evicted(s: &Slot) -> bool {
        tokio::time::timeout(Duration::from_millis(10), s.evicted())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn the_oldest_waiting_connection_makes_room() {
        let set = Handshakes::new(2);
        let [a, b, c, d] = std::array::from_fn(|_| Arc::new(Slot::default()));
        assert_eq!(set.wait(&a), 0);
        assert_eq!(set.wait(&b), 0);
        assert_eq!(set.wait(&b), 0, "waiting twice counts once");
        assert_eq!(set.len(), 2);
        assert_eq!(set.wait(&c), 1);
        assert_eq!(set.len(), 2);
        assert!(is_evicted(&a).await, "a waited longest");
        assert!(!is_evicted(&b).await);
        // b got its headers: it leaves the set and is never evicted.
        set.done(&b);
        set.done(&b);
        assert_eq!(set.len(), 1);
        assert_eq!(set.wait(&d), 0);
        assert_eq!(set.wait(&a), 1, "a keep-alive connection waits again");
        assert!(is_evicted(&c).await);
        assert!(!is_evicted(&b).await && !is_evicted(&d).await);
        set.done(&a);
        set.done(&d);
        assert_eq!(set.len(), 0);
    }
}
