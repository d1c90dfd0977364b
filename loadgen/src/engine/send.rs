//! A session's sender: follows the slot's fixed schedule (open model), or
//! waits for each reply first (`--wait-reply`), then drains.
//!
//! Message `k` is due at `first + k * interval` whatever happened to earlier
//! ones, and latency is measured from that intended time (coordinated-
//! omission correction) as well as from the actual send time.

use crate::engine::pending::{Pending, expire, lock, oldest_pending};
use crate::engine::session::{CHECK_EVERY, CLOSE_WAIT, End, Session, sleep_checking};
use crate::engine::stats::{ErrorKind, record};
use crate::placeholders::Values;
use fastwebsockets::{Frame, Payload};
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
        let interval_ns = interval.as_nanos() as u64;
        loop {
            let intended = first + Duration::from_nanos(interval_ns.saturating_mul(*seq));
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
            {
                // Scoped: the values are not held across the write below.
                let vars = Values {
                    seq: n,
                    ts_us: intended_us,
                    sent_us,
                    payload: &ctx.filler,
                    ..ctx.conn_values(s.global, &session)
                };
                ctx.profile.message.render_into(&mut text, &vars);
            }
            buf.clear();
            buf.extend_from_slice(text.as_bytes());
            // Fan-out: a published message is one delivery per subscriber ready
            // now; deliveries are settled by the subscribers, not here.
            let deliveries = match ctx.group(s.global) {
                Some(g) if fanout => g.publish(n),
                _ => 1,
            };
            let full = !fanout && {
                let mut st = lock(&s.state);
                expire(ctx, &mut st, sent_us);
                st.push(Pending::sent(n, intended_us, sent_us))
            };
            ctx.stats.with(|r| {
                r.counts.sent += deliveries;
                if full {
                    // Bounded bookkeeping: the oldest was given up as timed out.
                    r.counts.timeouts += 1;
                }
                record(&mut r.send_lag, sent_us.saturating_sub(intended_us));
            });
            *seq = n + 1;
            let frame = if binary {
                Frame::binary(Payload::BorrowedMut(&mut buf))
            } else {
                Frame::text(Payload::BorrowedMut(&mut buf))
            };
            let res = s.tx.lock().await.write_frame(frame).await;
            if let Err(e) = res {
                ctx.fail(ErrorKind::Write, &format!("write failed: {e}"));
                return End::Dropped;
            }
        }
    }
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
    let deadline = if ctx.is_aborted() {
        now
    } else if stopped {
        now + ctx.cfg.timeout
    } else {
        ctx.hard_end.max(now).min(now + ctx.cfg.timeout)
    };
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
