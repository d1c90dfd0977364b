//! A connection's outstanding messages: what was sent and still waits for
//! its reply, bounded, and expired after `--timeout`.
//!
//! Shared by the slot's sender and receiver under one short-held mutex
//! (never held across an await). Every message that enters here leaves in
//! exactly one bucket: received, timed out, lost or in flight.

use crate::engine::ctx::RunCtx;
use crate::engine::fanout::Received;
use crate::engine::stats::record;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// A sent message still waiting for its reply.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    pub seq: u64,
    pub intended_us: u64,
    pub sent_us: u64,
    /// Chat: next chunk index expected.
    pub next_index: u32,
    /// Chat: when the previous chunk arrived (run-relative us), 0 if none.
    pub last_chunk_us: u64,
    /// Something about the reply was wrong; it will not count as ok.
    pub bad: bool,
    /// Chat with --reconnect: when (run-relative us) a drop cut this answer
    /// off; 0 when it is not waiting to be recovered.
    pub dropped_us: u64,
    /// Chat: chunks the node had cached when it answered our `recover`; a
    /// chunk at or past it is live, so the answer is moving again.
    /// `u32::MAX` until a `recovered` frame comes.
    pub resume_from: u32,
    /// Chat: the node acknowledged the message (`ack`).
    pub acked: bool,
}

impl Pending {
    /// A message just sent.
    pub fn sent(seq: u64, intended_us: u64, sent_us: u64) -> Pending {
        Pending {
            seq,
            intended_us,
            sent_us,
            next_index: 0,
            last_chunk_us: 0,
            bad: false,
            dropped_us: 0,
            resume_from: u32::MAX,
            acked: false,
        }
    }
}

/// Per-connection bookkeeping shared by its sender and receiver.
pub struct ConnState {
    /// Oldest first. Bounded by `cap`: when full, the oldest is given up as
    /// timed out (see [`ConnState::push`]).
    pub pending: VecDeque<Pending>,
    pub cap: usize,
    /// One past the highest sequence number sent.
    pub sent_upto: u64,
    /// Fan-out subscriber: what it has received of its publisher's messages.
    pub received: Option<Received>,
}

impl ConnState {
    /// Nothing outstanding, `sent_upto` sent before, no fan-out books.
    pub fn new(cap: usize, sent_upto: u64) -> ConnState {
        ConnState {
            pending: VecDeque::new(),
            cap,
            sent_upto,
            received: None,
        }
    }

    /// Give back memory after a burst of outstanding messages (a stall
    /// can leave thousands of connections each holding a large queue).
    pub fn shrink_if_idle(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 8 {
            self.pending.shrink_to(4);
        }
    }

    pub fn position(&self, seq: u64) -> Option<usize> {
        // Replies almost always answer the oldest message: scan from the front.
        self.pending.iter().position(|p| p.seq == seq)
    }

    /// Track a message just sent; returns true when the queue was full and
    /// the oldest entry was dropped (the caller counts it as timed out).
    pub fn push(&mut self, p: Pending) -> bool {
        let full = self.pending.len() >= self.cap;
        if full {
            self.pending.pop_front();
        }
        self.sent_upto = p.seq + 1;
        self.pending.push_back(p);
        full
    }
}

pub fn lock(m: &Mutex<ConnState>) -> MutexGuard<'_, ConnState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Count and forget messages older than --timeout; returns how many.
pub fn expire(ctx: &RunCtx, st: &mut ConnState, now_us: u64) -> u64 {
    let timeout_us = ctx.timeout_us();
    let mut n = 0;
    while let Some(p) = st.pending.front() {
        if now_us.saturating_sub(p.sent_us) < timeout_us {
            break;
        }
        if let Some(p) = st.pending.pop_front()
            && p.dropped_us > 0
        {
            // Cut by a drop and never recovered in time.
            ctx.stats.with(|r| {
                r.counts.recoveries_unfinished += 1;
                record(&mut r.recovery, now_us.saturating_sub(p.dropped_us));
            });
        }
        n += 1;
    }
    if n > 0 {
        ctx.stats.count(|c| c.timeouts += n);
    }
    n
}

/// Expire what timed out by `now`; the send time of the oldest message
/// still waiting for its reply, if any.
pub fn oldest_pending(ctx: &RunCtx, state: &Mutex<ConnState>, now: Instant) -> Option<u64> {
    let mut st = lock(state);
    expire(ctx, &mut st, ctx.us(now));
    st.pending.front().map(|p| p.sent_us)
}
