//! `--workers W`: split the connections over W loadgen processes.
//!
//! Placeholder until the multi-process path lands.

use crate::config::Config;
use crate::error::Error;
use crate::stats::Recorder;
use std::sync::Arc;

pub async fn run(_cfg: Arc<Config>) -> Result<crate::Outcome, Error> {
    Err(Error::Other("--workers is not implemented yet".into()))
}

pub fn print_worker_result(
    _index: u32,
    _total: &Recorder,
    _peak_open: i64,
    _notes: &[(String, u64)],
    _abandoned: usize,
) -> Result<(), Error> {
    Ok(())
}
