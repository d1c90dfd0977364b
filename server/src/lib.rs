//! wsnode: a lean WebSocket node that streams simulated AI chat answers.
//!
//! The node is the system under test for wsbench: it implements the seed's
//! distributed chat design (sessions, fan-out to every connection of a
//! session, a chunk cache for recovery) behind one [`broker::Broker`]
//! interface, and exposes the health and metrics endpoints the seed's
//! scripts poll. `main.rs` only parses options and calls [`run`]; tests and
//! the load generator start a node in their own process through [`embed`].
//!
//! Modules depend on each other one way only, top to bottom:
//! `launch` → `accept` → `routes` → `ws` → `stream` → `state` → `config`,
//! with `broker`, `generator` (where an answer's text comes from), `metrics`,
//! `frames`, `looping` (the stop signal of a loop thread, which loadgen uses too), `placement` (pinning loop threads, which loadgen uses too), `handshakes` (the `--max-handshakes` set), `respond`, `sessions` and `fault` (test-only deliberate
//! faults) as leaves
//! the others share. This file only declares modules and re-exports.

mod accept;
pub mod broker;
mod config;
pub mod embed;
pub mod fault;
pub mod frames;
pub mod generator;
mod handshakes;
mod launch;
pub mod looping;
mod metrics;
pub mod placement;
pub mod probe;
mod respond;
mod routes;
pub mod sessions;
mod state;
mod stream;
mod ws;

pub use config::{Config, ConfigError, Opts, StreamDefaults, parse_duration, parse_size};
pub use launch::{Server, ServerError, run, shutdown_signal};
