//! The node's shared state: what every connection, request handler and
//! background loop of one node reads, in one struct behind an `Arc`.
//!
//! It lives apart from the loops that create it (the `accept` module) so
//! the HTTP, WebSocket and stream code can depend on it without depending on
//! each other or on the accept loop: this module imports nothing above it.

use crate::config::Config;
use crate::handshakes::Handshakes;
use crate::metrics::Metrics;
use crate::ws::steady::handoff::Loops;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use tokio::sync::{Semaphore, mpsc, watch};

/// Everything a connection or request handler needs, shared by reference.
pub struct Node<B> {
    pub cfg: Config,
    pub node_id: Arc<str>,
    pub broker: Arc<B>,
    /// Shared with the connection loops, which must not hold the node.
    pub metrics: Arc<Metrics>,
    /// The epoll loops' inboxes (`--io epoll`), `None` with `--io tasks`.
    pub loops: Option<Loops>,
    /// One permit per open WebSocket connection (`--max-connections`).
    pub conn_slots: Arc<Semaphore>,
    /// HTTP connections waiting for a request head (`--max-handshakes`).
    pub handshakes: Handshakes,
    /// One permit per answer being generated (`--max-streams`).
    pub stream_slots: Arc<Semaphore>,
    /// Flips to `true` once shutdown starts; every connection watches it.
    pub shutdown: watch::Receiver<bool>,
    /// Held (cloned) by every connection task; the accept loop's shutdown
    /// waits until every clone is dropped.
    pub alive: mpsc::Sender<()>,
    pub started: Instant,
    pub next_conn_id: AtomicU64,
    pub next_message_seq: AtomicU64,
}

impl<B> Node<B> {
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Resolves once shutdown was signalled (or the node is gone).
pub async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    // Dropping the guard here keeps callers' futures `Send`.
    let _ = rx.wait_for(|down| *down).await.map(|_| ());
}
