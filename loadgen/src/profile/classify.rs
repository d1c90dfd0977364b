//! What one frame from the server is, under a profile: pure, no state.
//! The order of the checks is the order a reader expects: keep-alives to
//! answer, frames to ignore, parts and ends of streamed answers, replies.

use crate::profile::rules::Profile;
use serde_json::Value;

/// A frame, classified by a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Answer it with the profile's answer rule at this index.
    Answer(usize),
    Ignore,
    /// A whole reply to message `id` (`None`: the oldest still waiting).
    Reply {
        id: Option<u64>,
    },
    /// A part of the streamed answer to `id`, with its index when the
    /// profile names one (already counted from 0).
    Part {
        id: Option<u64>,
        index: Option<u64>,
    },
    /// The end of the streamed answer to `id`.
    End {
        id: Option<u64>,
    },
    /// A frame the profile does not describe.
    Unexpected,
    /// A reply whose id could not be read.
    BadId(&'static str),
    /// A part whose index is missing or not a number.
    BadIndex,
    /// Fan-out: a publisher's message `seq`, intended at `ts` (µs since
    /// the run's start), from connection `from` when the profile says.
    Delivery {
        from: Option<u64>,
        seq: u64,
        ts: u64,
    },
}

/// Classify one frame under profile `p`. A free function rather than a
/// method of `Profile`, so the profile's rules never depend on this module.
pub fn classify(p: &Profile, data: &[u8]) -> Frame {
    let text = std::str::from_utf8(data).unwrap_or("");
    let json: Option<Value> = if p.needs_json {
        serde_json::from_slice(data).ok()
    } else {
        None
    };
    let json = json.as_ref();
    if let Some(i) = p.answers.iter().position(|(m, _)| m.matches(text, json)) {
        return Frame::Answer(i);
    }
    if p.ignores.iter().any(|m| m.matches(text, json)) {
        return Frame::Ignore;
    }
    if let Some(f) = &p.fanout
        && let (Ok(Some(seq)), Ok(Some(ts))) = (f.seq.extract(text, json), f.ts.extract(text, json))
    {
        let from = f
            .from
            .as_ref()
            .and_then(|r| r.extract(text, json).ok().flatten());
        return Frame::Delivery { from, seq, ts };
    }
    let id = || p.id.extract(text, json);
    if let Some(s) = &p.stream {
        if s.part.matches(text, json) {
            let index = match &s.index {
                None => None,
                Some(ptr) => match json.and_then(|j| j.pointer(ptr)).and_then(Value::as_u64) {
                    Some(i) if i >= s.index_from => Some(i - s.index_from),
                    _ => return Frame::BadIndex,
                },
            };
            return match id() {
                Ok(id) => Frame::Part { id, index },
                Err(e) => Frame::BadId(e),
            };
        }
        if s.end.matches(text, json) {
            return match id() {
                Ok(id) => Frame::End { id },
                Err(e) => Frame::BadId(e),
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
    match id() {
        Ok(id) => Frame::Reply { id },
        Err(e) => Frame::BadId(e),
    }
}
