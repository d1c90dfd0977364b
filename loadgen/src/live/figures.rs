//! The live figures: everything since the run's start, added up one
//! [`Second`] at a time.
//!
//! Prometheus wants counters that only go up and histograms with fixed,
//! cumulative buckets, while the engine hands over each second's
//! HdrHistograms. So each second's values are sorted into the fixed
//! [`BOUNDS_S`] buckets here (to HdrHistogram's three significant digits),
//! and the bucket counts, the sum and the count only ever grow. The last
//! second's exact percentiles are kept beside them for a quick look.

use crate::engine::collect::Second;
use crate::engine::stats::{Counts, Summary};
use crate::report::phases::Phase;
use hdrhistogram::Histogram;

/// Upper bounds of the histogram buckets, in seconds (`+Inf` is implied):
/// from half a millisecond, where a loopback echo sits, to ten seconds,
/// past any `--timeout` worth running with.
pub const BOUNDS_S: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A Prometheus histogram: cumulative from the run's start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Values at or below `BOUNDS_S[i]` (not yet cumulative over buckets:
    /// each value counts in the first bucket that holds it).
    pub per_bucket: [u64; BOUNDS_S.len()],
    /// Every value, `+Inf` included.
    pub count: u64,
    /// Sum of the values, in seconds.
    pub sum_s: f64,
}

impl Buckets {
    /// Add one second's histogram of microseconds.
    pub fn add(&mut self, h: &Histogram<u64>) {
        for v in h.iter_recorded() {
            let n = v.count_at_value();
            let value = v.value_iterated_to();
            // The lowest value of HdrHistogram's bucket: a value recorded at
            // exactly a bound stays in that bound's bucket.
            let low_s = h.lowest_equivalent(value) as f64 / 1e6;
            if let Some(i) = BOUNDS_S.iter().position(|b| low_s <= *b) {
                self.per_bucket[i] += n;
            }
            self.count += n;
            self.sum_s += h.median_equivalent(value) as f64 / 1e6 * n as f64;
        }
    }

    /// `(le, cumulative count)` for every bound, `+Inf` last (as `None`).
    pub fn cumulative(&self) -> Vec<(Option<f64>, u64)> {
        let mut acc = 0;
        let mut out: Vec<(Option<f64>, u64)> = BOUNDS_S
            .iter()
            .zip(self.per_bucket)
            .map(|(b, n)| {
                acc += n;
                (Some(*b), acc)
            })
            .collect();
        out.push((None, self.count));
        out
    }
}

/// p50, p95, p99 and max of one second, in seconds; `None` when the second
/// measured nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Recent {
    pub quantiles: Option<[f64; 4]>,
}

impl Recent {
    /// The quantile labels, in the order of `quantiles`.
    pub const LABELS: [&'static str; 4] = ["0.5", "0.95", "0.99", "1"];

    fn of(h: &Histogram<u64>) -> Recent {
        if h.is_empty() {
            return Recent { quantiles: None };
        }
        let s = Summary::of(h);
        let q = [s.p50, s.p95, s.p99, s.max].map(|us| us as f64 / 1e6);
        Recent { quantiles: Some(q) }
    }
}

/// The run so far, as the last second left it.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Seconds handed over so far.
    pub seconds: u64,
    /// End of the last second, since the run's start.
    pub elapsed_s: f64,
    /// Connections open at the end of the last second.
    pub open: i64,
    /// Connections the plan wants at the end of the last second.
    pub target: u64,
    /// Everything counted since the start.
    pub counts: Counts,
    /// Reply latency from the intended send time (corrected).
    pub latency: Buckets,
    /// Reply latency from the actual send time.
    pub latency_uncorrected: Buckets,
    /// TCP connect + TLS + WebSocket upgrade.
    pub connect: Buckets,
    /// Actual minus intended send time.
    pub send_lag: Buckets,
    /// The last second's corrected latency and send lag.
    pub recent_latency: Recent,
    pub recent_send_lag: Recent,
    /// The plan's phase of the last second (`None` before the first).
    pub phase: Option<Phase>,
    /// Sending and draining are over.
    pub finished: bool,
}

impl Figures {
    /// Add second `s`, which the phase clock put in `phase`, when the plan
    /// wanted `target` connections.
    pub fn add(&mut self, s: &Second, phase: Phase, target: u64) {
        self.seconds += 1;
        self.elapsed_s = (s.start + s.len).as_secs_f64();
        self.open = s.open;
        self.target = target;
        self.counts.add(&s.delta);
        self.latency.add(&s.corrected);
        self.latency_uncorrected.add(&s.uncorrected);
        self.connect.add(&s.conn_time);
        self.send_lag.add(&s.send_lag);
        self.recent_latency = Recent::of(&s.corrected);
        self.recent_send_lag = Recent::of(&s.send_lag);
        self.phase = Some(phase);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stats::{new_hist, record};

    #[test]
    fn buckets_are_cumulative_and_only_grow() {
        let mut b = Buckets::default();
        let mut h = new_hist();
        for us in [300, 1_000, 4_000, 5_000, 7_000, 20_000_000] {
            record(&mut h, us);
        }
        b.add(&h);
        let c = b.cumulative();
        // 0.3 ms and 1 ms by 1 ms; 4 and 5 ms by 5 ms; 20 s only in +Inf.
        assert_eq!(c[0], (Some(0.0005), 1));
        assert_eq!(c[1], (Some(0.001), 2));
        assert_eq!(c[3], (Some(0.005), 4));
        assert_eq!(c[4], (Some(0.01), 5));
        assert_eq!(c[13], (Some(10.0), 5));
        assert_eq!(c[14], (None, 6));
        assert!((b.sum_s - 20.0173).abs() < 0.01, "{}", b.sum_s);
        let before = c;
        b.add(&h);
        for (a, z) in before.iter().zip(b.cumulative()) {
            assert_eq!(z.1, a.1 * 2);
        }
    }

    #[test]
    fn a_quiet_second_has_no_quantiles() {
        let mut f = Figures::default();
        let mut s = Second::empty();
        s.start = std::time::Duration::ZERO;
        s.len = std::time::Duration::from_secs(1);
        s.open = 3;
        s.delta.sent = 5;
        f.add(&s, Phase::RampUp, 4);
        assert_eq!(f.recent_latency.quantiles, None);
        record(&mut s.corrected, 2_000);
        f.add(&s, Phase::Steady, 4);
        let q = f.recent_latency.quantiles.unwrap();
        assert!((q[0] - 0.002).abs() < 1e-5, "{q:?}");
        assert_eq!(f.counts.sent, 10);
        assert_eq!(f.latency.count, 1);
        assert_eq!((f.open, f.target, f.seconds), (3, 4, 2));
    }
}
