//! One slot thread's epoll loop: the sessions handed to it, one `mio::Poll`
//! for their sockets, one timer heap for their due messages and deadlines.
//!
//! The loop is a tokio task on the slot thread, so the thread's handshakes
//! and the loop share it without either blocking the other: tokio's
//! reactor watches the loop's epoll descriptor (`server::epoll`, shared
//! with wsnode's connection loops), and the loop waits on that, on its inbox, on its next timer
//! and on the end-of-sending barrier. Each turn then takes every ready
//! socket from its own set in one `epoll_wait` and every due timer from
//! the heap.

use super::conn::{Conn, Scratch, Step};
use super::handoff::{Handoff, Returned};
use super::timers::Timers;
use crate::engine::ctx::RunCtx;
use crate::engine::session::End;
use crate::engine::stats::ErrorKind;
use mio::{Events, Interest, Registry, Token};
use server::epoll::EpollSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// How many wakes (or ready sockets) ahead a session is prefetched.
const PREFETCH_AHEAD: usize = 4;
/// Timers run at most this often, unless their own wake-up comes first.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// A live session and what its slot waits on.
struct Entry {
    conn: Conn,
    done: oneshot::Sender<Returned>,
}

/// Run the loop until its inbox closes and its last session has ended.
pub async fn run(ctx: Arc<RunCtx>, mut inbox: mpsc::UnboundedReceiver<Handoff>) {
    let (mut set, registry) = match EpollSet::open() {
        Ok(p) => p,
        Err(e) => {
            // Without a loop, every session handed here ends at once.
            let note = format!("the connection loop could not start: {e}");
            while let Some(h) = inbox.recv().await {
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
    turns(&mut lp, &mut set, inbox).await;
}

/// The loop's turns, until its inbox closed and its last session ended.
async fn turns(lp: &mut Loop, set: &mut EpollSet, mut inbox: mpsc::UnboundedReceiver<Handoff>) {
    let mut events = Events::with_capacity(EVENTS);
    let mut open = true;
    let mut last_timers = Instant::now();
    loop {
        events.clear();
        if !open && lp.live() == 0 {
            return;
        }
        let ctx = lp.ctx.clone();
        // Registered before the count is read: the last session's wake
        // cannot fall between the check and the wait.
        let drained = ctx.closing.drained();
        if lp.waiting > 0 && ctx.closing.open() == 0 {
            lp.release_waiting();
            continue;
        }
        let waiting = lp.waiting > 0;
        let next = lp.timers.next();
        let mut timer = false;
        if lp.again.is_empty() {
            tokio::select! {
                biased;
                r = set.ready(&mut events) => {
                    if let Err(e) = r {
                        lp.fail_all(&format!("the connection loop's epoll failed: {e}"));
                        return;
                    }
                }
                h = inbox.recv(), if open => match h {
                    Some(h) => lp.add(h),
                    None => open = false,
                },
                _ = drained, if waiting => {}
                _ = sleep_until(next), if next.is_some() => timer = true,
            }
        } else {
            // Sockets left with unread bytes: let the thread's other tasks
            // run, then read on, taking the other sockets' events and new
            // sessions too, so a flooding server cannot starve them.
            tokio::task::yield_now().await;
            if let Err(e) = set.poll_now(&mut events) {
                lp.fail_all(&format!("the connection loop's epoll failed: {e}"));
                return;
            }
            loop {
                match inbox.try_recv() {
                    Ok(h) => lp.add(h),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
        }
        // One clock reading for the turn's socket events (their wakes are
        // coarse); sends and replies read their own.
        let now = Instant::now();
        let mut ahead = events.iter().skip(PREFETCH_AHEAD);
        for ev in events.iter() {
            if let Some(slot) = ahead.next().and_then(|a| lp.entries.get(a.token().0)) {
                prefetch(slot);
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
        let now = Instant::now();
        if timer || now >= last_timers + TIMER_TICK {
            lp.run_timers(now);
            last_timers = now;
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

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
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

    /// Fire every wake that is due and still live.
    fn run_timers(&mut self, now: Instant) {
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
            self.on_event(idx, Event::Timer, now);
        }
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
