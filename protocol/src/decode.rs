//! Decoding of client frames, including the legacy plain-text form.
//!
//! Clients are untrusted: every failure becomes a [`DecodeError`] that maps to
//! an `error` frame, and its text is bounded so an attacker cannot make the
//! node echo back megabytes.
//!
//! Every frame first goes through [`flat`]: a one-pass scan of the plain
//! form clients send (one object of known fields, plain strings and
//! integers), borrowed from the frame, then mapped to a [`ClientMsg`].
//! serde's internally tagged enum buffers every field into its `Content`
//! tree before it looks at the tag; this costs a fraction of that. Anything
//! else (escapes, floats, unknown or repeated fields, any error) goes to
//! serde as before, so accepted inputs and error texts are serde's own.

use crate::ids::is_valid_id;
use crate::msg::{ClientMsg, ErrorCode};
use crate::scan::Scan;
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
    decode(text, flat)
}

/// [`decode_client`] without its fast path: serde alone, the reference
/// the fast path is tested and fuzzed against (same result, same error).
#[doc(hidden)]
pub fn decode_client_serde(text: &str) -> Result<ClientMsg, DecodeError> {
    decode(text, |_| None)
}

fn decode(text: &str, fast: fn(&str) -> Option<ClientMsg>) -> Result<ClientMsg, DecodeError> {
    if !text.trim_start().starts_with('{') {
        return Ok(ClientMsg::Chat {
            message_id: None,
            text: text.to_owned(),
            chunks: None,
            interval_ms: None,
        });
    }
    let msg = match fast(text) {
        Some(msg) => msg,
        None => serde_json::from_str(text).map_err(|e| classify(text, e))?,
    };
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

/// A value as the fast path takes it.
#[derive(Clone, Copy)]
enum Val<'a> {
    /// A string without escapes.
    Str(&'a str),
    /// An integer without sign, fraction or exponent.
    Uint(u64),
    /// A negative integer (only `last_index` takes one).
    Neg(i64),
    Null,
}

/// The fields of any client message, as borrowed from the frame.
#[derive(Default)]
struct Fields<'a> {
    ty: Option<Val<'a>>,
    id: Option<Val<'a>>,
    ts: Option<Val<'a>>,
    payload: Option<Val<'a>>,
    message_id: Option<Val<'a>>,
    text: Option<Val<'a>>,
    chunks: Option<Val<'a>>,
    interval_ms: Option<Val<'a>>,
    last_index: Option<Val<'a>>,
}

/// The message if `text` is one object of plain fields that serde would
/// decode to exactly this; `None` sends the frame to serde.
fn flat(text: &str) -> Option<ClientMsg> {
    let f = whole_object(text)?;
    let Some(Val::Str(ty)) = f.ty else {
        return None;
    };
    // The fields of another kind make serde ignore them; left to serde.
    let (echo, chat) = (
        f.id.is_some() || f.ts.is_some() || f.payload.is_some(),
        f.text.is_some() || f.chunks.is_some() || f.interval_ms.is_some(),
    );
    match ty {
        "echo" => echo_of(&f).map(PlainEcho::into_msg),
        "chat" if !echo && f.last_index.is_none() => Some(ClientMsg::Chat {
            message_id: opt(f.message_id, string)?,
            text: string(f.text?)?,
            chunks: opt(f.chunks, |v| u32::try_from(uint(v)?).ok())?,
            interval_ms: opt(f.interval_ms, uint)?,
        }),
        "recover" if !echo && !chat => Some(ClientMsg::Recover {
            message_id: string(f.message_id?)?,
            last_index: opt(f.last_index, |v| match v {
                Val::Uint(n) => i64::try_from(n).ok(),
                Val::Neg(n) => Some(n),
                _ => None,
            })?,
        }),
        _ => None,
    }
}

/// An echo request in the plain form, borrowed from its frame: what
/// [`decode_client`] returns as [`ClientMsg::Echo`], without allocating.
/// The payload has no escapes, quotes or control characters (that is the
/// plain form), so a reply may carry it back verbatim as a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlainEcho<'a> {
    pub id: u64,
    pub ts: u64,
    pub payload: Option<&'a str>,
}

impl PlainEcho<'_> {
    /// The message [`decode_client`] gives for the same text.
    pub fn into_msg(self) -> ClientMsg {
        ClientMsg::Echo {
            id: self.id,
            ts: self.ts,
            payload: self.payload.map(str::to_owned),
        }
    }
}

/// `text` as a [`PlainEcho`] when it is one; `None` for anything else
/// (another message, or an echo serde must read), which
/// [`decode_client`] then decodes as before.
pub fn plain_echo(text: &str) -> Option<PlainEcho<'_>> {
    let f = whole_object(text)?;
    if !matches!(f.ty, Some(Val::Str("echo"))) {
        return None;
    }
    echo_of(&f)
}

/// The fields of `text` when it is one object of plain fields and nothing
/// after it but whitespace.
fn whole_object(text: &str) -> Option<Fields<'_>> {
    let mut p = Scan::new(text);
    let f = object(&mut p)?;
    p.at_end().then_some(f)
}

/// The echo of fields whose type is `echo`, if serde would read it so.
fn echo_of<'a>(f: &Fields<'a>) -> Option<PlainEcho<'a>> {
    let chat = f.text.is_some() || f.chunks.is_some() || f.interval_ms.is_some();
    if chat || f.message_id.is_some() || f.last_index.is_some() {
        return None;
    }
    Some(PlainEcho {
        id: uint(f.id?)?,
        ts: uint(f.ts?)?,
        payload: opt(f.payload, |v| match v {
            Val::Str(s) => Some(s),
            _ => None,
        })?,
    })
}

fn uint(v: Val<'_>) -> Option<u64> {
    match v {
        Val::Uint(n) => Some(n),
        _ => None,
    }
}

fn string(v: Val<'_>) -> Option<String> {
    match v {
        Val::Str(s) => Some(s.to_owned()),
        _ => None,
    }
}

/// An optional field: absent or `null` is `Some(None)`; a value `get`
/// cannot take is `None` (serde's to judge).
fn opt<'a, T>(v: Option<Val<'a>>, get: impl FnOnce(Val<'a>) -> Option<T>) -> Option<Option<T>> {
    match v {
        None | Some(Val::Null) => Some(None),
        Some(v) => get(v).map(Some),
    }
}

/// The object's fields, each once; `None` at anything serde should judge.
fn object<'a>(p: &mut Scan<'a>) -> Option<Fields<'a>> {
    p.eat(b'{')?;
    let mut f = Fields::default();
    loop {
        let key = p.string()?;
        p.eat(b':')?;
        let val = value(p)?;
        let slot = match key {
            "type" => &mut f.ty,
            "id" => &mut f.id,
            "ts" => &mut f.ts,
            "payload" => &mut f.payload,
            "message_id" => &mut f.message_id,
            "text" => &mut f.text,
            "chunks" => &mut f.chunks,
            "interval_ms" => &mut f.interval_ms,
            "last_index" => &mut f.last_index,
            _ => return None,
        };
        if slot.replace(val).is_some() {
            return None;
        }
        match p.next_byte()? {
            b',' => {}
            b'}' => return Some(f),
            _ => return None,
        }
    }
}

fn value<'a>(p: &mut Scan<'a>) -> Option<Val<'a>> {
    match p.peek()? {
        b'"' => p.string().map(Val::Str),
        b'n' => p.word(b"null").map(|()| Val::Null),
        b'-' | b'0'..=b'9' => match p.integer()? {
            Ok(n) => Some(Val::Uint(n)),
            Err(m) => Scan::negative(m).map(Val::Neg),
        },
        _ => None,
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
    fn the_fast_path_takes_what_clients_send() {
        for text in [
            r#"{"type":"echo","id":7,"ts":100,"payload":"150.xxxx"}"#,
            " {\"ts\" : 0 ,\n\t\"id\":18446744073709551615, \"type\":\"echo\"}\r\n",
            r#"{"type":"echo","id":1,"ts":2,"payload":null}"#,
            r#"{"type":"chat","message_id":"m-1","text":"héllo ✓","chunks":4294967295,"interval_ms":0}"#,
            r#"{"type":"recover","message_id":"m-1","last_index":-9223372036854775808}"#,
            r#"{"type":"recover","message_id":"m-1","last_index":9223372036854775807}"#,
        ] {
            let fast = flat(text).unwrap_or_else(|| panic!("fast path: {text}"));
            assert_eq!(Ok(fast.clone()), decode_client_serde(text), "{text}");
            // The borrowed echo: the echoes, and only them.
            let plain = plain_echo(text).map(PlainEcho::into_msg);
            let is_echo = matches!(fast, ClientMsg::Echo { .. });
            assert_eq!(plain, is_echo.then_some(fast), "{text}");
        }
    }

    #[test]
    fn what_the_fast_path_leaves_to_serde_decodes_as_before() {
        for text in [
            r#"{"type":"echo","id":1,"ts":2,"payload":"a\"b"}"#,
            r#"{"type":"echo","id":1.0,"ts":2}"#,
            r#"{"type":"echo","id":1e3,"ts":2}"#,
            r#"{"type":"echo","id":01,"ts":2}"#,
            r#"{"type":"echo","id":-0,"ts":2}"#,
            r#"{"type":"echo","id":18446744073709551616,"ts":2}"#,
            r#"{"type":"echo","id":1,"ts":2,"text":"ignored"}"#,
            r#"{"type":"echo","id":1,"ts":2,"extra":{"a":[1]}}"#,
            r#"{"type":"echo","id":1,"id":1,"ts":2}"#,
            r#"{"type":"echo","type":"echo","id":1,"ts":2}"#,
            r#"{"type":"echo","id":1,"ts":2} x"#,
            r#"{"type":"echo","id":1,"ts":2,}"#,
            r#"{"type":"echo","id":1,"ts":null}"#,
            r#"{"type":"chat","text":null}"#,
            r#"{"type":"chat","text":"x","chunks":4294967296}"#,
            r#"{"type":"recover","message_id":"m","last_index":9223372036854775808}"#,
            r#"{"type":"recover","message_id":"m","last_index":-9223372036854775809}"#,
            r#"{"type":"typo","id":1}"#,
            "{\"type\r\":\"chat\",\"text\":\"hi\"}",
            "{\"type\":\"chat\",\"text\":\"a\u{1}b\"}",
            "\u{a0}{\"type\":\"echo\",\"id\":1,\"ts\":2}",
            r#"{"type":"echo","id":1,"ts":nul}"#,
            r#"{"type":"echo","id":1,"ts":2"#,
        ] {
            assert!(flat(text).is_none(), "left to serde: {text}");
            assert_eq!(plain_echo(text), None, "left to serde: {text}");
            assert_eq!(decode_client(text), decode_client_serde(text), "{text}");
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
        let mut echoes = 0;
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
            let decoded = decode_client(text);
            assert_eq!(decoded, decode_client_serde(text), "{text:?}");
            if let Some(e) = plain_echo(text) {
                assert_eq!(decoded, Ok(e.into_msg()), "{text:?}");
                echoes += 1;
            }
            match decoded {
                Ok(msg) if text.trim_start().starts_with('{') => {
                    assert_eq!(decode_client(&msg.to_json()).unwrap(), msg, "{text}");
                }
                Ok(_) => {}
                Err(e) => assert!(e.to_string().len() < 256),
            }
        }
        // The plain echo was met (not only its refusals).
        assert!(echoes > 100, "{echoes}");
    }
}
