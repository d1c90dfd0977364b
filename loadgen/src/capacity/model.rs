//! The capacity search as a document: every step's figures and verdict,
//! the highest rate that held, and the Messages/sec grade drawn from it
//! (the `--json` document, schema `loadgen.capacity/v1`).

use crate::capacity::search::{Kind, Stop};
use crate::capacity::slo::Objective;
use crate::engine::stats::Summary;
use crate::opts::{GradePhase, Mode};
use crate::report::model::GradeRow;
use serde::Serialize;

/// Version of the JSON document; bumped on any incompatible change.
pub const SCHEMA: &str = "loadgen.capacity/v1";

/// One step: a normal measured run at one offered load.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1-based, in the order run.
    pub n: u32,
    pub kind: Kind,
    pub conns: u64,
    pub rate_per_conn: f64,
    /// conns x rate_per_conn: messages per second offered.
    pub offered_per_sec: f64,
    /// What was judged: the step's steady phase, or the whole step
    /// (`--grade-phase all`, or no steady phase).
    pub graded: GradePhase,
    /// Length of the judged part in seconds.
    pub graded_s: f64,
    /// Messages sent and replies received per second in the judged part.
    pub sent_per_sec: f64,
    pub replies_per_sec: f64,
    /// Corrected latency of the judged part, in microseconds.
    pub latency_us: Summary,
    pub sent: u64,
    /// Timed out, lost with their connection, or answered wrong.
    pub failed: u64,
    /// Most connections open at once in the step.
    pub peak_open: i64,
    /// How late loadgen sent against its schedule, p99 in microseconds.
    pub send_lag_p99_us: u64,
    /// True when the step met the objective and kept up with its load.
    pub held: bool,
    /// Why it did not (empty when it held).
    pub broke: Vec<String>,
    /// What a reader must know about this step's figures.
    pub warnings: Vec<String>,
    /// Seconds the whole step took (warm-up, hold and drain).
    pub duration_s: f64,
}

/// The highest load that held.
#[derive(Debug, Clone, Serialize)]
pub struct Sustained {
    /// The step it was measured in.
    pub step: u32,
    pub offered_per_sec: f64,
    pub replies_per_sec: f64,
    pub conns: u64,
    pub rate_per_conn: f64,
    pub latency_us: Summary,
}

/// The whole search (the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct CapacityReport {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// When the search started (RFC 3339, seconds, UTC).
    pub started_at: String,
    pub targets: Vec<String>,
    pub mode: Mode,
    /// What the steps changed: "rate" (msg/s over `--conns`) or "conns".
    pub axis: &'static str,
    /// The latency objectives and the error budget (fraction of sent).
    pub slo: Vec<Objective>,
    pub slo_text: String,
    pub max_error_frac: f64,
    pub warmup_s: f64,
    pub step_duration_s: f64,
    pub steps: Vec<Step>,
    /// The highest load that held (none when the first step broke).
    pub sustained: Option<Sustained>,
    /// The lowest offered rate that broke (none when every step held).
    pub first_broken_per_sec: Option<f64>,
    pub stop: Stop,
    pub stop_reason: String,
    /// The Target Metrics table's Messages/sec row, graded on `sustained`.
    pub grade: Option<GradeRow>,
    /// Seconds the search took.
    pub duration_s: f64,
    pub warnings: Vec<String>,
    /// 0 when a load held and the graded row reached `--fail-on`, else 1.
    pub exit_code: u8,
}
