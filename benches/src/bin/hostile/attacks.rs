//! The hostile clients: raw tokio TCP sockets speaking hand-made HTTP and
//! WebSocket bytes (see `frames`). Each attack keeps its pressure up until
//! told to stop: a client the node closes connects again, paced, so the
//! attack's size holds for the whole measurement. What happened is counted
//! in a [`Tally`] (connections, the close codes the node sent, pongs), the
//! evidence that each of the node's limits did its work.

use crate::frames::{
    self, OP_CONTINUATION, OP_PING, OP_TEXT, client_frame, server_frame, upgrade_request,
    upgrade_response,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep, timeout};

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    /// No attack: the good clients alone (the RSS every cap is added to).
    Baseline,
    Slowloris,
    SlowReaders,
    FragmentFlood,
    Oversized,
    InvalidUtf8,
    PingFlood,
}

/// How big each attack is (checked by the options).
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub slowloris: usize,
    pub slow_readers: usize,
    pub reader_chunks: u32,
    pub reader_interval_ms: u64,
    pub flood_conns: usize,
    pub flood_frame: usize,
    pub flood_rate: u32,
    pub abusers: usize,
    pub abuse_rate: u32,
    pub ping_rate: u32,
}

/// What the attack clients saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub attempts: AtomicU64,
    pub upgraded: AtomicU64,
    /// Connect failures, timeouts and upgrades answered with anything but 101.
    pub failed: AtomicU64,
    pub frames_sent: AtomicU64,
    pub pongs: AtomicU64,
    /// Slowloris: connections open now, at most, and closed by the node.
    pub open: AtomicU64,
    pub peak_open: AtomicU64,
    pub node_closes: AtomicU64,
    pub longest_held_ms: AtomicU64,
    /// Close codes the node sent (0: the socket ended without a close frame).
    pub closes: Mutex<BTreeMap<u16, u64>>,
}

impl Tally {
    fn closed(&self, code: Option<u16>) {
        let mut m = self.closes.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(code.unwrap_or(0)).or_default() += 1;
    }

    pub fn close_codes(&self) -> String {
        let m = self.closes.lock().unwrap_or_else(|e| e.into_inner());
        if m.is_empty() {
            return "none".into();
        }
        m.iter()
            .map(|(code, n)| match code {
                0 => format!("no close frame x{n}"),
                c => format!("{c} x{n}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Start `attack`'s clients on the current runtime; they run until `stop`.
pub fn launch(
    attack: Attack,
    addr: SocketAddr,
    s: Sizes,
    stop: &Arc<AtomicBool>,
    t: &Arc<Tally>,
) -> Vec<JoinHandle<()>> {
    let spawn_n = |n: usize, spread: Duration, f: fn(SocketAddr, Sizes, Ctx) -> Task| {
        (0..n)
            .map(|i| {
                let ctx = Ctx {
                    stop: stop.clone(),
                    t: t.clone(),
                    n,
                };
                let delay = spread.mul_f64(i as f64 / n.max(1) as f64);
                tokio::spawn(async move {
                    sleep(delay).await;
                    f(addr, s, ctx).await
                })
            })
            .collect()
    };
    let two = Duration::from_secs(2);
    match attack {
        Attack::Baseline => Vec::new(),
        Attack::Slowloris => spawn_n(s.slowloris, two, |a, _, c| Box::pin(slowloris(a, c))),
        Attack::SlowReaders => spawn_n(s.slow_readers, two, |a, s, c| {
            Box::pin(slow_reader(a, s, c))
        }),
        Attack::FragmentFlood => spawn_n(s.flood_conns, two, |a, s, c| {
            Box::pin(fragment_flood(a, s, c))
        }),
        Attack::Oversized => spawn_n(s.abusers, two, |a, s, c| Box::pin(oversized(a, s, c))),
        Attack::InvalidUtf8 => spawn_n(s.abusers, two, |a, s, c| Box::pin(invalid_utf8(a, s, c))),
        Attack::PingFlood => spawn_n(1, two, |a, s, c| Box::pin(ping_flood(a, s, c))),
    }
}

type Task = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

struct Ctx {
    stop: Arc<AtomicBool>,
    t: Arc<Tally>,
    /// Clients of this attack (for sharing its rate).
    n: usize,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// This client's share of `per_sec` attempts: the time one attempt takes at least.
    fn pace(&self, per_sec: u32) -> Duration {
        Duration::from_secs_f64(self.n as f64 / f64::from(per_sec.max(1)))
    }
}

/// Connect (with a small receive buffer if asked) and complete the upgrade;
/// returns the socket and any bytes the node sent behind its 101.
async fn open_ws(addr: SocketAddr, rcvbuf: Option<u32>, t: &Tally) -> Option<(TcpStream, Vec<u8>)> {
    t.attempts.fetch_add(1, Relaxed);
    let opened = async {
        let sock = TcpSocket::new_v4().ok()?;
        if let Some(n) = rcvbuf {
            let _ = sock.set_recv_buffer_size(n);
        }
        let mut s = sock.connect(addr).await.ok()?;
        s.write_all(upgrade_request(&addr.to_string()).as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while buf.len() < 16 << 10 {
            let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
            if let Some((end, ok)) = upgrade_response(&buf) {
                return ok.then(|| (s, buf.split_off(end)));
            }
        }
        None
    };
    match timeout(Duration::from_secs(10), opened).await {
        Ok(Some(ws)) => {
            t.upgraded.fetch_add(1, Relaxed);
            Some(ws)
        }
        _ => {
            t.failed.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Read the node's frames until it closes: counts pongs, returns the close
/// code (`None`: the socket ended without a close frame).
async fn drain(mut rd: impl AsyncRead + Unpin, mut buf: Vec<u8>, t: &Tally) -> Option<u16> {
    let mut chunk = vec![0u8; 8192];
    loop {
        loop {
            match server_frame(&buf) {
                Ok(Some(f)) => {
                    buf.drain(..f.len);
                    match f.opcode {
                        frames::OP_PONG => {
                            t.pongs.fetch_add(1, Relaxed);
                        }
                        frames::OP_CLOSE => return Some(f.close_code.unwrap_or(1005)),
                        _ => {}
                    }
                }
                Ok(None) => break,
                Err(_) => return None,
            }
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Run `write` against a connection while draining it; record how the node
/// closed it. `write` returns when writing fails or the attack stops.
async fn abuse<F, Fut>(s: TcpStream, early: Vec<u8>, c: &Ctx, write: F)
where
    F: FnOnce(tokio::net::tcp::OwnedWriteHalf) -> Fut,
    Fut: Future<Output = ()>,
{
    let (rd, wr) = s.into_split();
    let reading = drain(rd, early, &c.t);
    tokio::pin!(reading);
    let code = tokio::select! {
        code = &mut reading => Some(code),
        _ = write(wr) => timeout(Duration::from_secs(2), &mut reading).await.ok(),
    };
    if let Some(code) = code.filter(|_| !c.stopped()) {
        c.t.closed(code);
    }
}

/// Keep one half-open upgrade: the request without its final blank line,
/// then one more header line a second, for as long as the node allows.
async fn slowloris(addr: SocketAddr, c: Ctx) {
    let request = upgrade_request(&addr.to_string());
    let partial = &request.as_bytes()[..request.len() - 2];
    while !c.stopped() {
        c.t.attempts.fetch_add(1, Relaxed);
        let Ok(Ok(mut s)) = timeout(Duration::from_secs(5), TcpStream::connect(addr)).await else {
            c.t.failed.fetch_add(1, Relaxed);
            sleep(Duration::from_millis(200)).await;
            continue;
        };
        if s.write_all(partial).await.is_err() {
            c.t.failed.fetch_add(1, Relaxed);
            continue;
        }
        let open = c.t.open.fetch_add(1, Relaxed) + 1;
        c.t.peak_open.fetch_max(open, Relaxed);
        let since = Instant::now();
        let mut tick = interval(Duration::from_secs(1));
        tick.tick().await;
        let mut buf = [0u8; 512];
        let closed_by_node = loop {
            tokio::select! {
                r = s.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {} // a 408 or similar: the close follows
                },
                _ = tick.tick() => {
                    if c.stopped() {
                        break false;
                    }
                    if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        break true;
                    }
                }
            }
        };
        c.t.open.fetch_sub(1, Relaxed);
        if closed_by_node {
            c.t.node_closes.fetch_add(1, Relaxed);
            let held = since.elapsed().as_millis() as u64;
            c.t.longest_held_ms.fetch_max(held, Relaxed);
            // Refill once a second, like slowloris tools: reconnecting at
            // once would be a connection flood, another attack.
            sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Ask for a long answer with a tiny receive buffer and never read.
async fn slow_reader(addr: SocketAddr, s: Sizes, c: Ctx) {
    let chat = format!(
        r#"{{"type":"chat","text":"never read","chunks":{},"interval_ms":{}}}"#,
        s.reader_chunks, s.reader_interval_ms
    );
    let mut held = None;
    while !c.stopped() {
        if held.is_none() {
            if let Some((mut ws, _)) = open_ws(addr, Some(4096), &c.t).await {
                if ws
                    .write_all(&client_frame(true, OP_TEXT, chat.as_bytes()))
                    .await
                    .is_ok()
                {
                    c.t.frames_sent.fetch_add(1, Relaxed);
                    held = Some(ws);
                    continue;
                }
            }
            sleep(Duration::from_secs(1)).await;
        } else {
            sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Write `frame` `per_sec` times a second in 10 ms batches until writing
/// fails or the attack stops.
async fn paced(mut wr: impl AsyncWrite + Unpin, frame: &[u8], per_sec: u32, c: &Ctx) {
    let per_tick = (per_sec as usize).div_ceil(100).max(1);
    let batch = frame.repeat(per_tick);
    let mut tick = interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sent = 0u64;
    let started = Instant::now();
    while !c.stopped() {
        tick.tick().await;
        // Never ahead of the rate (per_tick is rounded up).
        let due = (started.elapsed().as_secs_f64() * f64::from(per_sec)) as u64;
        if sent >= due {
            continue;
        }
        if wr.write_all(&batch).await.is_err() {
            return;
        }
        sent += per_tick as u64;
        c.t.frames_sent.fetch_add(per_tick as u64, Relaxed);
    }
}

/// A text message started and continued forever, never finished.
async fn fragment_flood(addr: SocketAddr, s: Sizes, c: Ctx) {
    let piece = vec![b'a'; s.flood_frame];
    let first = client_frame(false, OP_TEXT, &piece);
    let more = client_frame(false, OP_CONTINUATION, &piece);
    let per_conn = (s.flood_rate as usize / c.n.max(1)).max(1) as u32;
    let (c, first, more) = (&c, &first, &more);
    while !c.stopped() {
        let Some((ws, early)) = open_ws(addr, None, &c.t).await else {
            sleep(Duration::from_millis(500)).await;
            continue;
        };
        abuse(ws, early, c, |mut wr| async move {
            if wr.write_all(first).await.is_ok() {
                paced(wr, more, per_conn, c).await;
            }
        })
        .await;
    }
}

/// A frame header announcing 1 GiB, then as much of it as the node takes
/// (at most 1 MiB), once per connection.
async fn oversized(addr: SocketAddr, s: Sizes, c: Ctx) {
    let gib = 1u64 << 30;
    let body = frames::masked(&[b'x'; 8192], 0);
    let (c, body) = (&c, &body);
    while !c.stopped() {
        let began = Instant::now();
        if let Some((ws, early)) = open_ws(addr, None, &c.t).await {
            let head = frames::header(true, frames::OP_BINARY, gib);
            abuse(ws, early, c, |mut wr| async move {
                if wr.write_all(&head).await.is_err() {
                    return;
                }
                c.t.frames_sent.fetch_add(1, Relaxed);
                for _ in 0..128 {
                    if c.stopped() || wr.write_all(body).await.is_err() {
                        return;
                    }
                }
                // Everything sent: wait for the node's verdict.
                std::future::pending::<()>().await
            })
            .await;
        }
        sleep(c.pace(s.abuse_rate).saturating_sub(began.elapsed())).await;
    }
}

/// Text that is not UTF-8: in one frame, and split across two.
async fn invalid_utf8(addr: SocketAddr, s: Sizes, c: Ctx) {
    let whole = client_frame(
        true,
        OP_TEXT,
        b"{\"type\":\"echo\",\"id\":1,\"ts\":1,\"payload\":\"\xff\xfe\"}",
    );
    let mut split = client_frame(false, OP_TEXT, &[0xc3]);
    split.extend(client_frame(true, OP_CONTINUATION, b"("));
    let mut odd = false;
    let c = &c;
    while !c.stopped() {
        let began = Instant::now();
        if let Some((ws, early)) = open_ws(addr, None, &c.t).await {
            let bytes = if odd { &split } else { &whole };
            odd = !odd;
            abuse(ws, early, c, |mut wr| async move {
                if wr.write_all(bytes).await.is_ok() {
                    c.t.frames_sent.fetch_add(1, Relaxed);
                    std::future::pending::<()>().await
                }
            })
            .await;
        }
        sleep(c.pace(s.abuse_rate).saturating_sub(began.elapsed())).await;
    }
}

/// One client pinging at `ping_rate` with the largest control payload.
async fn ping_flood(addr: SocketAddr, s: Sizes, c: Ctx) {
    let ping = client_frame(true, OP_PING, &[b'p'; 125]);
    let c = &c;
    while !c.stopped() {
        let Some((ws, early)) = open_ws(addr, None, &c.t).await else {
            sleep(Duration::from_millis(500)).await;
            continue;
        };
        abuse(ws, early, c, |wr| paced(wr, &ping, s.ping_rate, c)).await;
    }
}
