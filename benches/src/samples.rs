//! One sample of every wire message kind, shared by the bench files so
//! the node's encoding (`--bench node`), loadgen's decoding
//! (`--bench loadgen`) and the typed protocol decoding (`--bench protocol`)
//! all measure the same frames.
//!
//! Field values are the shapes a real run carries: loadgen's message ids
//! (`{run}-{conn}-{seq}`), a node id, a 24-byte chunk, a 16-byte echo
//! payload behind loadgen's send-time marker.

use protocol::chunk::chunk_text;
use protocol::{ClientMsg, ErrorCode, ServerMsg, StreamInfo, StreamStatus};

/// The message id of every sample (run `ab12`, connection 7, message 3).
pub const MESSAGE_ID: &str = "ab12-7-3";
/// The node id every sample names.
pub const NODE_ID: &str = "node1-8081";
/// loadgen's payload filler (16 bytes); the echo payload is `sent_us.FILLER`.
pub const FILLER: &str = "xxxxxxxxxxxxxxxx";

/// Every [`ClientMsg`] kind, named as its `type`.
pub fn client_msgs() -> Vec<(&'static str, ClientMsg)> {
    vec![
        (
            "echo",
            ClientMsg::Echo {
                id: 123_456,
                ts: 98_765_432,
                payload: Some(format!("98765440.{FILLER}")),
            },
        ),
        (
            "chat",
            ClientMsg::Chat {
                message_id: Some(MESSAGE_ID.into()),
                text: FILLER.into(),
                chunks: Some(40),
                interval_ms: Some(20),
            },
        ),
        (
            "recover",
            ClientMsg::Recover {
                message_id: MESSAGE_ID.into(),
                last_index: Some(5),
            },
        ),
    ]
}

/// Every [`ServerMsg`] kind, named as its `type`.
pub fn server_msgs() -> Vec<(&'static str, ServerMsg)> {
    let id = || MESSAGE_ID.to_string();
    vec![
        (
            "welcome",
            ServerMsg::Welcome {
                session_id: "lg_ab12_7".into(),
                node_id: NODE_ID.into(),
                token: "5f1c9a0e7b2d4c68a3e1f0b9d7c6a5e4".into(),
                streams: vec![
                    StreamInfo {
                        message_id: "ab12-7-1".into(),
                        status: StreamStatus::Done,
                        chunks: 40,
                    },
                    StreamInfo {
                        message_id: "ab12-7-2".into(),
                        status: StreamStatus::Interrupted,
                        chunks: 12,
                    },
                ],
            },
        ),
        (
            "echo",
            ServerMsg::Echo {
                id: 123_456,
                ts: 98_765_432,
                payload: Some(format!("98765440.{FILLER}")),
                node_id: NODE_ID.into(),
            },
        ),
        ("ack", ServerMsg::Ack { message_id: id() }),
        (
            "chunk",
            ServerMsg::Chunk {
                message_id: id(),
                index: 5,
                text: chunk_text(MESSAGE_ID, 5, 24),
            },
        ),
        (
            "done",
            ServerMsg::Done {
                message_id: id(),
                chunks: 40,
            },
        ),
        (
            "recovered",
            ServerMsg::Recovered {
                message_id: id(),
                status: StreamStatus::Streaming,
                from_index: 6,
                chunks: 12,
            },
        ),
        (
            "interrupted",
            ServerMsg::Interrupted {
                message_id: id(),
                chunks: 12,
            },
        ),
        (
            "error",
            ServerMsg::Error {
                code: ErrorCode::NotFound,
                message: "unknown message id".into(),
                message_id: Some(id()),
            },
        ),
    ]
}

/// `n` text frames of `len` payload bytes each, back to back; masked with
/// `key` (a client's frames) or not (a server's).
pub fn text_frames(n: usize, len: usize, key: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * (len + 14));
    for _ in 0..n {
        out.push(0x81);
        let mask_bit = if key.is_some() { 0x80 } else { 0 };
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        if let Some(k) = key {
            out.extend_from_slice(&k);
        }
        let body = out.len();
        out.extend(std::iter::repeat_n(b'x', len));
        if let Some(k) = key {
            protocol::wsframe::apply_mask(&mut out[body..], k);
        }
    }
    out
}
