//! The node's side of a message: encoding every message kind it sends
//! (`server::frames`, as the connection and stream code call it), the
//! in-memory broker fanning one chunk out to 1, 100 and 1000 connections
//! of a session, the Redis broker's append+publish script against a
//! redis-server this bench starts (skipped, with a line saying so, when
//! redis-server is not installed), an echo request turned into its reply
//! both ways the node's loops can (decoded and encoded with allocation,
//! or read borrowed and written in place), and a whole echo round trip through a
//! real wsnode on loopback (embedded in this process; one connection with
//! one message in flight, then 8 connections with one each). Throughput is
//! per message, delivery, append or round trip.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use protocol::{ServerMsg, StreamStatus};
use server::broker::memory::{MemoryBroker, MemoryLimits};
use server::broker::{AnswerPlan, AttachRequest, Broker, ConnSink, OutQueue, Owner, StreamLease};
use server::frames;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;
use wsbench_benches::samples::server_msgs;

/// The plan the benched streams are opened with (not generated here).
fn plan() -> AnswerPlan {
    AnswerPlan {
        chunks: 1000,
        interval: Duration::ZERO,
        chunk_size: 32,
        prompt: "bench".into(),
    }
}

/// The benched answer: each stream ends after its plan's chunks, as an
/// answer does, and the next one opens. One endless stream would fill the
/// broker's bounded cache (criterion runs millions of appends on a fast
/// host) and be refused, as the node's would. One append in `per_stream`
/// pays for the rotation.
struct Answer {
    lease: StreamLease,
    /// The index the next chunk appends at.
    next: u32,
    per_stream: u32,
    /// Streams opened so far; the next one's id is `prefix` and this count.
    opened: u64,
    prefix: &'static str,
    done: Bytes,
}

impl Answer {
    /// Stream `{prefix}0`, opened by `owner`.
    fn open<B: Broker>(rt: &Runtime, broker: &B, owner: &Owner, prefix: &'static str) -> Answer {
        let lease = rt
            .block_on(broker.open_stream(owner, Arc::from(format!("{prefix}0")), &plan()))
            .expect("a stream");
        Answer {
            lease,
            next: 0,
            per_stream: plan().chunks,
            opened: 1,
            prefix,
            done: Bytes::from_static(br#"{"type":"done","message_id":"bench","chunks":1000}"#),
        }
    }

    /// Append `chunk` at the next index, ending the stream and opening the
    /// next one first when its plan's chunks are all in.
    fn append<B: Broker>(&mut self, rt: &Runtime, broker: &B, owner: &Owner, chunk: &Bytes) {
        if self.next == self.per_stream {
            rt.block_on(broker.finish_stream(&self.lease, StreamStatus::Done, self.done.clone()))
                .expect("finish");
            let id = Arc::from(format!("{}{}", self.prefix, self.opened));
            self.lease = rt
                .block_on(broker.open_stream(owner, id, &plan()))
                .expect("a stream");
            (self.next, self.opened) = (0, self.opened + 1);
        }
        rt.block_on(broker.append_chunk(&self.lease, self.next, chunk.clone()))
            .expect("append");
        self.next += 1;
    }
}

fn broker_fan_out(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("memory_broker_fan_out");
    for conns in [1u64, 100, 1000] {
        let broker = MemoryBroker::new(MemoryLimits {
            max_sessions: 10,
            max_cached_streams: 10,
            max_cached_bytes: 1 << 30,
            session_ttl: Duration::from_secs(600),
            stream_ttl: Duration::from_secs(600),
            streams_in_welcome: 4,
        });
        let mut queues: Vec<OutQueue> = Vec::new();
        let mut token = None;
        let owner = rt.block_on(async {
            let mut owner = None;
            for id in 0..conns {
                let (sink, queue, _overflow) = ConnSink::new(id, 1 << 20);
                let req = AttachRequest {
                    session_id: Arc::from("bench-session"),
                    token: token.clone(),
                };
                let a = broker.attach(req, sink).await.expect("attach");
                token = Some(a.session.token.clone());
                owner = Some(a.session);
                queues.push(queue);
            }
            owner.expect("a session")
        });
        let mut answer = Answer::open(&rt, &broker, &owner, "m-");
        // The session's welcome frames are not what is measured.
        for q in &mut queues {
            while q.try_recv().is_some() {}
        }
        let chunk = Bytes::from_static(
            br#"{"type":"chunk","message_id":"m-1","index":0,"text":"0123456789abcdef"}"#,
        );
        // What is measured reaches every connection: one append, counted.
        answer.append(&rt, &broker, &owner, &chunk);
        let delivered: usize = queues
            .iter_mut()
            .map(|q| std::iter::from_fn(|| q.try_recv()).count())
            .sum();
        assert_eq!(
            delivered as u64, conns,
            "one chunk reaches every connection"
        );
        g.throughput(Throughput::Elements(conns));
        g.bench_with_input(BenchmarkId::from_parameter(conns), &conns, |b, _| {
            b.iter(|| {
                answer.append(&rt, &broker, &owner, &chunk);
                for q in &mut queues {
                    while q.try_recv().is_some() {}
                }
            })
        });
    }
    g.finish();
}

/// A message encoded the way the node encodes that kind.
fn node_encode(m: &ServerMsg) -> Bytes {
    match m {
        ServerMsg::Echo {
            id,
            ts,
            payload,
            node_id,
        } => frames::echo(*id, *ts, payload.as_deref(), node_id),
        ServerMsg::Chunk {
            message_id,
            index,
            text,
        } => frames::chunk(message_id, *index, text),
        ServerMsg::Ack { message_id } => frames::ack(message_id),
        ServerMsg::Done { message_id, chunks } => {
            frames::end(message_id, StreamStatus::Done, *chunks)
        }
        ServerMsg::Interrupted { message_id, chunks } => {
            frames::end(message_id, StreamStatus::Interrupted, *chunks)
        }
        ServerMsg::Error {
            code,
            message,
            message_id,
        } => frames::error(*code, message.as_str(), message_id.as_deref()),
        ServerMsg::Welcome { .. } | ServerMsg::Recovered { .. } => frames::msg(m),
    }
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_server_msg");
    g.throughput(Throughput::Elements(1));
    for (name, m) in server_msgs() {
        let json = node_encode(&m);
        let back = std::str::from_utf8(&json).ok().map(ServerMsg::from_json);
        assert!(
            matches!(&back, Some(Ok(b)) if *b == m),
            "{name} round-trips"
        );
        g.bench_with_input(BenchmarkId::from_parameter(name), &m, |b, m| {
            b.iter(|| node_encode(black_box(m)))
        });
    }
    g.finish();
}

/// An echo request as loadgen sends it, to its reply's bytes: through
/// `decode_client` and `frames::echo` (owned strings, a new buffer per
/// reply), and through `plain_echo` and `frames::echo_plain_into` (what the
/// connection loops do for the plain form).
fn echo_request_to_reply(c: &mut Criterion) {
    let request =
        r#"{"type":"echo","id":123456,"ts":98765432,"payload":"98765501.xxxxxxxxxxxxxxxx"}"#;
    let node_id = "n1-8081";
    let node_id_json = frames::json_string(node_id);
    let owned = |text: &str| match protocol::decode_client(text) {
        Ok(protocol::ClientMsg::Echo { id, ts, payload }) => {
            frames::echo(id, ts, payload.as_deref(), node_id)
        }
        other => panic!("not an echo: {other:?}"),
    };
    let mut out = Vec::new();
    let plain = protocol::plain_echo(request).expect("the plain form");
    frames::echo_plain_into(&mut out, &plain, &node_id_json);
    assert_eq!(out, owned(request), "both ways give the same reply");
    let mut g = c.benchmark_group("echo_request_to_reply");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_and_encode", |b| {
        b.iter(|| owned(black_box(request)))
    });
    g.bench_function("plain_in_place", |b| {
        b.iter(|| {
            out.clear();
            if let Some(e) = protocol::plain_echo(black_box(request)) {
                frames::echo_plain_into(&mut out, &e, &node_id_json);
            }
            out.len()
        })
    });
    g.finish();
}

fn redis_append(c: &mut Criterion) {
    use server::broker::redis::{RedisBroker, RedisSettings};
    let mut redis = match cluster::RedisServer::start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("redis_append: skipped, no redis-server here ({e})");
            return;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let broker = rt
        .block_on(async {
            RedisBroker::start(RedisSettings {
                url: redis.url(),
                node_id: "bench-node".into(),
                session_ttl: Duration::from_secs(600),
                stream_ttl: Duration::from_secs(600),
                node_ttl: Duration::from_secs(30),
                lease_ttl: Duration::from_secs(60),
                timeout: Duration::from_secs(2),
                max_sessions: 100,
                streams_in_welcome: 4,
                skip_fencing: false,
            })
        })
        .expect("a Redis broker");
    let (sink, mut queue, _overflow) = ConnSink::new(1, 1 << 20);
    let req = AttachRequest {
        session_id: Arc::from("bench-session"),
        token: None,
    };
    let owner = rt.block_on(async {
        // The broker connects in the background: retry the attach briefly.
        let mut attached = None;
        for _ in 0..50 {
            match broker.attach(req.clone(), sink.clone()).await {
                Ok(a) => {
                    attached = Some(a);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        attached.expect("attached through Redis").session
    });
    let mut answer = Answer::open(&rt, &broker, &owner, "m-redis-");
    let chunk = Bytes::from_static(
        br#"{"type":"chunk","message_id":"m-redis-1","index":0,"text":"0123456789abcdef"}"#,
    );
    let mut g = c.benchmark_group("redis_broker_append");
    g.throughput(Throughput::Elements(1));
    g.bench_function("append_and_publish", |b| {
        b.iter(|| {
            answer.append(&rt, &broker, &owner, &chunk);
            while queue.try_recv().is_some() {}
        })
    });
    g.finish();
    rt.block_on(broker.close());
    redis.stop();
}

/// A fastwebsockets client of the node at `addr`, past its welcome.
async fn connect(
    addr: SocketAddr,
    session: &str,
) -> WebSocket<impl AsyncRead + AsyncWrite + Unpin + use<>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let req = hyper::Request::builder()
        .uri(format!("http://{addr}/ws/chat?session_id={session}"))
        .header("Host", addr.to_string())
        .header("Upgrade", "websocket")
        .header("Connection", "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    let (mut ws, _) = fastwebsockets::handshake::client(&Spawn, req, tcp)
        .await
        .expect("upgrade");
    ws.set_auto_pong(true);
    let welcome = ws.read_frame().await.expect("welcome");
    assert_eq!(welcome.opcode, OpCode::Text);
    ws
}

/// Read one frame and check it is the echo reply (not an error).
async fn read_echo<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocket<S>) {
    let reply = ws.read_frame().await.expect("reply");
    assert!(
        reply.opcode == OpCode::Text && reply.payload.starts_with(br#"{"type":"echo","#),
        "an echo reply, not {:?}",
        String::from_utf8_lossy(&reply.payload)
    );
}

fn echo_frame(id: u64) -> Frame<'static> {
    let msg = format!(r#"{{"type":"echo","id":{id},"ts":1,"payload":"0123456789abcdef"}}"#);
    Frame::text(Payload::Owned(msg.into_bytes()))
}

fn echo_round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // No per-connection rate limit: at the default (1,000 messages a
    // second) most replies of this loop would be `rate_limited` errors.
    let config =
        server::embed::config_from_args(["--listen", "127.0.0.1:0", "--max-msg-rate", "0"])
            .expect("config");
    let node = rt
        .block_on(server::embed::EmbeddedNode::start(config))
        .expect("a node");
    let addr = node.addr();
    let mut ws = rt.block_on(connect(addr, "bench"));
    let mut g = c.benchmark_group("wsnode_echo_round_trip");
    g.throughput(Throughput::Elements(1));
    let mut id = 0u64;
    g.bench_function("loopback", |b| {
        b.iter(|| {
            id += 1;
            rt.block_on(async {
                ws.write_frame(echo_frame(id)).await.expect("send");
                read_echo(&mut ws).await;
            })
        })
    });
    // Several connections, one message in flight on each: every send
    // goes out before the first reply is read.
    const CONNS: usize = 8;
    let mut many = rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..CONNS {
            v.push(connect(addr, &format!("bench-{i}")).await);
        }
        v
    });
    g.throughput(Throughput::Elements(CONNS as u64));
    g.bench_function(format!("loopback_{CONNS}_in_flight"), |b| {
        b.iter(|| {
            id += 1;
            rt.block_on(async {
                for ws in &mut many {
                    ws.write_frame(echo_frame(id)).await.expect("send");
                }
                for ws in &mut many {
                    read_echo(ws).await;
                }
            })
        })
    });
    g.finish();
    drop(many);
    drop(ws);
    rt.block_on(node.stop());
}

/// Hands hyper's connection driver to the runtime.
struct Spawn;

impl<F> hyper::rt::Executor<F> for Spawn
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        tokio::spawn(fut);
    }
}

criterion_group!(
    benches,
    encode,
    echo_request_to_reply,
    broker_fan_out,
    redis_append,
    echo_round_trip
);
criterion_main!(benches);
