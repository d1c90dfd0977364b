//! The node's Pub/Sub connection: subscribes to the channels of the sessions
//! it serves and routes every published stream frame to their connections.
//!
//! One task owns the subscription state. Requests only say "look at session
//! X again"; the task compares what the local registry needs with what it is
//! subscribed to, so a detach racing an attach can never leave a served
//! session unsubscribed. When the connection drops, the task reconnects and
//! subscribes to everything the node serves before answering again.
//!
//! The same connection holds the node's presence channel: other nodes take a
//! node with no subscriber there for dead and take its answers over at once
//! (scripts::TAKEOVER), instead of waiting for their leases to expire.

use super::scripts::{channel, parse_envelope, presence_channel};
use super::shared::{Inner, SubscriptionCheck};
use crate::broker::sink::{Out, StreamFrame};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const CHANNEL_PREFIX: &str = "chat:stream:";

pub async fn run(inner: Arc<Inner>, mut requests: mpsc::Receiver<SubscriptionCheck>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connect = inner.link.client().get_async_pubsub();
        let pubsub = match tokio::time::timeout(inner.cfg.timeout, connect).await {
            Ok(Ok(p)) => p,
            _ => {
                // Answer waiting attaches instead of leaving them hanging.
                while let Ok(req) = requests.try_recv() {
                    if let Some(ack) = req.ack {
                        let _ = ack.send(Err("Redis Pub/Sub unavailable".into()));
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        let (mut sink, mut stream) = pubsub.split();
        let mut subscribed: HashSet<Arc<str>> = HashSet::new();
        // First the presence channel: other nodes read this node as alive
        // from it (a crash drops the connection, and the subscription, at once).
        let presence = presence_channel(&inner.holder);
        let mut ok = matches!(
            tokio::time::timeout(inner.cfg.timeout, sink.subscribe(presence)).await,
            Ok(Ok(()))
        );
        // Re-subscribe everything this node serves (after a Redis restart too).
        let sessions = if ok {
            inner.local_sessions()
        } else {
            Vec::new()
        };
        for (sid, _) in sessions {
            let r = tokio::time::timeout(inner.cfg.timeout, sink.subscribe(channel(&sid))).await;
            if !matches!(r, Ok(Ok(()))) {
                ok = false;
                break;
            }
            subscribed.insert(sid);
        }
        if ok && !subscribed.is_empty() {
            tracing::info!(
                channels = subscribed.len(),
                "Re-subscribed session channels"
            );
        }
        while ok {
            tokio::select! {
                req = requests.recv() => {
                    let Some(req) = req else { return };
                    let want = inner.serves(&req.sid);
                    let have = subscribed.contains(&req.sid);
                    let result = if want && !have {
                        let r = tokio::time::timeout(inner.cfg.timeout, sink.subscribe(channel(&req.sid))).await;
                        match r {
                            Ok(Ok(())) => { subscribed.insert(req.sid.clone()); Ok(()) }
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err("subscribe timed out".to_string()),
                        }
                    } else if !want && have {
                        let r = tokio::time::timeout(inner.cfg.timeout, sink.unsubscribe(channel(&req.sid))).await;
                        subscribed.remove(&req.sid);
                        match r {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err("unsubscribe timed out".to_string()),
                        }
                    } else {
                        Ok(())
                    };
                    if result.is_err() {
                        ok = false;
                    }
                    if let Some(ack) = req.ack {
                        let _ = ack.send(result);
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        inner.link.trip("Pub/Sub connection closed");
                        ok = false;
                        continue;
                    };
                    route(&inner, msg.get_channel_name(), msg.get_payload_bytes());
                }
            }
        }
        tracing::warn!("Redis Pub/Sub connection lost: reconnecting");
    }
}

/// Hand one published frame to this node's connections of its session.
fn route(inner: &Inner, channel_name: &str, payload: &[u8]) {
    let Some(sid) = channel_name.strip_prefix(CHANNEL_PREFIX) else {
        return;
    };
    let Some((end, index, mid, frame)) = parse_envelope(payload) else {
        tracing::warn!(
            channel = channel_name,
            "ignoring a malformed stream message"
        );
        return;
    };
    let item = Arc::new(StreamFrame {
        message_id: mid.into(),
        index,
        frame: Bytes::copy_from_slice(frame),
    });
    let out = if end {
        Out::End(item)
    } else {
        Out::Chunk(item)
    };
    inner.fan_out_local(sid, out);
}
