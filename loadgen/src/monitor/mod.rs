//! Watching the processes under test: `procs` samples CPU and memory of
//! local processes (or takes remote figures), `servers` decides which
//! processes to watch for a run, from the targets, `--node-pid`, `--redis`
//! (with the node registry read by `registry`), and `health` reads what a
//! node or Redis reports about itself; `resp` is the little Redis client
//! both Redis readers use.

pub mod health;
pub mod host;
pub mod procs;
pub mod registry;
pub mod resp;
pub mod servers;
