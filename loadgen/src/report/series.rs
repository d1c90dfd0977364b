//! The report's time series: one [`SecondSample`] per second, with the
//! resource monitor sampled at the same moment so each second's latency
//! sits beside the node's CPU and memory.

use crate::engine::collect::{Second, SecondSink};
use crate::engine::stats::Summary;
use crate::monitor::procs::Monitor;
use crate::report::phases::Phase;
use serde::Serialize;

/// Nodes with a per-second series: a run against more keeps the first
/// ones per second (every node's whole-run figures are in the resources).
pub const MAX_NODES: usize = 16;

/// One node's figures in one second.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct NodeSecond {
    pub cpu_pct: Option<f64>,
    pub rss_bytes: Option<u64>,
}

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
    /// CPU % (of one core) of the first monitored node, if any (the same
    /// as `nodes[0]`, kept for readers of earlier reports).
    pub node_cpu_pct: Option<f64>,
    pub node_rss_bytes: Option<u64>,
    /// Every monitored node this second, in the order of the report's
    /// resources (at most [`MAX_NODES`]); `null` figures for a node that
    /// did not answer or was gone.
    pub nodes: Vec<NodeSecond>,
    /// CPU % of loadgen (all its processes together).
    pub loadgen_cpu_pct: Option<f64>,
    /// The plan's phase this second belongs to (set by the report).
    pub phase: Option<Phase>,
}

impl SecondSample {
    /// The sample of `s`, with the monitor's figures of the same moment.
    pub fn of(s: &Second, monitor: &Monitor) -> SecondSample {
        let lat = Summary::of(&s.corrected);
        let nodes: Vec<NodeSecond> = monitor
            .last_nodes()
            .take(MAX_NODES)
            .map(|n| NodeSecond {
                cpu_pct: n.map(|n| n.0),
                rss_bytes: n.map(|n| n.1),
            })
            .collect();
        let node = nodes.first();
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
            node_cpu_pct: node.and_then(|n| n.cpu_pct),
            node_rss_bytes: node.and_then(|n| n.rss_bytes),
            nodes,
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
