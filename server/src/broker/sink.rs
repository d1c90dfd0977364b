//! The per-connection outbound queue as the broker sees it.
//!
//! Every connection owns one bounded queue. Nothing ever waits on it: a full
//! queue means the client reads slower than the node produces, and that
//! connection is closed (1013) instead of slowing down publishers or growing
//! memory without bound.

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use protocol::StreamStatus;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::sync::Notify;

/// One item for a connection's writer.
#[derive(Debug, Clone)]
pub enum Out {
    /// The connection's first frame; anything queued before it waits for it.
    Welcome(Bytes),
    /// A frame for this connection alone (echo, ack, error).
    Frame(Bytes),
    /// Answer to a client's ping.
    Pong(Bytes),
    /// A chunk of a stream, subject to the connection's delivery filter.
    /// Shared by every connection of the session (one allocation per chunk).
    Chunk(Arc<StreamFrame>),
    /// The last frame of a stream (`done` or `interrupted`); `index` is the chunk count.
    End(Arc<StreamFrame>),
    /// The client asked to recover this stream: hold its live chunks until the replay.
    RecoverStart { message_id: Arc<str> },
    /// Cached chunks for a recovery; `announce` sends a `recovered` frame first
    /// (false when the node heals a gap on its own).
    Replay { replay: Box<Replay>, announce: bool },
    /// A recovery failed: stop holding the stream's chunks and send `frame`.
    RecoverAbort(Arc<StreamFrame>),
    /// The unwritten end of a frame the connection began writing itself
    /// (raw bytes, header included). Only [`ConnSink::deliver_first`]
    /// queues it, at the front: nothing may go out before it.
    Rest(Bytes),
}

/// An encoded frame that belongs to a stream. Queue items stay at 40 bytes
/// (every connection's queue block holds 32 of them, allocated up front).
#[derive(Debug)]
pub struct StreamFrame {
    pub message_id: Arc<str>,
    pub index: u32,
    pub frame: Bytes,
}

/// Cached part of a stream, read for a recovery.
#[derive(Debug, Clone)]
pub struct Replay {
    pub message_id: Arc<str>,
    pub status: StreamStatus,
    /// Index of `chunks[0]` (or past the end when `chunks` is empty).
    pub from: u32,
    pub chunks: Vec<Bytes>,
    /// Total chunks cached when read.
    pub total: u32,
    /// The `done`/`interrupted` frame when the stream had finished.
    pub end: Option<Bytes>,
}

/// Handle a broker uses to deliver to one connection.
#[derive(Debug, Clone)]
pub struct ConnSink {
    pub id: u64,
    queue: Arc<Queue>,
    overflow: Arc<Overflow>,
}

/// The queue itself: a `VecDeque` that allocates only as items arrive, so an
/// idle connection costs a few hundred bytes instead of a channel block.
#[derive(Debug)]
struct Queue {
    items: Mutex<VecDeque<Out>>,
    /// `items.len()`, written under the lock, read without it: the
    /// connection asks on every wake-up whether anything is queued.
    len: AtomicUsize,
    capacity: usize,
    /// The connection's task while it waits on an empty queue. Not a
    /// `Notify`: its pending poll takes a mutex, and the connection task
    /// polls this wait on every wake-up, for every frame its client sends
    /// (2.7 % of the node's CPU at 60K echoes/s in `perf`); a registered
    /// waker is a compare-and-swap, and an unchanged one is not cloned.
    waker: AtomicWaker,
    /// Set when the receiving connection is gone.
    closed: AtomicBool,
}

/// The connection's end of its queue.
#[derive(Debug)]
pub struct OutQueue {
    queue: Arc<Queue>,
}

impl OutQueue {
    /// Next item; waits while the queue is empty. Cancel-safe: an item is
    /// only taken when this returns it.
    pub async fn recv(&mut self) -> Out {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// An empty queue costs two atomic loads and the waker's registration,
    /// no lock.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Out> {
        loop {
            if self.queue.len.load(Ordering::Acquire) > 0
                && let Some(out) = self.try_recv()
            {
                return Poll::Ready(out);
            }
            self.queue.waker.register(cx.waker());
            // A push before the registration is seen here; one after it
            // wakes the registered waker.
            if self.queue.len.load(Ordering::Acquire) == 0 {
                return Poll::Pending;
            }
        }
    }
}

impl OutQueue {
    /// Resolves once an item is queued, and takes none: for a connection
    /// that waits elsewhere while its queue is empty.
    pub async fn ready(&mut self) {
        std::future::poll_fn(|cx| {
            if self.queue.len.load(Ordering::Acquire) > 0 {
                return Poll::Ready(());
            }
            self.queue.waker.register(cx.waker());
            // A push before the registration is seen here; one after it
            // wakes the registered waker.
            if self.queue.len.load(Ordering::Acquire) > 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// The next item if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Out> {
        let mut items = self.queue.items.lock().unwrap_or_else(|e| e.into_inner());
        let out = items.pop_front();
        self.queue.len.store(items.len(), Ordering::Release);
        if items.is_empty() && items.capacity() > 64 {
            items.shrink_to(4);
        }
        out
    }
}

impl OutQueue {
    /// The unwritten end of a frame, if one is first in the queue: a close
    /// frame must follow it, not cut into it.
    pub fn take_rest(&mut self) -> Option<Bytes> {
        let mut items = self.queue.items.lock().unwrap_or_else(|e| e.into_inner());
        match items.front() {
            Some(Out::Rest(_)) => match items.pop_front() {
                Some(Out::Rest(rest)) => {
                    self.queue.len.store(items.len(), Ordering::Release);
                    Some(rest)
                }
                _ => None,
            },
            _ => None,
        }
    }
}

impl Drop for OutQueue {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Relaxed);
        // Free queued frames now rather than when the last sink clone goes.
        self.queue
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.queue.len.store(0, Ordering::Release);
        // The registered waker holds the connection's task; a sink clone
        // still held elsewhere must not keep that task's memory alive.
        drop(self.queue.waker.take());
    }
}

/// Set once when the queue overflowed; the connection task wakes and closes.
#[derive(Debug, Default)]
pub struct Overflow {
    flag: AtomicBool,
    notify: Notify,
}

impl Overflow {
    pub fn happened(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Resolves once the queue has overflowed.
    pub async fn wait(&self) {
        while !self.happened() {
            self.notify.notified().await;
        }
    }
}

impl ConnSink {
    /// A sink and the receiving end of its queue of `capacity` items.
    pub fn new(id: u64, capacity: usize) -> (ConnSink, OutQueue, Arc<Overflow>) {
        let queue = Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            capacity,
            waker: AtomicWaker::new(),
            closed: AtomicBool::new(false),
        });
        let overflow = Arc::new(Overflow::default());
        let sink = ConnSink {
            id,
            queue: queue.clone(),
            overflow: overflow.clone(),
        };
        (sink, OutQueue { queue }, overflow)
    }

    /// Queue an item without waiting. Returns false when the connection is
    /// gone or its queue is full; a full queue also marks the connection for
    /// closing (a dropped frame must not go unnoticed).
    pub fn deliver(&self, out: Out) -> bool {
        if self.is_closed() {
            return false;
        }
        {
            let mut items = self.queue.items.lock().unwrap_or_else(|e| e.into_inner());
            if items.len() >= self.queue.capacity {
                drop(items);
                if !self.overflow.flag.swap(true, Ordering::Relaxed) {
                    self.overflow.notify.notify_one();
                }
                return false;
            }
            items.push_back(out);
            self.queue.len.store(items.len(), Ordering::Release);
        }
        self.queue.waker.wake();
        true
    }

    /// Queue the end of a frame already partly written, AHEAD of anything
    /// queued since: those bytes are on the wire and the frame must be
    /// finished first. Not subject to the capacity (no frame may be cut),
    /// and still bounded: at most one such item is ever queued. A
    /// connection's reader writes a reply itself only while the queue is
    /// empty, and an epoll loop (`ws::steady`) gives a connection back,
    /// with at most one unwritten frame, before its task writes anything.
    pub fn deliver_first(&self, rest: Bytes) {
        if self.is_closed() {
            return;
        }
        {
            let mut items = self.queue.items.lock().unwrap_or_else(|e| e.into_inner());
            items.push_front(Out::Rest(rest));
            self.queue.len.store(items.len(), Ordering::Release);
        }
        self.queue.waker.wake();
    }

    /// Whether nothing waits in the queue (the connection may then write a
    /// reply itself without overtaking anything). One atomic load: items
    /// pushed by another thread at this very moment may be missed, which
    /// orders them after the caller's reply, as if they came a moment later.
    pub fn queue_is_empty(&self) -> bool {
        self.queue.len.load(Ordering::Acquire) == 0
    }

    pub fn is_closed(&self) -> bool {
        self.queue.closed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_marks_overflow_once() {
        let (sink, mut rx, overflow) = ConnSink::new(1, 2);
        assert!(sink.deliver(Out::Frame(Bytes::from_static(b"a"))));
        assert!(sink.deliver(Out::Frame(Bytes::from_static(b"b"))));
        assert!(!overflow.happened());
        assert!(!sink.deliver(Out::Frame(Bytes::from_static(b"c"))));
        assert!(overflow.happened());
        overflow.wait().await;
        assert!(matches!(rx.recv().await, Out::Frame(b) if b == "a"));
        drop(rx);
        assert!(!sink.deliver(Out::Frame(Bytes::from_static(b"d"))));
        assert!(sink.is_closed());
    }

    #[tokio::test]
    async fn the_rest_of_a_frame_goes_first_even_past_capacity() {
        let (sink, mut rx, overflow) = ConnSink::new(1, 1);
        assert!(sink.queue_is_empty());
        assert!(sink.deliver(Out::Frame(Bytes::from_static(b"later"))));
        assert!(!sink.queue_is_empty());
        sink.deliver_first(Bytes::from_static(b"rest"));
        assert!(!overflow.happened());
        assert_eq!(rx.take_rest().as_deref(), Some(&b"rest"[..]));
        assert_eq!(rx.take_rest(), None, "only a rest at the front is taken");
        assert!(matches!(rx.recv().await, Out::Frame(b) if b == "later"));
    }

    /// Items pushed from another thread, while the receiver waits on an
    /// empty queue or is busy taking earlier ones, are all received, in
    /// order, none twice, and each push reaches a waiting receiver.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_receiver_gets_every_item_pushed_from_another_thread() {
        const N: u32 = 20_000;
        let (sink, mut rx, overflow) = ConnSink::new(1, N as usize);
        let pusher = std::thread::spawn(move || {
            for i in 0..N {
                assert!(sink.deliver(Out::Frame(Bytes::from(i.to_le_bytes().to_vec()))));
                if i % 1000 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            sink
        });
        for want in 0..N {
            // The deadline first: a receiver never woken must fail here,
            // not be rescued by the deadline's own wake-up.
            let got = tokio::select! {
                biased;
                _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
                    panic!("item {want} was pushed but the receiver was never woken")
                }
                got = rx.recv() => got,
            };
            assert!(matches!(got, Out::Frame(b) if b[..] == want.to_le_bytes()));
        }
        let sink = pusher.join().unwrap();
        assert!(sink.queue_is_empty() && !overflow.happened());
        assert!(rx.try_recv().is_none());
    }
}
