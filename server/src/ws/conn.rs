//! One WebSocket connection: one task, two halves.
//!
//! The reader parses client frames (with the small-buffer
//! [`ClientReader`]) and answers through the connection's bounded queue,
//! or writes an echo or pong itself when nothing is queued or being written
//! ahead of it ([`Direct::reply`]: no second wake-up per echo);
//! the writer drains the queue through the [`Delivery`] filter, pings,
//! watches the idle deadline, and writes the close frame, whatever ended the
//! connection (the reader hands its reason over a oneshot), each wake-up's
//! frames in one write ([`Outbox`]). Both run as futures of the same task,
//! so a connection costs one task, and neither holds a buffer while idle.
//!
//! This code is generic over [`Broker`] and never learns which one it has.

use super::delivery::{Action, Delivery, Wire};
use super::direct::Direct;
use super::end::{End, close_reply, read_error};
use super::fragments::{Assembler, FragmentError, Message};
use super::gate::gated;
use super::outbox::Outbox;
use super::rate::RateLimit;
use super::reader::ClientReader;
use super::steady;
use crate::broker::{
    AnswerPlan, Attached, Broker, BrokerError, ConnSink, Out, OutQueue, Overflow, Owner, Replay,
    StreamFrame,
};
use crate::frames;
use crate::metrics::inc;
use crate::sessions::new_message_id;
use crate::state::{Node, shutdown_requested};
use crate::stream;
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use protocol::wsframe::{FrameBuf, Masking, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use protocol::{ClientMsg, ErrorCode, ServerMsg, decode_client};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::oneshot;
use tokio::time::Instant;

pub struct Conn<B> {
    node: Arc<Node<B>>,
    session: Owner,
    welcome: Bytes,
    sink: ConnSink,
    peer: SocketAddr,
    started: Instant,
    /// Milliseconds after `started` when the client last sent anything.
    last_seen_ms: AtomicU64,
    /// Answers this connection is generating; shared with their tasks.
    active_streams: Arc<AtomicUsize>,
}

impl<B: Broker> Conn<B> {
    pub fn new(
        node: Arc<Node<B>>,
        attached: Attached,
        sink: ConnSink,
        peer: SocketAddr,
    ) -> Conn<B> {
        let welcome = frames::msg(&ServerMsg::Welcome {
            session_id: attached.session.session_id.to_string(),
            node_id: node.node_id.to_string(),
            token: attached.session.token.to_string(),
            streams: attached.streams,
        });
        Conn {
            node,
            session: attached.session,
            welcome,
            sink,
            peer,
            started: Instant::now(),
            last_seen_ms: AtomicU64::new(0),
            active_streams: Arc::new(AtomicUsize::new(0)),
        }
    }

    // Not `async fn`: rustc keeps an async fn's arguments twice in its
    // future (as captured upvar and as local), which every idle connection
    // pays for; an `async move` block uses them in place.
    #[allow(clippy::manual_async_fn)]
    pub fn run(
        mut self,
        on_upgrade: OnUpgrade,
        mut rx: OutQueue,
        overflow: Arc<Overflow>,
    ) -> impl Future<Output = ()> + Send {
        async move {
            let node = self.node.clone();
            let sid = self.session.session_id.clone();
            // Unwrap hyper's boxed I/O back to the TcpStream: borrowed halves
            // need no Arc, no lock per read or write, and no extra allocation.
            let (stream, frames) =
                match on_upgrade.await.map(|u| u.downcast::<TokioIo<TcpStream>>()) {
                    Ok(Ok(parts)) => take_parts(parts, node.cfg.max_message_size),
                    Ok(Err(_)) | Err(_) => {
                        tracing::debug!(session_id = %sid, "upgrade did not complete");
                        node.broker.detach(&sid, self.sink.id).await;
                        return;
                    }
                };
            let kept = steady::Kept {
                frames,
                rate: RateLimit::new(node.cfg.max_msg_rate),
                last_seen: self.started,
            };
            inc(&node.metrics.connections);
            inc(&node.metrics.connections_total);
            tracing::info!(session_id = %sid, node_id = %node.node_id, conn = self.sink.id, peer = %self.peer, "WebSocket connected");
            let welcomed = node.loops.is_some();
            // Taken apart here: a whole `Kept` would keep its room in this
            // future, past tokio's 2,048-byte task cell.
            let (mut stream, steady::Kept { frames, rate, .. }) = if let Some(loops) = &node.loops {
                // The echo path runs in an epoll loop until the connection
                // needs more (see `steady`); it then goes on here. Boxed:
                // the wait is not kept in the task once it is over.
                match Box::pin(self.through_loop(loops, stream, kept, &mut rx)).await {
                    Some(back) => back,
                    None => {
                        tracing::debug!(session_id = %sid, "the connection was lost in its loop");
                        node.metrics.connections.fetch_sub(1, Relaxed);
                        node.broker.detach(&sid, self.sink.id).await;
                        return;
                    }
                }
            } else {
                self.sink
                    .deliver(Out::Welcome(std::mem::take(&mut self.welcome)));
                (stream, kept)
            };
            let (r, w) = stream.split();
            let direct = Direct::default();
            let rd = ClientReader::with_frames(r, frames);

            let overflow_wait = overflow.wait();
            tokio::pin!(overflow_wait);
            let (end_tx, end_rx) = oneshot::channel();
            // Hands its reason over and then waits forever: the writer ends
            // the connection. Not wrapped in another block, which would keep
            // the reader and the rate limit twice (its own and the future's).
            let reader = self.read_loop(rd, &direct, rate, end_tx);
            let end = tokio::select! {
                // Writer first: after an overflow it writes the 1013 close
                // itself unless it is stuck in a write to a client that does
                // not read; only then does the overflow arm cut it off.
                biased;
                end = self.write_loop(w, &direct, rx, &overflow, end_rx, welcomed) => end,
                _ = gated(overflow_wait, || overflow.happened()) => End::SlowConsumerCut,
                _ = reader => End::Broken,
            };

            node.metrics.connections.fetch_sub(1, Relaxed);
            match end {
                End::SlowConsumer | End::SlowConsumerCut => inc(&node.metrics.slow_consumer_closes),
                End::Idle => inc(&node.metrics.idle_closes),
                _ => {}
            }
            node.broker.detach(&sid, self.sink.id).await;
            tracing::info!(session_id = %sid, node_id = %node.node_id, conn = self.sink.id, reason = end.reason(), "WebSocket disconnected");
        }
    }

    /// Run the connection in its epoll loop, parked, until it comes back;
    /// then restore what the loop kept (when the client was last seen, a
    /// frame owed first). `None` when the connection was lost.
    ///
    /// The hand-over happens before the future is built: the future, which
    /// a parked connection holds, keeps only the wait.
    #[allow(clippy::manual_async_fn)]
    fn through_loop<'a>(
        &'a mut self,
        loops: &'a steady::Loops,
        sock: TcpStream,
        kept: steady::Kept,
        rx: &'a mut OutQueue,
    ) -> impl Future<Output = Option<(TcpStream, steady::Kept)>> + Send + 'a {
        let welcome = std::mem::take(&mut self.welcome);
        let going = steady::Going {
            id: self.sink.id,
            sock,
            kept,
            welcome,
        };
        // The welcome is written by the loop, or owed first when the
        // connection comes back: counted as the writer counts it.
        inc(&self.node.metrics.messages_out);
        let entered = steady::enter(loops, going);
        async move {
            let back = steady::wait(loops, entered, rx).await?;
            let steady::Returned {
                sock, kept, rest, ..
            } = *back;
            let sock = TcpStream::from_std(sock).ok()?;
            let seen = kept.last_seen.saturating_duration_since(self.started);
            self.last_seen_ms.store(seen.as_millis() as u64, Relaxed);
            if let Some(rest) = rest {
                self.sink.deliver_first(rest);
            }
            Some((sock, kept))
        }
    }

    fn touch(&self) {
        self.last_seen_ms
            .store(self.started.elapsed().as_millis() as u64, Relaxed);
    }

    fn send_error(&self, code: ErrorCode, message: &str, message_id: Option<&str>) {
        inc(&self.node.metrics.errors_sent);
        self.sink
            .deliver(Out::Frame(frames::error(code, message, message_id)));
    }

    // Not `async fn`: rustc keeps an async fn's arguments twice in its
    // future (as captured upvar and as local), which every idle connection
    // pays for; an `async move` block uses them in place.
    #[allow(clippy::manual_async_fn)]
    fn read_loop<'a>(
        &'a self,
        mut rd: ClientReader<ReadHalf<'a>>,
        direct: &'a Direct,
        mut rate: RateLimit,
        end_tx: oneshot::Sender<End>,
    ) -> impl Future<Output = ()> + Send + 'a {
        async move {
            let cfg = &self.node.cfg;
            let mut assembler = Assembler::new(cfg.max_message_size, cfg.fragment_timeout);
            let end = 'frames: loop {
                let frame = match rd.next().await {
                    Ok(f) => f,
                    Err(e) => break 'frames read_error(e),
                };
                self.touch();
                if assembler.check().is_err() {
                    break 'frames End::FragmentTimeout;
                }
                let payload = rd.payload(&frame);
                // The reader's half of the socket writes direct replies.
                let reply = Reply {
                    tcp: rd.io().as_ref(),
                    direct,
                };
                match frame.opcode {
                    OP_CLOSE => break 'frames End::ClientClosed(close_reply(payload)),
                    OP_PING => {
                        reply.send(&self.sink, Out::Pong(Bytes::copy_from_slice(payload)));
                    }
                    OP_PONG => {}
                    OP_TEXT if frame.fin && !assembler.in_progress() => {
                        // The common case: one whole text frame.
                        match std::str::from_utf8(payload) {
                            Ok(text) => self.on_text(text, &mut rate, reply).await,
                            Err(_) => break 'frames End::InvalidData,
                        }
                    }
                    op => match assembler.push(op, frame.fin, payload) {
                        Ok(None) => {}
                        Ok(Some(Message::Text(text))) => {
                            self.on_text(&text, &mut rate, reply).await
                        }
                        Ok(Some(Message::Binary(_))) => {
                            inc(&self.node.metrics.messages_in);
                            self.send_error(
                                ErrorCode::BadRequest,
                                "binary frames are not supported: send JSON text",
                                None,
                            );
                        }
                        Err(FragmentError::TooBig) => break 'frames End::TooBig,
                        Err(FragmentError::InvalidUtf8) => break 'frames End::InvalidData,
                        Err(FragmentError::Sequence) => break 'frames End::Protocol,
                        Err(FragmentError::TooSlow) => break 'frames End::FragmentTimeout,
                    },
                }
            };
            direct.set_reader_done();
            let _ = end_tx.send(end);
            std::future::pending::<()>().await
        }
    }

    async fn on_text(&self, text: &str, rate: &mut RateLimit, reply: Reply<'_>) {
        let node = &self.node;
        inc(&node.metrics.messages_in);
        if !rate.allow() {
            inc(&node.metrics.rate_limited);
            self.send_error(ErrorCode::RateLimited, "too many messages per second", None);
            return;
        }
        let sid = &self.session.session_id;
        match decode_client(text) {
            Err(e) => self.send_error(e.code(), &e.to_string(), None),
            Ok(ClientMsg::Echo { id, ts, payload }) => {
                tracing::debug!(session_id = %sid, node_id = %node.node_id, kind = "echo", "Received message");
                let echo = frames::echo(id, ts, payload.as_deref(), &node.node_id);
                if reply.send(&self.sink, Out::Frame(echo)) {
                    inc(&node.metrics.messages_out);
                }
            }
            Ok(ClientMsg::Chat {
                message_id,
                text,
                chunks,
                interval_ms,
            }) => {
                tracing::info!(session_id = %sid, node_id = %node.node_id, kind = "chat", len = text.len(), "Received message");
                Box::pin(self.start_chat(message_id, text, chunks, interval_ms)).await;
            }
            Ok(ClientMsg::Recover {
                message_id,
                last_index,
            }) => {
                tracing::info!(session_id = %sid, node_id = %node.node_id, message_id = %message_id, ?last_index, "Recovery requested");
                let from = last_index.map_or(0, |k| {
                    u32::try_from(k.saturating_add(1)).unwrap_or(if k < 0 { 0 } else { u32::MAX })
                });
                Box::pin(self.recover(message_id.into(), from)).await;
            }
        }
    }

    async fn start_chat(
        &self,
        message_id: Option<String>,
        prompt: String,
        chunks: Option<u32>,
        interval_ms: Option<u64>,
    ) {
        let node = &self.node;
        let limits = node.cfg.stream;
        let chunks = chunks.unwrap_or(limits.chunks);
        if chunks == 0 || chunks > limits.max_chunks {
            let msg = format!("chunks must be between 1 and {}", limits.max_chunks);
            return self.send_error(ErrorCode::BadRequest, &msg, message_id.as_deref());
        }
        let interval = interval_ms.map_or(limits.interval, Duration::from_millis);
        if interval > limits.max_interval {
            let msg = format!(
                "interval_ms must be at most {}",
                limits.max_interval.as_millis()
            );
            return self.send_error(ErrorCode::BadRequest, &msg, message_id.as_deref());
        }
        if self.active_streams.load(Relaxed) >= node.cfg.max_streams_per_conn {
            return self.send_error(
                ErrorCode::RateLimited,
                "too many answers in progress on this connection",
                message_id.as_deref(),
            );
        }
        let Ok(permit) = node.stream_slots.clone().try_acquire_owned() else {
            return self.send_error(
                ErrorCode::Overloaded,
                "node is generating too many answers",
                message_id.as_deref(),
            );
        };
        let message_id: Arc<str> = match message_id {
            Some(id) => id.into(),
            None => new_message_id(&node.node_id, node.next_message_seq.fetch_add(1, Relaxed)),
        };
        let plan = AnswerPlan {
            chunks,
            interval,
            chunk_size: limits.chunk_size,
            prompt: prompt.into(),
        };
        let lease = match node
            .broker
            .open_stream(&self.session, message_id.clone(), &plan)
            .await
        {
            Ok(lease) => lease,
            Err(e) => {
                let (code, msg) = match e {
                    BrokerError::Conflict => (
                        ErrorCode::BadRequest,
                        "message_id already in use".to_string(),
                    ),
                    BrokerError::Unavailable(_) => (ErrorCode::BrokerUnavailable, e.to_string()),
                    BrokerError::Overloaded(_) => (ErrorCode::Overloaded, e.to_string()),
                    _ => (ErrorCode::Internal, e.to_string()),
                };
                return self.send_error(code, &msg, Some(&message_id));
            }
        };
        self.sink.deliver(Out::Frame(frames::ack(&message_id)));
        let active = stream::ActiveGuard::new(self.active_streams.clone());
        stream::start(node, lease, plan, permit, active);
    }

    async fn recover(&self, message_id: Arc<str>, from: u32) {
        inc(&self.node.metrics.recoveries);
        self.sink.deliver(Out::RecoverStart {
            message_id: message_id.clone(),
        });
        // An answer whose node died is continued here first (its chunks
        // then arrive live, after the replay of what was written).
        stream::adopt(&self.node, &message_id).await;
        let result = self
            .node
            .broker
            .read_stream(&self.session, &message_id, from)
            .await;
        self.sink.deliver(replay_or_abort(result, message_id, true));
    }

    // Not `async fn`: rustc keeps an async fn's arguments twice in its
    // future (as captured upvar and as local), which every idle connection
    // pays for; an `async move` block uses them in place.
    #[allow(clippy::manual_async_fn)]
    fn write_loop<'a>(
        &'a self,
        mut wr: WriteHalf<'a>,
        direct: &'a Direct,
        mut rx: OutQueue,
        overflow: &'a Overflow,
        mut end_rx: oneshot::Receiver<End>,
        welcomed: bool,
    ) -> impl Future<Output = End> + Send + 'a {
        async move {
            let cfg = &self.node.cfg;
            let mut shutdown = self.node.shutdown.clone();
            // Created once: re-creating it on every wake showed in profiles.
            let shutdown_requested = shutdown_requested(&mut shutdown);
            tokio::pin!(shutdown_requested);
            // The node's own receiver never marks a value seen: any change is the shutdown.
            let shutdown_moved = || self.node.shutdown.has_changed().unwrap_or(true);
            let mut delivery = Delivery::new(cfg.stream.max_chunks as usize + cfg.outbound_queue);
            if welcomed {
                // A loop wrote it, or queued what it could not write first.
                delivery.skip_welcome();
            }
            // One timer serves both the ping schedule and the idle deadline
            // (the client may have been seen last in a loop, long ago).
            let mut next_ping = Instant::now() + cfg.ping_interval;
            let idle_deadline = self.started
                + Duration::from_millis(self.last_seen_ms.load(Relaxed))
                + cfg.idle_timeout;
            let timer = tokio::time::sleep_until(next_ping.min(idle_deadline));
            tokio::pin!(timer);
            let mut outbox = Outbox::default();
            let end = loop {
                // Checked between writes; a writer stuck inside a write is cut
                // off by `run` instead.
                if overflow.happened() {
                    break End::SlowConsumer;
                }
                // The reader may write replies itself only while this waits.
                direct.set_writer_idle(delivery.welcomed());
                tokio::select! {
                    biased;
                    // Each polled again only when its flag says it may be ready.
                    end = gated(&mut end_rx, || direct.reader_done()) => break end.unwrap_or(End::Broken),
                    _ = gated(shutdown_requested.as_mut(), shutdown_moved) => break End::Shutdown,
                    out = rx.recv() => {
                        // Take everything already queued in this wake-up (bounded by the queue).
                        let mut next = Some(out);
                        let mut overflowed = false;
                        while let Some(out) = next.take() {
                            match delivery.accept(out, &mut |wire| outbox.push(&wire)) {
                                Action::None => {}
                                Action::Overflow => overflowed = true,
                                Action::Refetch { message_id, from } => self.refetch(message_id, from),
                            }
                            if !overflowed {
                                next = rx.try_recv();
                            }
                        }
                        if overflowed {
                            break End::SlowConsumer;
                        }
                    }
                    _ = &mut timer => {
                        let now = Instant::now();
                        let idle_deadline = self.started
                            + Duration::from_millis(self.last_seen_ms.load(Relaxed))
                            + cfg.idle_timeout;
                        if now >= idle_deadline {
                            break End::Idle;
                        }
                        if now >= next_ping {
                            next_ping = now + cfg.ping_interval;
                            outbox.push(&Wire::Ping);
                        }
                        timer.as_mut().reset(next_ping.min(idle_deadline));
                    }
                }
                direct.set_writer_idle(false);
                // One write for everything this wake-up produced. A client
                // that stops reading blocks it; `run` then cuts the
                // connection when its queue overflows.
                if !outbox.is_empty() {
                    match outbox.flush(&mut wr).await {
                        Ok(texts) => {
                            self.node.metrics.messages_out.fetch_add(texts, Relaxed);
                        }
                        Err(_) => break End::Broken,
                    }
                }
            };
            direct.set_writer_idle(false);
            if let Some(code) = end.close_code() {
                // Frames encoded but not written (the loop ended) are dropped:
                // the close frame goes alone, after the end of a reply the
                // reader had begun writing, if any.
                let mut closing = Outbox::default();
                if let Some(rest) = rx.take_rest() {
                    closing.push(&Wire::Raw(rest));
                }
                closing.close(code, end.reason());
                // Boxed: a rare path that should not grow every connection's task.
                let _ = Box::pin(tokio::time::timeout(
                    Duration::from_secs(1),
                    closing.flush(&mut wr),
                ))
                .await;
            }
            end
        }
    }

    /// Heal a gap in a followed stream without bothering the client.
    fn refetch(&self, message_id: Arc<str>, from: u32) {
        let (broker, owner, sink) = (
            self.node.broker.clone(),
            self.session.clone(),
            self.sink.clone(),
        );
        tokio::spawn(async move {
            let result = broker.read_stream(&owner, &message_id, from).await;
            sink.deliver(replay_or_abort(result, message_id, false));
        });
    }
}

/// The socket back from hyper, and the bytes the client sent right behind
/// its handshake, first in the frame reader's buffer (hyper's 8 KiB read
/// buffer they were in is freed here).
fn take_parts(
    parts: hyper::upgrade::Parts<TokioIo<TcpStream>>,
    max: usize,
) -> (TcpStream, FrameBuf) {
    let mut frames = FrameBuf::new(max, Masking::Required);
    frames.seed(&parts.read_buf);
    (parts.io.into_inner(), frames)
}

/// Where the reader writes a reply itself: its half of the socket, and
/// what it must know of the writer.
#[derive(Clone, Copy)]
struct Reply<'a> {
    tcp: &'a TcpStream,
    direct: &'a Direct,
}

impl Reply<'_> {
    /// Returns true when the frame went on the wire here.
    fn send(self, sink: &ConnSink, out: Out) -> bool {
        self.direct.reply(self.tcp, sink, out)
    }
}

fn replay_or_abort(
    result: Result<Replay, BrokerError>,
    message_id: Arc<str>,
    announce: bool,
) -> Out {
    match result {
        Ok(replay) => Out::Replay {
            replay: Box::new(replay),
            announce,
        },
        Err(e) => {
            let code = match e {
                BrokerError::NotFound => ErrorCode::NotFound,
                BrokerError::Unavailable(_) => ErrorCode::BrokerUnavailable,
                _ => ErrorCode::Internal,
            };
            let frame = frames::error(code, e.to_string(), Some(&message_id));
            Out::RecoverAbort(Arc::new(StreamFrame {
                message_id,
                index: 0,
                frame,
            }))
        }
    }
}
