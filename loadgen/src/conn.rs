//! One connection slot: connect, follow its fixed send schedule, match
//! replies, reconnect if asked, and account for every message it sent.
//!
//! A slot is one tokio task. Inside it a sender and a receiver run
//! concurrently (`select!`) over a split socket and share a small per-slot
//! state; nothing here is shared with other connections except the
//! thread-local stats shard, which keeps per-connection memory small.
//!
//! The schedule is open-model: message `k` is due at `start + k * interval`
//! whatever happened to earlier ones, and latency is measured from that
//! intended time (coordinated-omission correction) as well as from the actual
//! send time.

use crate::engine::RunCtx;
use crate::opts::Mode;
use crate::stats::{ErrorKind, record};
use crate::wire;
use crate::ws::{self, WsRead, WsWrite};
use crate::wsread::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT};
use fastwebsockets::{Frame, Payload};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often a sleeping sender wakes to notice ramp-down or Ctrl-C.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Time allowed for our close frame to leave.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A sent message still waiting for its reply.
#[derive(Debug, Clone, Copy)]
struct Pending {
    seq: u64,
    intended_us: u64,
    sent_us: u64,
    /// Chat: next chunk index expected.
    next_index: u32,
    /// Chat: when the previous chunk arrived (run-relative us), 0 if none.
    last_chunk_us: u64,
    /// Something about the reply was wrong; it will not count as ok.
    bad: bool,
    /// Chat with --reconnect: when (run-relative us) a drop cut this answer
    /// off; 0 when it is not waiting to be recovered.
    dropped_us: u64,
    /// Chat: chunks the node had cached when it answered our `recover`; a
    /// chunk at or past it is live, so the answer is moving again.
    /// `u32::MAX` until a `recovered` frame comes.
    resume_from: u32,
    /// Chat: the node acknowledged the message (`ack`).
    acked: bool,
}

/// Per-connection bookkeeping shared by its sender and receiver.
struct ConnState {
    /// Oldest first. Bounded by `cap`; see [`ConnState::push`].
    pending: VecDeque<Pending>,
    cap: usize,
    /// One past the highest sequence number sent.
    sent_upto: u64,
}

impl ConnState {
    /// Give back memory after a burst of outstanding messages (a stall
    /// can leave thousands of connections each holding a large queue).
    fn shrink_if_idle(&mut self) {
        if self.pending.is_empty() && self.pending.capacity() > 8 {
            self.pending.shrink_to(4);
        }
    }

    fn position(&self, seq: u64) -> Option<usize> {
        // Replies almost always answer the oldest message: scan from the front.
        self.pending.iter().position(|p| p.seq == seq)
    }
}

/// Why a connection's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Loadgen ended it: the run, a ramp-down or Ctrl-C.
    Finished,
    /// The server or the network ended it.
    Dropped,
}

fn lock(m: &Mutex<ConnState>) -> MutexGuard<'_, ConnState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run slot `local` (this process's numbering) until the run ends.
pub async fn run_slot(ctx: Arc<RunCtx>, local: u64) {
    let global = ctx.global_slot(local);
    let session = ctx.session_id(global);
    let target = &ctx.targets[(global % ctx.targets.len() as u64) as usize];
    let source = (!ctx.cfg.source_ips.is_empty())
        .then(|| ctx.cfg.source_ips[(global % ctx.cfg.source_ips.len() as u64) as usize]);
    let mut start: Option<Instant> = None;
    let mut seq = 0u64;
    let mut backoff = BACKOFF_MIN;
    let mut connected_before = false;
    // When this slot's connection dropped, until a new one succeeds.
    let mut dropped_at: Option<Instant> = None;
    // Chat answers cut off by a drop, to recover on the next connection.
    let mut carry: VecDeque<Pending> = VecDeque::new();
    loop {
        if ctx.slot_stopped(local) || Instant::now() >= ctx.send_end {
            break;
        }
        let path = ctx.path_for(target, &session, local);
        let res = {
            // Bound the connects in progress to what the listen backlog absorbs.
            let _permit = ctx.connecting.acquire().await;
            // The wait for a permit can outlast the run or the slot.
            if ctx.slot_stopped(local) || Instant::now() >= ctx.send_end {
                break;
            }
            let t = Instant::now();
            let r =
                tokio::time::timeout_at(ctx.wait_limit(), ws::connect(target, &path, source)).await;
            (r, t.elapsed())
        };
        let ws = match res {
            (Ok(Ok(ws)), took) => {
                let failover = dropped_at.take().map(|t| t.elapsed());
                ctx.stats.with(|r| {
                    record(&mut r.conn_time, took.as_micros() as u64);
                    r.counts.conn_ok += 1;
                    if connected_before {
                        r.counts.reconnects += 1;
                    }
                    if let Some(f) = failover {
                        record(&mut r.failover, f.as_micros() as u64);
                    }
                });
                ws
            }
            (Ok(Err(e)), _) => {
                let kind = match e {
                    ws::ConnectError::Tcp { .. } => ErrorKind::Connect,
                    ws::ConnectError::Handshake { .. } => ErrorKind::Handshake,
                };
                ctx.note_error(&e.to_string());
                ctx.stats.count(|c| {
                    c.conn_failed += 1;
                    c.error(kind);
                });
                if !ctx.cfg.reconnect || !pause(&ctx, local, &mut backoff).await {
                    break;
                }
                continue;
            }
            (Err(_), _) => {
                ctx.note_error(&format!(
                    "connecting to {} took longer than --timeout {:?}",
                    target.url, ctx.cfg.timeout
                ));
                ctx.stats.count(|c| {
                    c.conn_failed += 1;
                    c.error(ErrorKind::ConnectTimeout);
                });
                if !ctx.cfg.reconnect || !pause(&ctx, local, &mut backoff).await {
                    break;
                }
                continue;
            }
        };
        connected_before = true;
        ctx.stats.conn_opened();
        let end = run_session(&ctx, local, global, ws, &mut seq, &mut start, &mut carry).await;
        ctx.stats.conn_closed();
        match end {
            End::Finished => break,
            End::Dropped => {
                ctx.stats.count(|c| c.drops += 1);
                if ctx.cfg.reconnect {
                    dropped_at = Some(Instant::now());
                }
                if !ctx.cfg.reconnect || !pause(&ctx, local, &mut backoff).await {
                    break;
                }
            }
        }
    }
    if let Some(t) = dropped_at {
        // Never back before the run ended: it waited at least this long.
        let waited = t.elapsed().as_micros() as u64;
        ctx.stats.with(|r| {
            r.counts.failovers_unfinished += 1;
            record(&mut r.failover, waited);
        });
    }
    // Answers still waiting for a connection to recover them on.
    let now_us = ctx.us(Instant::now());
    for p in carry {
        ctx.stats.with(|r| {
            r.counts.lost += 1;
            r.counts.recoveries_unfinished += 1;
            record(&mut r.recovery, now_us.saturating_sub(p.dropped_us));
        });
    }
    ctx.slot_done(local);
}

/// Wait before reconnecting; false when the run ends first.
async fn pause(ctx: &RunCtx, local: u64, backoff: &mut Duration) -> bool {
    let until = Instant::now() + *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    sleep_checking(ctx, local, until.min(ctx.send_end)).await;
    Instant::now() < ctx.send_end && !ctx.slot_stopped(local)
}

/// Sleep until `until`, waking regularly to notice a stop; true if stopped.
async fn sleep_checking(ctx: &RunCtx, local: u64, until: Instant) -> bool {
    loop {
        if ctx.slot_stopped(local) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        tokio::time::sleep_until(until.min(now + CHECK_EVERY).into()).await;
    }
}

/// One connected session, from the welcome frame to the end.
async fn run_session(
    ctx: &RunCtx,
    local: u64,
    global: u64,
    conn: ws::Conn,
    seq: &mut u64,
    start: &mut Option<Instant>,
    carry: &mut VecDeque<Pending>,
) -> End {
    let ws::Conn { mut rx, tx } = conn;
    if ctx.cfg.mode != Mode::Raw {
        match tokio::time::timeout_at(ctx.wait_limit(), rx.next()).await {
            Ok(Ok(f)) if f.opcode == OP_TEXT => match wire::parse(rx.payload(&f)) {
                Some(m) if m.ty == "welcome" => {
                    if let Some(t) = m.token.as_deref() {
                        ctx.set_token(local, t);
                    }
                }
                _ => {
                    ctx.note_error("the first frame was not a welcome message");
                    ctx.stats.count(|c| c.error(ErrorKind::Welcome));
                    return End::Dropped;
                }
            },
            Ok(Ok(_)) | Ok(Err(_)) => {
                ctx.note_error("the connection failed before its welcome message");
                ctx.stats.count(|c| c.error(ErrorKind::Welcome));
                return End::Dropped;
            }
            Err(_) => {
                ctx.note_error("no welcome message within --timeout");
                ctx.stats.count(|c| c.error(ErrorKind::Welcome));
                return End::Dropped;
            }
        }
    }
    let mut tx = tx;
    // Answers a drop cut off: ask for the rest of each (chat, --reconnect).
    let carried = std::mem::take(carry);
    let mut buf = Vec::new();
    for p in &carried {
        let id = wire::chat_id(&ctx.run_id, global, p.seq);
        wire::recover(&mut buf, &id, p.next_index);
        if let Err(e) = tx
            .write_frame(Frame::text(Payload::BorrowedMut(&mut buf)))
            .await
        {
            ctx.note_error(&format!("write failed: {e}"));
            ctx.stats.count(|c| c.error(ErrorKind::Write));
            *carry = carried;
            return End::Dropped;
        }
    }
    let tx = tokio::sync::Mutex::new(tx);
    let state = Mutex::new(ConnState {
        pending: carried,
        cap: ctx.pending_cap,
        sent_upto: *seq,
    });
    let replied = Notify::new();
    let first = *start.get_or_insert_with(|| Instant::now() + ctx.phase(global));
    // `biased`: poll in a fixed order, without select!'s per-poll random draw.
    let end = tokio::select! {
        biased;
        e = recv_loop(ctx, global, rx, &tx, &state, &replied) => e,
        e = send_loop(ctx, local, global, &tx, &state, &replied, seq, first) => e,
    };
    let now_us = ctx.us(Instant::now());
    let mut st = lock(&state);
    if end == End::Dropped && ctx.cfg.reconnect && ctx.cfg.mode == Mode::Chat {
        // Not lost yet: the next connection recovers them.
        for mut p in st.pending.drain(..) {
            if p.dropped_us == 0 {
                p.dropped_us = now_us.max(1);
                p.resume_from = u32::MAX;
            }
            carry.push_back(p);
        }
        return end;
    }
    // Every message still pending ends in exactly one bucket.
    let timeout_us = ctx.cfg.timeout.as_micros() as u64;
    let (mut timed_out, mut other) = (0, 0);
    for p in &st.pending {
        if end == End::Finished && now_us.saturating_sub(p.sent_us) >= timeout_us {
            timed_out += 1;
        } else {
            other += 1;
        }
    }
    ctx.stats.count(|c| {
        c.timeouts += timed_out;
        match end {
            End::Finished => c.in_flight += other,
            End::Dropped => c.lost += other,
        }
    });
    end
}

/// Count and forget messages older than --timeout; returns how many.
fn expire(ctx: &RunCtx, st: &mut ConnState, now_us: u64) -> u64 {
    let timeout_us = ctx.cfg.timeout.as_micros() as u64;
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
fn oldest_pending(ctx: &RunCtx, state: &Mutex<ConnState>, now: Instant) -> Option<u64> {
    let mut st = lock(state);
    expire(ctx, &mut st, ctx.us(now));
    st.pending.front().map(|p| p.sent_us)
}

#[allow(clippy::too_many_arguments)]
async fn send_loop(
    ctx: &RunCtx,
    local: u64,
    global: u64,
    tx: &tokio::sync::Mutex<WsWrite>,
    state: &Mutex<ConnState>,
    replied: &Notify,
    seq: &mut u64,
    first: Instant,
) -> End {
    let mut buf: Vec<u8> = Vec::new();
    let mut stopped = false;
    if let Some(interval) = ctx.interval {
        let interval_ns = interval.as_nanos() as u64;
        loop {
            let intended = first + Duration::from_nanos(interval_ns.saturating_mul(*seq));
            if intended >= ctx.send_end {
                break;
            }
            if ctx.cfg.wait_reply {
                // Closed loop: the previous message must be answered (or time out).
                loop {
                    let now = Instant::now();
                    let Some(oldest) = oldest_pending(ctx, state, now) else {
                        break;
                    };
                    if ctx.slot_stopped(local) || now >= ctx.send_end {
                        stopped = ctx.slot_stopped(local);
                        return drain(ctx, tx, state, replied, stopped).await;
                    }
                    let expiry = ctx.at(oldest) + ctx.cfg.timeout;
                    let wake = expiry.min(now + CHECK_EVERY).min(ctx.send_end);
                    tokio::select! {
                        _ = replied.notified() => {}
                        _ = tokio::time::sleep_until(wake.into()) => {}
                    }
                }
            }
            if sleep_checking(ctx, local, intended).await {
                stopped = true;
                break;
            }
            let now = Instant::now();
            if now >= ctx.send_end {
                break;
            }
            let (intended_us, sent_us) = (ctx.us(intended), ctx.us(now));
            let n = *seq;
            let chat_id;
            match ctx.cfg.mode {
                Mode::Echo => wire::echo(&mut buf, n, intended_us, sent_us, &ctx.filler),
                Mode::Raw => wire::raw(&mut buf, n, intended_us, sent_us, &ctx.filler),
                Mode::Chat => {
                    chat_id = wire::chat_id(&ctx.run_id, global, n);
                    wire::chat(
                        &mut buf,
                        &chat_id,
                        &ctx.filler,
                        ctx.cfg.chat_chunks,
                        ctx.cfg.chat_interval_ms,
                    );
                }
            }
            {
                let mut st = lock(state);
                expire(ctx, &mut st, sent_us);
                if st.pending.len() >= st.cap {
                    // Bounded bookkeeping: the oldest is given up as timed out.
                    st.pending.pop_front();
                    ctx.stats.count(|c| c.timeouts += 1);
                }
                st.pending.push_back(Pending {
                    seq: n,
                    intended_us,
                    sent_us,
                    next_index: 0,
                    last_chunk_us: 0,
                    bad: false,
                    dropped_us: 0,
                    resume_from: u32::MAX,
                    acked: false,
                });
                st.sent_upto = n + 1;
            }
            ctx.stats.with(|r| {
                r.counts.sent += 1;
                record(&mut r.send_lag, sent_us.saturating_sub(intended_us));
            });
            *seq = n + 1;
            let res = tx
                .lock()
                .await
                .write_frame(Frame::text(Payload::BorrowedMut(&mut buf)))
                .await;
            if let Err(e) = res {
                ctx.note_error(&format!("write failed: {e}"));
                ctx.stats.count(|c| c.error(ErrorKind::Write));
                return End::Dropped;
            }
        }
    } else {
        stopped = sleep_checking(ctx, local, ctx.send_end).await;
    }
    drain(ctx, tx, state, replied, stopped).await
}

/// Stop sending, wait (bounded by --timeout) for outstanding replies, close.
async fn drain(
    ctx: &RunCtx,
    tx: &tokio::sync::Mutex<WsWrite>,
    state: &Mutex<ConnState>,
    replied: &Notify,
    stopped: bool,
) -> End {
    let now = Instant::now();
    let deadline = if ctx.is_aborted() {
        now
    } else if stopped {
        now + ctx.cfg.timeout
    } else {
        ctx.hard_end.max(now).min(now + ctx.cfg.timeout)
    };
    loop {
        let now = Instant::now();
        let Some(oldest) = oldest_pending(ctx, state, now) else {
            break;
        };
        if now >= deadline || ctx.is_aborted() {
            break;
        }
        let wake = (ctx.at(oldest) + ctx.cfg.timeout)
            .min(deadline)
            .min(now + CHECK_EVERY);
        tokio::select! {
            _ = replied.notified() => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        tx.lock()
            .await
            .write_frame(Frame::close(protocol::close::NORMAL, b""))
            .await
    })
    .await;
    End::Finished
}

async fn recv_loop(
    ctx: &RunCtx,
    global: u64,
    mut rx: WsRead,
    tx: &tokio::sync::Mutex<WsWrite>,
    state: &Mutex<ConnState>,
    replied: &Notify,
) -> End {
    loop {
        let frame = match rx.next().await {
            Ok(f) => f,
            Err(e) => {
                ctx.note_error(&format!("read failed: {e}"));
                ctx.stats.count(|c| c.error(ErrorKind::Read));
                return End::Dropped;
            }
        };
        match frame.opcode {
            OP_CLOSE => {
                ctx.note_error("the server closed the connection");
                ctx.stats.count(|c| c.error(ErrorKind::Closed));
                // Answer the close (best effort); the connection is over either way.
                let mut w = tx.lock().await;
                let _ = tokio::time::timeout(
                    CLOSE_WAIT,
                    w.write_frame(Frame::close(protocol::close::NORMAL, b"")),
                )
                .await;
                return End::Dropped;
            }
            OP_PING => {
                let pong = Frame::pong(Payload::Owned(rx.payload(&frame).to_vec()));
                if tx.lock().await.write_frame(pong).await.is_err() {
                    ctx.stats.count(|c| c.error(ErrorKind::Write));
                    return End::Dropped;
                }
            }
            OP_TEXT | OP_BINARY if frame.fin => {
                let now_us = ctx.us(Instant::now());
                let done = {
                    let mut st = lock(state);
                    let done = handle(ctx, global, &mut st, rx.payload(&frame), now_us);
                    st.shrink_if_idle();
                    done
                };
                if done {
                    replied.notify_one();
                }
            }
            OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                // loadgen never sends fragmented messages, so none come back.
                ctx.note_error("unexpected fragmented frame");
                ctx.stats.count(|c| c.error(ErrorKind::Protocol));
            }
            _ => {}
        }
    }
}

/// Handle one data frame; true when it completed a message.
fn handle(ctx: &RunCtx, global: u64, st: &mut ConnState, data: &[u8], now_us: u64) -> bool {
    match ctx.cfg.mode {
        Mode::Raw => match wire::raw_marker(data, &ctx.filler) {
            Some(m) => complete_marker(ctx, st, m, now_us),
            None => {
                ctx.note_error("a reply without loadgen's marker");
                ctx.stats.count(|c| c.error(ErrorKind::Protocol));
                false
            }
        },
        Mode::Echo => match wire::parse(data) {
            Some(m) if m.ty == "echo" => match wire::echo_marker(&m, &ctx.filler) {
                Some(mk) => complete_marker(ctx, st, mk, now_us),
                None => {
                    ctx.note_error("an echo reply whose fields do not match what was sent");
                    ctx.stats.count(|c| c.error(ErrorKind::BadReply));
                    false
                }
            },
            Some(m) => other_frame(ctx, &m),
            None => {
                ctx.note_error("a frame that is not a valid protocol message");
                ctx.stats.count(|c| c.error(ErrorKind::Protocol));
                false
            }
        },
        Mode::Chat => match wire::parse(data) {
            Some(m) => chat_frame(ctx, global, st, &m, now_us),
            None => {
                ctx.note_error("a frame that is not a valid protocol message");
                ctx.stats.count(|c| c.error(ErrorKind::Protocol));
                false
            }
        },
    }
}

/// Frames that are not replies: errors are counted, anything unknown too.
fn other_frame(ctx: &RunCtx, m: &wire::Incoming<'_>) -> bool {
    match &*m.ty {
        "error" => {
            ctx.note_error(&format!(
                "error frame from the node: {}",
                m.code.as_deref().unwrap_or("?")
            ));
            ctx.stats.count(|c| c.error(ErrorKind::ServerError));
        }
        "welcome" => {}
        _ => {
            ctx.note_error(&format!("unexpected message type {:?}", truncate(&m.ty)));
            ctx.stats.count(|c| c.error(ErrorKind::Protocol));
        }
    }
    false
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Echo or raw reply carrying its own marker.
fn complete_marker(ctx: &RunCtx, st: &mut ConnState, m: wire::Marker, now_us: u64) -> bool {
    let timeout_us = ctx.cfg.timeout.as_micros() as u64;
    if m.seq >= st.sent_upto {
        ctx.note_error("a reply to a message that was never sent");
        ctx.stats.count(|c| c.error(ErrorKind::BadReply));
        return false;
    }
    let Some(i) = st.position(m.seq) else {
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
    let Some(p) = st.pending.remove(i) else {
        return false;
    };
    let intact = m.intact && m.intended_us == p.intended_us && m.sent_us == p.sent_us;
    let on_time = now_us.saturating_sub(p.sent_us) < timeout_us;
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

/// Chat: ack, chunks, done, interrupted or error for one of our messages.
fn chat_frame(
    ctx: &RunCtx,
    global: u64,
    st: &mut ConnState,
    m: &wire::Incoming<'_>,
    now_us: u64,
) -> bool {
    let Some(mid) = m.message_id.as_deref() else {
        return other_frame(ctx, m);
    };
    let Some(seq) = wire::parse_chat_id(mid, &ctx.run_id, global) else {
        ctx.note_error("a chat reply for a message id loadgen did not send");
        ctx.stats.count(|c| c.error(ErrorKind::BadReply));
        return false;
    };
    let Some(i) = st.position(seq) else {
        if seq >= st.sent_upto {
            ctx.stats.count(|c| c.error(ErrorKind::BadReply));
        } else if matches!(&*m.ty, "done" | "interrupted") {
            ctx.stats.count(|c| c.late += 1);
        }
        return false;
    };
    let timeout_us = ctx.cfg.timeout.as_micros() as u64;
    match &*m.ty {
        "ack" => {
            st.pending[i].acked = true;
            false
        }
        "recovered" => {
            let p = &mut st.pending[i];
            if m.from_index != Some(p.next_index) {
                p.bad = true;
                ctx.note_error(&format!(
                    "recovery of {mid} starts at {:?}, not at chunk {}",
                    m.from_index, p.next_index
                ));
                ctx.stats.count(|c| c.error(ErrorKind::ChunkOrder));
            }
            // Replayed chunks follow; the answer is moving again at the
            // first chunk past them (or at `done`).
            p.resume_from = m.chunks.unwrap_or(p.next_index);
            false
        }
        "chunk" => {
            let p = &mut st.pending[i];
            let (Some(index), Some(text)) = (m.index, m.text.as_deref()) else {
                p.bad = true;
                ctx.stats.count(|c| c.error(ErrorKind::Protocol));
                return false;
            };
            if index != p.next_index {
                p.bad = true;
                ctx.note_error(&format!(
                    "chunk {index} arrived when {} was due",
                    p.next_index
                ));
                ctx.stats.count(|c| c.error(ErrorKind::ChunkOrder));
            }
            if !protocol::chunk::verify_chunk(mid, index, text) {
                p.bad = true;
                ctx.note_error(&format!("chunk {index} of {mid} has the wrong text"));
                ctx.stats.count(|c| c.error(ErrorKind::ChunkText));
            }
            let (first, last) = (p.last_chunk_us == 0, p.last_chunk_us);
            let (intended, sent) = (p.intended_us, p.sent_us);
            p.next_index = index.saturating_add(1);
            p.last_chunk_us = now_us.max(1);
            if p.dropped_us > 0 && p.resume_from != u32::MAX && index >= p.resume_from {
                let waited = now_us.saturating_sub(p.dropped_us);
                p.dropped_us = 0;
                ctx.stats.with(|r| record(&mut r.recovery, waited));
            }
            ctx.stats.with(|r| {
                if first {
                    r.latency(now_us.saturating_sub(intended), now_us.saturating_sub(sent));
                } else {
                    record(&mut r.chunk_gap, now_us.saturating_sub(last));
                }
            });
            false
        }
        "error"
            if st.pending[i].dropped_us > 0
                && !st.pending[i].acked
                && m.code.as_deref() == Some("not_found") =>
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
        "done" | "interrupted" | "error" => {
            let Some(mut p) = st.pending.remove(i) else {
                return false;
            };
            if p.dropped_us > 0 {
                // `done` completes the answer (it moved again); `interrupted`
                // or an error is the system saying it cannot continue.
                let waited = now_us.saturating_sub(p.dropped_us);
                ctx.stats.with(|r| {
                    if m.ty == "done" {
                        record(&mut r.recovery, waited);
                    } else {
                        r.counts.recoveries_ended += 1;
                    }
                });
            }
            match &*m.ty {
                "done" => {
                    if m.chunks != Some(p.next_index) {
                        p.bad = true;
                        ctx.note_error(&format!(
                            "done says {:?} chunks but {} arrived",
                            m.chunks, p.next_index
                        ));
                        ctx.stats.count(|c| c.error(ErrorKind::ChunkOrder));
                    }
                }
                _ => {
                    p.bad = true;
                    ctx.note_error(&format!(
                        "chat message ended with {} {}",
                        m.ty,
                        m.code.as_deref().unwrap_or("")
                    ));
                    ctx.stats.count(|c| c.error(ErrorKind::ServerError));
                }
            }
            let on_time = now_us.saturating_sub(p.sent_us) < timeout_us;
            ctx.stats.with(|r| {
                r.counts.received += 1;
                if !p.bad && on_time {
                    r.counts.ok += 1;
                }
                if p.last_chunk_us == 0 {
                    // No chunk came: the end frame is the first answer.
                    r.latency(
                        now_us.saturating_sub(p.intended_us),
                        now_us.saturating_sub(p.sent_us),
                    );
                }
                record(&mut r.done_time, now_us.saturating_sub(p.intended_us));
            });
            true
        }
        _ => other_frame(ctx, m),
    }
}
