//! The node's top-level loops: accept, cleanup, take-over, sample, and the
//! shutdown sequence.
//!
//! Shutdown is a broadcast, then a wait: the `watch` flag tells every
//! connection to close with 1001; each connection task holds a clone of an
//! `mpsc::Sender<()>`, and the node waits until every clone is dropped (or
//! the shutdown timeout passes). Nothing below this module calls back into
//! it: handlers get the shared [`Node`] and nothing else.

use crate::broker::Broker;
use crate::config::{Config, Io};
use crate::handshakes::Handshakes;
use crate::metrics::Metrics;
use crate::routes;
use crate::state::Node;
use crate::ws::steady;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

/// How often a node looks for answers whose generating node died (at most
/// `--cleanup-interval`). A client that recovers such an answer has it taken
/// over at once; this pass finishes the answers nobody asks about yet, such
/// as those followed by tabs on other nodes.
const TAKEOVER_EVERY: Duration = Duration::from_secs(1);

/// HTTP connections (not yet upgraded) accepted beyond the WebSocket limit,
/// for health checks and for answering refused upgrades with 503.
const HTTP_HEADROOM: usize = 256;

pub async fn serve<B: Broker>(
    listener: TcpListener,
    broker: Arc<B>,
    cfg: Config,
    node_id: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let metrics = Arc::new(Metrics::default());
    let loops = (cfg.io == Io::Epoll).then(|| {
        let cx = steady::LoopCtx {
            metrics: metrics.clone(),
            shutdown: shutdown_rx.clone(),
            node_id: Arc::from(node_id.as_str()),
            node_id_json: crate::frames::json_string(&node_id).into(),
            ping_interval: cfg.ping_interval,
            idle_timeout: cfg.idle_timeout,
        };
        // One loop per core (or per `--threads`), each on a thread of its own.
        let n = cfg.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let n = n.max(1);
        let placement = crate::placement::Placement::new(cfg.pin.then_some(0), n);
        steady::start(&cx, n, placement)
    });
    let node = Arc::new(Node {
        conn_slots: Arc::new(Semaphore::new(cfg.max_connections)),
        handshakes: Handshakes::new(cfg.max_handshakes),
        stream_slots: Arc::new(Semaphore::new(cfg.max_streams)),
        node_id: node_id.into(),
        broker,
        metrics,
        loops,
        shutdown: shutdown_rx,
        alive: alive_tx,
        started: Instant::now(),
        next_conn_id: AtomicU64::new(1),
        next_message_seq: AtomicU64::new(1),
        cfg,
    });
    let http_slots = Arc::new(Semaphore::new(http_slots(&node.cfg)));

    let background = {
        let node = node.clone();
        async move {
            tokio::join!(
                node.metrics.sampler(),
                cleanup_loop(&node),
                takeover_loop(&node)
            );
        }
    };
    let accept = accept_loop(listener, node.clone(), http_slots);
    tokio::select! {
        _ = shutdown => {}
        _ = accept => {}
        _ = background => {}
    }

    tracing::info!(node_id = %node.node_id, "shutting down: closing clients with 1001");
    let _ = shutdown_tx.send(true);
    let timeout = node.cfg.shutdown_timeout;
    let broker = node.broker.clone();
    let node_id = node.node_id.clone();
    // Drop our own handle so only connection tasks keep the channel open.
    drop(node);
    if tokio::time::timeout(timeout, alive_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(node_id = %node_id, "shutdown timeout: some connections did not close in time");
    }
    // Give up what this node registered, so other nodes need not wait for TTLs.
    let _ = tokio::time::timeout(Duration::from_secs(2), broker.close()).await;
}

/// HTTP connections not yet upgraded (a permit is held from accept to the
/// upgrade): at most `--max-connections` + [`HTTP_HEADROOM`], and at most
/// twice `--max-handshakes`. Of those, `--max-handshakes` may wait for a
/// request head; the others are being answered, or were closed to make
/// room and are not yet dropped. Under a slowloris that churns (the node
/// closing the oldest waiting one for each newcomer) this bounds the
/// connections in flight too, so a starved runtime delays accepts instead
/// of piling up closed connections' memory.
fn http_slots(cfg: &Config) -> usize {
    cfg.max_connections
        .saturating_add(HTTP_HEADROOM)
        .min(cfg.max_handshakes.saturating_mul(2))
}

async fn accept_loop<B: Broker>(
    listener: TcpListener,
    node: Arc<Node<B>>,
    http_slots: Arc<Semaphore>,
) {
    let mut last_error_log: Option<Instant> = None;
    loop {
        // Backpressure before accept: past the limit, clients wait in the backlog.
        let Ok(permit) = http_slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                if let Some(bytes) = node.cfg.send_buffer {
                    // A reader that stops reading then fills its outbound
                    // queue (closed with 1013) instead of the kernel's
                    // autotuned buffer (up to tcp_wmem's 4 MiB) taking it all.
                    let _ = socket2::SockRef::from(&stream).set_send_buffer_size(bytes);
                }
                let node = node.clone();
                tokio::spawn(async move {
                    routes::serve_connection(node, stream, peer).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: log once a second, back off, keep serving.
                if last_error_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "accept failed");
                    last_error_log = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn cleanup_loop<B: Broker>(node: &Node<B>) {
    let mut tick = tokio::time::interval(node.cfg.cleanup_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if crate::fault::skips_cleanup(node.cfg.test_fault) {
            continue;
        }
        let report = node.broker.cleanup().await;
        node.metrics
            .sessions_cleaned
            .fetch_add(report.sessions as u64, std::sync::atomic::Ordering::Relaxed);
        if report.sessions + report.streams > 0 {
            tracing::info!(
                node_id = %node.node_id,
                sessions = report.sessions,
                streams = report.streams,
                "Cleaning up: removed stale sessions and expired streams"
            );
        }
    }
}

async fn takeover_loop<B: Broker>(node: &Arc<Node<B>>) {
    let mut tick = tokio::time::interval(TAKEOVER_EVERY.min(node.cfg.cleanup_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        crate::stream::adopt_orphans(node).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_connections_before_their_upgrade_are_bounded_by_both_limits() {
        let cfg = |args: &[&str]| {
            let argv = std::iter::once(&"wsnode").chain(args);
            <crate::config::Opts as clap::Parser>::parse_from(argv)
                .into_config()
                .unwrap()
        };
        // 50,000 + 256 by --max-connections, 2 x 1024 by --max-handshakes.
        assert_eq!(http_slots(&cfg(&[])), 2048);
        assert_eq!(http_slots(&cfg(&["--max-connections", "2"])), 258);
        assert_eq!(http_slots(&cfg(&["--max-handshakes", "5000"])), 10_000);
    }
}
