//! The controller: opens and closes connection slots to follow the plan,
//! then waits (bounded) for every slot to finish.
//!
//! It is the only place that decides how many connections exist. A slot
//! whose previous task still drains after a ramp-down is not started twice.

use crate::engine::ctx::RunCtx;
use crate::engine::slot;
use crate::engine::steady::Loops;
use crate::engine::threads::SlotThreads;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Controller tick: how often the wanted connection count is recomputed.
const TICK: Duration = Duration::from_millis(10);
/// Longest wait for slot tasks beyond the plan's end + timeout.
const FINISH_GRACE: Duration = Duration::from_secs(3);

/// Open and close slots to follow the plan, then wait for all of them.
/// Returns how many slot tasks had to be abandoned (0 when all finished).
pub async fn drive(ctx: Arc<RunCtx>) -> usize {
    // As many slot threads as this runtime has workers (`--threads`, or a
    // worker process's share of it).
    let n = tokio::runtime::Handle::current().metrics().num_workers();
    // Pinned, each of a machine's worker processes starts on the CPU after
    // the previous one's last.
    let first = ctx.share.index as usize * n;
    let threads = SlotThreads::start(n, ctx.cfg.pin.then_some(first));
    let mut set = JoinSet::new();
    // An epoll loop per slot thread, each a thread of its own (`--io
    // epoll`): sessions move there after their handshake.
    let mut loop_set = JoinSet::new();
    let loops = Loops::start(&ctx, &threads, &mut loop_set);
    let mut active = 0u64;
    let mut bucket = 0.0f64;
    let mut last = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= ctx.send_end || ctx.is_aborted() {
            break;
        }
        let want = ctx.share.of_count(ctx.cfg.plan.target_at(now - ctx.t0));
        ctx.set_wanted(want);
        active = active.min(want);
        let mut budget = match ctx.cfg.plan.connect_rate {
            Some(rate) => {
                let rate = rate / ctx.share.of as f64;
                bucket = (bucket + rate * (now - last).as_secs_f64()).min((rate * 0.05).max(1.0));
                bucket.floor() as u64
            }
            None => u64::MAX,
        };
        last = now;
        while active < want && budget > 0 {
            if !ctx.claim_slot(active) {
                // That slot's previous task is still draining after a ramp-down.
                break;
            }
            let inbox = loops.inbox(active);
            threads.spawn(&mut set, active, slot::run_slot(ctx.clone(), active, inbox));
            active += 1;
            budget -= 1;
            bucket -= 1.0;
        }
        while set.try_join_next().is_some() {}
    }
    ctx.set_wanted(0);
    // With every slot's inbox gone, each loop ends after its last session.
    drop(loops);
    let deadline = ctx.hard_end + FINISH_GRACE;
    loop {
        match tokio::time::timeout_at(deadline.into(), set.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let _ = tokio::time::timeout_at(deadline.into(), async {
                    while loop_set.join_next().await.is_some() {}
                })
                .await;
                loop_set.abort_all();
                return 0;
            }
            Err(_) => break,
        }
    }
    // Slots outlived every bound: tell them to stop, then give up on them.
    ctx.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while set.join_next().await.is_some() {}
    })
    .await;
    let left = set.len();
    set.abort_all();
    loop_set.abort_all();
    left
}
