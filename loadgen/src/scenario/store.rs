//! Redis read directly, as the seed's verification commands do
//! (`HGET sessions:active`, `LRANGE stream:chunks:{id}`, `PUBSUB`), through
//! a short-lived connection per call so an outage is an error, not a hang.
//!
//! The key names are the seed's, written out here rather than taken from
//! the node, so a node that stored them elsewhere would fail the check.

use crate::scenario::checks::{Sequence, cached_indices};
use std::time::Duration;

/// The seed's hash of active sessions (session id -> JSON with the node).
pub const SESSIONS_ACTIVE: &str = "sessions:active";

/// The seed's chunk cache of one answer.
pub fn chunks_key(message_id: &str) -> String {
    format!("stream:chunks:{message_id}")
}

/// The seed's Pub/Sub channel of one session.
pub fn channel(session_id: &str) -> String {
    format!("chat:stream:{session_id}")
}

/// A reply as `redis-cli` shows it: the value, or `(nil)`.
pub fn shown(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(nil)".into())
}

const TIMEOUT: Duration = Duration::from_secs(2);

pub struct Store {
    client: redis::Client,
    url: String,
}

impl Store {
    pub fn open(url: &str) -> Result<Store, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis {url}: {e}"))?;
        Ok(Store {
            client,
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, String> {
        let mut c = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(|e| format!("Redis {}: {e}", self.url))?;
        let _ = c.set_read_timeout(Some(TIMEOUT));
        let _ = c.set_write_timeout(Some(TIMEOUT));
        cmd.query(&mut c)
            .map_err(|e| format!("Redis {}: {e}", self.url))
    }

    pub fn ping(&self) -> bool {
        self.query::<String>(&redis::cmd("PING")).is_ok()
    }

    /// `HGET sessions:active SID`.
    pub fn session(&self, session_id: &str) -> Result<Option<String>, String> {
        self.query(redis::cmd("HGET").arg(SESSIONS_ACTIVE).arg(session_id))
    }

    /// `LRANGE stream:chunks:MID 0 -1`.
    pub fn cached_chunks(&self, message_id: &str) -> Result<Vec<String>, String> {
        self.query(
            redis::cmd("LRANGE")
                .arg(chunks_key(message_id))
                .arg(0)
                .arg(-1),
        )
    }

    /// The cached chunks of `message_id` against `0..chunks`, and how many
    /// entries were not its chunk frames.
    pub fn cached_sequence(
        &self,
        message_id: &str,
        chunks: u32,
    ) -> Result<(Sequence, usize, String), String> {
        let (idx, other) = cached_indices(&self.cached_chunks(message_id)?, message_id);
        let seq = Sequence::of(&idx, chunks);
        let line = format!(
            "LRANGE stream:chunks:{message_id} 0 -1: {}; {other} other entries",
            seq.describe(idx.len())
        );
        Ok((seq, other, line))
    }

    /// `PUBSUB NUMSUB chat:stream:SID`: how many connections (one per node) listen.
    pub fn subscribers(&self, session_id: &str) -> Result<u64, String> {
        let reply: Vec<redis::Value> =
            self.query(redis::cmd("PUBSUB").arg("NUMSUB").arg(channel(session_id)))?;
        match reply.get(1) {
            Some(redis::Value::Int(n)) => Ok((*n).max(0) as u64),
            other => Err(format!("PUBSUB NUMSUB: unexpected reply {other:?}")),
        }
    }

    /// wsnode's own record of who generates `message_id` (not a seed key):
    /// `HMGET stream:meta:MID node fence`; `None` when the node under test
    /// keeps no such hash.
    pub fn stream_holder(&self, message_id: &str) -> Result<Option<(String, u64)>, String> {
        let (node, fence): (Option<String>, Option<u64>) = self.query(
            redis::cmd("HMGET")
                .arg(format!("stream:meta:{message_id}"))
                .arg("node")
                .arg("fence"),
        )?;
        Ok(node.zip(fence))
    }

    /// `PUBSUB CHANNELS chat:stream:*`.
    pub fn stream_channels(&self) -> Result<Vec<String>, String> {
        self.query(redis::cmd("PUBSUB").arg("CHANNELS").arg("chat:stream:*"))
    }
}
