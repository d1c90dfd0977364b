//! One WebSocket target, parsed from `--url` once, so the connect path never
//! re-parses a URL.

use crate::config::error::{ConfigError, bad};
use std::net::{SocketAddr, ToSocketAddrs};

/// One `ws://` or `wss://` `host:port/path?query` target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub url: String,
    /// `wss://`: TLS over the TCP connection.
    pub tls: bool,
    /// `host:port` as given, for the Host header.
    pub authority: String,
    /// The host alone (no port, no brackets), for TLS's server name.
    pub host: String,
    /// Path and query without the session parameters.
    pub path: String,
    pub addr: SocketAddr,
}

impl Target {
    /// The request path with `session_id` appended to its query.
    pub fn with_session(&self, session: &str) -> String {
        let sep = if self.path.contains('?') { '&' } else { '?' };
        format!("{}{sep}session_id={session}", self.path)
    }
}

/// Parse `ws[s]://host[:port][/path][?query]`.
pub fn parse_url(u: &str) -> Result<Target, ConfigError> {
    let (tls, rest) = if let Some(r) = u.strip_prefix("ws://") {
        (false, r)
    } else if let Some(r) = u.strip_prefix("wss://") {
        (true, r)
    } else {
        return bad(format!(
            "--url {u:?} is not a ws:// or wss:// URL, e.g. --url ws://127.0.0.1:8080/ws/chat"
        ));
    };
    let default_port = if tls { 443 } else { 80 };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if authority.is_empty() || authority.contains('@') {
        return bad(format!("--url {u}: missing or unsupported host"));
    }
    if path.contains('#') || path.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return bad(format!(
            "--url {u}: the path must be plain ASCII without spaces or '#'"
        ));
    }
    let (with_port, host) = if let Some(inner) = authority.strip_prefix('[') {
        let host = inner.split(']').next().unwrap_or(inner).to_string();
        if authority.contains("]:") {
            (authority.to_string(), host)
        } else {
            (format!("{authority}:{default_port}"), host)
        }
    } else if let Some((h, _)) = authority.split_once(':') {
        (authority.to_string(), h.to_string())
    } else {
        (format!("{authority}:{default_port}"), authority.to_string())
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| ConfigError(format!("--url {u}: cannot resolve {with_port}: {e}")))?
        .next()
        .ok_or_else(|| ConfigError(format!("--url {u}: {with_port} resolves to nothing")))?;
    Ok(Target {
        url: u.to_string(),
        tls,
        authority: authority.to_string(),
        host,
        path,
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let t = parse_url("ws://127.0.0.1:9000/ws/chat?x=1").unwrap();
        assert_eq!(t.authority, "127.0.0.1:9000");
        assert_eq!(t.path, "/ws/chat?x=1");
        assert_eq!(t.addr.port(), 9000);
        assert_eq!(t.with_session("s1"), "/ws/chat?x=1&session_id=s1");
        let root = parse_url("ws://127.0.0.1").unwrap();
        assert_eq!(root.path, "/");
        assert_eq!(root.with_session("s1"), "/?session_id=s1");
        assert!(parse_url("http://x").is_err());
        let s = parse_url("wss://localhost:8443/ws").unwrap();
        assert!(s.tls && !t.tls);
        assert_eq!((s.host.as_str(), s.addr.port()), ("localhost", 8443));
        assert_eq!(parse_url("wss://127.0.0.1/").unwrap().addr.port(), 443);
        assert_eq!(parse_url("ws://[::1]/").unwrap().host, "::1");
        assert!(parse_url("ws:///x").is_err());
    }
}
