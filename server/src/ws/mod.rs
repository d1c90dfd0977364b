//! The WebSocket side of the node: the `/ws/chat` upgrade, then one task per
//! connection.
//!
//! - [`upgrade`](mod@upgrade): everything that can be refused is refused there, over HTTP.
//! - `conn`: the connection's reader and writer; `reader`: the small-buffer
//!   frame reader it reads client frames with; `end`: why it ended, and its close frame.
//! - `delivery`: turns the broker's at-least-once frames into an exactly-once,
//!   gap-free sequence per stream.
//! - `outbox`: the frames a writer owes, encoded back to back, one write each wake-up.
//! - `direct`: replies the reader writes itself when nothing is ahead of them.
//! - `gate`: futures the connection polls only when a flag says they may be ready.
//! - `fragments`, `rate`: message reassembly and the inbound rate limit.
//! - `steady`: the epoll loops that own echo-only connections (`--io epoll`).

mod conn;
mod delivery;
mod direct;
mod end;
mod fragments;
mod gate;
mod outbox;
mod rate;
mod reader;
pub(crate) mod steady;
mod upgrade;

pub use upgrade::upgrade;
