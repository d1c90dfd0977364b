//! Multi-node behaviour on a real redis-server (started by the test on a free
//! port): cross-node fan-out, recovery from another node, ordering under
//! concurrent writers, fencing, node crashes and Redis outages.

// The in-process node and WebSocket client of the server's own tests: these
// tests are the server's too, but they need this crate's real redis-server
// and node processes, and the server does not depend on this crate.
#[path = "../../server/tests/support/mod.rs"]
mod support;

mod common;

use cluster::RedisServer;
use protocol::{ErrorCode, ServerMsg, StreamStatus};
use redis::AsyncCommands;
use serde_json::json;
use server::broker::redis::{RedisBroker, RedisSettings};
use server::broker::{AnswerPlan, Broker, BrokerError, Owner};
use std::sync::Arc;
use std::time::Duration;
use support::{chat, connect, connect_status, start_named};

// Cleanup needs a few seconds of TTLs; every wait below is bounded.

fn redis() -> RedisServer {
    RedisServer::start().expect("redis-server must be installed (scripts/test.sh installs it)")
}

async fn redis_conn(r: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(r.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Indices of the chunk frames stored in `stream:chunks:{mid}`, in list order.
async fn stored_indices(r: &RedisServer, mid: &str) -> Vec<u32> {
    let mut c = redis_conn(r).await;
    let frames: Vec<String> = c
        .lrange(format!("stream:chunks:{mid}"), 0, -1)
        .await
        .unwrap();
    frames
        .iter()
        .map(|f| match ServerMsg::from_json(f).unwrap() {
            ServerMsg::Chunk {
                index,
                message_id,
                text,
            } => {
                assert_eq!(message_id, mid);
                assert!(protocol::chunk::verify_chunk(mid, index, &text));
                index
            }
            other => panic!("not a chunk in the list: {other:?}"),
        })
        .collect()
}

fn cluster_args(url: &str) -> Vec<String> {
    [
        "--redis",
        url,
        "--cleanup-interval",
        "300ms",
        "--node-ttl",
        "1s",
        "--redis-timeout",
        "500ms",
        "--lease-ttl",
        "2s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn node(id: &str, r: &RedisServer) -> support::TestNode {
    let args = cluster_args(&r.url());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let n = start_named(id, &args).await;
    wait_ready(&n).await;
    n
}

/// Nodes serve at once but are ready only once Redis answered.
async fn wait_ready(n: &support::TestNode) {
    let started = tokio::time::Instant::now();
    while n.get("/health/ready").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "node never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_chunk_generated_on_node_a_reaches_the_session_on_node_b() {
    let r = redis();
    let (a, b) = (node("node-a", &r).await, node("node-b", &r).await);
    let mut on_a = connect(&a.url("session_id=shared")).await;
    let mut on_b = connect(&b.url(&format!("session_id=shared&token={}", on_a.token))).await;
    assert_eq!(
        (on_a.node_id.as_str(), on_b.node_id.as_str()),
        ("node-a", "node-b")
    );
    on_a.send_json(chat("m-ab", 15, 5)).await;
    assert!(matches!(on_a.recv().await, ServerMsg::Ack { .. }));
    let (got_a, got_b) = tokio::join!(on_a.read_stream("m-ab"), on_b.read_stream("m-ab"));
    let all: Vec<u32> = (0..15).collect();
    assert_eq!(got_a, (all.clone(), StreamStatus::Done));
    assert_eq!(got_b, (all.clone(), StreamStatus::Done));
    assert_eq!(stored_indices(&r, "m-ab").await, all);
    // The seed's check: the session is registered in Redis.
    let mut c = redis_conn(&r).await;
    let entry: Option<String> = c.hget("sessions:active", "shared").await.unwrap();
    assert!(entry.expect("sessions:active entry").contains("\"node\""));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_stream_started_on_node_a_is_recovered_from_node_b_without_gap_or_duplicate() {
    let r = redis();
    let (a, b) = (node("node-a", &r).await, node("node-b", &r).await);
    let mut c = connect(&a.url("session_id=mover")).await;
    let token = c.token.clone();
    c.send_json(chat("m-move", 40, 15)).await;
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    let mut got = Vec::new();
    while got.len() < 6 {
        if let ServerMsg::Chunk { index, .. } = c.recv().await {
            got.push(index);
        }
    }
    drop(c);
    let mut c = connect(&b.url(&format!("session_id=mover&token={token}"))).await;
    let info = c
        .streams
        .iter()
        .find(|s| s.message_id == "m-move")
        .expect("welcome on node B lists the stream");
    assert_eq!(info.status, StreamStatus::Streaming);
    let last = *got.last().unwrap();
    c.send_json(json!({"type":"recover","message_id":"m-move","last_index":last}))
        .await;
    assert!(
        matches!(c.recv().await, ServerMsg::Recovered { from_index, .. } if from_index == last + 1)
    );
    let (rest, status) = c.read_stream("m-move").await;
    got.extend(rest);
    assert_eq!(got, (0..40).collect::<Vec<_>>());
    assert_eq!(status, StreamStatus::Done);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn three_clients_on_three_nodes_see_one_order_matching_the_redis_list() {
    let r = redis();
    let nodes = [
        node("node1", &r).await,
        node("node2", &r).await,
        node("node3", &r).await,
    ];
    let mut first = connect(&nodes[0].url("session_id=trio")).await;
    let token = first.token.clone();
    let mut second = connect(&nodes[1].url(&format!("session_id=trio&token={token}"))).await;
    let mut third = connect(&nodes[2].url(&format!("session_id=trio&token={token}"))).await;
    second.send_json(chat("m-trio", 25, 2)).await;
    assert!(matches!(second.recv().await, ServerMsg::Ack { .. }));
    let (x, y, z) = tokio::join!(
        first.read_stream("m-trio"),
        second.read_stream("m-trio"),
        third.read_stream("m-trio")
    );
    let all: Vec<u32> = (0..25).collect();
    for got in [x, y, z] {
        assert_eq!(got, (all.clone(), StreamStatus::Done));
    }
    assert_eq!(stored_indices(&r, "m-trio").await, all);
    for n in nodes {
        n.stop().await;
    }
}

fn settings(r: &RedisServer, node: &str) -> RedisSettings {
    RedisSettings {
        url: r.url(),
        node_id: node.into(),
        session_ttl: Duration::from_secs(30),
        stream_ttl: Duration::from_secs(60),
        node_ttl: Duration::from_secs(5),
        lease_ttl: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        max_sessions: 1000,
        streams_in_welcome: 16,
        skip_fencing: false,
    }
}

fn plan(chunks: u32) -> AnswerPlan {
    AnswerPlan {
        chunks,
        interval: Duration::ZERO,
        chunk_size: 8,
        prompt: "q".into(),
    }
}

async fn ready(b: &RedisBroker) {
    for _ in 0..200 {
        if b.status().healthy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("broker never connected: {}", b.status().state);
}

fn chunk_frame(mid: &str, i: u32) -> bytes::Bytes {
    let text = protocol::chunk::chunk_text(mid, i, 8);
    bytes::Bytes::from(
        ServerMsg::Chunk {
            message_id: mid.into(),
            index: i,
            text,
        }
        .to_json(),
    )
}

#[tokio::test]
async fn twenty_concurrent_writers_leave_a_gap_free_duplicate_free_list() {
    let r = redis();
    let broker = Arc::new(RedisBroker::start(settings(&r, "writer-node")).unwrap());
    ready(&broker).await;
    let owner = Owner {
        session_id: "w".into(),
        token: "t".into(),
    };
    let lease = broker
        .open_stream(&owner, "m-race".into(), &plan(300))
        .await
        .unwrap();
    const N: u32 = 300;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (broker, lease) = (broker.clone(), lease.clone());
        tasks.push(tokio::spawn(async move {
            let mut wins = 0u32;
            let mut i = 0;
            while i < N {
                match broker
                    .append_chunk(&lease, i, chunk_frame("m-race", i))
                    .await
                {
                    Ok(()) => {
                        wins += 1;
                        i += 1;
                    }
                    Err(BrokerError::OutOfOrder { expected, .. }) => i = expected.max(i + 1).min(N),
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            wins
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += t.await.unwrap();
    }
    assert_eq!(
        wins, N,
        "each index appended exactly once across all writers"
    );
    assert_eq!(
        stored_indices(&r, "m-race").await,
        (0..N).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_stale_fencing_token_is_rejected_after_another_node_takes_over() {
    let r = redis();
    let old = RedisBroker::start(settings(&r, "old-owner")).unwrap();
    let other = RedisBroker::start(settings(&r, "other")).unwrap();
    ready(&old).await;
    ready(&other).await;
    let owner = Owner {
        session_id: "f".into(),
        token: "t".into(),
    };
    let lease = old
        .open_stream(&owner, "m-fence".into(), &plan(5))
        .await
        .unwrap();
    old.append_chunk(&lease, 0, chunk_frame("m-fence", 0))
        .await
        .unwrap();
    assert!(
        other.take_over("m-fence").await.unwrap().is_none(),
        "a live owner's stream is not taken"
    );
    // The owner "pauses": its lease lapses, another node takes the stream over.
    let mut c = redis_conn(&r).await;
    let _: () = c.del("stream:lease:m-fence").await.unwrap();
    let t = other
        .take_over("m-fence")
        .await
        .unwrap()
        .expect("taken over");
    assert!(
        t.lease.fence > lease.fence,
        "{} > {}",
        t.lease.fence,
        lease.fence
    );
    assert_eq!((t.next, t.plan.clone()), (1, plan(5)));
    assert_eq!(t.lease.owner, owner);
    // The paused owner wakes up and tries to go on: fenced, whatever it claims.
    for fence in [lease.fence, lease.fence + 100] {
        let stale = server::broker::StreamLease {
            fence,
            ..lease.clone()
        };
        assert_eq!(
            old.append_chunk(&stale, 1, chunk_frame("m-fence", 1))
                .await
                .unwrap_err(),
            BrokerError::Fenced
        );
    }
    assert_eq!(
        old.finish_stream(&lease, StreamStatus::Interrupted, "x".into())
            .await
            .unwrap_err(),
        BrokerError::Fenced,
        "nor can it end the stream"
    );
    // The new owner continues where the old one stopped.
    for i in 1..5 {
        other
            .append_chunk(&t.lease, i, chunk_frame("m-fence", i))
            .await
            .unwrap();
    }
    other
        .finish_stream(&t.lease, StreamStatus::Done, "end".into())
        .await
        .unwrap();
    assert_eq!(stored_indices(&r, "m-fence").await, vec![0, 1, 2, 3, 4]);
    let status: String = c.hget("stream:meta:m-fence", "status").await.unwrap();
    assert_eq!(status, "done");
}

#[tokio::test]
async fn redis_outage_gives_broker_unavailable_then_everything_recovers_within_5s() {
    let mut r = redis();
    let a = node("node-a", &r).await;
    let mut c = connect(&a.url("session_id=outage")).await;
    c.send_json(chat("m-before", 5, 0)).await;
    c.recv().await;
    c.read_stream("m-before").await;

    // A stream in flight when Redis dies ends as `interrupted` for the
    // node's own clients instead of leaving them waiting.
    c.send_json(chat("m-mid", 400, 10)).await;
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    assert!(matches!(c.recv().await, ServerMsg::Chunk { index: 0, .. }));
    r.stop(); // like a crash
    let (rest, status) = c.read_stream("m-mid").await;
    assert_eq!(status, StreamStatus::Interrupted);
    assert!(
        rest.len() < 399,
        "stopped early: {} more chunks",
        rest.len()
    );
    // Chat needs the broker: a clear error, not a hang, not a crash.
    c.send_json(chat("m-during", 5, 0)).await;
    match c.recv().await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::BrokerUnavailable),
        other => panic!("expected broker_unavailable, got {other:?}"),
    }
    // Echo does not need it.
    c.send_json(json!({"type":"echo","id":3,"ts":3})).await;
    assert!(matches!(c.recv().await, ServerMsg::Echo { id: 3, .. }));
    let ready = a.get_json("/health/ready").await;
    assert_eq!(ready["status"], "DOWN", "{ready}");
    let d = a.get_json("/health/distributed").await;
    assert_eq!(d["broker"]["healthy"], false);
    assert!(
        d["broker"]["state"]
            .as_str()
            .unwrap()
            .contains("redis unavailable"),
        "{d}"
    );
    let (status, _) = connect_status(&a.url("session_id=newcomer"))
        .await
        .err()
        .expect("refused while down");
    assert_eq!(status, 503);

    r.restart().unwrap();
    let started = tokio::time::Instant::now();
    loop {
        let (status, _) = a.get("/health/ready").await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not ready again within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old connection's session was re-registered and its channel re-subscribed.
    c.send_json(chat("m-after", 8, 1)).await;
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    assert_eq!(
        c.read_stream("m-after").await,
        ((0..8).collect(), StreamStatus::Done)
    );
    assert_eq!(
        stored_indices(&r, "m-after").await,
        (0..8).collect::<Vec<_>>()
    );
    let mut fresh = connect(&a.url("session_id=newcomer")).await;
    fresh.send_json(chat("m-new", 3, 0)).await;
    assert!(matches!(fresh.recv().await, ServerMsg::Ack { .. }));
    assert_eq!(fresh.read_stream("m-new").await.1, StreamStatus::Done);
    a.stop().await;
}

#[tokio::test]
async fn a_hung_redis_trips_the_breaker_and_data_survives_it() {
    let r = redis();
    let a = node("node-a", &r).await;
    let mut c = connect(&a.url("session_id=hang")).await;
    c.send_json(chat("m-kept", 6, 0)).await;
    c.recv().await;
    c.read_stream("m-kept").await;
    let pid = r.pid().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    c.send_json(chat("m-hung", 5, 0)).await;
    let reply = c.recv().await; // answered within --redis-timeout, not hanging
    let resumed = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success();
    assert!(resumed);
    assert!(
        matches!(
            reply,
            ServerMsg::Error {
                code: ErrorCode::BrokerUnavailable,
                ..
            }
        ),
        "expected broker_unavailable, got {reply:?}"
    );
    let started = tokio::time::Instant::now();
    while a.get("/health/ready").await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not ready again within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stored_indices(&r, "m-kept").await,
        (0..6).collect::<Vec<_>>(),
        "list intact"
    );
    a.stop().await;
}

#[tokio::test]
async fn ten_sessions_across_three_nodes_stream_at_once_without_cross_talk() {
    let r = redis();
    let nodes = [
        node("n1", &r).await,
        node("n2", &r).await,
        node("n3", &r).await,
    ];
    // All tabs stay open until the channels were counted.
    let (streamed, counted) = (
        Arc::new(tokio::sync::Barrier::new(11)),
        Arc::new(tokio::sync::Barrier::new(11)),
    );
    let mut tasks = Vec::new();
    for i in 0..10usize {
        let (streamed, counted) = (streamed.clone(), counted.clone());
        // Each session has a tab on one node and another tab on the next node.
        let (home, other) = (
            nodes[i % 3].url(&format!("session_id=user{i}")),
            nodes[(i + 1) % 3].url(""),
        );
        tasks.push(tokio::spawn(async move {
            let mut tab1 = connect(&home).await;
            let other = other.replace(
                "/ws/chat",
                &format!("/ws/chat?session_id=user{i}&token={}", tab1.token),
            );
            let mut tab2 = connect(&other).await;
            let mid = format!("m-user{i}");
            tab1.send_json(chat(&mid, 12, 5)).await;
            assert_eq!(
                tab1.recv().await,
                ServerMsg::Ack {
                    message_id: mid.clone()
                }
            );
            // read_stream panics on any frame of another message.
            let (a, b) = tokio::join!(tab1.read_stream(&mid), tab2.read_stream(&mid));
            let all: Vec<u32> = (0..12).collect();
            assert_eq!(a, (all.clone(), StreamStatus::Done));
            assert_eq!(b, (all, StreamStatus::Done));
            for tab in [&mut tab1, &mut tab2] {
                tab.send_json(json!({"type":"echo","id":7,"ts":7})).await;
                assert!(
                    matches!(tab.recv().await, ServerMsg::Echo { id: 7, .. }),
                    "nothing else arrived"
                );
            }
            streamed.wait().await;
            counted.wait().await;
        }));
    }
    let all_streamed = tokio::time::timeout(Duration::from_secs(30), streamed.wait()).await;
    assert!(
        all_streamed.is_ok(),
        "a session task failed (its panic is printed above)"
    );
    let mut c = redis_conn(&r).await;
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("chat:stream:*")
        .query_async(&mut c)
        .await
        .unwrap();
    counted.wait().await;
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        channels.len(),
        10,
        "the seed's check sees one channel per session: {channels:?}"
    );
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test]
async fn cleanup_walks_every_page_of_large_session_and_stream_sets() {
    // More entries than one HSCAN/ZSCAN page, so a single pass must page.
    const N: usize = 1_300;
    let r = redis();
    let dead = RedisBroker::start(settings(&r, "dead")).unwrap();
    let sweeper = RedisBroker::start(settings(&r, "sweeper")).unwrap();
    ready(&dead).await;
    ready(&sweeper).await;
    let owner = Owner {
        session_id: "big".into(),
        token: "t".into(),
    };
    for i in 0..N {
        dead.open_stream(&owner, format!("m-{i}").into(), &plan(3))
            .await
            .unwrap();
    }
    let mut c = redis_conn(&r).await;
    let leases: Vec<String> = (0..N).map(|i| format!("stream:lease:m-{i}")).collect();
    let _: () = c.del(leases).await.unwrap();
    let stale = json!({"node": "gone", "connected_at": 0, "last_seen": 0}).to_string();
    let entries: Vec<(String, String)> =
        (0..N).map(|i| (format!("s-{i}"), stale.clone())).collect();
    let _: () = c.hset_multiple("sessions:active", &entries).await.unwrap();

    let report = sweeper.cleanup().await;
    assert_eq!(report.sessions, N);
    let left: usize = c.hlen("sessions:active").await.unwrap();
    assert_eq!(left, 0);
    // The take-over pass pages through streams:active the same way.
    let taken = sweeper.take_over_orphans(usize::MAX).await;
    assert_eq!(taken.len(), N);
    for i in [0, N / 2, N - 1] {
        let node: String = c.hget(format!("stream:meta:m-{i}"), "node").await.unwrap();
        assert_eq!(node, "sweeper", "m-{i}");
    }
    assert_eq!(
        sweeper.cleanup().await,
        Default::default(),
        "nothing left to clean"
    );
    assert!(
        sweeper.take_over_orphans(usize::MAX).await.is_empty(),
        "the sweeper holds every lease now"
    );
}
