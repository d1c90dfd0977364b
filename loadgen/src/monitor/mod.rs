//! Watching the processes under test: `procs` samples CPU and memory of
//! local processes (or takes remote figures), `servers` decides which
//! processes to watch for a run, from the targets, `--node-pid`, `--redis`.

pub mod procs;
pub mod servers;
