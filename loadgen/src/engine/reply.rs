//! What one data frame from the server means for the slot that read it:
//! pure classification under the run's profile (a built-in mode's or the
//! user's), no state, no clock, no I/O.
//!
//! Kept apart from the bookkeeping that acts on it (`engine::recv`) so
//! every reply kind and every malformed case can be unit-tested exactly,
//! and so a new protocol is a profile, never a change to the slot.

use crate::engine::stats::ErrorKind;
use crate::profile::checks::Marker;
use crate::profile::classify::{Frame, Keys, classify as classify_frame};
use crate::profile::rules::Profile;

/// A data frame, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
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
    /// About message `seq` (`None`: the oldest waiting).
    Message { seq: Option<u64>, event: Event },
    /// Counted as an error of `kind`; `note` goes to the report.
    Fault { kind: ErrorKind, note: String },
}

/// What a frame says about one of our messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The whole reply, with what it carries back (`reply.check`).
    Whole { marker: Option<Marker> },
    /// The server accepted the message.
    Ack,
    /// The server answered our resume request: replay starts at `from`;
    /// it held `held` parts at that moment.
    Resumed {
        from: Option<u64>,
        held: Option<u64>,
    },
    /// A part of a streamed answer, with its index (from 0) if it has one;
    /// `text_ok` false when the part check failed.
    Part { index: Option<u64>, text_ok: bool },
    /// The end of a streamed answer, with the part count it states when
    /// the profile reads one (`Some(None)`: it should but does not).
    End { count: Option<Option<u64>> },
    /// The answer failed (`interrupted`, an error naming the message).
    /// `not_found`: the server never received the request.
    Fail {
        name: String,
        code: Option<String>,
        not_found: bool,
    },
}

/// Classify one frame of a connection under the run's profile.
pub fn classify(p: &Profile, data: &[u8], keys: &Keys<'_>) -> Reply {
    let msg = |seq, event| Reply::Message { seq, event };
    match classify_frame(p, data, keys) {
        Frame::Answer(i) => Reply::Answer(i),
        Frame::Ignore => Reply::Ignore,
        Frame::Reply { id, marker } => msg(id, Event::Whole { marker }),
        Frame::Part { id, index, text_ok } => msg(id, Event::Part { index, text_ok }),
        Frame::End { id, count } => msg(id, Event::End { count }),
        Frame::Ack { id } => msg(id, Event::Ack),
        Frame::Resumed { id, from, held } => msg(id, Event::Resumed { from, held }),
        Frame::Fail {
            about: false,
            name,
            code,
            ..
        } => fault(
            ErrorKind::ServerError,
            &format!(
                "{name} frame from the server: {}",
                code.as_deref().unwrap_or("?")
            ),
        ),
        Frame::Fail {
            id,
            name,
            code,
            not_found,
            ..
        } => msg(
            id,
            Event::Fail {
                name,
                code,
                not_found,
            },
        ),
        Frame::Unexpected => fault(
            ErrorKind::Protocol,
            "a frame the profile does not describe (not a reply, part, end, keep-alive or ignored frame)",
        ),
        Frame::BadId(why) => fault(ErrorKind::BadReply, why),
        Frame::BadMarker => fault(
            ErrorKind::BadReply,
            "a reply that does not carry back what was sent (reply.check)",
        ),
        Frame::Delivery { from, seq, ts } => Reply::Delivery { from, seq, ts },
        Frame::BadIndex => fault(
            ErrorKind::Protocol,
            "a part without a usable index at the profile's stream.index",
        ),
    }
}

fn fault(kind: ErrorKind, note: &str) -> Reply {
    Reply::Fault {
        kind,
        note: note.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opts::Mode;
    use crate::profile::builtin::{self, ChatAsk};

    const FILLER: &str = "xxxx";
    /// Connection 4 of run r1: its chat ids start with "r1-4-".
    const PREFIX: &str = "r1-4-";

    fn under(mode: Mode, frame: &[u8]) -> Reply {
        let p = builtin::profile(mode, ChatAsk::default()).unwrap();
        let keys = Keys {
            id_prefix: if mode == Mode::Chat { PREFIX } else { "" },
            filler: FILLER,
        };
        classify(&p, frame, &keys)
    }

    fn kind(r: &Reply) -> Option<ErrorKind> {
        match r {
            Reply::Fault { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    fn whole(seq: u64, intended_us: u64, sent_us: u64, intact: bool) -> Reply {
        Reply::Message {
            seq: Some(seq),
            event: Event::Whole {
                marker: Some(Marker {
                    intended_us,
                    sent_us,
                    intact,
                }),
            },
        }
    }

    #[test]
    fn echo_replies_carry_their_marker() {
        // What --mode echo sends; the node echoes the same fields back.
        let sent = br#"{"type":"echo","id":7,"ts":100,"payload":"150.xxxx"}"#;
        assert_eq!(under(Mode::Echo, sent), whole(7, 100, 150, true));
        let changed = br#"{"type":"echo","id":7,"ts":100,"payload":"150.xxyx"}"#;
        assert_eq!(under(Mode::Echo, changed), whole(7, 100, 150, false));
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
                br#"{"type":"echo","ts":2,"payload":"1.xxxx"}"#,
                ErrorKind::BadReply,
            ),
            (
                br#"{"type":"error","code":"rate_limited"}"#,
                ErrorKind::ServerError,
            ),
            (br#"{"type":"surprise"}"#, ErrorKind::Protocol),
        ] {
            let r = under(Mode::Echo, frame);
            assert_eq!(kind(&r), Some(want), "{}", String::from_utf8_lossy(frame));
        }
        let r = under(Mode::Echo, br#"{"type":"error","code":"x"}"#);
        assert!(matches!(r, Reply::Fault { note, .. } if note.contains(": x")));
        assert_eq!(under(Mode::Echo, br#"{"type":"welcome"}"#), Reply::Ignore);
    }

    #[test]
    fn raw_replies_need_the_marker() {
        assert_eq!(under(Mode::Raw, b"lg:2:10:11:xxxx"), whole(2, 10, 11, true));
        assert_eq!(
            under(Mode::Raw, b"lg:2:10:11:xxyx"),
            whole(2, 10, 11, false)
        );
        for (frame, want) in [
            (&b"hello"[..], ErrorKind::Protocol),
            (b"\xff\xfe", ErrorKind::Protocol),
            (b"lg:1:2", ErrorKind::BadReply),
            (b"lg:a:2:3:xxxx", ErrorKind::BadReply),
        ] {
            let r = under(Mode::Raw, frame);
            assert_eq!(kind(&r), Some(want), "{}", String::from_utf8_lossy(frame));
        }
    }

    #[test]
    fn every_chat_event_is_recognised() {
        let id = "r1-4-9";
        let text = protocol::chunk::chunk_text(id, 4, 12);
        let cases = [
            (
                format!(r#"{{"type":"ack","message_id":"{id}"}}"#),
                Event::Ack,
            ),
            (
                format!(r#"{{"type":"recovered","message_id":"{id}","from_index":2,"chunks":5}}"#),
                Event::Resumed {
                    from: Some(2),
                    held: Some(5),
                },
            ),
            (
                format!(r#"{{"type":"chunk","message_id":"{id}","index":4,"text":"{text}"}}"#),
                Event::Part {
                    index: Some(4),
                    text_ok: true,
                },
            ),
            (
                format!(r#"{{"type":"chunk","message_id":"{id}","index":5,"text":"{text}"}}"#),
                Event::Part {
                    index: Some(5),
                    text_ok: false,
                },
            ),
            (
                format!(r#"{{"type":"chunk","message_id":"{id}","index":4}}"#),
                Event::Part {
                    index: Some(4),
                    text_ok: false,
                },
            ),
            (
                format!(r#"{{"type":"done","message_id":"{id}","chunks":5}}"#),
                Event::End {
                    count: Some(Some(5)),
                },
            ),
            (
                format!(r#"{{"type":"done","message_id":"{id}"}}"#),
                Event::End { count: Some(None) },
            ),
            (
                format!(r#"{{"type":"interrupted","message_id":"{id}","code":"node_lost"}}"#),
                Event::Fail {
                    name: "interrupted".into(),
                    code: Some("node_lost".into()),
                    not_found: false,
                },
            ),
            (
                format!(r#"{{"type":"error","message_id":"{id}","code":"not_found"}}"#),
                Event::Fail {
                    name: "error".into(),
                    code: Some("not_found".into()),
                    not_found: true,
                },
            ),
        ];
        for (json, event) in cases {
            let want = Reply::Message {
                seq: Some(9),
                event,
            };
            assert_eq!(under(Mode::Chat, json.as_bytes()), want, "{json}");
        }
    }

    #[test]
    fn malformed_chat_frames_are_faults() {
        for (json, want) in [
            ("{", ErrorKind::Protocol),
            (
                r#"{"type":"chunk","message_id":"r1-4-1"}"#,
                ErrorKind::Protocol,
            ),
            (
                r#"{"type":"error","code":"overloaded"}"#,
                ErrorKind::ServerError,
            ),
            // Another connection's, or another run's: cross-talk.
            (
                r#"{"type":"done","message_id":"r1-5-1"}"#,
                ErrorKind::BadReply,
            ),
            (
                r#"{"type":"done","message_id":"r2-4-1"}"#,
                ErrorKind::BadReply,
            ),
            (
                r#"{"type":"done","message_id":"r1-4-x"}"#,
                ErrorKind::BadReply,
            ),
            (r#"{"type":"done","message_id":7}"#, ErrorKind::BadReply),
            (
                r#"{"type":"mystery","message_id":"r1-4-0"}"#,
                ErrorKind::Protocol,
            ),
        ] {
            assert_eq!(
                kind(&under(Mode::Chat, json.as_bytes())),
                Some(want),
                "{json}"
            );
        }
        assert_eq!(
            under(Mode::Chat, br#"{"type":"welcome","token":"t"}"#),
            Reply::Ignore
        );
    }
}
