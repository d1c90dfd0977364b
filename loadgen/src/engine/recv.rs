//! A session's receiver: reads frames, answers pings and closes, and
//! settles each reply against the connection's outstanding messages.
//!
//! What a frame means is decided by `engine::reply` under the run's
//! profile (pure); this module only does the bookkeeping, the same for
//! every mode and profile: latency, part order and text, resumption after
//! a drop, and which bucket each message ends in.

use crate::engine::ctx::RunCtx;
use crate::engine::fanout::Delivery;
use crate::engine::pending::{ConnState, Pending, lock};
use crate::engine::reply::{self, Event, Reply};
use crate::engine::session::{CLOSE_WAIT, End, Session};
use crate::engine::stats::{ErrorKind, record};
use crate::net::connect::WsRead;
use crate::net::frames::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT};
use crate::profile::classify::Keys;
use fastwebsockets::{Frame, Payload};
use std::time::Instant;

/// Read until the connection ends.
///
/// Not `async fn`: rustc keeps an async fn's arguments twice in its future
/// (as captured upvar and as local), and the 80-byte reader would be held
/// twice by every connection's task; an `async move` block uses it in place.
#[allow(clippy::manual_async_fn)]
pub fn recv_loop<'a>(s: &'a Session<'_>, mut rx: WsRead) -> impl Future<Output = End> + 'a {
    async move {
        let ctx = s.ctx;
        let session = ctx.session_id(s.global);
        let id_prefix = ctx.profile.id_prefix(&ctx.conn_values(s.global, &session));
        let keys = Keys {
            id_prefix: &id_prefix,
            filler: &ctx.filler,
        };
        loop {
            let frame = match rx.next().await {
                Ok(f) => f,
                Err(e) => {
                    ctx.fail(ErrorKind::Read, &format!("read failed: {e}"));
                    return End::Dropped;
                }
            };
            match frame.opcode {
                OP_CLOSE => {
                    ctx.fail(ErrorKind::Closed, "the server closed the connection");
                    // Answer the close (best effort); the connection is over either way.
                    let close = Frame::close(protocol::close::NORMAL, b"");
                    let _ = s.write_rare(close, Some(CLOSE_WAIT)).await;
                    return End::Dropped;
                }
                OP_PING => {
                    let pong = Frame::pong(Payload::Owned(rx.payload(&frame).to_vec()));
                    if s.write_rare(pong, None).await.is_err() {
                        ctx.stats.count(|c| c.error(ErrorKind::Write));
                        return End::Dropped;
                    }
                }
                OP_TEXT | OP_BINARY if frame.fin => {
                    let now_us = ctx.us(Instant::now());
                    let r = reply::classify(&ctx.profile, rx.payload(&frame), &keys);
                    if let Reply::Answer(i) = r {
                        if !answer(s, i).await {
                            return End::Dropped;
                        }
                        continue;
                    }
                    let done = {
                        let mut st = lock(&s.state);
                        let done = settle(ctx, &mut st, s.global, r, now_us);
                        st.shrink_if_idle();
                        done
                    };
                    if done {
                        s.replied.notify_one();
                    }
                }
                OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                    // loadgen never sends fragmented messages, so none come back.
                    ctx.fail(ErrorKind::Protocol, "unexpected fragmented frame");
                }
                _ => {}
            }
        }
    }
}

/// Answer a keep-alive with the profile's rule `i`; false if the write failed.
async fn answer(s: &Session<'_>, i: usize) -> bool {
    let ctx = s.ctx;
    let Some((_, reply)) = ctx.profile.answers.get(i) else {
        return true;
    };
    let session = ctx.session_id(s.global);
    let vars = ctx.conn_values(s.global, &session);
    let mut text = reply.render(&vars).into_bytes();
    let frame = Frame::text(Payload::BorrowedMut(&mut text));
    if let Err(e) = s.write_rare(frame, None).await {
        ctx.fail(ErrorKind::Write, &format!("write failed: {e}"));
        return false;
    }
    true
}

/// Act on one classified frame; true when it completed a message. Also
/// the epoll loop's (`engine::steady`): both paths keep the same books.
pub(crate) fn settle(ctx: &RunCtx, st: &mut ConnState, global: u64, r: Reply, now_us: u64) -> bool {
    match r {
        Reply::Ignore | Reply::Answer(_) => false,
        Reply::Message { seq, event } => message_event(ctx, st, seq, event, now_us),
        Reply::Delivery { from, seq, ts } => delivery(ctx, st, global, from, seq, ts, now_us),
        Reply::Fault { kind, note } => {
            ctx.fail(kind, &note);
            false
        }
    }
}

/// A frame about message `seq` (`None`: the oldest still waiting).
fn message_event(
    ctx: &RunCtx,
    st: &mut ConnState,
    seq: Option<u64>,
    ev: Event,
    now_us: u64,
) -> bool {
    let i = match seq {
        None => (!st.pending.is_empty()).then_some(0),
        Some(q) => st.position(q),
    };
    let Some(i) = i else {
        not_waiting(ctx, st, seq, &ev, now_us);
        return false;
    };
    let p = &mut st.pending[i];
    match ev {
        Event::Ack => {
            p.acked = true;
            false
        }
        Event::Resumed { from, held } => {
            let checks_from = ctx
                .profile
                .resume
                .as_ref()
                .is_some_and(|r| r.from.is_some());
            if checks_from && from != Some(u64::from(p.next_index)) {
                p.bad = true;
                ctx.fail(
                    ErrorKind::ChunkOrder,
                    &format!(
                        "resuming message {} starts at {from:?}, not at part {}",
                        p.seq, p.next_index
                    ),
                );
            }
            // Replayed parts follow; the answer is moving again at the
            // first part past them (or at its end).
            p.resume_from = held.map_or(p.next_index, |h| u32::try_from(h).unwrap_or(u32::MAX));
            false
        }
        Event::Part { index, text_ok } => {
            part(ctx, p, index, text_ok, now_us);
            false
        }
        Event::Fail {
            not_found: true, ..
        } if p.dropped_us > 0 && !p.acked => {
            // Sent just before the drop and never acknowledged: the request
            // itself was lost on the way, so there is no answer to resume.
            st.pending.remove(i);
            ctx.note_error(
                "a message sent just before its connection dropped never reached the server (resume: not found)",
            );
            ctx.stats.count(|c| {
                c.lost += 1;
                c.requests_never_reached += 1;
            });
            true
        }
        Event::Whole { marker } => {
            let Some(mut p) = st.pending.remove(i) else {
                return false;
            };
            if let Some(m) = marker {
                let intact = m.intact && m.intended_us == p.intended_us && m.sent_us == p.sent_us;
                if !intact {
                    p.bad = true;
                    ctx.fail(
                        ErrorKind::BadReply,
                        "a reply whose payload differs from what was sent",
                    );
                }
            }
            complete(ctx, &p, now_us, false);
            true
        }
        Event::End { .. } | Event::Fail { .. } => {
            let Some(p) = st.pending.remove(i) else {
                return false;
            };
            finish_answer(ctx, p, ev, now_us);
            true
        }
    }
}

/// A frame about a message that no longer waits (timed out, already
/// answered) or never existed.
fn not_waiting(ctx: &RunCtx, st: &ConnState, seq: Option<u64>, ev: &Event, now_us: u64) {
    if seq.is_some_and(|q| q >= st.sent_upto) {
        ctx.fail(
            ErrorKind::BadReply,
            "a reply to a message that was never sent",
        );
        return;
    }
    match ev {
        // Its message already timed out: still a real latency worth recording.
        Event::Whole { marker: Some(m) } => ctx.stats.with(|r| {
            r.counts.late += 1;
            r.latency(
                now_us.saturating_sub(m.intended_us),
                now_us.saturating_sub(m.sent_us),
            );
        }),
        Event::Whole { .. } | Event::End { .. } | Event::Fail { .. } => {
            ctx.stats.count(|c| c.late += 1)
        }
        Event::Ack | Event::Resumed { .. } | Event::Part { .. } => {}
    }
}

/// A part of a streamed answer: checked for order and text, timed.
fn part(ctx: &RunCtx, p: &mut Pending, index: Option<u64>, text_ok: bool, now_us: u64) {
    let due = p.next_index;
    let index = index.map_or(due, |x| u32::try_from(x).unwrap_or(u32::MAX));
    if index > due {
        p.bad = true;
        ctx.fail(
            ErrorKind::ChunkOrder,
            &format!("gap: part {index} arrived when part {due} was due"),
        );
        p.next_index = index.saturating_add(1);
    } else if index < due {
        p.bad = true;
        ctx.fail(
            ErrorKind::ChunkOrder,
            &format!("part {index} arrived again or out of order (part {due} was due)"),
        );
    } else {
        p.next_index = due.saturating_add(1);
    }
    if !text_ok {
        p.bad = true;
        ctx.fail(
            ErrorKind::ChunkText,
            &format!("part {index} of message {} has the wrong text", p.seq),
        );
    }
    part_arrived(ctx, p, now_us);
    if p.dropped_us > 0 && p.resume_from != u32::MAX && index >= p.resume_from {
        let waited = now_us.saturating_sub(p.dropped_us);
        p.dropped_us = 0;
        ctx.stats.with(|r| record(&mut r.recovery, waited));
    }
}

/// The end of an answer: its end frame, or a frame saying it failed.
fn finish_answer(ctx: &RunCtx, mut p: Pending, ev: Event, now_us: u64) {
    let ended = matches!(ev, Event::End { .. });
    if p.dropped_us > 0 {
        // The end completes the answer (it moved again); a failure is the
        // system saying it cannot continue.
        let waited = now_us.saturating_sub(p.dropped_us);
        ctx.stats.with(|r| {
            if ended {
                record(&mut r.recovery, waited);
            } else {
                r.counts.recoveries_ended += 1;
            }
        });
    }
    match &ev {
        Event::End { count: Some(c) } if *c != Some(u64::from(p.next_index)) => {
            p.bad = true;
            ctx.fail(
                ErrorKind::ChunkOrder,
                &format!("the end says {c:?} parts but {} arrived", p.next_index),
            );
        }
        Event::Fail { name, code, .. } => {
            p.bad = true;
            ctx.fail(
                ErrorKind::ServerError,
                &match code {
                    Some(c) => format!("an answer ended with {name} ({c})"),
                    None => format!("an answer ended with {name}"),
                },
            );
        }
        _ => {}
    }
    complete(ctx, &p, now_us, ctx.profile.stream.is_some() || ended);
}

/// Fan-out: publisher `from`'s message `seq`, intended at `ts`, reached
/// this subscriber.
fn delivery(
    ctx: &RunCtx,
    st: &mut ConnState,
    global: u64,
    from: Option<u64>,
    seq: u64,
    ts: u64,
    now_us: u64,
) -> bool {
    let (Some(rec), Some(group)) = (st.received.as_mut(), ctx.group(global)) else {
        // A publisher's own message coming back to it is not a delivery.
        return false;
    };
    if from.is_some_and(|f| f != ctx.publisher_conn(global)) {
        ctx.fail(
            ErrorKind::BadReply,
            "a delivery from another group's publisher (cross-talk)",
        );
        return false;
    }
    if seq >= group.published() {
        ctx.fail(
            ErrorKind::BadReply,
            "a delivery of a message that was never published",
        );
        return false;
    }
    match rec.take(seq) {
        Delivery::New => {
            let waited = now_us.saturating_sub(ts);
            let on_time = waited < ctx.timeout_us();
            ctx.stats.with(|r| {
                if on_time {
                    r.counts.received += 1;
                    r.counts.ok += 1;
                } else {
                    r.counts.late += 1;
                }
                // Only the intended send time travels: both views are it.
                r.latency(waited, waited);
            });
        }
        Delivery::Duplicate => ctx.fail(
            ErrorKind::Duplicate,
            "a message delivered twice to one subscriber",
        ),
        Delivery::NotOwed | Delivery::TooOld => {}
    }
    false
}

/// A part of an answer arrived: the first is the answer's latency, the
/// others the gap since the previous part.
fn part_arrived(ctx: &RunCtx, p: &mut Pending, now_us: u64) {
    let last = p.last_chunk_us;
    p.last_chunk_us = now_us.max(1);
    let (intended, sent) = (p.intended_us, p.sent_us);
    ctx.stats.with(|r| {
        if last == 0 {
            r.latency(now_us.saturating_sub(intended), now_us.saturating_sub(sent));
        } else {
            record(&mut r.chunk_gap, now_us.saturating_sub(last));
        }
    });
}

/// A message's answer is complete: count it and time it; a streamed
/// answer's end also times the whole answer and counts its parts.
fn complete(ctx: &RunCtx, p: &Pending, now_us: u64, streamed: bool) {
    let on_time = now_us.saturating_sub(p.sent_us) < ctx.timeout_us();
    ctx.stats.with(|r| {
        r.counts.received += 1;
        if !p.bad && on_time {
            r.counts.ok += 1;
        }
        if p.last_chunk_us == 0 {
            // No part came: this frame is the answer's first (and only) sign.
            r.latency(
                now_us.saturating_sub(p.intended_us),
                now_us.saturating_sub(p.sent_us),
            );
        }
        if streamed {
            record(&mut r.done_time, now_us.saturating_sub(p.intended_us));
            if p.next_index > 0 {
                record(&mut r.parts, u64::from(p.next_index));
            }
        }
    });
}
