//! What one data frame from the server means for the slot that read it:
//! pure classification, no state, no clock, no I/O.
//!
//! Kept apart from the bookkeeping that acts on it (`engine::recv`) so
//! every reply kind and every malformed case can be unit-tested exactly,
//! and so a new protocol adds a classifier without touching the slot.

use crate::engine::stats::ErrorKind;
use crate::net::wire::{self, Incoming, Marker};
use crate::opts::Mode;
use crate::profile::classify::{Frame, classify as classify_frame};
use crate::profile::rules::Profile;

/// A data frame, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An echo or raw reply carrying loadgen's own marker.
    Marker(Marker),
    /// A chat frame about message `seq` of this slot.
    Chat { seq: u64, event: ChatEvent },
    /// Nothing to do (e.g. a second welcome).
    Ignore,
    /// A keep-alive to answer with the profile's answer rule at this index.
    Answer(usize),
    /// Fan-out: a publisher's message delivered to this subscriber.
    Delivery {
        from: Option<u64>,
        seq: u64,
        ts: u64,
    },
    /// Under a profile: about message `seq` (`None`: the oldest waiting).
    Profile {
        seq: Option<u64>,
        event: ProfileEvent,
    },
    /// Counted as an error of `kind`; `note` goes to the report.
    Fault { kind: ErrorKind, note: String },
}

/// What a chat frame says about one of our messages.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// The node accepted the message (`ack`).
    Ack,
    /// The node answered our `recover`: replay starts at `from_index`, and
    /// it held `chunks` chunks at that moment.
    Recovered {
        from_index: Option<u32>,
        chunks: Option<u32>,
    },
    /// Chunk `index`; `text_ok` says whether its text is the deterministic
    /// text for that index.
    Chunk { index: u32, text_ok: bool },
    /// A chunk without its index or text.
    ChunkMalformed,
    /// The answer ended normally; the node says it had `chunks` chunks.
    Done { chunks: Option<u32> },
    /// The answer ended without its last chunk (its node or Redis failed).
    Interrupted { code: Option<String> },
    /// An `error` frame naming the message.
    Error { code: Option<String> },
}

/// What a frame says about a message, under a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileEvent {
    /// The whole reply.
    Whole,
    /// A part of a streamed answer, with its index (from 0) if it has one.
    Part { index: Option<u64> },
    /// The end of a streamed answer.
    End,
}

/// Classify one frame under a protocol profile.
pub fn classify_profile(p: &Profile, data: &[u8]) -> Reply {
    match classify_frame(p, data) {
        Frame::Answer(i) => Reply::Answer(i),
        Frame::Ignore => Reply::Ignore,
        Frame::Reply { id } => Reply::Profile {
            seq: id,
            event: ProfileEvent::Whole,
        },
        Frame::Part { id, index } => Reply::Profile {
            seq: id,
            event: ProfileEvent::Part { index },
        },
        Frame::End { id } => Reply::Profile {
            seq: id,
            event: ProfileEvent::End,
        },
        Frame::Unexpected => fault(
            ErrorKind::Protocol,
            "a frame the profile does not describe (not a reply, part, end, keep-alive or ignored frame)",
        ),
        Frame::BadId(why) => fault(ErrorKind::BadReply, why),
        Frame::Delivery { from, seq, ts } => Reply::Delivery { from, seq, ts },
        Frame::BadIndex => fault(
            ErrorKind::Protocol,
            "a part without a usable index at the profile's stream.index",
        ),
    }
}

/// Classify one complete data frame of slot `slot` in run `run`.
pub fn classify(mode: Mode, data: &[u8], filler: &str, run: &str, slot: u64) -> Reply {
    match mode {
        Mode::Raw => match wire::raw_marker(data, filler) {
            Some(m) => Reply::Marker(m),
            None => fault(ErrorKind::Protocol, "a reply without loadgen's marker"),
        },
        Mode::Echo => match wire::parse(data) {
            Some(m) if m.ty == "echo" => match wire::echo_marker(&m, filler) {
                Some(mk) => Reply::Marker(mk),
                None => fault(
                    ErrorKind::BadReply,
                    "an echo reply whose fields do not match what was sent",
                ),
            },
            Some(m) => other(&m),
            None => not_protocol(),
        },
        Mode::Chat => match wire::parse(data) {
            Some(m) => chat(&m, run, slot),
            None => not_protocol(),
        },
        // The slot classifies with its profile (`classify_profile`).
        Mode::Profile => fault(ErrorKind::Protocol, "no profile to read the frame with"),
    }
}

/// The session token of a `welcome` frame: `None` when the frame is not a
/// welcome, `Some(None)` for a welcome without a token.
pub fn welcome(data: &[u8]) -> Option<Option<String>> {
    let m = wire::parse(data)?;
    (m.ty == "welcome").then(|| m.token.map(|t| t.into_owned()))
}

fn chat(m: &Incoming<'_>, run: &str, slot: u64) -> Reply {
    let Some(mid) = m.message_id.as_deref() else {
        return other(m);
    };
    let Some(seq) = wire::parse_chat_id(mid, run, slot) else {
        return fault(
            ErrorKind::BadReply,
            "a chat reply for a message id loadgen did not send",
        );
    };
    let code = || m.code.as_deref().map(str::to_owned);
    let event = match &*m.ty {
        "ack" => ChatEvent::Ack,
        "recovered" => ChatEvent::Recovered {
            from_index: m.from_index,
            chunks: m.chunks,
        },
        "chunk" => match (m.index, m.text.as_deref()) {
            (Some(index), Some(text)) => ChatEvent::Chunk {
                index,
                text_ok: protocol::chunk::verify_chunk(mid, index, text),
            },
            _ => ChatEvent::ChunkMalformed,
        },
        "done" => ChatEvent::Done { chunks: m.chunks },
        "interrupted" => ChatEvent::Interrupted { code: code() },
        "error" => ChatEvent::Error { code: code() },
        _ => return other(m),
    };
    Reply::Chat { seq, event }
}

/// Frames that are not replies to a message: errors count, unknown types too.
fn other(m: &Incoming<'_>) -> Reply {
    match &*m.ty {
        "error" => fault(
            ErrorKind::ServerError,
            &format!(
                "error frame from the node: {}",
                m.code.as_deref().unwrap_or("?")
            ),
        ),
        "welcome" => Reply::Ignore,
        ty => fault(
            ErrorKind::Protocol,
            &format!("unexpected message type {:?}", truncate(ty)),
        ),
    }
}

fn not_protocol() -> Reply {
    fault(
        ErrorKind::Protocol,
        "a frame that is not a valid protocol message",
    )
}

fn fault(kind: ErrorKind, note: &str) -> Reply {
    Reply::Fault {
        kind,
        note: note.to_string(),
    }
}

/// At most 40 bytes of a server-chosen string, cut on a char boundary.
fn truncate(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "r1";
    const FILLER: &str = "xxxx";

    fn chat_reply(json: &str) -> Reply {
        classify(Mode::Chat, json.as_bytes(), FILLER, RUN, 3)
    }

    fn kind(r: &Reply) -> Option<ErrorKind> {
        match r {
            Reply::Fault { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    #[test]
    fn echo_replies_carry_their_marker() {
        let mut buf = Vec::new();
        wire::echo(&mut buf, 7, 100, 150, FILLER);
        // The node echoes the same fields back with type "echo".
        let r = classify(Mode::Echo, &buf, FILLER, RUN, 0);
        assert_eq!(
            r,
            Reply::Marker(Marker {
                seq: 7,
                intended_us: 100,
                sent_us: 150,
                intact: true
            })
        );
        let changed = br#"{"type":"echo","id":7,"ts":100,"payload":"150.xxyx"}"#;
        match classify(Mode::Echo, changed, FILLER, RUN, 0) {
            Reply::Marker(m) => assert!(!m.intact),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn malformed_echo_replies_are_faults() {
        for (frame, want) in [
            (&b"not json"[..], ErrorKind::Protocol),
            (br#"{"no_type":1}"#, ErrorKind::Protocol),
            (br#"{"type":"echo","id":1,"ts":2}"#, ErrorKind::BadReply),
            (
                br#"{"type":"echo","id":1,"ts":2,"payload":"nodot"}"#,
                ErrorKind::BadReply,
            ),
            (
                br#"{"type":"echo","id":1,"ts":2,"payload":"x.xxxx"}"#,
                ErrorKind::BadReply,
            ),
            (
                br#"{"type":"error","code":"rate_limited"}"#,
                ErrorKind::ServerError,
            ),
            (br#"{"type":"surprise"}"#, ErrorKind::Protocol),
        ] {
            let r = classify(Mode::Echo, frame, FILLER, RUN, 0);
            assert_eq!(kind(&r), Some(want), "{}", String::from_utf8_lossy(frame));
        }
        let r = classify(
            Mode::Echo,
            br#"{"type":"error","code":"x"}"#,
            FILLER,
            RUN,
            0,
        );
        assert!(matches!(r, Reply::Fault { note, .. } if note.contains(": x")));
        assert_eq!(
            classify(Mode::Echo, br#"{"type":"welcome"}"#, FILLER, RUN, 0),
            Reply::Ignore
        );
    }

    #[test]
    fn raw_replies_need_the_marker() {
        let mut buf = Vec::new();
        wire::raw(&mut buf, 2, 10, 11, FILLER);
        assert!(matches!(
            classify(Mode::Raw, &buf, FILLER, RUN, 0),
            Reply::Marker(Marker {
                seq: 2,
                intact: true,
                ..
            })
        ));
        for frame in [&b"hello"[..], b"lg:1:2", b"lg:a:2:3:xxxx", b"\xff\xfe"] {
            assert_eq!(
                kind(&classify(Mode::Raw, frame, FILLER, RUN, 0)),
                Some(ErrorKind::Protocol)
            );
        }
    }

    #[test]
    fn every_chat_event_is_recognised() {
        let id = wire::chat_id(RUN, 3, 9);
        let text = protocol::chunk::chunk_text(&id, 4, 12);
        let cases = [
            (
                format!(r#"{{"type":"ack","message_id":"{id}"}}"#),
                ChatEvent::Ack,
            ),
            (
                format!(r#"{{"type":"recovered","message_id":"{id}","from_index":2,"chunks":5}}"#),
                ChatEvent::Recovered {
                    from_index: Some(2),
                    chunks: Some(5),
                },
            ),
            (
                format!(r#"{{"type":"chunk","message_id":"{id}","index":4,"text":"{text}"}}"#),
                ChatEvent::Chunk {
                    index: 4,
                    text_ok: true,
                },
            ),
            (
                format!(r#"{{"type":"chunk","message_id":"{id}","index":5,"text":"{text}"}}"#),
                ChatEvent::Chunk {
                    index: 5,
                    text_ok: false,
                },
            ),
            (
                format!(r#"{{"type":"chunk","message_id":"{id}","index":4}}"#),
                ChatEvent::ChunkMalformed,
            ),
            (
                format!(r#"{{"type":"chunk","message_id":"{id}","text":"a"}}"#),
                ChatEvent::ChunkMalformed,
            ),
            (
                format!(r#"{{"type":"done","message_id":"{id}","chunks":5}}"#),
                ChatEvent::Done { chunks: Some(5) },
            ),
            (
                format!(r#"{{"type":"interrupted","message_id":"{id}","code":"node_lost"}}"#),
                ChatEvent::Interrupted {
                    code: Some("node_lost".into()),
                },
            ),
            (
                format!(r#"{{"type":"error","message_id":"{id}","code":"not_found"}}"#),
                ChatEvent::Error {
                    code: Some("not_found".into()),
                },
            ),
        ];
        for (json, event) in cases {
            assert_eq!(chat_reply(&json), Reply::Chat { seq: 9, event }, "{json}");
        }
    }

    #[test]
    fn malformed_chat_frames_are_faults() {
        let other_slot = wire::chat_id(RUN, 4, 1);
        let other_run = wire::chat_id("r2", 3, 1);
        for (json, want) in [
            ("{".to_string(), ErrorKind::Protocol),
            (r#"{"type":"chunk"}"#.to_string(), ErrorKind::Protocol),
            (
                r#"{"type":"error","code":"overloaded"}"#.to_string(),
                ErrorKind::ServerError,
            ),
            (
                format!(r#"{{"type":"done","message_id":"{other_slot}"}}"#),
                ErrorKind::BadReply,
            ),
            (
                format!(r#"{{"type":"done","message_id":"{other_run}"}}"#),
                ErrorKind::BadReply,
            ),
            (
                r#"{"type":"done","message_id":"r1-3-notanumber"}"#.to_string(),
                ErrorKind::BadReply,
            ),
            (
                format!(
                    r#"{{"type":"mystery","message_id":"{}"}}"#,
                    wire::chat_id(RUN, 3, 0)
                ),
                ErrorKind::Protocol,
            ),
        ] {
            assert_eq!(kind(&chat_reply(&json)), Some(want), "{json}");
        }
        // A long unknown type is cut in the note, on a char boundary.
        let long = format!(r#"{{"type":"{}"}}"#, "é".repeat(40));
        match chat_reply(&long) {
            Reply::Fault { note, .. } => assert!(note.len() < 80, "{note}"),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn welcome_frames_give_their_token() {
        assert_eq!(
            welcome(br#"{"type":"welcome","token":"t1"}"#),
            Some(Some("t1".into()))
        );
        assert_eq!(welcome(br#"{"type":"welcome"}"#), Some(None));
        assert_eq!(welcome(br#"{"type":"echo"}"#), None);
        assert_eq!(welcome(b"garbage"), None);
    }
}
