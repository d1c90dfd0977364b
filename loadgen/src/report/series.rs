//! The report's time series: one [`SecondSample`] per second, with the
//! resource monitor sampled at the same moment so each second's latency
//! sits beside the node's CPU and memory.

use crate::engine::collect::{Second, SecondSink};
use crate::engine::stats::Summary;
use crate::monitor::procs::Monitor;
use crate::report::phases::Phase;
use serde::Serialize;

/// One second of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SecondSample {
    /// Seconds since the start (end of this interval).
    pub t: f64,
    /// Length of this interval in seconds (about 1; more when loadgen was starved).
    pub dt: f64,
    /// Connections open at the end of the interval.
    pub open: i64,
    pub sent: u64,
    pub received: u64,
    pub timeouts: u64,
    pub errors: u64,
    /// Connections the server or the network ended in this second.
    pub drops: u64,
    /// Handshakes after a slot's first, in this second (`--reconnect`).
    pub reconnects: u64,
    /// Percentiles of this second's corrected latencies.
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    /// CPU % (of one core) of the first monitored node, if any.
    pub node_cpu_pct: Option<f64>,
    pub node_rss_bytes: Option<u64>,
    /// CPU % of loadgen (all its processes together).
    pub loadgen_cpu_pct: Option<f64>,
    /// The plan's phase this second belongs to (set by the report).
    pub phase: Option<Phase>,
}

impl SecondSample {
    /// The sample of `s`, with the monitor's figures of the same moment.
    pub fn of(s: &Second, monitor: &Monitor) -> SecondSample {
        let lat = Summary::of(&s.corrected);
        let node = monitor.last_node();
        SecondSample {
            t: (s.start + s.len).as_secs_f64(),
            dt: s.len.as_secs_f64(),
            open: s.open,
            sent: s.delta.sent,
            received: s.delta.received,
            timeouts: s.delta.timeouts,
            errors: s.delta.total_errors(),
            drops: s.delta.drops,
            reconnects: s.delta.reconnects,
            p50_us: lat.p50,
            p95_us: lat.p95,
            p99_us: lat.p99,
            node_cpu_pct: node.map(|n| n.0),
            node_rss_bytes: node.map(|n| n.1),
            loadgen_cpu_pct: monitor.last_loadgen_cpu(),
            phase: None,
        }
    }
}

/// Samples the monitor and keeps the series, at most `max_len` seconds.
pub struct Series {
    pub monitor: Monitor,
    pub samples: Vec<SecondSample>,
    max_len: usize,
}

impl Series {
    pub fn new(monitor: Monitor, max_len: usize) -> Series {
        Series {
            monitor,
            samples: Vec::new(),
            max_len,
        }
    }
}

impl SecondSink for Series {
    fn second(&mut self, s: &Second) {
        self.monitor.sample(s.open, (s.start + s.len).as_secs_f64());
        if self.samples.len() < self.max_len {
            self.samples.push(SecondSample::of(s, &self.monitor));
        }
    }
}
