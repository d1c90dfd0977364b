//! How a profile recognises a frame and where a frame names its message:
//! the two small value types every rule is built from, kept apart from the
//! parser so the classifier and the rules both use them without a cycle.

use crate::profile::doc::Doc;
use crate::profile::json::Json;
use serde_json::Value;

/// Frames longer than this are never matched by a regex (bounds the work
/// a hostile server can cause per frame).
pub const MAX_MATCH_LEN: usize = 64 * 1024;

/// How a frame is recognised.
#[derive(Debug, Clone)]
pub enum Matcher {
    Text(String),
    Prefix(String),
    Regex(regex::Regex),
    /// The pointer exists (and, with a value, equals it).
    Json(String, Option<Value>),
}

/// Where a reply names its message.
#[derive(Debug, Clone)]
pub enum IdRule {
    /// The oldest message still waiting.
    Order,
    /// A JSON pointer to the number (or a string holding it). `prefixed`:
    /// the string starts with the connection's rendered `reply.id.prefix`,
    /// which is checked and cut off (a reply for another connection or run
    /// is cross-talk, not a reply).
    Json { ptr: String, prefixed: bool },
    /// Capture group 1 of a regex.
    Regex(regex::Regex),
}

/// Why a frame's id could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    /// The frame does not carry an id where the rule looks.
    Missing,
    /// It carries one, but not one of ours.
    Invalid(&'static str),
}

impl IdError {
    pub fn why(self) -> &'static str {
        match self {
            IdError::Missing => "a reply without its id",
            IdError::Invalid(w) => w,
        }
    }
}

impl Matcher {
    /// Does the frame match? `json` is the frame parsed, when it is JSON.
    pub fn matches(&self, text: &str, json: Option<&Doc<'_, '_>>) -> bool {
        match self {
            Matcher::Text(t) => text == t,
            Matcher::Prefix(p) => text.starts_with(p.as_str()),
            Matcher::Regex(r) => text.len() <= MAX_MATCH_LEN && r.is_match(text),
            Matcher::Json(ptr, want) => match json.and_then(|j| j.pointer(ptr)) {
                None => false,
                Some(v) => want.as_ref().is_none_or(|w| v.equals(w)),
            },
        }
    }

    pub fn reads_json(&self) -> bool {
        matches!(self, Matcher::Json(..))
    }
}

impl IdRule {
    /// The sequence number a frame names; `Ok(None)` for [`IdRule::Order`].
    /// `prefix` is the connection's rendered id prefix (used when the rule
    /// is `prefixed`).
    pub fn extract(
        &self,
        text: &str,
        json: Option<&Doc<'_, '_>>,
        prefix: &str,
    ) -> Result<Option<u64>, IdError> {
        let raw = match self {
            IdRule::Order => return Ok(None),
            IdRule::Json { ptr, prefixed } => match json.and_then(|j| j.pointer(ptr)) {
                Some(Json::Num(n)) if !prefixed => {
                    return n
                        .as_u64()
                        .map(Some)
                        .ok_or(IdError::Invalid("an id that is not a sequence number"));
                }
                Some(Json::Str(s)) if *prefixed => s.strip_prefix(prefix).ok_or(
                    IdError::Invalid("a reply for a message id loadgen did not send"),
                )?,
                Some(Json::Str(s)) => s.as_ref(),
                Some(_) if *prefixed => {
                    return Err(IdError::Invalid(
                        "a reply for a message id loadgen did not send",
                    ));
                }
                Some(_) => return Err(IdError::Invalid("an id that is not a sequence number")),
                None => return Err(IdError::Missing),
            },
            IdRule::Regex(r) => {
                if text.len() > MAX_MATCH_LEN {
                    return Err(IdError::Invalid("a reply too long to search for its id"));
                }
                match r.captures(text).and_then(|c| c.get(1)) {
                    Some(m) => m.as_str(),
                    None => return Err(IdError::Missing),
                }
            }
        };
        let bad = if matches!(self, IdRule::Json { prefixed: true, .. }) {
            "a reply for a message id loadgen did not send"
        } else {
            "an id that is not a sequence number"
        };
        raw.parse().map(Some).map_err(|_| IdError::Invalid(bad))
    }

    pub fn reads_json(&self) -> bool {
        matches!(self, IdRule::Json { .. })
    }
}
