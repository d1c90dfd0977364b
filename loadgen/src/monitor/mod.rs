//! Watching the processes under test: `procs` samples CPU and memory of
//! local processes (or takes remote figures), `servers` decides which
//! processes to watch for a run, from the targets, `--node-pid`, `--redis`,
//! and `health` reads what a node or Redis reports about itself.

pub mod health;
pub mod procs;
pub mod servers;
