//! A frame parsed as JSON without copying its strings: the value tree a
//! profile's pointers and matchers read. Strings borrow from the frame
//! (unless they hold escapes), so reading a reply costs one allocation per
//! object or array instead of one per key and string, as
//! `serde_json::Value` would; the built-in modes read every reply this way.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::fmt;

/// A JSON value borrowing from the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    /// Members in the order written (a repeated key: the first wins).
    Obj(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parse a whole frame (`None` when it is not JSON): one object of
    /// plain members in one pass (`profile::flat`), anything else through
    /// serde_json, which bounds the nesting depth, so a hostile frame
    /// cannot exhaust the stack.
    pub fn parse(data: &'a [u8]) -> Option<Json<'a>> {
        crate::profile::flat::object(data).or_else(|| Self::parse_serde(data))
    }

    /// [`parse`](Self::parse) of a frame already known to be UTF-8.
    pub fn parse_text(text: &'a str) -> Option<Json<'a>> {
        crate::profile::flat::object_text(text).or_else(|| Self::parse_serde(text.as_bytes()))
    }

    /// [`parse`](Self::parse) without its one-pass path: serde alone, the
    /// reference that path is tested and fuzzed against (the same tree).
    #[doc(hidden)]
    pub fn parse_serde(data: &'a [u8]) -> Option<Json<'a>> {
        serde_json::from_slice(data).ok()
    }

    /// The value at a JSON pointer (RFC 6901: `/a/0/b`, `~1` for `/`, `~0` for `~`).
    pub fn pointer(&self, ptr: &str) -> Option<&Json<'a>> {
        if ptr.is_empty() {
            return Some(self);
        }
        let rest = ptr.strip_prefix('/')?;
        if !rest.bytes().any(|b| b == b'/' || b == b'~') {
            // One plain token (`/type`, `/id`): the pointers of nearly
            // every rule, read several times per reply.
            return self.child(rest);
        }
        let mut cur = self;
        for raw in rest.split('/') {
            cur = cur.child(&unescape(raw))?;
        }
        Some(cur)
    }

    /// The member or item one (unescaped) pointer token names.
    fn child(&self, token: &str) -> Option<&Json<'a>> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == token).map(|(_, v)| v),
            Json::Arr(items) => {
                let leading_zero = token.len() > 1 && token.starts_with('0');
                if leading_zero {
                    return None;
                }
                items.get(token.parse::<usize>().ok()?)
            }
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Num(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Equal to a value written in the profile (numbers compare as
    /// serde_json compares them: 1 and 1.0 differ).
    pub fn equals(&self, v: &Value) -> bool {
        match (self, v) {
            (Json::Null, Value::Null) => true,
            (Json::Bool(a), Value::Bool(b)) => a == b,
            (Json::Num(a), Value::Number(b)) => a == b,
            (Json::Str(a), Value::String(b)) => a == b,
            (Json::Arr(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.equals(y))
            }
            (Json::Obj(a), Value::Object(b)) => {
                // Compare as maps: unique keys on both sides, each equal.
                let mut keys: Vec<&str> = a.iter().map(|(k, _)| k.as_ref()).collect();
                keys.sort_unstable();
                keys.dedup();
                keys.len() == b.len()
                    && b.iter().all(|(k, bv)| {
                        a.iter()
                            .find(|(ak, _)| ak == k)
                            .is_some_and(|(_, av)| av.equals(bv))
                    })
            }
            _ => false,
        }
    }

    /// The value as text for a report (a string as is, anything else as JSON).
    pub fn to_text(&self) -> String {
        match self {
            Json::Str(s) => s.to_string(),
            Json::Null => "null".into(),
            Json::Bool(b) => b.to_string(),
            Json::Num(n) => n.to_string(),
            Json::Arr(_) | Json::Obj(_) => "[structured value]".into(),
        }
    }
}

/// One JSON pointer token as the key it names (`~1` is `/`, `~0` is `~`).
pub fn unescape(raw: &str) -> Cow<'_, str> {
    if raw.contains('~') {
        Cow::Owned(raw.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(raw)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Num(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Num(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json<'de>, E> {
        Number::from_f64(v)
            .map(Json::Num)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(x) = seq.next_element()? {
            items.push(x);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(16));
        while let Some(Key(k)) = map.next_key()? {
            let v: Json<'de> = map.next_value()?;
            members.push((k, v));
        }
        Ok(Json::Obj(members))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_and_pointers_follow_rfc_6901() {
        let text = br#"{"type":"next","id":"7","payload":{"data":{"ticks":[1,2,{"a/b":3,"m~n":4}]}},"esc":"a\"b"}"#;
        let j = Json::parse(text).unwrap();
        assert!(matches!(
            j.pointer("/type"),
            Some(Json::Str(Cow::Borrowed("next")))
        ));
        assert_eq!(j.pointer("/esc").and_then(Json::as_str), Some("a\"b"));
        assert_eq!(
            j.pointer("/payload/data/ticks/1").and_then(Json::as_u64),
            Some(2)
        );
        assert_eq!(
            j.pointer("/payload/data/ticks/2/a~1b")
                .and_then(Json::as_u64),
            Some(3)
        );
        assert_eq!(
            j.pointer("/payload/data/ticks/2/m~0n")
                .and_then(Json::as_u64),
            Some(4)
        );
        for missing in [
            "/nope",
            "/payload/data/ticks/9",
            "/payload/data/ticks/01",
            "/type/x",
            "type",
        ] {
            assert_eq!(j.pointer(missing), None, "{missing}");
        }
        assert_eq!(j.pointer(""), Some(&j));
        // One-token pointers take a shorter way: the same rules.
        let arr = Json::parse(br#"[5,6,{"":7}]"#).unwrap();
        assert_eq!(arr.pointer("/1").and_then(Json::as_u64), Some(6));
        assert_eq!(arr.pointer("/01"), None);
        assert_eq!(arr.pointer("/x"), None);
        assert_eq!(arr.pointer("/2/").and_then(Json::as_u64), Some(7));
        let empty_key = Json::parse(br#"{"":8}"#).unwrap();
        assert_eq!(empty_key.pointer("/").and_then(Json::as_u64), Some(8));
        assert!(Json::parse(b"not json").is_none());
        assert!(Json::parse(b"{\"a\":").is_none());
    }

    #[test]
    fn equality_with_the_profiles_values_is_serde_jsons() {
        let j =
            Json::parse(br#"{"n":1,"f":1.5,"s":"x","b":true,"z":null,"a":[1,"y"],"o":{"k":2}}"#)
                .unwrap();
        for (ptr, v) in [
            ("/n", serde_json::json!(1)),
            ("/f", serde_json::json!(1.5)),
            ("/s", serde_json::json!("x")),
            ("/b", serde_json::json!(true)),
            ("/z", serde_json::json!(null)),
            ("/a", serde_json::json!([1, "y"])),
            ("/o", serde_json::json!({"k": 2})),
        ] {
            assert!(j.pointer(ptr).unwrap().equals(&v), "{ptr}");
        }
        assert!(!j.pointer("/n").unwrap().equals(&serde_json::json!("1")));
        assert!(!j.pointer("/a").unwrap().equals(&serde_json::json!([1])));
        assert!(
            !j.pointer("/o")
                .unwrap()
                .equals(&serde_json::json!({"k": 3}))
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(Json::parse(deep.as_bytes()).is_none());
    }
}
