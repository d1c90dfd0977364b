//! Heartbeat, idle timeout, cleanup, health endpoints and graceful shutdown.

mod support;

use protocol::ServerMsg;
use serde_json::json;
use std::time::Duration;
use support::{RawWs, connect, metric, start};

#[tokio::test]
async fn silent_client_is_closed_by_idle_timeout_and_its_session_cleaned_up() {
    let node = start(&[
        "--ping-interval",
        "100ms",
        "--idle-timeout",
        "400ms",
        "--cleanup-interval",
        "100ms",
        "--session-ttl",
        "200ms",
    ])
    .await;
    // A raw client never answers pings: the node must close it.
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=ghost").await;
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    let code = loop {
        match raw.read_frame().await {
            Some((0x9, _)) => pings += 1,
            Some((0x8, p)) => break Some(u16::from_be_bytes([p[0], p[1]])),
            Some(_) => {}
            None => break None,
        }
    };
    assert_eq!(
        code,
        Some(1008),
        "idle timeout closes with policy violation"
    );
    assert!(pings >= 1, "the node pinged before giving up");
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "not before the timeout"
    );
    assert_eq!(metric(&node, "wsnode_idle_closes_total").await, 1.0);

    // Then the cleanup job removes the session once its TTL passed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let d = node.get_json("/health/distributed").await;
        if d["sessions"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session never cleaned: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(&node, "wsnode_sessions_cleaned_total").await >= 1.0);
    node.stop().await;
}

#[tokio::test]
async fn a_client_that_answers_pings_outlives_the_idle_timeout() {
    let node = start(&["--ping-interval", "100ms", "--idle-timeout", "300ms"]).await;
    let mut c = connect(&node.url("session_id=alive")).await;
    // Reading with no traffic: tungstenite answers each ping with a pong.
    let r = tokio::time::timeout(Duration::from_millis(1000), c.recv()).await;
    assert!(r.is_err(), "no data frame expected while idle");
    c.send_json(json!({"type":"echo","id":5,"ts":5})).await;
    assert!(matches!(c.recv().await, ServerMsg::Echo { id: 5, .. }));
    node.stop().await;
}

#[tokio::test]
async fn reconnecting_within_the_session_ttl_keeps_the_session() {
    let node = start(&["--cleanup-interval", "100ms", "--session-ttl", "5s"]).await;
    let c = connect(&node.url("session_id=back")).await;
    let token = c.token.clone();
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c = connect(&node.url(&format!("session_id=back&token={token}"))).await;
    assert_eq!(c.token, token);
    node.stop().await;
}

#[tokio::test]
async fn health_endpoints_report_the_node() {
    let node = start(&[]).await;
    let _a = connect(&node.url("session_id=h1")).await;
    let mut b = connect(&node.url("session_id=h2")).await;
    b.send_json(json!({"type":"echo","id":1,"ts":1})).await;
    b.recv().await;

    let h = node.get_json("/health").await;
    assert_eq!(h["status"], "UP");
    let r = node.get_json("/health/ready").await;
    assert_eq!(r["status"], "UP");
    let d = node.get_json("/health/distributed").await;
    assert_eq!(d["status"], "UP");
    assert_eq!(d["node_id"], "test-node");
    assert_eq!(d["sessions"], 2);
    assert_eq!(d["connections"], 2);
    assert_eq!(d["broker"]["kind"], "memory");
    let s = node.get_json("/health/stats").await;
    let typed: protocol::HealthStats = serde_json::from_value(s.clone()).expect("a HealthStats");
    assert_eq!(
        (typed.node_id.as_str(), typed.connections),
        ("test-node", 2)
    );
    assert_eq!(s["connections"], 2);
    assert_eq!(s["pid"], std::process::id());
    assert!(s["messages_in"].as_u64().unwrap() >= 1);
    assert!(
        s["messages_out"].as_u64().unwrap() >= 3,
        "two welcomes and an echo"
    );
    for key in [
        "msgs_in_per_sec",
        "cpu_pct",
        "rss_bytes",
        "uptime_secs",
        "bytes_per_connection",
    ] {
        assert!(s.get(key).is_some(), "{key} missing from {s}");
    }
    let (status, text) = node.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE wsnode_connections gauge"));
    assert_eq!(metric(&node, "wsnode_connections").await, 2.0);
    assert!(metric(&node, "wsnode_messages_in_total").await >= 1.0);
    node.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_clients_with_1001_and_returns() {
    let mut node = start(&["--shutdown-timeout", "3s"]).await;
    let addr = node.addr;
    let mut a = connect(&node.url("session_id=g1")).await;
    let mut b = connect(&node.url("session_id=g2")).await;
    b.send_json(support::chat("in-flight", 100, 20)).await;
    let started = tokio::time::Instant::now();
    node.signal_stop();
    assert_eq!(a.closed().await, Some(1001));
    assert_eq!(b.closed().await, Some(1001));
    tokio::time::timeout(Duration::from_secs(5), node.stop())
        .await
        .expect("run returns");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "clients left at once, no need for the timeout"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn client_ping_gets_a_pong_frame_with_the_same_payload() {
    let node = start(&[]).await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=pinger").await;
    let (op, _) = raw.read_frame().await.expect("welcome");
    assert_eq!(op, 0x1, "welcome is a text frame");
    raw.send_frame(0x89, b"heartbeat-7").await;
    let (op, payload) = raw.read_frame().await.expect("pong");
    assert_eq!(op, 0xA, "a pong frame, not text");
    assert_eq!(payload, b"heartbeat-7");
    node.stop().await;
}

#[tokio::test]
async fn a_frame_sent_right_behind_the_handshake_is_not_lost() {
    let node = start(&[]).await;
    let echo = support::encode_frame(0x81, br#"{"type":"echo","id":31,"ts":7}"#);
    let mut raw = RawWs::connect_pipelined(node.addr, "/ws/chat?session_id=eager", &echo).await;
    let (_, welcome) = raw.read_frame().await.expect("welcome");
    assert!(String::from_utf8_lossy(&welcome).contains(r#""type":"welcome""#));
    let (op, reply) = raw.read_frame().await.expect("echo reply");
    assert_eq!(op, 0x1);
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        (reply["type"].as_str(), reply["id"].as_u64()),
        (Some("echo"), Some(31))
    );
    node.stop().await;
}

/// The node listens with the longest accept queue the system allows, not
/// tokio's 1,024: in a storm of connects the clients past the node's accept
/// loop wait in that queue instead of losing their SYN (and a second each).
#[tokio::test]
async fn the_accept_queue_is_the_longest_the_system_allows() {
    let node = start(&[]).await;
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("Linux")
        .trim()
        .parse()
        .expect("a number");
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", node.addr.port())])
        .output()
        .expect("ss (iproute2) runs; scripts/test.sh installs it");
    let text = String::from_utf8_lossy(&out.stdout);
    // `State Recv-Q Send-Q ...`: a listening socket's Send-Q is its backlog.
    let backlog: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no listener in `ss` output: {text:?}"));
    assert_eq!(backlog, somaxconn, "{text}");
    node.stop().await;
}
