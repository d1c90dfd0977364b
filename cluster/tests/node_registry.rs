//! The node registry in Redis (`nodes:active`), on a real redis-server: a
//! node registers its id, advertised URL, pid and host with its heartbeat,
//! removes its entry when it stops, and a crashed node's entry is removed by
//! another node's cleanup once its liveness key has expired.

use cluster::RedisServer;
use protocol::NodeRegistration;
use protocol::health::{NODES_KEY, node_alive_key};
use redis::AsyncCommands;
use server::broker::Broker;
use server::broker::redis::{Advert, RedisBroker, RedisSettings};
use std::collections::HashMap;
use std::time::Duration;

fn settings(r: &RedisServer, node: &str) -> RedisSettings {
    RedisSettings {
        url: r.url(),
        node_id: node.into(),
        session_ttl: Duration::from_secs(30),
        stream_ttl: Duration::from_secs(60),
        // Short, so a crashed node's entry is stale within the test.
        node_ttl: Duration::from_millis(300),
        lease_ttl: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        max_sessions: 1000,
        streams_in_welcome: 16,
        skip_fencing: false,
    }
}

async fn registry(r: &RedisServer) -> HashMap<String, NodeRegistration> {
    let mut c = redis::Client::open(r.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let raw: HashMap<String, String> = c.hgetall(NODES_KEY).await.unwrap();
    raw.into_iter()
        .map(|(k, v)| (k, serde_json::from_str(&v).expect("a registration")))
        .collect()
}

/// Wait (bounded) until the registry holds exactly `ids`.
async fn wait_for(r: &RedisServer, ids: &[&str]) -> HashMap<String, NodeRegistration> {
    for _ in 0..100 {
        let reg = registry(r).await;
        let mut got: Vec<&str> = reg.keys().map(String::as_str).collect();
        got.sort();
        if got == ids {
            return reg;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the registry never held {ids:?}: {:?}", registry(r).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_register_deregister_and_crashed_ones_are_cleaned_up() {
    let r =
        RedisServer::start().expect("redis-server must be installed (scripts/test.sh installs it)");
    let advert = |port: u16| Advert {
        url: Some(format!("ws://127.0.0.1:{port}/ws/chat")),
        host: "box".into(),
    };
    let a = RedisBroker::start_advertised(settings(&r, "reg-a"), advert(8081)).unwrap();
    let b = RedisBroker::start_advertised(settings(&r, "reg-b"), advert(8082)).unwrap();
    let c = RedisBroker::start(settings(&r, "reg-c")).unwrap();
    let reg = wait_for(&r, &["reg-a", "reg-b", "reg-c"]).await;
    let entry = &reg["reg-b"];
    assert_eq!(entry.url.as_deref(), Some("ws://127.0.0.1:8082/ws/chat"));
    assert_eq!(
        (entry.pid, entry.host.as_str()),
        (std::process::id(), "box")
    );
    assert!(entry.last_seen_ms > 0);
    assert_eq!(reg["reg-c"].url, None, "a node that advertises nothing");

    // A node that stops deregisters.
    b.close().await;
    drop(b);
    wait_for(&r, &["reg-a", "reg-c"]).await;

    // A crashed node (no close) leaves its entry until its liveness key has
    // expired and another node's cleanup sees it gone.
    drop(c);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut conn = redis::Client::open(r.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let alive: bool = conn.exists(node_alive_key("reg-c")).await.unwrap();
    assert!(!alive, "reg-c's liveness key expired");
    assert!(registry(&r).await.contains_key("reg-c"));
    a.cleanup().await;
    wait_for(&r, &["reg-a"]).await;
    a.close().await;
}
