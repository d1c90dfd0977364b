//! The report as a document: what a run measured, graded, in the shape of
//! the JSON schema (`loadgen.report/v1`) the text outputs are printed from.

use crate::engine::measured::Part;
use crate::engine::stats::{Counts, ErrorKind, Summary};
use crate::monitor::host::HostReport;
use crate::monitor::procs::ProcReport;
use crate::opts::{GradePhase, Mode};
use crate::report::grades::{self, Grade, MetricKey};
use crate::report::percentiles::Percentiles;
use crate::report::series::SecondSample;
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the JSON document; bumped on any incompatible change.
pub const SCHEMA: &str = "loadgen.report/v1";
/// Send lag p99 above which loadgen itself fell behind its schedule.
pub const LAG_WARN_US: u64 = 10_000;

/// Everything one run measured and how it grades (the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// When the run started (RFC 3339, seconds, UTC).
    pub started_at: String,
    /// Seconds from the first send opportunity to the end of the drain.
    pub duration_s: f64,
    /// `--mode` (default echo).
    pub mode: Mode,
    /// `--wait-reply` (default false: open model).
    pub wait_reply: bool,
    /// `--rate`: messages per second per connection (default 10).
    pub rate_per_conn: f64,
    /// `--payload-size` in bytes (default 16).
    pub payload_size: usize,
    /// The target URLs (the embedded node's when no `--url`).
    pub targets: Vec<String>,
    /// The template's Environment line.
    pub environment: String,
    /// loadgen processes that measured (`--workers`, default 1).
    pub workers: u32,
    /// Connection counts and times.
    pub connections: Connections,
    /// Where every message sent ended up, and the error counts.
    pub messages: Messages,
    /// Reply latency in microseconds, corrected and uncorrected.
    pub latency_us: Latency,
    /// Percentile points of the latency and connection-time distributions
    /// (for an HdrHistogram-style plot).
    pub percentiles: Percentiles,
    /// How late loadgen sent against its own schedule.
    pub send_lag_us: SendLag,
    /// The same figures for the plan's ramp-up, steady and ramp-down phases
    /// apart, and which of them the grades read.
    pub phases: PhasesReport,
    /// Chat figures (`--mode chat` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<Chat>,
    /// CPU and memory of every monitored process.
    pub resources: Vec<ProcReport>,
    /// CPU of all monitored node processes together per answered message
    /// (us); with one node, the same as its `cpu_us_per_msg`.
    pub nodes_cpu_us_per_msg: Option<f64>,
    /// Whole-host CPU, to judge whether other processes disturbed the run.
    pub host: Option<HostReport>,
    /// Replies on time and correct / messages sent (1.0 when nothing was sent).
    pub success_rate: f64,
    /// The Target Metrics table, one row each, graded.
    pub grades: Vec<GradeRow>,
    /// What a reader must know to trust (or not) these figures.
    pub warnings: Vec<String>,
    /// The first distinct error messages (at most 8), with counts.
    pub error_samples: Vec<ErrorSample>,
    /// One sample per second.
    pub series: Vec<SecondSample>,
    /// Remote agents (`--agents`): each one's name, clock offset, share and
    /// counts, and whether it was lost (absent from local runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<Part>,
    /// 0 when every graded row reached `--fail-on` (and `--min-success-rate`),
    /// and no agent was lost; else 1.
    pub exit_code: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    /// Most connections the plan asks for at once.
    pub target: u64,
    /// Handshakes that succeeded (reconnects included).
    pub established: u64,
    /// Attempts that failed (TCP, handshake or timeout).
    pub failed: u64,
    /// Most connections open at once.
    pub peak_open: i64,
    /// Connections the server or the network ended.
    pub drops: u64,
    /// Handshakes after a slot's first (`--reconnect`).
    pub reconnects: u64,
    /// Sessions run by their thread's epoll loop after the handshake
    /// (`--io epoll`, plain TCP, open model, no fan-out); the others ran
    /// as a tokio task each.
    pub in_loop: u64,
    /// TCP connect + WebSocket upgrade, in microseconds.
    pub time_us: Summary,
    /// Its parts: the TCP connect, the TLS handshake (`wss://` only; count
    /// 0 otherwise) and the WebSocket upgrade, in microseconds.
    pub tcp_us: Summary,
    pub tls_us: Summary,
    pub upgrade_us: Summary,
    /// With --reconnect: from a drop to the slot's next successful
    /// handshake; a slot that never got back counts the wait until the end.
    pub failover_us: Summary,
    /// Drops after which the slot never connected again.
    pub failovers_unfinished: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Messages {
    /// Every message sent ends in exactly one of the next four buckets.
    pub sent: u64,
    /// Completed by their reply (echo, chat `done`, an error naming them).
    pub received: u64,
    /// Received on time and correct.
    pub ok: u64,
    /// No reply within `--timeout`.
    pub timeouts: u64,
    /// Unanswered when their connection dropped.
    pub lost: u64,
    /// Unanswered, not yet timed out, when the run ended.
    pub in_flight: u64,
    /// Replies that came after their message timed out (not in `received`).
    pub late: u64,
    /// Errors by kind.
    pub errors: BTreeMap<&'static str, u64>,
    pub errors_total: u64,
    /// Replies per second while at least 90% of the peak connections were open.
    pub per_sec: f64,
    /// Messages sent per second over the whole run.
    pub sent_per_sec: f64,
}

impl Messages {
    /// The message figures of counts `c`, measured at `per_sec` replies and
    /// `sent_per_sec` messages a second.
    pub fn of(c: &Counts, per_sec: f64, sent_per_sec: f64) -> Messages {
        Messages {
            sent: c.sent,
            received: c.received,
            ok: c.ok,
            timeouts: c.timeouts,
            lost: c.lost,
            in_flight: c.in_flight,
            late: c.late,
            errors: ErrorKind::ALL
                .iter()
                .map(|k| (k.name(), c.errors[*k as usize]))
                .filter(|(_, n)| *n > 0)
                .collect(),
            errors_total: c.total_errors(),
            per_sec,
            sent_per_sec,
        }
    }
}

/// The run cut into the plan's phases (see `report::phases` for where each
/// begins), every one measured apart.
#[derive(Debug, Clone, Serialize)]
pub struct PhasesReport {
    /// What the grades and the template read: `steady`, or `all` (asked
    /// with `--grade-phase all`, or because there was no steady phase).
    pub graded: GradePhase,
    /// Why the whole run is graded although the steady phase was asked for.
    pub note: Option<String>,
    pub ramp_up: PhaseFigures,
    pub steady: PhaseFigures,
    pub ramp_down: PhaseFigures,
    /// One line for each target a ramp alone missed (the graded phase met
    /// it, or did not measure it).
    pub ramp_missed: Vec<String>,
}

impl PhasesReport {
    /// The three phases in order, with their names ("ramp-up", ...).
    pub fn named(&self) -> [(&'static str, &PhaseFigures); 3] {
        [
            ("ramp-up", &self.ramp_up),
            ("steady", &self.steady),
            ("ramp-down", &self.ramp_down),
        ]
    }
}

/// What one phase measured; every figure is counted in the second it was
/// measured (a reply's latency in the second it arrived).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseFigures {
    /// Seconds since the start at which the phase's first second began
    /// (null when the run had no such phase).
    pub start_s: Option<f64>,
    /// ... and its last second ended.
    pub end_s: Option<f64>,
    /// Length of the phase in seconds (0 when empty).
    pub duration_s: f64,
    /// Most connections open at the end of one of its seconds.
    pub peak_open: i64,
    pub connections: PhaseConnections,
    /// As for the whole run; `per_sec` and `sent_per_sec` are over the phase.
    pub messages: Messages,
    pub latency_us: Latency,
    pub send_lag_us: Summary,
}

/// Connections opened during one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseConnections {
    /// Handshakes that succeeded in the phase.
    pub established: u64,
    pub failed: u64,
    pub drops: u64,
    pub reconnects: u64,
    /// Their connection times (TCP connect + WebSocket upgrade).
    pub time_us: Summary,
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
    /// Parts per completed answer (chunks, or a profile's stream parts): a
    /// count, not microseconds; answers with no part are not in it.
    pub parts: Summary,
    /// With --reconnect: from the drop that cut an answer until it moves
    /// again on the next connection (first chunk past the `recovered` replay,
    /// or `done`); an answer that never does counts its wait until it was
    /// interrupted, timed out or the run ended.
    pub recovery_us: Summary,
    /// Answers cut by a drop that got no answer before timing out or the
    /// run's end (their wait is in `recovery_us`).
    pub recoveries_unfinished: u64,
    /// Answers cut by a drop that the system ended without continuing
    /// (`interrupted`: no node could continue them; an error). Not in
    /// `recovery_us`.
    pub recoveries_ended: u64,
    /// Chats sent just before a drop that never reached a node (counted in
    /// `messages.lost`; not answers cut short).
    #[serde(default)]
    pub requests_never_reached: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GradeRow {
    /// The row's name as in the table.
    pub metric: String,
    pub key: MetricKey,
    /// Human-readable measured value, or why it was not measured.
    pub value: String,
    /// The measured number in the table's base unit (us, bytes, %, count).
    pub measured: Option<f64>,
    pub grade: Grade,
    /// The row's Target, Good and Acceptable cells.
    pub thresholds: [String; 3],
}

impl GradeRow {
    /// `row` graded on `measured`, shown as `value`.
    pub fn new(row: &grades::Row, measured: Option<f64>, value: String) -> GradeRow {
        GradeRow {
            metric: row.name.clone(),
            key: row.key,
            grade: grades::grade(row, measured),
            value,
            measured,
            thresholds: row.cells.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorSample {
    pub message: String,
    pub count: u64,
}
