//! tcp_floor's client on io_uring (`--uring-client`): the same schedule and
//! wire work as the epoll client, with the kernel crossings batched.
//!
//! The epoll client pays, per message, a `send`, a `recv` and a share of
//! an `epoll_wait`, each a system call that looks its socket up in the
//! process's descriptor table. Here every connection keeps one receive
//! posted on a ring; due sends are queued on the same ring, and one
//! `io_uring_enter` per turn submits them all and collects what completed
//! (the sockets are registered, so no descriptor is looked up). Completions
//! run only when the loop enters the ring (`DEFER_TASKRUN`), as the epoll
//! client handles events only when it polls.
//!
//! It answers one question, measured in docs/BENCHMARKS.md: how much of
//! the loopback round trip's CPU is the system-call path that a batching
//! interface removes, on this machine. Every count is bounded: one receive
//! and at most one send in flight per connection.

use crate::floorrun::{Outcome, Schedule};
use crate::floorwire::{MaskKeys, Rx, Wire};
use io_uring::{IoUring, opcode, squeue, types};
use std::os::fd::AsRawFd;
use std::time::Instant;

/// A receive's user data has this bit clear, a send's set.
const SEND: u64 = 1;
/// Bytes waiting behind a send in flight, past which the server is taken
/// to have stopped reading (the epoll client's short write).
const MORE_CAP: usize = 64 << 10;

struct Conn {
    /// Kept open for the run (the ring holds registered copies).
    _stream: std::net::TcpStream,
    rx: Rx,
    /// A bare reply's bytes (a WebSocket reply reads into `rx`'s own buffer).
    bare: Box<[u8]>,
    next: u64,
    /// Bytes of the send in flight (the kernel reads them until it
    /// completes); empty when none is.
    out: Vec<u8>,
    /// Bytes that fell due while a send was in flight (at most `MORE_CAP`).
    more: Vec<u8>,
}

/// Drive connected (and handshaken) sockets on the schedule; `leftover`
/// is what each handshake read past its end.
pub fn drive(
    streams: Vec<(std::net::TcpStream, Vec<u8>)>,
    wire: Wire,
    sched: Schedule,
    server_pid: u32,
) -> Result<Outcome, String> {
    let n = streams.len();
    // One receive per connection and at most one send: the completion
    // queue holds every operation that can be in flight at once.
    let sq = 4096u32;
    let cq = (2 * n as u32 + 64).next_power_of_two().max(2 * sq);
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(cq)
        .build(sq)
        .map_err(|e| {
            format!("io_uring: {e} (is io_uring allowed here? /proc/sys/kernel/io_uring_disabled)")
        })?;
    let fds: Vec<i32> = streams.iter().map(|(s, _)| s.as_raw_fd()).collect();
    ring.submitter()
        .register_files(&fds)
        .map_err(|e| format!("io_uring register_files: {e}"))?;
    let mut conns: Vec<Conn> = streams
        .into_iter()
        .map(|(s, leftover)| Conn {
            _stream: s,
            rx: wire.rx(&leftover),
            bare: vec![0u8; 512].into_boxed_slice(),
            next: 0,
            out: Vec::with_capacity(256),
            more: Vec::new(),
        })
        .collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let sqe = recv_sqe(c, i);
        push(&mut ring, &sqe)?;
    }
    let mut out = Outcome::new()?;
    let t0 = Instant::now();
    let mut cursor = 0usize;
    let (mut msg, mut ctl) = (Vec::with_capacity(256), Vec::new());
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(1024);
    let mut keys = MaskKeys::new(0x9e37_79b9_7f4a_7c15);
    loop {
        let now = t0.elapsed().as_nanos() as u64;
        if now >= sched.give_up_ns() {
            break;
        }
        out.window_at(&sched, now, server_pid)?;
        while let Some(at) = sched.due_now(cursor, conns[cursor].next, now) {
            let c = &mut conns[cursor];
            wire.message(c.next, at, now, keys.next_key(), &mut msg);
            if let Some(sqe) = queue_send(c, &msg, cursor)? {
                push(&mut ring, &sqe)?;
            }
            out.sent(&sched, at);
            c.next += 1;
            cursor = (cursor + 1) % n;
        }
        let next_due = sched.due(cursor as u64, conns[cursor].next);
        // Rounded up to the millisecond, as the epoll client's wait is
        // (mio asks epoll_wait in whole milliseconds): due sends leave in
        // batches of a millisecond, not one wake-up each.
        let wait = if next_due > now { 1_000_000 } else { 0 };
        let ts = types::Timespec::new().nsec(wait as u32);
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(format!("io_uring_enter: {e}")),
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(data, res) in &done {
            let i = (data >> 1) as usize;
            let c = &mut conns[i];
            if data & SEND != 0 {
                let sent = usize::try_from(res).map_err(|_| format!("send: error {}", -res))?;
                c.out.drain(..sent.min(c.out.len()));
                if c.out.is_empty() {
                    std::mem::swap(&mut c.out, &mut c.more);
                }
                if !c.out.is_empty() {
                    let sqe = send_sqe(c, i);
                    push(&mut ring, &sqe)?;
                }
                continue;
            }
            let len = match res {
                0 => return Err("the server closed a connection".into()),
                r if r < 0 => return Err(format!("recv: error {}", -r)),
                r => r as usize,
            };
            let got = t0.elapsed().as_nanos() as u64;
            c.rx.filled(&c.bare, len, &mut ctl, |at| out.answered(&sched, at, got))?;
            if !ctl.is_empty() {
                if let Some(sqe) = queue_send(c, &ctl, i)? {
                    push(&mut ring, &sqe)?;
                }
                ctl.clear();
            }
            let sqe = recv_sqe(c, i);
            push(&mut ring, &sqe)?;
        }
        if now >= sched.end_ns && out.answered == out.sent {
            break;
        }
    }
    // Receives are still posted into the connections' buffers, and a ring
    // is torn down in the background after it closes: the buffers are left
    // to the process's exit rather than freed under the kernel.
    drop(ring);
    std::mem::forget(conns);
    Ok(out)
}

/// A receive into connection `i`'s free room.
fn recv_sqe(c: &mut Conn, i: usize) -> squeue::Entry {
    let room = c.rx.spare(&mut c.bare);
    // The room stays put until this receive completes: nothing touches the
    // connection's buffers before its completion is handled.
    opcode::Recv::new(types::Fixed(i as u32), room.as_mut_ptr(), room.len() as u32)
        .build()
        .user_data((i as u64) << 1)
}

fn send_sqe(c: &Conn, i: usize) -> squeue::Entry {
    opcode::Send::new(types::Fixed(i as u32), c.out.as_ptr(), c.out.len() as u32)
        .build()
        .user_data(((i as u64) << 1) | SEND)
}

/// Queue `bytes` on connection `i`: a send to submit now, or `None` when
/// one is in flight (they follow it, bounded by `MORE_CAP`).
fn queue_send(c: &mut Conn, bytes: &[u8], i: usize) -> Result<Option<squeue::Entry>, String> {
    if !c.out.is_empty() {
        if c.more.len() + bytes.len() > MORE_CAP {
            return Err("sends pile up: the server stopped reading".into());
        }
        c.more.extend_from_slice(bytes);
        return Ok(None);
    }
    c.out.extend_from_slice(bytes);
    Ok(Some(send_sqe(c, i)))
}

/// Put one entry on the submission queue, submitting first if it is full.
fn push(ring: &mut IoUring, sqe: &squeue::Entry) -> Result<(), String> {
    loop {
        // SAFETY: every buffer an entry points at lives in `conns`, whose
        // elements are neither moved nor dropped while the ring runs, and
        // is not touched until the entry's completion is handled.
        if unsafe { ring.submission().push(sqe) }.is_ok() {
            return Ok(());
        }
        // Full: hand the queued entries to the kernel, which empties it.
        ring.submit().map_err(|e| format!("io_uring_enter: {e}"))?;
    }
}
