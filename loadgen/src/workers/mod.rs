//! `--workers`: the run split over several loadgen processes on this
//! machine. `parent` is the measuring backend the run path uses, `child`
//! is what each worker process runs, `exchange` the typed messages between
//! them, and `merge` how their seconds become the run's seconds.

pub mod child;
pub mod exchange;
pub mod merge;
pub mod parent;
