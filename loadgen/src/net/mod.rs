//! Talking to a WebSocket server: opening a connection (`connect`, with
//! the handshake options of `dial`, TLS from `tls` over a `stream`),
//! reading frames with a small bounded buffer (`frames`), and what loadgen
//! writes and reads in each frame (`wire`).

pub mod connect;
pub mod dial;
pub mod frames;
pub mod stream;
pub mod tls;
pub mod wire;
