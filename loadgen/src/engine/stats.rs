//! Counters and HdrHistograms, recorded without a shared lock on the hot path.
//!
//! Every runtime thread lazily gets its own [`Recorder`] shard (a
//! thread-local handle to a per-thread mutex that only the once-a-second
//! collector ever contends for). Shards are merged losslessly: histograms
//! with identical bounds add bucket by bucket, and counts add. The same
//! merge combines the results of `--workers` processes.
//!
//! An epoll loop records several figures per message; a lock and an unlock
//! each time (two full barriers) were 8 % of loadgen's user time at 50,000
//! msg/s. So a loop [`Stats::hold`]s its shard for a whole turn, and every
//! record of that turn on that thread goes straight to it: the collector
//! waits for at most the end of a turn.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::batch::{Batch, Sinks};
pub use super::counts::{Counts, ErrorKind};
pub use super::hist::{HIGHEST_US, LOWEST_US, SIGFIG, new_hist, record};

/// One shard of measurements.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub counts: Counts,
    /// TCP connect + TLS + WebSocket handshake.
    pub conn_time: Histogram<u64>,
    /// The TCP connect alone.
    pub conn_tcp: Histogram<u64>,
    /// The TLS handshake alone (`wss://` only).
    pub conn_tls: Histogram<u64>,
    /// The WebSocket upgrade alone (HTTP request to 101).
    pub conn_upgrade: Histogram<u64>,
    /// Reply latency from the intended send time (coordinated-omission corrected).
    pub corrected: Histogram<u64>,
    /// Reply latency from the actual send time.
    pub uncorrected: Histogram<u64>,
    /// Actual minus intended send time.
    pub send_lag: Histogram<u64>,
    /// Chat: gap between consecutive chunks.
    pub chunk_gap: Histogram<u64>,
    /// Chat: from the intended send time to `done`.
    pub done_time: Histogram<u64>,
    /// Streamed answers: parts per completed answer (a count, not µs).
    pub parts: Histogram<u64>,
    /// From a dropped connection to the next successful handshake of the
    /// same slot (--reconnect): what a client of a crashed node waits.
    pub failover: Histogram<u64>,
    /// Chat with --reconnect: from the drop that cut an answer to the moment
    /// it moves again on the next connection (its first chunk generated
    /// after the `recovered` replay, or `done`).
    pub recovery: Histogram<u64>,
    /// Latencies and send lags held for the turn while a loop holds this
    /// shard (`engine::batch`); empty otherwise.
    pub(crate) batch: Batch,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            counts: Counts::default(),
            conn_time: new_hist(),
            conn_tcp: new_hist(),
            conn_tls: new_hist(),
            conn_upgrade: new_hist(),
            corrected: new_hist(),
            uncorrected: new_hist(),
            send_lag: new_hist(),
            chunk_gap: new_hist(),
            done_time: new_hist(),
            parts: new_hist(),
            failover: new_hist(),
            recovery: new_hist(),
            batch: Batch::default(),
        }
    }
}

impl Recorder {
    /// Lossless merge: same bounds, so buckets add exactly.
    pub fn merge(&mut self, o: &Recorder) {
        self.counts.add(&o.counts);
        o.batch.merge_into(self.split().1);
        for (a, b) in [
            (&mut self.conn_time, &o.conn_time),
            (&mut self.conn_tcp, &o.conn_tcp),
            (&mut self.conn_tls, &o.conn_tls),
            (&mut self.conn_upgrade, &o.conn_upgrade),
            (&mut self.corrected, &o.corrected),
            (&mut self.uncorrected, &o.uncorrected),
            (&mut self.send_lag, &o.send_lag),
            (&mut self.chunk_gap, &o.chunk_gap),
            (&mut self.done_time, &o.done_time),
            (&mut self.parts, &o.parts),
            (&mut self.failover, &o.failover),
            (&mut self.recovery, &o.recovery),
        ] {
            // Same bounds on both sides, so this cannot fail; saturate otherwise.
            if a.add(b).is_err() {
                for v in b.iter_recorded() {
                    a.saturating_record_n(v.value_iterated_to(), v.count_at_value());
                }
            }
        }
    }

    /// A latency sample: both views, recorded once (the collector cuts
    /// each second's share from the running totals). While a loop holds
    /// the shard, held until its turn ends (`engine::batch`).
    pub fn latency(&mut self, corrected_us: u64, uncorrected_us: u64) {
        let (batch, to) = self.split();
        batch.latency(corrected_us, uncorrected_us, to);
    }

    /// A send lag (actual minus intended send time); held as latencies are.
    pub fn lag(&mut self, us: u64) {
        let (batch, to) = self.split();
        batch.lag(us, to);
    }

    fn split(&mut self) -> (&mut Batch, Sinks<'_>) {
        let to = Sinks {
            corrected: &mut self.corrected,
            uncorrected: &mut self.uncorrected,
            send_lag: &mut self.send_lag,
        };
        (&mut self.batch, to)
    }
}

/// What the collector takes every second.
#[derive(Debug, Clone)]
pub struct Taken {
    /// Cumulative counts so far.
    pub counts: Counts,
    /// This second's histograms.
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub conn_time: Histogram<u64>,
    pub send_lag: Histogram<u64>,
}

/// Cumulative histograms as of the last [`Stats::take_second`], from which
/// a second's share of a running total is cut (`now - then`, exact: the
/// totals only grow).
struct Marks {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    conn_time: Histogram<u64>,
    send_lag: Histogram<u64>,
}

impl Default for Marks {
    fn default() -> Self {
        Marks {
            corrected: new_hist(),
            uncorrected: new_hist(),
            conn_time: new_hist(),
            send_lag: new_hist(),
        }
    }
}

/// `now - then` for two cumulative snapshots of the same histogram.
fn since(now: &Histogram<u64>, then: &Histogram<u64>) -> Histogram<u64> {
    let mut d = now.clone();
    if d.subtract(then).is_err() {
        // Cannot happen for snapshots of one growing total; never go negative.
        d.reset();
        for v in now.iter_recorded() {
            let before = then.count_at(v.value_iterated_to());
            let n = v.count_at_value().saturating_sub(before);
            d.saturating_record_n(v.value_iterated_to(), n);
        }
    }
    d
}

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static LOCAL: RefCell<Option<(u64, Arc<Mutex<Recorder>>)>> = const { RefCell::new(None) };
    /// While a [`Held`] lives on this thread: its run and its locked
    /// shard. Taken out while a record uses it, so it is never lent twice.
    static HELD: Cell<Option<(u64, NonNull<Recorder>)>> = const { Cell::new(None) };
}

/// This thread's shard, locked until dropped; meanwhile [`Stats::with`]
/// on this thread records into it without locking.
pub struct Held<'a> {
    guard: MutexGuard<'a, Recorder>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // The turn's held values go in while the shard is still locked.
        let (batch, to) = self.guard.split();
        batch.stop(to);
        // Cleared before the guard unlocks (fields drop after this).
        HELD.set(None);
    }
}

fn lock(m: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// All shards of one run, plus the few gauges that must be global.
pub struct Stats {
    run: u64,
    shards: Mutex<Vec<Arc<Mutex<Recorder>>>>,
    /// Connections open right now.
    pub open: AtomicI64,
    /// Most connections open at once.
    pub peak_open: AtomicI64,
    /// The collector's marks in the running totals (only it takes them).
    marks: Mutex<Marks>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            run: NEXT_RUN.fetch_add(1, Ordering::Relaxed),
            marks: Mutex::new(Marks::default()),
            shards: Mutex::new(Vec::new()),
            open: AtomicI64::new(0),
            peak_open: AtomicI64::new(0),
        }
    }
}

impl Stats {
    /// Run `f` on this thread's shard, creating it on first use.
    pub fn with<R>(&self, f: impl FnOnce(&mut Recorder) -> R) -> R {
        if let Some((run, mut shard)) = HELD.take() {
            if run == self.run {
                // SAFETY: `shard` came from the `MutexGuard` inside a
                // `Held` that is alive on this thread (its drop clears
                // `HELD` before unlocking), so the mutex is locked by us
                // and nothing else reaches the recorder; the guard itself
                // is not used until its drop. `HELD` stays empty while `f`
                // runs, so this `&mut` is the only one.
                let out = f(unsafe { shard.as_mut() });
                HELD.set(Some((run, shard)));
                return out;
            }
            HELD.set(Some((run, shard)));
        }
        self.with_lock(f)
    }

    fn with_lock<R>(&self, f: impl FnOnce(&mut Recorder) -> R) -> R {
        self.with_shard(|shard| f(&mut lock(shard)))
    }

    /// Run `f` with this thread's shard, creating it on first use.
    fn with_shard<R>(&self, f: impl FnOnce(&Arc<Mutex<Recorder>>) -> R) -> R {
        LOCAL.with(|cell| {
            let mut slot = cell.borrow_mut();
            let shard = match &*slot {
                Some((run, shard)) if *run == self.run => shard,
                _ => {
                    let shard = Arc::new(Mutex::new(Recorder::default()));
                    self.shards
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(shard.clone());
                    &slot.insert((self.run, shard)).1
                }
            };
            f(shard)
        })
    }

    /// This thread's shard (created on first use), for a loop to
    /// [`hold`](Stats::hold) each turn.
    pub fn local_shard(&self) -> Arc<Mutex<Recorder>> {
        self.with_shard(Arc::clone)
    }

    /// Lock `shard` (this thread's, from [`local_shard`](Stats::local_shard))
    /// until the [`Held`] drops: this thread's records go to it meanwhile
    /// without a lock each. Not nested: a second hold on the same thread
    /// would wait for the first.
    pub fn hold<'a>(&self, shard: &'a Mutex<Recorder>) -> Held<'a> {
        let mut guard = lock(shard);
        guard.batch.start();
        HELD.set(Some((self.run, NonNull::from(&mut *guard))));
        Held { guard }
    }

    pub fn count(&self, f: impl FnOnce(&mut Counts)) {
        self.with(|r| f(&mut r.counts));
    }

    pub fn conn_opened(&self) {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_open.fetch_max(now, Ordering::Relaxed);
    }

    pub fn conn_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    fn shard_list(&self) -> Vec<Arc<Mutex<Recorder>>> {
        self.shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Cumulative counts plus this second's histograms, each cut from its
    /// running total (`now - then`): a value is recorded once, in the
    /// total, rather than again in a per-second histogram on the hot path.
    /// A shard's counts and histograms are read under one lock, so a
    /// second's counts and its latencies cover the same replies.
    pub fn take_second(&self) -> Taken {
        let mut now = Marks::default();
        let mut counts = Counts::default();
        for s in self.shard_list() {
            let r = lock(&s);
            counts.add(&r.counts);
            let _ = now.corrected.add(&r.corrected);
            let _ = now.uncorrected.add(&r.uncorrected);
            let _ = now.conn_time.add(&r.conn_time);
            let _ = now.send_lag.add(&r.send_lag);
        }
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let out = Taken {
            counts,
            corrected: since(&now.corrected, &marks.corrected),
            uncorrected: since(&now.uncorrected, &marks.uncorrected),
            conn_time: since(&now.conn_time, &marks.conn_time),
            send_lag: since(&now.send_lag, &marks.send_lag),
        };
        *marks = now;
        out
    }

    /// Everything recorded so far, merged.
    pub fn total(&self) -> Recorder {
        let mut out = Recorder::default();
        for s in self.shard_list() {
            out.merge(&lock(&s));
        }
        out
    }
}

/// Percentile summary of one histogram in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    /// Added with `loadgen capacity` (`--slo p90<...`); absent from older reports.
    #[serde(default)]
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// A histogram as (value, count) pairs: lossless for a histogram of the
/// same bounds, and plain JSON (used between `--workers` processes).
pub fn hist_to_pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

pub fn hist_from_pairs(pairs: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = new_hist();
    for &(v, n) in pairs {
        h.saturating_record_n(v.clamp(LOWEST_US, HIGHEST_US), n);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_losslessly() {
        let stats = Arc::new(Stats::default());
        let mut expect = new_hist();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let stats = &stats;
                s.spawn(move || {
                    for i in 0..1000u64 {
                        stats.with(|r| r.latency(t * 1000 + i + 1, 5));
                        stats.count(|c| c.sent += 1);
                    }
                });
            }
        });
        for t in 0..4u64 {
            for i in 0..1000u64 {
                record(&mut expect, t * 1000 + i + 1);
            }
        }
        let total = stats.total();
        assert_eq!(total.counts.sent, 4000);
        assert_eq!(total.corrected, expect);
        assert_eq!(stats.shard_list().len(), 4);
        let sec = stats.take_second();
        assert_eq!(sec.corrected.len(), 4000);
        assert!(stats.take_second().corrected.is_empty());
    }

    #[test]
    fn each_second_gets_the_latencies_times_and_lags_recorded_in_it() {
        let stats = Stats::default();
        let mut all = new_hist();
        let mut seconds = new_hist();
        let (mut corrected, mut uncorrected) = (new_hist(), new_hist());
        for round in 0..3u64 {
            std::thread::scope(|s| {
                for t in 0..2u64 {
                    let stats = &stats;
                    s.spawn(move || {
                        for i in 0..=round * 10 {
                            stats.with(|r| {
                                record(&mut r.conn_time, 100 * (t + 1) + i);
                                record(&mut r.send_lag, 7);
                                r.latency(1000 * (round + 1) + i, 500 + i);
                            });
                        }
                    });
                }
            });
            let sec = stats.take_second();
            assert_eq!(sec.conn_time.len(), 2 * (round * 10 + 1), "round {round}");
            assert_eq!(sec.send_lag.len(), sec.conn_time.len());
            assert_eq!(sec.corrected.len(), sec.conn_time.len());
            assert_eq!(sec.uncorrected.len(), sec.conn_time.len());
            // This second's latencies only: each round records above the last.
            assert_eq!(sec.corrected.min(), 1000 * (round + 1), "round {round}");
            let _ = seconds.add(&sec.conn_time);
            let _ = corrected.add(&sec.corrected);
            let _ = uncorrected.add(&sec.uncorrected);
        }
        let total = stats.total();
        let _ = all.add(&total.conn_time);
        // The seconds add up to the run's total exactly.
        assert_eq!(seconds, all);
        assert_eq!(corrected, total.corrected);
        assert_eq!(uncorrected, total.uncorrected);
        let idle = stats.take_second();
        assert!(idle.conn_time.is_empty() && idle.corrected.is_empty());
        let mut a = new_hist();
        record(&mut a, 5);
        record(&mut a, 9);
        let mut b = new_hist();
        record(&mut b, 9);
        assert_eq!(since(&a, &b).len(), 1);
        assert_eq!(since(&a, &a).len(), 0);
    }

    #[test]
    fn a_held_shard_takes_this_threads_records_and_the_collector_sees_them_after() {
        let (stats, other) = (Arc::new(Stats::default()), Stats::default());
        let shard = stats.local_shard();
        {
            let held = stats.hold(&shard);
            for i in 0..100 {
                stats.with(|r| r.latency(1000 + i, 10));
                stats.count(|c| c.sent += 1);
            }
            // Another run's stats on this thread keep their own shard.
            other.count(|c| c.sent += 7);
            // The collector waits while the turn holds the shard.
            let collector = std::thread::spawn({
                let stats = stats.clone();
                move || stats.take_second()
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!collector.is_finished(), "the collector read a held shard");
            drop(held);
            let t = collector.join().unwrap();
            assert_eq!((t.counts.sent, t.corrected.len()), (100, 100));
        }
        assert_eq!(other.total().counts.sent, 7);
        // Without a hold, records lock as before.
        stats.count(|c| c.sent += 1);
        assert_eq!(stats.total().counts.sent, 101);
    }

    #[test]
    fn pairs_round_trip() {
        let mut h = new_hist();
        for v in [1, 7, 1234, 99_999, 3_000_000_000] {
            record(&mut h, v);
        }
        assert_eq!(hist_from_pairs(&hist_to_pairs(&h)), h);
    }
}
