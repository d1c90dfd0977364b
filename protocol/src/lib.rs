//! Wire messages spoken between `wsnode` and its clients (loadgen among them).
//!
//! Everything on the wire is a JSON text frame with a `type` field; see
//! `docs/PROTOCOL.md` for one example per message. The types live in their own
//! crate so that the node and the load generator cannot drift apart: a change
//! here breaks both builds at once.
//!
//! The node's `/health/stats` document is here too ([`HealthStats`]), for the
//! same reason: loadgen reads what the node writes; so is the entry a node
//! keeps in Redis's node registry ([`NodeRegistration`]).
//!
//! The WebSocket frame reader both sides use ([`wsframe::FrameBuf`]) is here
//! too: one parser, fuzzed once, with a buffer small enough for 10,000 idle
//! connections.
//!
//! The plain-JSON cursor of the one-pass readers ([`scan::Scan`]) is
//! here, so the node's message decoder and loadgen's reply reader agree on
//! what they may read without serde.
//!
//! Chunk text is deterministic ([`chunk::chunk_text`]), so any client can check
//! every streamed chunk it receives without being told what to expect.

pub mod chunk;
pub mod close;
mod decode;
pub mod health;
pub mod ids;
mod msg;
pub mod scan;
pub mod wsframe;

pub use decode::{DecodeError, PlainEcho, decode_client, decode_client_serde, plain_echo};
pub use health::{HealthStats, NodeRegistration};
pub use msg::{ClientMsg, ErrorCode, ServerMsg, StreamInfo, StreamStatus};
