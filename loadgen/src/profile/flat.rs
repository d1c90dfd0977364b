//! The common reply in one pass: an object of plain members, read without
//! serde.
//!
//! Nearly every reply a run reads is one object whose members are plain
//! strings, integers, booleans or null (wsnode's echo reply, a chunk, an
//! ack). serde builds the same tree through its visitor machinery, which
//! `classify_reply` timed at about 0.5 µs per reply. This scanner reads such a
//! frame directly into the [`Json`] serde would have built, or, for the
//! classifier, into [`Members`]: the same members in a fixed table on the
//! stack, so reading a reply allocates nothing. Anything else goes to serde
//! as before: escapes, nesting, fractions, exponents, `-0`, integers past
//! 64 bits, more than [`MAX_MEMBERS`] members (for [`Members`]), or any
//! doubt. The fuzz body and the tests compare all three readings on the
//! same bytes. Like the node's `decode_client` fast path, it must give the
//! same tree or none; both read through `protocol::scan`.

use crate::profile::json::Json;
use protocol::scan::Scan;
use serde_json::Number;
use std::borrow::Cow;
use std::mem::ManuallyDrop;

/// Most members [`Members`] holds; an object with more is read as a tree.
pub const MAX_MEMBERS: usize = 12;

/// The tree of `data` when it is one object of plain members; `None` sends
/// the frame to serde.
pub fn object(data: &[u8]) -> Option<Json<'_>> {
    object_in(Scan::bytes(data)?)
}

/// [`object`] of a frame already known to be UTF-8.
pub fn object_text(text: &str) -> Option<Json<'_>> {
    object_in(Scan::new(text))
}

fn object_in(p: Scan<'_>) -> Option<Json<'_>> {
    let mut members = Vec::with_capacity(8);
    scan_object(p, |key, val| {
        members.push((Cow::Borrowed(key), val));
        Some(())
    })?;
    Some(Json::Obj(members))
}

/// An object of plain members, its members in order (a repeated key kept
/// each time, as in the tree), held where the reader keeps it (on its
/// stack) and filled again for each frame.
pub struct Members<'a> {
    /// Never dropped: a member read here borrows its strings from the
    /// frame and owns nothing (so there is nothing to free, and no drop
    /// code runs per frame).
    list: ManuallyDrop<[(&'a str, Json<'a>); MAX_MEMBERS]>,
    len: usize,
}

/// An unused place in [`Members`].
const EMPTY: (&str, Json<'static>) = ("", Json::Null);

impl Default for Members<'_> {
    fn default() -> Self {
        Members {
            list: ManuallyDrop::new([EMPTY; MAX_MEMBERS]),
            len: 0,
        }
    }
}

impl<'a> Members<'a> {
    /// Read `text` when it is one object of at most [`MAX_MEMBERS`] plain
    /// members; false (and no member held) otherwise.
    pub fn fill_text(&mut self, text: &'a str) -> bool {
        self.fill(Scan::new(text))
    }

    /// [`fill_text`](Self::fill_text) of bytes not yet known to be UTF-8.
    pub fn fill_bytes(&mut self, data: &'a [u8]) -> bool {
        Scan::bytes(data).is_some_and(|p| self.fill(p))
    }

    fn fill(&mut self, p: Scan<'a>) -> bool {
        self.len = 0;
        let ok = scan_object(p, |key, val| {
            let slot = self.list.get_mut(self.len)?;
            *slot = (key, val);
            self.len += 1;
            Some(())
        })
        .is_some();
        if !ok {
            self.len = 0;
        }
        ok
    }

    /// The first member named `key` (the tree's rule for a repeated key).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.list[..self.len]
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// The same object as a tree (what the tests compare).
    #[cfg(test)]
    pub fn to_tree(&self) -> Json<'a> {
        Json::Obj(
            self.list[..self.len]
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
                .collect(),
        )
    }
}

/// Read one object of plain members, giving each to `add` in order;
/// `None` (from the scan or from `add`) sends the frame to serde.
fn scan_object<'a>(
    mut p: Scan<'a>,
    mut add: impl FnMut(&'a str, Json<'a>) -> Option<()>,
) -> Option<()> {
    p.eat(b'{')?;
    loop {
        let key = p.string()?;
        p.eat(b':')?;
        let val = value(&mut p)?;
        // Every member, a repeated key too: serde's tree keeps them all.
        add(key, val)?;
        match p.next_byte()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    p.at_end().then_some(())
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
        // The members in place read the same object, or leave it to serde.
        let m = members(text.as_bytes());
        let mut again = Members::default();
        assert_eq!(
            m,
            again.fill_text(text).then(|| again.to_tree()),
            "{text:?}"
        );
        if let Some(m) = &m {
            assert_eq!(Some(m), fast.as_ref(), "{text:?}");
        }
        assert_eq!(Json::parse(text.as_bytes()), serde, "{text:?}");
        assert_eq!(Json::parse_text(text), serde, "{text:?}");
    }

    /// The members of `data` as a tree, when it is read in place.
    fn members(data: &[u8]) -> Option<Json<'_>> {
        let mut m = Members::default();
        m.fill_bytes(data).then(|| m.to_tree())
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
            assert!(members(text.as_bytes()).is_some(), "{text:?}");
            same(text);
        }
        // A repeated key: both readings keep every member, and find the first.
        let mut m = Members::default();
        assert!(m.fill_text(r#"{"k":1,"k":2}"#));
        assert_eq!(m.get("k").and_then(Json::as_u64), Some(1));
        assert_eq!(m.get("x"), None);
        // Filled again, a frame that is not read in place leaves nothing held.
        assert!(!m.fill_text(r#"{"k":{"n":1}}"#));
        assert_eq!(m.get("k"), None);
    }

    #[test]
    fn more_members_than_the_table_holds_go_to_the_tree() {
        let at = |n: usize| {
            let body: Vec<String> = (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect();
            format!("{{{}}}", body.join(","))
        };
        let full = at(MAX_MEMBERS);
        let mut m = Members::default();
        assert!(m.fill_text(&full), "a full table");
        assert_eq!(
            m.get(&format!("k{}", MAX_MEMBERS - 1))
                .and_then(Json::as_u64),
            Some(MAX_MEMBERS as u64 - 1)
        );
        let over = at(MAX_MEMBERS + 1);
        assert!(members(over.as_bytes()).is_none());
        assert!(object(over.as_bytes()).is_some());
        same(&over);
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
            assert!(members(text.as_bytes()).is_none(), "{text:?}");
            same(text);
        }
        // Invalid UTF-8 in a string: neither reads it.
        let bad = b"{\"a\":\"\xff\"}";
        assert!(object(bad).is_none());
        assert!(members(bad).is_none());
        assert_eq!(Json::parse(bad), None);
    }
}
