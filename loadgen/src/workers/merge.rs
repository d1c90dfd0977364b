//! Merging the workers' seconds into the run's seconds, as they arrive.
//!
//! Workers start together at the parent's `Go`, so their k-th seconds cover
//! the same interval: counts add, and the seconds' histograms add exactly,
//! so merged per-second percentiles are exact (not averaged). Second k is
//! released once every worker still running has sent it.

use crate::engine::collect::Second;
use crate::workers::exchange::SecondRecord;
use std::collections::VecDeque;

/// Seconds a worker may run ahead of the slowest before its oldest are
/// released anyway (bounds the parent's memory if one worker stalls).
const MAX_AHEAD: usize = 30;

/// The seconds received and not yet merged, per worker.
pub struct SecondMerger {
    queues: Vec<VecDeque<SecondRecord>>,
    /// Workers that will send no more seconds (finished or gone).
    ended: Vec<bool>,
}

impl SecondMerger {
    pub fn new(workers: usize) -> SecondMerger {
        SecondMerger {
            queues: (0..workers).map(|_| VecDeque::new()).collect(),
            ended: vec![false; workers],
        }
    }

    pub fn push(&mut self, worker: usize, s: SecondRecord) {
        if let Some(q) = self.queues.get_mut(worker) {
            q.push_back(s);
        }
    }

    /// Worker `worker` sends no more seconds.
    pub fn end(&mut self, worker: usize) {
        if let Some(e) = self.ended.get_mut(worker) {
            *e = true;
        }
    }

    /// The next merged second, once every running worker has sent it (or
    /// one ran too far ahead); with `flush`, whatever is left.
    pub fn next(&mut self, flush: bool) -> Option<Second> {
        if self.queues.iter().all(VecDeque::is_empty) {
            return None;
        }
        let complete = self
            .queues
            .iter()
            .zip(&self.ended)
            .all(|(q, &ended)| ended || !q.is_empty());
        let too_far = self.queues.iter().any(|q| q.len() > MAX_AHEAD);
        if !(flush || complete || too_far) {
            return None;
        }
        let mut m = Second::empty();
        for q in &mut self.queues {
            let Some(x) = q.pop_front() else { continue };
            m.merge(&x.to_second());
        }
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stats::{Counts, Summary, hist_to_pairs, new_hist, record};
    use std::time::Duration;

    fn sec(start_s: u64, open: i64, sent: u64, lat: &[u64]) -> SecondRecord {
        let mut h = new_hist();
        for &v in lat {
            record(&mut h, v);
        }
        SecondRecord {
            start_us: start_s * 1_000_000,
            len_us: 1_000_000,
            open,
            delta: Counts {
                sent,
                received: sent,
                ..Counts::default()
            },
            corrected: hist_to_pairs(&h),
            uncorrected: hist_to_pairs(&h),
            conn_time: hist_to_pairs(&h),
            send_lag: vec![(start_s + 1, sent)],
        }
    }

    #[test]
    fn seconds_add_counts_and_histograms_exactly() {
        let mut m = SecondMerger::new(2);
        // Worker 0: 99 fast replies; worker 1: one slow reply, then one more second.
        m.push(1, sec(0, 7, 1, &[90_000]));
        assert!(
            m.next(false).is_none(),
            "worker 0 has not sent second 0 yet"
        );
        m.push(0, sec(0, 5, 99, &[100; 99]));
        m.push(1, sec(1, 7, 1, &[5]));
        let s0 = m.next(false).expect("both sent second 0");
        assert_eq!((s0.open, s0.delta.sent), (12, 100));
        assert_eq!(s0.corrected.len(), 100);
        // Connection times and send lags merge exactly too.
        assert_eq!((s0.conn_time.len(), s0.send_lag.len()), (100, 100));
        // p99 of the merged second is the fast value, not the slow worker's max.
        assert_eq!(Summary::of(&s0.corrected).p99, 100);
        assert!(s0.corrected.max() >= 89_000);
        assert!(m.next(false).is_none(), "worker 0 may still send second 1");
        m.end(0);
        let s1 = m.next(false).expect("worker 0 ended");
        assert_eq!((s1.open, s1.start), (7, Duration::from_secs(1)));
        assert!(m.next(true).is_none());
    }

    #[test]
    fn a_stalled_worker_does_not_hold_seconds_forever() {
        let mut m = SecondMerger::new(2);
        for k in 0..=MAX_AHEAD as u64 {
            m.push(0, sec(k, 1, 1, &[10]));
        }
        let s = m.next(false).expect("worker 0 is too far ahead");
        assert_eq!(s.open, 1);
    }
}
