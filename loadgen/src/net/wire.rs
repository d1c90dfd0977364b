//! What loadgen puts in each frame and how it reads replies, per mode.
//!
//! Each outgoing message carries its own sequence number and send times, so
//! a reply can be measured even after its bookkeeping entry timed out, and a
//! reply that does not match what was sent is detected rather than counted.
//! Parsing borrows from the frame (no allocation per reply on the hot path).

use serde::Deserialize;
use std::borrow::Cow;
use std::io::Write as _;

/// Marker that starts every raw-mode payload.
const RAW_MARK: &str = "lg:";

/// Echo: `{"type":"echo","id":SEQ,"ts":INTENDED_US,"payload":"SENT_US.FILLER"}`.
pub fn echo(buf: &mut Vec<u8>, seq: u64, intended_us: u64, sent_us: u64, filler: &str) {
    buf.clear();
    let _ = write!(
        buf,
        r#"{{"type":"echo","id":{seq},"ts":{intended_us},"payload":"{sent_us}.{filler}"}}"#
    );
}

/// Raw: `lg:SEQ:INTENDED_US:SENT_US:FILLER`, echoed byte for byte.
pub fn raw(buf: &mut Vec<u8>, seq: u64, intended_us: u64, sent_us: u64, filler: &str) {
    buf.clear();
    let _ = write!(buf, "{RAW_MARK}{seq}:{intended_us}:{sent_us}:{filler}");
}

/// Chat message id: unique per run, connection and sequence number.
pub fn chat_id(run: &str, slot: u64, seq: u64) -> String {
    format!("{run}-{slot}-{seq}")
}

/// Chat: `{"type":"chat","message_id":..,"text":FILLER[,"chunks":N][,"interval_ms":M]}`.
pub fn chat(
    buf: &mut Vec<u8>,
    message_id: &str,
    filler: &str,
    chunks: Option<u32>,
    interval_ms: Option<u64>,
) {
    buf.clear();
    let _ = write!(
        buf,
        r#"{{"type":"chat","message_id":"{message_id}","text":"{filler}""#
    );
    if let Some(c) = chunks {
        let _ = write!(buf, r#","chunks":{c}"#);
    }
    if let Some(i) = interval_ms {
        let _ = write!(buf, r#","interval_ms":{i}"#);
    }
    buf.push(b'}');
}

/// Sequence number of a chat message id of this run and connection.
/// Ask for the rest of a stream after the chunks already received.
pub fn recover(buf: &mut Vec<u8>, message_id: &str, received: u32) {
    buf.clear();
    let _ = write!(buf, r#"{{"type":"recover","message_id":"{message_id}""#);
    if received > 0 {
        let _ = write!(buf, r#","last_index":{}"#, received - 1);
    }
    buf.push(b'}');
}

pub fn parse_chat_id(id: &str, run: &str, slot: u64) -> Option<u64> {
    let rest = id.strip_prefix(run)?.strip_prefix('-')?;
    let (s, seq) = rest.split_once('-')?;
    if s.parse::<u64>().ok()? != slot {
        return None;
    }
    seq.parse().ok()
}

/// Any frame from the node, with only the fields loadgen looks at.
#[derive(Debug, Deserialize)]
pub struct Incoming<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub ts: Option<u64>,
    #[serde(default, borrow)]
    pub payload: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default)]
    pub chunks: Option<u32>,
    #[serde(default)]
    pub from_index: Option<u32>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub token: Option<Cow<'a, str>>,
}

pub fn parse(frame: &[u8]) -> Option<Incoming<'_>> {
    serde_json::from_slice(frame).ok()
}

/// What an echo or raw reply says about the message it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub seq: u64,
    pub intended_us: u64,
    pub sent_us: u64,
    /// The filler came back unchanged.
    pub intact: bool,
}

pub fn echo_marker(m: &Incoming<'_>, filler: &str) -> Option<Marker> {
    let (sent, rest) = m.payload.as_deref()?.split_once('.')?;
    Some(Marker {
        seq: m.id?,
        intended_us: m.ts?,
        sent_us: sent.parse().ok()?,
        intact: rest == filler,
    })
}

pub fn raw_marker(frame: &[u8], filler: &str) -> Option<Marker> {
    let s = std::str::from_utf8(frame).ok()?.strip_prefix(RAW_MARK)?;
    let mut it = s.splitn(4, ':');
    let seq = it.next()?.parse().ok()?;
    let intended_us = it.next()?.parse().ok()?;
    let sent_us = it.next()?.parse().ok()?;
    Some(Marker {
        seq,
        intended_us,
        sent_us,
        intact: it.next()? == filler,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_round_trips_through_the_protocol_types() {
        let mut buf = Vec::new();
        echo(&mut buf, 42, 1000, 1200, "xxxx");
        let msg = protocol::decode_client(std::str::from_utf8(&buf).unwrap()).unwrap();
        let protocol::ClientMsg::Echo { id, ts, payload } = msg else {
            panic!("not echo")
        };
        let reply = protocol::ServerMsg::Echo {
            id,
            ts,
            payload,
            node_id: "n1".into(),
        }
        .to_json();
        let m = parse(reply.as_bytes()).unwrap();
        assert_eq!(
            echo_marker(&m, "xxxx"),
            Some(Marker {
                seq: 42,
                intended_us: 1000,
                sent_us: 1200,
                intact: true
            })
        );
        assert!(!echo_marker(&m, "xxxxx").unwrap().intact);
    }

    #[test]
    fn chat_is_valid_for_the_node() {
        let mut buf = Vec::new();
        let id = chat_id("ab12", 7, 3);
        chat(&mut buf, &id, "hello", Some(4), Some(0));
        let msg = protocol::decode_client(std::str::from_utf8(&buf).unwrap()).unwrap();
        assert!(matches!(
            msg,
            protocol::ClientMsg::Chat {
                chunks: Some(4),
                interval_ms: Some(0),
                ..
            }
        ));
        assert_eq!(parse_chat_id(&id, "ab12", 7), Some(3));
        assert_eq!(parse_chat_id(&id, "ab12", 8), None);
        assert_eq!(parse_chat_id(&id, "zz", 7), None);
    }

    #[test]
    fn recover_is_valid_for_the_node() {
        let mut buf = Vec::new();
        for (received, last) in [(0, None), (1, Some(0)), (7, Some(6))] {
            recover(&mut buf, "ab12-7-3", received);
            let msg = protocol::decode_client(std::str::from_utf8(&buf).unwrap()).unwrap();
            assert_eq!(
                msg,
                protocol::ClientMsg::Recover {
                    message_id: "ab12-7-3".into(),
                    last_index: last
                }
            );
        }
    }

    #[test]
    fn raw_marker_round_trips() {
        let mut buf = Vec::new();
        raw(&mut buf, 5, 10, 11, "yy:z");
        let m = raw_marker(&buf, "yy:z").unwrap();
        assert_eq!(
            (m.seq, m.intended_us, m.sent_us, m.intact),
            (5, 10, 11, true)
        );
        assert!(raw_marker(b"garbage", "").is_none());
        assert!(raw_marker(&[0xff, 0xfe], "").is_none());
    }
}
