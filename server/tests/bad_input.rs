//! Untrusted input of every kind gets a clear error or close code, and the
//! node keeps serving everyone else.

mod support;

use futures_util::SinkExt;
use protocol::{ErrorCode, ServerMsg};
use serde_json::json;
use std::time::Duration;
use support::{RawWs, connect, connect_status, metric, raw_http, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

async fn expect_error(c: &mut support::Client, code: ErrorCode) {
    match c.recv().await {
        ServerMsg::Error {
            code: got, message, ..
        } => {
            assert_eq!(got, code, "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected {code:?} error, got {other:?}"),
    }
}

async fn still_usable(c: &mut support::Client) {
    c.send_json(json!({"type":"echo","id":77,"ts":1})).await;
    assert!(matches!(c.recv().await, ServerMsg::Echo { id: 77, .. }));
}

/// Waits (20 s at most) until the node closed a connection with 1013.
async fn slow_consumer_closed(node: &support::TestNode) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(node, "wsnode_slow_consumer_closes_total").await < 1.0 {
        assert!(Instant::now() < deadline, "slow consumer was never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn malformed_json_unknown_type_and_binary_get_errors_and_the_connection_survives() {
    let node = start(&[]).await;
    let mut c = connect(&node.url("session_id=bad")).await;
    for (input, code) in [
        ("{\"type\":", ErrorCode::BadRequest),
        ("{}", ErrorCode::BadRequest),
        (
            r#"{"type":"echo","id":"seven","ts":1}"#,
            ErrorCode::BadRequest,
        ),
        (r#"{"type":"teleport"}"#, ErrorCode::UnknownType),
        (
            r#"{"type":"recover","message_id":"../../etc"}"#,
            ErrorCode::BadRequest,
        ),
    ] {
        c.send_text(input).await;
        expect_error(&mut c, code).await;
    }
    c.ws.send(Message::binary(vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]))
        .await
        .unwrap();
    expect_error(&mut c, ErrorCode::BadRequest).await;
    still_usable(&mut c).await;
    node.stop().await;
}

#[tokio::test]
async fn oversized_message_closes_with_1009_and_others_are_unaffected() {
    let node = start(&["--max-message-size", "1KiB"]).await;
    let mut bystander = connect(&node.url("session_id=bystander")).await;
    let mut c = connect(&node.url("session_id=big")).await;
    c.send_text(&"x".repeat(1024)).await; // exactly the limit: accepted (plain-text chat)
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    c.send_text(&"y".repeat(1025)).await;
    assert_eq!(c.closed().await, Some(1009));
    still_usable(&mut bystander).await;
    node.stop().await;
}

#[tokio::test]
async fn fragmented_message_over_the_limit_closes_with_1009() {
    let node = start(&["--max-message-size", "1KiB"]).await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=frag").await;
    raw.read_frame().await.expect("welcome");
    raw.send_frame(0x01, &[b'a'; 600]).await; // text, FIN clear
    raw.send_frame(0x00, &[b'b'; 600]).await; // continuation, FIN clear
    assert_eq!(raw.close_code().await, Some(1009));
    node.stop().await;
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007_and_bad_framing_with_1002() {
    let node = start(&[]).await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=utf").await;
    raw.read_frame().await.expect("welcome");
    raw.send_frame(0x81, &[0xff, 0xfe, 0xfd]).await;
    assert_eq!(raw.close_code().await, Some(1007));

    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=rsv").await;
    raw.read_frame().await.expect("welcome");
    raw.send_frame(0xF1, b"{}").await; // RSV bits set
    assert_eq!(raw.close_code().await, Some(1002));

    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=cont").await;
    raw.read_frame().await.expect("welcome");
    raw.send_frame(0x80, b"orphan continuation").await;
    assert_eq!(raw.close_code().await, Some(1002));
    node.stop().await;
}

#[tokio::test]
async fn handshake_errors_are_http_statuses_with_json_bodies() {
    let node = start(&["--allowed-origins", "https://chat.example"]).await;
    let (status, body) = node.get("/ws/chat?session_id=x").await;
    assert_eq!(status, 426, "no upgrade headers: {body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"],
        "upgrade_required"
    );

    for bad in [
        "session_id=",
        "session_id=has%20space",
        "session_id=a/b",
        &format!("session_id={}", "x".repeat(129)),
    ] {
        let (status, body) = connect_status(&node.url(bad)).await.err().expect("refused");
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("bad_request"), "{body}");
    }

    let (status, _) = raw_http(
        node.addr,
        "GET /ws/chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: https://evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 403, "foreign origin");

    let (status, body) = raw_http(
        node.addr,
        "GET /ws/chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "missing Sec-WebSocket-Key: {body}");

    let (status, _) = raw_http(
        node.addr,
        "POST /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(node.get("/nope").await.0, 404);
    let (status, _) = raw_http(node.addr, "\x16\x03\x01garbage that is not http\r\n\r\n").await;
    assert_eq!(status, 400, "non-HTTP bytes get 400");
    assert_eq!(node.get("/health").await.0, 200, "still serving");
    node.stop().await;
}

#[tokio::test]
async fn silent_tcp_connection_is_dropped_after_the_handshake_timeout() {
    let node = start(&["--handshake-timeout", "300ms"]).await;
    let mut s = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed by the node");
    // hyper answers 408 or just closes; either way the socket is released.
    let text = String::from_utf8_lossy(&buf[..n.unwrap_or(0)]).to_string();
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    node.stop().await;
}

#[tokio::test]
async fn inbound_rate_limit_answers_rate_limited_and_keeps_the_connection() {
    let node = start(&["--max-msg-rate", "5"]).await;
    let mut c = connect(&node.url("session_id=fast")).await;
    for i in 0..20 {
        c.send_json(json!({"type":"echo","id":i,"ts":0})).await;
    }
    let (mut ok, mut limited) = (0, 0);
    for _ in 0..20 {
        match c.recv().await {
            ServerMsg::Echo { .. } => ok += 1,
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            m => panic!("{m:?}"),
        }
    }
    assert!(ok >= 5 && limited >= 10, "ok={ok} limited={limited}");
    assert!(metric(&node, "wsnode_rate_limited_total").await >= 10.0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    still_usable(&mut c).await;
    node.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_get_503() {
    let node = start(&["--max-connections", "2"]).await;
    let _a = connect(&node.url("session_id=a")).await;
    let _b = connect(&node.url("session_id=b")).await;
    let (status, body) = connect_status(&node.url("session_id=c"))
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 503, "{body}");
    let ready = node.get_json("/health/ready").await;
    assert_eq!(ready["status"], "FULL");
    node.stop().await;
}

#[tokio::test]
async fn a_reader_that_never_reads_is_closed_as_slow_consumer_without_hurting_others() {
    let node = start(&[
        "--outbound-queue",
        "4",
        "--chunk-size",
        "16384",
        "--max-chunks",
        "2000",
    ])
    .await;
    let mut bystander = connect(&node.url("session_id=ok")).await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=slow").await;
    raw.send_frame(
        0x81,
        json!({"type":"chat","text":"x","chunks":2000,"interval_ms":0})
            .to_string()
            .as_bytes(),
    )
    .await;
    // Never read: socket buffers fill, then the 4-frame queue overflows.
    slow_consumer_closed(&node).await;
    still_usable(&mut bystander).await;
    node.stop().await;
}

#[tokio::test]
async fn past_max_handshakes_the_connection_waiting_longest_is_closed() {
    // The timeout alone would hold each half-open connection for a minute.
    let node = start(&["--max-handshakes", "4", "--handshake-timeout", "60s"]).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(node.addr).await.unwrap();
        s.write_all(b"GET /ws/chat HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        held.push(s);
        // Accepted in this order.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut buf = [0u8; 256];
    for (i, s) in held[..4].iter_mut().enumerate() {
        let read = timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        let n = read.unwrap_or_else(|_| panic!("connection {i} still held"));
        assert_eq!(n.unwrap_or(0), 0, "connection {i} closed without an answer");
    }
    // A real client gets through (the oldest half-open one makes room).
    let mut c = connect(&node.url("session_id=real")).await;
    still_usable(&mut c).await;
    // 4 + 1 evicted; this request found room beside the newest three.
    assert_eq!(metric(&node, "wsnode_handshakes_evicted_total").await, 5.0);
    for (i, s) in held[5..].iter_mut().enumerate() {
        let read = timeout(Duration::from_millis(300), s.read(&mut buf)).await;
        assert!(read.is_err(), "newer connection {} was closed", i + 5);
    }
    assert_eq!(metric(&node, "wsnode_handshakes_waiting").await, 3.0);
    node.stop().await;
}

#[tokio::test]
async fn a_fragmented_message_kept_open_with_pings_is_closed_with_1008() {
    let node = start(&["--fragment-timeout", "500ms"]).await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=stall").await;
    raw.read_frame().await.expect("welcome");
    let started = Instant::now();
    raw.send_frame(0x01, b"{\"type\":").await; // text, FIN clear
    // Each ping and empty continuation is activity for --idle-timeout, but
    // does not extend the unfinished message's time.
    let code = loop {
        assert!(started.elapsed() < Duration::from_secs(10), "never closed");
        raw.send_frame(0x89, b"still here").await;
        raw.send_frame(0x00, b"").await;
        match timeout(Duration::from_millis(100), raw.read_frame()).await {
            Ok(Some((0x8, payload))) => break u16::from_be_bytes([payload[0], payload[1]]),
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => panic!("closed without a close frame"),
        }
    };
    assert_eq!(code, 1008);
    assert!(started.elapsed() >= Duration::from_millis(500));
    node.stop().await;
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_closed_once_its_small_send_buffer_is_full() {
    // About 1.1 MB of answer: far more than 16 KiB of send buffer and a
    // 16-frame queue, well under what the kernel's autotuning (up to
    // tcp_wmem's 4 MiB) would take in without the node noticing.
    let node = start(&[
        "--send-buffer",
        "16KiB",
        "--outbound-queue",
        "16",
        "--chunk-size",
        "1024",
    ])
    .await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=slow").await;
    raw.send_frame(
        0x81,
        json!({"type":"chat","text":"x","chunks":1000,"interval_ms":0})
            .to_string()
            .as_bytes(),
    )
    .await;
    slow_consumer_closed(&node).await;
    node.stop().await;
}
