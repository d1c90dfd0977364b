//! The steady state of plain-TCP connections: epoll loops, each a thread
//! of its own (one per slot thread, or `--loops`), own them after their
//! handshake (`--io epoll`, the default).
//!
//! Why: tcp_floor measured that a tokio task per connection, with nothing
//! else in it, loses the tail near the machine's rate where one epoll loop
//! per side holds it (docs/BENCHMARKS.md, "The floors of the protocol and
//! of the runtime"). Each message of a task costs a timer, a wake, a task
//! poll and the reactor's per-socket readiness bookkeeping; a loop pays one
//! `epoll_wait` for a batch of sockets and sends every due message from one
//! timer heap.
//!
//! What stays a task: connecting, TLS, the HTTP upgrade and the profile's
//! opening steps (hyper and fastwebsockets do those), reconnect backoff,
//! and every session the loop does not take: `wss://` (rustls owns the
//! bytes), fan-out and `--wait-reply`. The slot task hands the socket, the
//! bytes already read and the session's books to its thread's loop
//! ([`Handoff`]) and waits, parked, for them back ([`Returned`]) when the
//! session ends; it then settles the leftovers and reconnects exactly as
//! for a task session. The loop keeps the books with the task path's own
//! functions (`send::render`/`book`, `recv::settle`, `pending::expire`),
//! so both measure the same way.

mod conn;
mod event_loop;
mod handoff;
mod timers;
pub mod trace;

pub use handoff::{Handoff, Inbox, Returned};

use crate::engine::ctx::RunCtx;
use crate::engine::pending::ConnState;
use crate::engine::session::End;
use crate::engine::settings::Settings;
use crate::engine::stats::ErrorKind;
use crate::engine::threads::SlotThreads;
use crate::net::connect::{WsRead, WsWrite};
use crate::net::stream::{ReadHalf, WriteHalf};
use crate::opts::Io;
use protocol::wsframe::FrameBuf;
use server::placement::Placement;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// The loops of one run, one per slot thread; dropping this (and every
/// slot's inbox) lets each loop end once its sessions have.
pub struct Loops {
    inboxes: Vec<Inbox>,
}

impl Loops {
    /// Start [`loop_count`] loops, each on a thread of its own; none with
    /// `--io tasks`. Slot `local` hands its sessions to loop `local % n`.
    /// `set` gets a task per loop that ends when the loop's thread does
    /// (aborting it stops the loop).
    pub fn start(ctx: &Arc<RunCtx>, threads: &SlotThreads, set: &mut JoinSet<()>) -> Loops {
        let n = if ctx.cfg.io == Io::Epoll {
            loop_count(&ctx.cfg, threads.count())
        } else {
            0
        };
        // As the slot threads: loop i beside slot thread i (`drive`).
        let first = ctx.share.index as usize * threads.count().max(1);
        let placement = Placement::new(ctx.cfg.pin.then_some(first), n);
        let mut inboxes = Vec::new();
        for i in 0..n {
            match event_loop::spawn(ctx.clone(), i, placement.cpu(i), set) {
                Ok(inbox) => inboxes.push(inbox),
                // The sessions of that loop's slots stay tasks.
                Err(e) => eprintln!(
                    "loadgen: connection loop {i} not started ({e}); its sessions run as tasks"
                ),
            }
        }
        Loops { inboxes }
    }

    /// The inbox of the loop slot `local` belongs to. Unbounded, but each
    /// slot has at most one session in flight to it.
    pub fn inbox(&self, local: u64) -> Option<Inbox> {
        (!self.inboxes.is_empty())
            .then(|| self.inboxes[(local % self.inboxes.len() as u64) as usize].clone())
    }
}

/// How many loops a process runs: `--loops`, else one per slot thread.
///
/// One loop for all of a process's connections was tried as the default
/// below 40,000 msg/s: beside its node on 2 cores it saved 0-10 % of
/// loadgen's CPU per message at 3,000 x 10/s, but its p99 was 1.3-2x two
/// loops' at 30,000-45,000 msg/s (its sends fell behind: one thread's share
/// of the cores against the node's two). The tail is what a run grades, so
/// one loop is a choice (`--loops 1`), not the default (docs/BENCHMARKS.md,
/// "One loop or one per thread").
pub fn loop_count(cfg: &Settings, threads: usize) -> usize {
    cfg.loops.unwrap_or(threads).max(1)
}

/// Whether a session of slot `global` runs in the loop: open-model sends,
/// no fan-out. (Plain TCP is checked at the handoff.)
pub fn takes(ctx: &RunCtx, global: u64) -> bool {
    ctx.interval.is_some() && !ctx.cfg.wait_reply && ctx.group(global).is_none()
}

/// How a session offered to the loop went.
pub enum Outcome {
    /// The loop ran it to its end.
    Ended(Returned),
    /// Not plain TCP: run it as a task.
    Kept(WsRead, WsWrite, ConnState),
}

/// Run a session in its thread's loop, if its connection is plain TCP,
/// and wait (parked) until it ends.
///
/// Not `async fn`: that keeps its arguments twice (as arguments and as
/// locals) in the slot's task, which stays parked here all session long.
#[allow(clippy::too_many_arguments, clippy::manual_async_fn)]
pub fn run<'a>(
    inbox: &'a Inbox,
    ctx: &'a RunCtx,
    (local, global): (u64, u64),
    rx: WsRead,
    tx: WsWrite,
    state: ConnState,
    seq: u64,
    first: Instant,
) -> impl Future<Output = Outcome> + 'a {
    async move {
        let dropped = |state, note: &str| {
            ctx.fail(ErrorKind::Read, note);
            Outcome::Ended(Returned {
                end: End::Dropped,
                state,
                seq,
            })
        };
        let (sock, frames) = match into_parts(rx, tx) {
            Parts::Socket(sock, frames) => (sock, frames),
            Parts::Kept(rx, tx) => return Outcome::Kept(rx, tx, state),
            Parts::Failed(e) => return dropped(state, &e),
        };
        let (done, back) = oneshot::channel();
        let h = Handoff {
            local,
            global,
            sock,
            frames,
            state,
            seq,
            first,
            done,
        };
        if let Err(h) = inbox.send(h) {
            return dropped(
                h.state,
                "the connection loop had ended before the session began",
            );
        }
        match back.await {
            Ok(r) => Outcome::Ended(r),
            // Only when the run gives up on its tasks (drive's last resort).
            Err(_) => dropped(
                ConnState::new(ctx.pending_cap, seq),
                "the connection loop ended before the session did",
            ),
        }
    }
}

/// A connection taken apart for the loop.
pub enum Parts {
    /// Plain TCP: the socket (out of tokio's reactor) and the bytes read.
    Socket(std::net::TcpStream, FrameBuf),
    /// Not plain TCP: the connection as it was, to run as a task.
    Kept(WsRead, WsWrite),
    /// Taking the socket out of tokio failed; the connection is gone.
    Failed(String),
}

/// Take a connection apart for the loop.
pub fn into_parts(rx: WsRead, tx: WsWrite) -> Parts {
    if !rx.get_ref().is_plain() {
        return Parts::Kept(rx, tx);
    }
    let (r, frames) = rx.into_parts();
    let (ReadHalf::Plain(r), WriteHalf::Plain(w)) = (r, tx.into_inner()) else {
        return Parts::Failed("a connection with one plain half and one TLS half".into());
    };
    match r.reunite(w).map_err(|e| e.to_string()) {
        Ok(t) => match t.into_std() {
            Ok(sock) => Parts::Socket(sock, frames),
            Err(e) => Parts::Failed(format!("taking the socket from tokio: {e}")),
        },
        Err(e) => Parts::Failed(format!("rejoining the socket's halves: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use clap::Parser;

    fn settings(args: &str) -> Settings {
        let argv = format!("loadgen --url ws://127.0.0.1:9/ws/chat {args}");
        let o = crate::opts::Opts::try_parse_from(argv.split_whitespace()).unwrap();
        Config::from_opts(&o.load).unwrap().load
    }

    #[test]
    fn loops_are_one_per_slot_thread_unless_asked() {
        assert_eq!(loop_count(&settings("--conns 3000 --rate 10"), 2), 2);
        assert_eq!(loop_count(&settings("--conns 10"), 0), 1);
        assert_eq!(loop_count(&settings("--conns 10 --loops 3"), 2), 3);
        assert_eq!(loop_count(&settings("--conns 10 --loops 1"), 4), 1);
    }

    #[test]
    fn a_loop_count_out_of_bounds_is_refused() {
        for bad in ["0", "257"] {
            let argv = format!("loadgen --url ws://127.0.0.1:9/ws/chat --loops {bad}");
            let o = crate::opts::Opts::try_parse_from(argv.split_whitespace()).unwrap();
            let e = Config::from_opts(&o.load).unwrap_err().to_string();
            assert!(e.contains("--loops must be 1 to 256"), "{e}");
        }
        let argv = "loadgen --url ws://127.0.0.1:9/ws/chat --loops 2 --io tasks";
        let o = crate::opts::Opts::try_parse_from(argv.split_whitespace()).unwrap();
        let e = Config::from_opts(&o.load).unwrap_err().to_string();
        assert!(e.contains("--loops sets the epoll loops"), "{e}");
    }
}
