//! When each connection of a loop next needs attention: one heap for all
//! of them, instead of a timer per connection.
//!
//! A connection has one live wake at a time. Moving it pushes a new entry
//! with a new id; the old entry stays in the heap until its time and is
//! skipped then (the id no longer matches), so nothing is searched or
//! removed from the middle.
//!
//! Most wakes come in time order: a paced session's next send is one
//! interval after the one that just fired, later than every wake already
//! queued. Those go to the back of a queue that stays sorted by itself
//! (`in_order`); only the others (a new session, a deadline) go to the
//! heap. A pop takes the earlier of the two fronts. In steady state a
//! wake then costs an append and a read in order, where a heap pop walked
//! the heap's whole depth on every message sent, a cache miss per level
//! (profiled at 8-12 % of loadgen's CPU at 50,000 msg/s).
//!
//! Times are one integer, nanoseconds since the timers' start, so a
//! comparison is one instruction.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

pub struct Timers {
    /// Wakes pushed no earlier than every wake before them: sorted.
    in_order: VecDeque<Wake>,
    /// The rest.
    heap: BinaryHeap<Wake>,
    /// Time zero of the entries' `at`.
    base: Instant,
    next_id: u64,
}

/// One wake: due `at` nanoseconds past `base`. Ordered by `at` alone,
/// earliest first (a max-heap of reversed order).
struct Wake {
    at: u64,
    id: u64,
    idx: usize,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Wake {}

impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wake {
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            in_order: VecDeque::new(),
            heap: BinaryHeap::new(),
            base: Instant::now(),
            next_id: 0,
        }
    }
}

impl Timers {
    /// `at` as nanoseconds past `base` (an earlier time is due at once).
    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Wake connection `idx` at `at`; returns the wake's id, which the
    /// connection keeps to recognise it.
    pub fn push(&mut self, at: Instant, idx: usize) -> u64 {
        self.next_id += 1;
        let w = Wake {
            at: self.ns(at),
            id: self.next_id,
            idx,
        };
        if self.in_order.back().is_none_or(|last| last.at <= w.at) {
            self.in_order.push_back(w);
        } else {
            self.heap.push(w);
        }
        self.next_id
    }

    /// The earliest wake, live or not.
    pub fn next(&self) -> Option<Instant> {
        self.earliest()
            .map(|(at, _)| self.base + Duration::from_nanos(at))
    }

    /// The earliest wake's time, and whether it is the queue's (else the heap's).
    fn earliest(&self) -> Option<(u64, bool)> {
        match (self.in_order.front(), self.heap.peek()) {
            (Some(q), Some(h)) if h.at < q.at => Some((h.at, false)),
            (Some(q), _) => Some((q.at, true)),
            (None, Some(h)) => Some((h.at, false)),
            (None, None) => None,
        }
    }

    /// The next wake due by `now`: `(id, idx)`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(u64, usize)> {
        let (at, queued) = self.earliest()?;
        if at > self.ns(now) {
            return None;
        }
        let w = if queued {
            self.in_order.pop_front()
        } else {
            self.heap.pop()
        };
        w.map(|w| (w.id, w.idx))
    }

    /// The connection of the `k`-th wake queued in order after the
    /// earliest (a hint of what is due soon, for prefetching).
    pub fn soon(&self, k: usize) -> Option<usize> {
        self.in_order.get(k).map(|w| w.idx)
    }

    /// Wakes held, live or not.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.in_order.len() + self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_come_in_time_order_and_only_when_due() {
        let mut w = Timers::default();
        let t = w.base;
        let ms = Duration::from_millis;
        let late = w.push(t + ms(30), 1);
        let early = w.push(t + ms(10), 2);
        let mid = w.push(t + ms(20), 3);
        assert_eq!(w.next(), Some(t + ms(10)));
        assert_eq!(w.pop_due(t + ms(5)), None);
        assert_eq!(w.pop_due(t + ms(25)), Some((early, 2)));
        assert_eq!(w.pop_due(t + ms(25)), Some((mid, 3)));
        assert_eq!(w.pop_due(t + ms(25)), None);
        assert_eq!(w.pop_due(t + ms(30)), Some((late, 1)));
        assert_eq!(w.next(), None);
        assert!(late != early && early != mid);
        // A time before the heap's start is due at once, first.
        let past = w.push(t.checked_sub(ms(5)).unwrap_or(t), 4);
        let later = w.push(t + ms(1), 5);
        assert_eq!(w.next(), Some(t));
        assert_eq!(w.pop_due(t), Some((past, 4)));
        assert_eq!(w.pop_due(t), None);
        assert_eq!(w.pop_due(t + ms(1)), Some((later, 5)));
        assert_eq!(w.len(), 0);
    }

    /// Wakes in and out of order, checked against a sort: every wake
    /// comes out once, in time order, and only when due.
    #[test]
    fn mixed_orders_come_out_sorted() {
        let mut w = Timers::default();
        let t = w.base;
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut want = Vec::new();
        for i in 0..2_000usize {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Mostly rising (as paced sends), every fourth anywhere.
            let at = if i % 4 == 3 {
                state % 5_000
            } else {
                i as u64 * 2
            };
            let id = w.push(t + Duration::from_micros(at), i);
            want.push((at, id, i));
        }
        assert!(!w.heap.is_empty() && !w.in_order.is_empty());
        want.sort();
        let mut got = Vec::new();
        let mut clock = 0;
        while got.len() < want.len() {
            clock += 7;
            while let Some((id, idx)) = w.pop_due(t + Duration::from_micros(clock)) {
                let at = want.iter().find(|x| x.1 == id).map_or(u64::MAX, |x| x.0);
                assert!(at <= clock, "wake {id} at {at} fired at {clock}");
                got.push((at, id, idx));
            }
        }
        assert!(got.windows(2).all(|p| p[0].0 <= p[1].0), "out of order");
        got.sort();
        assert_eq!(got, want);
        assert_eq!(w.next(), None);
    }
}
