//! The one value every measuring backend returns (the local engine, the
//! `--workers` parent, remote agents), so the run path grades and
//! reports them all the same way.

use crate::engine::stats::{Counts, Recorder};
use serde::Serialize;
use std::time::Duration;

/// What one run measured, merged over threads and processes.
#[derive(Debug, Default)]
pub struct Measured {
    /// Every count and histogram of the run, merged losslessly.
    pub total: Recorder,
    /// Most connections open at once.
    pub peak_open: i64,
    /// The first distinct error messages, with how often each happened.
    pub notes: Vec<(String, u64)>,
    /// Slot tasks given up because they outlived every bound (0 normally).
    pub abandoned: usize,
    /// From the first send opportunity to the end of the drain.
    pub elapsed: Duration,
    /// What the report must say about the measurement itself (a worker
    /// that died, a log that could not be written).
    pub warnings: Vec<String>,
    /// Remote agents: who measured which part, and how it ended (empty
    /// for a local run).
    pub parts: Vec<Part>,
}

impl Measured {
    /// A part of the run was lost (an agent died or stalled): the run
    /// fails whatever its grades.
    pub fn part_lost(&self) -> bool {
        self.parts.iter().any(|p| p.lost_at_s.is_some())
    }
}

/// One remote agent's part of a run, as the report names it.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    /// Its index: it owns global slots `s` with `s % agents == index`.
    pub index: u64,
    /// `--name` of the agent (default: its host name).
    pub name: String,
    /// Its host name.
    pub host: String,
    /// Its clock minus the coordinator's (Redis TIME), microseconds.
    pub clock_offset_us: i64,
    /// Round trip of the best of its clock samples, microseconds.
    pub clock_rtt_us: u64,
    /// Source addresses it connected from ("a-b", or empty: the kernel's choice).
    pub source_ips: String,
    /// Connections it was to hold at the plan's peak.
    pub conns: u64,
    /// What it measured (up to its last second, when it was lost).
    pub counts: Counts,
    /// Lost: seconds into the run when it was last heard from (its figures
    /// go up to then); `None` when it finished.
    pub lost_at_s: Option<f64>,
    /// Why and when it was given up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_why: Option<String>,
}
