//! Starting a node: bind the listener, pick the broker the options ask for,
//! then serve until told to stop.
//!
//! [`Server`] is the bound node (so `:0` resolves to a real port before
//! anything is served); [`run`] is what `wsnode` does; the `embed` module
//! builds on the same two steps for tests and loadgen.

use crate::accept;
use crate::broker::Broker;
use crate::broker::memory::{MemoryBroker, MemoryLimits};
use crate::broker::redis::{Advert, RedisBroker, RedisSettings};
use crate::config::{Config, ConfigError};
use futures_util::future::Either;
use protocol::health::local_hostname as hostname;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address is taken, not local, or not permitted.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Options that do not make sense together.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The broker could not be created (e.g. a malformed Redis URL).
    #[error("broker: {0}")]
    Broker(String),
    /// A node started on its own thread could not get a thread or a runtime.
    #[error("cannot start the node's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Streams listed per session in the welcome frame.
const STREAMS_IN_WELCOME: usize = 16;

/// A bound node, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    config: Config,
    node_id: String,
}

/// The listening socket, with the longest accept queue the system allows
/// (the kernel caps it at `net.core.somaxconn`, 4096 on current Linux).
/// tokio's default of 1,024 overflowed in a storm of 5,000 connects: 670
/// SYNs dropped, each client waiting a second for its retransmit, connection
/// time p99 1.05 s (docs/BENCHMARKS.md). Connections past `--max-connections`
/// or the handshake limits wait in this queue rather than being refused.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As tokio's own bind does: a restarted node rebinds at once.
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(i32::MAX as u32)
}

impl Server {
    /// Bind the listening socket (so `:0` resolves to a real port before serving).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let addr = config.listen;
        let listener = listen(addr).map_err(|source| ServerError::Bind { addr, source })?;
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
        self.into_serving(shutdown)?.await;
        Ok(())
    }

    /// Create the broker (Redis connects in the background: the node serves
    /// at once and is ready once Redis answers) and return the serving
    /// future. Broker errors (a bad Redis URL) surface here, before any
    /// serving, so an embedder learns of them when it starts the node.
    pub(crate) fn into_serving(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<impl Future<Output = ()> + Send + 'static, ServerError> {
        let c = &self.config;
        Ok(if let Some(url) = &c.redis {
            let advert = Advert {
                url: Some(
                    c.advertise_url
                        .clone()
                        .unwrap_or_else(|| default_advertise_url(self.local_addr())),
                ),
                host: hostname().unwrap_or_default(),
            };
            let settings = RedisSettings {
                url: url.clone(),
                node_id: self.node_id.as_str().into(),
                session_ttl: c.session_ttl,
                stream_ttl: c.stream_ttl,
                node_ttl: c.node_ttl,
                lease_ttl: c.lease_ttl,
                timeout: c.redis_timeout,
                max_sessions: c.max_sessions,
                streams_in_welcome: STREAMS_IN_WELCOME,
                skip_fencing: crate::fault::skips_fencing(c.test_fault),
            };
            let broker = RedisBroker::start_advertised(settings, advert)
                .map_err(|e| ServerError::Broker(e.to_string()))?;
            Either::Left(self.serve_with(broker, shutdown))
        } else {
            let broker = MemoryBroker::new(MemoryLimits {
                max_sessions: c.max_sessions,
                max_cached_streams: c.max_cached_streams,
                max_cached_bytes: c.max_cached_bytes,
                session_ttl: c.session_ttl,
                stream_ttl: c.stream_ttl,
                streams_in_welcome: STREAMS_IN_WELCOME,
            });
            Either::Right(self.serve_with(broker, shutdown))
        })
    }

    fn serve_with<B: Broker>(
        self,
        broker: B,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        accept::serve(
            self.listener,
            Arc::new(broker),
            self.config,
            self.node_id,
            shutdown,
        )
    }
}

/// `<hostname>-<port>`, so three nodes on one host get distinct ids.
fn default_node_id(addr: SocketAddr) -> String {
    let host = hostname().unwrap_or_else(|| "wsnode".into());
    let mut id = format!("{host}-{}", addr.port());
    id.truncate(protocol::ids::MAX_ID_LEN);
    id
}

/// `ws://<bound address>/ws/chat`; an unspecified address (0.0.0.0) is
/// replaced by the hostname, which other machines can resolve.
fn default_advertise_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        let host = hostname().unwrap_or_else(|| "localhost".into());
        format!("ws://{host}:{}/ws/chat", addr.port())
    } else {
        format!("ws://{addr}/ws/chat")
    }
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
