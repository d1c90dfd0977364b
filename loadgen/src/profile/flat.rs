//! The common reply in one pass: an object of plain members, read without
//! serde.
//!
//! Nearly every reply a run reads is one object whose members are plain
//! strings, integers, booleans or null (wsnode's echo reply, a chunk, an
//! ack). serde builds the same tree through its visitor machinery, which
//! `classify_reply` timed at about 0.5 µs per reply. This scanner reads such a
//! frame directly into the [`Json`] serde would have built. Anything else
//! goes to serde as before: escapes, nesting, fractions, exponents, `-0`,
//! integers past 64 bits, or any doubt. The fuzz body and the tests compare
//! both ways on the same bytes. Like the node's `decode_client` fast path,
//! it must give the same tree or none; both read through `protocol::scan`.

use crate::profile::json::Json;
use protocol::scan::Scan;
use serde_json::Number;
use std::borrow::Cow;

/// The tree of `data` when it is one object of plain members; `None` sends
/// the frame to serde.
pub fn object(data: &[u8]) -> Option<Json<'_>> {
    object_in(Scan::bytes(data)?)
}

/// [`object`] of a frame already known to be UTF-8.
pub fn object_text(text: &str) -> Option<Json<'_>> {
    object_in(Scan::new(text))
}

fn object_in(mut p: Scan<'_>) -> Option<Json<'_>> {
    p.eat(b'{')?;
    let mut members = Vec::with_capacity(8);
    loop {
        let key = p.string()?;
        p.eat(b':')?;
        let val = value(&mut p)?;
        // Every member, a repeated key too: serde's tree keeps them all.
        members.push((Cow::Borrowed(key), val));
        match p.next_byte()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    p.at_end().then_some(Json::Obj(members))
}

fn value<'a>(p: &mut Scan<'a>) -> Option<Json<'a>> {
    match p.peek()? {
        b'"' => p.string().map(|s| Json::Str(Cow::Borrowed(s))),
        b'n' => p.word(b"null").map(|()| Json::Null),
        b't' => p.word(b"true").map(|()| Json::Bool(true)),
        b'f' => p.word(b"false").map(|()| Json::Bool(false)),
        b'-' | b'0'..=b'9' => match p.integer()? {
            Ok(n) => Some(Json::Num(Number::from(n))),
            Err(m) => Scan::negative(m).map(|n| Json::Num(Number::from(n))),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(text: &str) {
        let fast = object(text.as_bytes());
        let serde = Json::parse_serde(text.as_bytes());
        if let Some(f) = &fast {
            assert_eq!(Some(f), serde.as_ref(), "{text:?}");
        }
        assert_eq!(Json::parse(text.as_bytes()), serde, "{text:?}");
        assert_eq!(Json::parse_text(text), serde, "{text:?}");
    }

    #[test]
    fn plain_replies_are_read_without_serde_and_as_serde_reads_them() {
        for text in [
            r#"{"type":"echo","id":42,"ts":1732712345123456,"payload":"150.xxxx","node_id":"n1-8081"}"#,
            r#" { "type" : "chunk" , "index" : 0 , "text" : "ünïcode ✓" } "#,
            r#"{"a":null,"b":true,"c":false,"d":-7,"e":0,"f":18446744073709551615,"g":-9223372036854775808}"#,
            r#"{"k":1,"k":2}"#,
        ] {
            assert!(object(text.as_bytes()).is_some(), "{text:?}");
            same(text);
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for text in [
            r#"{"a":"esc\"aped"}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":-0}"#,
            r#"{"a":01}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":-9223372036854775809}"#,
            "{\"a\":\"tab\there\"}",
            r#"{}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a":nul}"#,
            r#"[1]"#,
            r#""s""#,
            "",
        ] {
            assert!(object(text.as_bytes()).is_none(), "{text:?}");
            same(text);
        }
        // Invalid UTF-8 in a string: neither reads it.
        let bad = b"{\"a\":\"\xff\"}";
        assert!(object(bad).is_none());
        assert_eq!(Json::parse(bad), None);
    }
}
