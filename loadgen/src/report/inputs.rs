//! What `report::build` needs from the run path, gathered in one struct so
//! every backend's result is reported the same way.

use crate::monitor::host::HostReport;
use crate::monitor::procs::ProcReport;
use crate::opts::{FailOn, GradePhase, Mode};
use crate::report::grades::Thresholds;
use crate::report::phases::Phases;
use crate::report::series::SecondSample;

/// Everything `report::build::build` needs besides the merged recorder.
pub struct Inputs<'a> {
    /// When the run started (RFC 3339, seconds).
    pub started_at: String,
    /// Seconds from the first send opportunity to the end of the drain.
    pub duration_s: f64,
    pub mode: Mode,
    pub wait_reply: bool,
    pub reconnect: bool,
    pub rate_per_conn: f64,
    pub payload_size: usize,
    pub targets: Vec<String>,
    /// The template's Environment line.
    pub environment: String,
    /// loadgen processes that measured (1, or `--workers`).
    pub workers: u32,
    /// Most connections the plan asks for at once.
    pub target_conns: u64,
    /// Most connections open at once.
    pub peak_open: i64,
    pub resources: Vec<ProcReport>,
    pub host: Option<HostReport>,
    pub series: Vec<SecondSample>,
    pub notes: Vec<(String, u64)>,
    pub thresholds: &'a Thresholds,
    pub fail_on: FailOn,
    /// What the grades and the template read (`--grade-phase`).
    pub grade_phase: GradePhase,
    /// The run's seconds, sorted into the plan's phases.
    pub phases: &'a Phases,
    /// Fraction (0..=1): a lower success rate fails the run.
    pub min_success_rate: Option<f64>,
    /// The target is loadgen's own embedded node.
    pub embedded: bool,
    /// Slot tasks given up because they outlived every bound.
    pub abandoned: usize,
    /// --timeout in microseconds: the latency at least every unanswered message had.
    pub timeout_us: u64,
}
