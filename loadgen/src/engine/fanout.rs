//! Fan-out bookkeeping: which deliveries a subscriber owes the run, and
//! which it already got.
//!
//! A group's publisher and subscribers agree on what is expected under one
//! short lock per group: a message published while N subscribers are ready
//! is N deliveries, and a subscriber that becomes ready expects every
//! message from the next one published on. Counting both sides under the
//! same lock keeps the books exact (deliveries expected = received + lost),
//! even when a subscriber joins while a message is on its way.

use std::sync::Mutex;

/// One group's shared state.
#[derive(Debug, Default)]
pub struct Group {
    inner: Mutex<GroupState>,
}

#[derive(Debug, Default)]
struct GroupState {
    /// Subscribers ready now.
    ready: u64,
    /// Messages the publisher has published (the next seq).
    published: u64,
}

impl Group {
    /// The publisher publishes message `seq`: how many deliveries it makes.
    pub fn publish(&self, seq: u64) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.published = g.published.max(seq + 1);
        g.ready
    }

    /// A subscriber becomes ready: the first seq it is owed.
    pub fn join(&self) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.ready += 1;
        g.published
    }

    /// Messages published so far (a delivery of a later seq is bogus).
    pub fn published(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .published
    }

    /// A subscriber leaves: it is owed nothing published from now on.
    pub fn leave(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.ready = g.ready.saturating_sub(1);
    }
}

/// Window of sequence numbers a subscriber tracks for duplicates.
const WINDOW: u64 = 4096;

/// What one subscriber has received of its publisher's messages.
#[derive(Debug)]
pub struct Received {
    /// The first seq it is owed (messages before it are not its).
    pub first: u64,
    /// Highest seq seen + 1.
    upto: u64,
    /// Bit `s % WINDOW` set when seq `s` (within the window below `upto`) arrived.
    bits: Box<[u64; (WINDOW / 64) as usize]>,
}

/// What a delivery is for its subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Owed and new: it counts.
    New,
    /// Seen before.
    Duplicate,
    /// Published before the subscriber was ready: not owed.
    NotOwed,
    /// Too far behind the newest to tell whether it is new.
    TooOld,
}

impl Received {
    pub fn new(first: u64) -> Received {
        Received {
            first,
            upto: first,
            bits: Box::new([0; (WINDOW / 64) as usize]),
        }
    }

    pub fn take(&mut self, seq: u64) -> Delivery {
        if seq < self.first {
            return Delivery::NotOwed;
        }
        if seq.saturating_add(WINDOW) < self.upto {
            return Delivery::TooOld;
        }
        // Slide the window: clear the bits of the seqs it leaves behind
        // (at most WINDOW of them; a longer jump clears it all).
        if seq.saturating_sub(self.upto) >= WINDOW {
            self.bits.fill(0);
            self.upto = seq + 1;
        }
        while self.upto <= seq {
            let s = self.upto;
            self.bits[((s % WINDOW) / 64) as usize] &= !(1 << (s % 64));
            self.upto += 1;
        }
        let (w, b) = (((seq % WINDOW) / 64) as usize, seq % 64);
        if self.bits[w] & (1 << b) != 0 {
            return Delivery::Duplicate;
        }
        self.bits[w] |= 1 << b;
        Delivery::New
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_new_duplicate_and_old_deliveries() {
        let mut r = Received::new(5);
        assert_eq!(r.take(4), Delivery::NotOwed);
        assert_eq!(r.take(5), Delivery::New);
        assert_eq!(r.take(7), Delivery::New);
        assert_eq!(
            r.take(6),
            Delivery::New,
            "a late one within the window is new"
        );
        assert_eq!(r.take(7), Delivery::Duplicate);
        assert_eq!(r.take(5 + WINDOW + 10), Delivery::New);
        assert_eq!(r.take(6), Delivery::TooOld);
        assert_eq!(r.take(5 + WINDOW + 11), Delivery::New);
        // A huge jump is bounded work, and never overflows.
        assert_eq!(r.take(u64::MAX - 1), Delivery::New);
        assert_eq!(r.take(u64::MAX - 1), Delivery::Duplicate);
    }

    #[test]
    fn publish_and_join_agree_under_the_lock() {
        let g = Group::default();
        assert_eq!(g.publish(0), 0, "nobody ready: no delivery owed");
        assert_eq!(g.join(), 1, "owed from the next message on");
        assert_eq!(g.publish(1), 1);
        g.leave();
        assert_eq!(g.publish(2), 0);
    }
}
