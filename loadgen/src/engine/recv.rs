//! A session's receiver: reads frames, answers pings and closes, and
//! settles each reply against the connection's outstanding messages.
//!
//! What a frame means is decided by `engine::reply` (pure); this module
//! only does the bookkeeping: latency, chunk order, recovery, and which
//! bucket each message ends in.

use crate::engine::ctx::RunCtx;
use crate::engine::fanout::Delivery;
use crate::engine::pending::{ConnState, Pending, lock};
use crate::engine::reply::{self, ChatEvent, ProfileEvent, Reply};
use crate::engine::session::{CLOSE_WAIT, End, Session};
use crate::engine::stats::{ErrorKind, record};
use crate::net::connect::WsRead;
use crate::net::frames::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT};
use crate::net::wire::Marker;
use fastwebsockets::{Frame, Payload};
use std::time::Instant;

/// Read until the connection ends.
pub async fn recv_loop(s: &Session<'_>, mut rx: WsRead) -> End {
    let ctx = s.ctx;
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
                let mut w = s.tx.lock().await;
                let _ = tokio::time::timeout(
                    CLOSE_WAIT,
                    w.write_frame(Frame::close(protocol::close::NORMAL, b"")),
                )
                .await;
                return End::Dropped;
            }
            OP_PING => {
                let pong = Frame::pong(Payload::Owned(rx.payload(&frame).to_vec()));
                if s.tx.lock().await.write_frame(pong).await.is_err() {
                    ctx.stats.count(|c| c.error(ErrorKind::Write));
                    return End::Dropped;
                }
            }
            OP_TEXT | OP_BINARY if frame.fin => {
                let now_us = ctx.us(Instant::now());
                let r = match &ctx.profile {
                    Some(p) => reply::classify_profile(p, rx.payload(&frame)),
                    None => reply::classify(
                        ctx.cfg.mode,
                        rx.payload(&frame),
                        &ctx.filler,
                        &ctx.run_id,
                        s.global,
                    ),
                };
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

/// Answer a keep-alive with the profile's rule `i`; false if the write failed.
async fn answer(s: &Session<'_>, i: usize) -> bool {
    let ctx = s.ctx;
    let Some((_, reply)) = ctx.profile.as_ref().and_then(|p| p.answers.get(i)) else {
        return true;
    };
    let session = ctx.session_id(s.global);
    let vars = ctx.conn_values(s.global, &session);
    let mut text = reply.render(&vars).into_bytes();
    let frame = Frame::text(Payload::BorrowedMut(&mut text));
    if let Err(e) = s.tx.lock().await.write_frame(frame).await {
        ctx.fail(ErrorKind::Write, &format!("write failed: {e}"));
        return false;
    }
    true
}

/// Act on one classified frame; true when it completed a message.
fn settle(ctx: &RunCtx, st: &mut ConnState, global: u64, r: Reply, now_us: u64) -> bool {
    match r {
        Reply::Marker(m) => complete_marker(ctx, st, m, now_us),
        Reply::Chat { seq, event } => chat_event(ctx, st, seq, event, now_us),
        Reply::Ignore | Reply::Answer(_) => false,
        Reply::Profile { seq, event } => profile_event(ctx, st, seq, event, now_us),
        Reply::Delivery { from, seq, ts } => delivery(ctx, st, global, from, seq, ts, now_us),
        Reply::Fault { kind, note } => {
            ctx.fail(kind, &note);
            false
        }
    }
}

/// Echo or raw reply carrying its own marker.
fn complete_marker(ctx: &RunCtx, st: &mut ConnState, m: Marker, now_us: u64) -> bool {
    if m.seq >= st.sent_upto {
        ctx.fail(
            ErrorKind::BadReply,
            "a reply to a message that was never sent",
        );
        return false;
    }
    let Some(p) = st.position(m.seq).and_then(|i| st.pending.remove(i)) else {
        // Already counted as timed out; still a real latency worth recording.
        ctx.stats.with(|r| {
            r.counts.late += 1;
            r.latency(
                now_us.saturating_sub(m.intended_us),
                now_us.saturating_sub(m.sent_us),
            );
        });
        return false;
    };
    let intact = m.intact && m.intended_us == p.intended_us && m.sent_us == p.sent_us;
    let on_time = now_us.saturating_sub(p.sent_us) < ctx.timeout_us();
    if !intact {
        ctx.note_error("a reply whose payload differs from what was sent");
    }
    ctx.stats.with(|r| {
        r.counts.received += 1;
        if intact && on_time {
            r.counts.ok += 1;
        }
        if !intact {
            r.counts.error(ErrorKind::BadReply);
        }
        r.latency(
            now_us.saturating_sub(p.intended_us),
            now_us.saturating_sub(p.sent_us),
        );
    });
    true
}

/// Chat: ack, chunks, done, interrupted or error for message `seq`.
fn chat_event(ctx: &RunCtx, st: &mut ConnState, seq: u64, ev: ChatEvent, now_us: u64) -> bool {
    let Some(i) = st.position(seq) else {
        if seq >= st.sent_upto {
            ctx.stats.count(|c| c.error(ErrorKind::BadReply));
        } else if matches!(ev, ChatEvent::Done { .. } | ChatEvent::Interrupted { .. }) {
            ctx.stats.count(|c| c.late += 1);
        }
        return false;
    };
    let p = &mut st.pending[i];
    match ev {
        ChatEvent::Ack => {
            p.acked = true;
            false
        }
        ChatEvent::Recovered { from_index, chunks } => {
            if from_index != Some(p.next_index) {
                p.bad = true;
                ctx.fail(
                    ErrorKind::ChunkOrder,
                    &format!(
                        "recovery of message {seq} starts at {from_index:?}, not at chunk {}",
                        p.next_index
                    ),
                );
            }
            // Replayed chunks follow; the answer is moving again at the
            // first chunk past them (or at `done`).
            p.resume_from = chunks.unwrap_or(p.next_index);
            false
        }
        ChatEvent::ChunkMalformed => {
            p.bad = true;
            ctx.stats.count(|c| c.error(ErrorKind::Protocol));
            false
        }
        ChatEvent::Chunk { index, text_ok } => {
            if index != p.next_index {
                p.bad = true;
                ctx.fail(
                    ErrorKind::ChunkOrder,
                    &format!("chunk {index} arrived when {} was due", p.next_index),
                );
            }
            if !text_ok {
                p.bad = true;
                ctx.fail(
                    ErrorKind::ChunkText,
                    &format!("chunk {index} of message {seq} has the wrong text"),
                );
            }
            p.next_index = index.saturating_add(1);
            part_arrived(ctx, p, now_us);
            if p.dropped_us > 0 && p.resume_from != u32::MAX && index >= p.resume_from {
                let waited = now_us.saturating_sub(p.dropped_us);
                p.dropped_us = 0;
                ctx.stats.with(|r| record(&mut r.recovery, waited));
            }
            false
        }
        ChatEvent::Error { code }
            if p.dropped_us > 0 && !p.acked && code.as_deref() == Some("not_found") =>
        {
            // Sent just before the drop and never acknowledged: the request
            // itself was lost on the way, so there is no answer to recover.
            st.pending.remove(i);
            ctx.note_error("a chat sent just before its connection dropped never reached the node (recover: not_found)");
            ctx.stats.count(|c| {
                c.lost += 1;
                c.recoveries_ended += 1;
            });
            true
        }
        ChatEvent::Done { .. } | ChatEvent::Interrupted { .. } | ChatEvent::Error { .. } => {
            let Some(p) = st.pending.remove(i) else {
                return false;
            };
            finish_answer(ctx, p, ev, now_us);
            true
        }
    }
}

/// The end of an answer (`done`, `interrupted` or `error`).
fn finish_answer(ctx: &RunCtx, mut p: Pending, ev: ChatEvent, now_us: u64) {
    let done = matches!(ev, ChatEvent::Done { .. });
    if p.dropped_us > 0 {
        // `done` completes the answer (it moved again); `interrupted`
        // or an error is the system saying it cannot continue.
        let waited = now_us.saturating_sub(p.dropped_us);
        ctx.stats.with(|r| {
            if done {
                record(&mut r.recovery, waited);
            } else {
                r.counts.recoveries_ended += 1;
            }
        });
    }
    match &ev {
        ChatEvent::Done { chunks } if *chunks != Some(p.next_index) => {
            p.bad = true;
            ctx.fail(
                ErrorKind::ChunkOrder,
                &format!("done says {chunks:?} chunks but {} arrived", p.next_index),
            );
        }
        ChatEvent::Interrupted { code } | ChatEvent::Error { code } => {
            p.bad = true;
            let ty = if matches!(ev, ChatEvent::Interrupted { .. }) {
                "interrupted"
            } else {
                "error"
            };
            ctx.fail(
                ErrorKind::ServerError,
                &format!(
                    "chat message ended with {ty} {}",
                    code.as_deref().unwrap_or("")
                ),
            );
        }
        _ => {}
    }
    complete(ctx, &p, now_us, true);
}

/// Under a profile: a whole reply, a part or the end of a streamed answer
/// to message `seq` (`None`: the oldest still waiting).
fn profile_event(
    ctx: &RunCtx,
    st: &mut ConnState,
    seq: Option<u64>,
    ev: ProfileEvent,
    now_us: u64,
) -> bool {
    let i = match seq {
        None => (!st.pending.is_empty()).then_some(0),
        Some(q) => st.position(q),
    };
    let Some(i) = i else {
        match seq {
            Some(q) if q >= st.sent_upto => ctx.fail(
                ErrorKind::BadReply,
                "a reply to a message that was never sent",
            ),
            // Its message already timed out (or, matched by order, nothing waits).
            _ if ev != (ProfileEvent::Part { index: None }) => ctx.stats.count(|c| c.late += 1),
            _ => {}
        }
        return false;
    };
    if let ProfileEvent::Part { index } = ev {
        let p = &mut st.pending[i];
        let due = p.next_index;
        match index.map(|x| u32::try_from(x).unwrap_or(u32::MAX)) {
            Some(x) if x > due => {
                p.bad = true;
                ctx.fail(
                    ErrorKind::ChunkOrder,
                    &format!("gap: part {x} arrived when part {due} was due"),
                );
                p.next_index = x.saturating_add(1);
            }
            Some(x) if x < due => {
                p.bad = true;
                ctx.fail(
                    ErrorKind::ChunkOrder,
                    &format!("part {x} arrived again or out of order (part {due} was due)"),
                );
            }
            _ => p.next_index = due.saturating_add(1),
        }
        part_arrived(ctx, p, now_us);
        return false;
    }
    let Some(p) = st.pending.remove(i) else {
        return false;
    };
    complete(ctx, &p, now_us, ev == ProfileEvent::End);
    true
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
