//! `wscluster up|down|status|stop|start|health`: the local cluster from a shell.
//!
//! `up` starts Redis, the nodes and nginx as ordinary processes, records them
//! in a state file and returns while they keep running; `down` stops exactly
//! what was recorded (checking each pid still is that process) and removes
//! the temp dirs; `status` checks each one. `stop NAME` / `start NAME` take
//! one member down and bring it back (the seed's `docker stop` / `docker
//! start` scenarios). `health` is a one-shot `/health` probe.
//!
//! Exit codes: 0 success, 1 failure (something did not start, stop, or is
//! unhealthy), 2 bad usage. Errors never panic; they print one message.
//!
//! - `args`: the command line; `run`: parse, dispatch, exit codes.
//! - `up_down`, `members`, `health`: the subcommands.
//! - `wsnode_exe`: where `up` finds the wsnode program.

mod args;
mod dispatch;
mod health;
mod members;
mod up_down;
mod wsnode_exe;

pub use dispatch::main;
