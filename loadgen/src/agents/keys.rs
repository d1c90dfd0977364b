//! Where controllers and agents meet in Redis: every key name and the
//! timings both sides rely on, in one place.
//!
//! - `loadgen:agents:idle`: sorted set of idle agents, scored by when they
//!   joined (ms, Redis clock), so a controller takes the earliest first.
//! - `loadgen:agent:{id}:alive`: the agent's heartbeat (expires).
//! - `loadgen:agent:{id}:claim`: the run that took it (SET NX), so two
//!   controllers never share an agent.
//! - `loadgen:agent:{id}:inbox`: stream of `ToWorker` for it.
//! - `loadgen:run:{run}:alive`: the controller's heartbeat.
//! - `loadgen:run:{run}:from:{index}`: stream of `FromWorker` from agent `index`.

use std::time::Duration;

pub const IDLE: &str = "loadgen:agents:idle";

/// How often both sides refresh their heartbeat.
pub const BEAT: Duration = Duration::from_secs(1);
/// A heartbeat key lives this long: five missed beats and the side is gone.
pub const ALIVE_TTL: Duration = Duration::from_secs(5);
/// A claim not followed by the agent's answer expires after this.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);
/// The longest a blocking stream read waits, so every loop checks Ctrl-C
/// and heartbeats at least this often.
pub const BLOCK: Duration = Duration::from_millis(500);
/// Entries kept per stream (XADD MAXLEN ~): an agent sends one a second and
/// the controller reads them as they come, so this is over an hour of slack.
pub const STREAM_MAXLEN: usize = 4096;
/// Streams and claims left behind by a crashed side vanish after this.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);

pub fn agent_alive(id: &str) -> String {
    format!("loadgen:agent:{id}:alive")
}

pub fn claim(id: &str) -> String {
    format!("loadgen:agent:{id}:claim")
}

pub fn inbox(id: &str) -> String {
    format!("loadgen:agent:{id}:inbox")
}

pub fn run_alive(run: &str) -> String {
    format!("loadgen:run:{run}:alive")
}

pub fn from_agent(run: &str, index: u64) -> String {
    format!("loadgen:run:{run}:from:{index}")
}
