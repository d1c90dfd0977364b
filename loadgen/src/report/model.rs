//! The report as a document: what a run measured, graded, in the shape of
//! the JSON schema (`loadgen.report/v1`) the text outputs are printed from.

use crate::engine::stats::Summary;
use crate::monitor::procs::{HostReport, ProcReport};
use crate::opts::Mode;
use crate::report::grades::{Grade, MetricKey};
use crate::report::series::SecondSample;
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the JSON document; bumped on any incompatible change.
pub const SCHEMA: &str = "loadgen.report/v1";
/// Send lag p99 above which loadgen itself fell behind its schedule.
pub const LAG_WARN_US: u64 = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub started_at: String,
    pub duration_s: f64,
    pub mode: Mode,
    pub wait_reply: bool,
    pub rate_per_conn: f64,
    pub payload_size: usize,
    pub targets: Vec<String>,
    pub environment: String,
    pub workers: u32,
    pub connections: Connections,
    pub messages: Messages,
    pub latency_us: Latency,
    pub send_lag_us: SendLag,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<Chat>,
    pub resources: Vec<ProcReport>,
    /// CPU of all monitored node processes together per answered message
    /// (us); with one node, the same as its `cpu_us_per_msg`.
    pub nodes_cpu_us_per_msg: Option<f64>,
    /// Whole-host CPU, to judge whether other processes disturbed the run.
    pub host: Option<HostReport>,
    /// Replies on time and correct / messages sent (1.0 when nothing was sent).
    pub success_rate: f64,
    pub grades: Vec<GradeRow>,
    pub warnings: Vec<String>,
    pub error_samples: Vec<ErrorSample>,
    pub series: Vec<SecondSample>,
    pub exit_code: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    pub target: u64,
    pub established: u64,
    pub failed: u64,
    pub peak_open: i64,
    pub drops: u64,
    pub reconnects: u64,
    pub time_us: Summary,
    /// With --reconnect: from a drop to the slot's next successful
    /// handshake; a slot that never got back counts the wait until the end.
    pub failover_us: Summary,
    /// Drops after which the slot never connected again.
    pub failovers_unfinished: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Messages {
    pub sent: u64,
    pub received: u64,
    pub ok: u64,
    pub timeouts: u64,
    pub lost: u64,
    pub in_flight: u64,
    pub late: u64,
    pub errors: BTreeMap<&'static str, u64>,
    pub errors_total: u64,
    /// Replies per second while at least 90% of the peak connections were open.
    pub per_sec: f64,
    pub sent_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub corrected: Summary,
    pub uncorrected: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct SendLag {
    #[serde(flatten)]
    pub summary: Summary,
    /// True when loadgen could not keep its own schedule.
    pub behind: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Chat {
    /// Time to first chunk, from the intended send time (= latency_us.corrected).
    pub first_chunk_us: Summary,
    pub chunk_gap_us: Summary,
    pub done_us: Summary,
    /// With --reconnect: from the drop that cut an answer until it moves
    /// again on the next connection (first chunk past the `recovered` replay,
    /// or `done`); an answer that never does counts its wait until it was
    /// interrupted, timed out or the run ended.
    pub recovery_us: Summary,
    /// Answers cut by a drop that got no answer before timing out or the
    /// run's end (their wait is in `recovery_us`).
    pub recoveries_unfinished: u64,
    /// Answers cut by a drop that the system ended without continuing
    /// (`interrupted`: their generating node was gone; an error; a request
    /// that never reached a node). Not in `recovery_us`.
    pub recoveries_ended: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GradeRow {
    pub metric: String,
    pub key: MetricKey,
    /// Human-readable measured value, or why it was not measured.
    pub value: String,
    /// The measured number in the table's base unit (us, bytes, %, count).
    pub measured: Option<f64>,
    pub grade: Grade,
    pub thresholds: [String; 3],
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorSample {
    pub message: String,
    pub count: u64,
}
