//! An answer being generated: one task per stream, writing the chunks a
//! [`Generator`] produces through the broker, under the stream's lease.
//!
//! The generator is not tied to the connection that asked: like a real model
//! behind a chat service, it keeps producing when the client drops, so the
//! client can reconnect and recover the rest. Nor is it tied to the node
//! that started it: when that node dies, another takes the stream over
//! ([`adopt`], [`adopt_orphans`]) and continues from the next index, and a
//! node that shuts down hands its streams over instead of ending them.

use crate::broker::{AnswerPlan, Broker, BrokerError, StreamLease, Takeover};
use crate::config::RENEW_EVERY;
use crate::fault::{crashes_on_takeover, drops_chunk};
use crate::frames;
use crate::generator::{Generator, Simulated, prefix_of};
use crate::metrics::inc;
use crate::state::{Node, shutdown_requested};
use futures_util::StreamExt;
use protocol::StreamStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// Streams one node takes over in one periodic pass at most (besides its
/// free `--max-streams` slots), so a dead node's thousands of answers are
/// spread over the survivors' passes rather than all claimed by the first.
pub const MAX_ADOPT_PER_PASS: usize = 256;

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

/// Start generating a new answer (the node opened its stream).
pub fn start<B: Broker>(
    node: &Arc<Node<B>>,
    lease: StreamLease,
    plan: AnswerPlan,
    slot: OwnedSemaphorePermit,
    active: ActiveGuard,
) {
    inc(&node.metrics.streams_started);
    tokio::spawn(generate(
        node.clone(),
        Simulated,
        lease,
        plan,
        0,
        slot,
        active,
    ));
}

/// Continue `message_id` here if its generator died (a client asked to
/// recover it). Nothing happens when it lives, is finished, or this node
/// has no free stream slot (another node, or a later pass, continues it).
pub async fn adopt<B: Broker>(node: &Arc<Node<B>>, message_id: &str) {
    if node.is_shutting_down() {
        return;
    }
    let Ok(slot) = node.stream_slots.clone().try_acquire_owned() else {
        return;
    };
    match node.broker.take_over(message_id).await {
        Ok(Some(t)) => resume(node, t, slot),
        Ok(None) => {}
        Err(e) => tracing::debug!(message_id, error = %e, "take-over not possible now"),
    }
}

/// One periodic pass: take over and continue streams whose generator died,
/// as many as this node has free slots for (at most [`MAX_ADOPT_PER_PASS`]).
pub async fn adopt_orphans<B: Broker>(node: &Arc<Node<B>>) {
    let free = node
        .stream_slots
        .available_permits()
        .min(MAX_ADOPT_PER_PASS);
    if free == 0 || node.is_shutting_down() {
        return;
    }
    for t in node.broker.take_over_orphans(free).await {
        match node.stream_slots.clone().try_acquire_owned() {
            Ok(slot) => resume(node, t, slot),
            // Slots taken by new chats meanwhile: let another node have it.
            Err(_) => {
                node.broker.hand_over(&t.lease).await;
            }
        }
    }
}

fn resume<B: Broker>(node: &Arc<Node<B>>, t: Takeover, slot: OwnedSemaphorePermit) {
    if crashes_on_takeover(node.cfg.test_fault) {
        tracing::error!(message_id = %t.lease.message_id, "test fault crash-on-takeover: aborting");
        std::process::abort();
    }
    inc(&node.metrics.streams_taken_over);
    let active = ActiveGuard::new(Arc::default());
    tokio::spawn(generate(
        node.clone(),
        Simulated,
        t.lease,
        t.plan,
        t.next,
        slot,
        active,
    ));
}

/// How a generator's run ended.
enum Outcome {
    /// The answer is complete (`Done`) or cannot go on here or anywhere
    /// (`Interrupted`: the generator or the broker failed).
    Finish(StreamStatus),
    /// This node is shutting down: hand the stream to another node.
    Shutdown,
    /// Another node holds the stream now (a newer fencing token): stop quietly.
    Lost,
}

/// Write chunks `from..plan.chunks` of `lease`'s stream, then end it.
async fn generate<B: Broker, G: Generator>(
    node: Arc<Node<B>>,
    generator: G,
    lease: StreamLease,
    plan: AnswerPlan,
    from: u32,
    _slot: OwnedSemaphorePermit,
    _active: ActiveGuard,
) {
    let m = &node.metrics;
    inc(&m.streams_active);
    let mid = &lease.message_id;
    let prefix = if from > 0 && generator.wants_prefix() {
        match node.broker.read_stream(&lease.owner, mid, 0).await {
            Ok(replay) => prefix_of(&replay),
            Err(e) => {
                tracing::warn!(message_id = %mid, error = %e, "answer so far unreadable: handing the stream back");
                node.broker.hand_over(&lease).await;
                m.streams_active.fetch_sub(1, Relaxed);
                return;
            }
        }
    } else {
        String::new()
    };
    let mut chunks = generator.resume(mid, &plan, from, prefix);
    let mut shutdown = node.shutdown.clone();
    let (mut index, mut written) = (from, from);
    // Appending renews the lease; long pauses between chunks renew it here.
    let mut renew_at = Instant::now() + RENEW_EVERY;
    let outcome = loop {
        let next = tokio::select! {
            next = chunks.next() => next,
            _ = tokio::time::sleep_until(renew_at) => {
                renew_at = Instant::now() + RENEW_EVERY;
                match node.broker.renew(&lease).await {
                    Ok(()) => continue,
                    Err(BrokerError::Fenced) => break Outcome::Lost,
                    Err(e) => {
                        tracing::warn!(message_id = %mid, error = %e, "stream interrupted: lease not renewed");
                        break Outcome::Finish(StreamStatus::Interrupted);
                    }
                }
            }
            _ = shutdown_requested(&mut shutdown) => break Outcome::Shutdown,
        };
        let text = match next {
            None => break Outcome::Finish(StreamStatus::Done),
            Some(Ok(text)) => text,
            Some(Err(e)) => {
                tracing::warn!(message_id = %mid, index, error = %e, "stream interrupted");
                break Outcome::Finish(StreamStatus::Interrupted);
            }
        };
        let i = index;
        index += 1;
        if drops_chunk(node.cfg.test_fault, i) {
            continue;
        }
        let frame = frames::chunk(mid, i, &text);
        match node.broker.append_chunk(&lease, i, frame).await {
            Ok(()) => {
                inc(&m.chunks_published);
                written += 1;
                renew_at = Instant::now() + RENEW_EVERY;
            }
            Err(BrokerError::Fenced) => break Outcome::Lost,
            Err(e) => {
                tracing::warn!(message_id = %mid, index = i, error = %e, "stream interrupted");
                break Outcome::Finish(StreamStatus::Interrupted);
            }
        }
    };
    let status = match outcome {
        Outcome::Finish(status) => Some(status),
        Outcome::Lost => {
            tracing::warn!(message_id = %mid, fence = lease.fence, "stream taken over by another node: stopped here");
            None
        }
        Outcome::Shutdown if node.broker.hand_over(&lease).await => {
            tracing::info!(message_id = %mid, next = written, "Stream handed over: another node continues it");
            None
        }
        Outcome::Shutdown => Some(StreamStatus::Interrupted),
    };
    if let Some(status) = status {
        let frame = frames::end(mid, status, written);
        if let Err(e) = node.broker.finish_stream(&lease, status, frame).await {
            tracing::warn!(message_id = %mid, error = %e, "could not finish stream");
        }
    }
    m.streams_active.fetch_sub(1, Relaxed);
}
