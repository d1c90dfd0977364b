//! A session's sender: follows the slot's fixed schedule (open model), or
//! waits for each reply first (`--wait-reply`), then drains.
//!
//! Message `k` is due at `first + k * interval` whatever happened to earlier
//! ones, and latency is measured from that intended time (coordinated-
//! omission correction) as well as from the actual send time.

use crate::engine::ctx::RunCtx;
use crate::engine::pacer;
use crate::engine::pending::{ConnState, Pending, expire, lock, oldest_pending};
use crate::engine::session::{CHECK_EVERY, CLOSE_WAIT, End, Session, sleep_checking};
use crate::engine::stats::ErrorKind;
use crate::placeholders::Values;
use fastwebsockets::{Frame, Payload};
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Send on schedule until the run or the slot ends; `seq` is the slot's
/// next sequence number (it carries over reconnects).
///
/// Not `async fn`, and nothing but the buffers held across the write: this
/// future is part of every connection's task (a slot's task is 2.5 KiB),
/// and an async fn keeps its arguments twice.
#[allow(clippy::manual_async_fn)]
pub fn send_loop<'a>(
    s: &'a Session<'_>,
    seq: &'a mut u64,
    first: Instant,
) -> impl Future<Output = End> + 'a {
    async move {
        let ctx = s.ctx;
        let mut buf: Vec<u8> = Vec::new();
        let mut text = String::new();
        let session = ctx.session_id(s.global);
        let binary = ctx.profile.binary;
        if ctx.is_subscriber(s.global) {
            // Fan-out: a subscriber only receives, until every delivery of the
            // run had its --timeout to arrive (past the end of sending, when the
            // controller stops every slot), or a ramp-down or Ctrl-C stops it.
            loop {
                let now = Instant::now();
                if ctx.is_aborted() || now >= ctx.hard_end {
                    break;
                }
                if now < ctx.send_end && ctx.slot_stopped(s.local) {
                    break;
                }
                tokio::time::sleep_until((now + CHECK_EVERY).min(ctx.hard_end).into()).await;
            }
            return drain(s, false).await;
        }
        let fanout = ctx.cfg.group_size.is_some();
        let Some(interval) = ctx.interval else {
            let stopped = sleep_checking(ctx, s.local, ctx.send_end).await;
            return drain(s, stopped).await;
        };
        loop {
            let intended = intended_at(first, interval, *seq);
            if intended >= ctx.send_end {
                return drain(s, false).await;
            }
            if ctx.cfg.wait_reply
                && let Some(stopped) = wait_for_reply(s).await
            {
                return drain(s, stopped).await;
            }
            if sleep_checking(ctx, s.local, intended).await {
                return drain(s, true).await;
            }
            let now = Instant::now();
            if now >= ctx.send_end {
                return drain(s, false).await;
            }
            let (intended_us, sent_us) = (ctx.us(intended), ctx.us(now));
            let n = *seq;
            render(
                ctx,
                s.global,
                &session,
                n,
                (intended_us, sent_us),
                &mut text,
                &mut buf,
            );
            // Fan-out: a published message is one delivery per subscriber ready
            // now; deliveries are settled by the subscribers, not here.
            let deliveries = match ctx.group(s.global) {
                Some(g) if fanout => g.publish(n),
                _ => 1,
            };
            let full = !fanout && book(ctx, &mut lock(&s.state), n, intended_us, sent_us);
            count_sent(ctx, deliveries, full, intended_us, sent_us);
            *seq = n + 1;
            let frame = if binary {
                Frame::binary(Payload::BorrowedMut(&mut buf))
            } else {
                Frame::text(Payload::BorrowedMut(&mut buf))
            };
            // Pinned here, borrowed by `write_or_stop`: the task keeps one
            // copy of the write future, not one per await.
            let write = std::pin::pin!(async { s.tx.lock().await.write_frame(frame).await });
            let Some(res) = write_or_stop(s, write).await else {
                // The server stopped taking our bytes, and sending ended
                // meanwhile: what is outstanding drains like any reply.
                return drain(s, ctx.slot_stopped(s.local) || ctx.is_aborted()).await;
            };
            if let Err(e) = res {
                ctx.fail(ErrorKind::Write, &format!("write failed: {e}"));
                return End::Dropped;
            }
        }
    }
}

/// A paced write, given up (`None`) if sending ends or the slot is stopped
/// before the server takes it: a server that stops reading must not hold
/// the session past the run (its messages would never be accounted for).
/// The frame may then be half written; the connection only closes after.
async fn write_or_stop<R>(
    s: &Session<'_>,
    mut write: Pin<&mut impl Future<Output = R>>,
) -> Option<R> {
    let ctx = s.ctx;
    loop {
        let until = (Instant::now() + CHECK_EVERY).min(ctx.send_end);
        tokio::select! {
            biased;
            r = write.as_mut() => return Some(r),
            _ = pacer::sleep_until(until) => {}
        }
        if ctx.is_aborted() || ctx.slot_stopped(s.local) || Instant::now() >= ctx.send_end {
            return None;
        }
    }
}

/// When message `seq` of a connection is due: `first + seq * interval`,
/// whatever happened to the earlier ones (the open model). Also the epoll
/// loop's (`engine::steady`).
pub(crate) fn intended_at(first: Instant, interval: Duration, seq: u64) -> Instant {
    first + Duration::from_nanos((interval.as_nanos() as u64).saturating_mul(seq))
}

/// Message `n`'s bytes, intended at and sent at the given run-relative
/// microseconds, into `buf` (through `text`, both reused per connection).
/// Also the epoll loop's (`engine::steady`).
pub(crate) fn render(
    ctx: &RunCtx,
    global: u64,
    session: &str,
    n: u64,
    times: (u64, u64),
    text: &mut String,
    buf: &mut Vec<u8>,
) {
    render_text(ctx, global, session, n, times, text);
    buf.clear();
    buf.extend_from_slice(text.as_bytes());
}

/// Message `n`'s text into `text` (what [`render`] copies into bytes; the
/// epoll loop frames the text's own bytes instead).
pub(crate) fn render_text(
    ctx: &RunCtx,
    global: u64,
    session: &str,
    n: u64,
    (intended_us, sent_us): (u64, u64),
    text: &mut String,
) {
    let vars = Values {
        seq: n,
        ts_us: intended_us,
        sent_us,
        payload: &ctx.filler,
        ..ctx.conn_values(global, session)
    };
    ctx.profile.message.render_into(text, &vars);
}

/// Track message `n` as waiting for its reply (expiring what timed out
/// first); true when the bounded queue was full and its oldest was given up.
pub(crate) fn book(
    ctx: &RunCtx,
    st: &mut ConnState,
    n: u64,
    intended_us: u64,
    sent_us: u64,
) -> bool {
    expire(ctx, st, sent_us);
    st.push(Pending::sent(n, intended_us, sent_us))
}

/// Count a message sent: its deliveries, the give-up `book` reported, and
/// how late it left.
pub(crate) fn count_sent(
    ctx: &RunCtx,
    deliveries: u64,
    full: bool,
    intended_us: u64,
    sent_us: u64,
) {
    ctx.stats.with(|r| {
        r.counts.sent += deliveries;
        if full {
            // Bounded bookkeeping: the oldest was given up as timed out.
            r.counts.timeouts += 1;
        }
        r.lag(sent_us.saturating_sub(intended_us));
    });
}

/// Closed loop: wait until the previous message was answered (or timed
/// out). `Some(stopped)` when the run or the slot ended meanwhile.
async fn wait_for_reply(s: &Session<'_>) -> Option<bool> {
    let ctx = s.ctx;
    loop {
        let now = Instant::now();
        let oldest = oldest_pending(ctx, &s.state, now)?;
        if ctx.slot_stopped(s.local) || now >= ctx.send_end {
            return Some(ctx.slot_stopped(s.local));
        }
        let expiry = ctx.at(oldest) + ctx.cfg.timeout;
        let wake = expiry.min(now + CHECK_EVERY).min(ctx.send_end);
        tokio::select! {
            _ = s.replied.notified() => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// Stop sending, wait (bounded by --timeout) for outstanding replies, close:
/// at the end of sending, only once every session has drained (`closing`).
pub async fn drain(s: &Session<'_>, stopped: bool) -> End {
    let ctx = s.ctx;
    let now = Instant::now();
    let deadline = ctx.drain_deadline(now, stopped);
    loop {
        let now = Instant::now();
        let Some(oldest) = oldest_pending(ctx, &s.state, now) else {
            break;
        };
        if now >= deadline || ctx.is_aborted() {
            break;
        }
        let wake = (ctx.at(oldest) + ctx.cfg.timeout)
            .min(deadline)
            .min(now + CHECK_EVERY);
        tokio::select! {
            _ = s.replied.notified() => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    if stopped || ctx.is_aborted() {
        s.closing.leave();
    } else {
        s.closing.leave_and_wait(deadline).await;
    }
    let close = Frame::close(protocol::close::NORMAL, b"");
    let _ = s.write_rare(close, Some(CLOSE_WAIT)).await;
    End::Finished
}
