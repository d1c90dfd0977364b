//! The simulated AI answer: one task per stream, appending deterministic
//! chunks through the broker at the planned pace.
//!
//! The generator is not tied to the connection that asked: like a real model
//! behind a chat service, it keeps producing when the client drops, so the
//! client can reconnect and recover the rest.

use crate::broker::{Broker, StreamLease};
use crate::config::RENEW_EVERY;
use crate::fault::drops_chunk;
use crate::frames;
use crate::metrics::inc;
use crate::state::{Node, shutdown_requested};
use protocol::StreamStatus;
use protocol::chunk::chunk_text;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// Shape of one answer.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub chunks: u32,
    pub interval: Duration,
    pub chunk_size: usize,
}

/// Counts a connection's answers in progress while alive.
pub struct ActiveGuard(Arc<AtomicUsize>);

impl ActiveGuard {
    pub fn new(counter: Arc<AtomicUsize>) -> ActiveGuard {
        counter.fetch_add(1, Relaxed);
        ActiveGuard(counter)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

pub async fn generate<B: Broker>(
    node: Arc<Node<B>>,
    lease: StreamLease,
    plan: Plan,
    _slot: OwnedSemaphorePermit,
    _active: ActiveGuard,
) {
    let m = &node.metrics;
    inc(&m.streams_started);
    inc(&m.streams_active);
    let mut shutdown = node.shutdown.clone();
    let mut status = StreamStatus::Done;
    let mut sent = 0;
    'chunks: for index in 0..plan.chunks {
        if plan.interval.is_zero() {
            tokio::task::yield_now().await;
        } else {
            // Long waits renew the lease (appending renews it otherwise).
            let due = Instant::now() + plan.interval;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.min(Instant::now() + RENEW_EVERY)) => {}
                    _ = shutdown_requested(&mut shutdown) => {
                        status = StreamStatus::Interrupted;
                        break 'chunks;
                    }
                }
                if Instant::now() >= due {
                    break;
                }
                if let Err(e) = node.broker.renew(&lease).await {
                    tracing::warn!(message_id = %lease.message_id, error = %e, "stream interrupted: lease not renewed");
                    status = StreamStatus::Interrupted;
                    break 'chunks;
                }
            }
        }
        if drops_chunk(node.cfg.test_fault, index) {
            continue;
        }
        let text = chunk_text(&lease.message_id, index, plan.chunk_size);
        let frame = frames::chunk(&lease.message_id, index, &text);
        if let Err(e) = node.broker.append_chunk(&lease, index, frame).await {
            tracing::warn!(message_id = %lease.message_id, index, error = %e, "stream interrupted");
            status = StreamStatus::Interrupted;
            break;
        }
        inc(&m.chunks_published);
        sent += 1;
    }
    let frame = frames::end(&lease.message_id, status, sent);
    if let Err(e) = node.broker.finish_stream(&lease, status, frame).await {
        tracing::warn!(message_id = %lease.message_id, error = %e, "could not finish stream");
    }
    m.streams_active.fetch_sub(1, Relaxed);
}
