//! `loadgen scenario NAME|all`: the seed's ten multi-node test scenarios
//! (docs/SCENARIOS.md), each checking the seed's success criteria from the
//! clients, the nodes' health endpoints and logs, and Redis itself, with
//! PASS, FAIL or SKIPPED and the evidence.
//!
//! - `args`: the options; `setup`: the local cluster or a deployment;
//!   `faults`: stopping and starting nodes and Redis.
//! - `client`: a tokio-tungstenite client; `store`: Redis read directly;
//!   `nodes`: health endpoints and logs; `checks`: pure sequence checks.
//! - `basics` (tests 1, 2, 10), `streams` (3, 4, 8), `outages` (5, 6),
//!   `upkeep` (7, 9): the scenarios, each filling an `evidence::Sheet`.
//! - `soak` with its `chaos` schedule: chat load through node kills, a
//!   Redis restart and a balancer reload.
//! - `suite` runs them; `output` fills the seed's tables and the JSON.

pub mod args;
pub mod basics;
pub mod chaos;
pub mod checks;
pub mod client;
pub mod evidence;
pub mod faults;
pub mod nodes;
pub mod outages;
pub mod output;
pub mod setup;
pub mod soak;
pub mod store;
pub mod streams;
pub mod suite;
pub mod upkeep;

pub use args::{Name, ScenarioOpts};
pub use output::SuiteReport;
pub use suite::run_suite;
