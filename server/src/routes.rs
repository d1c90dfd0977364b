//! HTTP side of the node: one hyper connection per accepted socket, and the
//! routes: the browser chat page, health endpoints, Prometheus metrics, and
//! `/ws/chat`, which is handed to [`crate::ws`].
//!
//! A client that opens a TCP connection and sends nothing is dropped by
//! hyper's header read timeout; while it waits for a request head it is in
//! the node's `--max-handshakes` set, which closes the one waiting longest
//! when full (`handshakes`).

use crate::broker::{Broker, BrokerStatus};
use crate::handshakes::Slot;
use crate::metrics::get;
use crate::respond::{Body, error, json};
use crate::state::{Node, shutdown_requested};
use crate::ws;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use protocol::HealthStats;
use serde::Serialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::net::TcpStream;

/// The browser chat client (seed Test 1): one static page, no build step.
const CHAT_PAGE: &str = include_str!("../assets/chat.html");

fn chat_page() -> Response<Body> {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        )
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Full::new(Bytes::from_static(CHAT_PAGE.as_bytes())))
        .unwrap_or_default()
}

pub async fn serve_connection<B: Broker>(node: Arc<Node<B>>, stream: TcpStream, peer: SocketAddr) {
    let mut shutdown = node.shutdown.clone();
    let slot = Arc::new(Slot::default());
    wait_for_head(&node, &slot);
    let (svc_node, svc_slot) = (node.clone(), slot.clone());
    let svc = service_fn(move |req| {
        let (node, slot) = (svc_node.clone(), svc_slot.clone());
        async move {
            node.handshakes.done(&slot);
            let keep_alive = keeps_alive(&req);
            let response = route(&node, req, peer).await;
            if keep_alive && response.status() != StatusCode::SWITCHING_PROTOCOLS {
                // The connection now waits for its next request head.
                wait_for_head(&node, &slot);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(node.cfg.handshake_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        }
        _ = slot.evicted() => {
            tracing::debug!(%peer, "closed: waited longest for a request head with --max-handshakes waiting");
        }
        _ = shutdown_requested(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
    node.handshakes.done(&slot);
}

/// Whether hyper keeps the connection open after this request.
fn keeps_alive(req: &Request<Incoming>) -> bool {
    let close = req.headers().get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("close"))
    });
    req.version() == hyper::Version::HTTP_11 && !close
}

fn wait_for_head<B>(node: &Node<B>, slot: &Arc<Slot>) {
    let evicted = node.handshakes.wait(slot);
    node.metrics.handshakes_evicted.fetch_add(evicted, Relaxed);
}

async fn route<B: Broker>(
    node: &Arc<Node<B>>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "only GET is supported",
        );
    }
    match req.uri().path() {
        "/ws/chat" => ws::upgrade(node, req, peer).await,
        "/" | "/chat" => chat_page(),
        "/health" => json(
            StatusCode::OK,
            &Health {
                status: "UP",
                node_id: &node.node_id,
            },
        ),
        "/health/ready" => ready(node),
        "/health/distributed" => distributed(node),
        "/health/stats" => stats(node),
        "/metrics" => {
            let b = node.broker.status();
            let text = node
                .metrics
                .render(&node.node_id, &b, node.handshakes.len());
            Response::builder()
                .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
                .body(Full::new(Bytes::from(text)))
                .unwrap_or_default()
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    node_id: &'a str,
}

fn ready<B: Broker>(node: &Node<B>) -> Response<Body> {
    let b = node.broker.status();
    let (code, status, reason) = if node.is_shutting_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "DOWN",
            "shutting down".to_string(),
        )
    } else if !b.healthy {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "DOWN",
            format!("broker: {}", b.state),
        )
    } else if node.conn_slots.available_permits() == 0 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "FULL",
            "max connections reached".to_string(),
        )
    } else {
        (StatusCode::OK, "UP", "ready".to_string())
    };
    #[derive(Serialize)]
    struct Ready<'a> {
        status: &'static str,
        node_id: &'a str,
        reason: String,
    }
    json(
        code,
        &Ready {
            status,
            node_id: &node.node_id,
            reason,
        },
    )
}

fn distributed<B: Broker>(node: &Node<B>) -> Response<Body> {
    let b = node.broker.status();
    #[derive(Serialize)]
    struct Distributed<'a> {
        status: &'static str,
        node_id: &'a str,
        sessions: usize,
        connections: u64,
        broker: BrokerStatus,
    }
    let status = if b.healthy { "UP" } else { "DEGRADED" };
    json(
        StatusCode::OK,
        &Distributed {
            status,
            node_id: &node.node_id,
            sessions: b.sessions,
            connections: get(&node.metrics.connections),
            broker: b,
        },
    )
}

/// File descriptors this process holds (Linux); `None` elsewhere.
///
/// Since Linux 6.2 the size of /proc/self/fd is that count, read without
/// listing the directory: listing 10,000 entries at every poll of this
/// route cost the node about 1 % of a core under load (issue 12). Older
/// kernels say 0 there, and are counted entry by entry.
fn open_fds() -> Option<u64> {
    if let Ok(m) = std::fs::metadata("/proc/self/fd")
        && m.len() > 0
    {
        return Some(m.len());
    }
    listed_fds()
}

/// The entries of /proc/self/fd, less the listing's own descriptor.
fn listed_fds() -> Option<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    Some((dir.count() as u64).saturating_sub(1))
}

fn stats<B: Broker>(node: &Node<B>) -> Response<Body> {
    let m = &node.metrics;
    let s = m.sample();
    let connections = get(&m.connections);
    let baseline = m.rss_baseline();
    json(
        StatusCode::OK,
        &HealthStats {
            node_id: node.node_id.to_string(),
            pid: std::process::id(),
            uptime_secs: node.started.elapsed().as_secs_f64(),
            connections,
            connections_total: get(&m.connections_total),
            messages_in: get(&m.messages_in),
            messages_out: get(&m.messages_out),
            msgs_in_per_sec: s.msgs_in_per_sec,
            msgs_out_per_sec: s.msgs_out_per_sec,
            streams_active: get(&m.streams_active),
            cpu_pct: s.cpu_pct,
            rss_bytes: s.rss_bytes,
            rss_baseline_bytes: baseline,
            bytes_per_connection: (connections > 0)
                .then(|| s.rss_bytes.saturating_sub(baseline) / connections),
            open_fds: open_fds(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::{listed_fds, open_fds};

    #[test]
    #[cfg(target_os = "linux")]
    fn open_fds_follows_the_descriptors_held() {
        // Other tests of this process open and close descriptors meanwhile:
        // the bounds leave them room, not 64 descriptors' worth.
        let before = open_fds().expect("a count on Linux");
        let held: Vec<_> = (0..64)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let during = open_fds().unwrap();
        let listed = listed_fds().unwrap();
        drop(held);
        let after = open_fds().unwrap();
        assert!(during >= before + 48, "{before} then {during}");
        assert!(
            during.abs_diff(listed) < 16,
            "{during} against {listed} listed"
        );
        assert!(after + 48 <= during, "{during} then {after}");
    }
}
