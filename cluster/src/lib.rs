//! Real infrastructure as plain processes on loopback: redis-server, nginx
//! and wsnode nodes, each in its own temp dir on a free port.
//!
//! Machines without a Docker engine still need the seed's three-node setup,
//! and tests need real Redis and real nginx rather than mocks. This crate is
//! both: the machinery behind the `wscluster up|down|status` binary, and the
//! test harness of the cluster tests. Every process handle stops its process
//! when dropped, so a failing test leaves nothing behind. It starts wsnode as
//! a program and never links it: the node does not depend on its tooling.
//!
//! - [`RedisServer`], [`NodeProcess`], [`NginxServer`]: one process each.
//! - [`LocalCluster`]: Redis, N nodes and nginx in front, started in order.
//! - [`state_file`], [`member`]: what `wscluster up` records so a later
//!   `down`/`status`/`stop`/`start` finds it.
//! - [`cli`]: the `wscluster` command line.

pub mod cli;
mod error;
mod files;
pub mod http;
pub mod local;
pub mod member;
pub mod nginx;
pub mod node;
pub mod ports;
pub mod process;
mod programs;
pub mod redis_server;
pub mod state_file;

pub use error::ClusterError;
pub use files::log_tail;
pub use local::{ClusterOptions, LocalCluster};
pub use nginx::{Balance, NginxServer};
pub use node::{NodeProcess, NodeProgram};
pub use ports::PortChoice;
pub use programs::find_program;
pub use redis_server::RedisServer;
