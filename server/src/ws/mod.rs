//! The WebSocket side of the node: the `/ws/chat` upgrade, then one task per
//! connection.
//!
//! - [`upgrade`](mod@upgrade): everything that can be refused is refused there, over HTTP.
//! - `conn`: the connection's reader and writer.
//! - `delivery`: turns the broker's at-least-once frames into an exactly-once,
//!   gap-free sequence per stream.
//! - `fragments`, `rate`: message reassembly and the inbound rate limit.

mod conn;
mod delivery;
mod fragments;
mod rate;
mod upgrade;

pub use upgrade::upgrade;
