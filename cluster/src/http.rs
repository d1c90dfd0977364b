//! A tiny blocking HTTP/1.1 GET for health checks.
//!
//! Health probes run in start-up loops, in `wscluster status` and in
//! `wscluster health`; a few lines over `TcpStream` with hard timeouts keep
//! this crate free of an HTTP client stack and of any async runtime.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Responses larger than this are cut (health answers are a few hundred bytes).
const MAX_RESPONSE: usize = 1 << 20;

/// GET `path` from `addr`; returns the status code and the body. The whole
/// exchange (connect, write, read) finishes within `timeout` or fails.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_write_timeout(Some(timeout))?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "response not complete in time",
            ));
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut chunk)? {
            0 => break,
            n => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() >= MAX_RESPONSE {
                    break;
                }
            }
        }
    }
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> std::io::Result<(u16, String)> {
    let text = String::from_utf8_lossy(buf);
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let status_line = text.lines().next().ok_or_else(bad)?;
    if !status_line.starts_with("HTTP/1.") {
        return Err(bad());
    }
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Split `http://HOST:PORT/PATH` into a socket address and a path. HOST is
/// an IP address or `localhost`; there is no TLS and no DNS beyond that.
pub fn parse_url(url: &str) -> Option<(SocketAddr, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let addr = if let Some(port) = authority.strip_prefix("localhost:") {
        SocketAddr::from(([127, 0, 0, 1], port.parse().ok()?))
    } else {
        authority.parse().ok()?
    };
    Some((addr, path))
}

/// Whether a `host:port` string names a socket address we can reach
/// (`0.0.0.0` and `[::]` become loopback: a listener on all interfaces).
pub fn probe_addr(listen: &str) -> Option<SocketAddr> {
    let mut addr = listen.to_socket_addrs().ok()?.next()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => [127, 0, 0, 1].into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("http://127.0.0.1:8081/health"),
            Some((SocketAddr::from(([127, 0, 0, 1], 8081)), "/health".into()))
        );
        assert_eq!(
            parse_url("http://localhost:9/"),
            Some((SocketAddr::from(([127, 0, 0, 1], 9)), "/".into()))
        );
        assert_eq!(parse_url("http://[::1]:80").map(|u| u.1), Some("/".into()));
        assert_eq!(parse_url("https://127.0.0.1:1/"), None);
        assert_eq!(parse_url("http://127.0.0.1/"), None, "port required");
        assert_eq!(parse_url("http://example:99999/"), None);
    }

    #[test]
    fn listen_addresses_become_probe_addresses() {
        assert_eq!(
            probe_addr("0.0.0.0:8081"),
            Some(SocketAddr::from(([127, 0, 0, 1], 8081)))
        );
        assert_eq!(
            probe_addr("[::]:8082").map(|a| a.ip().is_loopback()),
            Some(true)
        );
        assert_eq!(probe_addr("nonsense"), None);
    }

    #[test]
    fn responses() {
        let (code, body) = parse_response(b"HTTP/1.1 503 X\r\nA: b\r\n\r\n{\"s\":1}").unwrap();
        assert_eq!((code, body.as_str()), (503, "{\"s\":1}"));
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"").is_err());
    }

    #[test]
    fn get_against_a_one_shot_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).unwrap();
            assert!(String::from_utf8_lossy(&req[..n]).starts_with("GET /health HTTP/1.1"));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
        });
        let (code, body) = get(addr, "/health", Duration::from_secs(5)).unwrap();
        assert_eq!((code, body.as_str()), (200, "ok"));
        t.join().unwrap();
    }

    #[test]
    fn get_times_out_on_a_silent_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        // Accepted by the kernel backlog, never answered.
        let err = get(addr, "/", Duration::from_millis(300)).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            "{err:?}"
        );
        drop(l);
    }
}
