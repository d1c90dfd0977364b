//! Node counters and the process sampler behind `/health/stats` and `/metrics`.
//!
//! Counters are relaxed atomics bumped on the hot path; rates, CPU and RSS are
//! computed once a second by one sampler task, so a health poll never costs
//! more than reading a snapshot.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Metrics {
    pub connections: AtomicU64,
    pub connections_total: AtomicU64,
    pub rejected_upgrades: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub errors_sent: AtomicU64,
    pub rate_limited: AtomicU64,
    pub slow_consumer_closes: AtomicU64,
    pub idle_closes: AtomicU64,
    /// Connections an epoll loop owns now (`ws::steady`).
    pub in_loop: AtomicU64,
    /// Hand-overs to an epoll loop since start (a moved connection counts twice).
    pub loop_entries: AtomicU64,
    /// Connections a pinned loop moved to the loop on their packets' CPU.
    pub loop_moves: AtomicU64,
    /// Each loop's CPU (when pinned) and the connections it owns now.
    loops: OnceLock<Box<[LoopGauge]>>,
    pub handshakes_evicted: AtomicU64,
    pub streams_started: AtomicU64,
    pub streams_active: AtomicU64,
    pub streams_taken_over: AtomicU64,
    pub chunks_published: AtomicU64,
    pub recoveries: AtomicU64,
    pub sessions_cleaned: AtomicU64,
    sample: Mutex<Sample>,
    /// RSS at the first sample, before clients arrive (0 until then).
    rss_baseline: AtomicU64,
}

/// A loop's CPU (when pinned) and the connections it owns now.
type LoopGauge = (Option<usize>, AtomicU64);

/// Once-a-second view of the process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    pub cpu_pct: f32,
    pub rss_bytes: u64,
    pub msgs_in_per_sec: f64,
    pub msgs_out_per_sec: f64,
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub fn get(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

impl Metrics {
    /// Set once, when the loops start: loop `i` pinned to `cpus[i]`.
    pub fn set_loops(&self, cpus: &[Option<usize>]) {
        let _ = self
            .loops
            .set(cpus.iter().map(|&c| (c, AtomicU64::new(0))).collect());
    }

    /// The connections loop `i` owns now (a loop past those set is not
    /// counted apart).
    pub fn loop_conns(&self, i: usize) -> Option<&AtomicU64> {
        self.loops.get()?.get(i).map(|(_, n)| n)
    }

    pub fn sample(&self) -> Sample {
        *self.sample.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn rss_baseline(&self) -> u64 {
        get(&self.rss_baseline)
    }

    /// Refresh the sample every second until the returned future is dropped.
    pub async fn sampler(&self) {
        use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
        let pid = Pid::from_u32(std::process::id());
        let mut sys = System::new();
        let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
        let mut last = (
            Instant::now(),
            get(&self.messages_in),
            get(&self.messages_out),
        );
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            sys.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, kind);
            let (cpu_pct, rss_bytes) = sys
                .process(pid)
                .map(|p| (p.cpu_usage(), p.memory()))
                .unwrap_or_default();
            let now = (
                Instant::now(),
                get(&self.messages_in),
                get(&self.messages_out),
            );
            let secs = now.0.duration_since(last.0).as_secs_f64().max(1e-3);
            let s = Sample {
                cpu_pct,
                rss_bytes,
                msgs_in_per_sec: (now.1 - last.1) as f64 / secs,
                msgs_out_per_sec: (now.2 - last.2) as f64 / secs,
            };
            last = now;
            if self.rss_baseline() == 0 && get(&self.connections_total) == 0 {
                self.rss_baseline.store(rss_bytes, Relaxed);
            }
            *self.sample.lock().unwrap_or_else(|e| e.into_inner()) = s;
        }
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn render(
        &self,
        node_id: &str,
        broker: &crate::broker::BrokerStatus,
        handshakes_waiting: usize,
    ) -> String {
        use std::fmt::Write;
        let s = self.sample();
        let mut out = String::with_capacity(2048);
        let mut put = |name: &str, kind: &str, help: &str, v: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node=\"{node_id}\"}} {v}"
            );
        };
        put(
            "wsnode_connections",
            "gauge",
            "Open WebSocket connections.",
            get(&self.connections) as f64,
        );
        put(
            "wsnode_connections_total",
            "counter",
            "WebSocket connections accepted.",
            get(&self.connections_total) as f64,
        );
        put(
            "wsnode_rejected_upgrades_total",
            "counter",
            "Upgrades refused (limits, auth, origin).",
            get(&self.rejected_upgrades) as f64,
        );
        put(
            "wsnode_messages_in_total",
            "counter",
            "Messages received from clients.",
            get(&self.messages_in) as f64,
        );
        put(
            "wsnode_messages_out_total",
            "counter",
            "Frames written to clients.",
            get(&self.messages_out) as f64,
        );
        put(
            "wsnode_errors_sent_total",
            "counter",
            "Error frames sent to clients.",
            get(&self.errors_sent) as f64,
        );
        put(
            "wsnode_rate_limited_total",
            "counter",
            "Messages refused by the inbound rate limit.",
            get(&self.rate_limited) as f64,
        );
        put(
            "wsnode_slow_consumer_closes_total",
            "counter",
            "Connections closed with 1013 after their queue overflowed.",
            get(&self.slow_consumer_closes) as f64,
        );
        put(
            "wsnode_idle_closes_total",
            "counter",
            "Connections closed by the idle timeout.",
            get(&self.idle_closes) as f64,
        );
        put(
            "wsnode_connections_in_loop",
            "gauge",
            "WebSocket connections an epoll loop owns now (echo path, --io epoll).",
            get(&self.in_loop) as f64,
        );
        put(
            "wsnode_loop_entries_total",
            "counter",
            "Hand-overs of WebSocket connections to an epoll loop (a connection moved by --pin counts twice).",
            get(&self.loop_entries) as f64,
        );
        put(
            "wsnode_loop_moves_total",
            "counter",
            "WebSocket connections a pinned epoll loop moved to the loop on the CPU their packets arrive on (--pin).",
            get(&self.loop_moves) as f64,
        );
        put(
            "wsnode_handshakes_waiting",
            "gauge",
            "HTTP connections waiting for a request head (bounded by --max-handshakes).",
            handshakes_waiting as f64,
        );
        put(
            "wsnode_handshakes_evicted_total",
            "counter",
            "Connections closed while waiting longest for a request head, past --max-handshakes.",
            get(&self.handshakes_evicted) as f64,
        );
        put(
            "wsnode_streams_started_total",
            "counter",
            "Simulated answers started.",
            get(&self.streams_started) as f64,
        );
        put(
            "wsnode_streams_active",
            "gauge",
            "Simulated answers being generated.",
            get(&self.streams_active) as f64,
        );
        put(
            "wsnode_streams_taken_over_total",
            "counter",
            "Answers whose generating node died, continued by this node.",
            get(&self.streams_taken_over) as f64,
        );
        put(
            "wsnode_chunks_published_total",
            "counter",
            "Chunks published to sessions.",
            get(&self.chunks_published) as f64,
        );
        put(
            "wsnode_recoveries_total",
            "counter",
            "Recovery requests served.",
            get(&self.recoveries) as f64,
        );
        put(
            "wsnode_sessions_cleaned_total",
            "counter",
            "Stale sessions removed by cleanup.",
            get(&self.sessions_cleaned) as f64,
        );
        put(
            "wsnode_sessions",
            "gauge",
            "Sessions known to this node.",
            broker.sessions as f64,
        );
        put(
            "wsnode_cached_streams",
            "gauge",
            "Streams in the chunk cache.",
            broker.cached_streams as f64,
        );
        put(
            "wsnode_cached_stream_bytes",
            "gauge",
            "Bytes the chunk cache holds (in-memory broker; 0 with Redis).",
            broker.cached_bytes as f64,
        );
        put(
            "wsnode_broker_up",
            "gauge",
            "1 when the broker is healthy.",
            if broker.healthy { 1.0 } else { 0.0 },
        );
        put(
            "wsnode_process_cpu_percent",
            "gauge",
            "CPU use of the node process (100 = one core).",
            f64::from(s.cpu_pct),
        );
        put(
            "wsnode_process_resident_memory_bytes",
            "gauge",
            "Resident memory of the node process.",
            s.rss_bytes as f64,
        );
        if let Some(loops) = self.loops.get()
            && !loops.is_empty()
        {
            let _ = writeln!(
                out,
                "# HELP wsnode_loop_connections WebSocket connections each epoll loop owns now, with the CPU it is pinned to (--pin).\n# TYPE wsnode_loop_connections gauge"
            );
            for (i, (cpu, n)) in loops.iter().enumerate() {
                let cpu = cpu.map_or_else(|| "none".to_string(), |c| c.to_string());
                let _ = writeln!(
                    out,
                    "wsnode_loop_connections{{node=\"{node_id}\",loop=\"{i}\",cpu=\"{cpu}\"}} {}",
                    get(n)
                );
            }
        }
        out
    }
}
