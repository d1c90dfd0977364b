//! The broker interface: the [`Broker`] trait and the types its calls take
//! and return.
//!
//! Session registry, per-session fan-out of stream frames, and the chunk
//! cache used for recovery all go through this trait. It sits in its own
//! leaf module so the implementations (`memory`, `redis`) and the code that
//! calls them (connections, streams, routes) all import it from here and
//! none of them from each other.
//!
//! Delivery contract: a broker hands stream frames to every connection of the
//! session (`Out::Chunk` / `Out::End`) in index order for each stream. It may
//! hand a connection a chunk twice or one that connection joined too late
//! for; the connection's delivery filter (`ws::delivery`) turns that into an
//! exactly-once, gap-free sequence for the client.

use super::sink::{ConnSink, Replay};
use bytes::Bytes;
use protocol::{StreamInfo, StreamStatus};
use std::future::Future;
use std::sync::Arc;

/// Who a connection claims to be when it attaches.
#[derive(Debug, Clone)]
pub struct AttachRequest {
    /// Validated session id (the node generates one when the client gave none).
    pub session_id: Arc<str>,
    /// The token the client presented, if any.
    pub token: Option<Arc<str>>,
}

/// The result of a successful attach.
#[derive(Debug, Clone)]
pub struct Attached {
    pub session: Owner,
    /// The session's recent streams, newest last, for the welcome frame.
    pub streams: Vec<StreamInfo>,
}

/// A session's identity: its id and the secret token that proves ownership.
/// Streams remember their owner, so a recycled session id does not expose an
/// earlier owner's streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub session_id: Arc<str>,
    pub token: Arc<str>,
}

/// The right to write one stream, held by its generator.
#[derive(Debug, Clone)]
pub struct StreamLease {
    pub owner: Owner,
    pub message_id: Arc<str>,
    /// Fencing token: a broker rejects writes carrying a stale one.
    pub fence: u64,
}

/// What a broker reports about itself for health and readiness.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BrokerStatus {
    /// `memory` or `redis`.
    pub kind: &'static str,
    /// Whether the node can serve new work through this broker.
    pub healthy: bool,
    /// Human-readable state, e.g. `ok` or why it is unhealthy.
    pub state: String,
    /// Sessions known to this node (attached or within their TTL).
    pub sessions: usize,
    /// Streams in the chunk cache.
    pub cached_streams: usize,
    /// Bytes the chunk cache holds (in-memory broker; 0 with Redis).
    pub cached_bytes: usize,
}

/// What one cleanup pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanupReport {
    pub sessions: usize,
    pub streams: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("session exists and the token does not match")]
    Unauthorized,
    #[error("message id already in use")]
    Conflict,
    #[error("unknown or expired message")]
    NotFound,
    #[error("chunk {got} out of order, expected {expected}")]
    OutOfOrder { expected: u32, got: u32 },
    #[error("stale fencing token: another node owns this stream")]
    Fenced,
    #[error("node limit reached: {0}")]
    Overloaded(&'static str),
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// Shared state of a cluster, seen from one node.
///
/// Methods return `Send` futures so connection tasks can await them on a
/// multi-threaded runtime.
pub trait Broker: Send + Sync + 'static {
    /// Register `sink` as a connection of the requested session, creating the
    /// session (with a new token, or the one presented) when it does not exist.
    /// An existing session needs its token.
    fn attach(
        &self,
        req: AttachRequest,
        sink: ConnSink,
    ) -> impl Future<Output = Result<Attached, BrokerError>> + Send;

    /// Remove a connection; the session stays for its TTL so the client can come back.
    fn detach(&self, session_id: &str, conn_id: u64) -> impl Future<Output = ()> + Send;

    /// Create a stream owned by `owner` and take its lease.
    fn open_stream(
        &self,
        owner: &Owner,
        message_id: Arc<str>,
    ) -> impl Future<Output = Result<StreamLease, BrokerError>> + Send;

    /// Cache chunk `index` (must be exactly the next one) and deliver it to
    /// every connection of the session.
    fn append_chunk(
        &self,
        lease: &StreamLease,
        index: u32,
        frame: Bytes,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Mark the stream finished (`Done` or `Interrupted`) and deliver `frame`.
    fn finish_stream(
        &self,
        lease: &StreamLease,
        status: StreamStatus,
        frame: Bytes,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// The cached chunks of an owned stream from index `from` on, with its end
    /// frame when finished. A stream of another owner is `NotFound`.
    fn read_stream(
        &self,
        owner: &Owner,
        message_id: &str,
        from: u32,
    ) -> impl Future<Output = Result<Replay, BrokerError>> + Send;

    /// Keep a stream's lease alive while its generator waits between chunks
    /// (appending renews it too).
    fn renew(&self, lease: &StreamLease) -> impl Future<Output = Result<(), BrokerError>> + Send {
        let _ = lease;
        async { Ok(()) }
    }

    /// Remove sessions with no connection past their TTL and expired streams.
    fn cleanup(&self) -> impl Future<Output = CleanupReport> + Send;

    fn status(&self) -> BrokerStatus;

    /// The node is shutting down: give up what it registered.
    fn close(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
