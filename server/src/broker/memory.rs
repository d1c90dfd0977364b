//! In-process broker: the embedded default, for one node and no Redis.
//!
//! Two maps behind plain mutexes (no lock is held across an await): sessions
//! with their connection sinks, and the chunk cache. Delivery happens after
//! the stream lock is released; per-stream order holds because each stream
//! has exactly one generator appending to it in sequence.
//!
//! No take-over: with one node, a generator dies only with its node, and the
//! cache dies with it, so the trait's default `take_over` (never) and
//! `hand_over` (no other node: the stream ends `interrupted`) are right here.
//! The plan a stream is opened with is not kept for the same reason.

use super::api::{
    AnswerPlan, AttachRequest, Attached, Broker, BrokerError, BrokerStatus, CleanupReport, Owner,
    StreamLease,
};
use super::sink::{ConnSink, Out, Replay, StreamFrame};
use crate::sessions::{new_token, token_eq};
use bytes::Bytes;
use protocol::{StreamInfo, StreamStatus};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Limits of the in-memory broker.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimits {
    pub max_sessions: usize,
    pub max_cached_streams: usize,
    /// Memory the cache may hold: its frames as allocated ([`frame_cost`]),
    /// the lists that hold them, and [`ENTRY_BYTES`] per stream.
    pub max_cached_bytes: usize,
    pub session_ttl: Duration,
    pub stream_ttl: Duration,
    /// Streams listed per session in `welcome`.
    pub streams_in_welcome: usize,
}

pub struct MemoryBroker {
    limits: MemoryLimits,
    sessions: Mutex<HashMap<Arc<str>, Session>>,
    streams: Mutex<Streams>,
}

struct Session {
    token: Arc<str>,
    conns: Vec<ConnSink>,
    /// When the last connection left; `None` while connected.
    idle_since: Option<Instant>,
    /// Newest last, bounded by `streams_in_welcome`.
    recent: VecDeque<Arc<str>>,
}

/// What a cached stream costs besides its frames (map slot, entry, ids),
/// counted so that many empty streams cannot hide from the byte budget.
const ENTRY_BYTES: usize = 160;

/// One frame's place in its stream's list (a `Bytes`), counted for every
/// slot the list has allocated, used or not.
const SLOT_BYTES: usize = size_of::<Bytes>();

/// The header `Bytes` allocates once a frame is shared (cached and handed
/// to connections): three words, in jemalloc's 32-byte class.
const SHARED_BYTES: usize = 32;

/// What a cached frame of `len` bytes holds in memory: its allocation,
/// rounded up to jemalloc's size class (four classes per doubling, 16 bytes
/// apart at least; `frames` allocates chunk and end frames to their exact
/// length), and the shared header. Counting only `len` made the cache's RSS
/// about twice what `--max-cached-bytes` allowed (docs/BENCHMARKS.md).
pub fn frame_cost(len: usize) -> usize {
    let step = (len.next_power_of_two() / 8).max(16);
    len.div_ceil(step) * step + SHARED_BYTES
}

#[derive(Default)]
struct Streams {
    map: HashMap<Arc<str>, StreamEntry>,
    /// Insertion order, for evicting the oldest finished stream.
    order: VecDeque<Arc<str>>,
    /// What the cache holds, as [`StreamEntry::bytes`] sums it.
    bytes: usize,
}

struct StreamEntry {
    owner: Owner,
    status: StreamStatus,
    chunks: Vec<Bytes>,
    end: Option<Bytes>,
    touched: Instant,
}

impl StreamEntry {
    fn bytes(&self, id: &str) -> usize {
        let frames: usize = self.chunks.iter().map(|c| frame_cost(c.len())).sum();
        let end = self.end.as_ref().map_or(0, |e| frame_cost(e.len()));
        ENTRY_BYTES + id.len() + self.chunks.capacity() * SLOT_BYTES + frames + end
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a
    // way that matters more than stopping the node would; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryBroker {
    pub fn new(limits: MemoryLimits) -> MemoryBroker {
        MemoryBroker {
            limits,
            sessions: Mutex::default(),
            streams: Mutex::default(),
        }
    }

    /// Hand `out` to every live connection of the session.
    fn fan_out(&self, session_id: &str, out: Out) {
        let sessions = lock(&self.sessions);
        if let Some(s) = sessions.get(session_id) {
            for sink in &s.conns {
                sink.deliver(out.clone());
            }
        }
    }

    fn stream_infos(&self, ids: &VecDeque<Arc<str>>) -> Vec<StreamInfo> {
        let streams = lock(&self.streams);
        ids.iter()
            .filter_map(|id| {
                streams.map.get(id).map(|e| StreamInfo {
                    message_id: id.to_string(),
                    status: e.status,
                    chunks: e.chunks.len() as u32,
                })
            })
            .collect()
    }
}

impl Streams {
    /// Evict the oldest finished streams until one more stream fits under
    /// `max` and `need` more bytes fit under `budget`; false if streams still
    /// being generated leave no room.
    fn make_room(&mut self, max: usize, budget: usize, need: usize) -> bool {
        while self.map.len() >= max || self.bytes + need > budget {
            let pos = self.order.iter().position(|id| {
                self.map
                    .get(id)
                    .is_none_or(|e| e.status != StreamStatus::Streaming)
            });
            let Some(id) = pos.and_then(|p| self.order.remove(p)) else {
                return false;
            };
            self.remove(&id);
        }
        true
    }

    fn remove(&mut self, id: &str) {
        if let Some((id, e)) = self.map.remove_entry(id) {
            self.bytes = self.bytes.saturating_sub(e.bytes(&id));
        }
    }

    fn owned_mut(&mut self, lease: &StreamLease) -> Result<&mut StreamEntry, BrokerError> {
        match self.map.get_mut(&lease.message_id) {
            Some(e) if e.owner == lease.owner => Ok(e),
            _ => Err(BrokerError::NotFound),
        }
    }
}

impl Broker for MemoryBroker {
    async fn attach(&self, req: AttachRequest, sink: ConnSink) -> Result<Attached, BrokerError> {
        let recent = {
            let mut sessions = lock(&self.sessions);
            let len = sessions.len();
            let session = match sessions.get_mut(&req.session_id) {
                Some(s) => {
                    match &req.token {
                        Some(t) if token_eq(t, &s.token) => {}
                        _ => return Err(BrokerError::Unauthorized),
                    }
                    s.conns.retain(|c| !c.is_closed());
                    s
                }
                None => {
                    if len >= self.limits.max_sessions {
                        return Err(BrokerError::Overloaded("max sessions"));
                    }
                    // A client that presents a token for a session this node
                    // no longer has gets it back: the token is the proof that
                    // matters for its streams, and a guesser gains nothing.
                    let token = req.token.clone().unwrap_or_else(new_token);
                    sessions.entry(req.session_id.clone()).or_insert(Session {
                        token,
                        conns: Vec::new(),
                        idle_since: None,
                        recent: VecDeque::new(),
                    })
                }
            };
            session.conns.push(sink);
            session.idle_since = None;
            (session.token.clone(), session.recent.clone())
        };
        let (token, recent) = recent;
        Ok(Attached {
            session: Owner {
                session_id: req.session_id,
                token,
            },
            streams: self.stream_infos(&recent),
        })
    }

    async fn detach(&self, session_id: &str, conn_id: u64) {
        let mut sessions = lock(&self.sessions);
        if let Some(s) = sessions.get_mut(session_id) {
            s.conns.retain(|c| c.id != conn_id && !c.is_closed());
            if s.conns.is_empty() {
                s.idle_since = Some(Instant::now());
            }
        }
    }

    async fn open_stream(
        &self,
        owner: &Owner,
        message_id: Arc<str>,
        _plan: &AnswerPlan,
    ) -> Result<StreamLease, BrokerError> {
        {
            let mut streams = lock(&self.streams);
            if streams.map.contains_key(&message_id) {
                return Err(BrokerError::Conflict);
            }
            let need = ENTRY_BYTES + message_id.len();
            if !streams.make_room(
                self.limits.max_cached_streams,
                self.limits.max_cached_bytes,
                need,
            ) {
                return Err(BrokerError::Overloaded("stream cache full"));
            }
            streams.bytes += need;
            streams.map.insert(
                message_id.clone(),
                StreamEntry {
                    owner: owner.clone(),
                    status: StreamStatus::Streaming,
                    chunks: Vec::new(),
                    end: None,
                    touched: Instant::now(),
                },
            );
            streams.order.push_back(message_id.clone());
        }
        let mut sessions = lock(&self.sessions);
        if let Some(s) = sessions.get_mut(&owner.session_id) {
            if s.recent.len() >= self.limits.streams_in_welcome {
                s.recent.pop_front();
            }
            s.recent.push_back(message_id.clone());
        }
        Ok(StreamLease {
            owner: owner.clone(),
            message_id,
            fence: 0,
        })
    }

    async fn append_chunk(
        &self,
        lease: &StreamLease,
        index: u32,
        frame: Bytes,
    ) -> Result<(), BrokerError> {
        {
            let mut streams = lock(&self.streams);
            let e = streams.owned_mut(lease)?;
            let expected = e.chunks.len() as u32;
            if e.status != StreamStatus::Streaming || index != expected {
                return Err(BrokerError::OutOfOrder {
                    expected,
                    got: index,
                });
            }
            // The list grows by doubling, here rather than inside `push`,
            // so its new slots are counted before they are allocated.
            let (len, cap) = (e.chunks.len(), e.chunks.capacity());
            let grow = if len == cap { cap.max(4) } else { 0 };
            let need = frame_cost(frame.len()) + grow * SLOT_BYTES;
            // The stream itself is cached already: only bytes need room.
            if !streams.make_room(usize::MAX, self.limits.max_cached_bytes, need) {
                return Err(BrokerError::Overloaded("stream cache full"));
            }
            let e = streams.owned_mut(lease)?;
            e.chunks.reserve_exact(grow);
            let grown = (e.chunks.capacity() - cap) * SLOT_BYTES;
            e.chunks.push(frame.clone());
            e.touched = Instant::now();
            streams.bytes += frame_cost(frame.len()) + grown;
        }
        let out = Out::Chunk(Arc::new(StreamFrame {
            message_id: lease.message_id.clone(),
            index,
            frame,
        }));
        self.fan_out(&lease.owner.session_id, out);
        Ok(())
    }

    async fn finish_stream(
        &self,
        lease: &StreamLease,
        status: StreamStatus,
        frame: Bytes,
    ) -> Result<(), BrokerError> {
        let chunks = {
            let mut streams = lock(&self.streams);
            let e = streams.owned_mut(lease)?;
            if e.status != StreamStatus::Streaming {
                return Ok(());
            }
            e.status = status;
            e.end = Some(frame.clone());
            e.touched = Instant::now();
            let chunks = e.chunks.len() as u32;
            // Always kept, so the budget may be overrun by one end frame
            // per stream; the next eviction takes it back.
            streams.bytes += frame_cost(frame.len());
            chunks
        };
        let out = Out::End(Arc::new(StreamFrame {
            message_id: lease.message_id.clone(),
            index: chunks,
            frame,
        }));
        self.fan_out(&lease.owner.session_id, out);
        Ok(())
    }

    async fn read_stream(
        &self,
        owner: &Owner,
        message_id: &str,
        from: u32,
    ) -> Result<Replay, BrokerError> {
        let streams = lock(&self.streams);
        let (id, e) = streams
            .map
            .get_key_value(message_id)
            .ok_or(BrokerError::NotFound)?;
        if e.owner != *owner {
            return Err(BrokerError::NotFound);
        }
        let total = e.chunks.len() as u32;
        // A client claiming more than exists gets nothing replayed, and no
        // live chunk below what it claims.
        let start = from.min(total) as usize;
        Ok(Replay {
            message_id: id.clone(),
            status: e.status,
            from,
            chunks: e.chunks[start..].to_vec(),
            total,
            end: e.end.clone(),
        })
    }

    async fn cleanup(&self) -> CleanupReport {
        let now = Instant::now();
        let mut report = CleanupReport::default();
        {
            let mut sessions = lock(&self.sessions);
            sessions.retain(|id, s| {
                s.conns.retain(|c| !c.is_closed());
                if s.conns.is_empty() && s.idle_since.is_none() {
                    s.idle_since = Some(now);
                }
                let stale = s
                    .idle_since
                    .is_some_and(|t| now.duration_since(t) >= self.limits.session_ttl);
                if stale {
                    tracing::info!(session_id = %id, "Cleaning up stale session");
                    report.sessions += 1;
                }
                !stale
            });
        }
        let mut streams = lock(&self.streams);
        let ttl = self.limits.stream_ttl;
        let before = streams.map.len();
        let mut freed = 0;
        streams.map.retain(|id, e| {
            let expired =
                e.status != StreamStatus::Streaming && now.duration_since(e.touched) >= ttl;
            if expired {
                tracing::debug!(message_id = %id, "Cleaning up expired stream");
                freed += e.bytes(id);
            }
            !expired
        });
        streams.bytes = streams.bytes.saturating_sub(freed);
        report.streams = before - streams.map.len();
        if report.streams > 0 {
            let Streams { map, order, .. } = &mut *streams;
            order.retain(|id| map.contains_key(id));
        }
        report
    }

    fn status(&self) -> BrokerStatus {
        let sessions = lock(&self.sessions).len();
        let streams = lock(&self.streams);
        BrokerStatus {
            kind: "memory",
            healthy: true,
            state: "ok".into(),
            sessions,
            cached_streams: streams.map.len(),
            cached_bytes: streams.bytes,
        }
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
