//! One loop: the sessions handed to it, one `mio::Poll` for their
//! sockets, one timer queue for their due messages and deadlines.
//!
//! The loop is a thread of its own, blocked in its own `epoll_wait` with
//! its next timer as the timeout: a turn costs that one system call. As a
//! tokio task on the slot thread (sessions 7-10) every turn also cost
//! tokio's `epoll_wait` on the loop's descriptor, the task's wake and poll,
//! a `select!` and a timer reset (docs/BENCHMARKS.md, "Both loops on
//! threads of their own"). The slot threads keep connecting, handshakes
//! and everything else; sessions reach the loop through its inbox and a
//! `mio::Waker`. Each turn takes every ready socket in one `epoll_wait`
//! and every due timer from the queue.

use super::conn::{Conn, Scratch, Step};
use super::handoff::{Handoff, Inbox, Returned};
use super::timers::Timers;
use super::trace::Trace;
use crate::engine::ctx::RunCtx;
use crate::engine::session::End;
use crate::engine::stats::ErrorKind;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use server::looping::{self, StopFlag};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// How many wakes (or ready sockets) ahead a session is prefetched.
const PREFETCH_AHEAD: usize = 4;
/// Timers run at most this often, unless their own wake-up comes first.
const TIMER_TICK: Duration = Duration::from_millis(1);
/// The waker's token: never a session's (those are entry indexes).
const WAKE: Token = Token(usize::MAX);

/// A live session and what its slot waits on.
struct Entry {
    conn: Conn,
    done: oneshot::Sender<Returned>,
}

/// Start loop `i` on a thread of its own, pinned to `cpu` if given. `set` gets a task that ends when
/// the thread does; aborting (or dropping) that task stops the loop, its
/// sessions dropped.
pub fn spawn(
    ctx: Arc<RunCtx>,
    i: usize,
    cpu: Option<usize>,
    set: &mut JoinSet<()>,
) -> io::Result<Inbox> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ended_tx, ended) = oneshot::channel::<()>();
    let stopper = looping::spawn(format!("loadgen-loop-{i}"), cpu, &waker, move |stop| {
        run(ctx, i, poll, rx, stop);
        drop(ended_tx);
    })?;
    // Aborting (or dropping) this task stops the loop.
    set.spawn(async move {
        let _stopper = stopper;
        let _ = ended.await;
    });
    Ok(Inbox::new(tx, waker))
}

/// Run the loop until its inbox closes and its last session has ended, or
/// until `stop`.
fn run(
    ctx: Arc<RunCtx>,
    i: usize,
    poll: Poll,
    mut inbox: mpsc::UnboundedReceiver<Handoff>,
    stop: &StopFlag,
) {
    let registry = match poll.registry().try_clone() {
        Ok(r) => r,
        Err(e) => {
            // Without a loop, every session handed here ends at once.
            let note = format!("the connection loop could not start: {e}");
            inbox.close();
            while let Ok(h) = inbox.try_recv() {
                ctx.fail(ErrorKind::Read, &note);
                let _ = h.done.send(Returned {
                    end: End::Dropped,
                    state: h.state,
                    seq: h.seq,
                });
            }
            return;
        }
    };
    let mut lp = Loop {
        ctx,
        registry,
        entries: Vec::new(),
        free: Vec::new(),
        timers: Timers::default(),
        scratch: Scratch::default(),
        again: Vec::new(),
        waiting: 0,
    };
    let mut trace = Trace::from_env(i, lp.ctx.t0);
    turns(&mut lp, poll, inbox, stop, trace.as_mut());
    if let Some(line) = trace.and_then(|t| t.end()) {
        eprintln!("{line}");
    }
}

/// The loop's turns, until its inbox closed and its last session ended.
fn turns(
    lp: &mut Loop,
    mut poll: Poll,
    mut inbox: mpsc::UnboundedReceiver<Handoff>,
    stop: &StopFlag,
    mut trace: Option<&mut Trace>,
) {
    let mut events = Events::with_capacity(EVENTS);
    let mut open = true;
    let mut last_timers = Instant::now();
    // This thread's stats, held for each turn's work (`stats::Held`).
    let shard = lp.ctx.stats.local_shard();
    loop {
        if stop.raised() {
            // Given up on: the sessions drop with the loop (their slots
            // learn it from their books' channel).
            return;
        }
        while open {
            match inbox.try_recv() {
                Ok(h) => lp.add(h),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && lp.live() == 0 {
            return;
        }
        if lp.waiting > 0 && lp.ctx.closing.open() == 0 {
            lp.release_waiting();
            continue;
        }
        // Sockets left with unread bytes: read on at once, taking the other
        // sockets' events too, so a flooding server cannot starve them.
        // Otherwise sleep until the next timer, an event or a wake; while
        // sessions wait for the others to drain, look again each tick.
        let next = lp.timers.next();
        let now = Instant::now();
        let mut timeout = next.map(|at| at.saturating_duration_since(now));
        if lp.waiting > 0 {
            timeout = Some(timeout.map_or(TIMER_TICK, |t| t.min(TIMER_TICK)));
        }
        if !lp.again.is_empty() {
            timeout = Some(Duration::ZERO);
        }
        events.clear();
        if let Some(t) = trace.as_deref_mut() {
            t.sleeping();
        }
        if let Err(e) = poll.poll(&mut events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            lp.fail_all(&format!("the connection loop's epoll failed: {e}"));
            return;
        }
        if let Some(t) = trace.as_deref_mut() {
            t.woke();
        }
        let held = lp.ctx.stats.hold(&shard);
        // One clock reading for the turn's socket events (their wakes are
        // coarse); sends and replies read their own.
        let now = Instant::now();
        let timer = next.is_some_and(|at| now >= at);
        let mut ahead = events.iter().skip(PREFETCH_AHEAD);
        for ev in events.iter() {
            if let Some(slot) = ahead.next().and_then(|a| lp.entries.get(a.token().0)) {
                prefetch(slot);
            }
            if ev.token() == WAKE {
                continue;
            }
            let idx = ev.token().0;
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                lp.on_event(idx, Event::Writable, now);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                lp.on_event(idx, Event::Readable, now);
            }
        }
        for idx in std::mem::take(&mut lp.again) {
            lp.on_event(idx, Event::Readable, now);
        }
        // Due sends leave in one batch a millisecond (as the task path's
        // pacer sends them), not one by one as replies wake the loop: the
        // server then takes many messages per wake-up too.
        if let Some(t) = trace.as_deref_mut() {
            t.events_done();
        }
        let now = Instant::now();
        let mut fired = 0;
        if timer || now >= last_timers + TIMER_TICK {
            fired = lp.run_timers(now);
            last_timers = now;
        }
        // The turn's records go in before anything is printed.
        drop(held);
        if let Some(line) = trace
            .as_deref_mut()
            .and_then(|t| t.finish(events.iter().count(), fired))
        {
            eprintln!("{line}");
        }
    }
}

/// Ask the CPU to bring `v`'s cache lines in ahead of use.
fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p: *const i8 = (v as *const T).cast();
        for line in (0..size_of::<T>()).step_by(64) {
            // SAFETY: a prefetch is a hint that never faults or changes
            // memory; the addresses are within `v`, which is borrowed.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

#[derive(Clone, Copy)]
enum Event {
    Readable,
    Writable,
    Timer,
}

struct Loop {
    ctx: Arc<RunCtx>,
    registry: Registry,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    timers: Timers,
    scratch: Scratch,
    /// Sessions whose read budget ran out with bytes maybe left.
    again: Vec<usize>,
    /// Sessions drained and waiting for the others (`closing`).
    waiting: usize,
}

impl Loop {
    /// Sessions in the loop: every entry not on the free list.
    fn live(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// Take a session in: register its socket, read what already came.
    fn add(&mut self, h: Handoff) {
        let Handoff {
            local,
            global,
            sock,
            frames,
            state,
            seq,
            first,
            done,
        } = h;
        let idx = self.free.pop().unwrap_or(self.entries.len());
        let mut sock = mio::net::TcpStream::from_std(sock);
        if let Err(e) = self
            .registry
            .register(&mut sock, Token(idx), Interest::READABLE)
        {
            self.ctx.fail(
                ErrorKind::Read,
                &format!("the connection loop refused a socket: {e}"),
            );
            let _ = done.send(Returned {
                end: End::Dropped,
                state,
                seq,
            });
            if idx < self.entries.len() {
                self.free.push(idx);
            }
            return;
        }
        let conn = Conn::new(&self.ctx, sock, frames, local, global, state, seq, first);
        if idx == self.entries.len() {
            self.entries.push(None);
        }
        self.entries[idx] = Some(Entry { conn, done });
        self.ctx.stats.count(|c| c.in_loop += 1);
        // Frames that came with the opening's last read, and anything the
        // socket holds already.
        self.on_event(idx, Event::Readable, Instant::now());
    }

    /// Act on one event of session `idx`, then settle what it asked for;
    /// `now` is a recent clock reading (the turn's).
    fn on_event(&mut self, idx: usize, ev: Event, now: Instant) {
        let Some(Some(e)) = self.entries.get_mut(idx) else {
            return;
        };
        let (ctx, s) = (&*self.ctx, &mut self.scratch);
        let was = e.conn.waiting();
        let step = match ev {
            Event::Readable => e.conn.on_readable(ctx, s),
            Event::Writable => e.conn.on_writable(ctx, s),
            Event::Timer => e.conn.on_timer(ctx, s, now),
        };
        match (was, e.conn.waiting()) {
            (false, true) => self.waiting += 1,
            (true, false) => self.waiting -= 1,
            _ => {}
        }
        match step {
            Step::Done(end) => self.finish(idx, end),
            Step::ReadMore => {
                self.again.push(idx);
                self.rearm(idx, now);
            }
            Step::Go => self.rearm(idx, now),
        }
    }

    /// Keep session `idx`'s interest and wake in step with what it wants.
    fn rearm(&mut self, idx: usize, now: Instant) {
        let Some(Some(e)) = self.entries.get_mut(idx) else {
            return;
        };
        let c = &mut e.conn;
        if c.wants_write() != c.writable {
            let interest = if c.wants_write() {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(err) = self.registry.reregister(&mut c.sock, Token(idx), interest) {
                self.ctx.fail(
                    ErrorKind::Write,
                    &format!("watching a socket for room failed: {err}"),
                );
                self.finish(idx, End::Dropped);
                return;
            }
            c.writable = c.wants_write();
        }
        let at = c.next_wake(&self.ctx, now);
        // Only an earlier wake is pushed: a later one is found when the
        // current wake fires early, so the heap holds about one per session.
        if c.wake.is_none_or(|(w, _)| at < w) {
            c.wake = Some((at, self.timers.push(at, idx)));
        }
    }

    /// Fire every wake that is due and still live; how many fired.
    fn run_timers(&mut self, now: Instant) -> usize {
        let mut fired = 0;
        // A session always moves its wake past `now`; the bound only keeps
        // a mistake there from becoming a busy loop.
        let mut left = 2 * self.entries.len() + 16;
        while left > 0
            && let Some((id, idx)) = self.timers.pop_due(now)
        {
            left -= 1;
            // The session due a few wakes from now: its first touch
            // (several cache lines) was the largest cost of a paced send.
            // Its slot is not read here (that would wait for the miss).
            if let Some(slot) = self
                .timers
                .soon(PREFETCH_AHEAD)
                .and_then(|i| self.entries.get(i))
            {
                prefetch(slot);
            }
            let Some(Some(e)) = self.entries.get_mut(idx) else {
                continue;
            };
            if e.conn.wake.map(|(_, w)| w) != Some(id) {
                continue;
            }
            e.conn.wake = None;
            fired += 1;
            self.on_event(idx, Event::Timer, now);
        }
        fired
    }

    /// Every session drained: those waiting for the others close now.
    fn release_waiting(&mut self) {
        for idx in 0..self.entries.len() {
            if matches!(&self.entries[idx], Some(e) if e.conn.waiting()) {
                self.on_event(idx, Event::Timer, Instant::now());
            }
        }
    }

    /// Session `idx` ended: out of the set, back to its slot.
    fn finish(&mut self, idx: usize, end: End) {
        let Some(Entry { mut conn, done }) = self.entries.get_mut(idx).and_then(Option::take)
        else {
            return;
        };
        if conn.waiting() {
            self.waiting -= 1;
        }
        conn.leave(&self.ctx);
        let _ = self.registry.deregister(&mut conn.sock);
        self.free.push(idx);
        let _ = done.send(Returned {
            end,
            state: conn.state,
            seq: conn.seq,
        });
        // The socket closes here (FIN), after its slot has its books back.
    }

    /// The loop cannot go on: every session ends as dropped.
    fn fail_all(&mut self, note: &str) {
        self.ctx.fail(ErrorKind::Read, note);
        for idx in 0..self.entries.len() {
            self.finish(idx, End::Dropped);
        }
    }
}
