//! `loadgen capacity`: the highest rate a system holds under a latency
//! target (tcpkali's `-r @100ms`, websocket-bench's step mode).
//!
//! Every step is an ordinary measured run through `run::measure`, against
//! one site (the embedded node is started once); only its plan differs.

pub mod args;
pub mod command;
pub mod model;
pub mod output;
pub mod search;
pub mod settings;
pub mod slo;
pub mod step;
