//! A frame as a profile's rules read it, allocating nothing for the common
//! reply: one object of plain members is read into a table on the
//! reader's stack (`profile::flat::Members`); anything else becomes the
//! borrowed tree (`profile::json::Json`). Its own module so that the tree
//! and the one-pass reader it builds on stay below it.

use crate::profile::flat::Members;
use crate::profile::json::{Json, unescape};

/// A frame as a profile's rules read it: its members in place when it is
/// one object of plain members (nearly every reply; nothing is allocated),
/// else the tree. Rules name values inside a frame (their pointers start
/// with `/`), so the frame as a whole is not one of its values here: the
/// empty pointer finds nothing in either form.
pub enum Doc<'m, 'a> {
    Flat(&'m Members<'a>),
    Tree(Json<'a>),
}

impl<'m, 'a> Doc<'m, 'a> {
    /// Parse a whole frame (`None` when it is not JSON), its members into
    /// `members` when it is a plain object.
    pub fn parse(data: &'a [u8], members: &'m mut Members<'a>) -> Option<Doc<'m, 'a>> {
        if members.fill_bytes(data) {
            return Some(Doc::Flat(members));
        }
        Json::parse_serde(data).map(Doc::Tree)
    }

    /// [`parse`](Self::parse) of a frame already known to be UTF-8.
    pub fn parse_text(text: &'a str, members: &'m mut Members<'a>) -> Option<Doc<'m, 'a>> {
        if members.fill_text(text) {
            return Some(Doc::Flat(members));
        }
        Json::parse_serde(text.as_bytes()).map(Doc::Tree)
    }

    /// The value at a JSON pointer inside the frame, as [`Json::pointer`]
    /// finds it.
    pub fn pointer(&self, ptr: &str) -> Option<&Json<'a>> {
        if ptr.is_empty() {
            return None;
        }
        match self {
            Doc::Tree(j) => j.pointer(ptr),
            Doc::Flat(m) => {
                let rest = ptr.strip_prefix('/')?;
                if !rest.bytes().any(|b| b == b'/' || b == b'~') {
                    return m.get(rest);
                }
                // Every member is a plain value: a path of more than one
                // token leads into none of them.
                if rest.contains('/') {
                    return None;
                }
                m.get(&unescape(rest))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_read_in_place_finds_what_its_tree_finds() {
        let flat = br#"{"type":"echo","id":7,"a/b":1,"m~n":2,"":3,"k":4,"k":5}"#;
        let nested = br#"{"type":"next","payload":{"data":{"n":[1,2]}},"a/b":1}"#;
        let (mut m, mut nm) = (Members::default(), Members::default());
        let (d, t) = (
            Doc::parse(flat, &mut m).unwrap(),
            Json::parse(flat).unwrap(),
        );
        assert!(matches!(d, Doc::Flat(_)));
        let nd = Doc::parse(nested, &mut nm).unwrap();
        assert!(matches!(nd, Doc::Tree(_)));
        let nt = Json::parse(nested).unwrap();
        for ptr in [
            "/type", "/id", "/a~1b", "/m~0n", "/", "/k", "/nope", "/type/x", "/id/0", "/a/b",
            "type",
        ] {
            assert_eq!(d.pointer(ptr), t.pointer(ptr), "{ptr}");
            assert_eq!(nd.pointer(ptr), nt.pointer(ptr), "{ptr}");
        }
        assert_eq!(
            nd.pointer("/payload/data/n/1"),
            nt.pointer("/payload/data/n/1")
        );
        // The frame itself is not a value a rule can name, in either form.
        assert_eq!(d.pointer(""), None);
        assert_eq!(nd.pointer(""), None);
        let text = std::str::from_utf8(flat).unwrap();
        let mut m = Members::default();
        assert!(matches!(Doc::parse_text(text, &mut m), Some(Doc::Flat(_))));
        assert!(Doc::parse(b"not json", &mut m).is_none());
        assert!(Doc::parse_text("[1", &mut m).is_none());
    }
}
