//! Redis as the transport of the `workers::exchange` messages between a
//! controller and its agents: one protocol, two transports (pipes locally,
//! Redis Streams across machines).
//!
//! Each message is one stream entry (`XADD ... MAXLEN ~`) whose field `m`
//! is the same JSON a worker's pipe carries, histograms as (value, count)
//! pairs, so nothing is lost on the way. Commands go over one multiplexed
//! connection with a response timeout; blocking reads over another, each
//! bounded by [`BLOCK`], so no wait is unbounded and a blocked read never
//! delays a heartbeat.

use crate::agents::keys::{BLOCK, KEY_TTL, STREAM_MAXLEN};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest entry accepted from a stream (a result's histograms are tens of KiB).
const MAX_ENTRY: usize = 16 << 20;
/// Entries read at once.
const READ_COUNT: usize = 256;
/// Clock samples taken to estimate an offset.
const CLOCK_SAMPLES: usize = 7;

/// The connections to the coordinator.
#[derive(Clone)]
pub struct Bus {
    url: String,
    cmd: MultiplexedConnection,
    reader: MultiplexedConnection,
}

/// This machine's clock against the coordinator's.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Local clock minus Redis TIME, microseconds.
    pub offset_us: i64,
    /// Round trip of the sample used, microseconds.
    pub rtt_us: u64,
}

impl Clock {
    /// The local wall-clock time of the coordinator's instant `unix_us`.
    pub fn local_us(&self, unix_us: u64) -> i64 {
        unix_us as i64 + self.offset_us
    }
}

pub fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Bus {
    pub async fn connect(url: &str) -> Result<Bus, String> {
        let client = redis::Client::open(url).map_err(|e| format!("coordinator {url}: {e}"))?;
        let conf = |t| {
            AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(t))
        };
        let cmd = client
            .get_multiplexed_async_connection_with_config(&conf(Duration::from_secs(10)))
            .await
            .map_err(|e| format!("cannot reach the coordinator {url}: {e}"))?;
        let reader = client
            .get_multiplexed_async_connection_with_config(&conf(BLOCK + Duration::from_secs(5)))
            .await
            .map_err(|e| format!("cannot reach the coordinator {url}: {e}"))?;
        Ok(Bus {
            url: url.to_string(),
            cmd,
            reader,
        })
    }

    /// The coordinator's URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Run one command on the command connection.
    pub async fn run<T: redis::FromRedisValue>(&self, c: &redis::Cmd) -> Result<T, String> {
        let mut conn = self.cmd.clone();
        c.query_async(&mut conn)
            .await
            .map_err(|e| format!("coordinator: {e}"))
    }

    /// Run a pipeline on the command connection, ignoring its replies.
    pub async fn run_pipe(&self, p: &redis::Pipeline) -> Result<(), String> {
        let mut conn = self.cmd.clone();
        p.query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("coordinator: {e}"))
    }

    /// Run a pipeline on the command connection and read its replies.
    pub async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        p: &redis::Pipeline,
    ) -> Result<T, String> {
        let mut conn = self.cmd.clone();
        p.query_async::<T>(&mut conn)
            .await
            .map_err(|e| format!("coordinator: {e}"))
    }

    /// The coordinator's clock, microseconds since the Unix epoch.
    pub async fn time_us(&self) -> Result<u64, String> {
        let (s, us): (u64, u64) = self.run(&redis::cmd("TIME")).await?;
        Ok(s * 1_000_000 + us)
    }

    /// Estimate this machine's clock offset: the sample with the shortest
    /// round trip, its Redis time taken as read at the midpoint.
    pub async fn clock(&self) -> Result<Clock, String> {
        let mut best: Option<Clock> = None;
        for _ in 0..CLOCK_SAMPLES {
            let before = wall_us();
            let t = self.time_us().await? as i64;
            let after = wall_us();
            let rtt = (after - before).max(0) as u64;
            if best.is_none_or(|b| rtt < b.rtt_us) {
                best = Some(Clock {
                    offset_us: before + (after - before) / 2 - t,
                    rtt_us: rtt,
                });
            }
        }
        best.ok_or_else(|| "no clock sample".to_string())
    }

    /// Append `m` to `stream` (bounded, and expiring if left behind).
    pub async fn post<T: Serialize>(&self, stream: &str, m: &T) -> Result<(), String> {
        let json = serde_json::to_string(m).map_err(|e| format!("encoding a message: {e}"))?;
        let mut pipe = redis::pipe();
        pipe.cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAXLEN)
            .arg("*")
            .arg("m")
            .arg(json)
            .ignore()
            .cmd("EXPIRE")
            .arg(stream)
            .arg(KEY_TTL.as_secs())
            .ignore();
        let mut conn = self.cmd.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("coordinator: {e}"))
    }

    /// The next messages of `streams` after each one's last id (updated),
    /// waiting at most [`BLOCK`]; `(stream index, message)` in order. An
    /// entry that does not parse is skipped with its error.
    pub async fn read<T: DeserializeOwned>(
        &self,
        streams: &mut [(String, String)],
    ) -> Result<Vec<(usize, Result<T, String>)>, String> {
        if streams.is_empty() {
            tokio::time::sleep(BLOCK).await;
            return Ok(Vec::new());
        }
        let mut c = redis::cmd("XREAD");
        c.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS");
        for (k, _) in streams.iter() {
            c.arg(k);
        }
        for (_, id) in streams.iter() {
            c.arg(id);
        }
        let mut conn = self.reader.clone();
        let reply: Value = c
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("coordinator: {e}"))?;
        let mut out = Vec::new();
        for (name, entries) in pairs(reply) {
            let Some(i) = streams.iter().position(|(k, _)| *k == name) else {
                continue;
            };
            for (id, fields) in entries {
                streams[i].1 = id;
                let m = fields
                    .ok_or_else(|| "an entry without a message".to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<T>(&b).map_err(|e| format!("a bad message: {e}"))
                    });
                out.push((i, m));
            }
        }
        Ok(out)
    }
}

/// One stream entry: its id and its field `m`, if it has a usable one.
type Entry = (String, Option<Vec<u8>>);

/// XREAD's reply as (stream, entries), RESP2 arrays or RESP3 maps.
fn pairs(v: Value) -> Vec<(String, Vec<Entry>)> {
    let streams: Vec<(Value, Value)> = match v {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let e = kv.pop()?;
                    let k = kv.pop()?;
                    Some((k, e))
                }
                _ => None,
            })
            .collect(),
        Value::Map(m) => m,
        _ => Vec::new(),
    };
    streams
        .into_iter()
        .filter_map(|(k, e)| {
            let Value::Array(entries) = e else {
                return None;
            };
            let entries = entries
                .into_iter()
                .filter_map(|entry| {
                    let Value::Array(mut idf) = entry else {
                        return None;
                    };
                    if idf.len() != 2 {
                        return None;
                    }
                    let fields = idf.pop()?;
                    let id = text(idf.pop()?)?;
                    Some((id, field_m(fields)))
                })
                .collect();
            Some((text(k)?, entries))
        })
        .collect()
}

/// The value of field `m` of an entry, if it is not too big.
fn field_m(fields: Value) -> Option<Vec<u8>> {
    let flat: Vec<Value> = match fields {
        Value::Array(a) => a,
        Value::Map(m) => m.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return None,
    };
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if text(k).as_deref() == Some("m")
            && let Value::BulkString(b) = v
            && b.len() <= MAX_ENTRY
        {
            return Some(b);
        }
    }
    None
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}
