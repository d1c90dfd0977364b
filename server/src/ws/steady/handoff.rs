//! What passes between a connection's task and a loop: the connection
//! going in, a request to have it back, and the connection coming back.
//!
//! A leaf module (nothing of the loop's inside), so the node's shared
//! state can hold the loops' inboxes without depending on the loop.

use crate::ws::rate::RateLimit;
use bytes::Bytes;
use protocol::wsframe::FrameBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What a connection's task and its loop pass back and forth besides the
/// socket: the reader's state.
pub struct Kept {
    /// Bytes read and not yet frames (from the upgrade's read, or the loop's).
    pub frames: FrameBuf,
    pub rate: RateLimit,
    /// When the client last sent anything.
    pub last_seen: Instant,
}

/// A connection moving from its task into a loop, after its upgrade.
pub struct Handoff {
    /// The connection's id (its sink's), unique in the node.
    pub id: u64,
    pub sock: std::net::TcpStream,
    pub kept: Kept,
    /// A frame owed first, whole (header included), which the loop writes
    /// before anything: the welcome. `None` for a connection moved between
    /// loops, whose welcome was written already.
    pub welcome: Option<Bytes>,
    /// Already in the loop its packets arrive on (or moved once): a
    /// pinned loop does not check again.
    pub placed: bool,
    /// Boxed, so that what a parked connection holds (this channel's
    /// slot, and its wait) stays a pointer wide: a connection comes back
    /// a few times in its life, not per message.
    pub done: oneshot::Sender<Box<Returned>>,
}

impl Handoff {
    /// The connection as it would come back from a loop that never took it
    /// (its welcome still owed), and where it is awaited.
    pub fn refused(self) -> (oneshot::Sender<Box<Returned>>, Box<Returned>) {
        let back = Box::new(Returned {
            sock: self.sock,
            kept: self.kept,
            rest: self.welcome,
            moved: false,
        });
        (self.done, back)
    }
}

/// A connection back from its loop, to go on as a task. Whatever the loop
/// did not handle (a frame it put back, an error, the end of the stream)
/// is still in its frames or in the socket, for the task to meet.
pub struct Returned {
    pub sock: std::net::TcpStream,
    pub kept: Kept,
    /// Bytes of a frame the loop could not write whole (the welcome, an
    /// echo, a pong or a ping): owed before anything else.
    pub rest: Option<Bytes>,
    /// Given back unread because its packets arrive on another loop's CPU
    /// (`--pin`): to be handed to that loop, not run as a task.
    pub moved: bool,
}

/// What a loop's inbox takes. Each connection has at most one `Add` and
/// one `Reclaim` in flight, so the inboxes are bounded by
/// `--max-connections` without a capacity of their own.
pub enum Msg {
    Add(Handoff),
    /// The connection's task wants it back (a delivery, the shutdown).
    Reclaim(u64),
}

/// Where a loop is sent connections and reclaims: its channel, and the
/// waker of its `epoll_wait` (the loop is a thread blocked there).
pub struct Inbox {
    tx: mpsc::UnboundedSender<Msg>,
    waker: Arc<mio::Waker>,
}

impl Inbox {
    pub fn new(tx: mpsc::UnboundedSender<Msg>, waker: Arc<mio::Waker>) -> Inbox {
        Inbox { tx, waker }
    }

    /// Queue `m` and wake the loop; `Err(m)` when the loop has ended.
    // The message comes back whole, so nothing is lost; boxing it would
    // cost an allocation on a path that only a stopping loop takes.
    #[allow(clippy::result_large_err)]
    pub fn send(&self, m: Msg) -> Result<(), Msg> {
        self.tx.send(m).map_err(|mpsc::error::SendError(m)| m)?;
        // A failed wake (the eventfd full: the loop is behind on wakes
        // already) still leaves the message where its next turn looks.
        let _ = self.waker.wake();
        Ok(())
    }
}

/// The inboxes of the node's loops; none with `--io tasks`.
pub struct Loops {
    inboxes: Vec<Inbox>,
    /// Each loop's CPU, when pinned (`--pin`).
    cpus: Vec<Option<usize>>,
}

impl Loops {
    pub fn new(inboxes: Vec<Inbox>, cpus: Vec<Option<usize>>) -> Loops {
        Loops { inboxes, cpus }
    }

    /// The loop connection `id` on `sock` goes to: with pinned loops, the
    /// one on the CPU its packets arrive on; else (or when no loop is on
    /// that CPU) one by its id.
    pub fn pick(&self, id: u64, sock: &std::net::TcpStream) -> Option<&Inbox> {
        if self.cpus.iter().any(Option::is_some)
            && let Some(cpu) = crate::placement::incoming_cpu(sock)
            && let Some(i) = self.cpus.iter().position(|&c| c == Some(cpu))
        {
            return Some(&self.inboxes[i]);
        }
        let n = self.inboxes.len() as u64;
        (n > 0).then(|| &self.inboxes[(id % n) as usize])
    }
}

impl Drop for Loops {
    /// Close every inbox, then wake its loop to see it closed: a loop ends
    /// once its inbox is closed and its last connection has left.
    fn drop(&mut self) {
        for Inbox { tx, waker } in self.inboxes.drain(..) {
            drop(tx);
            let _ = waker.wake();
        }
    }
}
