//! When each connection of a loop next needs attention: one heap for all
//! of them, instead of a timer per connection.
//!
//! A connection has one live wake at a time. Moving it pushes a new entry
//! with a new id; the old entry stays in the heap until its time and is
//! skipped then (the id no longer matches), so nothing is searched or
//! removed from the middle.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    next_id: u64,
}

impl Timers {
    /// Wake connection `idx` at `at`; returns the wake's id, which the
    /// connection keeps to recognise it.
    pub fn push(&mut self, at: Instant, idx: usize) -> u64 {
        self.next_id += 1;
        self.heap.push(Reverse((at, self.next_id, idx)));
        self.next_id
    }

    /// The earliest wake, live or not.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next wake due by `now`: `(id, idx)`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(u64, usize)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((_, id, idx))| (id, idx))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wakes_come_in_time_order_and_only_when_due() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Timers::default();
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
    }
}
