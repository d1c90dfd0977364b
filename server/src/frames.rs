//! Encoding of the frames the node sends most, without cloning ids.
//!
//! Hot frames (echo replies, chunks) serialize from borrowed fields; each
//! encoded frame is a `Bytes` so fan-out to many connections shares one
//! buffer. The output is checked against `protocol::ServerMsg` in tests.

use bytes::Bytes;
use protocol::{ErrorCode, ServerMsg, StreamStatus};
use serde::Serialize;

fn encode<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(encode_vec(v))
}

fn encode_vec<T: Serialize>(v: &T) -> Vec<u8> {
    // Plain structs of strings and integers always serialize.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Allocated to its exact length: chunk and end frames are kept in the
/// answer cache, which counts them as allocated
/// (`broker::memory::frame_cost`), and serde_json's buffer (128 bytes,
/// doubling) would leave up to half of each unused.
fn exact<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(encode_vec(v).into_boxed_slice())
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "echo")]
struct EchoRef<'a> {
    id: u64,
    ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    node_id: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "chunk")]
struct ChunkRef<'a> {
    message_id: &'a str,
    index: u32,
    text: &'a str,
}

pub fn echo(id: u64, ts: u64, payload: Option<&str>, node_id: &str) -> Bytes {
    encode(&EchoRef {
        id,
        ts,
        payload,
        node_id,
    })
}

pub fn chunk(message_id: &str, index: u32, text: &str) -> Bytes {
    exact(&ChunkRef {
        message_id,
        index,
        text,
    })
}

pub fn error(code: ErrorCode, message: impl Into<String>, message_id: Option<&str>) -> Bytes {
    encode(&ServerMsg::Error {
        code,
        message: message.into(),
        message_id: message_id.map(str::to_owned),
    })
}

pub fn ack(message_id: &str) -> Bytes {
    encode(&ServerMsg::Ack {
        message_id: message_id.to_owned(),
    })
}

/// `done` or `interrupted`, as the stream's status says.
pub fn end(message_id: &str, status: StreamStatus, chunks: u32) -> Bytes {
    let message_id = message_id.to_owned();
    match status {
        StreamStatus::Interrupted => exact(&ServerMsg::Interrupted { message_id, chunks }),
        _ => exact(&ServerMsg::Done { message_id, chunks }),
    }
}

pub fn msg(m: &ServerMsg) -> Bytes {
    encode(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &Bytes) -> ServerMsg {
        ServerMsg::from_json(std::str::from_utf8(b).unwrap()).unwrap()
    }

    #[test]
    fn borrowed_frames_match_protocol_types() {
        assert_eq!(
            parse(&echo(1, 2, Some("p\"q"), "n")),
            ServerMsg::Echo {
                id: 1,
                ts: 2,
                payload: Some("p\"q".into()),
                node_id: "n".into()
            }
        );
        assert_eq!(
            parse(&echo(1, 2, None, "n")),
            ServerMsg::Echo {
                id: 1,
                ts: 2,
                payload: None,
                node_id: "n".into()
            }
        );
        assert_eq!(
            parse(&chunk("m", 3, "t")),
            ServerMsg::Chunk {
                message_id: "m".into(),
                index: 3,
                text: "t".into()
            }
        );
        assert_eq!(
            parse(&end("m", StreamStatus::Interrupted, 4)),
            ServerMsg::Interrupted {
                message_id: "m".into(),
                chunks: 4
            }
        );
    }
}
