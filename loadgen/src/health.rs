//! Finding local node processes from their `/health/stats` endpoint.
//!
//! wsnode reports its pid there; when a `--url` target is on this machine
//! (a loopback address), loadgen monitors that pid like `--node-pid`, so a
//! local multi-node setup gets Node 1/2/3 CPU and memory without flags.
//! Only the given targets are contacted; the answer is read with a size and
//! time bound.

use crate::config::Target;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: usize = 64 * 1024;
const WAIT: Duration = Duration::from_secs(2);

/// The pid a loopback target's `/health/stats` reports, if any.
pub async fn local_pid(t: &Target) -> Option<u32> {
    if !t.addr.ip().is_loopback() {
        return None;
    }
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
    if !head.starts_with("HTTP/1.") || !head.split(' ').nth(1).is_some_and(|c| c == "200") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    let pid = u32::try_from(v.get("pid")?.as_u64()?).ok()?;
    // Only a pid that exists here and is a node is ours to watch: a node in
    // a container reports a pid of its own namespace (often 1), which on the
    // host belongs to some other process.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    looks_like_node(&cmdline).then_some(pid)
}

/// wsnode, or loadgen running the embedded node.
fn looks_like_node(cmdline: &[u8]) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let exe = args
        .first()
        .map(|a| a.rsplit(|&b| b == b'/').next().unwrap_or(a));
    exe == Some(&b"wsnode"[..]) || args.contains(&&b"__node"[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_node_processes() {
        assert!(looks_like_node(b"/usr/local/bin/wsnode\0--listen\0:8081\0"));
        assert!(looks_like_node(
            b"target/release/loadgen\0__node\0--listen\0"
        ));
        assert!(!looks_like_node(b"/sbin/init\0"));
        assert!(!looks_like_node(b"/usr/bin/wsnode-helper\0"));
        assert!(!looks_like_node(b""));
    }
}
