//! Replies the reader writes itself (echo, pong) keep the connection's
//! order and its slow-consumer rules: they never overtake a frame queued
//! before them, and a reply the socket took only part of is finished before
//! anything else, up to the 1013 close.

mod support;

use protocol::ServerMsg;
use serde_json::json;
use std::time::Duration;
use support::{RawWs, encode_frame, metric, start};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

fn text(frame: (u8, Vec<u8>)) -> ServerMsg {
    assert_eq!(frame.0, 0x1, "a text frame");
    serde_json::from_slice(&frame.1).expect("a whole JSON frame")
}

#[tokio::test]
async fn an_echo_never_overtakes_the_error_or_ack_queued_before_it() {
    let node = start(&[]).await;
    for round in 0..20u64 {
        let mut raw = RawWs::connect(node.addr, &format!("/ws/chat?session_id=order{round}")).await;
        assert!(matches!(
            text(raw.read_frame().await.expect("welcome")),
            ServerMsg::Welcome { .. }
        ));
        // One write: the node reads all four frames in one go, and answers
        // the first and third through its queue (error, ack).
        let mut wire = encode_frame(0x81, b"{");
        wire.extend(encode_frame(0x81, br#"{"type":"echo","id":1,"ts":0}"#));
        let chat = json!({"type":"chat","message_id":format!("m{round}"),"text":"x","chunks":1,"interval_ms":0});
        wire.extend(encode_frame(0x81, chat.to_string().as_bytes()));
        wire.extend(encode_frame(0x81, br#"{"type":"echo","id":2,"ts":0}"#));
        raw.stream.write_all(&wire).await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 6 {
            let msg = text(raw.read_frame().await.expect("a frame"));
            seen.push(match msg {
                ServerMsg::Error { .. } => "error".to_string(),
                ServerMsg::Echo { id, .. } => format!("echo{id}"),
                ServerMsg::Ack { .. } => "ack".to_string(),
                ServerMsg::Chunk { .. } => "chunk".to_string(),
                ServerMsg::Done { .. } => "done".to_string(),
                other => panic!("unexpected {other:?}"),
            });
        }
        let at = |s: &str| seen.iter().position(|x| x == s).expect(s);
        assert!(at("error") < at("echo1"), "{seen:?}");
        assert!(at("echo1") < at("ack"), "{seen:?}");
        assert!(at("ack") < at("echo2"), "{seen:?}");
        assert!(at("ack") < at("chunk"), "{seen:?}");
    }
    node.stop().await;
}

/// 40 echo requests of 16 KiB each, sent in one write.
fn big_echoes(payload: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for id in 1..=40u64 {
        let echo = json!({"type":"echo","id":id,"ts":0,"payload":payload});
        wire.extend(encode_frame(0x81, echo.to_string().as_bytes()));
    }
    wire
}

#[tokio::test]
async fn echoes_the_socket_takes_only_in_part_arrive_whole_and_in_order() {
    let node = start(&["--send-buffer", "16KiB"]).await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=part").await;
    let payload = "q".repeat(16 * 1024);
    // 640 KiB of replies against a 32 KiB send buffer and a client that
    // reads late: replies are written in part, their rest queued first.
    raw.stream.write_all(&big_echoes(&payload)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(matches!(
        text(raw.read_frame().await.expect("welcome")),
        ServerMsg::Welcome { .. }
    ));
    for want in 1..=40u64 {
        match text(raw.read_frame().await.expect("an echo")) {
            ServerMsg::Echo { id, payload: p, .. } => {
                assert_eq!(id, want);
                assert_eq!(p.as_deref(), Some(payload.as_str()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    node.stop().await;
}

#[tokio::test]
async fn echoes_to_a_client_that_stops_reading_stay_whole_up_to_the_1013_close() {
    let node = start(&["--send-buffer", "16KiB", "--outbound-queue", "4"]).await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=slow").await;
    // 40 echoes of 16 KiB (640 KiB back) and no reading: the socket takes
    // part of one reply, the queue overflows behind it.
    let payload = "p".repeat(16 * 1024);
    let wire = big_echoes(&payload);
    // The node may stop reading (and reset) before taking it all.
    let _ = tokio::time::timeout(Duration::from_secs(10), raw.stream.write_all(&wire)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&node, "wsnode_slow_consumer_closes_total").await < 1.0 {
        assert!(Instant::now() < deadline, "slow consumer was never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything that arrived: whole echoes in order, then a 1013 close or
    // the end of the connection (cut inside a write), nothing garbled.
    assert!(matches!(
        text(raw.read_frame().await.expect("welcome")),
        ServerMsg::Welcome { .. }
    ));
    let mut next = 1;
    let mut close = None;
    while let Some((op, body)) = raw.read_frame().await {
        if op == 0x8 {
            close = Some(u16::from_be_bytes([body[0], body[1]]));
            break;
        }
        match text((op, body)) {
            ServerMsg::Echo { id, payload: p, .. } => {
                assert_eq!(id, next, "echoes in order, none lost before the end");
                assert_eq!(p.as_deref(), Some(payload.as_str()));
                next += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(next > 2, "the kernel's buffers alone hold several echoes");
    assert!(next <= 40, "the queue cannot have held all 40");
    assert!(matches!(close, None | Some(1013)), "{close:?}");
    node.stop().await;
}
