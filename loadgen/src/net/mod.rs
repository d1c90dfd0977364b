//! Talking to a WebSocket server: opening a connection (`connect`, with
//! the handshake options of `dial`, TLS from `tls` over a `stream`),
//! and reading frames with a small bounded buffer (`frames`). What loadgen
//! writes and reads in each frame is the run's profile (`profile`).

pub mod connect;
pub mod dial;
pub mod frames;
pub mod stream;
pub mod tls;
