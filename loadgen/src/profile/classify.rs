//! What one frame from the server is, under a profile: pure, no state.
//! The order of the checks is the order a reader expects: keep-alives to
//! answer, frames to ignore, deliveries, failures, acknowledgements and
//! resumptions, parts and ends of streamed answers, replies.

use crate::profile::checks::{self, Marker};
use crate::profile::doc::Doc;
use crate::profile::flat::Members;
use crate::profile::json::Json;
use crate::profile::matchers::IdError;
use crate::profile::rules::Profile;

/// A frame, classified by a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Answer it with the profile's answer rule at this index.
    Answer(usize),
    Ignore,
    /// A whole reply to message `id` (`None`: the oldest still waiting),
    /// with what it carries back under the profile's `reply.check`.
    Reply {
        id: Option<u64>,
        marker: Option<Marker>,
    },
    /// A part of the streamed answer to `id`, with its index when the
    /// profile names one (already counted from 0); `text_ok` is false when
    /// the profile's part check failed.
    Part {
        id: Option<u64>,
        index: Option<u64>,
        text_ok: bool,
    },
    /// The end of the streamed answer to `id`, with the part count it
    /// states when the profile names one (`Some(None)`: it should but
    /// does not).
    End {
        id: Option<u64>,
        count: Option<Option<u64>>,
    },
    /// The server accepted message `id`.
    Ack {
        id: Option<u64>,
    },
    /// The server answers a resume request for `id`: replay starts at
    /// `from`; it held `held` parts then.
    Resumed {
        id: Option<u64>,
        from: Option<u64>,
        held: Option<u64>,
    },
    /// The answer to `id` failed (`about` false: the frame names no
    /// message; a server error). `not_found`: the resume rule's frame for
    /// a request the server never received.
    Fail {
        id: Option<u64>,
        about: bool,
        name: String,
        code: Option<String>,
        not_found: bool,
    },
    /// A frame the profile does not describe.
    Unexpected,
    /// A reply whose id could not be read.
    BadId(&'static str),
    /// A part whose index is missing or not a number.
    BadIndex,
    /// A reply the profile's `reply.check` cannot read.
    BadMarker,
    /// Fan-out: a publisher's message `seq`, intended at `ts` (µs since
    /// the run's start), from connection `from` when the profile says.
    Delivery {
        from: Option<u64>,
        seq: u64,
        ts: u64,
    },
}

/// What the classifier needs to know of the connection and run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keys<'a> {
    /// The connection's rendered `reply.id.prefix`.
    pub id_prefix: &'a str,
    /// The run's `{payload}` filler, for the marker checks.
    pub filler: &'a str,
}

/// Classify one frame under profile `p`. A free function rather than a
/// method of `Profile`, so the profile's rules never depend on this module.
pub fn classify(p: &Profile, data: &[u8], keys: &Keys<'_>) -> Frame {
    let utf8 = std::str::from_utf8(data).ok();
    let text = utf8.unwrap_or("");
    // UTF-8 checked once: the tree is read from the text already checked.
    // The members' table is set up only for a profile that reads JSON.
    let mut members;
    let json: Option<Doc<'_, '_>> = match (p.needs_json, utf8) {
        (false, _) => None,
        (true, Some(t)) => {
            members = Members::default();
            Doc::parse_text(t, &mut members)
        }
        (true, None) => {
            members = Members::default();
            Doc::parse(data, &mut members)
        }
    };
    let json = json.as_ref();
    let ptr_u64 = |ptr: &Option<String>| {
        ptr.as_ref()
            .and_then(|ptr| json.and_then(|j| j.pointer(ptr)).and_then(Json::as_u64))
    };
    if let Some(i) = p.answers.iter().position(|(m, _)| m.matches(text, json)) {
        return Frame::Answer(i);
    }
    if p.ignores.iter().any(|m| m.matches(text, json)) {
        return Frame::Ignore;
    }
    if let Some(f) = &p.fanout
        && let (Ok(Some(seq)), Ok(Some(ts))) =
            (f.seq.extract(text, json, ""), f.ts.extract(text, json, ""))
    {
        let from = f
            .from
            .as_ref()
            .and_then(|r| r.extract(text, json, "").ok().flatten());
        return Frame::Delivery { from, seq, ts };
    }
    let id = || p.id.extract(text, json, keys.id_prefix);
    if let Some(f) = p.fails.iter().find(|f| f.when.matches(text, json)) {
        let (id, about) = match id() {
            Ok(id) => (id, true),
            Err(IdError::Missing) => (None, false),
            Err(IdError::Invalid(w)) => return Frame::BadId(w),
        };
        let code = f.code.as_ref().and_then(|ptr| {
            json.and_then(|j| j.pointer(ptr))
                .map(|v| v.to_text().chars().take(40).collect())
        });
        let not_found = p
            .resume
            .as_ref()
            .and_then(|r| r.not_found.as_ref())
            .is_some_and(|m| m.matches(text, json));
        return Frame::Fail {
            id,
            about,
            name: f.name.clone(),
            code,
            not_found,
        };
    }
    if p.ack.as_ref().is_some_and(|m| m.matches(text, json)) {
        return match id() {
            Ok(id) => Frame::Ack { id },
            Err(e) => Frame::BadId(e.why()),
        };
    }
    if let Some(r) = &p.resume
        && r.ack.matches(text, json)
    {
        return match id() {
            Ok(id) => Frame::Resumed {
                id,
                from: ptr_u64(&r.from),
                held: ptr_u64(&r.held),
            },
            Err(e) => Frame::BadId(e.why()),
        };
    }
    if let Some(s) = &p.stream {
        if s.part.matches(text, json) {
            let index = match &s.index {
                None => None,
                Some(ptr) => match json.and_then(|j| j.pointer(ptr)).and_then(Json::as_u64) {
                    Some(i) if i >= s.index_from => Some(i - s.index_from),
                    _ => return Frame::BadIndex,
                },
            };
            return match id() {
                Ok(id) => Frame::Part {
                    id,
                    index,
                    text_ok: !s.check_text || checks::chunk_text_ok(json),
                },
                Err(e) => Frame::BadId(e.why()),
            };
        }
        if s.end.matches(text, json) {
            return match id() {
                Ok(id) => Frame::End {
                    id,
                    count: s.count.as_ref().map(|_| ptr_u64(&s.count)),
                },
                Err(e) => Frame::BadId(e.why()),
            };
        }
        if p.reply_when.is_none() {
            return Frame::Unexpected;
        }
    }
    if p.reply_when
        .as_ref()
        .is_some_and(|m| !m.matches(text, json))
    {
        return Frame::Unexpected;
    }
    let id = match id() {
        Ok(id) => id,
        Err(e) => return Frame::BadId(e.why()),
    };
    let marker = match p.check {
        None => None,
        Some(c) => match checks::marker(c, text, json, keys.filler) {
            Some(m) => Some(m),
            None => return Frame::BadMarker,
        },
    };
    Frame::Reply { id, marker }
}
