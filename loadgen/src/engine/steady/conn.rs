//! One session in the epoll loop: its socket, the bytes it read and has
//! yet to write, its books, and what it does when a message is due, when
//! bytes arrive, when the socket has room again, and at its end.
//!
//! Each phase mirrors the task path (`send::send_loop`, `send::drain`,
//! `recv::recv_loop`): sending on schedule, draining, waiting for the
//! other sessions to drain (`closing`), closing. A paced send waits while
//! earlier bytes are still unsent, as the task's `write_frame` would; the
//! messages that fell due meanwhile then leave back to back, measured from
//! their intended times.

use crate::engine::ctx::RunCtx;
use crate::engine::pending::{ConnState, expire};
use crate::engine::recv::settle;
use crate::engine::reply::{self, Reply};
use crate::engine::send::{book, count_sent, intended_at, render_text};
use crate::engine::session::{CHECK_EVERY, CLOSE_WAIT, End};
use crate::engine::stats::ErrorKind;
use crate::net::frames::{OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_TEXT};
use crate::placeholders::random_u64;
use crate::profile::classify::Keys;
use fastwebsockets::{Frame, OpCode, Payload};
use protocol::wsframe::{FrameBuf, apply_mask};
use std::io::{ErrorKind as IoKind, Read, Write};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Bytes read from one socket per turn before the others get theirs.
const READ_BUDGET: usize = 64 << 10;
/// Unsent bytes past which the session stops reading (a server that does
/// not read our pongs must not make us buffer without bound).
const OUT_CAP: usize = 64 << 10;

/// Buffers the loop's sessions share, one message at a time.
#[derive(Default)]
pub struct Scratch {
    text: String,
    frame: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Sending,
    /// Sending ended; replies still due until `deadline`.
    Draining {
        deadline: Instant,
        stopped: bool,
    },
    /// Drained; waiting for the process's other sessions (`closing`).
    Waiting {
        deadline: Instant,
    },
    /// Our close frame is queued; it has until `deadline` to leave.
    Closing {
        deadline: Instant,
    },
}

/// What the loop does with a session after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Go,
    /// Bytes may remain unread (the read budget ran out): read again soon.
    ReadMore,
    Done(End),
}

pub struct Conn {
    pub sock: mio::net::TcpStream,
    frames: FrameBuf,
    out: Vec<u8>,
    /// Reading paused while `out` is over its cap.
    read_paused: bool,
    pub local: u64,
    pub global: u64,
    pub state: ConnState,
    pub seq: u64,
    /// When message `seq` is due: the slot's `first + seq * interval`,
    /// moved on by the run's interval at each send (the same instant:
    /// durations add exactly).
    due: Instant,
    phase: Phase,
    /// Still in the process's `closing` count.
    counted: bool,
    session: Box<str>,
    id_prefix: Box<str>,
    /// The wake the loop's timers hold for this session.
    pub wake: Option<(Instant, u64)>,
    /// Registered for writable events.
    pub writable: bool,
}

impl Conn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &RunCtx,
        sock: mio::net::TcpStream,
        frames: FrameBuf,
        local: u64,
        global: u64,
        state: ConnState,
        seq: u64,
        first: Instant,
    ) -> Conn {
        let session = ctx.session_id(global);
        let id_prefix = ctx.profile.id_prefix(&ctx.conn_values(global, &session));
        ctx.closing.add();
        Conn {
            sock,
            frames,
            out: Vec::new(),
            read_paused: false,
            local,
            global,
            state,
            seq,
            due: intended_at(first, interval(ctx), seq),
            phase: Phase::Sending,
            counted: true,
            session: session.into(),
            id_prefix: id_prefix.into(),
            wake: None,
            writable: false,
        }
    }

    /// When this session next needs the loop, if nothing happens first.
    pub fn next_wake(&self, ctx: &RunCtx, now: Instant) -> Instant {
        let check = now + CHECK_EVERY;
        match self.phase {
            Phase::Sending if self.out.is_empty() => self.due.min(check),
            Phase::Sending => check,
            Phase::Draining { deadline, .. } => {
                // The oldest reply's give-up time, as `send::drain` wakes for.
                let expiry = self
                    .state
                    .pending
                    .front()
                    .map(|p| ctx.at(p.sent_us) + ctx.cfg.timeout);
                expiry.map_or(deadline, |e| e.min(deadline)).min(check)
            }
            Phase::Waiting { deadline } | Phase::Closing { deadline } => deadline.min(check),
        }
    }

    pub fn waiting(&self) -> bool {
        matches!(self.phase, Phase::Waiting { .. })
    }

    /// Whether the socket should be watched for room to write.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// The session's time came (a send due, a deadline, a stop to notice);
    /// `now` is the loop's reading for its due timers (a send reads its own).
    pub fn on_timer(&mut self, ctx: &RunCtx, scratch: &mut Scratch, now: Instant) -> Step {
        match self.phase {
            Phase::Sending => self.send_due(ctx, scratch),
            Phase::Draining { .. } => self.check_drained(ctx, now, scratch),
            Phase::Waiting { deadline } => {
                if ctx.closing.open() == 0 || now >= deadline || ctx.is_aborted() {
                    self.close(scratch)
                } else {
                    Step::Go
                }
            }
            Phase::Closing { deadline } if now >= deadline || self.out.is_empty() => {
                Step::Done(End::Finished)
            }
            Phase::Closing { .. } => Step::Go,
        }
    }

    /// Every message due by now, unless sending ended or is blocked.
    fn send_due(&mut self, ctx: &RunCtx, scratch: &mut Scratch) -> Step {
        let mut now = Instant::now();
        loop {
            if ctx.is_aborted() || ctx.slot_stopped(self.local) {
                return self.drain(ctx, now, true, scratch);
            }
            let intended = self.due;
            if intended >= ctx.send_end || now >= ctx.send_end {
                return self.drain(ctx, now, false, scratch);
            }
            if intended > now || !self.out.is_empty() {
                return Step::Go;
            }
            let (intended_us, sent_us) = (ctx.us(intended), ctx.us(now));
            let n = self.seq;
            render_text(
                ctx,
                self.global,
                &self.session,
                n,
                (intended_us, sent_us),
                &mut scratch.text,
            );
            let full = book(ctx, &mut self.state, n, intended_us, sent_us);
            count_sent(ctx, 1, full, intended_us, sent_us);
            self.seq = n + 1;
            self.due += interval(ctx);
            // The text's own bytes are framed and masked in place (no copy);
            // emptied, they are text again for the next message.
            let mut payload = std::mem::take(&mut scratch.text).into_bytes();
            let op = if ctx.profile.binary {
                OpCode::Binary
            } else {
                OpCode::Text
            };
            // A cheap key (xorshift): RFC 6455 asks for unpredictable keys
            // so that a page's script cannot steer the bytes an
            // intermediary sees, and loadgen runs no one's script, while
            // fastwebsockets' own key (`rand`'s thread generator) was about
            // 2 % of loadgen's user time. Control frames keep its keys.
            let key = ((random_u64() >> 32) as u32).to_ne_bytes();
            // Masked a word at a time: fastwebsockets' `Frame::mask` goes
            // byte by byte, five times the cost of this (perf, session 14).
            apply_mask(&mut payload, key);
            let frame = Frame::new(true, op, Some(key), Payload::BorrowedMut(&mut payload));
            let res = self.write_masked(frame, &mut scratch.frame);
            payload.clear();
            scratch.text = String::from_utf8(payload).unwrap_or_default();
            if let Err(e) = res {
                ctx.fail(ErrorKind::Write, &format!("write failed: {e}"));
                return Step::Done(End::Dropped);
            }
            // The clock again only for a backlog: a next message not due
            // by the last reading is left to its timer (which fires at the
            // next turn if its time passed meanwhile).
            if self.due <= now {
                now = Instant::now();
            }
        }
    }

    /// Sending ended: wait (bounded) for the replies still due.
    fn drain(&mut self, ctx: &RunCtx, now: Instant, stopped: bool, s: &mut Scratch) -> Step {
        let deadline = ctx.drain_deadline(now, stopped);
        self.phase = Phase::Draining { deadline, stopped };
        self.check_drained(ctx, now, s)
    }

    fn check_drained(&mut self, ctx: &RunCtx, now: Instant, s: &mut Scratch) -> Step {
        let Phase::Draining { deadline, stopped } = self.phase else {
            return Step::Go;
        };
        expire(ctx, &mut self.state, ctx.us(now));
        if !self.state.pending.is_empty() && now < deadline && !ctx.is_aborted() {
            return Step::Go;
        }
        self.leave(ctx);
        if stopped || ctx.is_aborted() || ctx.closing.open() == 0 {
            return self.close(s);
        }
        self.phase = Phase::Waiting { deadline };
        Step::Go
    }

    /// Leave the process's `closing` count (once).
    pub fn leave(&mut self, ctx: &RunCtx) {
        if std::mem::take(&mut self.counted) {
            ctx.closing.remove();
        }
    }

    /// Queue our close frame; done once it has left (or `CLOSE_WAIT` passed).
    pub fn close(&mut self, s: &mut Scratch) -> Step {
        let _ = self.write_frame(Frame::close(protocol::close::NORMAL, b""), &mut s.frame);
        if self.out.is_empty() {
            return Step::Done(End::Finished);
        }
        self.phase = Phase::Closing {
            deadline: Instant::now() + CLOSE_WAIT,
        };
        Step::Go
    }

    /// Read and act on every frame that arrived, within the read budget.
    pub fn on_readable(&mut self, ctx: &RunCtx, s: &mut Scratch) -> Step {
        if let Phase::Closing { .. } = self.phase {
            // Our close frame is queued: nothing may follow it (no pong, no
            // keep-alive answer), and as a task's session, this one no
            // longer reads.
            return Step::Go;
        }
        if self.out.len() > OUT_CAP {
            self.read_paused = true;
            return Step::Go;
        }
        let mut budget = READ_BUDGET;
        let mut drained = false;
        loop {
            loop {
                match self.frames.next_frame() {
                    Ok(Some(f)) => {
                        let step = self.on_frame(ctx, f, s);
                        if step != Step::Go {
                            return step;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return read_failed(ctx, &e),
                }
            }
            if budget == 0 {
                return Step::ReadMore;
            }
            if drained {
                return Step::Go;
            }
            let sock = &self.sock;
            let filled = self.frames.poll_fill(|room| {
                loop {
                    break match (&*sock).read(room) {
                        Ok(n) => {
                            // A read that did not fill the room took all the
                            // socket had; new bytes bring a new edge (as tokio
                            // and mio assume), so no read is spent on EAGAIN.
                            drained = n > 0 && n < room.len();
                            Poll::Ready(Ok(n))
                        }
                        Err(e) if e.kind() == IoKind::WouldBlock => Poll::Pending,
                        Err(e) if e.kind() == IoKind::Interrupted => continue,
                        Err(e) => Poll::Ready(Err(e)),
                    };
                }
            });
            match filled {
                Poll::Pending => return Step::Go,
                Poll::Ready(Ok(0)) => {
                    return read_failed(ctx, &"the server closed the TCP connection");
                }
                Poll::Ready(Ok(n)) => budget = budget.saturating_sub(n),
                Poll::Ready(Err(e)) => return read_failed(ctx, &e),
            }
        }
    }

    /// One whole frame from the server (`recv::recv_loop`'s rules).
    fn on_frame(&mut self, ctx: &RunCtx, f: protocol::wsframe::RawFrame, s: &mut Scratch) -> Step {
        match f.opcode {
            OP_CLOSE => {
                ctx.fail(ErrorKind::Closed, "the server closed the connection");
                // Answer the close (best effort); the connection is over either way.
                let _ = self.write_frame(Frame::close(protocol::close::NORMAL, b""), &mut s.frame);
                Step::Done(End::Dropped)
            }
            OP_PING => {
                let pong = Frame::pong(Payload::Owned(self.frames.payload(&f).to_vec()));
                if self.write_frame(pong, &mut s.frame).is_err() {
                    ctx.stats.count(|c| c.error(ErrorKind::Write));
                    return Step::Done(End::Dropped);
                }
                Step::Go
            }
            OP_TEXT | OP_BINARY if f.fin => {
                let now_us = ctx.us(Instant::now());
                let keys = Keys {
                    id_prefix: &self.id_prefix,
                    filler: &ctx.filler,
                };
                let r = reply::classify(&ctx.profile, self.frames.payload(&f), &keys);
                if let Reply::Answer(i) = r {
                    return self.answer(ctx, i, s);
                }
                let done = settle(ctx, &mut self.state, self.global, r, now_us);
                self.state.shrink_if_idle();
                if done && matches!(self.phase, Phase::Draining { .. }) {
                    return self.check_drained(ctx, Instant::now(), s);
                }
                Step::Go
            }
            OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                // loadgen never sends fragmented messages, so none come back.
                ctx.fail(ErrorKind::Protocol, "unexpected fragmented frame");
                Step::Go
            }
            _ => Step::Go,
        }
    }

    /// Answer a keep-alive with the profile's rule `i`.
    fn answer(&mut self, ctx: &RunCtx, i: usize, s: &mut Scratch) -> Step {
        let Some((_, rule)) = ctx.profile.answers.get(i) else {
            return Step::Go;
        };
        let mut text = rule
            .render(&ctx.conn_values(self.global, &self.session))
            .into_bytes();
        if let Err(e) = self.write_frame(Frame::text(Payload::BorrowedMut(&mut text)), &mut s.frame)
        {
            ctx.fail(ErrorKind::Write, &format!("write failed: {e}"));
            return Step::Done(End::Dropped);
        }
        Step::Go
    }

    /// The socket has room again: write what waited, then what fell due.
    pub fn on_writable(&mut self, ctx: &RunCtx, s: &mut Scratch) -> Step {
        if let Err(e) = self.flush() {
            ctx.fail(ErrorKind::Write, &format!("write failed: {e}"));
            return Step::Done(End::Dropped);
        }
        if !self.out.is_empty() {
            return Step::Go;
        }
        if let Phase::Closing { .. } = self.phase {
            return Step::Done(End::Finished);
        }
        if std::mem::take(&mut self.read_paused) {
            let step = self.on_readable(ctx, s);
            if step != Step::Go {
                return step;
            }
        }
        match self.phase {
            Phase::Sending => self.send_due(ctx, s),
            _ => Step::Go,
        }
    }

    /// Mask and write one frame; what the socket cannot take now waits in
    /// `out`, behind anything already waiting.
    fn write_frame(&mut self, mut frame: Frame<'_>, buf: &mut Vec<u8>) -> std::io::Result<()> {
        frame.mask();
        self.write_masked(frame, buf)
    }

    /// [`write_frame`](Self::write_frame) of a frame whose payload is
    /// masked already.
    fn write_masked(&mut self, mut frame: Frame<'_>, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let bytes = frame.write(buf);
        if !self.out.is_empty() {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        let n = write_some(&self.sock, bytes)?;
        self.out.extend_from_slice(&bytes[n..]);
        Ok(())
    }

    /// Write what waits in `out` until it is empty or the socket is full.
    fn flush(&mut self) -> std::io::Result<()> {
        let n = write_some(&self.sock, &self.out)?;
        if n == self.out.len() {
            // An idle session holds no write buffer.
            self.out = Vec::new();
        } else {
            self.out.drain(..n);
        }
        Ok(())
    }
}

/// The run's interval between a session's messages (the loop only holds
/// paced sessions).
fn interval(ctx: &RunCtx) -> Duration {
    ctx.interval.unwrap_or(Duration::from_secs(1))
}

/// Write as much of `bytes` as the socket takes now; how much it took.
fn write_some(sock: &mio::net::TcpStream, bytes: &[u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < bytes.len() {
        match (&*sock).write(&bytes[n..]) {
            Ok(0) => return Err(IoKind::WriteZero.into()),
            Ok(k) => n += k,
            Err(e) if e.kind() == IoKind::WouldBlock => break,
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn read_failed(ctx: &RunCtx, e: &dyn std::fmt::Display) -> Step {
    ctx.fail(ErrorKind::Read, &format!("read failed: {e}"));
    Step::Done(End::Dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Targets};
    use crate::engine::settings::Share;
    use crate::net::dial::Dialer;
    use clap::Parser;
    use protocol::wsframe::{Masking, OP_PONG};
    use std::sync::Arc;

    fn ctx() -> RunCtx {
        let o = crate::opts::Opts::try_parse_from(["loadgen", "--url", "ws://127.0.0.1:9/ws/chat"])
            .unwrap();
        let cfg = Config::from_opts(&o.load).unwrap();
        let Targets::Urls(targets) = cfg.targets else {
            panic!("a --url run")
        };
        let dialer = Dialer::new(&cfg.load.dial, false).unwrap();
        RunCtx::new(Arc::new(cfg.load), targets, "t".into(), Share::ALL, dialer).unwrap()
    }

    /// A ping frame from the server: unmasked, 125-byte payload.
    fn ping(i: usize) -> Vec<u8> {
        let mut f = vec![0x89, 125];
        f.extend((0..125).map(|k| (i + k) as u8));
        f
    }

    #[test]
    fn bytes_past_a_turns_budget_are_read_on_the_next_turns() {
        let ctx = ctx();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut server, _) = l.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        // 600 pings, 76 KiB: more than one turn may read (64 KiB).
        let n = 600;
        let wire: Vec<u8> = (0..n).flat_map(ping).collect();
        server.write_all(&wire).unwrap();
        let mut waiting = [0u8; 1];
        // Let every byte reach the client's socket before the first turn.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let _ = client.peek(&mut waiting);
        let state = ConnState::new(16, 0);
        let frames = FrameBuf::new(1 << 20, Masking::Either);
        let sock = mio::net::TcpStream::from_std(client);
        // A slot that is wanted, with its first message due well after the test.
        ctx.set_wanted(1);
        let first = Instant::now() + std::time::Duration::from_secs(30);
        let mut c = Conn::new(&ctx, sock, frames, 0, 0, state, 0, first);
        let mut s = Scratch::default();
        assert_eq!(c.on_readable(&ctx, &mut s), Step::ReadMore);
        let mut turns = 1;
        while c.on_readable(&ctx, &mut s) == Step::ReadMore {
            turns += 1;
            assert!(turns < 10, "the socket's bytes never ran out");
        }
        // Every ping was answered with its own payload (what the socket
        // could not take waits in the session until it has room).
        server
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        let mut got = FrameBuf::new(1 << 20, Masking::Required);
        let (mut pongs, mut stalls) = (0, 0);
        while pongs < n {
            while let Some(f) = got.next_frame().unwrap() {
                assert_eq!(f.opcode, OP_PONG);
                assert_eq!(got.payload(&f), &ping(pongs)[2..]);
                pongs += 1;
            }
            match server.read(got.spare()) {
                Ok(0) => panic!("the client closed after {pongs} pongs"),
                Ok(k) => got.filled(k),
                Err(_) => {
                    stalls += 1;
                    assert!(stalls < 100, "only {pongs} of {n} pongs came");
                    assert_eq!(c.on_writable(&ctx, &mut s), Step::Go);
                }
            }
        }
        c.leave(&ctx);
    }
}
