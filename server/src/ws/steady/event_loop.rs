//! One loop: the connections handed to it, one `mio::Poll` for their
//! sockets, one timer heap for their pings and idle deadlines.
//!
//! The loop is a tokio task, so the node's handshakes, broker and answer
//! streams share the runtime with it: tokio's reactor watches the loop's
//! epoll descriptor (an epoll set is itself pollable), and the loop waits
//! on that, on its inbox and on its next timer. Each turn takes every
//! ready socket from its own set with one `epoll_wait`.

use super::ctx::LoopCtx;
use super::handoff::{Handoff, Msg, Returned};
use super::session::{Session, Step};
use crate::epoll::EpollSet;
use crate::metrics::inc;
use bytes::Bytes;
use mio::{Events, Interest, Registry, Token};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;

struct Entry {
    session: Session,
    done: oneshot::Sender<Returned>,
}

/// Run the loop until its inbox closes (the node is gone) and its last
/// connection has left.
pub async fn run(cx: LoopCtx, mut inbox: mpsc::UnboundedReceiver<Msg>) {
    let (mut set, registry) = match EpollSet::open() {
        Ok(p) => p,
        Err(e) => {
            // Without a loop, every connection goes straight back.
            tracing::error!(error = %e, "a connection loop could not start; its connections run as tasks");
            while let Some(m) = inbox.recv().await {
                if let Msg::Add(h) = m {
                    refuse(h);
                }
            }
            return;
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
    };
    let mut events = Events::with_capacity(EVENTS);
    let mut open = true;
    let mut shutdown = lp.cx.shutdown.clone();
    loop {
        events.clear();
        if !open && lp.live() == 0 {
            return;
        }
        if !lp.closing && *shutdown.borrow() {
            // Every connection back to its task, which closes it; any
            // handed over from now on goes straight back.
            lp.closing = true;
            lp.return_all();
        }
        let next = lp.timers.peek().map(|Reverse((at, _, _))| *at);
        if lp.again.is_empty() {
            tokio::select! {
                biased;
                r = set.ready(&mut events) => {
                    if let Err(e) = r {
                        tracing::error!(error = %e, "a connection loop's epoll failed; its connections go back to tasks");
                        lp.return_all();
                        fail(&mut inbox).await;
                        return;
                    }
                }
                m = inbox.recv(), if open => match m {
                    Some(m) => lp.take(m),
                    None => open = false,
                },
                _ = sleep_until(next), if next.is_some() => {}
                r = shutdown.changed(), if !lp.closing => {
                    if r.is_err() {
                        // The node is gone without a shutdown signal.
                        lp.closing = true;
                        lp.return_all();
                    }
                }
            }
        } else {
            // Sockets left with unread bytes: let the other tasks run, then
            // read on, taking the other sockets' events too, so a flooding
            // client cannot starve them.
            tokio::task::yield_now().await;
            if let Err(e) = set.poll_now(&mut events) {
                tracing::error!(error = %e, "a connection loop's epoll failed; its connections go back to tasks");
                lp.return_all();
                fail(&mut inbox).await;
                return;
            }
        }
        // Everything already in the inbox, each turn.
        while open {
            match inbox.try_recv() {
                Ok(m) => lp.take(m),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        // One clock reading per turn, for its reads and its timers.
        let now = Instant::now();
        for ev in events.iter() {
            lp.on_readable(ev.token().0, now);
        }
        for idx in std::mem::take(&mut lp.again) {
            lp.on_readable(idx, now);
        }
        lp.run_timers(now);
    }
}

/// After the loop failed: every connection still coming goes back.
async fn fail(inbox: &mut mpsc::UnboundedReceiver<Msg>) {
    while let Some(m) = inbox.recv().await {
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

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
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
                done,
            });
        }
        let session = Session::new(&self.cx, id, sock, kept);
        if idx == self.entries.len() {
            self.entries.push(None);
        }
        let deadline = session.deadline(&self.cx);
        self.entries[idx] = Some(Entry { session, done });
        self.ids.insert(id, idx);
        self.timers.push(Reverse((deadline, idx, id)));
        inc(&self.cx.metrics.loop_entries);
        self.cx.metrics.in_loop.fetch_add(1, Relaxed);
        let Some(Some(e)) = self.entries.get_mut(idx) else {
            return;
        };
        match e.session.send_first(&welcome) {
            Step::Back(rest) => self.give_back(idx, rest),
            _ => self.on_readable(idx, Instant::now()),
        }
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
        let Some(Entry { session, done }) = self.entries.get_mut(idx).and_then(Option::take) else {
            return;
        };
        let Session {
            id, mut sock, kept, ..
        } = session;
        let _ = self.registry.deregister(&mut sock);
        self.ids.remove(&id);
        self.free.push(idx);
        self.cx.metrics.in_loop.fetch_sub(1, Relaxed);
        // A task gone meanwhile (the node dropped it) closes the socket here.
        let _ = done.send(Returned {
            sock: sock.into(),
            kept,
            rest,
        });
    }

    /// The loop cannot go on: every connection goes back to its task.
    fn return_all(&mut self) {
        for idx in 0..self.entries.len() {
            self.give_back(idx, None);
        }
    }
}
