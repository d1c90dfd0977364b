//! Decoding of client frames, including the legacy plain-text form.
//!
//! Clients are untrusted: every failure becomes a [`DecodeError`] that maps to
//! an `error` frame, and its text is bounded so an attacker cannot make the
//! node echo back megabytes.

use crate::ids::is_valid_id;
use crate::msg::{ClientMsg, ErrorCode};
use serde::Deserialize;

/// Longest reason text carried back to a client.
const MAX_REASON: usize = 160;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The type as quoted in the error text (escaped, then bounded).
    #[error("unknown message type {0}")]
    UnknownType(String),
}

impl DecodeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::BadRequest(_) => ErrorCode::BadRequest,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
        }
    }
}

fn bounded(mut s: String) -> String {
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Decode one text frame from a client.
///
/// A frame that does not start with `{` (after leading whitespace) is a chat
/// message in plain text: that is what the seed's k6 script sends
/// (`Test message`). A frame that starts with `{` must be a valid message.
pub fn decode_client(text: &str) -> Result<ClientMsg, DecodeError> {
    if !text.trim_start().starts_with('{') {
        return Ok(ClientMsg::Chat {
            message_id: None,
            text: text.to_owned(),
            chunks: None,
            interval_ms: None,
        });
    }
    let msg: ClientMsg = serde_json::from_str(text).map_err(|e| classify(text, e))?;
    match &msg {
        ClientMsg::Chat {
            message_id: Some(id),
            ..
        }
        | ClientMsg::Recover { message_id: id, .. }
            if !is_valid_id(id) =>
        {
            Err(DecodeError::BadRequest(
                "message_id must be 1-128 characters of [A-Za-z0-9_.:-]".into(),
            ))
        }
        _ => Ok(msg),
    }
}

/// Tell an unknown `type` apart from malformed input; only runs on the error path.
fn classify(text: &str, err: serde_json::Error) -> DecodeError {
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        ty: Option<serde_json::Value>,
    }
    match serde_json::from_str::<TypeOnly>(text) {
        Ok(TypeOnly {
            ty: Some(serde_json::Value::String(t)),
        }) if !matches!(t.as_str(), "echo" | "chat" | "recover") => {
            // Bound the escaped form: escaping can make a char 10 bytes.
            DecodeError::UnknownType(bounded(format!("{t:?}")))
        }
        Ok(TypeOnly { ty: None }) => DecodeError::BadRequest("missing field `type`".into()),
        _ => DecodeError::BadRequest(bounded(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_chat() {
        let m = decode_client("Test message").unwrap();
        assert_eq!(
            m,
            ClientMsg::Chat {
                message_id: None,
                text: "Test message".into(),
                chunks: None,
                interval_ms: None
            }
        );
    }

    #[test]
    fn echo_and_chat_and_recover() {
        assert_eq!(
            decode_client(r#"{"type":"echo","id":7,"ts":9}"#).unwrap(),
            ClientMsg::Echo {
                id: 7,
                ts: 9,
                payload: None
            }
        );
        assert!(matches!(
            decode_client(r#"{"type":"chat","text":"hi","chunks":3,"interval_ms":0}"#).unwrap(),
            ClientMsg::Chat {
                chunks: Some(3),
                interval_ms: Some(0),
                ..
            }
        ));
        assert_eq!(
            decode_client(r#"{"type":"recover","message_id":"m-1","last_index":4}"#).unwrap(),
            ClientMsg::Recover {
                message_id: "m-1".into(),
                last_index: Some(4)
            }
        );
    }

    #[test]
    fn errors_are_classified() {
        let cases = [
            ("{", ErrorCode::BadRequest),
            ("{}", ErrorCode::BadRequest),
            (r#"{"type":"echo"}"#, ErrorCode::BadRequest),
            (r#"{"type":7}"#, ErrorCode::BadRequest),
            (r#"{"type":"echo","id":-1,"ts":0}"#, ErrorCode::BadRequest),
            (r#"{"type":"launch","x":1}"#, ErrorCode::UnknownType),
            (
                r#"{"type":"recover","message_id":"a b"}"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"{"type":"chat","text":"x","message_id":""}"#,
                ErrorCode::BadRequest,
            ),
        ];
        for (input, code) in cases {
            assert_eq!(decode_client(input).unwrap_err().code(), code, "{input}");
        }
    }

    #[test]
    fn reasons_are_bounded() {
        let long_type = format!(r#"{{"type":"{}"}}"#, "z".repeat(10_000));
        let err = decode_client(&long_type).unwrap_err();
        assert!(
            err.to_string().len() < MAX_REASON + 40,
            "{}",
            err.to_string().len()
        );
        // Found by the decode_client fuzz target: 0x7f escapes to 6 bytes.
        let escaped = format!(r#"{{"type":"{}"}}"#, "\u{7f}".repeat(130));
        let err = decode_client(&escaped).unwrap_err().to_string();
        assert!(err.len() < MAX_REASON + 40, "{}", err.len());
        assert!(err.starts_with(r#"unknown message type "\u{7f}"#), "{err}");
        let garbage = format!("{{{}", "\u{e9}".repeat(5_000));
        assert!(decode_client(&garbage).unwrap_err().to_string().len() < MAX_REASON + 40);
    }
}

#[cfg(test)]
mod garbage {
    use super::*;

    /// A cheap stand-in for the cargo-fuzz target (fuzz/), run with every
    /// `cargo test`: mutated valid frames and random bytes never panic and
    /// always give a bounded error or a message that round-trips.
    #[test]
    fn mutated_frames_never_panic() {
        let seeds = [
            r#"{"type":"echo","id":1,"ts":2,"payload":"p"}"#,
            r#"{"type":"chat","message_id":"m","text":"t","chunks":3,"interval_ms":4}"#,
            r#"{"type":"recover","message_id":"m","last_index":-1}"#,
            "Test message",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..(next() % 6) {
                let r = next();
                let pos = (r as usize >> 8) % (bytes.len() + 1);
                match r % 4 {
                    0 if pos < bytes.len() => bytes[pos] = (r >> 32) as u8,
                    1 if pos < bytes.len() => {
                        bytes.remove(pos);
                    }
                    2 => {
                        let alphabet = b"{}[]\",:\\0e-9";
                        bytes.insert(pos, alphabet[(r >> 40) as usize % alphabet.len()]);
                    }
                    _ => bytes.truncate(pos),
                }
            }
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            match decode_client(text) {
                Ok(msg) if text.trim_start().starts_with('{') => {
                    assert_eq!(decode_client(&msg.to_json()).unwrap(), msg, "{text}");
                }
                Ok(_) => {}
                Err(e) => assert!(e.to_string().len() < 256),
            }
        }
    }
}
