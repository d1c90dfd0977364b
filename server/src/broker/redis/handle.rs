//! [`RedisBroker`]: the handle a node holds, its background tasks, and the
//! [`Broker`] calls, each one Lua script or pipeline against Redis.
//!
//! Chunks are appended and published in one script that checks the
//! stream's fencing token and index (see `scripts`), so no writer can leave
//! a gap or a duplicate, and a node that lost its lease cannot write at all.

use super::link::{Link, args};
use super::scripts::*;
use super::shared::{
    Advert, Inner, LocalSession, MAX_SCAN_PAGES, RedisSettings, SubscriptionCheck, lease_value,
    lock, ms, now_ms, parse_status,
};
use super::subscriber;
use crate::broker::api::{
    AnswerPlan, AttachRequest, Attached, Broker, BrokerError, BrokerStatus, CleanupReport, Owner,
    StreamLease, Takeover,
};
use crate::broker::sink::{ConnSink, Out, Replay, StreamFrame};
use crate::sessions::new_token;
use bytes::Bytes;
use protocol::StreamStatus;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The Redis broker: shared state plus the tasks that keep it current
/// (connection keeper, subscriber, heartbeat), aborted on drop.
pub struct RedisBroker {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl RedisBroker {
    /// Create the broker and start its background tasks (connection keeper,
    /// subscriber, heartbeat). It serves once Redis answers; until then calls
    /// fail with `Unavailable`. It registers no URL for the node.
    pub fn start(cfg: RedisSettings) -> Result<RedisBroker, BrokerError> {
        Self::start_advertised(cfg, Advert::default())
    }

    /// [`start`](Self::start), registering `advert` (the node's URL and host)
    /// with its id and pid in `nodes:active`.
    pub fn start_advertised(
        cfg: RedisSettings,
        advert: Advert,
    ) -> Result<RedisBroker, BrokerError> {
        let client = redis::Client::open(cfg.url.as_str())
            .map_err(|e| BrokerError::Unavailable(format!("bad Redis URL: {e}")))?;
        // Bounded: one pending request per session at most in practice.
        let (sub_tx, sub_rx) = mpsc::channel(4096);
        // A nonce per start: leases of a crashed process are not taken for
        // those of the node restarted under the same id.
        let holder = format!("{}@{}", cfg.node_id, &new_token()[..8]).into();
        let inner = Arc::new(Inner {
            holder,
            link: Link::new(client, cfg.timeout),
            cfg,
            advert,
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
        let _ = inner.sub_tx.try_send(SubscriptionCheck {
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
        plan: &AnswerPlan,
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
            inner.holder.as_ref(),
            ms(inner.cfg.lease_ttl),
            ms(inner.cfg.stream_ttl),
            message_id.as_ref(),
            now_ms(),
            inner.cfg.node_id.as_ref(),
            plan.chunks,
            plan.interval.as_millis() as u64,
            plan.chunk_size,
            plan.prompt.as_ref()
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
            lease_value(lease, &inner.holder),
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
        let args = args![lease_value(lease, &inner.holder), ms(inner.cfg.lease_ttl)];
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
            channel(&lease.owner.session_id)
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
                // Index 0: the count Redis holds is unknown here.
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
        let total = fields
            .get("chunks")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0u32);
        Ok(Replay {
            message_id: message_id.into(),
            status,
            from,
            chunks: frames.into_iter().map(Bytes::from).collect(),
            total,
            end: fields.get("end").map(|e| Bytes::from(e.clone())),
        })
    }

    async fn take_over(&self, message_id: &str) -> Result<Option<Takeover>, BrokerError> {
        self.inner.take_over(message_id).await
    }

    async fn take_over_orphans(&self, max: usize) -> Vec<Takeover> {
        let inner = &self.inner;
        let mut taken = Vec::new();
        // Streams whose generator died: lease gone or holder not present.
        // Walked with ZSCAN a page at a time, so a large set neither blocks
        // Redis nor leaves streams past the first page unchecked.
        let mut cursor = 0;
        for _ in 0..MAX_SCAN_PAGES {
            if taken.len() >= max {
                break;
            }
            let Some((next, page)) = inner.scan_page("ZSCAN", STREAMS_ACTIVE, cursor).await else {
                break;
            };
            // Members and scores alternate.
            let mids = page.into_iter().step_by(2).collect();
            for mid in inner.orphans_among(mids).await {
                if taken.len() >= max {
                    break;
                }
                if let Ok(Some(t)) = inner.take_over(&mid).await {
                    taken.push(t);
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        taken
    }

    async fn hand_over(&self, lease: &StreamLease) -> bool {
        let inner = &self.inner;
        let keys = vec![lease_key(&lease.message_id)];
        let args = args![lease_value(lease, &inner.holder)];
        // Even when Redis cannot be told, the lease lapses: another node
        // continues the stream after the lease TTL (or at once, once this
        // process is gone from its presence channel). So always true.
        let _: Result<i64, _> = inner.link.script(&HAND_OVER, keys, args).await;
        true
    }

    async fn cleanup(&self) -> CleanupReport {
        let inner = &self.inner;
        let mut report = CleanupReport::default();
        // Streams whose generator died are taken over, not cleaned up
        // (`take_over_orphans`); finished ones expire with their TTL.
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
        inner.stale_nodes(&mut alive).await;
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
        let node_id = inner.cfg.node_id.clone();
        let _ = inner
            .link
            .call(|mut c| async move {
                let mut pipe = redis::pipe();
                pipe.del(alive).ignore();
                pipe.hdel(NODES_KEY, node_id.as_ref()).ignore();
                for s in sessions.chunks(1000).filter(|s| !s.is_empty()) {
                    pipe.hdel(SESSIONS_ACTIVE, s).ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
            .await;
    }
}
