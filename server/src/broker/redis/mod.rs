//! Redis broker: sessions, fan-out, chunk cache and stream ownership shared
//! by every node of a cluster.
//!
//! Each node keeps its own connections in a local registry and subscribes to
//! `chat:stream:{sid}` for the sessions it serves (on the first local attach,
//! off after the last detach). The connection code sees none of this: it
//! talks to the same `Broker` trait as with the in-memory broker.
//!
//! Each node also registers itself (id, advertised URL, pid, host) in the
//! `nodes:active` hash with every heartbeat, so tools find every node of
//! the cluster (`protocol::health::NodeRegistration`).
//!
//! - `handle`: [`RedisBroker`] and its `Broker` calls.
//! - `shared`: what the handle and the background tasks share.
//! - `subscriber`: the Pub/Sub connection; `link`: the command connection
//!   and its circuit breaker; [`scripts`]: the Lua scripts and key layout.

mod handle;
mod link;
pub mod scripts;
mod shared;
mod subscriber;

pub use handle::RedisBroker;
pub use shared::{Advert, RedisSettings};
