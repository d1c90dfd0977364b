//! What the Redis broker's parts share: its settings, the connection to
//! Redis, and this node's local registry of the sessions it serves.
//!
//! [`Inner`] is held by the broker handle, the subscriber task and the
//! heartbeat; it lives in its own module so each of those imports it from
//! here and none imports another. The calls that need more than one Redis
//! round trip (cleanup scans, the welcome's stream list, the heartbeat's
//! pipelines) are methods here too; the [`Broker`](crate::broker::api::Broker)
//! calls themselves are in `handle`.

use super::link::{Link, args};
use super::scripts::*;
use crate::broker::api::{AnswerPlan, BrokerError, Owner, StreamLease, Takeover};
use crate::broker::sink::{ConnSink, Out};
use protocol::{StreamInfo, StreamStatus};
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// Entries asked for per `HSCAN`/`ZSCAN` page during cleanup.
const SCAN_COUNT: u32 = 500;
/// Pages walked per key per cleanup pass at most (bounds one pass's work).
pub const MAX_SCAN_PAGES: usize = 10_000;

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
    /// Take streams over without a new fencing token: the `skip-fencing`
    /// test fault (false in any real use).
    pub skip_fencing: bool,
}

/// What a node registers about itself in `nodes:active`, besides its id
/// and pid (see `protocol::health::NodeRegistration`).
#[derive(Debug, Clone, Default)]
pub struct Advert {
    /// Where clients reach the node (`--advertise-url`); `None` if unknown.
    pub url: Option<String>,
    /// The node's hostname, so a reader can tell whether the pid is local.
    pub host: String,
}

/// Asks the subscriber task to re-check the subscription of one session.
pub struct SubscriptionCheck {
    pub sid: Arc<str>,
    /// Answered once the subscription matches (or could not be changed).
    pub ack: Option<oneshot::Sender<Result<(), String>>>,
}

/// The broker's state, held by its handle and by each background task.
pub struct Inner {
    pub cfg: RedisSettings,
    /// This process's name in leases and on its presence channel:
    /// `node_id@nonce`, new at every start.
    pub holder: Arc<str>,
    pub advert: Advert,
    pub link: Link,
    pub local: Mutex<HashMap<Arc<str>, LocalSession>>,
    /// Asks the subscriber task to (un)subscribe a session's channel.
    pub sub_tx: mpsc::Sender<SubscriptionCheck>,
}

/// This node's connections of one session.
pub struct LocalSession {
    pub conns: Vec<ConnSink>,
    pub connected_at: u64,
}

/// Wall-clock milliseconds, as stored in `sessions:active` (`last_seen`).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// A TTL in Redis milliseconds (at least 1: Redis refuses 0).
pub fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

/// Lock the mutex; a poisoned one (a panic while it was held) is used as it is.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    pub fn session_value(&self, connected_at: u64) -> String {
        format!(
            r#"{{"node":"{}","connected_at":{connected_at},"last_seen":{}}}"#,
            self.cfg.node_id,
            now_ms()
        )
    }

    /// This node's `nodes:active` entry, stamped now.
    pub fn registration(&self) -> String {
        let r = protocol::NodeRegistration {
            node_id: self.cfg.node_id.to_string(),
            url: self.advert.url.clone(),
            pid: std::process::id(),
            host: self.advert.host.clone(),
            last_seen_ms: now_ms(),
        };
        serde_json::to_string(&r).unwrap_or_default()
    }

    /// Whether `node`'s liveness key exists (true when Redis cannot say),
    /// remembered in `cache` for one cleanup pass.
    pub async fn node_alive(&self, node: &str, cache: &mut HashMap<String, bool>) -> bool {
        if let Some(a) = cache.get(node) {
            return *a;
        }
        let key = alive_key(node);
        let a: bool = self
            .link
            .call(|mut c| async move { redis::cmd("EXISTS").arg(key).query_async(&mut c).await })
            .await
            .unwrap_or(true);
        cache.insert(node.to_string(), a);
        a
    }

    /// Delete `field` of hash `key` if it still holds `value`; true if it did.
    pub async fn delete_if_same(&self, key: &str, field: &str, value: &str) -> bool {
        let keys = vec![key.to_string()];
        let removed: i64 = self
            .link
            .script(&DELETE_IF_SAME, keys, args![field, value])
            .await
            .unwrap_or(0);
        removed == 1
    }

    /// Remove the `nodes:active` entries of nodes that died without
    /// deregistering (liveness key gone, not refreshed for a node TTL).
    pub async fn stale_nodes(&self, alive: &mut HashMap<String, bool>) -> usize {
        let entries: HashMap<String, String> = self
            .link
            .call(|mut c| async move {
                redis::cmd("HGETALL")
                    .arg(NODES_KEY)
                    .query_async(&mut c)
                    .await
            })
            .await
            .unwrap_or_default();
        let mut removed = 0;
        for (node, value) in entries {
            if *node == *self.cfg.node_id || self.node_alive(&node, alive).await {
                continue;
            }
            let last_seen = serde_json::from_str::<protocol::NodeRegistration>(&value)
                .map_or(0, |r| r.last_seen_ms);
            if now_ms().saturating_sub(last_seen) >= ms(self.cfg.node_ttl)
                && self.delete_if_same(NODES_KEY, &node, &value).await
            {
                tracing::info!(node = %node, "Cleaning up: node gone, registry entry removed");
                removed += 1;
            }
        }
        removed
    }

    /// Deliver to this node's connections of a session.
    pub fn fan_out_local(&self, sid: &str, out: Out) {
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
    pub async fn scan_page(
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
    pub async fn stale_session(
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
        let node_alive = self.node_alive(&node, alive).await;
        // A live node refreshes its sessions every node_ttl/3, so an entry
        // it has not refreshed for a whole session TTL is not attached.
        let stale = idle_ms >= ms(self.cfg.session_ttl)
            || (!node_alive && idle_ms >= ms(self.cfg.node_ttl));
        if !stale {
            return false;
        }
        let removed = self.delete_if_same(SESSIONS_ACTIVE, sid, value).await;
        if removed {
            tracing::info!(session_id = %sid, node = %node, node_alive, idle_ms, "Cleaning up stale session");
        }
        removed
    }

    /// Whether this node has live connections of `sid`.
    pub fn serves(&self, sid: &str) -> bool {
        lock(&self.local)
            .get(sid)
            .is_some_and(|s| s.conns.iter().any(|c| !c.is_closed()))
    }

    pub fn local_sessions(&self) -> Vec<(Arc<str>, u64)> {
        lock(&self.local)
            .iter()
            .map(|(k, v)| (k.clone(), v.connected_at))
            .collect()
    }

    /// Ask the subscriber to match the channel of `sid` to local use; wait for it.
    pub async fn sync_subscription(&self, sid: Arc<str>) -> Result<(), BrokerError> {
        let (ack, done) = oneshot::channel();
        self.sub_tx
            .send(SubscriptionCheck {
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
    pub async fn heartbeat(&self) {
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
            let registration = self.registration();
            // Bounded pipelines, so a node with many sessions never builds one
            // huge request; the first also refreshes the node's liveness key
            // and its registry entry.
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
                    pipe.hset(NODES_KEY, self.cfg.node_id.as_ref(), &registration)
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

    pub async fn stream_infos(&self, sid: &str) -> Result<Vec<StreamInfo>, BrokerError> {
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

    /// Take `mid` over if its generator died (see `scripts::TAKEOVER`).
    pub async fn take_over(&self, mid: &str) -> Result<Option<Takeover>, BrokerError> {
        let keys = vec![
            meta_key(mid),
            lease_key(mid),
            FENCE.into(),
            STREAMS_ACTIVE.into(),
            chunks_key(mid),
        ];
        let fenced = if self.cfg.skip_fencing { "0" } else { "1" };
        let args = args![
            mid,
            self.holder.as_ref(),
            ms(self.cfg.lease_ttl),
            fenced,
            self.cfg.node_id.as_ref()
        ];
        let r: Vec<String> = self.link.script(&TAKEOVER, keys, args).await?;
        match r.first().map(String::as_str) {
            Some("1") if r.len() == 10 => {}
            Some("-1") => {
                tracing::warn!(message_id = %mid, "Stream interrupted: its generator died and its chunks are gone");
                return Ok(None);
            }
            _ => return Ok(None),
        }
        let num = |i: usize| r[i].parse::<u64>().unwrap_or(0);
        let t = Takeover {
            lease: StreamLease {
                owner: Owner {
                    session_id: r[3].as_str().into(),
                    token: r[4].as_str().into(),
                },
                message_id: mid.into(),
                fence: num(1),
            },
            next: num(2) as u32,
            plan: AnswerPlan {
                chunks: num(5) as u32,
                interval: Duration::from_millis(num(6)),
                chunk_size: num(7) as usize,
                prompt: r[8].as_str().into(),
            },
        };
        tracing::info!(message_id = %mid, node_id = %self.cfg.node_id, fence = t.lease.fence,
            previous_fence = num(9), next = t.next, "Stream lease taken over");
        Ok(Some(t))
    }

    /// Of the streams on one `streams:active` page, those whose lease is
    /// gone or whose holder left its presence channel: two round trips for
    /// the page, instead of a script per stream.
    pub async fn orphans_among(&self, mids: Vec<String>) -> Vec<String> {
        if mids.is_empty() {
            return mids;
        }
        let mut pipe = redis::pipe();
        for mid in &mids {
            pipe.get(lease_key(mid));
        }
        let Ok(holders) = self
            .link
            .call(|mut c| async move { pipe.query_async::<Vec<Option<String>>>(&mut c).await })
            .await
        else {
            return Vec::new();
        };
        let nodes: Vec<String> = holders
            .iter()
            .flatten()
            .filter_map(|h| h.rsplit_once(':').map(|(node, _)| node.to_string()))
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        let mut present = HashMap::new();
        if !nodes.is_empty() {
            let channels: Vec<String> = nodes.iter().map(|n| presence_channel(n)).collect();
            let counts: Vec<(String, i64)> = self
                .link
                .call(|mut c| async move {
                    redis::cmd("PUBSUB")
                        .arg("NUMSUB")
                        .arg(channels)
                        .query_async(&mut c)
                        .await
                })
                .await
                .unwrap_or_default();
            present.extend(counts);
        }
        mids.into_iter()
            .zip(holders)
            .filter(|(_, holder)| match holder {
                None => true,
                Some(h) => h.rsplit_once(':').is_none_or(|(node, _)| {
                    present.get(&presence_channel(node)).copied().unwrap_or(1) == 0
                }),
            })
            .map(|(mid, _)| mid)
            .collect()
    }
}

/// A stream's `status` field in `stream:meta:{mid}`.
pub fn parse_status(s: &str) -> Option<StreamStatus> {
    match s {
        "streaming" => Some(StreamStatus::Streaming),
        "done" => Some(StreamStatus::Done),
        "interrupted" => Some(StreamStatus::Interrupted),
        _ => None,
    }
}

/// The value of `stream:lease:{mid}`: `holder:fence`.
pub fn lease_value(lease: &StreamLease, holder: &str) -> String {
    format!("{holder}:{}", lease.fence)
}
