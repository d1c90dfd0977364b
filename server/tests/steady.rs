//! The node's epoll loops (`--io epoll`, the default): a connection that
//! only echoes, pings and pongs is owned by a loop, and goes back to its
//! task, whole and in order, for everything else.
//!
//! Most of what the loop hands back is proven by the other test files,
//! which run on the default: fragments, bad frames, the close handshake and
//! idle clients all reach the task through the loop. These tests pin what
//! only the loop does, and check that both `--io` values answer alike.

mod support;

use futures_util::{SinkExt, StreamExt};
use protocol::ServerMsg;
use serde_json::json;
use std::time::Duration;
use support::{RawWs, chat, connect, encode_frame, metric, start};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

async fn echo(c: &mut support::Client, id: u64) {
    c.send_json(json!({"type":"echo","id":id,"ts":id,"payload":"p"}))
        .await;
    match c.recv().await {
        ServerMsg::Echo {
            id: got, payload, ..
        } => {
            assert_eq!((got, payload.as_deref()), (id, Some("p")))
        }
        other => panic!("expected echo {id}, got {other:?}"),
    }
}

/// Poll a metric until it has `want` (the loop counts from its own task).
async fn metric_becomes(node: &support::TestNode, name: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = metric(node, name).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} is {got}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn echoes_are_answered_in_the_loop_and_by_tasks_alike() {
    for (io, in_loop) in [("epoll", 1.0), ("tasks", 0.0)] {
        let node = start(&["--io", io]).await;
        let mut c = connect(&node.url("session_id=both")).await;
        for id in 1..=50 {
            echo(&mut c, id).await;
        }
        // A ping is answered with its payload, and a pong needs no answer.
        c.ws.send(Message::Ping(b"are you there".to_vec().into()))
            .await
            .unwrap();
        let pong = loop {
            match tokio::time::timeout(Duration::from_secs(5), c.ws.next())
                .await
                .expect("pong in time")
            {
                Some(Ok(Message::Pong(p))) => break p,
                Some(Ok(_)) => continue,
                other => panic!("--io {io}: no pong: {other:?}"),
            }
        };
        assert_eq!(&pong[..], b"are you there", "--io {io}");
        echo(&mut c, 51).await;
        assert_eq!(
            metric(&node, "wsnode_connections_in_loop").await,
            in_loop,
            "--io {io}"
        );
        assert_eq!(
            metric(&node, "wsnode_loop_entries_total").await,
            in_loop,
            "--io {io}"
        );
        // Welcome and 51 echoes out, 51 echoes in, either way.
        assert_eq!(
            metric(&node, "wsnode_messages_in_total").await,
            51.0,
            "--io {io}"
        );
        assert_eq!(
            metric(&node, "wsnode_messages_out_total").await,
            52.0,
            "--io {io}"
        );
        drop(c);
        metric_becomes(&node, "wsnode_connections", 0.0).await;
        node.stop().await;
    }
}

#[tokio::test]
async fn a_chat_takes_the_connection_back_to_its_task_mid_stream() {
    let node = start(&[]).await;
    let mut c = connect(&node.url("session_id=mid")).await;
    echo(&mut c, 1).await;
    metric_becomes(&node, "wsnode_connections_in_loop", 1.0).await;
    // Echo, chat and echo back to back: the loop answers the first, puts
    // the chat back, and the task answers the rest.
    for m in [
        json!({"type":"echo","id":2,"ts":2}),
        chat("m1", 3, 1),
        json!({"type":"echo","id":3,"ts":3}),
    ] {
        c.send_json(m).await;
    }
    assert!(matches!(c.recv().await, ServerMsg::Echo { id: 2, .. }));
    assert!(matches!(c.recv().await, ServerMsg::Ack { message_id } if message_id == "m1"));
    let mut echoed = false;
    let mut chunks = Vec::new();
    loop {
        match c.recv().await {
            ServerMsg::Echo { id: 3, .. } => echoed = true,
            ServerMsg::Chunk { index, .. } => chunks.push(index),
            ServerMsg::Done { chunks: n, .. } => {
                assert_eq!(n, 3);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    if !echoed {
        echo(&mut c, 3).await;
    }
    assert_eq!(chunks, vec![0, 1, 2]);
    assert_eq!(metric(&node, "wsnode_connections_in_loop").await, 0.0);
    // The task keeps it: echoes still answered.
    echo(&mut c, 4).await;
    node.stop().await;
}

#[tokio::test]
async fn a_delivery_from_another_connection_reclaims_a_parked_one() {
    let node = start(&[]).await;
    let mut quiet = connect(&node.url("session_id=shared")).await;
    echo(&mut quiet, 1).await;
    metric_becomes(&node, "wsnode_connections_in_loop", 1.0).await;
    // A second tab of the same session asks for an answer: its chunks are
    // delivered to both, and the parked connection must come back for them.
    let url = node.url(&format!("session_id=shared&token={}", quiet.token));
    let mut asking = connect(&url).await;
    asking.send_json(chat("fan", 4, 5)).await;
    assert!(matches!(asking.recv().await, ServerMsg::Ack { .. }));
    let (mine, status) = asking.read_stream("fan").await;
    assert_eq!(
        (mine, status),
        (vec![0, 1, 2, 3], protocol::StreamStatus::Done)
    );
    let (theirs, status) = quiet.read_stream("fan").await;
    assert_eq!(
        (theirs, status),
        (vec![0, 1, 2, 3], protocol::StreamStatus::Done)
    );
    echo(&mut quiet, 2).await;
    node.stop().await;
}

#[tokio::test]
async fn frames_split_anywhere_and_the_close_reach_the_right_hands() {
    let node = start(&[]).await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=split").await;
    let (op, _) = raw.read_frame().await.expect("welcome");
    assert_eq!(op, 0x1);
    // Two echoes and a ping, written a byte at a time: the loop must
    // reassemble frames across reads.
    let mut wire = Vec::new();
    for id in 1..=2 {
        let m = json!({"type":"echo","id":id,"ts":0}).to_string();
        wire.extend(encode_frame(0x81, m.as_bytes()));
    }
    wire.extend(encode_frame(0x89, b"hi"));
    for b in wire {
        raw.stream.write_all(&[b]).await.unwrap();
        raw.stream.flush().await.unwrap();
    }
    for id in 1..=2 {
        let (op, payload) = raw.read_frame().await.expect("echo");
        assert_eq!(op, 0x1);
        match ServerMsg::from_json(std::str::from_utf8(&payload).unwrap()).unwrap() {
            ServerMsg::Echo { id: got, .. } => assert_eq!(got, id),
            other => panic!("expected echo {id}, got {other:?}"),
        }
    }
    assert_eq!(raw.read_frame().await, Some((0xA, b"hi".to_vec())));
    assert_eq!(metric(&node, "wsnode_connections_in_loop").await, 1.0);
    // A close frame goes back to the task, which answers it with 1000.
    let mut close = vec![0x03, 0xE8];
    close.extend_from_slice(b"bye");
    raw.send_frame(0x88, &close).await;
    assert_eq!(raw.close_code().await, Some(1000));
    metric_becomes(&node, "wsnode_connections", 0.0).await;
    node.stop().await;
}

#[tokio::test]
async fn the_loop_pings_and_the_task_closes_an_idle_client() {
    let node = start(&["--ping-interval", "100ms", "--idle-timeout", "600ms"]).await;
    let mut raw = RawWs::connect(node.addr, "/ws/chat?session_id=quiet").await;
    let (op, _) = raw.read_frame().await.expect("welcome");
    assert_eq!(op, 0x1);
    // Pings while the loop owns the connection (it never leaves it before
    // the idle deadline: nothing else happens).
    let mut pings = 0;
    while pings < 3 {
        let (op, _) = raw.read_frame().await.expect("a ping");
        assert_eq!(op, 0x9, "only pings while idle");
        pings += 1;
        assert_eq!(metric(&node, "wsnode_connections_in_loop").await, 1.0);
    }
    // Never answered: the idle client is closed with 1008.
    assert_eq!(raw.close_code().await, Some(1008));
    assert_eq!(metric(&node, "wsnode_idle_closes_total").await, 1.0);
    node.stop().await;
}

#[tokio::test]
async fn shutdown_takes_parked_connections_back_and_closes_them_with_1001() {
    let node = start(&[]).await;
    let mut c = connect(&node.url("session_id=down")).await;
    echo(&mut c, 1).await;
    metric_becomes(&node, "wsnode_connections_in_loop", 1.0).await;
    let stopping = tokio::spawn(node.stop());
    assert_eq!(c.closed().await, Some(1001));
    stopping.await.unwrap();
}
