//! Answers outlive their node, on a real redis-server: a node that dies
//! mid-answer (SIGKILL) or stops (SIGTERM) has its answer taken over by
//! another node, with a new lease and a higher fencing token, and continued
//! from the next index; the client recovers it whole from the survivor. An
//! answer ends `interrupted` only when Redis lost what it needs, and of two
//! nodes racing to take a stream over exactly one wins.

#[path = "../../server/tests/support/mod.rs"]
mod support;

mod common;

use cluster::RedisServer;
use protocol::{ServerMsg, StreamStatus};
use redis::AsyncCommands;
use serde_json::json;
use server::broker::redis::{RedisBroker, RedisSettings};
use server::broker::{
    AnswerPlan, AttachRequest, Broker, BrokerError, ConnSink, Out, Owner, StreamLease,
};
use std::sync::Arc;
use std::time::Duration;
use support::{chat, connect, start_named};

/// Chunks of the answers cut here: 20 ms apart, so a kill after the third
/// leaves most of the answer to the survivor, and the rest streams in ~2 s.
const CHUNKS: u32 = 100;

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

/// Short TTLs and a take-over pass every `cleanup` (at most 1 s).
fn node_args(url: &str, cleanup: &str, lease: &str) -> Vec<String> {
    [
        "--redis",
        url,
        "--cleanup-interval",
        cleanup,
        "--node-ttl",
        "1s",
        "--redis-timeout",
        "500ms",
        "--lease-ttl",
        lease,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A node in this process that takes answers over: every 300 ms with
/// `passes`, otherwise only when a client recovers one (its only take-over
/// pass ran when it started).
async fn survivor(id: &str, r: &RedisServer, passes: bool) -> support::TestNode {
    let cleanup = if passes { "300ms" } else { "60s" };
    let args = node_args(&r.url(), cleanup, "2s");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let n = start_named(id, &args).await;
    let started = tokio::time::Instant::now();
    while n.get("/health/ready").await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(5), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n
}

/// A wsnode process (so it can be killed) on Redis, streaming answer `mid`
/// of [`CHUNKS`] to session `sid`: returns it with the session's token, the
/// chunk indices received so far (at least 3) and the stream's fencing token.
async fn victim_mid_answer(
    r: &RedisServer,
    id: &str,
    lease: &str,
    sid: &str,
    mid: &str,
) -> (cluster::NodeProcess, String, Vec<u32>, u64) {
    let args = node_args(&r.url(), "300ms", lease).into_iter().skip(2);
    let victim = cluster::NodeProcess::builder(common::wsnode())
        .node_id(id)
        .redis(r.url())
        .args(args)
        .start()
        .expect("victim node starts");
    let started = tokio::time::Instant::now();
    let ready = "GET /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    while support::raw_http(victim.addr(), ready).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "victim never ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = connect(&victim.ws_url(&format!("session_id={sid}"))).await;
    c.send_json(chat(mid, CHUNKS, 20)).await;
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    let mut got = Vec::new();
    while got.len() < 3 {
        if let ServerMsg::Chunk { index, .. } = c.recv().await {
            got.push(index);
        }
    }
    let fence: u64 = redis_conn(r)
        .await
        .hget(format!("stream:meta:{mid}"), "fence")
        .await
        .unwrap();
    (victim, c.token.clone(), got, fence)
}

/// Reconnect to `node` with the session's token, recover `mid` after the
/// last index received, and read it to its end: every index received
/// (`got` plus the rest) and how it ended.
async fn recover_rest(
    node: &support::TestNode,
    sid: &str,
    token: &str,
    mid: &str,
    mut got: Vec<u32>,
) -> (Vec<u32>, StreamStatus) {
    let mut c = connect(&node.url(&format!("session_id={sid}&token={token}"))).await;
    let last = *got.last().unwrap();
    c.send_json(json!({"type":"recover","message_id":mid,"last_index":last}))
        .await;
    match c.recv().await {
        ServerMsg::Recovered { from_index, .. } => assert_eq!(from_index, last + 1),
        other => panic!("expected recovered, got {other:?}"),
    }
    let (rest, status) = c.read_stream(mid).await;
    got.extend(rest);
    (got, status)
}

/// The `stream:meta` fields `node`, `fence` and `status` of `mid`.
async fn meta(r: &RedisServer, mid: &str) -> (String, u64, String) {
    let mut c = redis_conn(r).await;
    let (node, fence, status): (String, u64, String) = redis::cmd("HMGET")
        .arg(format!("stream:meta:{mid}"))
        .arg("node")
        .arg("fence")
        .arg("status")
        .query_async(&mut c)
        .await
        .unwrap();
    (node, fence, status)
}

#[tokio::test]
async fn a_sigkilled_nodes_answer_is_taken_over_and_recovered_whole_from_another_node() {
    let r = redis();
    let (mut victim, token, got, fence) =
        victim_mid_answer(&r, "victim", "2s", "crash", "m-crash").await;
    let survivor = survivor("survivor", &r, true).await;
    victim.kill(); // SIGKILL: no goodbye to Redis
    let mut rc = redis_conn(&r).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // The survivor's pass takes the answer over without being asked, and
        // its cleanup removes the dead node's session entry.
        let entry: Option<String> = rc.hget("sessions:active", "crash").await.unwrap();
        let (node, _, _) = meta(&r, "m-crash").await;
        if entry.is_none() && node == "survivor" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 10 s: entry {entry:?}, stream generated by {node}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (all, status) = recover_rest(&survivor, "crash", &token, "m-crash", got).await;
    assert_eq!(status, StreamStatus::Done);
    assert_eq!(all, (0..CHUNKS).collect::<Vec<_>>(), "no gap, no duplicate");
    let (node, new_fence, status) = meta(&r, "m-crash").await;
    assert_eq!((node.as_str(), status.as_str()), ("survivor", "done"));
    assert!(new_fence > fence, "fence {new_fence} > {fence}");
    survivor.stop().await;
}

#[tokio::test]
async fn a_recover_takes_a_crashed_nodes_answer_over_at_once_not_after_its_lease() {
    let r = redis();
    // A lease far longer than the test, and no take-over pass on the
    // survivor: only the recover, seeing the holder gone, can move it.
    let (mut victim, token, got, _) =
        victim_mid_answer(&r, "victim2", "60s", "crash2", "m-crash2").await;
    let survivor = survivor("survivor2", &r, false).await;
    victim.kill();
    let killed = tokio::time::Instant::now();
    let (all, status) = recover_rest(&survivor, "crash2", &token, "m-crash2", got).await;
    assert_eq!(status, StreamStatus::Done);
    assert_eq!(all, (0..CHUNKS).collect::<Vec<_>>());
    assert!(
        killed.elapsed() < Duration::from_secs(30),
        "well within the 60 s lease"
    );
    survivor.stop().await;
}

#[tokio::test]
async fn an_answer_whose_chunks_redis_lost_ends_interrupted() {
    let r = redis();
    let (mut victim, token, got, _) =
        victim_mid_answer(&r, "victim3", "2s", "lost", "m-lost").await;
    let survivor = survivor("survivor3", &r, false).await;
    victim.kill();
    let _: () = redis_conn(&r)
        .await
        .del("stream:chunks:m-lost")
        .await
        .unwrap();
    let (all, status) = recover_rest(&survivor, "lost", &token, "m-lost", got.clone()).await;
    assert_eq!(status, StreamStatus::Interrupted, "no node can continue it");
    assert_eq!(all, got, "nothing more to replay");
    assert_eq!(meta(&r, "m-lost").await.2, "interrupted");
    survivor.stop().await;
}

#[tokio::test]
async fn a_node_stopped_with_sigterm_hands_its_answer_over() {
    let r = redis();
    // A lease longer than the test: the hand-over, not its expiry, frees it.
    let (mut victim, token, got, fence) =
        victim_mid_answer(&r, "victim4", "60s", "term", "m-term").await;
    let survivor = survivor("survivor4", &r, true).await;
    victim.terminate(); // SIGTERM, as `docker stop`
    assert!(
        victim.log_count("Stream handed over") >= 1,
        "{}",
        victim.log()
    );
    let (all, status) = recover_rest(&survivor, "term", &token, "m-term", got).await;
    assert_eq!(status, StreamStatus::Done);
    assert_eq!(all, (0..CHUNKS).collect::<Vec<_>>());
    let (node, new_fence, _) = meta(&r, "m-term").await;
    assert_eq!(node, "survivor4");
    assert!(new_fence > fence);
    survivor.stop().await;
}

fn settings(r: &RedisServer, node: &str, skip_fencing: bool) -> RedisSettings {
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
        skip_fencing,
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
    ServerMsg::Chunk {
        message_id: mid.into(),
        index: i,
        text,
    }
    .to_json()
    .into()
}

/// A stream opened by `dead` with chunk 0 written, whose lease then lapsed.
async fn orphan(r: &RedisServer, dead: &RedisBroker, mid: &str) -> StreamLease {
    let owner = Owner {
        session_id: "race".into(),
        token: "t".into(),
    };
    let plan = AnswerPlan {
        chunks: 3,
        interval: Duration::ZERO,
        chunk_size: 8,
        prompt: "q".into(),
    };
    let lease = dead.open_stream(&owner, mid.into(), &plan).await.unwrap();
    dead.append_chunk(&lease, 0, chunk_frame(mid, 0))
        .await
        .unwrap();
    let _: () = redis_conn(r)
        .await
        .del(format!("stream:lease:{mid}"))
        .await
        .unwrap();
    lease
}

#[tokio::test]
async fn of_two_nodes_racing_to_take_a_stream_over_exactly_one_wins() {
    let r = redis();
    let dead = RedisBroker::start(settings(&r, "dead", false)).unwrap();
    let a = Arc::new(RedisBroker::start(settings(&r, "a", false)).unwrap());
    let b = Arc::new(RedisBroker::start(settings(&r, "b", false)).unwrap());
    for x in [&dead, &*a, &*b] {
        ready(x).await;
    }
    let mut winners = [0, 0];
    for round in 0..20 {
        let mid = format!("m-race-{round}");
        let old = orphan(&r, &dead, &mid).await;
        // Each node asks four times at once (a pass and three recovers).
        let mut tries = Vec::new();
        for (n, broker) in [a.clone(), b.clone()].into_iter().enumerate() {
            for _ in 0..4 {
                let (broker, mid) = (broker.clone(), mid.clone());
                tries.push(tokio::spawn(async move {
                    (n, broker.take_over(&mid).await.unwrap())
                }));
            }
        }
        let mut won = Vec::new();
        for t in tries {
            if let (n, Some(t)) = t.await.unwrap() {
                won.push((n, t));
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        let (n, t) = won.pop().unwrap();
        winners[n] += 1;
        assert!(t.lease.fence > old.fence);
        assert_eq!(t.next, 1);
        // Only the winner writes: the owner taken for dead is fenced.
        assert_eq!(
            dead.append_chunk(&old, 1, chunk_frame(&mid, 1)).await,
            Err(BrokerError::Fenced)
        );
        let winner = if n == 0 { &a } else { &b };
        winner
            .append_chunk(&t.lease, 1, chunk_frame(&mid, 1))
            .await
            .unwrap();
    }
    assert_eq!(winners[0] + winners[1], 20, "{winners:?}");
}

#[tokio::test]
async fn a_node_with_the_skip_fencing_fault_takes_over_with_the_dead_owners_token() {
    let r = redis();
    let dead = RedisBroker::start(settings(&r, "dead", false)).unwrap();
    let broken = RedisBroker::start(settings(&r, "broken", true)).unwrap();
    ready(&dead).await;
    ready(&broken).await;
    let old = orphan(&r, &dead, "m-unfenced").await;
    let t = broken
        .take_over("m-unfenced")
        .await
        .unwrap()
        .expect("taken");
    assert_eq!(t.lease.fence, old.fence, "no new token");
    // What fencing is for: the owner taken for dead can still write.
    dead.append_chunk(&old, 1, chunk_frame("m-unfenced", 1))
        .await
        .unwrap();
}

/// Block redis-server for `ms` milliseconds (a Lua busy loop: every
/// client's command waits behind it, as behind a slow disk or a busy host).
async fn stall_redis(r: &RedisServer, ms: u64) {
    let script = "local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] \
        while true do t = redis.call('TIME') \
        if t[1] * 1000000 + t[2] - start >= tonumber(ARGV[1]) * 1000 then return 1 end end";
    // Without redis-rs's 500 ms default reply timeout, which would give up on it.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut c = redis::Client::open(r.url())
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let _: i64 = redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .arg(ms)
        .query_async(&mut c)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_redis_stall_shorter_than_the_redis_timeout_does_not_interrupt_an_answer() {
    // The soak's interrupted answers and broker_unavailable errors: the
    // command connection gave up after redis-rs's own 500 ms default, not
    // after --redis-timeout, so a busy moment opened the breaker.
    let r = redis();
    let args = node_args(&r.url(), "60s", "10s");
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let at = args.iter().position(|a| *a == "--redis-timeout").unwrap();
    args[at + 1] = "3s";
    let n = start_named("patient", &args).await;
    while n.get("/health/ready").await.0 != 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut c = connect(&n.url("session_id=stall")).await;
    c.send_json(chat("m-stall", 20, 50)).await;
    assert!(matches!(c.recv().await, ServerMsg::Ack { .. }));
    let mut got = Vec::new();
    while got.len() < 3 {
        if let ServerMsg::Chunk { index, .. } = c.recv().await {
            got.push(index);
        }
    }
    stall_redis(&r, 1200).await;
    let (rest, status) = c.read_stream("m-stall").await;
    got.extend(rest);
    assert_eq!(status, StreamStatus::Done, "chunks {got:?}");
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(n.get("/health/ready").await.0, 200);
    n.stop().await;
}

#[tokio::test]
async fn the_end_a_node_publishes_carries_the_chunk_count() {
    // A connection that got fewer chunks than the end counts (a Pub/Sub
    // message lost) fetches the rest before the end (ws::delivery); the
    // end published through Redis said 0 chunks, so the check never fired.
    let r = redis();
    let b = RedisBroker::start(settings(&r, "counter", false)).unwrap();
    ready(&b).await;
    let (sink, mut rx, _overflow) = ConnSink::new(1, 64);
    let req = AttachRequest {
        session_id: "count".into(),
        token: None,
    };
    let owner = b.attach(req, sink).await.unwrap().session;
    let plan = AnswerPlan {
        chunks: 2,
        interval: Duration::ZERO,
        chunk_size: 8,
        prompt: "q".into(),
    };
    let lease = b
        .open_stream(&owner, "m-count".into(), &plan)
        .await
        .unwrap();
    for i in 0..2 {
        let frame = chunk_frame("m-count", i);
        b.append_chunk(&lease, i, frame).await.unwrap();
    }
    let done = ServerMsg::Done {
        message_id: "m-count".into(),
        chunks: 2,
    };
    b.finish_stream(&lease, StreamStatus::Done, done.to_json().into())
        .await
        .unwrap();
    loop {
        let out = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the end arrives");
        if let Out::End(e) = out {
            assert_eq!((&*e.message_id, e.index), ("m-count", 2));
            break;
        }
    }
}
