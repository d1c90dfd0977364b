//! Remote agents: the run measured by `loadgen agent` processes on other
//! machines, coordinated through Redis. `controller` takes the agents and
//! starts them, `collect` merges what they send during the run, `agent` and
//! `job` are the agent's side, `transport` carries `workers::exchange`
//! messages over Redis Streams, `beat` keeps each side's heartbeat on its
//! own thread, `keys` names what both sides share.

pub mod agent;
pub mod args;
pub mod beat;
pub mod collect;
pub mod controller;
pub mod identity;
pub mod job;
pub mod keys;
pub mod transport;
