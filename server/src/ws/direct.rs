//! Replies the reader writes itself.
//!
//! Reader and writer of a connection run in one task, and only the writer
//! used to write: every reply went through the connection's queue, a mutex
//! and a `Notify` that woke the very task that was running, for a second
//! full poll in which the writer sent it. The reader's half of the socket
//! borrows the same `TcpStream`, so it can write a reply at once
//! ([`Direct::reply`]) when nothing is ahead of it: the queue is empty and
//! the writer is idle. Otherwise, and for whatever part of the frame the
//! socket did not take at once, the reply goes through the queue, so order,
//! batching and the slow-consumer rules stay the writer's.

use super::outbox::{MAX_HEAD, Outbox};
use crate::broker::{ConnSink, Out};
use bytes::Bytes;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use tokio::net::TcpStream;

/// Largest frame (header included) a direct reply copies into one buffer
/// on the stack; an echo reply is a few hundred bytes.
const SMALL_FRAME: usize = 1024;

/// What the reader and the writer must know of each other.
#[derive(Debug, Default)]
pub struct Direct {
    /// Set by the reader when it ended, right before it hands its reason
    /// over: the writer polls that handover only then.
    reader_done: AtomicBool,
    /// True while the writer waits with nothing encoded or unwritten, past
    /// the welcome frame; false while it writes, and once it has ended.
    /// Only the writer sets it. Reader and writer are polled by one task,
    /// never at once, so Relaxed is enough.
    writer_idle: AtomicBool,
}

impl Direct {
    pub fn set_reader_done(&self) {
        self.reader_done.store(true, Relaxed);
    }

    pub fn reader_done(&self) -> bool {
        self.reader_done.load(Relaxed)
    }

    pub fn set_writer_idle(&self, idle: bool) {
        self.writer_idle.store(idle, Relaxed);
    }

    /// Send `out` (a text frame or a pong; anything else is queued) on
    /// `tcp`, the connection's socket, now if nothing is queued or being written ahead of it, else
    /// queue it. Returns true when the frame went on the wire here (whole,
    /// or begun with its rest queued first).
    pub fn reply(&self, tcp: &TcpStream, sink: &ConnSink, out: Out) -> bool {
        let (text, payload) = match &out {
            Out::Frame(b) => (true, b),
            Out::Pong(b) => (false, b),
            _ => {
                sink.deliver(out);
                return false;
            }
        };
        if !self.writer_idle.load(Relaxed) || !sink.queue_is_empty() {
            sink.deliver(out);
            return false;
        }
        let mut head = [0u8; MAX_HEAD];
        let n = Outbox::head(text, payload, &mut head);
        match write_now(&head[..n], payload, |bufs| match bufs {
            [one] => tcp.try_write(one),
            _ => tcp.try_write_vectored(bufs),
        }) {
            Sent::Whole => true,
            Sent::Partly(rest) => {
                sink.deliver_first(rest);
                true
            }
            // Not writable now, or broken: the writer waits for the socket
            // (or meets the error) as it would have.
            Sent::Nothing => {
                sink.deliver(out);
                false
            }
        }
    }
}

/// How a frame written without waiting went.
#[derive(Debug)]
pub enum Sent {
    Whole,
    /// Begun: these bytes (header included if cut) are still owed, first.
    Partly(Bytes),
    /// Not begun: the socket had no room, or is broken.
    Nothing,
}

/// Write a frame (its `head` and `payload`) with one non-blocking call of
/// `write`, which gets one slice or two. A small frame is copied into one
/// buffer on the stack and goes out with one send(2): cheaper in the kernel
/// than writev(2) of header and payload.
pub fn write_now(
    head: &[u8],
    payload: &Bytes,
    write: impl FnOnce(&[IoSlice<'_>]) -> std::io::Result<usize>,
) -> Sent {
    let n = head.len();
    let total = n + payload.len();
    let mut small = [0u8; SMALL_FRAME];
    let written = if total <= SMALL_FRAME {
        small[..n].copy_from_slice(head);
        small[n..total].copy_from_slice(payload);
        write(&[IoSlice::new(&small[..total])])
    } else {
        write(&[IoSlice::new(head), IoSlice::new(payload)])
    };
    match written {
        Ok(sent) if sent >= total => Sent::Whole,
        Ok(sent) if sent > 0 => Sent::Partly(if sent >= n {
            payload.slice(sent - n..)
        } else {
            let mut rest = Vec::with_capacity(total - sent);
            rest.extend_from_slice(&head[sent..]);
            rest.extend_from_slice(payload);
            Bytes::from(rest)
        }),
        _ => Sent::Nothing,
    }
}

/// A whole server text frame (header and payload) as bytes.
pub fn text_frame(payload: &[u8]) -> Bytes {
    let mut head = [0u8; MAX_HEAD];
    let n = Outbox::head(true, payload, &mut head);
    frame_bytes(&head[..n], payload)
}

/// A whole frame as bytes, for a writer that must hand it on unwritten.
pub fn frame_bytes(head: &[u8], payload: &[u8]) -> Bytes {
    let mut all = Vec::with_capacity(head.len() + payload.len());
    all.extend_from_slice(head);
    all.extend_from_slice(payload);
    Bytes::from(all)
}
