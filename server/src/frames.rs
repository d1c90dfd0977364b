//! Encoding of the frames the node sends most, without cloning ids.
//!
//! Hot frames (echo replies, chunks) serialize from borrowed fields; each
//! encoded frame is a `Bytes` so fan-out to many connections shares one
//! buffer. The output is checked against `protocol::ServerMsg` in tests.
//!
//! The echo reply of a plain echo (the connection loops' hot path) is
//! written in place into a reused buffer ([`echo_plain_into`]): no
//! allocation, no escaping pass, byte for byte what [`echo`] writes.

use bytes::Bytes;
use protocol::{ErrorCode, PlainEcho, ServerMsg, StreamStatus};
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

/// `node_id` as a JSON string, for [`echo_plain_into`] (encoded once per
/// loop, not per reply).
pub fn json_string(s: &str) -> Box<str> {
    serde_json::to_string(s).unwrap_or_default().into()
}

/// Append the reply to `e` to `out`, as [`echo`] would encode it.
/// `node_id_json` is [`json_string`] of the node id. A plain echo's
/// payload has no quote, backslash or control character, so serde's
/// escaping would leave it as it is.
pub fn echo_plain_into(out: &mut Vec<u8>, e: &PlainEcho<'_>, node_id_json: &str) {
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(br#"{"type":"echo","id":"#);
    out.extend_from_slice(n.format(e.id).as_bytes());
    out.extend_from_slice(br#","ts":"#);
    out.extend_from_slice(n.format(e.ts).as_bytes());
    if let Some(p) = e.payload {
        out.extend_from_slice(br#","payload":""#);
        out.extend_from_slice(p.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(br#","node_id":"#);
    out.extend_from_slice(node_id_json.as_bytes());
    out.push(b'}');
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
    fn the_plain_echo_reply_is_byte_for_byte_serdes() {
        let texts = [
            r#"{"type":"echo","id":7,"ts":100,"payload":"150.xxxx"}"#,
            r#"{"type":"echo","id":18446744073709551615,"ts":0}"#,
            r#"{"type":"echo","id":0,"ts":1,"payload":null}"#,
            r#"{"type":"echo","id":1,"ts":2,"payload":""}"#,
            " {\"payload\":\"h\u{e9}llo \u{2713} /\u{7f}<>\", \"ts\":3, \"id\":4, \"type\":\"echo\"} ",
        ];
        let mut out = Vec::new();
        for node_id in ["n1-8081", "quote\"back\\slash\u{1}", "\u{fc}n\u{ef}"] {
            let json = json_string(node_id);
            for text in texts {
                let e = protocol::plain_echo(text).unwrap_or_else(|| panic!("{text}"));
                out.clear();
                echo_plain_into(&mut out, &e, &json);
                assert_eq!(out, echo(e.id, e.ts, e.payload, node_id), "{text}");
            }
        }
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
