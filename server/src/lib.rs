//! wsnode: a lean WebSocket node that streams simulated AI chat answers.
//!
//! The node is the system under test for wsbench: it implements the seed's
//! distributed chat design (sessions, fan-out to every connection of a
//! session, a chunk cache for recovery) behind one [`broker::Broker`]
//! interface, and exposes the health and metrics endpoints the seed's
//! scripts poll. `main.rs` only parses options and calls [`run`]; tests and
//! the load generator embed the node through [`Server`].

pub mod broker;
mod config;
mod frames;
mod http;
mod metrics;
mod node;
pub mod sessions;
mod stream;
mod ws;

pub use config::{Config, ConfigError, Opts, StreamDefaults, parse_duration, parse_size};

use broker::memory::{MemoryBroker, MemoryLimits};
use broker::redis::{RedisBroker, RedisSettings};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("broker: {0}")]
    Broker(String),
}

/// Streams listed per session in the welcome frame.
const STREAMS_IN_WELCOME: usize = 16;

/// A bound node, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    config: Config,
    node_id: String,
}

impl Server {
    /// Bind the listening socket (so `:0` resolves to a real port before serving).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let addr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let node_id = config
            .node_id
            .clone()
            .unwrap_or_else(|| default_node_id(local));
        Ok(Server {
            listener,
            config,
            node_id,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // Bound sockets always have an address; bind() already checked it.
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Serve until `shutdown` resolves, then close every client with 1001
    /// and return once they are gone (or `--shutdown-timeout` passed).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let c = &self.config;
        if let Some(url) = &c.redis {
            let broker = RedisBroker::start(RedisSettings {
                url: url.clone(),
                node_id: self.node_id.as_str().into(),
                session_ttl: c.session_ttl,
                stream_ttl: c.stream_ttl,
                node_ttl: c.node_ttl,
                lease_ttl: c.lease_ttl,
                timeout: c.redis_timeout,
                max_sessions: c.max_sessions,
                streams_in_welcome: STREAMS_IN_WELCOME,
            })
            .map_err(|e| ServerError::Broker(e.to_string()))?;
            node::serve(
                self.listener,
                Arc::new(broker),
                self.config,
                self.node_id,
                shutdown,
            )
            .await;
        } else {
            let broker = MemoryBroker::new(MemoryLimits {
                max_sessions: c.max_sessions,
                max_cached_streams: c.max_cached_streams,
                max_cached_bytes: c.max_cached_bytes,
                session_ttl: c.session_ttl,
                stream_ttl: c.stream_ttl,
                streams_in_welcome: STREAMS_IN_WELCOME,
            });
            node::serve(
                self.listener,
                Arc::new(broker),
                self.config,
                self.node_id,
                shutdown,
            )
            .await;
        }
        Ok(())
    }
}

/// `<hostname>-<port>`, so three nodes on one host get distinct ids.
fn default_node_id(addr: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wsnode".into());
    let mut id = format!("{host}-{}", addr.port());
    id.truncate(protocol::ids::MAX_ID_LEN);
    id
}

/// Bind and serve with `config` until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let server = Server::bind(config).await?;
    tracing::info!(node_id = %server.node_id(), addr = %server.local_addr(), "listening");
    server.run(shutdown).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
