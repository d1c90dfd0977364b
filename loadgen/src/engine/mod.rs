//! The open-model load engine: one process's share of a run.
//!
//! `drive` opens and closes connection slots to follow the plan, on
//! `threads` (a single-threaded runtime per thread); each slot
//! (`slot`) runs sessions whose sender (`send`) and receiver (`recv`) share
//! the outstanding messages (`pending`); replies are classified by the pure
//! `reply`; figures go to per-thread `stats` shards (their counts in `counts`), and `collect` hands one
//! `Second` a second to whatever sinks the caller gave. `backend::measure`
//! runs all of it and returns the `Measured` value every backend returns.
//! Nothing here imports the orchestration above it.

pub mod backend;
pub mod batch;
pub mod closing;
pub mod collect;
pub mod counts;
pub mod ctx;
pub mod drive;
pub mod fanout;
pub mod hist;
pub mod measured;
pub mod opening;
pub mod pacer;
pub mod pending;
pub mod plan;
pub mod recv;
pub mod reply;
pub mod send;
pub mod session;
pub mod settings;
pub mod slot;
pub mod stats;
pub mod steady;
pub mod threads;
