//! loadgen: an open-model WebSocket load generator for wsnode (and any
//! WebSocket echo server).
//!
//! The library exports [`Opts`] and [`run`] so tests drive exactly what the
//! binary drives; `main.rs` only parses, calls [`run`] and maps the result
//! to an exit code. Options become a typed [`config::Config`]; [`run`]
//! (the `run` module) takes one path for every run: probe the target, watch
//! the processes under test ([`monitor`]), measure with the local
//! [`engine`], the [`workers`] or remote [`agents`], then grade and print the [`report`].
//! docs/ARCHITECTURE.md draws the path.

pub mod agents;
pub mod capacity;
pub mod compare;
pub mod config;
pub mod embedded;
pub mod engine;
pub mod error;
pub mod limits;
pub mod live;
pub mod monitor;
pub mod net;
pub mod opts;
pub mod placeholders;
pub mod profile;
pub mod report;
pub mod run;
pub mod scenario;
pub mod workers;

pub use error::Error;
pub use opts::{Command, LoadOpts, Mode, Opts};
pub use report::model::Report;
pub use run::Outcome;

/// Run whatever `opts` asks for. Blocking: builds its own tokio runtime.
pub fn run(opts: Opts) -> Result<Outcome, Error> {
    match opts.command {
        Some(Command::Merge(m)) => report::hdrlog::run_merge(&m).map(Outcome::code),
        Some(Command::Compare(c)) => compare::command::run(&c).map(Outcome::code),
        Some(Command::Capacity(c)) => capacity::command::run(&c).map(Outcome::code),
        Some(Command::Scenario(s)) => scenario::suite::run(&s).map(Outcome::code),
        Some(Command::Node { args }) => embedded::serve(args).map(Outcome::code),
        Some(Command::Worker) => workers::child::serve().map(Outcome::code),
        Some(Command::Agent(a)) => agents::agent::serve(&a).map(Outcome::code),
        None => run::load(&opts.load),
    }
}
