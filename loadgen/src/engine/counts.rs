//! What a run counts (messages, connections, errors by kind), apart from
//! its histograms (`stats`): one `Counts` per stats shard, added across
//! shards, seconds and `--workers` processes.

use serde::{Deserialize, Serialize};

/// Kinds of error counted separately; the list is fixed so counts stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// TCP connect failed (refused, unreachable, out of ports...).
    Connect,
    /// The TLS handshake failed (untrusted certificate, wrong name...).
    Tls,
    /// The upgrade was refused with HTTP 401 or 403 (credentials).
    Refused,
    /// Fan-out: a message delivered twice to one subscriber.
    Duplicate,
    /// Connecting or the handshake took longer than --timeout.
    ConnectTimeout,
    /// The HTTP upgrade failed (not 101, missing headers, garbage).
    Handshake,
    /// The node's first frame was not a valid `welcome`.
    Welcome,
    /// A frame that is not valid for the protocol (bad JSON, wrong type).
    Protocol,
    /// A reply whose contents do not match what was sent.
    BadReply,
    /// An `error` frame from the node.
    ServerError,
    /// A chat chunk index out of order, or `done` with a wrong count.
    ChunkOrder,
    /// A chat chunk whose text is not the deterministic text for its index.
    ChunkText,
    /// Writing a frame failed.
    Write,
    /// Reading failed: reset, EOF or bad WebSocket framing.
    Read,
    /// The server sent a close frame.
    Closed,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Refused,
        ErrorKind::Duplicate,
        ErrorKind::ConnectTimeout,
        ErrorKind::Handshake,
        ErrorKind::Welcome,
        ErrorKind::Protocol,
        ErrorKind::BadReply,
        ErrorKind::ServerError,
        ErrorKind::ChunkOrder,
        ErrorKind::ChunkText,
        ErrorKind::Write,
        ErrorKind::Read,
        ErrorKind::Closed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Refused => "upgrade_refused",
            ErrorKind::Duplicate => "duplicate",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Handshake => "handshake",
            ErrorKind::Welcome => "welcome",
            ErrorKind::Protocol => "protocol",
            ErrorKind::BadReply => "bad_reply",
            ErrorKind::ServerError => "server_error",
            ErrorKind::ChunkOrder => "chunk_order",
            ErrorKind::ChunkText => "chunk_text",
            ErrorKind::Write => "write",
            ErrorKind::Read => "read",
            ErrorKind::Closed => "closed_by_server",
        }
    }
}

/// Event counts. Every message sent ends in exactly one of `received`,
/// `timeouts`, `lost` or `in_flight`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub sent: u64,
    /// Messages completed by their reply (echo back, chat `done`, or an
    /// error frame naming the message).
    pub received: u64,
    /// Received within --timeout with correct contents.
    pub ok: u64,
    /// No reply within --timeout.
    pub timeouts: u64,
    /// Unanswered when their connection dropped.
    pub lost: u64,
    /// Unanswered, but not yet timed out, when the run ended.
    pub in_flight: u64,
    /// Replies that came after their message had already timed out.
    pub late: u64,
    pub conn_ok: u64,
    pub conn_failed: u64,
    /// Connections that ended without loadgen asking (close, reset, EOF).
    pub drops: u64,
    pub reconnects: u64,
    /// Drops after which no new connection succeeded before the run ended
    /// (with --reconnect): failovers that did not finish.
    #[serde(default)]
    pub failovers_unfinished: u64,
    /// Answers cut by a drop that got no answer at all before they timed
    /// out or the run ended (their wait is in the recovery histogram).
    #[serde(default)]
    pub recoveries_unfinished: u64,
    /// Answers cut by a drop that the system ended without continuing:
    /// `interrupted` (no node could continue them) or an error.
    #[serde(default)]
    pub recoveries_ended: u64,
    /// Chats sent just before a drop that never reached a node (`recover`
    /// answered not found, no ack had come): lost on the way, not an answer
    /// cut short. Also counted in `lost`.
    #[serde(default)]
    pub requests_never_reached: u64,
    /// Sessions run by their thread's epoll loop after the handshake
    /// (`--io epoll`); the others ran as tasks.
    #[serde(default)]
    pub in_loop: u64,
    pub errors: [u64; ErrorKind::ALL.len()],
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        *self = self.zip(o, u64::wrapping_add);
    }

    /// What happened since `earlier` (a cumulative snapshot of the same run).
    pub fn since(&self, earlier: &Counts) -> Counts {
        self.zip(earlier, u64::saturating_sub)
    }

    /// Every count of `self` combined with the same count of `o`.
    fn zip(&self, o: &Counts, f: impl Fn(u64, u64) -> u64) -> Counts {
        let mut errors = self.errors;
        for (a, b) in errors.iter_mut().zip(o.errors) {
            *a = f(*a, b);
        }
        Counts {
            sent: f(self.sent, o.sent),
            received: f(self.received, o.received),
            ok: f(self.ok, o.ok),
            timeouts: f(self.timeouts, o.timeouts),
            lost: f(self.lost, o.lost),
            in_flight: f(self.in_flight, o.in_flight),
            late: f(self.late, o.late),
            conn_ok: f(self.conn_ok, o.conn_ok),
            conn_failed: f(self.conn_failed, o.conn_failed),
            drops: f(self.drops, o.drops),
            reconnects: f(self.reconnects, o.reconnects),
            failovers_unfinished: f(self.failovers_unfinished, o.failovers_unfinished),
            recoveries_unfinished: f(self.recoveries_unfinished, o.recoveries_unfinished),
            recoveries_ended: f(self.recoveries_ended, o.recoveries_ended),
            requests_never_reached: f(self.requests_never_reached, o.requests_never_reached),
            in_loop: f(self.in_loop, o.in_loop),
            errors,
        }
    }

    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind as usize] += 1;
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// The accounting identity: sent = received + timeouts + lost + in_flight.
    pub fn balanced(&self) -> bool {
        self.sent == self.received + self.timeouts + self.lost + self.in_flight
    }
}
