//! The local measuring backend: this process's share of the run, driven by
//! the controller, with the per-second collector beside it.

use crate::engine::collect::{SecondSink, collect};
use crate::engine::ctx::RunCtx;
use crate::engine::drive::drive;
use crate::engine::measured::Measured;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Run `ctx`'s share of the plan to its end (or Ctrl-C), feeding `sinks`
/// once a second.
pub async fn measure(ctx: Arc<RunCtx>, sinks: &mut [&mut dyn SecondSink]) -> Measured {
    let ctrl_c = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\nloadgen: interrupted; stopping (unanswered messages count as in flight)"
                );
                ctx.abort();
            }
        }
    });
    let started = Instant::now();
    let done = tokio::sync::Notify::new();
    let (abandoned, ()) = tokio::join!(
        async {
            let abandoned = drive(ctx.clone()).await;
            // A stored permit: the collector sees it even if not yet waiting.
            done.notify_one();
            abandoned
        },
        collect(&ctx, sinks, &done),
    );
    ctrl_c.abort();
    let mut total = ctx.stats.total();
    if ctx.cfg.group_size.is_some() {
        // Fan-out: every delivery owed and not received in time timed out.
        let c = &mut total.counts;
        let settled = c.received + c.timeouts + c.lost + c.in_flight;
        c.timeouts += c.sent.saturating_sub(settled);
    }
    Measured {
        total,
        peak_open: ctx.stats.peak_open.load(Ordering::Relaxed),
        notes: ctx.notes(),
        abandoned,
        elapsed: started.elapsed(),
        warnings: Vec::new(),
        parts: Vec::new(),
    }
}
