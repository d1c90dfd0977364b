//! The steady state of WebSocket connections: one epoll loop per runtime
//! thread owns them after their upgrade (`--io epoll`, the default), for
//! as long as they only echo, ping and pong.
//!
//! Why: tcp_floor measured that a tokio task per connection, with nothing
//! else in it, loses the tail near the machine's rate where one epoll loop
//! per side holds it (docs/BENCHMARKS.md, "The floors of the protocol and
//! of the runtime"). Each message of a task costs a wake, a task poll and
//! the reactor's per-socket readiness bookkeeping; a loop pays one
//! `epoll_wait` for a batch of sockets. loadgen's steady state does the
//! same on its side (`loadgen/src/engine/steady`).
//!
//! What stays a task: the upgrade, and everything but the echo path. The
//! connection's task hands its socket, the bytes already read, its rate
//! limit and its welcome frame to a loop ([`Handoff`]) and waits, parked,
//! watching its outbound queue. The connection
//! comes back ([`Returned`]) when the loop meets anything it does not
//! handle (a chat or recovery, a fragment, a binary or close frame, a frame
//! error, the end of the stream, an idle client, a reply the socket did not
//! take whole, the node's shutdown), or when the task asks for it (a
//! delivery from the broker). The task then goes on exactly as if it had had the
//! connection all along, and keeps it: fencing, fragments, the close
//! handshake and the slow-consumer rules are the task's alone.

mod ctx;
mod event_loop;
pub mod handoff;
mod session;

pub use ctx::LoopCtx;
pub use handoff::{Handoff, Inbox, Kept, Loops, Msg, Returned};

use crate::broker::OutQueue;
use crate::placement::Placement;
use crate::ws::direct::text_frame;
use bytes::Bytes;
use tokio::sync::oneshot;

/// Start `n` loops, each on a thread of its own (pinned to its CPU in
/// `placement`, if any), and (on the current runtime) a task per loop that
/// tells it of the node's shutdown. A loop that cannot start is left out:
/// its connections stay tasks.
pub fn start(cx: &LoopCtx, n: usize, placement: Placement) -> Loops {
    let mut inboxes = Vec::new();
    let mut cpus = Vec::new();
    // Before any loop runs: each counts its connections from the start.
    cx.metrics
        .set_loops(&(0..n).map(|i| placement.cpu(i)).collect::<Vec<_>>());
    for i in 0..n {
        match event_loop::spawn(cx.clone(), i, &placement) {
            Ok(inbox) => {
                inboxes.push(inbox);
                cpus.push(placement.cpu(i));
            }
            Err(e) => {
                tracing::error!(error = %e, "a connection loop could not start; its connections run as tasks");
            }
        }
    }
    Loops::new(inboxes, cpus)
}

/// A connection taken in by a loop, as its task hands it over.
pub struct Going {
    pub id: u64,
    pub sock: tokio::net::TcpStream,
    pub kept: Kept,
    /// The welcome message (a text frame's payload).
    pub welcome: Bytes,
}

/// How handing a connection to its loop went; [`wait`] takes it from there.
pub enum Entered<'a> {
    /// In the loop.
    In {
        id: u64,
        inbox: &'a Inbox,
        back: oneshot::Receiver<Box<Returned>>,
    },
    /// No loop took it: it goes on as a task at once. (Boxed: rare, and
    /// this value is kept in a parked connection's future.)
    Refused(Box<Returned>),
    /// Taking the socket out of tokio failed: the connection is gone.
    Lost,
}

/// Hand a connection to its loop (no waiting: the loop's inbox is unbounded
/// and holds at most one hand-over per connection; one `eventfd` write
/// wakes the loop).
pub fn enter(loops: &Loops, going: Going) -> Entered<'_> {
    let Going {
        id,
        sock,
        kept,
        welcome,
    } = going;
    let Ok(sock) = sock.into_std() else {
        return Entered::Lost;
    };
    hand(loops, id, sock, kept, Some(text_frame(&welcome)), false)
}

/// Wait, parked, until the connection comes back: by the loop's choice
/// (the node's shutdown is one), or on the first item in `queue`. `None`
/// when it was lost, or the loop was dropped with the runtime. A
/// connection a pinned loop gave back to be moved goes to the loop its
/// packets arrive on, once. Small on purpose: this future is what a parked
/// connection holds besides its task (nothing but the wait's own handles
/// is kept across its awaits).
pub async fn wait<'a>(
    loops: &'a Loops,
    entered: Entered<'a>,
    queue: &mut OutQueue,
) -> Option<Box<Returned>> {
    let (id, mut inbox, mut back) = match entered {
        Entered::In { id, inbox, back } => (id, inbox, back),
        Entered::Refused(back) => return Some(back),
        Entered::Lost => return None,
    };
    loop {
        let r = tokio::select! {
            biased;
            r = &mut back => r.ok()?,
            _ = queue.ready() => {
                // The loop may have sent it back meanwhile: a stale
                // reclaim is ignored.
                let _ = inbox.send(Msg::Reclaim(id));
                (&mut back).await.ok()?
            }
        };
        if !r.moved {
            return Some(r);
        }
        // A move: to the loop its packets arrive on, marked placed.
        let Returned {
            sock, kept, rest, ..
        } = *r;
        match hand(loops, id, sock, kept, rest, true) {
            Entered::In {
                inbox: i, back: b, ..
            } => (inbox, back) = (i, b),
            Entered::Refused(back) => return Some(back),
            Entered::Lost => return None,
        }
    }
}

/// Hand connection `id` to the loop it belongs to (`placed`: moved once
/// already, not to be checked again), `welcome` owed first; refused when
/// no loop takes it.
fn hand(
    loops: &Loops,
    id: u64,
    sock: std::net::TcpStream,
    kept: Kept,
    welcome: Option<Bytes>,
    placed: bool,
) -> Entered<'_> {
    let (done, back) = oneshot::channel();
    let h = Handoff {
        id,
        sock,
        kept,
        welcome,
        placed,
        done,
    };
    let Some(inbox) = loops.pick(id, &h.sock) else {
        return Entered::Refused(h.refused().1);
    };
    match inbox.send(Msg::Add(h)) {
        Ok(()) => Entered::In { id, inbox, back },
        Err(Msg::Add(h)) => Entered::Refused(h.refused().1),
        Err(_) => Entered::Lost,
    }
}
