//! A turn's per-message figures, recorded together at the turn's end.
//!
//! An epoll loop records three values per message (two latencies, one
//! send lag) between system calls that walk the kernel's socket buffers
//! and its own sessions' state. Each record then found its histogram's
//! lines cold: at 3,000 x 10/s `perf` put `record_n_inner` at about three
//! times tcp_floor's one record per message (docs/BENCHMARKS.md, session
//! 14). While a loop holds its shard ([`super::stats::Held`]), the values
//! wait here, bounded, and go into the histograms back to back when the
//! turn ends (or the batch fills), with the histograms' lines warm. The
//! shard stays locked meanwhile, so the collector never reads a histogram
//! with values still waiting: nothing is lost or moved to another second.

use super::hist::record;
use hdrhistogram::Histogram;

/// Values held before they are recorded anyway.
const CAP: usize = 256;

/// Values waiting for their histograms; empty and off unless a loop holds
/// the shard.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    on: bool,
    /// (corrected, uncorrected) latencies.
    lat: Vec<(u64, u64)>,
    lag: Vec<u64>,
}

/// The histograms a batch ends in.
pub struct Sinks<'a> {
    pub corrected: &'a mut Histogram<u64>,
    pub uncorrected: &'a mut Histogram<u64>,
    pub send_lag: &'a mut Histogram<u64>,
}

impl Batch {
    /// Hold values from now on (the shard is locked for a turn).
    pub fn start(&mut self) {
        self.on = true;
    }

    /// Record what waits and stop holding (the turn ended).
    pub fn stop(&mut self, to: Sinks<'_>) {
        self.flush(to);
        self.on = false;
    }

    /// A latency pair: held, or recorded at once when not batching.
    pub fn latency(&mut self, corrected: u64, uncorrected: u64, to: Sinks<'_>) {
        if !self.on {
            record(to.corrected, corrected);
            record(to.uncorrected, uncorrected);
        } else if held_full(&mut self.lat, (corrected, uncorrected)) {
            self.flush(to);
        }
    }

    /// A send lag: held, or recorded at once when not batching.
    pub fn lag(&mut self, us: u64, to: Sinks<'_>) {
        if !self.on {
            record(to.send_lag, us);
        } else if held_full(&mut self.lag, us) {
            self.flush(to);
        }
    }

    /// Record every value waiting.
    pub fn flush(&mut self, to: Sinks<'_>) {
        self.merge_into(to);
        self.lat.clear();
        self.lag.clear();
    }

    /// Record the values waiting here into `to`, leaving them here too (a
    /// merge of shards reads a batch it may not empty).
    pub fn merge_into(&self, to: Sinks<'_>) {
        for &(c, u) in &self.lat {
            record(to.corrected, c);
            record(to.uncorrected, u);
        }
        for &l in &self.lag {
            record(to.send_lag, l);
        }
    }
}

/// Hold `v` (room for [`CAP`] taken once); whether the batch is now full.
fn held_full<T>(held: &mut Vec<T>, v: T) -> bool {
    if held.capacity() == 0 {
        held.reserve_exact(CAP);
    }
    held.push(v);
    held.len() >= CAP
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::hist::new_hist;

    struct Hists(Histogram<u64>, Histogram<u64>, Histogram<u64>);

    impl Hists {
        fn new() -> Hists {
            Hists(new_hist(), new_hist(), new_hist())
        }
        fn to(&mut self) -> Sinks<'_> {
            Sinks {
                corrected: &mut self.0,
                uncorrected: &mut self.1,
                send_lag: &mut self.2,
            }
        }
        fn lens(&self) -> (u64, u64, u64) {
            (self.0.len(), self.1.len(), self.2.len())
        }
    }

    #[test]
    fn off_records_at_once_and_on_holds_until_stopped() {
        let (mut b, mut h) = (Batch::default(), Hists::new());
        b.latency(100, 90, h.to());
        b.lag(7, h.to());
        assert_eq!(h.lens(), (1, 1, 1));
        b.start();
        for i in 0..10 {
            b.latency(200 + i, 150, h.to());
            b.lag(9, h.to());
        }
        assert_eq!(h.lens(), (1, 1, 1), "held values went in early");
        b.stop(h.to());
        assert_eq!(h.lens(), (11, 11, 11));
        // Each value in its own histogram.
        assert_eq!((h.0.max(), h.1.max(), h.2.max()), (209, 150, 9));
        // Stopped: at once again.
        b.lag(3, h.to());
        assert_eq!(h.2.len(), 12);
    }

    #[test]
    fn a_full_batch_is_recorded_and_its_room_stays_bounded() {
        let (mut b, mut h) = (Batch::default(), Hists::new());
        b.start();
        let n = 3 * CAP as u64 + 5;
        for i in 0..n {
            b.latency(i + 1, i + 1, h.to());
            b.lag(i, h.to());
        }
        // Recorded and waiting add up to what came; never a full batch waits.
        let (c, u, l) = h.lens();
        let (wl, wg) = (b.lat.len() as u64, b.lag.len() as u64);
        assert_eq!((c + wl, u + wl, l + wg), (n, n, n));
        assert!(wl < CAP as u64 && wg < CAP as u64 && c >= n - CAP as u64);
        assert!(b.lat.capacity() <= CAP && b.lag.capacity() <= CAP);
        b.stop(h.to());
        assert_eq!(h.lens(), (n, n, n));
    }

    #[test]
    fn a_merge_takes_the_values_still_waiting() {
        let (mut b, mut h) = (Batch::default(), Hists::new());
        b.start();
        b.latency(500, 400, h.to());
        b.lag(12, h.to());
        let mut into = Hists::new();
        b.merge_into(into.to());
        assert_eq!(into.lens(), (1, 1, 1));
        assert_eq!((into.0.max(), into.1.max(), into.2.max()), (500, 400, 12));
    }
}
