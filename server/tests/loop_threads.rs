//! The node's epoll loops are threads of their own (`ws::steady`): they
//! must start with the node, one per `--threads`, and end with it, whether
//! it stops on a shutdown or its runtime is dropped. Alone in this file
//! (its own process), so no other test's node owns a thread it counts.

use server::embed::config_from_args;
use std::time::{Duration, Instant};

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Wait (5 s at most) until exactly `want` loop threads are left.
fn loop_threads_become(want: usize, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = threads_named("wsnode-loop");
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: {got} loop threads, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn loop_threads_start_with_the_node_and_end_with_it() {
    assert_eq!(threads_named("wsnode-loop"), 0);

    // A node on its own runtime, dropped: the runtime's end stops its loops.
    let node = server::embed::EmbeddedNode::start_blocking(
        config_from_args(["--listen", "127.0.0.1:0", "--threads", "2"]).expect("valid options"),
    )
    .expect("node starts");
    loop_threads_become(2, "a running node with --threads 2");
    // A connection in a loop when the node goes.
    let mut ws = std::net::TcpStream::connect(node.addr()).expect("connect");
    std::io::Write::write_all(
        &mut ws,
        b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .expect("upgrade request");
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut ws, &mut head).expect("upgrade answer");
    assert_eq!(&head, b"HTTP/1.1 101");
    drop(node);
    loop_threads_become(0, "after the node's runtime was dropped");

    // A node on the caller's runtime, stopped by its shutdown signal.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let node = server::embed::EmbeddedNode::start(
            config_from_args(["--listen", "127.0.0.1:0", "--threads", "3"]).expect("valid options"),
        )
        .await
        .expect("node starts");
        tokio::task::spawn_blocking(|| loop_threads_become(3, "a running node with --threads 3"))
            .await
            .expect("count");
        node.stop().await;
        tokio::task::spawn_blocking(|| loop_threads_become(0, "after the node stopped"))
            .await
            .expect("count");
    });
}
