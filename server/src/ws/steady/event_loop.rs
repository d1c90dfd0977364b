//! One loop: the connections handed to it, one `mio::Poll` for their
//! sockets, one timer heap for their pings and idle deadlines.
//!
//! The loop is a thread of its own, blocked in its own `epoll_wait` with
//! its next timer as the timeout: a turn costs that one system call. As a
//! tokio task (sessions 8-10) every turn cost tokio's `epoll_wait` on the
//! loop's descriptor, the task's wake and poll, a `select!` over four
//! futures, a timer reset and then the loop's own `epoll_wait`: about a
//! third of the node's user time at 30,000 msg/s (docs/BENCHMARKS.md,
//! "Both loops on threads of their own"). The node's handshakes, broker
//! and answer streams stay on the runtime; what reaches the loop from there
//! (a connection, a reclaim, the shutdown) comes through its inbox and a
//! `mio::Waker`.

use super::ctx::LoopCtx;
use super::handoff::{Handoff, Inbox, Msg, Returned};
use super::session::{Session, Step};
use crate::looping::{self, StopFlag};
use crate::metrics::inc;
use crate::placement::Placement;
use bytes::Bytes;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// The waker's token: never a connection's (those are entry indexes).
const WAKE: Token = Token(usize::MAX);

struct Entry {
    session: Session,
    done: oneshot::Sender<Box<Returned>>,
    /// Checked (or needing no check) for the CPU its packets arrive on.
    placed: bool,
}

/// Start loop `i` on a thread of its own, pinned to its CPU in `placement`
/// if any; its inbox is how the node reaches it.
pub fn spawn(cx: LoopCtx, i: usize, placement: &Placement) -> io::Result<Inbox> {
    let cpu = placement.cpu(i);
    let placement = placement.clone();
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut shutdown = cx.shutdown.clone();
    let signal = looping::spawn(format!("wsnode-loop-{i}"), cpu, &waker, move |stop| {
        run(cx, i, poll, rx, stop, cpu.map(|home| (home, placement)))
    })?;
    // The node's shutdown (or its runtime's end, which drops this task)
    // reaches the blocked thread as a flag and a wake.
    tokio::spawn(async move {
        let _signal = signal;
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    });
    Ok(Inbox::new(tx, waker))
}

/// Run the loop until its inbox closes (the node is gone) or the node
/// stops, and its last connection has left.
fn run(
    cx: LoopCtx,
    index: usize,
    mut poll: Poll,
    mut inbox: mpsc::UnboundedReceiver<Msg>,
    stop: &StopFlag,
    pinned: Option<(usize, Placement)>,
) {
    let registry = match poll.registry().try_clone() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a connection loop could not start; its connections run as tasks");
            return close(&mut inbox);
        }
    };
    let mut lp = Loop {
        cx,
        registry,
        entries: Vec::new(),
        free: Vec::new(),
        ids: HashMap::new(),
        timers: BinaryHeap::new(),
        again: Vec::new(),
        closing: false,
        scratch: Vec::new(),
        pinned,
        index,
    };
    let mut events = Events::with_capacity(EVENTS);
    let mut open = true;
    loop {
        if !lp.closing && stop.raised() {
            // Every connection back to its task, which closes it; any
            // handed over from now on goes straight back.
            lp.closing = true;
            lp.return_all();
            inbox.close();
        }
        // Everything in the inbox (after a close, what was sent before it).
        while open {
            match inbox.try_recv() {
                Ok(m) => lp.take(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && lp.live() == 0 {
            return;
        }
        // Sockets left with unread bytes: read on at once, taking the
        // other sockets' events too, so a flooding client cannot starve
        // them. Otherwise sleep until the next timer or event.
        let timeout = if lp.again.is_empty() {
            lp.timers
                .peek()
                .map(|Reverse((at, _, _))| at.saturating_duration_since(Instant::now()))
        } else {
            Some(Duration::ZERO)
        };
        events.clear();
        if let Err(e) = poll.poll(&mut events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!(error = %e, "a connection loop's epoll failed; its connections go back to tasks");
            lp.closing = true;
            lp.return_all();
            return close(&mut inbox);
        }
        // One clock reading per turn, for its reads and its timers.
        let now = Instant::now();
        for ev in events.iter() {
            if ev.token() != WAKE {
                lp.on_event(ev.token().0, now);
            }
        }
        for idx in std::mem::take(&mut lp.again) {
            lp.on_readable(idx, now);
        }
        lp.run_timers(now);
    }
}

/// The loop is ending: nothing more comes in, and every connection sent
/// before goes back.
fn close(inbox: &mut mpsc::UnboundedReceiver<Msg>) {
    inbox.close();
    while let Ok(m) = inbox.try_recv() {
        if let Msg::Add(h) = m {
            refuse(h);
        }
    }
}

/// A connection the loop cannot take goes back as it came, its welcome owed.
fn refuse(h: Handoff) {
    let (done, back) = h.refused();
    let _ = done.send(back);
}

struct Loop {
    cx: LoopCtx,
    registry: Registry,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    /// Connection id to its entry, for `Reclaim`.
    ids: HashMap<u64, usize>,
    /// (when, entry, connection id): one live wake per connection; a wake
    /// whose entry now holds another connection is skipped.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Connections whose read budget ran out with bytes maybe left.
    again: Vec<usize>,
    /// The node is shutting down: no connection stays.
    closing: bool,
    /// Where echo replies are written, one at a time.
    scratch: Vec<u8>,
    /// This loop's CPU and every loop's, when pinned (`--pin`).
    pinned: Option<(usize, Placement)>,
    /// This loop's number, for its gauge.
    index: usize,
}

impl Loop {
    fn live(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Add(h) if self.closing => refuse(h),
            Msg::Add(h) => self.add(h),
            Msg::Reclaim(id) => {
                if let Some(&idx) = self.ids.get(&id) {
                    self.give_back(idx, None);
                }
            }
        }
    }

    /// Take a connection in: register its socket, write its welcome, read
    /// what already came.
    fn add(&mut self, h: Handoff) {
        let Handoff {
            id,
            sock,
            kept,
            welcome,
            placed,
            done,
        } = h;
        let idx = self.free.pop().unwrap_or(self.entries.len());
        let mut sock = mio::net::TcpStream::from_std(sock);
        if let Err(e) = self
            .registry
            .register(&mut sock, Token(idx), Interest::READABLE)
        {
            tracing::warn!(conn = id, error = %e, "a connection loop refused a socket; it runs as a task");
            if idx < self.entries.len() {
                self.free.push(idx);
            }
            return refuse(Handoff {
                id,
                sock: sock.into(),
                kept,
                welcome,
                placed,
                done,
            });
        }
        let session = Session::new(&self.cx, id, sock, kept);
        if idx == self.entries.len() {
            self.entries.push(None);
        }
        let deadline = session.deadline(&self.cx);
        let placed = placed || self.pinned.is_none();
        self.entries[idx] = Some(Entry {
            session,
            done,
            placed,
        });
        self.ids.insert(id, idx);
        self.timers.push(Reverse((deadline, idx, id)));
        inc(&self.cx.metrics.loop_entries);
        self.cx.metrics.in_loop.fetch_add(1, Relaxed);
        if let Some(n) = self.cx.metrics.loop_conns(self.index) {
            n.fetch_add(1, Relaxed);
        }
        let Some(Some(e)) = self.entries.get_mut(idx) else {
            return;
        };
        match welcome.map(|w| e.session.send_first(&w)) {
            Some(Step::Back(rest)) => self.give_back(idx, rest),
            _ => self.on_readable(idx, Instant::now()),
        }
    }

    /// A socket's event. With pinned loops, a connection's first event
    /// (its client's first bytes since the handover) says which CPU its
    /// packets arrive on: on another loop's, it goes back unread, to be
    /// handed to that loop (`steady::wait`), so both ends share a core.
    fn on_event(&mut self, idx: usize, now: Instant) {
        if let Some((home, placement)) = &self.pinned
            && let Some(Some(e)) = self.entries.get_mut(idx)
            && !e.placed
        {
            e.placed = true;
            if let Some(cpu) = crate::placement::incoming_cpu(&e.session.sock)
                && cpu != *home
                && placement.loop_on(cpu).is_some()
            {
                inc(&self.cx.metrics.loop_moves);
                return self.give_back_as(idx, None, true);
            }
        }
        self.on_readable(idx, now);
    }

    fn on_readable(&mut self, idx: usize, now: Instant) {
        let Some(Some(e)) = self.entries.get_mut(idx) else {
            return;
        };
        match e.session.on_readable(&self.cx, now, &mut self.scratch) {
            Step::Go => {}
            Step::ReadMore => self.again.push(idx),
            Step::Back(rest) => self.give_back(idx, rest),
        }
    }

    /// Fire every due wake whose connection is still here.
    fn run_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, idx, id))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            let Some(Some(e)) = self.entries.get_mut(idx) else {
                continue;
            };
            if e.session.id != id {
                continue;
            }
            match e.session.on_timer(&self.cx, now) {
                Step::Back(rest) => self.give_back(idx, rest),
                _ => {
                    // Always later than `now`: the ping moved past it, or
                    // the client was seen since.
                    let next = e
                        .session
                        .deadline(&self.cx)
                        .max(now + Duration::from_millis(1));
                    self.timers.push(Reverse((next, idx, id)));
                }
            }
        }
    }

    /// Connection `idx` leaves the loop, back to its task.
    fn give_back(&mut self, idx: usize, rest: Option<Bytes>) {
        self.give_back_as(idx, rest, false);
    }

    /// Connection `idx` leaves the loop: back to its task, or `moved` to
    /// another loop through it.
    fn give_back_as(&mut self, idx: usize, rest: Option<Bytes>, moved: bool) {
        let Some(Entry { session, done, .. }) = self.entries.get_mut(idx).and_then(Option::take)
        else {
            return;
        };
        let Session {
            id, mut sock, kept, ..
        } = session;
        let _ = self.registry.deregister(&mut sock);
        self.ids.remove(&id);
        self.free.push(idx);
        self.cx.metrics.in_loop.fetch_sub(1, Relaxed);
        if let Some(n) = self.cx.metrics.loop_conns(self.index) {
            n.fetch_sub(1, Relaxed);
        }
        // A task gone meanwhile (the node dropped it) closes the socket here.
        let _ = done.send(Box::new(Returned {
            sock: sock.into(),
            kept,
            rest,
            moved,
        }));
    }

    /// The loop cannot go on: every connection goes back to its task.
    fn return_all(&mut self) {
        for idx in 0..self.entries.len() {
            self.give_back(idx, None);
        }
    }
}
