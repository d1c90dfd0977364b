//! The once-a-second collector and the one interface every per-second
//! consumer implements.
//!
//! Each second the collector takes the stats shards' histograms and counts
//! and hands one [`Second`] to every [`SecondSink`]: the report's series
//! (with the resource monitor), the progress line, the HdrHistogram log, a
//! worker's pipe to its parent. The engine knows none of them, so nothing
//! below the run path builds an upper layer's types.

use crate::engine::ctx::RunCtx;
use crate::engine::stats::{Counts, new_hist};
use hdrhistogram::Histogram;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One second of a run as measured by one process (or merged over several).
#[derive(Debug, Clone)]
pub struct Second {
    /// Start of the interval, since the run's start.
    pub start: Duration,
    /// Length of the interval: about 1 s, more when loadgen was starved.
    pub len: Duration,
    /// Connections open at the end of the interval.
    pub open: i64,
    /// What happened in this interval alone.
    pub delta: Counts,
    /// Latencies from the intended send times (coordinated-omission corrected).
    pub corrected: Histogram<u64>,
    /// Latencies from the actual send times.
    pub uncorrected: Histogram<u64>,
    /// Connection times (TCP + upgrade) of the connections opened in it.
    pub conn_time: Histogram<u64>,
    /// Send lags (actual minus intended send time) of the messages sent in it.
    pub send_lag: Histogram<u64>,
}

impl Second {
    /// A second with nothing in it, to merge others into.
    pub fn empty() -> Second {
        Second {
            start: Duration::MAX,
            len: Duration::ZERO,
            open: 0,
            delta: Counts::default(),
            corrected: new_hist(),
            uncorrected: new_hist(),
            conn_time: new_hist(),
            send_lag: new_hist(),
        }
    }

    /// Add the same second as measured by another process: counts and open
    /// connections add, histograms add exactly (same bounds).
    pub fn merge(&mut self, o: &Second) {
        self.start = self.start.min(o.start);
        self.len = self.len.max(o.len);
        self.open += o.open;
        self.delta.add(&o.delta);
        for (a, b) in [
            (&mut self.corrected, &o.corrected),
            (&mut self.uncorrected, &o.uncorrected),
            (&mut self.conn_time, &o.conn_time),
            (&mut self.send_lag, &o.send_lag),
        ] {
            let _ = a.add(b);
        }
    }
}

/// A consumer of per-second figures. Called on the collector's task, once a
/// second: keep it cheap, and bound whatever it keeps.
pub trait SecondSink: Send {
    fn second(&mut self, s: &Second);
}

/// Hand every second to `sinks` until `done` fires, then one last (partial)
/// second.
pub async fn collect(ctx: &RunCtx, sinks: &mut [&mut dyn SecondSink], done: &tokio::sync::Notify) {
    let mut prev = Counts::default();
    let mut prev_t = ctx.t0;
    let mut tick = tokio::time::interval_at(
        (ctx.t0 + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let finished = tokio::select! {
            _ = tick.tick() => false,
            _ = done.notified() => true,
        };
        let now = Instant::now();
        let taken = ctx.stats.take_second();
        let second = Second {
            start: prev_t - ctx.t0,
            len: now - prev_t,
            open: ctx.stats.open.load(Ordering::Relaxed),
            delta: taken.counts.since(&prev),
            corrected: taken.corrected,
            uncorrected: taken.uncorrected,
            conn_time: taken.conn_time,
            send_lag: taken.send_lag,
        };
        for s in sinks.iter_mut() {
            s.second(&second);
        }
        prev = taken.counts;
        prev_t = now;
        if finished {
            break;
        }
    }
}
