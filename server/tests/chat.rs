//! Behaviour of one node seen from real WebSocket clients: welcome, echo,
//! streams, recovery, fan-out to a session's tabs, isolation, auth.

mod support;

use protocol::{ErrorCode, ServerMsg, StreamStatus};
use serde_json::json;
use support::{chat, connect, connect_status, start};

#[tokio::test]
async fn welcome_then_echo_round_trip() {
    let node = start(&[]).await;
    let mut c = connect(&node.url("session_id=alice")).await;
    assert_eq!(c.session_id, "alice");
    assert_eq!(c.node_id, "test-node");
    assert_eq!(c.token.len(), 32);
    assert!(c.streams.is_empty());
    c.send_json(json!({"type":"echo","id":42,"ts":123456,"payload":"x\"y"}))
        .await;
    assert_eq!(
        c.recv().await,
        ServerMsg::Echo {
            id: 42,
            ts: 123456,
            payload: Some("x\"y".into()),
            node_id: "test-node".into()
        }
    );
    node.stop().await;
}

#[tokio::test]
async fn node_generates_a_session_id_when_none_is_given() {
    let node = start(&[]).await;
    let a = connect(&node.url("")).await;
    let b = connect(&node.url("")).await;
    assert!(protocol::ids::is_valid_id(&a.session_id));
    assert_ne!(a.session_id, b.session_id);
    node.stop().await;
}

#[tokio::test]
async fn chat_streams_every_deterministic_chunk_then_done() {
    let node = start(&["--chunk-size", "24"]).await;
    let mut c = connect(&node.url("session_id=s1")).await;
    c.send_json(chat("m-1", 12, 1)).await;
    assert_eq!(
        c.recv().await,
        ServerMsg::Ack {
            message_id: "m-1".into()
        }
    );
    let (seen, status) = c.read_stream("m-1").await;
    assert_eq!(seen, (0..12).collect::<Vec<_>>());
    assert_eq!(status, StreamStatus::Done);
    node.stop().await;
}

#[tokio::test]
async fn plain_text_frame_is_a_chat_with_node_defaults() {
    let node = start(&["--chunks", "5", "--chunk-interval", "1ms"]).await;
    let mut c = connect(&node.url("session_id=load_test_1")).await;
    c.send_text("Test message").await;
    let ServerMsg::Ack { message_id } = c.recv().await else {
        panic!("ack expected")
    };
    let (seen, status) = c.read_stream(&message_id).await;
    assert_eq!((seen.len(), status), (5, StreamStatus::Done));
    node.stop().await;
}

#[tokio::test]
async fn recover_after_mid_stream_disconnect_has_no_gap_and_no_duplicate() {
    let node = start(&[]).await;
    let mut c = connect(&node.url("session_id=rec")).await;
    let token = c.token.clone();
    c.send_json(chat("m-rec", 30, 20)).await;
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    let mut got = Vec::new();
    while got.len() < 5 {
        if let ServerMsg::Chunk { index, .. } = c.recv().await {
            got.push(index);
        }
    }
    drop(c); // disconnect mid-stream, without a close frame
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;

    let mut c = connect(&node.url(&format!("session_id=rec&token={token}"))).await;
    let info = c
        .streams
        .iter()
        .find(|s| s.message_id == "m-rec")
        .expect("welcome lists the stream");
    assert_eq!(info.status, StreamStatus::Streaming);
    assert!(
        info.chunks as usize > got.len(),
        "the stream went on while we were away"
    );
    let last = *got.last().unwrap();
    c.send_json(json!({"type":"recover","message_id":"m-rec","last_index":last}))
        .await;
    match c.recv().await {
        ServerMsg::Recovered {
            message_id,
            from_index,
            ..
        } => {
            assert_eq!(message_id, "m-rec");
            assert_eq!(from_index, last + 1);
        }
        other => panic!("expected recovered, got {other:?}"),
    }
    let (rest, status) = c.read_stream("m-rec").await;
    got.extend(rest);
    assert_eq!(
        got,
        (0..30).collect::<Vec<_>>(),
        "every chunk exactly once, in order"
    );
    assert_eq!(status, StreamStatus::Done);
    node.stop().await;
}

#[tokio::test]
async fn recover_of_finished_stream_replays_the_rest_and_done() {
    let node = start(&[]).await;
    let mut c = connect(&node.url("session_id=fin")).await;
    c.send_json(chat("m-fin", 6, 0)).await;
    c.recv().await;
    c.read_stream("m-fin").await;
    c.send_json(json!({"type":"recover","message_id":"m-fin","last_index":2}))
        .await;
    assert!(matches!(
        c.recv().await,
        ServerMsg::Recovered {
            status: StreamStatus::Done,
            from_index: 3,
            chunks: 6,
            ..
        }
    ));
    assert_eq!(
        c.read_stream("m-fin").await,
        (vec![3, 4, 5], StreamStatus::Done)
    );
    node.stop().await;
}

#[tokio::test]
async fn recover_unknown_or_foreign_message_is_not_found() {
    let node = start(&[]).await;
    let mut owner = connect(&node.url("session_id=owner")).await;
    owner.send_json(chat("m-own", 3, 0)).await;
    owner.recv().await;
    owner.read_stream("m-own").await;
    let mut other = connect(&node.url("session_id=thief")).await;
    for id in ["m-own", "no-such"] {
        other
            .send_json(json!({"type":"recover","message_id":id,"last_index":-1}))
            .await;
        match other.recv().await {
            ServerMsg::Error {
                code: ErrorCode::NotFound,
                message_id,
                ..
            } => assert_eq!(message_id.as_deref(), Some(id)),
            m => panic!("expected not_found, got {m:?}"),
        }
    }
    // The connection stays usable.
    other.send_json(json!({"type":"echo","id":1,"ts":2})).await;
    assert!(matches!(other.recv().await, ServerMsg::Echo { id: 1, .. }));
    node.stop().await;
}

#[tokio::test]
async fn two_connections_of_one_session_both_get_every_chunk_in_order() {
    let node = start(&[]).await;
    let mut tab1 = connect(&node.url("session_id=tabs")).await;
    let mut tab2 = connect(&node.url(&format!("session_id=tabs&token={}", tab1.token))).await;
    tab1.send_json(chat("m-tabs", 20, 2)).await;
    assert!(matches!(tab1.recv().await, ServerMsg::Ack { .. }));
    let (a, b) = tokio::join!(tab1.read_stream("m-tabs"), tab2.read_stream("m-tabs"));
    let all: Vec<u32> = (0..20).collect();
    assert_eq!(a, (all.clone(), StreamStatus::Done));
    assert_eq!(b, (all, StreamStatus::Done));
    node.stop().await;
}

#[tokio::test]
async fn ten_sessions_stream_at_once_without_cross_talk() {
    let node = start(&[]).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let url = node.url(&format!("session_id=user{i}"));
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&url).await;
            let mid = format!("m-user{i}");
            c.send_json(chat(&mid, 15, 5)).await;
            assert_eq!(
                c.recv().await,
                ServerMsg::Ack {
                    message_id: mid.clone()
                }
            );
            // read_stream panics on any frame of another message.
            let (seen, status) = c.read_stream(&mid).await;
            assert_eq!(seen, (0..15).collect::<Vec<_>>());
            assert_eq!(status, StreamStatus::Done);
            // Nothing else arrives afterwards either.
            c.send_json(json!({"type":"echo","id":9,"ts":9})).await;
            assert!(matches!(c.recv().await, ServerMsg::Echo { id: 9, .. }));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    node.stop().await;
}

#[tokio::test]
async fn reattach_needs_the_session_token() {
    let node = start(&[]).await;
    let first = connect(&node.url("session_id=victim")).await;
    let (status, body) = connect_status(&node.url("session_id=victim"))
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("unauthorized"), "{body}");
    let (status, _) =
        connect_status(&node.url("session_id=victim&token=0123456789abcdef0123456789abcdef"))
            .await
            .err()
            .expect("refused");
    assert_eq!(status, 403);
    let second = connect(&node.url(&format!("session_id=victim&token={}", first.token))).await;
    assert_eq!(second.session_id, "victim");
    assert_eq!(second.token, first.token);
    node.stop().await;
}

#[tokio::test]
async fn client_chosen_message_id_cannot_be_reused() {
    let node = start(&[]).await;
    let mut a = connect(&node.url("session_id=a")).await;
    a.send_json(chat("dup", 1, 0)).await;
    a.recv().await;
    a.read_stream("dup").await;
    let mut b = connect(&node.url("session_id=b")).await;
    b.send_json(chat("dup", 1, 0)).await;
    assert!(matches!(
        b.recv().await,
        ServerMsg::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    ));
    node.stop().await;
}

#[tokio::test]
async fn chat_limits_are_enforced() {
    let node = start(&["--max-chunks", "50", "--max-streams-per-conn", "1"]).await;
    let mut c = connect(&node.url("session_id=lim")).await;
    c.send_json(chat("big", 51, 0)).await;
    assert!(matches!(
        c.recv().await,
        ServerMsg::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    ));
    c.send_json(json!({"type":"chat","text":"x","interval_ms":999_999}))
        .await;
    assert!(matches!(
        c.recv().await,
        ServerMsg::Error {
            code: ErrorCode::BadRequest,
            ..
        }
    ));
    c.send_json(chat("slow", 50, 50)).await;
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    c.send_json(chat("second", 1, 0)).await;
    loop {
        match c.recv().await {
            ServerMsg::Chunk { .. } => continue,
            ServerMsg::Error { code, .. } => {
                assert_eq!(code, ErrorCode::RateLimited);
                break;
            }
            m => panic!("{m:?}"),
        }
    }
    node.stop().await;
}

#[tokio::test]
async fn recovery_cache_stays_within_its_byte_budget() {
    // 4 KiB chunks against a 64 KiB cache: an answer of 40 chunks cannot fit.
    let node = start(&["--max-cached-bytes", "64KiB", "--chunk-size", "4096"]).await;
    let mut c = connect(&node.url("session_id=budget")).await;
    c.send_json(chat("huge", 40, 0)).await;
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    let (seen, status) = c.read_stream("huge").await;
    assert_eq!(status, StreamStatus::Interrupted, "cut at the budget");
    assert!(
        (10..16).contains(&seen.len()),
        "about 64 KiB of 4 KiB chunks were delivered: {seen:?}"
    );
    assert_eq!(seen, (0..seen.len() as u32).collect::<Vec<_>>());
    let cached = support::metric(&node, "wsnode_cached_stream_bytes").await;
    assert!(cached > 0.0 && cached <= 64.0 * 1024.0 + 256.0, "{cached}");
    // The interrupted stream is finished, so it is evicted for the next one.
    c.send_json(chat("next", 4, 0)).await;
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    let (seen, status) = c.read_stream("next").await;
    assert_eq!((seen.len(), status), (4, StreamStatus::Done));
    node.stop().await;
}
