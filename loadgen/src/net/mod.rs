//! Talking to a WebSocket server: opening a connection (`connect`), reading
//! frames with a small bounded buffer (`frames`), and what loadgen writes
//! and reads in each frame (`wire`).

pub mod connect;
pub mod frames;
pub mod wire;
