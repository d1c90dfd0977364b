//! The one value every measuring backend returns (the local engine, the
//! `--workers` parent, later remote agents), so the run path grades and
//! reports them all the same way.

use crate::engine::stats::Recorder;
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
}
