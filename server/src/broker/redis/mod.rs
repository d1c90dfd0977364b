//! Redis broker: sessions, fan-out, chunk cache and stream ownership shared
//! by every node of a cluster.
//!
//! Each node keeps its own connections in a local registry and subscribes to
//! `chat:stream:{sid}` for the sessions it serves (on the first local attach,
//! off after the last detach). Chunks are appended and published in one Lua
//! script that checks the stream's fencing token and index (see `scripts`),
//! so no writer can leave a gap or a duplicate, and a node that lost its
//! lease cannot write at all. The connection code sees none of this: it
//! talks to the same [`Broker`] trait as with the in-memory broker.

mod link;
pub mod scripts;
mod subscriber;

use super::{
    AttachRequest, Attached, Broker, BrokerError, BrokerStatus, CleanupReport, ConnSink, Out,
    Owner, Replay, StreamFrame, StreamLease,
};
use crate::sessions::new_token;
use bytes::Bytes;
use link::{Link, args};
use protocol::{StreamInfo, StreamStatus};
use redis::aio::MultiplexedConnection;
use scripts::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Entries asked for per `HSCAN`/`ZSCAN` page during cleanup.
const SCAN_COUNT: u32 = 500;
/// Pages walked per key per cleanup pass at most (bounds one pass's work).
const MAX_SCAN_PAGES: usize = 10_000;

/// Settings of the Redis broker.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    pub node_id: Arc<str>,
    pub session_ttl: Duration,
    pub stream_ttl: Duration,
    /// How long a node's liveness key lives without a refresh.
    pub node_ttl: Duration,
    /// How long a stream's lease lives without a renewal.
    pub lease_ttl: Duration,
    /// Per-command timeout; past it the breaker opens.
    pub timeout: Duration,
    pub max_sessions: usize,
    pub streams_in_welcome: usize,
}

pub struct RedisBroker {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

struct Inner {
    cfg: RedisSettings,
    link: Link,
    local: Mutex<HashMap<Arc<str>, LocalSession>>,
    /// Asks the subscriber task to (un)subscribe a session's channel.
    sub_tx: mpsc::Sender<subscriber::Sync>,
}

struct LocalSession {
    conns: Vec<ConnSink>,
    connected_at: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RedisBroker {
    /// Create the broker and start its background tasks (connection keeper,
    /// subscriber, heartbeat). It serves once Redis answers; until then calls
    /// fail with `Unavailable`.
    pub fn start(cfg: RedisSettings) -> Result<RedisBroker, BrokerError> {
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| BrokerError::Unavailable(format!("bad Redis URL: {e}")))?;
        // Bounded: one pending request per session at most in practice.
        let (sub_tx, sub_rx) = mpsc::channel(4096);
        let inner = Arc::new(Inner {
            link: Link::new(client, cfg.timeout),
            cfg,
            local: Mutex::new(HashMap::new()),
            sub_tx,
        });
        let keeper = {
            let inner = inner.clone();
            tokio::spawn(async move { inner.link.keep_connected().await })
        };
        let sub = tokio::spawn(subscriber::run(inner.clone(), sub_rx));
        let beat = {
            let inner = inner.clone();
            tokio::spawn(async move { inner.heartbeat().await })
        };
        Ok(RedisBroker {
            inner,
            tasks: vec![keeper, sub, beat],
        })
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Inner {
    fn session_value(&self, connected_at: u64) -> String {
        format!(
            r#"{{"node":"{}","connected_at":{connected_at},"last_seen":{}}}"#,
            self.cfg.node_id,
            now_ms()
        )
    }

    /// Deliver to this node's connections of a session.
    fn fan_out_local(&self, sid: &str, out: Out) {
        let local = lock(&self.local);
        if let Some(s) = local.get(sid) {
            for sink in &s.conns {
                sink.deliver(out.clone());
            }
        }
    }

    /// One page of an `HSCAN`/`ZSCAN` of `key`: the next cursor (0 when
    /// done) and the flat field/value (member/score) list; `None` when Redis
    /// cannot be reached.
    async fn scan_page(
        &self,
        cmd: &'static str,
        key: &'static str,
        cursor: u64,
    ) -> Option<(u64, Vec<String>)> {
        self.link
            .call(|mut c| async move {
                redis::cmd(cmd)
                    .arg(key)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(&mut c)
                    .await
            })
            .await
            .ok()
    }

    /// Remove `sessions:active` entry `sid` if it is stale and still `value`;
    /// true if it was removed. `alive` caches node liveness for one pass.
    async fn stale_session(
        &self,
        sid: &str,
        value: &str,
        alive: &mut HashMap<String, bool>,
    ) -> bool {
        if self.serves(sid) {
            return false;
        }
        let v: serde_json::Value = serde_json::from_str(value).unwrap_or_default();
        let node = v["node"].as_str().unwrap_or("").to_string();
        let last_seen = v["last_seen"].as_u64().unwrap_or(0);
        let idle_ms = now_ms().saturating_sub(last_seen);
        let node_alive = match alive.get(&node) {
            Some(a) => *a,
            None => {
                let key = alive_key(&node);
                let a: bool =
                    self.link
                        .call(|mut c| async move {
                            redis::cmd("EXISTS").arg(key).query_async(&mut c).await
                        })
                        .await
                        .unwrap_or(true);
                alive.insert(node.clone(), a);
                a
            }
        };
        // A live node refreshes its sessions every node_ttl/3, so an entry
        // it has not refreshed for a whole session TTL is not attached.
        let stale = idle_ms >= ms(self.cfg.session_ttl)
            || (!node_alive && idle_ms >= ms(self.cfg.node_ttl));
        if !stale {
            return false;
        }
        let keys = vec![SESSIONS_ACTIVE.to_string()];
        let removed: i64 = self
            .link
            .script(&DELETE_IF_SAME, keys, args![sid, value])
            .await
            .unwrap_or(0);
        if removed == 1 {
            tracing::info!(session_id = %sid, node = %node, node_alive, idle_ms, "Cleaning up stale session");
        }
        removed == 1
    }

    /// Whether this node has live connections of `sid`.
    fn serves(&self, sid: &str) -> bool {
        lock(&self.local)
            .get(sid)
            .is_some_and(|s| s.conns.iter().any(|c| !c.is_closed()))
    }

    fn local_sessions(&self) -> Vec<(Arc<str>, u64)> {
        lock(&self.local)
            .iter()
            .map(|(k, v)| (k.clone(), v.connected_at))
            .collect()
    }

    /// Ask the subscriber to match the channel of `sid` to local use; wait for it.
    async fn sync_subscription(&self, sid: Arc<str>) -> Result<(), BrokerError> {
        let (ack, done) = oneshot::channel();
        self.sub_tx
            .send(subscriber::Sync {
                sid,
                ack: Some(ack),
            })
            .await
            .map_err(|_| BrokerError::Unavailable("subscriber stopped".into()))?;
        match tokio::time::timeout(self.cfg.timeout * 2, done).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(BrokerError::Unavailable(e)),
            _ => Err(BrokerError::Unavailable(
                "subscription not confirmed".into(),
            )),
        }
    }

    /// Refresh this node's liveness, its sessions' entries and token TTLs.
    async fn heartbeat(&self) {
        let every = (self.cfg.node_ttl / 3).max(Duration::from_millis(50));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.link.restored.notified() => {}
            }
            if !self.link.is_up() {
                continue;
            }
            let sessions = self.local_sessions();
            let node_ttl = ms(self.cfg.node_ttl);
            let session_ttl = ms(self.cfg.session_ttl);
            let alive = alive_key(&self.cfg.node_id);
            // Bounded pipelines, so a node with many sessions never builds one
            // huge request; the first also refreshes the node's liveness key.
            let batches = std::iter::once(&[][..]).chain(sessions.chunks(1000));
            for (i, batch) in batches.enumerate() {
                let mut pipe = redis::pipe();
                if i == 0 {
                    pipe.cmd("SET")
                        .arg(&alive)
                        .arg("1")
                        .arg("PX")
                        .arg(node_ttl)
                        .ignore();
                }
                for (sid, connected_at) in batch {
                    pipe.hset(
                        SESSIONS_ACTIVE,
                        sid.as_ref(),
                        self.session_value(*connected_at),
                    )
                    .ignore();
                    pipe.cmd("PEXPIRE")
                        .arg(token_key(sid))
                        .arg(session_ttl)
                        .ignore();
                }
                let r = self
                    .link
                    .call(|mut c: MultiplexedConnection| async move {
                        pipe.query_async::<()>(&mut c).await
                    })
                    .await;
                if r.is_err() {
                    break;
                }
            }
        }
    }

    async fn stream_infos(&self, sid: &str) -> Result<Vec<StreamInfo>, BrokerError> {
        let key = session_streams_key(sid);
        let limit = self.cfg.streams_in_welcome as isize;
        let ids: Vec<String> = self
            .link
            .call(|mut c| async move {
                redis::cmd("LRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(limit - 1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(meta_key(id))
                .arg("status")
                .arg("chunks");
        }
        let metas: Vec<(Option<String>, Option<u32>)> = self
            .link
            .call(|mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        // Stored newest first; the welcome lists newest last.
        Ok(ids
            .into_iter()
            .zip(metas)
            .rev()
            .filter_map(|(id, (status, chunks))| {
                Some(StreamInfo {
                    message_id: id,
                    status: parse_status(status.as_deref()?)?,
                    chunks: chunks.unwrap_or(0),
                })
            })
            .collect())
    }

    /// Interrupt a stream whose generator died (lease expired, or its node
    /// gone from its presence channel). True when it did.
    async fn interrupt_if_orphaned(&self, mid: &str) -> Result<bool, BrokerError> {
        let keys = vec![
            meta_key(mid),
            lease_key(mid),
            FENCE.into(),
            STREAMS_ACTIVE.into(),
        ];
        let n: i64 = self.link.script(&INTERRUPT, keys, args![mid]).await?;
        Ok(n == 1)
    }
}

fn parse_status(s: &str) -> Option<StreamStatus> {
    match s {
        "streaming" => Some(StreamStatus::Streaming),
        "done" => Some(StreamStatus::Done),
        "interrupted" => Some(StreamStatus::Interrupted),
        _ => None,
    }
}

fn lease_value(lease: &StreamLease, node: &str) -> String {
    format!("{node}:{}", lease.fence)
}

impl Broker for RedisBroker {
    async fn attach(&self, req: AttachRequest, sink: ConnSink) -> Result<Attached, BrokerError> {
        let inner = &self.inner;
        {
            let local = lock(&inner.local);
            if !local.contains_key(&req.session_id) && local.len() >= inner.cfg.max_sessions {
                return Err(BrokerError::Overloaded("max sessions"));
            }
        }
        let sid = req.session_id.clone();
        let presented = req.token.as_deref().unwrap_or("");
        let keys = vec![token_key(&sid), SESSIONS_ACTIVE.into()];
        let args = args![
            presented,
            new_token().as_ref(),
            ms(inner.cfg.session_ttl),
            sid.as_ref(),
            inner.session_value(now_ms())
        ];
        let (ok, token): (i64, String) = inner.link.script(&ATTACH, keys, args).await?;
        if ok != 1 {
            return Err(BrokerError::Unauthorized);
        }
        let conn_id = sink.id;
        {
            let mut local = lock(&inner.local);
            let s = local.entry(sid.clone()).or_insert_with(|| LocalSession {
                conns: Vec::new(),
                connected_at: now_ms(),
            });
            s.conns.retain(|c| !c.is_closed());
            s.conns.push(sink);
        }
        // Subscribe before anything can be published for this connection to miss.
        if let Err(e) = inner.sync_subscription(sid.clone()).await {
            self.detach(&sid, conn_id).await;
            return Err(e);
        }
        let streams = inner.stream_infos(&sid).await.unwrap_or_default();
        Ok(Attached {
            session: Owner {
                session_id: sid,
                token: token.into(),
            },
            streams,
        })
    }

    async fn detach(&self, session_id: &str, conn_id: u64) {
        let inner = &self.inner;
        let (sid, connected_at) = {
            let mut local = lock(&inner.local);
            let Some((sid, s)) = local.get_key_value(session_id) else {
                return;
            };
            let sid = sid.clone();
            let connected_at = s.connected_at;
            let s = local.get_mut(session_id).expect("present");
            s.conns.retain(|c| c.id != conn_id && !c.is_closed());
            if !s.conns.is_empty() {
                return;
            }
            local.remove(session_id);
            (sid, connected_at)
        };
        // Last local connection gone: stop listening, stamp last_seen for the cleanup.
        let _ = inner.sub_tx.try_send(subscriber::Sync {
            sid: sid.clone(),
            ack: None,
        });
        let value = inner.session_value(connected_at);
        let _ = inner
            .link
            .call(|mut c| async move {
                redis::cmd("HSET")
                    .arg(SESSIONS_ACTIVE)
                    .arg(sid.as_ref())
                    .arg(value)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
    }

    async fn open_stream(
        &self,
        owner: &Owner,
        message_id: Arc<str>,
    ) -> Result<StreamLease, BrokerError> {
        let inner = &self.inner;
        let keys = vec![
            meta_key(&message_id),
            lease_key(&message_id),
            FENCE.into(),
            STREAMS_ACTIVE.into(),
            session_streams_key(&owner.session_id),
        ];
        let args = args![
            owner.session_id.as_ref(),
            owner.token.as_ref(),
            inner.cfg.node_id.as_ref(),
            ms(inner.cfg.lease_ttl),
            ms(inner.cfg.stream_ttl),
            message_id.as_ref(),
            now_ms()
        ];
        let fence: i64 = inner.link.script(&OPEN, keys, args).await?;
        if fence < 0 {
            return Err(BrokerError::Conflict);
        }
        tracing::info!(message_id = %message_id, node_id = %inner.cfg.node_id, fence, "Stream lease acquired");
        Ok(StreamLease {
            owner: owner.clone(),
            message_id,
            fence: fence as u64,
        })
    }

    async fn append_chunk(
        &self,
        lease: &StreamLease,
        index: u32,
        frame: Bytes,
    ) -> Result<(), BrokerError> {
        let inner = &self.inner;
        let mid = &lease.message_id;
        let keys = vec![chunks_key(mid), meta_key(mid), lease_key(mid)];
        let args = args![
            lease.fence,
            index,
            &frame[..],
            ms(inner.cfg.stream_ttl),
            ms(inner.cfg.lease_ttl),
            lease_value(lease, &inner.cfg.node_id),
            channel(&lease.owner.session_id),
            envelope(false, index, mid, &frame)
        ];
        let (n, detail): (i64, i64) = inner.link.script(&APPEND, keys, args).await?;
        match n {
            -1 => {
                tracing::warn!(message_id = %mid, fence = lease.fence, current = detail, "append rejected: stale fencing token");
                Err(BrokerError::Fenced)
            }
            -2 => Err(BrokerError::NotFound),
            -3 => Err(BrokerError::OutOfOrder {
                expected: detail as u32,
                got: index,
            }),
            _ => Ok(()),
        }
    }

    async fn renew(&self, lease: &StreamLease) -> Result<(), BrokerError> {
        let inner = &self.inner;
        let keys = vec![lease_key(&lease.message_id)];
        let args = args![
            lease_value(lease, &inner.cfg.node_id),
            ms(inner.cfg.lease_ttl)
        ];
        let n: i64 = inner.link.script(&RENEW, keys, args).await?;
        if n == 1 {
            tracing::info!(message_id = %lease.message_id, fence = lease.fence, "Stream lease renewed");
            Ok(())
        } else {
            tracing::warn!(message_id = %lease.message_id, fence = lease.fence, "Stream lease lost");
            Err(BrokerError::Fenced)
        }
    }

    async fn finish_stream(
        &self,
        lease: &StreamLease,
        status: StreamStatus,
        frame: Bytes,
    ) -> Result<(), BrokerError> {
        let inner = &self.inner;
        let mid = &lease.message_id;
        let keys = vec![
            meta_key(mid),
            lease_key(mid),
            STREAMS_ACTIVE.into(),
            chunks_key(mid),
        ];
        let args = args![
            lease.fence,
            status.as_str(),
            &frame[..],
            ms(inner.cfg.stream_ttl),
            mid.as_ref(),
            channel(&lease.owner.session_id),
            envelope(true, 0, mid, &frame)
        ];
        let result: Result<i64, BrokerError> = inner.link.script(&FINISH, keys, args).await;
        match result {
            Ok(1) => {
                tracing::info!(message_id = %mid, fence = lease.fence, status = status.as_str(), "Stream lease released");
                Ok(())
            }
            Ok(-1) => Err(BrokerError::Fenced),
            Ok(_) => Ok(()),
            Err(e) => {
                // Redis is gone: this node's own clients still learn that the
                // stream ended (degraded, not recoverable from another node).
                let out = Out::End(Arc::new(StreamFrame {
                    message_id: mid.clone(),
                    index: 0,
                    frame,
                }));
                inner.fan_out_local(&lease.owner.session_id, out);
                Err(e)
            }
        }
    }

    async fn read_stream(
        &self,
        owner: &Owner,
        message_id: &str,
        from: u32,
    ) -> Result<Replay, BrokerError> {
        let inner = &self.inner;
        for attempt in 0..2 {
            let (meta, chunks) = (meta_key(message_id), chunks_key(message_id));
            let (fields, frames): (HashMap<String, String>, Vec<Vec<u8>>) = inner
                .link
                .call(|mut c| async move {
                    redis::pipe()
                        .hgetall(meta)
                        .cmd("LRANGE")
                        .arg(chunks)
                        .arg(from as i64)
                        .arg(-1)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            let owned = fields.get("owner").map(String::as_str) == Some(&owner.session_id)
                && fields.get("token").map(String::as_str) == Some(&owner.token);
            if !owned {
                return Err(BrokerError::NotFound);
            }
            let status = fields
                .get("status")
                .and_then(|s| parse_status(s))
                .ok_or(BrokerError::NotFound)?;
            // A generator that died leaves a stream `streaming` with no lease:
            // settle it first so the client is told, not left waiting.
            if status == StreamStatus::Streaming
                && attempt == 0
                && inner.interrupt_if_orphaned(message_id).await?
            {
                continue;
            }
            let total = fields
                .get("chunks")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0u32);
            return Ok(Replay {
                message_id: message_id.into(),
                status,
                from,
                chunks: frames.into_iter().map(Bytes::from).collect(),
                total,
                end: fields.get("end").map(|e| Bytes::from(e.clone())),
            });
        }
        Err(BrokerError::NotFound)
    }

    async fn cleanup(&self) -> CleanupReport {
        let inner = &self.inner;
        let mut report = CleanupReport::default();
        // Streams whose generator died: lease gone, still `streaming`. Walked
        // with ZSCAN a page at a time, so a large set neither blocks Redis nor
        // leaves streams past the first page unchecked.
        let mut cursor = 0;
        for _ in 0..MAX_SCAN_PAGES {
            let Some((next, page)) = inner.scan_page("ZSCAN", STREAMS_ACTIVE, cursor).await else {
                break;
            };
            // Members and scores alternate.
            for mid in page.iter().step_by(2) {
                if let Ok(true) = inner.interrupt_if_orphaned(mid).await {
                    tracing::info!(message_id = %mid, "Cleaning up: stream owner died, marked interrupted");
                    report.streams += 1;
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        // Sessions: entries of dead nodes, or idle past the session TTL,
        // walked with HSCAN for the same reasons.
        let mut alive: HashMap<String, bool> = HashMap::new();
        let mut cursor = 0;
        for _ in 0..MAX_SCAN_PAGES {
            let Some((next, page)) = inner.scan_page("HSCAN", SESSIONS_ACTIVE, cursor).await else {
                break;
            };
            for pair in page.chunks_exact(2) {
                if inner.stale_session(&pair[0], &pair[1], &mut alive).await {
                    report.sessions += 1;
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        report
    }

    fn status(&self) -> BrokerStatus {
        let inner = &self.inner;
        BrokerStatus {
            kind: "redis",
            healthy: inner.link.is_up(),
            state: inner.link.state(),
            sessions: lock(&inner.local).len(),
            cached_streams: 0,
            cached_bytes: 0,
        }
    }

    async fn close(&self) {
        let inner = &self.inner;
        let sessions: Vec<String> = inner
            .local_sessions()
            .into_iter()
            .map(|(s, _)| s.to_string())
            .collect();
        let alive = alive_key(&inner.cfg.node_id);
        let _ = inner
            .link
            .call(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.del(alive).ignore();
                for s in sessions.chunks(1000).filter(|s| !s.is_empty()) {
                    pipe.hdel(SESSIONS_ACTIVE, s).ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
            .await;
    }
}
