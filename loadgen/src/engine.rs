//! The open-model load engine: the shared run context, the controller that
//! opens and closes connection slots to follow the plan, and the
//! once-a-second collector that builds the time series.
//!
//! The controller is the only place that decides how many connections
//! exist; slots decide nothing but their own sends. Everything that can wait
//! is bounded by the plan's end plus `--timeout`, so a silent server cannot
//! make a run hang.

use crate::config::{Config, Target};
use crate::conn;
use crate::monitor::Monitor;
use crate::plan;
use crate::stats::{Counts, Stats, Summary};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Controller tick: how often the wanted connection count is recomputed.
const TICK: Duration = Duration::from_millis(10);
/// Distinct error messages kept for the report.
const MAX_NOTES: usize = 8;
/// Longest wait for slot tasks beyond the plan's end + timeout.
const FINISH_GRACE: Duration = Duration::from_secs(3);

/// Everything a connection slot needs, shared by all slots of a run.
pub struct RunCtx {
    pub cfg: Arc<Config>,
    pub targets: Vec<Target>,
    pub stats: Stats,
    /// Run start; all microsecond timestamps are relative to it.
    pub t0: Instant,
    /// No message is sent at or after this instant.
    pub send_end: Instant,
    /// `send_end + --timeout`: nothing waits past this (plus a close).
    pub hard_end: Instant,
    pub interval: Option<Duration>,
    /// Payload filler, `--payload-size` bytes of 'x'.
    pub filler: String,
    /// Random id of this run (session ids, chat message ids).
    pub run_id: String,
    /// Bound on a connection's outstanding messages.
    pub pending_cap: usize,
    /// Connects in progress at once.
    pub connecting: tokio::sync::Semaphore,
    /// Slots this process should have open now (its own numbering).
    target_local: AtomicU64,
    aborted: AtomicBool,
    alive: Box<[AtomicBool]>,
    tokens: Box<[Mutex<Option<Box<str>>>]>,
    /// `(index, count)` of this process among `--workers`.
    worker: (u64, u64),
    notes: Mutex<Vec<(String, u64)>>,
    notes_full: AtomicBool,
}

impl RunCtx {
    pub fn new(cfg: Arc<Config>, targets: Vec<Target>, run_id: String) -> RunCtx {
        let now = Instant::now();
        let total = cfg.plan.total();
        let worker = cfg
            .worker_slot
            .map_or((0, 1), |(i, w)| (u64::from(i), u64::from(w)));
        let max_local = local_share(cfg.plan.max_conns(), worker) as usize;
        let interval = cfg.plan.interval();
        let pending_cap =
            ((cfg.plan.rate * cfg.timeout.as_secs_f64() * 2.0).ceil() as usize).clamp(16, 100_000);
        // Connects in progress at once: enough to open thousands of
        // connections per second, few enough that the target's accept queue
        // (often 128-1024) does not overflow into 1 s SYN retransmits.
        let backlog = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(128)
            .clamp(16, 128);
        RunCtx {
            filler: "x".repeat(cfg.payload_size),
            targets,
            stats: Stats::default(),
            t0: now,
            send_end: now + total,
            hard_end: now + total + cfg.timeout,
            interval,
            run_id,
            pending_cap,
            connecting: tokio::sync::Semaphore::new(backlog),
            target_local: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            alive: (0..max_local).map(|_| AtomicBool::new(false)).collect(),
            tokens: (0..max_local).map(|_| Mutex::new(None)).collect(),
            worker,
            notes: Mutex::new(Vec::new()),
            notes_full: AtomicBool::new(false),
            cfg,
        }
    }

    pub fn global_slot(&self, local: u64) -> u64 {
        local * self.worker.1 + self.worker.0
    }

    pub fn session_id(&self, global: u64) -> String {
        self.cfg.session_pattern.render(&self.run_id, global + 1)
    }

    /// Request path with the session (and its token, once known).
    pub fn path_for(&self, target: &Target, session: &str, local: u64) -> String {
        if self.cfg.mode == crate::opts::Mode::Raw {
            return target.path.clone();
        }
        let sep = if target.path.contains('?') { '&' } else { '?' };
        let mut p = format!("{}{sep}session_id={session}", target.path);
        if let Some(t) = self.tokens.get(local as usize).and_then(|m| {
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_deref()
                .map(str::to_owned)
        }) {
            p.push_str("&token=");
            p.push_str(&t);
        }
        p
    }

    pub fn set_token(&self, local: u64, token: &str) {
        // Only tokens that need no URL escaping are kept (the protocol's id alphabet).
        if protocol::ids::is_valid_id(token)
            && let Some(m) = self.tokens.get(local as usize)
        {
            *m.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.into());
        }
    }

    pub fn phase(&self, global: u64) -> Duration {
        self.interval
            .map_or(Duration::ZERO, |iv| plan::phase(global, iv))
    }

    pub fn slot_stopped(&self, local: u64) -> bool {
        self.aborted.load(Ordering::Relaxed) || local >= self.target_local.load(Ordering::Relaxed)
    }

    pub fn slot_done(&self, local: u64) {
        if let Some(a) = self.alive.get(local as usize) {
            a.store(false, Ordering::Release);
        }
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    /// Stop everything now (Ctrl-C, or slots that outlive the run).
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }

    /// Deadline for one connect or welcome: --timeout from now, but never
    /// past the run's hard end, so no slot outlives duration + timeout.
    pub fn wait_limit(&self) -> tokio::time::Instant {
        (Instant::now() + self.cfg.timeout)
            .min(self.hard_end)
            .into()
    }

    /// Run-relative microseconds.
    pub fn us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.t0).as_micros() as u64
    }

    pub fn at(&self, us: u64) -> Instant {
        self.t0 + Duration::from_micros(us)
    }

    /// Keep the first few distinct error messages, with counts, for the report.
    pub fn note_error(&self, msg: &str) {
        if self.notes_full.load(Ordering::Relaxed) {
            return;
        }
        let mut notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = notes.iter_mut().find(|(m, _)| m == msg) {
            n.1 += 1;
        } else if notes.len() < MAX_NOTES {
            notes.push((msg.to_string(), 1));
        } else {
            self.notes_full.store(true, Ordering::Relaxed);
        }
    }

    pub fn notes(&self) -> Vec<(String, u64)> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How many of the first `n` global slots belong to `worker`.
pub fn local_share(n: u64, (i, w): (u64, u64)) -> u64 {
    (n + w - 1 - i) / w
}

/// Open and close slots to follow the plan, then wait for all of them.
/// Returns how many slot tasks had to be abandoned (0 when all finished).
pub async fn drive(ctx: Arc<RunCtx>) -> usize {
    let mut set = JoinSet::new();
    let mut active = 0u64;
    let mut bucket = 0.0f64;
    let mut last = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= ctx.send_end || ctx.is_aborted() {
            break;
        }
        let want = local_share(ctx.cfg.plan.target_at(now - ctx.t0), ctx.worker);
        ctx.target_local.store(want, Ordering::Relaxed);
        active = active.min(want);
        let mut budget = match ctx.cfg.plan.connect_rate {
            Some(rate) => {
                let rate = rate / ctx.worker.1 as f64;
                bucket = (bucket + rate * (now - last).as_secs_f64()).min((rate * 0.05).max(1.0));
                bucket.floor() as u64
            }
            None => u64::MAX,
        };
        last = now;
        while active < want && budget > 0 {
            let Some(alive) = ctx.alive.get(active as usize) else {
                break;
            };
            if alive.load(Ordering::Acquire) {
                // That slot's previous task is still draining after a ramp-down.
                break;
            }
            alive.store(true, Ordering::Release);
            set.spawn(conn::run_slot(ctx.clone(), active));
            active += 1;
            budget -= 1;
            bucket -= 1.0;
        }
        while set.try_join_next().is_some() {}
    }
    ctx.target_local.store(0, Ordering::Relaxed);
    let deadline = ctx.hard_end + FINISH_GRACE;
    loop {
        match tokio::time::timeout_at(deadline.into(), set.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => return 0,
            Err(_) => break,
        }
    }
    // Slots outlived every bound: tell them to stop, then give up on them.
    ctx.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while set.join_next().await.is_some() {}
    })
    .await;
    let left = set.len();
    set.abort_all();
    left
}

/// One second of the run.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct SecondSample {
    /// Seconds since the start (end of this interval).
    pub t: f64,
    /// Length of this interval in seconds (about 1; more when loadgen was starved).
    pub dt: f64,
    pub open: i64,
    pub sent: u64,
    pub received: u64,
    pub timeouts: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    /// CPU % (of one core) of the first monitored node, if any.
    pub node_cpu_pct: Option<f64>,
    pub node_rss_bytes: Option<u64>,
    pub loadgen_cpu_pct: Option<f64>,
}

/// What the collector hands back at the end.
pub struct Collected {
    pub series: Vec<SecondSample>,
    pub monitor: Monitor,
}

/// Sink for per-second latency histograms (the `--hdr-log` file).
pub trait IntervalSink: Send {
    fn interval(
        &mut self,
        start: Duration,
        len: Duration,
        corrected: &Histogram<u64>,
        uncorrected: &Histogram<u64>,
    );
}

/// Sample stats and resources every second until `done` fires.
pub async fn collect(
    ctx: Arc<RunCtx>,
    mut monitor: Monitor,
    mut sink: Option<Box<dyn IntervalSink>>,
    done: Arc<tokio::sync::Notify>,
) -> Collected {
    let progress =
        !ctx.cfg.quiet && ctx.cfg.worker_slot.is_none() && std::io::stderr().is_terminal();
    let max_len = (ctx.cfg.plan.total().as_secs() + ctx.cfg.timeout.as_secs() + 16) as usize;
    let mut series = Vec::new();
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
        let sec = ctx.stats.take_second();
        let open = ctx.stats.open.load(Ordering::Relaxed);
        monitor.sample(open);
        let d = delta(&sec.counts, &prev);
        let lat = sec.corrected.as_ref().map(Summary::of).unwrap_or_default();
        if let (Some(s), Some(c), Some(u)) = (sink.as_mut(), &sec.corrected, &sec.uncorrected) {
            s.interval(prev_t - ctx.t0, now - prev_t, c, u);
        }
        let sample = SecondSample {
            t: (now - ctx.t0).as_secs_f64(),
            dt: (now - prev_t).as_secs_f64(),
            open,
            sent: d.sent,
            received: d.received,
            timeouts: d.timeouts,
            errors: d.total_errors(),
            p50_us: lat.p50,
            p95_us: lat.p95,
            p99_us: lat.p99,
            node_cpu_pct: monitor.last_node().map(|s| s.0),
            node_rss_bytes: monitor.last_node().map(|s| s.1),
            loadgen_cpu_pct: monitor.last_self().map(|s| s.0),
        };
        if progress {
            let secs = (now - prev_t).as_secs_f64().max(0.001);
            eprint!(
                "\r[{:>5.0}s] open {:>6}  sent {:>8.0}/s  recv {:>8.0}/s  p99 {:>8}  timeouts {:>5}  errors {:>5}   ",
                sample.t,
                open,
                d.sent as f64 / secs,
                d.received as f64 / secs,
                fmt_us(lat.p99),
                d.timeouts,
                d.total_errors(),
            );
        }
        if let (Some((i, _)), Some(c), Some(u)) =
            (ctx.cfg.worker_slot, &sec.corrected, &sec.uncorrected)
        {
            // The second's histograms travel with it, so the parent can
            // merge per-second percentiles exactly.
            let line = crate::cluster::WorkerSecond {
                sample: sample.clone(),
                start_s: (prev_t - ctx.t0).as_secs_f64(),
                corrected: crate::stats::hist_to_pairs(c),
                uncorrected: crate::stats::hist_to_pairs(u),
            };
            crate::cluster::print_line(&crate::cluster::WorkerLine::Second(i, Box::new(line)));
        }
        if series.len() < max_len {
            series.push(sample);
        }
        prev = sec.counts;
        prev_t = now;
        if finished {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    Collected { series, monitor }
}

fn delta(a: &Counts, b: &Counts) -> Counts {
    let mut d = Counts {
        sent: a.sent.saturating_sub(b.sent),
        received: a.received.saturating_sub(b.received),
        ok: a.ok.saturating_sub(b.ok),
        timeouts: a.timeouts.saturating_sub(b.timeouts),
        lost: a.lost.saturating_sub(b.lost),
        in_flight: a.in_flight.saturating_sub(b.in_flight),
        late: a.late.saturating_sub(b.late),
        conn_ok: a.conn_ok.saturating_sub(b.conn_ok),
        conn_failed: a.conn_failed.saturating_sub(b.conn_failed),
        drops: a.drops.saturating_sub(b.drops),
        reconnects: a.reconnects.saturating_sub(b.reconnects),
        failovers_unfinished: a
            .failovers_unfinished
            .saturating_sub(b.failovers_unfinished),
        recoveries_unfinished: a
            .recoveries_unfinished
            .saturating_sub(b.recoveries_unfinished),
        recoveries_ended: a.recoveries_ended.saturating_sub(b.recoveries_ended),
        errors: [0; crate::stats::ErrorKind::ALL.len()],
    };
    for (i, e) in d.errors.iter_mut().enumerate() {
        *e = a.errors[i].saturating_sub(b.errors[i]);
    }
    d
}

/// Microseconds for humans: "850us", "12.3ms", "1.20s".
pub fn fmt_us(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_shares_add_up() {
        for n in 0..50u64 {
            for w in 1..5u64 {
                let sum: u64 = (0..w).map(|i| local_share(n, (i, w))).sum();
                assert_eq!(sum, n, "n={n} w={w}");
            }
        }
    }
}
