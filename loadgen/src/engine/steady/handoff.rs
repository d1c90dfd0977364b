//! What passes between a slot task and its thread's loop: a session going
//! in, and its books coming back when it ends.

use crate::engine::pending::ConnState;
use crate::engine::session::End;
use protocol::wsframe::FrameBuf;
use std::sync::Arc;
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

/// Where a slot hands its sessions to a loop: the loop's channel and the
/// waker of its `epoll_wait` (the loop is a thread blocked there).
pub struct Inbox {
    /// `None` only while dropping.
    tx: Option<mpsc::UnboundedSender<Handoff>>,
    waker: Arc<mio::Waker>,
}

impl Inbox {
    pub fn new(tx: mpsc::UnboundedSender<Handoff>, waker: Arc<mio::Waker>) -> Inbox {
        Inbox {
            tx: Some(tx),
            waker,
        }
    }

    /// Queue `h` and wake the loop; `Err(h)` when the loop has ended.
    // The message comes back whole, so nothing is lost; boxing it would
    // cost an allocation on a path that only a stopping loop takes.
    #[allow(clippy::result_large_err)]
    pub fn send(&self, h: Handoff) -> Result<(), Handoff> {
        let Some(tx) = &self.tx else { return Err(h) };
        tx.send(h).map_err(|mpsc::error::SendError(h)| h)?;
        // A failed wake (its eventfd full: wakes are pending already)
        // still leaves the session where the loop's next turn looks.
        let _ = self.waker.wake();
        Ok(())
    }
}

impl Clone for Inbox {
    fn clone(&self) -> Inbox {
        Inbox {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
        }
    }
}

impl Drop for Inbox {
    /// The loop ends once every inbox is gone and its last session has:
    /// dropping the last one must wake it to see that.
    fn drop(&mut self) {
        drop(self.tx.take());
        let _ = self.waker.wake();
    }
}
