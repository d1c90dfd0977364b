//! The nodes seen from outside: their health endpoints and their logs.

use std::path::PathBuf;
use std::time::Duration;

/// One node of the deployment.
#[derive(Debug, Clone)]
pub struct NodeTarget {
    /// `http://HOST:PORT`, for `/health` and `/health/stats`.
    pub http: String,
    /// `ws://HOST:PORT/ws/chat`, to connect to this node directly.
    pub ws: String,
    /// Its log file, when known.
    pub log: Option<PathBuf>,
}

impl NodeTarget {
    /// From `http://HOST:PORT[/...]` or `ws://HOST:PORT[/...]`.
    pub fn from_url(url: &str, log: Option<PathBuf>) -> Result<NodeTarget, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ws://"))
            .ok_or_else(|| format!("--node-url {url}: expected http://HOST:PORT"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("--node-url {url}: expected http://HOST:PORT"));
        }
        Ok(NodeTarget {
            http: format!("http://{authority}"),
            ws: format!("ws://{authority}/ws/chat"),
            log,
        })
    }

    /// `GET path`: status and body.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.http);
        let (addr, path) = cluster::http::parse_url(&url)
            .ok_or_else(|| format!("{url}: only IP addresses and localhost are supported"))?;
        cluster::http::get(addr, &path, Duration::from_secs(3))
            .map_err(|e| format!("GET {url}: {e}"))
    }

    /// `GET /health` answered 200.
    pub fn healthy(&self) -> bool {
        matches!(self.get("/health"), Ok((200, _)))
    }

    /// `/health/stats` as JSON.
    pub fn stats(&self) -> Result<serde_json::Value, String> {
        let (code, body) = self.get("/health/stats")?;
        if code != 200 {
            return Err(format!("{}/health/stats: HTTP {code}", self.http));
        }
        serde_json::from_str(&body).map_err(|e| format!("{}/health/stats: {e}", self.http))
    }

    /// Lines of its log containing every one of `needles` (`None`: no log
    /// known or readable).
    pub fn log_count(&self, needles: &[&str]) -> Option<usize> {
        let text = std::fs::read_to_string(self.log.as_ref()?).ok()?;
        Some(
            text.lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .count(),
        )
    }
}

/// Poll `f` every 100 ms until it holds or `wait` passes; whether it held.
pub async fn wait_for(wait: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls() {
        let n = NodeTarget::from_url("http://127.0.0.1:8081/health", None).unwrap();
        assert_eq!(n.http, "http://127.0.0.1:8081");
        assert_eq!(n.ws, "ws://127.0.0.1:8081/ws/chat");
        assert!(NodeTarget::from_url("ws://localhost:8082/ws/chat", None).is_ok());
        assert!(NodeTarget::from_url("8081", None).is_err());
    }
}
