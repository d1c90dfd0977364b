//! Measure wsnode's resident memory per idle WebSocket connection.
//!
//! Starts `target/release/wsnode` as a child process, reads its RSS
//! (VmRSS from /proc), opens N connections that each read their welcome
//! frame and then stay idle, reads the RSS again, and prints the growth per
//! connection. The client's own memory is not part of the figure.
//!
//! The figure varies from run to run (allocator reuse depends on how the
//! handshakes interleave), so it repeats the measurement with a fresh node
//! each time and reports every run, the median and the worst.
//!
//! cargo build --release -p server && \
//!   cargo run --release -p server --example idle_memory -- 10000 5

use futures_util::StreamExt;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("node is running");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[tokio::main]
async fn main() {
    let arg = |n: usize, default: usize| {
        std::env::args()
            .nth(n)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (conns, runs) = (arg(1, 10_000), arg(2, 3).max(1));
    let mut per_conn = Vec::with_capacity(runs);
    for run in 1..=runs {
        let (before, after) = measure(conns).await;
        let bytes = after.saturating_sub(before) as f64 * 1024.0 / conns as f64;
        println!(
            "run {run}: RSS {before} KiB -> {after} KiB with {conns} idle connections: \
             {bytes:.0} bytes per connection"
        );
        per_conn.push(bytes);
    }
    per_conn.sort_by(f64::total_cmp);
    let median = per_conn[per_conn.len() / 2];
    let worst = per_conn[per_conn.len() - 1];
    println!(
        "RSS growth per idle connection over {runs} runs: median {median:.0} bytes ({:.2} KiB), \
         worst {worst:.0} bytes ({:.2} KiB)",
        median / 1024.0,
        worst / 1024.0
    );
}

/// Node RSS (KiB) before and after opening `conns` idle connections.
async fn measure(conns: usize) -> (u64, u64) {
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("wsnode");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p server ({})",
        bin.display()
    );
    let mut child = Command::new(&bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--ping-interval",
            "10m",
            "--idle-timeout",
            "20m",
        ])
        .env("RUST_LOG", "warn,server=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start wsnode");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("wsnode prints its address").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Drain the node's log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = rss_kib(child.id());

    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let mut handles = Vec::with_capacity(conns);
    for i in 0..conns {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let url = format!("ws://{addr}/ws/chat?session_id=idle_{i}");
        handles.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            ws.next().await.expect("welcome").expect("welcome frame");
            drop(permit);
            ws
        }));
    }
    let mut open = Vec::with_capacity(conns);
    for h in handles {
        open.push(h.await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(child.id());
    drop(open);
    let _ = child.kill();
    let _ = child.wait();
    (before, after)
}
