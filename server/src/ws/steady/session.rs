//! One connection while a loop owns it: read its frames, answer echoes,
//! pings and the errors of an echo, send its keep-alive pings, and say when
//! it must go back to its task.
//!
//! Everything else goes back untouched: a frame other than a whole text
//! echo, a ping or a pong is put back in the buffer as it arrived
//! (`FrameBuf::put_back`), a frame error or the end of the stream stays
//! for the task's reader to meet, and a reply the socket does not take
//! whole goes back as bytes owed first. So the task's rules (fragments,
//! close handshake, chat and recovery, fencing, the slow-consumer cut)
//! apply unchanged, and the loop holds no output buffer per connection.
//!
//! A plain echo (the form loadgen and most clients send) is read borrowed
//! from the frame (`protocol::plain_echo`) and its reply written in place
//! into the loop's one scratch buffer, head and body together, then sent
//! with one send(2): no allocation per message.

use super::ctx::LoopCtx;
use super::handoff::Kept;
use crate::frames;
use crate::metrics::inc;
use crate::ws::direct::{Sent, frame_bytes, write_now};
use crate::ws::outbox::{MAX_HEAD, Outbox};
use bytes::Bytes;
use protocol::wsframe::{OP_PING, OP_PONG, OP_TEXT, RawFrame};
use protocol::{ClientMsg, ErrorCode, PlainEcho, decode_client, plain_echo};
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::task::Poll;
use tokio::time::Instant;

/// Bytes read from one socket per turn; the rest waits for the next turn,
/// so one flooding client cannot starve the loop's other connections.
const READ_BUDGET: usize = 64 * 1024;

/// Past this the loop's scratch buffer is given back after use (one huge
/// echo must not pin its size).
const SCRATCH_KEEP: usize = 64 * 1024;

/// A keep-alive ping (no payload).
const PING: [u8; 2] = [0x89, 0x00];

pub struct Session {
    pub id: u64,
    pub sock: mio::net::TcpStream,
    pub kept: Kept,
    next_ping: Instant,
}

/// An echo request: borrowed from its frame in the plain form, else as
/// serde decoded it.
enum Echo<'a> {
    Plain(PlainEcho<'a>),
    Owned(u64, u64, Option<String>),
}

/// What the loop does with a session after an event.
pub enum Step {
    Go,
    /// The read budget ran out with bytes maybe left: read again next turn.
    ReadMore,
    /// Back to its task, with the bytes of a reply it owes first.
    Back(Option<Bytes>),
}

impl Session {
    pub fn new(cx: &LoopCtx, id: u64, sock: mio::net::TcpStream, kept: Kept) -> Session {
        Session {
            id,
            sock,
            kept,
            next_ping: Instant::now() + cx.ping_interval,
        }
    }

    /// When the session's timer must next fire.
    pub fn deadline(&self, cx: &LoopCtx) -> Instant {
        self.next_ping.min(self.kept.last_seen + cx.idle_timeout)
    }

    /// Write a whole frame that is owed first (the welcome).
    pub fn send_first(&mut self, frame: &Bytes) -> Step {
        let sent = write_now(&[], frame, |b| write_to(&self.sock, b));
        owed(sent, || frame.clone())
    }

    /// The keep-alive ping, or back to the task once the client was idle
    /// too long (the task then closes it, as it would have).
    pub fn on_timer(&mut self, cx: &LoopCtx, now: Instant) -> Step {
        if now >= self.kept.last_seen + cx.idle_timeout {
            return Step::Back(None);
        }
        if now < self.next_ping {
            return Step::Go;
        }
        self.next_ping = now + cx.ping_interval;
        let sent = write_now(&PING, &Bytes::new(), |b| write_to(&self.sock, b));
        owed(sent, || Bytes::from_static(&PING))
    }

    /// Read and answer what arrived, within the turn's budget.
    /// `now` is the loop's turn's clock reading: a frame read marks the
    /// client seen then (the idle deadline is coarse; a clock read per
    /// frame cost the loop several percent of its CPU).
    pub fn on_readable(&mut self, cx: &LoopCtx, now: Instant, out: &mut Vec<u8>) -> Step {
        let mut budget = READ_BUDGET;
        loop {
            // Every whole frame already here first.
            if let Some(back) = self.answer_buffered(cx, now, out) {
                return back;
            }
            if budget == 0 {
                return Step::ReadMore;
            }
            let mut room = 0;
            let sock = &self.sock;
            // Pending gives the buffer back when it holds nothing.
            let read = self.kept.frames.poll_fill(|buf| {
                room = buf.len();
                match (&*sock).read(buf) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Poll::Pending,
                    other => Poll::Ready(other),
                }
            });
            match read {
                Poll::Pending => return Step::Go,
                // The end of the stream or an error: the task's reader
                // reads it again and ends the connection as it would have.
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Step::Back(None),
                Poll::Ready(Ok(n)) if n < room => {
                    // A short read drained the socket (as tokio takes it):
                    // the next bytes bring a new edge.
                    if let Some(back) = self.answer_buffered(cx, now, out) {
                        return back;
                    }
                    self.kept.frames.release();
                    return Step::Go;
                }
                Poll::Ready(Ok(n)) => budget = budget.saturating_sub(n),
            }
        }
    }

    /// Answer every whole frame buffered; `Some` when the session must leave.
    fn answer_buffered(&mut self, cx: &LoopCtx, now: Instant, out: &mut Vec<u8>) -> Option<Step> {
        loop {
            let f = match self.kept.frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return None,
                // The task's reader meets the same bytes and ends the
                // connection with the right close code.
                Err(_) => return Some(Step::Back(None)),
            };
            self.kept.last_seen = now;
            if let Some(back) = self.on_frame(cx, f, now, out) {
                return Some(back);
            }
        }
    }

    /// Handle one frame; `Some` when the session must leave the loop.
    fn on_frame(
        &mut self,
        cx: &LoopCtx,
        f: RawFrame,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<Step> {
        let m = &cx.metrics;
        let payload = self.kept.frames.payload(&f);
        let (text, frame) = match f.opcode {
            OP_PONG => return None,
            OP_PING => (false, Bytes::copy_from_slice(payload)),
            OP_TEXT if f.fin => {
                let Ok(text) = std::str::from_utf8(payload) else {
                    return self.put_back(&f);
                };
                let echo = match plain_echo(text) {
                    Some(e) => Ok(Echo::Plain(e)),
                    None => match decode_client(text) {
                        Ok(ClientMsg::Echo { id, ts, payload }) => Ok(Echo::Owned(id, ts, payload)),
                        // Chat and recovery: the task's.
                        Ok(_) => return self.put_back(&f),
                        Err(e) => Err(e),
                    },
                };
                // Counted and limited as the task does: every text message.
                inc(&m.messages_in);
                inc(&m.messages_out);
                let frame = if !self.kept.rate.allow_at(now) {
                    inc(&m.rate_limited);
                    inc(&m.errors_sent);
                    frames::error(ErrorCode::RateLimited, "too many messages per second", None)
                } else {
                    match echo {
                        Ok(Echo::Plain(e)) => {
                            out.clear();
                            out.resize(MAX_HEAD, 0);
                            frames::echo_plain_into(out, &e, &cx.node_id_json);
                            let step = self.write_built(out);
                            if out.capacity() > SCRATCH_KEEP {
                                *out = Vec::new();
                            }
                            return step;
                        }
                        Ok(Echo::Owned(id, ts, payload)) => {
                            frames::echo(id, ts, payload.as_deref(), &cx.node_id)
                        }
                        Err(e) => {
                            inc(&m.errors_sent);
                            frames::error(e.code(), e.to_string(), None)
                        }
                    }
                };
                (true, frame)
            }
            // Fragments, binary frames and the close: the task's.
            _ => return self.put_back(&f),
        };
        let mut head = [0u8; MAX_HEAD];
        let n = Outbox::head(text, &frame, &mut head);
        let sent = write_now(&head[..n], &frame, |b| write_to(&self.sock, b));
        match owed(sent, || frame_bytes(&head[..n], &frame)) {
            Step::Go => None,
            back => Some(back),
        }
    }

    /// Write the text frame whose body `out` holds after `MAX_HEAD` bytes
    /// kept for its head, with one send; what the socket does not take
    /// goes back to the task as bytes owed.
    fn write_built(&self, out: &mut [u8]) -> Option<Step> {
        let mut head = [0u8; MAX_HEAD];
        let n = Outbox::head(true, &out[MAX_HEAD..], &mut head);
        let start = MAX_HEAD - n;
        out[start..MAX_HEAD].copy_from_slice(&head[..n]);
        let frame = &out[start..];
        // Not writable now, or broken: the task waits for room (or meets
        // the error) as it would have.
        let sent = write_to(&self.sock, &[IoSlice::new(frame)]).unwrap_or(0);
        (sent < frame.len()).then(|| Step::Back(Some(Bytes::copy_from_slice(&frame[sent..]))))
    }

    fn put_back(&mut self, f: &RawFrame) -> Option<Step> {
        self.kept.frames.put_back(f);
        Some(Step::Back(None))
    }
}

/// What a write left owed: nothing, or the bytes the task must write first.
fn owed(sent: Sent, whole: impl FnOnce() -> Bytes) -> Step {
    match sent {
        Sent::Whole => Step::Go,
        Sent::Partly(rest) => Step::Back(Some(rest)),
        Sent::Nothing => Step::Back(Some(whole())),
    }
}

fn write_to(sock: &mio::net::TcpStream, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
    let mut w = sock;
    match bufs {
        [one] => w.write(one),
        _ => w.write_vectored(bufs),
    }
}
