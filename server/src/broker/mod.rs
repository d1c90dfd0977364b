//! The broker: everything a node shares with the other nodes of a cluster.
//!
//! One interface ([`Broker`], in `api`), two implementations: [`memory::MemoryBroker`]
//! serves one node with no dependencies, and [`redis::RedisBroker`] makes the
//! same calls shared across nodes. The connection code is generic over the
//! trait and never learns which one it talks to. `sink` is the per-connection
//! queue a broker delivers into.

mod api;
pub mod memory;
pub mod redis;
mod sink;

pub use api::{
    AnswerPlan, AttachRequest, Attached, Broker, BrokerError, BrokerStatus, CleanupReport, Owner,
    StreamLease, Takeover,
};
pub use sink::{ConnSink, Out, OutQueue, Overflow, Replay, StreamFrame};
