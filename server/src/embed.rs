//! One way to run a wsnode inside another program: tests, and loadgen's
//! embedded node.
//!
//! Every embedder needs the same three steps: turn wsnode's own command-line
//! options into a [`Config`] (with wsnode's checks and messages), bind and
//! serve on a free port while the caller goes on, and stop gracefully
//! (clients get 1001) when the caller is done. [`EmbeddedNode`] does that on
//! the caller's tokio runtime; [`EmbeddedNode::start_blocking`] gives sync
//! callers a node on its own thread and runtime.

use crate::config::{Config, ConfigError, Opts};
use crate::launch::{Server, ServerError};
use clap::Parser;
use std::ffi::OsString;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Why [`config_from_args`] refused the options.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// wsnode's parser rejected them: an unknown option, a value that does
    /// not parse, a missing value. Holds the parser's one-line summary, e.g.
    /// `unexpected argument '--nope' found`.
    #[error("{0}")]
    Options(String),
    /// They parse but do not make sense together; names the option to fix.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Parse `args` exactly as `wsnode ARGS...` would (without the program name;
/// `WSNODE_*` environment variables apply too) and validate the result.
pub fn config_from_args<I, S>(args: I) -> Result<Config, EmbedError>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    let argv = std::iter::once(OsString::from("wsnode")).chain(args.into_iter().map(Into::into));
    let opts = Opts::try_parse_from(argv).map_err(|e| EmbedError::Options(summary(&e)))?;
    Ok(opts.into_config()?)
}

/// The first line of a clap error, without its `error: ` prefix.
fn summary(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid option");
    first.trim_start_matches("error: ").to_string()
}

/// A node serving on the runtime that started it.
///
/// Dropping it signals shutdown without waiting; [`stop`](Self::stop)
/// signals and waits until every client was closed and the node is gone.
pub struct EmbeddedNode {
    addr: SocketAddr,
    node_id: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl EmbeddedNode {
    /// Bind `config.listen` (`127.0.0.1:0` picks a free port), create the
    /// broker and spawn the node on the current tokio runtime. Returns once
    /// the socket is bound: connections are accepted from then on.
    pub async fn start(config: Config) -> Result<EmbeddedNode, ServerError> {
        let server = Server::bind(config).await?;
        let addr = server.local_addr();
        let node_id = server.node_id().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = server.into_serving(async move {
            // A dropped sender means the same as a sent stop.
            let _ = stopped.await;
        })?;
        Ok(EmbeddedNode {
            addr,
            node_id,
            stop: Some(stop),
            task: tokio::spawn(serving),
        })
    }

    /// Start a node on a thread of its own, with its own runtime, for callers
    /// without one. The node stops (gracefully) when the handle is dropped.
    pub fn start_blocking(config: Config) -> Result<BlockingNode, ServerError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("wsnode".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ServerError::Runtime(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    match EmbeddedNode::start(config).await {
                        Ok(node) => {
                            let _ = ready_tx.send(Ok((node.addr, node.node_id.clone())));
                            let _ = stopped.await;
                            node.stop().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(ServerError::Runtime)?;
        match ready_rx.recv() {
            Ok(Ok((addr, node_id))) => Ok(BlockingNode {
                addr,
                node_id,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            // The thread ended without a word: it panicked; pass that on.
            Err(_) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the node thread always reports before it ends"),
            },
        }
    }

    /// The bound address (the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's id: `--node-id`, or `<hostname>-<port>`.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Tell the node to shut down (clients get 1001) without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Signal shutdown and wait until the node is gone: every client closed
    /// (or `--shutdown-timeout` passed) and the broker closed. A panic inside
    /// the node is passed on to the caller.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Err(e) = self.task.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// A node on its own thread and runtime, from [`EmbeddedNode::start_blocking`].
/// Dropping it stops the node and waits for it.
pub struct BlockingNode {
    addr: SocketAddr,
    node_id: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlockingNode {
    /// The bound address (the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's id: `--node-id`, or `<hostname>-<port>`.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Stop the node and wait until it is gone (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for BlockingNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
            && !std::thread::panicking()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_wsnodes_own() {
        let c = config_from_args(["--listen", "127.0.0.1:0", "--chunks", "7"]).unwrap();
        assert_eq!(c.stream.chunks, 7);
        let e = config_from_args(["--no-such-option"]).unwrap_err();
        assert!(matches!(e, EmbedError::Options(_)), "{e:?}");
        assert!(e.to_string().contains("--no-such-option"), "{e}");
        assert!(!e.to_string().starts_with("error:"), "{e}");
        let e = config_from_args(["--chunks", "0"]).unwrap_err();
        assert!(
            matches!(e, EmbedError::Config(ref c) if c.option == "--chunks"),
            "{e:?}"
        );
    }

    #[test]
    fn a_blocking_node_serves_until_dropped() {
        let config = config_from_args(["--listen", "127.0.0.1:0", "--node-id", "blk"]).unwrap();
        let node = EmbeddedNode::start_blocking(config).unwrap();
        assert_eq!(node.node_id(), "blk");
        let addr = node.addr();
        assert!(std::net::TcpStream::connect(addr).is_ok());
        drop(node);
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "gone once dropped"
        );
    }

    #[test]
    fn a_busy_port_is_an_error_not_a_panic() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = taken.local_addr().unwrap().to_string();
        let config = config_from_args(["--listen", listen.as_str()]).unwrap();
        let err = EmbeddedNode::start_blocking(config)
            .err()
            .expect("bind fails");
        assert!(matches!(err, ServerError::Bind { .. }), "{err:?}");
    }
}
