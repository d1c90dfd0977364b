//! One connection slot: connect, run sessions until the run or the slot
//! ends, reconnect with backoff if asked, and account for every message.
//!
//! A slot is one tokio task. Inside it a sender (`engine::send`) and a
//! receiver (`engine::recv`) run concurrently (`select!`) over a split
//! socket and share a small per-session state; nothing here is shared with
//! other connections except the thread-local stats shard, which keeps
//! per-connection memory small.

use crate::engine::ctx::RunCtx;
use crate::engine::fanout::Received;
use crate::engine::opening;
use crate::engine::pending::{ConnState, Pending, lock};
use crate::engine::recv::recv_loop;
use crate::engine::send::send_loop;
use crate::engine::session::{End, Session, sleep_checking};
use crate::engine::stats::{ErrorKind, record};
use crate::engine::steady::{self, Inbox, Outcome};
use crate::net::connect::{self, ConnectError, WsRead, WsWrite};
use crate::placeholders::Values;
use fastwebsockets::{Frame, Payload};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Run slot `local` (this process's numbering) until the run ends.
/// `steady`: the inbox of its thread's epoll loop (`--io epoll`).
pub async fn run_slot(ctx: Arc<RunCtx>, local: u64, steady: Option<Inbox>) {
    let global = ctx.global_slot(local);
    let session = ctx.session_id(global);
    let target = &ctx.targets[(global % ctx.targets.len() as u64) as usize];
    // By this process's own slot number: every process (a worker, an agent
    // with its own range) spreads its connections over all its addresses.
    let source = (!ctx.cfg.source_ips.is_empty())
        .then(|| ctx.cfg.source_ips[(local % ctx.cfg.source_ips.len() as u64) as usize]);
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
            let vars = ctx.conn_values(global, &session);
            let t = Instant::now();
            // Boxed, as the opening steps and the task path are: each runs
            // once per connection, and its room is not kept by the slot.
            let dial = Box::pin(connect::connect(&ctx.dialer, target, &path, source, &vars));
            let r = tokio::time::timeout_at(ctx.wait_limit(), dial).await;
            (r, t.elapsed())
        };
        let ws = match res {
            (Ok(Ok(ws)), took) => {
                // A connection made resets the backoff: the next drop is a
                // new outage, not the same one (a slot's tenth reconnect in
                // a long soak must not wait BACKOFF_MAX).
                backoff = BACKOFF_MIN;
                let failover = dropped_at.take().map(|t| t.elapsed());
                let times = ws.times;
                ctx.stats.with(|r| {
                    record(&mut r.conn_time, took.as_micros() as u64);
                    record(&mut r.conn_tcp, times.tcp.as_micros() as u64);
                    if let Some(t) = times.tls {
                        record(&mut r.conn_tls, t.as_micros() as u64);
                    }
                    record(&mut r.conn_upgrade, times.upgrade.as_micros() as u64);
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
                    ConnectError::Tcp { .. } => ErrorKind::Connect,
                    ConnectError::Tls { .. } => ErrorKind::Tls,
                    ConnectError::Refused { .. } => ErrorKind::Refused,
                    ConnectError::Handshake { .. } => ErrorKind::Handshake,
                };
                ctx.fail(kind, &e.to_string());
                ctx.stats.count(|c| c.conn_failed += 1);
                if !ctx.cfg.reconnect || !pause(&ctx, local, &mut backoff).await {
                    break;
                }
                continue;
            }
            (Err(_), _) => {
                ctx.fail(
                    ErrorKind::ConnectTimeout,
                    &format!(
                        "connecting to {} took longer than --timeout {:?}",
                        target.url, ctx.cfg.timeout
                    ),
                );
                ctx.stats.count(|c| c.conn_failed += 1);
                if !ctx.cfg.reconnect || !pause(&ctx, local, &mut backoff).await {
                    break;
                }
                continue;
            }
        };
        connected_before = true;
        ctx.stats.conn_opened();
        let slot = Slot {
            local,
            global,
            steady: steady.as_ref(),
        };
        let end = run_session(&ctx, slot, ws, &mut seq, &mut start, &mut carry).await;
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
    // Half the backoff, plus a per-slot share of the other half, so the
    // clients of a node that died do not all knock at the same instant.
    let spread = (local.wrapping_mul(0x9e37_79b9) % 1000) as u32;
    let until = Instant::now() + *backoff / 2 + *backoff / 2 * spread / 1000;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    sleep_checking(ctx, local, until.min(ctx.send_end)).await;
    Instant::now() < ctx.send_end && !ctx.slot_stopped(local)
}

/// Which slot a session is of, and the loop it may run in.
#[derive(Clone, Copy)]
struct Slot<'a> {
    local: u64,
    global: u64,
    steady: Option<&'a Inbox>,
}

/// One connected session, from the profile's opening steps to the end.
async fn run_session(
    ctx: &RunCtx,
    Slot {
        local,
        global,
        steady: inbox,
    }: Slot<'_>,
    conn: connect::Conn,
    seq: &mut u64,
    start: &mut Option<Instant>,
    carry: &mut VecDeque<Pending>,
) -> End {
    // Boxed, as the task path below: the slot's task keeps no room for
    // steps that run once per connection while its session is in the loop.
    let opened = Box::pin(open_session(ctx, (local, global), conn, carry)).await;
    let Some((rx, tx, carried)) = opened else {
        return End::Dropped;
    };
    // Fan-out: a subscriber is owed every message published from now on.
    let group = ctx.group(global).filter(|_| ctx.is_subscriber(global));
    let received = group.map(|g| Received::new(g.join()));
    let state = ConnState {
        pending: carried,
        cap: ctx.pending_cap,
        sent_upto: *seq,
        received,
    };
    let first = *start.get_or_insert_with(|| Instant::now() + ctx.phase(global));
    let (rx, tx, state) = match inbox.filter(|_| steady::takes(ctx, global)) {
        None => (rx, tx, state),
        Some(inbox) => {
            let ids = (local, global);
            match steady::run(inbox, ctx, ids, rx, tx, state, *seq, first).await {
                Outcome::Kept(rx, tx, state) => (rx, tx, state),
                Outcome::Ended(mut r) => {
                    *seq = r.seq;
                    settle_leftovers(ctx, &mut r.state, r.end, carry);
                    return r.end;
                }
            }
        }
    };
    // Boxed: a session in the loop leaves its slot's task parked, and that
    // task should not keep room for the task path's futures all the while.
    let ids = (local, global);
    let end = Box::pin(run_task(ctx, ids, (rx, tx), state, seq, first, carry)).await;
    if let Some(g) = group {
        g.leave();
    }
    end
}

/// The profile's opening steps, then a request for the rest of each answer
/// a drop cut off (--reconnect, a profile with [resume]); `None` when the
/// connection failed meanwhile (counted, and `carry` kept for the next).
async fn open_session(
    ctx: &RunCtx,
    (local, global): (u64, u64),
    conn: connect::Conn,
    carry: &mut VecDeque<Pending>,
) -> Option<(WsRead, WsWrite, VecDeque<Pending>)> {
    let connect::Conn { mut rx, mut tx, .. } = conn;
    let session = ctx.session_id(global);
    let vars = ctx.conn_values(global, &session);
    match opening::open(&ctx.profile, &mut rx, &mut tx, &vars, ctx.wait_limit()).await {
        Ok(token) => {
            if let Some(t) = token {
                ctx.set_token(local, &t);
            }
        }
        Err(e) => {
            ctx.fail(ErrorKind::Welcome, &e);
            return None;
        }
    }
    // Answers a drop cut off: ask for the rest of each (--reconnect, a
    // profile with [resume]).
    let carried = std::mem::take(carry);
    if let Some(r) = &ctx.profile.resume {
        let mut text = String::new();
        for p in &carried {
            let v = Values {
                seq: p.seq,
                last_index: i64::from(p.next_index) - 1,
                ..vars
            };
            r.send.render_into(&mut text, &v);
            let mut buf = std::mem::take(&mut text).into_bytes();
            let res = tx
                .write_frame(Frame::text(Payload::BorrowedMut(&mut buf)))
                .await;
            text = String::from_utf8(buf).unwrap_or_default();
            if let Err(e) = res {
                ctx.fail(ErrorKind::Write, &format!("write failed: {e}"));
                *carry = carried;
                return None;
            }
        }
    }
    Some((rx, tx, carried))
}

/// A session as a task: its receiver and sender side by side.
async fn run_task(
    ctx: &RunCtx,
    (local, global): (u64, u64),
    (rx, tx): (WsRead, WsWrite),
    state: ConnState,
    seq: &mut u64,
    first: Instant,
    carry: &mut VecDeque<Pending>,
) -> End {
    let session = Session {
        ctx,
        local,
        global,
        tx: tokio::sync::Mutex::new(tx),
        state: Mutex::new(state),
        replied: Notify::new(),
        closing: ctx.closing.enter(),
    };
    // `biased`: poll in a fixed order, without select!'s per-poll random draw.
    let end = tokio::select! {
        biased;
        e = recv_loop(&session, rx) => e,
        e = send_loop(&session, seq, first) => e,
    };
    settle_leftovers(ctx, &mut lock(&session.state), end, carry);
    end
}

/// Every message still pending when a session ends lands in exactly one
/// bucket, or is carried to the next connection to be recovered.
fn settle_leftovers(ctx: &RunCtx, st: &mut ConnState, end: End, carry: &mut VecDeque<Pending>) {
    let now_us = ctx.us(Instant::now());
    if end == End::Dropped && ctx.cfg.reconnect && ctx.profile.resume.is_some() {
        // Not lost yet: the next connection recovers them.
        for mut p in st.pending.drain(..) {
            if p.dropped_us == 0 {
                p.dropped_us = now_us.max(1);
                p.resume_from = u32::MAX;
            }
            carry.push_back(p);
        }
        return;
    }
    let timeout_us = ctx.timeout_us();
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
}
