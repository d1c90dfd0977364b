//! Test servers for loadgen's integration tests.
//!
//! A small WebSocket server whose misbehaviour is chosen per test (fixed
//! reply delay, a busy core that a connection storm slows, one global
//! stall, garbage, silence, dropped connections, a
//! byte-for-byte raw echo, or no WebSocket at all), plus an in-process wsnode.
//! Each runs on its own runtime bound to 127.0.0.1:0 and stops on drop.

#![allow(dead_code)]

pub mod local;
pub mod scrape;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use protocol::{ClientMsg, ServerMsg};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy)]
pub enum Behavior {
    /// Speak the node protocol; every reply leaves `delay` after its request.
    Echo { delay: Duration },
    /// Like Echo, on a server with one busy core: every WebSocket handshake
    /// holds it for `handshake`, one at a time, and no reply leaves while a
    /// handshake holds it. A connection storm slows the handshakes queued
    /// behind each other and every reply due meanwhile; then replies leave
    /// `delay` after their request again.
    Busy {
        delay: Duration,
        handshake: Duration,
    },
    /// Like Echo with no delay, but once, `at` after the first message,
    /// hold every reply for `stall`.
    StallOnce { at: Duration, stall: Duration },
    /// Welcome, then answer every message with garbage.
    Garbage,
    /// Welcome, then never answer.
    Silent,
    /// Answer normally until `after` (since the first message), then go silent.
    SilentAfter { after: Duration },
    /// Answer `n` messages per connection, then drop the TCP connection.
    DropAfter { n: u64 },
    /// Like RawEcho (no welcome, frames echoed byte for byte: little work
    /// per request), from a server that does one request at a time: every
    /// request of every connection waits in one queue, and each takes
    /// `service` to serve, so it holds up to 1 / `service` requests per
    /// second and queues (latency grows without bound) above that.
    Queue { service: Duration },
    /// No welcome; echo every frame byte for byte (a plain echo server).
    RawEcho,
    /// Plain HTTP 200 to everything: not a WebSocket server.
    NotWebSocket,
    /// Welcome, then never read again: the client's writes back up.
    Deaf,
    /// Like Echo with no delay, plus a WebSocket ping (payload `hb`) every
    /// `every`; pongs carrying it back are counted (`TestServer::pongs`).
    Pinging { every: Duration },
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// Messages the server received.
    pub received: Arc<AtomicU64>,
    /// Pongs that carried a `Pinging` server's ping payload back.
    pub pongs: Arc<AtomicU64>,
    /// Distinct addresses of WebSocket clients seen.
    pub peers: Arc<Mutex<Vec<std::net::IpAddr>>>,
    /// When the server wrote its latest reply, and when each WebSocket
    /// connection that sent a message ended (a close frame or end of stream read).
    pub times: Arc<Times>,
    rt: Option<tokio::runtime::Runtime>,
}

#[derive(Default)]
pub struct Times {
    pub last_reply: Mutex<Option<Instant>>,
    pub closed: Mutex<Vec<Instant>>,
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The accounting identity every run keeps: each message sent ends as
/// received, timed out, lost or in flight.
pub fn assert_balanced(r: &loadgen::report::model::Report) {
    let m = &r.messages;
    assert_eq!(
        m.sent,
        m.received + m.timeouts + m.lost + m.in_flight,
        "accounting identity: {m:?}"
    );
}

/// A reply due at an instant; `None` drops the connection instead.
type Due = (Instant, Option<(OpCode, Vec<u8>)>);

/// A request waiting for the one server of `Queue`: when it arrived, its
/// reply frame, and where the reply goes.
type Job = (Instant, (OpCode, Vec<u8>), mpsc::Sender<Due>);

struct Shared {
    behavior: Behavior,
    first_msg: Mutex<Option<Instant>>,
    stall_until: Mutex<Option<Instant>>,
    received: Arc<AtomicU64>,
    pongs: Arc<AtomicU64>,
    times: Arc<Times>,
    /// The one core of `Busy` (fair: taken in the order asked for).
    core: tokio::sync::Mutex<()>,
    /// The queue in front of `Queue`'s one server.
    jobs: Option<mpsc::Sender<Job>>,
}

pub fn start(behavior: Behavior) -> TestServer {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = Arc::new(AtomicU64::new(0));
    let pongs = Arc::new(AtomicU64::new(0));
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    let jobs = match behavior {
        Behavior::Queue { service } => {
            let (tx, rx) = mpsc::channel(100_000);
            rt.spawn(serve_queue(rx, service));
            Some(tx)
        }
        _ => None,
    };
    let times = Arc::new(Times::default());
    let shared = Arc::new(Shared {
        behavior,
        first_msg: Mutex::new(None),
        stall_until: Mutex::new(None),
        received: received.clone(),
        pongs: pongs.clone(),
        times: times.clone(),
        core: tokio::sync::Mutex::new(()),
        jobs,
    });
    rt.spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };

            let _ = tcp.set_nodelay(true);
            let shared = shared.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    // Record WebSocket clients only (not /health/stats lookups).
                    if fastwebsockets::upgrade::is_upgrade_request(&req) {
                        let mut s = seen.lock().unwrap();
                        if !s.contains(&peer.ip()) {
                            s.push(peer.ip());
                        }
                    }
                    handle(shared.clone(), req)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    TestServer {
        addr,
        received,
        pongs,
        peers,
        times,
        rt: Some(rt),
    }
}

/// `Queue`'s one server: each request takes `service`, one after the
/// other. Its schedule keeps time (a late wake-up is caught up on the next
/// request), so it serves exactly 1 / `service` a second while busy; a
/// request whose connection has gone is skipped without cost.
async fn serve_queue(mut jobs: mpsc::Receiver<Job>, service: Duration) {
    let mut free = Instant::now();
    while let Some((arrived, reply, out)) = jobs.recv().await {
        if out.is_closed() {
            continue;
        }
        free = free.max(arrived) + service;
        if free > Instant::now() {
            tokio::time::sleep_until(free.into()).await;
        }
        let _ = out.try_send((Instant::now(), Some(reply)));
    }
}

async fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, std::convert::Infallible> {
    if matches!(shared.behavior, Behavior::NotWebSocket)
        || !fastwebsockets::upgrade::is_upgrade_request(&req)
    {
        return Ok(Response::new(Empty::new()));
    }
    let session = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("session_id=")))
        .unwrap_or("anon")
        .to_string();
    if let Behavior::Busy { handshake, .. } = shared.behavior {
        let _core = shared.core.lock().await;
        tokio::time::sleep(handshake).await;
    }
    let Ok((resp, fut)) = fastwebsockets::upgrade::upgrade(&mut req) else {
        return Ok(Response::new(Empty::new()));
    };
    tokio::spawn(async move {
        if let Ok(ws) = fut.await {
            serve_ws(shared, ws, session).await;
        }
    });
    Ok(resp)
}

async fn serve_ws(
    shared: Arc<Shared>,
    mut ws: fastwebsockets::WebSocket<TokioIo<hyper::upgrade::Upgraded>>,
    session: String,
) {
    ws.set_auto_close(true);
    if !matches!(shared.behavior, Behavior::RawEcho | Behavior::Queue { .. }) {
        let welcome = ServerMsg::Welcome {
            session_id: session,
            node_id: "test".into(),
            token: "tok".into(),
            streams: vec![],
        }
        .to_json();
        if ws
            .write_frame(Frame::text(Payload::Owned(welcome.into_bytes())))
            .await
            .is_err()
        {
            return;
        }
    }
    if matches!(shared.behavior, Behavior::Deaf) {
        // Hold the connection without reading until the server stops.
        let _ws = ws;
        return std::future::pending().await;
    }
    let (mut rx, mut tx) = ws.split(tokio::io::split);
    // Replies leave in order from one writer task, each at its due time.
    let (out, mut due) = mpsc::channel::<Due>(4096);
    let writer_shared = shared.clone();
    let ping_every = match shared.behavior {
        Behavior::Pinging { every } => every,
        _ => Duration::from_secs(3600),
    };
    let writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(ping_every);
        ping.tick().await;
        loop {
            let next = tokio::select! {
                d = due.recv() => d,
                _ = ping.tick() => {
                    let f = Frame::new(true, OpCode::Ping, None, Payload::Borrowed(b"hb"));
                    if tx.write_frame(f).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let Some((at, frame)) = next else {
                break;
            };
            let stall = *writer_shared.stall_until.lock().unwrap();
            let at = stall.map_or(at, |s| s.max(at));
            tokio::time::sleep_until(at.into()).await;
            if matches!(writer_shared.behavior, Behavior::Busy { .. }) {
                // Wait for the handshakes queued before this reply.
                drop(writer_shared.core.lock().await);
            }
            let Some((op, data)) = frame else {
                // Drop the connection abruptly.
                return;
            };
            let f = Frame::new(true, op, None, Payload::Owned(data));
            *writer_shared.times.last_reply.lock().unwrap() = Some(Instant::now());
            if tx.write_frame(f).await.is_err() {
                return;
            }
        }
    });
    let mut count = 0u64;
    let mut ignore = |_f: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
    'read: loop {
        let Ok(frame) = rx.read_frame(&mut ignore).await else {
            break;
        };
        if !matches!(frame.opcode, OpCode::Text | OpCode::Binary) {
            if frame.opcode == OpCode::Close {
                break;
            }
            if frame.opcode == OpCode::Pong && &frame.payload[..] == b"hb" {
                shared.pongs.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        shared.received.fetch_add(1, Ordering::Relaxed);
        count += 1;
        let now = Instant::now();
        let first = *shared.first_msg.lock().unwrap().get_or_insert(now);
        let data = frame.payload.to_vec();
        if let Some(jobs) = &shared.jobs {
            if jobs
                .send((now, (frame.opcode, data), out.clone()))
                .await
                .is_err()
            {
                break 'read;
            }
            continue;
        }
        let reply: Vec<Due> = match shared.behavior {
            Behavior::Echo { delay } | Behavior::Busy { delay, .. } => replies(&data)
                .into_iter()
                .map(|r| (now + delay, Some((OpCode::Text, r))))
                .collect(),
            Behavior::Pinging { .. } => replies(&data)
                .into_iter()
                .map(|r| (now, Some((OpCode::Text, r))))
                .collect(),
            Behavior::StallOnce { at, stall } => {
                if now >= first + at {
                    let mut s = shared.stall_until.lock().unwrap();
                    if s.is_none() {
                        *s = Some(now + stall);
                    }
                }
                replies(&data)
                    .into_iter()
                    .map(|r| (now, Some((OpCode::Text, r))))
                    .collect()
            }
            Behavior::Garbage => vec![
                (now, Some((OpCode::Text, b"}{ not json \x01".to_vec()))),
                (now, Some((OpCode::Binary, vec![0xff, 0x00, 0xfe]))),
                (
                    now,
                    Some((OpCode::Text, br#"{"type":"echo","id":"x"}"#.to_vec())),
                ),
            ],
            Behavior::Silent => vec![],
            Behavior::SilentAfter { after } => {
                if now < first + after {
                    replies(&data)
                        .into_iter()
                        .map(|r| (now, Some((OpCode::Text, r))))
                        .collect()
                } else {
                    vec![]
                }
            }
            Behavior::DropAfter { n } => {
                if count > n {
                    vec![(now, None)]
                } else {
                    replies(&data)
                        .into_iter()
                        .map(|r| (now, Some((OpCode::Text, r))))
                        .collect()
                }
            }
            Behavior::RawEcho => vec![(now, Some((frame.opcode, data)))],
            Behavior::NotWebSocket | Behavior::Queue { .. } | Behavior::Deaf => vec![],
        };
        for r in reply {
            let drop_now = r.1.is_none();
            if out.send(r).await.is_err() || drop_now {
                break 'read;
            }
        }
    }
    if count > 0 {
        shared.times.closed.lock().unwrap().push(Instant::now());
    }
    drop(out);
    if shared.jobs.is_some() {
        // Its queued requests are skipped once nothing can take the replies.
        writer.abort();
    }
    let _ = writer.await;
}

/// What the node would answer: echo back, or ack + 3 chunks + done.
fn replies(data: &[u8]) -> Vec<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(data) else {
        return vec![];
    };
    match protocol::decode_client(text) {
        Ok(ClientMsg::Echo { id, ts, payload }) => vec![
            ServerMsg::Echo {
                id,
                ts,
                payload,
                node_id: "test".into(),
            }
            .to_json()
            .into_bytes(),
        ],
        Ok(ClientMsg::Chat {
            message_id, chunks, ..
        }) => {
            let id = message_id.unwrap_or_else(|| "m".into());
            let n = chunks.unwrap_or(3);
            let mut v = vec![
                ServerMsg::Ack {
                    message_id: id.clone(),
                }
                .to_json()
                .into_bytes(),
            ];
            for i in 0..n {
                v.push(
                    ServerMsg::Chunk {
                        message_id: id.clone(),
                        index: i,
                        text: protocol::chunk::chunk_text(&id, i, 12),
                    }
                    .to_json()
                    .into_bytes(),
                );
            }
            v.push(
                ServerMsg::Done {
                    message_id: id,
                    chunks: n,
                }
                .to_json()
                .into_bytes(),
            );
            v
        }
        _ => vec![],
    }
}

/// A plain echo server built on tokio-tungstenite (another WebSocket
/// implementation than loadgen's): every text or binary message comes back
/// unchanged.
pub fn start_tungstenite_echo() -> TestServer {
    use futures_util::{SinkExt, StreamExt};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        count.fetch_add(1, Ordering::Relaxed);
                        if ws.send(msg).await.is_err() {
                            break;
                        }
                    } else if msg.is_close() {
                        break;
                    }
                }
            });
        }
    });
    TestServer {
        addr,
        received,
        pongs: Default::default(),
        peers: Default::default(),
        times: Default::default(),
        rt: Some(rt),
    }
}

/// A real wsnode, in-process, on 127.0.0.1:0, on a thread and runtime of
/// its own ([`server::embed::EmbeddedNode::start_blocking`]); stopped on drop.
pub struct Node {
    pub addr: SocketAddr,
    _node: server::embed::BlockingNode,
}

impl Node {
    pub fn url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }
}

pub fn start_wsnode(args: &[&str]) -> Node {
    let argv = ["--listen", "127.0.0.1:0"].iter().chain(args.iter());
    let config = server::embed::config_from_args(argv.copied()).expect("node config");
    let node = server::embed::EmbeddedNode::start_blocking(config).expect("start node");
    Node {
        addr: node.addr(),
        _node: node,
    }
}

/// A port with nothing listening on it.
pub fn dead_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

/// A TCP proxy in front of `upstream` that can cut every connection through
/// it at once (a network blip, a load balancer reload), while the server
/// behind it keeps running. Plain threads; stops accepting on drop.
pub struct CutProxy {
    pub addr: SocketAddr,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl CutProxy {
    pub fn start(upstream: SocketAddr) -> CutProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (open2, stop2) = (open.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let mut all = open2.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                all.push(client);
                all.push(server);
            }
        });
        CutProxy { addr, open, stop }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// Close every connection through the proxy; new ones still pass.
    pub fn cut(&self) -> usize {
        let mut all = self.open.lock().unwrap();
        for s in all.iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        let n = all.len() / 2;
        all.clear();
        n
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
        // Wake the accept loop so it sees the stop flag.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}
