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
use std::time::Duration;

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

/// What a generator needs to produce an answer. The broker stores it with
/// the stream, so that another node can continue the answer when the node
/// generating it dies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerPlan {
    /// Chunks the answer has in all.
    pub chunks: u32,
    /// Pause before each chunk.
    pub interval: Duration,
    /// Characters per chunk of the simulated text.
    pub chunk_size: usize,
    /// The question (the chat's `text`): a model that resumes an answer
    /// asks it again, with the answer so far as the start of its reply.
    pub prompt: Arc<str>,
}

/// A stream whose generator died, now leased to this node with a fresh
/// fencing token: the node continues it from chunk `next`.
#[derive(Debug, Clone)]
pub struct Takeover {
    pub lease: StreamLease,
    /// The first chunk index not written yet.
    pub next: u32,
    pub plan: AnswerPlan,
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

    /// Create a stream owned by `owner`, store its `plan`, and take its lease.
    fn open_stream(
        &self,
        owner: &Owner,
        message_id: Arc<str>,
        plan: &AnswerPlan,
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

    /// Take stream `message_id` over if its generator died (its lease
    /// expired, or its node is gone): `Some` when this node now holds a new
    /// lease with a higher fencing token and must continue the answer.
    /// Atomic: of several nodes asking at once, one gets `Some`. A stream
    /// that cannot be continued (the broker lost its chunks) is ended
    /// `interrupted` instead, and `None` returned.
    ///
    /// The default (the in-memory broker) never takes over: with one node, a
    /// generator dies only with its node, and the cache dies with it.
    fn take_over(
        &self,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<Takeover>, BrokerError>> + Send {
        let _ = message_id;
        async { Ok(None) }
    }

    /// Look for streams whose generator died and take over at most `max` of
    /// them (see [`take_over`](Self::take_over)); run periodically, so that
    /// answers nobody asks about are finished too.
    fn take_over_orphans(&self, max: usize) -> impl Future<Output = Vec<Takeover>> + Send {
        let _ = max;
        async { Vec::new() }
    }

    /// Give up a lease without finishing its stream, so another node can
    /// take it over at once (this node is shutting down). False when no other
    /// node can continue it: the caller ends the stream `interrupted`.
    fn hand_over(&self, lease: &StreamLease) -> impl Future<Output = bool> + Send {
        let _ = lease;
        async { false }
    }

    /// Remove sessions with no connection past their TTL and expired streams.
    fn cleanup(&self) -> impl Future<Output = CleanupReport> + Send;

    fn status(&self) -> BrokerStatus;

    /// The node is shutting down: give up what it registered.
    fn close(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
