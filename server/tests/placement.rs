//! `--pin`: each connection loop runs on its CPU, and each connection ends
//! up in the loop on the CPU its client's packets arrive on, moved there
//! once if its first loop was another. Alone in this file (its own
//! process), so no other test's node owns a thread it looks at.

mod support;

use server::placement::{allowed_cpus, pin_current};
use std::collections::BTreeMap;
use std::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

/// Clients per CPU.
const PER_CPU: usize = 8;
/// Echoes each client sends (and has answered) before the count.
const ECHOES: u64 = 3;

/// The CPUs thread `name` of this process may run on, as the kernel lists
/// them (`Cpus_allowed_list`).
fn allowed_list(name: &str) -> Option<String> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim() == name).then(|| std::fs::read_to_string(dir.join("status")).ok())?
        })
        .find_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_string())
        })
}

/// A client on the calling thread: the welcome, then `ECHOES` echoes.
fn client(url: &str, n: u64) -> WebSocket<TcpStream> {
    let addr = url.trim_start_matches("ws://").split('/').next().unwrap();
    let sock = TcpStream::connect(addr).expect("connect");
    let (mut ws, _) = tungstenite::client(url, sock).expect("handshake");
    let welcome = ws.read().expect("welcome");
    assert!(
        welcome.to_text().unwrap().contains("\"welcome\""),
        "{welcome:?}"
    );
    for i in 0..ECHOES {
        let id = n * 100 + i;
        let msg = format!(r#"{{"type":"echo","id":{id},"ts":1,"payload":"p"}}"#);
        ws.send(Message::text(msg)).expect("send");
        let reply = ws.read().expect("echo");
        let text = reply.to_text().unwrap();
        assert!(
            text.contains("\"echo\"") && text.contains(&format!("\"id\":{id}")),
            "{text}"
        );
    }
    ws
}

/// `wsnode_loop_connections` by its `cpu` label.
fn by_cpu(metrics: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("wsnode_loop_connections{"))
        .map(|l| {
            let cpu = l.split("cpu=\"").nth(1).unwrap().split('"').next().unwrap();
            let v = l.rsplit(' ').next().unwrap().parse().unwrap();
            (cpu.to_string(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_loops_own_the_connections_whose_packets_arrive_on_their_cpu() {
    let cpus = allowed_cpus();
    let node = support::start(&["--pin", "--threads", &cpus.len().to_string()]).await;
    // Loop i runs on the i-th CPU, and on it alone (the loops start with
    // the node's serving task, and pin themselves first thing).
    for (i, cpu) in cpus.iter().enumerate() {
        let name = format!("wsnode-loop-{i}");
        let want = cpu.to_string();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let got = allowed_list(&name);
            if got.as_deref() == Some(want.as_str()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} may run on {got:?}, expected {want}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    // PER_CPU clients on a thread pinned to each CPU: loopback takes their
    // packets in there. Kept open until the count.
    let url = node.url("");
    let threads: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(k, &cpu)| {
            let url = url.clone();
            std::thread::spawn(move || {
                pin_current(cpu).expect("pin the client");
                (0..PER_CPU)
                    .map(|j| client(&url, (k * PER_CPU + j) as u64))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let clients: Vec<_> = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("client thread"))
            .collect()
    })
    .await
    .unwrap();
    let (_, metrics) = node.get("/metrics").await;
    let want: BTreeMap<String, f64> = cpus
        .iter()
        .map(|c| (c.to_string(), PER_CPU as f64))
        .collect();
    assert_eq!(by_cpu(&metrics), want, "{metrics}");
    // Every connection entered once, and once more for each move.
    let total = (PER_CPU * cpus.len()) as f64;
    let moves = support::metric(&node, "wsnode_loop_moves_total").await;
    assert!(moves <= total, "{moves} moves for {total} connections");
    assert_eq!(
        support::metric(&node, "wsnode_loop_entries_total").await,
        total + moves
    );
    // Nothing lost on the way: each client's welcome and echoes, counted.
    assert_eq!(
        support::metric(&node, "wsnode_messages_in_total").await,
        total * ECHOES as f64
    );
    drop(clients);
    node.stop().await;
}

#[tokio::test]
async fn pin_needs_the_epoll_loops() {
    let e = server::embed::config_from_args(["--listen", "127.0.0.1:0", "--pin", "--io", "tasks"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("--pin") && e.contains("--io tasks"), "{e}");
}
