//! Lua scripts: every multi-key change to a stream happens in one of these,
//! so it is atomic in Redis whatever the concurrency between nodes.
//!
//! Key layout (compatible with the seed's verification commands):
//! - `sessions:active` hash: session id -> JSON {node, connected_at, last_seen}
//! - `session:{id}:token`: the session's token, expiring `session_ttl` after
//!   its last connection left
//! - `session:{id}:streams`: the session's recent message ids (newest first)
//! - `stream:chunks:{mid}` list of chunk frames (what `LRANGE` shows)
//! - `stream:meta:{mid}` hash: owner, token, status, chunks, fence, node, end,
//!   and the plan another node needs to continue the answer: total,
//!   interval_ms, chunk_size, prompt
//! - `stream:lease:{mid}`: `holder:fence` of the generator, with a PX TTL;
//!   the holder is `node@incarnation` (a nonce per process start), so a
//!   node restarted under the same id does not pass for its dead self
//! - `stream:fence` counter, `streams:active` set of streams being generated
//! - `node:{id}:alive`: refreshed by each live node
//! - `nodes:active` hash: node id -> JSON {node_id, url, pid, host,
//!   last_seen_ms} (`protocol::health::NodeRegistration`), refreshed with the
//!   liveness key, deleted when the node stops or a cleanup finds it dead
//! - Pub/Sub channel `chat:stream:{sid}`: every stream frame of the session,
//!   as an envelope `C|E` + index + `\n` + message id + `\n` + frame.
//!
//! Ids are validated to `[A-Za-z0-9_.:-]`, so scripts may splice them into
//! key names and JSON without escaping.

use redis::Script;
use std::sync::LazyLock;

/// Attach: check or create the session token, register the session.
/// KEYS: token key, sessions:active. ARGV: presented token ('' for none),
/// new token, token ttl ms, session id, sessions:active value.
/// Returns {1, token} or {0, ''} when the token does not match.
pub static ATTACH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
local tok
if cur then
  if ARGV[1] == '' or ARGV[1] ~= cur then return {0, ''} end
  tok = cur
elseif ARGV[1] ~= '' then
  tok = ARGV[1]
else
  tok = ARGV[2]
end
redis.call('SET', KEYS[1], tok, 'PX', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
return {1, tok}
"#,
    )
});

/// Open a stream, store its plan, and take its lease with a fresh fencing token.
/// KEYS: meta, lease, fence counter, streams:active, session streams list.
/// ARGV: owner session, owner token, holder, lease ms, ttl ms, message id, now ms,
/// node id, total chunks, interval ms, chunk size, prompt.
/// Returns the fence, or -1 when the message id is taken.
pub static OPEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local fence = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[2], ARGV[3] .. ':' .. fence, 'PX', ARGV[4])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', ARGV[2], 'status', 'streaming',
  'chunks', 0, 'fence', fence, 'node', ARGV[8], 'total', ARGV[9], 'interval_ms', ARGV[10],
  'chunk_size', ARGV[11], 'prompt', ARGV[12])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6])
redis.call('LPUSH', KEYS[5], ARGV[6])
redis.call('LTRIM', KEYS[5], 0, 15)
redis.call('PEXPIRE', KEYS[5], ARGV[5])
return fence
"#,
    )
});

/// Append chunk `index` if the fence is current and the index is exactly the
/// next one; renew the lease; publish the chunk to the session's channel.
/// KEYS: chunks list, meta, lease. ARGV: fence, index, frame, ttl ms, lease ms,
/// lease value, channel, envelope.
/// Returns chunks after the append, -1 stale fence, -2 finished, -3 out of order (with the length).
pub static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local fence = redis.call('HGET', KEYS[2], 'fence')
if not fence then return {-2, 0} end
if fence ~= ARGV[1] then return {-1, tonumber(fence)} end
if redis.call('HGET', KEYS[2], 'status') ~= 'streaming' then return {-2, 0} end
local len = redis.call('LLEN', KEYS[1])
if len ~= tonumber(ARGV[2]) then return {-3, len} end
redis.call('RPUSH', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('HSET', KEYS[2], 'chunks', len + 1)
if redis.call('GET', KEYS[3]) == ARGV[6] then redis.call('PEXPIRE', KEYS[3], ARGV[5]) end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return {len + 1, 0}
"#,
    )
});

/// Renew a lease if it is still ours. KEYS: lease. ARGV: lease value, lease ms.
pub static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#,
    )
});

/// Finish a stream the caller still owns: status, end frame, publish, drop the lease.
/// The published envelope carries the chunk count Redis holds, so a
/// connection that got fewer (a Pub/Sub message lost) fetches the rest
/// before the end (`ws::delivery`).
/// KEYS: meta, lease, streams:active, chunks list. ARGV: fence, status, end frame,
/// ttl ms, message id, channel.
/// Returns 1, or -1 stale fence, -2 already finished.
pub static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local fence = redis.call('HGET', KEYS[1], 'fence')
if not fence then return -2 end
if fence ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[1], 'status') ~= 'streaming' then return -2 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'end', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('PEXPIRE', KEYS[4], ARGV[4]) end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[5])
local chunks = redis.call('HGET', KEYS[1], 'chunks') or '0'
redis.call('PUBLISH', ARGV[6], 'E' .. chunks .. '\n' .. ARGV[5] .. '\n' .. ARGV[3])
return 1
"#,
    )
});

/// Take over a stream whose generator died, or end it `interrupted` when
/// nobody can continue it. The generator is dead when its lease expired (or
/// was handed over), or when the lease's holder has no connection on its
/// presence channel (see [`presence_channel`]): a crashed process loses that
/// connection at once, so its answers are taken over within a pass or a
/// client's `recover` instead of a whole lease TTL. The taker gets a new
/// lease and (unless ARGV[4] is '0', the `skip-fencing` test fault) a fencing
/// token from the counter, higher than any before, so a live node wrongly
/// taken for dead is refused on its next append: one writer, always.
/// A stream whose chunk list no longer matches its count (Redis lost the
/// chunks) or that has no plan cannot be continued: it ends `interrupted`.
/// KEYS: meta, lease, fence counter, streams:active, chunks list.
/// ARGV: message id, holder, lease ms, fenced ('1' or '0'), node id.
/// Returns {'1', fence, next index, owner, token, total, interval ms, chunk
/// size, prompt, previous fence} when taken over, {'0'} when there is
/// nothing to take, {'-1'} when it ended the stream `interrupted`.
pub static TAKEOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local holder = redis.call('GET', KEYS[2])
if holder then
  local node = string.match(holder, '^(.*):%d+$')
  if not node then return {'0'} end
  local subs = redis.call('PUBSUB', 'NUMSUB', 'node:' .. node .. ':presence')
  if tonumber(subs[2]) > 0 then return {'0'} end
end
local m = redis.call('HMGET', KEYS[1], 'status', 'chunks', 'fence', 'owner', 'token',
  'total', 'interval_ms', 'chunk_size', 'prompt')
if m[1] ~= 'streaming' then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return {'0'}
end
local chunks = tonumber(m[2]) or 0
if not m[6] or redis.call('LLEN', KEYS[5]) ~= chunks then
  local fence = redis.call('INCR', KEYS[3])
  local frame = '{"type":"interrupted","message_id":"' .. ARGV[1] .. '","chunks":' .. chunks .. '}'
  redis.call('HSET', KEYS[1], 'status', 'interrupted', 'fence', fence, 'end', frame)
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[4], ARGV[1])
  if m[4] then
    redis.call('PUBLISH', 'chat:stream:' .. m[4], 'E' .. chunks .. '\n' .. ARGV[1] .. '\n' .. frame)
  end
  return {'-1'}
end
local fence = m[3]
if ARGV[4] == '1' then fence = redis.call('INCR', KEYS[3]) end
redis.call('SET', KEYS[2], ARGV[2] .. ':' .. fence, 'PX', ARGV[3])
redis.call('HSET', KEYS[1], 'fence', fence, 'node', ARGV[5])
return {'1', tostring(fence), tostring(chunks), m[4], m[5], m[6], m[7] or '0', m[8] or '0',
  m[9] or '', m[3]}
"#,
    )
});

/// Give a lease up without finishing the stream (the holder shuts down), so
/// the next take-over need not wait for it to expire.
/// KEYS: lease. ARGV: lease value. Returns 1 when it was still ours.
pub static HAND_OVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"#,
    )
});

/// Delete a hash entry (`sessions:active`, `nodes:active`) only if it still
/// has the value the cleanup read. KEYS: the hash. ARGV: field, value.
pub static DELETE_IF_SAME: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"#,
    )
});

pub const SESSIONS_ACTIVE: &str = "sessions:active";
pub const STREAMS_ACTIVE: &str = "streams:active";
pub const FENCE: &str = "stream:fence";

pub fn token_key(sid: &str) -> String {
    format!("session:{sid}:token")
}
pub fn session_streams_key(sid: &str) -> String {
    format!("session:{sid}:streams")
}
pub fn chunks_key(mid: &str) -> String {
    format!("stream:chunks:{mid}")
}
pub fn meta_key(mid: &str) -> String {
    format!("stream:meta:{mid}")
}
pub fn lease_key(mid: &str) -> String {
    format!("stream:lease:{mid}")
}
pub fn channel(sid: &str) -> String {
    format!("chat:stream:{sid}")
}
/// The channel every node's Pub/Sub connection subscribes to: while the
/// node's process lives, `PUBSUB NUMSUB` of it is at least 1.
pub fn presence_channel(node: &str) -> String {
    format!("node:{node}:presence")
}

pub use protocol::health::NODES_KEY;

pub fn alive_key(node: &str) -> String {
    protocol::health::node_alive_key(node)
}

/// The Pub/Sub envelope of a stream frame: `C` (chunk) or `E` (end), the
/// index (chunk count for `E`), the message id, the frame.
pub fn envelope(end: bool, index: u32, mid: &str, frame: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(frame.len() + mid.len() + 16);
    v.push(if end { b'E' } else { b'C' });
    v.extend_from_slice(index.to_string().as_bytes());
    v.push(b'\n');
    v.extend_from_slice(mid.as_bytes());
    v.push(b'\n');
    v.extend_from_slice(frame);
    v
}

/// Parse an envelope: (is_end, index, message id, frame).
pub fn parse_envelope(payload: &[u8]) -> Option<(bool, u32, &str, &[u8])> {
    let end = match payload.first()? {
        b'C' => false,
        b'E' => true,
        _ => return None,
    };
    let rest = &payload[1..];
    let nl = rest.iter().position(|b| *b == b'\n')?;
    let index: u32 = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    let rest = &rest[nl + 1..];
    let nl = rest.iter().position(|b| *b == b'\n')?;
    let mid = std::str::from_utf8(&rest[..nl]).ok()?;
    Some((end, index, mid, &rest[nl + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_garbage() {
        let e = envelope(false, 42, "m-1", br#"{"type":"chunk"}"#);
        assert_eq!(
            parse_envelope(&e),
            Some((false, 42, "m-1", &br#"{"type":"chunk"}"#[..]))
        );
        let e = envelope(true, 3, "m", b"x\ny");
        assert_eq!(parse_envelope(&e), Some((true, 3, "m", &b"x\ny"[..])));
        for bad in [&b""[..], b"X1\nm\nf", b"C\nm\nf", b"Cx\nm\nf", b"C1\nm"] {
            assert_eq!(
                parse_envelope(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
