//! Finding the servers' processes, or their figures, from the servers.
//!
//! wsnode reports its pid, CPU and RSS on `/health/stats`; redis-server
//! reports its pid, CPU time and RSS in `INFO`. When the process is on this
//! machine loadgen monitors the pid with sysinfo (like `--node-pid`), so a
//! local multi-node setup gets Node 1/2/3 CPU and memory without flags;
//! otherwise (another host, a container) a poller reads the server's own
//! figures once a second. Only the given targets (and, with `--redis`, the
//! nodes registered there) are contacted, and every answer is read with a
//! size and time bound.

use crate::config::target::Target;
use crate::monitor::procs::{Reading, Slot};
use crate::monitor::resp;
use protocol::HealthStats;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: usize = 64 * 1024;
const WAIT: Duration = Duration::from_secs(2);

/// A bounded HTTP/1.0 GET of `/health/stats`, parsed as the node writes it.
pub async fn fetch_stats(t: &Target) -> Option<HealthStats> {
    let fetch = async {
        let mut s = TcpStream::connect(t.addr).await.ok()?;
        let req = format!(
            "GET /health/stats HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
            t.authority
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        (&mut s)
            .take(LIMIT as u64)
            .read_to_end(&mut buf)
            .await
            .ok()?;
        Some(buf)
    };
    let buf = tokio::time::timeout(WAIT, fetch).await.ok()??;
    let text = std::str::from_utf8(&buf).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.") || head.split(' ').nth(1) != Some("200") {
        return None;
    }
    serde_json::from_str(body.trim()).ok()
}

/// Whether `pid` is a node process on this machine. Only a pid that exists
/// here and is a node is ours to watch: a node in a container reports a pid
/// of its own namespace (often 1), which on the host is some other process.
pub fn local_node(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| looks_like_node(&c, b"wsnode"))
}

/// What the monitor keeps of a node's `/health/stats`.
fn stats_reading(s: &HealthStats, replaced: bool) -> Reading {
    Reading {
        cpu_pct: f64::from(s.cpu_pct),
        rss_bytes: s.rss_bytes,
        connections: Some(s.connections),
        connections_total: Some(s.connections_total),
        replaced,
    }
}

/// A node's first `/health/stats`, then a task that refreshes its figures
/// every second until aborted. Answers from another node (a balancer in
/// between) are not this node's; an answer with another pid or a smaller
/// uptime comes from a restarted process, which is not the one measured.
pub async fn poll_node(t: Target) -> Option<(HealthStats, Slot, tokio::task::JoinHandle<()>)> {
    let first = fetch_stats(&t).await?;
    let slot: Slot = Default::default();
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats_reading(&first, false));
    let w = slot.clone();
    let (id, pid, mut uptime) = (first.node_id.clone(), first.pid, first.uptime_secs);
    let task = tokio::spawn(async move {
        let mut replaced = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let r = fetch_stats(&t).await.filter(|s| s.node_id == id).map(|s| {
                replaced |= s.pid != pid || s.uptime_secs < uptime;
                uptime = s.uptime_secs;
                stats_reading(&s, replaced)
            });
            *w.lock().unwrap_or_else(|e| e.into_inner()) = r;
        }
    });
    Some((first, slot, task))
}

/// Fields of redis `INFO` that loadgen uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisInfo {
    pub pid: u32,
    /// used_cpu_sys + used_cpu_user, seconds since redis started.
    pub cpu_secs: f64,
    pub rss_bytes: u64,
}

pub fn parse_info(text: &str) -> Option<RedisInfo> {
    let mut pid = None;
    let (mut sys, mut user, mut rss) = (None, None, None);
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once(':') else {
            continue;
        };
        match k {
            "process_id" => pid = v.parse().ok(),
            "used_cpu_sys" => sys = v.parse::<f64>().ok(),
            "used_cpu_user" => user = v.parse::<f64>().ok(),
            "used_memory_rss" => rss = v.parse().ok(),
            _ => {}
        }
    }
    Some(RedisInfo {
        pid: pid?,
        cpu_secs: sys? + user?,
        rss_bytes: rss?,
    })
}

/// `INFO`, with size and time bounds.
pub async fn redis_info(addr: SocketAddr) -> Option<RedisInfo> {
    parse_info(resp::command(addr, &["INFO"]).await?.text()?)
}

/// Is `pid` a redis-server on this machine?
pub fn local_redis(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| looks_like_node(&c, b"redis-server"))
}

/// Poll redis `INFO` every second: CPU % from the CPU-time deltas.
pub fn poll_redis(addr: SocketAddr, first: RedisInfo) -> (Slot, tokio::task::JoinHandle<()>) {
    let reading = |cpu_pct, rss_bytes| Reading {
        cpu_pct,
        rss_bytes,
        ..Reading::default()
    };
    let slot: Slot = Default::default();
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(reading(0.0, first.rss_bytes));
    let w = slot.clone();
    let task = tokio::spawn(async move {
        let mut prev = (Instant::now(), first.cpu_secs);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let s = redis_info(addr).await.map(|i| {
                let now = Instant::now();
                let dt = (now - prev.0).as_secs_f64().max(0.001);
                let cpu = ((i.cpu_secs - prev.1) / dt * 100.0).max(0.0);
                prev = (now, i.cpu_secs);
                reading(cpu, i.rss_bytes)
            });
            *w.lock().unwrap_or_else(|e| e.into_inner()) = s;
        }
    });
    (slot, task)
}

/// `name` (wsnode, redis-server), or loadgen running the embedded node.
fn looks_like_node(cmdline: &[u8], name: &[u8]) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let exe = args
        .first()
        .map(|a| a.rsplit(|&b| b == b'/').next().unwrap_or(a));
    // redis-server rewrites its argv[0] to "redis-server host:port".
    let exe = exe.map(|e| e.split(|&b| b == b' ').next().unwrap_or(e));
    exe == Some(name) || (name == b"wsnode" && args.contains(&&b"__node"[..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_node_processes() {
        let node = |c: &[u8]| looks_like_node(c, b"wsnode");
        assert!(node(b"/usr/local/bin/wsnode\0--listen\0:8081\0"));
        assert!(node(b"target/release/loadgen\0__node\0--listen\0"));
        assert!(!node(b"/sbin/init\0"));
        assert!(!node(b"/usr/bin/wsnode-helper\0"));
        assert!(!node(b""));
        assert!(looks_like_node(
            b"/usr/bin/redis-server 127.0.0.1:6379\0\0",
            b"redis-server"
        ));
        assert!(!looks_like_node(
            b"/usr/bin/redis-server 127.0.0.1:6379\0",
            b"wsnode"
        ));
    }

    #[test]
    fn parses_redis_info() {
        let text = "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.25\r\n# Memory\r\nused_memory_rss:1048576\r\n";
        assert_eq!(
            parse_info(text),
            Some(RedisInfo {
                pid: 4242,
                cpu_secs: 3.75,
                rss_bytes: 1 << 20
            })
        );
        assert_eq!(parse_info("nonsense"), None);
    }
}
