//! A protocol profile as written in its TOML file, before any checking
//! beyond TOML's own: every table refuses unknown keys, so a typo is an
//! error naming the file, line and key rather than a silently ignored line.
//! docs/PROFILES.md documents every key.

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// A name for reports. Default: the file's stem.
    pub name: Option<String>,
    /// Sec-WebSocket-Protocol to ask for (like `--subprotocol`).
    pub subprotocol: Option<String>,
    /// A query parameter of the URL that carries each connection's session
    /// id (`--session-pattern`), e.g. "session_id". Default: none.
    pub session_param: Option<Spanned<String>>,
    /// JSON pointer, in the frame the last `[[open]]` step waits for, to a
    /// session token to present when the connection is made again.
    pub token: Option<Spanned<String>>,
    /// The URL query parameter that carries the token. Default: "token".
    pub token_param: Option<Spanned<String>>,
    /// What to do when a connection opens, in order; it is ready after the last step.
    #[serde(default)]
    pub open: Vec<StepSpec>,
    /// The paced message.
    pub message: MessageSpec,
    /// How a reply is matched to its message.
    #[serde(default)]
    pub reply: ReplySpec,
    /// Streamed answers: several parts, then an end.
    pub stream: Option<StreamSpec>,
    /// Fan-out (`--group-size`): where a delivered message carries its
    /// publisher's `{seq}`, `{ts_us}` and (optionally) `{conn}`.
    pub fanout: Option<FanoutSpec>,
    /// Frames to answer (keep-alives).
    #[serde(default)]
    pub answer: Vec<AnswerSpec>,
    /// Frames to ignore.
    #[serde(default)]
    pub ignore: Vec<IgnoreSpec>,
    /// Frames that end a message's answer as failed (or, without an id,
    /// report a server error).
    #[serde(default)]
    pub fail: Vec<FailSpec>,
    /// After a reconnect (`--reconnect`), how to ask for the rest of each
    /// answer the drop cut off.
    pub resume: Option<ResumeSpec>,
}

/// One opening step: send a message, or wait for a frame.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Text to send (placeholders: conn, session, run, rand).
    pub send: Option<Spanned<String>>,
    /// A frame to wait for (at most `--timeout`).
    pub expect: Option<Spanned<MatchSpec>>,
}

/// The paced message: exactly one of `text` and `binary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// A text frame (every placeholder).
    pub text: Option<Spanned<String>>,
    /// A binary frame with these bytes (every placeholder).
    pub binary: Option<Spanned<String>>,
}

/// Which frames are replies and whose.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplySpec {
    /// Only frames that match are replies. Default: every frame not
    /// answered, ignored or part of a stream.
    pub when: Option<Spanned<MatchSpec>>,
    /// Where the reply carries its message's `{seq}`: "order" (the oldest
    /// message still waiting; the default), `{ json = "/id" }`, or
    /// `{ regex = '^43(\d+)' }` (capture group 1). A `json` id may add
    /// `prefix = "{run}-{conn}-"`: the id is that text, then the number.
    pub id: Option<Spanned<toml::Value>>,
    /// A built-in check of the reply's contents: "echo-marker" or "raw-marker".
    pub check: Option<Spanned<String>>,
    /// A frame saying the server accepted the message (not its reply).
    pub ack: Option<Spanned<MatchSpec>>,
}

/// Where a delivery names its message: each value is `{ json = "/ptr" }`
/// or `{ regex = '...(\d+)...' }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanoutSpec {
    pub seq: Spanned<toml::Value>,
    pub ts: Spanned<toml::Value>,
    pub from: Option<Spanned<toml::Value>>,
}

/// Streamed answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// A part of an answer.
    pub part: Spanned<MatchSpec>,
    /// The end of an answer.
    pub end: Spanned<MatchSpec>,
    /// JSON pointer to a part's index (checked for order, gaps and
    /// duplicates). Default: none; parts are counted, not checked.
    pub index: Option<Spanned<String>>,
    /// The first part's index. Default: 0.
    #[serde(default)]
    pub index_from: u64,
    /// JSON pointer, in the end frame, to the number of parts the answer
    /// had; checked against the parts received.
    pub count: Option<Spanned<String>>,
    /// A built-in check of each part: "wsnode-chunk-text".
    pub check: Option<Spanned<String>>,
}

/// A frame that says a message's answer failed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailSpec {
    pub when: Spanned<MatchSpec>,
    /// JSON pointer to an error code, shown in the report.
    pub code: Option<Spanned<String>>,
    /// A word for the report ("interrupted"). Default: "failed".
    pub name: Option<String>,
}

/// Resuming answers cut off by a drop, on the next connection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeSpec {
    /// Sent once per cut answer (placeholders: conn, session, run, rand,
    /// group, seq, last_index).
    pub send: Spanned<String>,
    /// The server's answer to it; the replayed parts follow.
    pub ack: Spanned<MatchSpec>,
    /// JSON pointer, in `ack`, to the index replay starts from (checked).
    pub from: Option<Spanned<String>>,
    /// JSON pointer, in `ack`, to the parts the server held then; a part
    /// at or past it is live, so the answer moves again.
    pub held: Option<Spanned<String>>,
    /// A `[[fail]]` frame matching this, for a message the server never
    /// acknowledged, means the request was lost on the way.
    pub not_found: Option<Spanned<MatchSpec>>,
}

/// A keep-alive rule: a frame that matches `when` is answered with `send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerSpec {
    pub when: Spanned<MatchSpec>,
    pub send: Spanned<String>,
}

/// A frame that matches `when` is neither a reply nor an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreSpec {
    pub when: Spanned<MatchSpec>,
}

/// What a frame must look like: exactly one of `text`, `prefix`, `regex`
/// and `json` (with `equals`, or alone: the pointer exists).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    pub text: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
    pub regex: Option<Spanned<String>>,
    pub json: Option<Spanned<String>>,
    pub equals: Option<toml::Value>,
}
