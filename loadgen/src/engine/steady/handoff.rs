//! What passes between a slot task and its thread's loop: a session going
//! in, and its books coming back when it ends.

use crate::engine::pending::ConnState;
use crate::engine::session::End;
use protocol::wsframe::FrameBuf;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// A session moving from its slot task into the loop.
pub struct Handoff {
    pub local: u64,
    pub global: u64,
    pub sock: std::net::TcpStream,
    /// Bytes read past the opening steps, not yet frames.
    pub frames: FrameBuf,
    pub state: ConnState,
    /// The slot's next sequence number.
    pub seq: u64,
    /// When the slot's message 0 was due.
    pub first: Instant,
    pub done: oneshot::Sender<Returned>,
}

/// A session the loop has ended, back to its slot.
pub struct Returned {
    pub end: End,
    pub state: ConnState,
    pub seq: u64,
}

/// Where a slot hands its sessions to its thread's loop.
pub type Inbox = mpsc::UnboundedSender<Handoff>;
