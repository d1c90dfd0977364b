//! The machine's floor for paced request/reply over loopback TCP.
//!
//! loadgen and wsnode spend most of their CPU in the kernel's loopback TCP
//! path, so before asking how fast they could be, ask how fast *anything*
//! could be here: this program does the same traffic (N connections, each
//! sending a small message R times a second on its own fixed schedule and
//! waiting for it to come back) with nothing else: no WebSocket framing, no
//! JSON, no async runtime, no allocation per message. A single-threaded epoll
//! (mio) echo server runs as a child process and a single-threaded epoll
//! client in this one, like loadgen and its embedded node.
//!
//! It prints the latency from each message's intended send time, the rate
//! achieved, and each side's CPU per round trip, from which the most round
//! trips per second the machine's cores allow follows. Only 127.0.0.1 is
//! contacted; every count and the run time are bounded.
//!
//! With `--ws` both sides speak wsnode's echo protocol over WebSocket
//! instead (`wsbench_benches::floorwire`): the floor of the protocol itself.
//! `--ws-node LOADGEN` puts the real node (`LOADGEN __node`) in the
//! server's place, and `--serve PORT --ws` runs the floor's server alone
//! (until its stdin closes) for loadgen to drive: each of the product's
//! sides measured against the floor's other. `--tokio-client` and
//! `--tokio-server` replace a side's epoll loop with one tokio task per
//! connection (`wsbench_benches::floortokio`): what the runtime itself costs.
//! `--uring-client` puts the client on io_uring instead of epoll
//! (`wsbench_benches::flooruring`): what batching the system calls saves.
//!
//! ```sh
//! cargo run --release -p wsbench-benches --bin tcp_floor -- --conns 10000 --rate 10 --duration 20
//! cargo run --release -p wsbench-benches --bin tcp_floor -- --conns 6000 --ws
//! ```

use clap::Parser;
use loadgen::monitor::host::ProcStat;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wsbench_benches::floorrun::{Outcome, Schedule, cpu_time};
use wsbench_benches::floorwire::{MaskKeys, Rx, ServerConn, Wire};
use wsbench_benches::{floortokio, flooruring};

const LISTENER: Token = Token(usize::MAX);

#[derive(Parser, Debug)]
#[command(
    about = "Floor of paced request/reply over loopback TCP on this machine (no WebSocket, no JSON)"
)]
struct Opts {
    /// Connections. Example: --conns 10000
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=19_000))]
    conns: u32,
    /// Messages per second per connection. Example: --rate 10
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    rate: u32,
    /// Seconds measured, after a 3 s warm-up. Example: --duration 20
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: u64,
    /// Speak wsnode's echo protocol over WebSocket (masked JSON text
    /// frames, the node's decoder and encoder) instead of bare 32-byte messages.
    #[arg(long)]
    ws: bool,
    /// With --ws: drive this loadgen binary's embedded node (`LOADGEN
    /// __node`) instead of the floor's own server. Example: --ws-node target/release/loadgen
    #[arg(long, requires = "ws", value_name = "LOADGEN")]
    ws_node: Option<PathBuf>,
    /// The client is one tokio task per connection on a current-thread
    /// runtime, instead of one epoll loop.
    #[arg(long)]
    tokio_client: bool,
    /// The client is one io_uring loop (sends and receives batched into
    /// one system call per turn, sockets registered) instead of epoll.
    #[arg(long, conflicts_with = "tokio_client")]
    uring_client: bool,
    /// The server is one tokio task per connection on a runtime with a
    /// worker per core, instead of one epoll loop.
    #[arg(long, conflicts_with = "ws_node")]
    tokio_server: bool,
    /// Run only the echo server, on 127.0.0.1:PORT, until stdin closes
    /// (with --ws, for loadgen to drive: `loadgen --url ws://127.0.0.1:PORT/ws/chat`).
    #[arg(long, value_name = "PORT")]
    serve: Option<u16>,
    /// Pin the client's loop and the server's loop to CPU N: both ends of
    /// every connection on one core, no wake-up across CPUs. One such run
    /// per CPU at once is the floor in the placement `loadgen --pin` gives
    /// each connection (floor_compare --pin; docs/BENCHMARKS.md,
    /// "Placement"). With --ws-node, the client only. Example: --cpu 0
    #[arg(long, value_name = "N")]
    cpu: Option<usize>,
}

fn main() {
    let opts = Opts::parse();
    raise_nofile();
    let wire = if opts.ws { Wire::Ws } else { Wire::Bare };
    if let Some(cpu) = opts.cpu
        && let Err(e) = server::placement::pin_current(cpu)
    {
        eprintln!("tcp_floor: --cpu {cpu}: {e}");
        std::process::exit(1);
    }
    let result = match opts.serve {
        Some(port) => serve(port, wire, opts.tokio_server).map_err(|e| format!("server: {e}")),
        None => client(&opts),
    };
    if let Err(e) = result {
        eprintln!("tcp_floor: {e}");
        std::process::exit(1);
    }
}

fn raise_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// A listener with the longest accept queue the system allows. With mio's
/// 1,024, a few of thousands of back-to-back connects overflowed it while
/// the server was descheduled, and each such connect waited a whole second
/// for its SYN to be sent again: 2,000 connections took 6-12 s to open
/// (`nstat`: TcpExtListenOverflows).
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    // The kernel caps it at net.core.somaxconn.
    sock.listen(i32::MAX)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// The echo server: bare, every byte read is written back; over
/// WebSocket, every echo is answered as wsnode does. One epoll loop, or
/// with `tokio` a task per connection.
fn serve(port: u16, wire: Wire, tokio: bool) -> std::io::Result<()> {
    let listener = listen(SocketAddr::from(([127, 0, 0, 1], port)))?;
    // The parent closes our stdin when it is done; we then exit.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        std::process::exit(0);
    });
    if tokio {
        return floortokio::serve(listener, wire);
    }
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<(TcpStream, ServerConn)>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut s, _)) = listener.accept() {
                    s.set_nodelay(true)?;
                    let t = Token(conns.len());
                    poll.registry().register(&mut s, t, Interest::READABLE)?;
                    conns.push(Some((s, ServerConn::new(wire))));
                }
                continue;
            }
            let Some(Some((s, sc))) = conns.get_mut(ev.token().0) else {
                continue;
            };
            // Edge-triggered: read until the socket is empty. A read that
            // did not fill its room took all there was (new bytes bring a
            // new edge), so no read is spent on EAGAIN: loadgen and wsnode
            // read the same way, and the floor must not do work they skip.
            let alive = loop {
                let room = sc.spare(&mut buf);
                let want = room.len();
                match s.read(room) {
                    Ok(0) => break false,
                    // The client reads everything it is sent, and a reply is
                    // about as big as what came in, so a short write means
                    // the client is gone or broken: drop it.
                    Ok(n) => {
                        out.clear();
                        if sc.filled(&buf, n, &mut out).is_err()
                            || s.write(&out).ok() != Some(out.len())
                        {
                            break false;
                        }
                        if n < want {
                            break true;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break false,
                }
            };
            if !alive {
                conns[ev.token().0] = None;
            }
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server this run drives, started as a child process.
fn start_server(o: &Opts, port: u16) -> Result<ServerChild, String> {
    let mut cmd = match &o.ws_node {
        // The node as loadgen embeds it, quiet as loadgen starts it.
        Some(loadgen) => {
            let mut c = Command::new(loadgen);
            c.args(["__node", "--listen", &format!("127.0.0.1:{port}")])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null());
            c
        }
        None => {
            let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.args(["--serve", &port.to_string()]);
            if o.ws {
                c.arg("--ws");
            }
            if o.tokio_server {
                c.arg("--tokio-server");
            }
            if let Some(cpu) = o.cpu {
                c.args(["--cpu", &cpu.to_string()]);
            }
            c
        }
    };
    Ok(ServerChild(
        cmd.stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?,
    ))
}

/// Open every connection (blocking; on loopback a connect completes in the
/// kernel whether or not the server has accepted yet) and its handshake;
/// each with the bytes its handshake read past its end.
fn connect_all(
    addr: SocketAddr,
    n: u32,
    wire: Wire,
) -> Result<Vec<(std::net::TcpStream, Vec<u8>)>, String> {
    let mut conns = Vec::with_capacity(n as usize);
    let ready_by = Instant::now() + Duration::from_secs(10);
    for i in 0..n as usize {
        let mut s = loop {
            match std::net::TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(_) if Instant::now() < ready_by => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(format!("connect {addr}: {e} (after {i} connections)")),
            }
        };
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let leftover = wire
            .handshake(&mut s, i)
            .map_err(|e| format!("connection {i}: {e}"))?;
        conns.push((s, leftover));
    }
    Ok(conns)
}

fn client(o: &Opts) -> Result<(), String> {
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let wire = if o.ws { Wire::Ws } else { Wire::Bare };
    let server = start_server(o, port)?;
    let conns = connect_all(SocketAddr::from(([127, 0, 0, 1], port)), o.conns, wire)?;
    let sched = Schedule::new(conns.len() as u64, o.rate, o.duration);
    let outcome = if o.tokio_client {
        floortokio::drive(conns, wire, sched, server.0.id())?
    } else if o.uring_client {
        flooruring::drive(conns, wire, sched, server.0.id())?
    } else {
        drive(conns, wire, sched, server.0.id())?
    };
    report(o, &sched, outcome, server.0.id())
}

struct Conn {
    stream: TcpStream,
    /// Replies read so far.
    rx: Rx,
    /// Next message due at `start + next * interval + phase`.
    next: u64,
}

/// The epoll client: connections are due in index order (phase
/// i * interval / n), so one cursor walks them; replies are read as epoll
/// reports them.
fn drive(
    streams: Vec<(std::net::TcpStream, Vec<u8>)>,
    wire: Wire,
    sched: Schedule,
    server_pid: u32,
) -> Result<Outcome, String> {
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut conns = Vec::with_capacity(streams.len());
    for (i, (s, leftover)) in streams.into_iter().enumerate() {
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut stream = TcpStream::from_std(s);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
        conns.push(Conn {
            stream,
            rx: wire.rx(&leftover),
            next: 0,
        });
    }
    let mut out = Outcome::new()?;
    let t0 = Instant::now();
    let mut cursor = 0usize;
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let (mut msg, mut ctl) = (Vec::with_capacity(256), Vec::new());
    let mut keys = MaskKeys::new(0x9e37_79b9_7f4a_7c15);
    loop {
        let now = t0.elapsed().as_nanos() as u64;
        if now >= sched.give_up_ns() {
            break;
        }
        out.window_at(&sched, now, server_pid)?;
        // Send for every connection whose time has come.
        while let Some(at) = sched.due_now(cursor, conns[cursor].next, now) {
            let c = &mut conns[cursor];
            wire.message(c.next, at, now, keys.next_key(), &mut msg);
            if c.stream.write(&msg).map_err(|e| format!("write: {e}"))? != msg.len() {
                return Err("short write: the server stopped reading".into());
            }
            out.sent(&sched, at);
            c.next += 1;
            cursor = (cursor + 1) % conns.len();
        }
        let next_due = sched.due(cursor as u64, conns[cursor].next);
        let wait = Duration::from_nanos(next_due.saturating_sub(now).min(1_000_000));
        poll.poll(&mut events, Some(wait))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            loop {
                let room = c.rx.spare(&mut buf);
                let want = room.len();
                match c.stream.read(room) {
                    Ok(0) => return Err("the server closed a connection".into()),
                    Ok(len) => {
                        let got = t0.elapsed().as_nanos() as u64;
                        c.rx.filled(&buf, len, &mut ctl, |at| out.answered(&sched, at, got))?;
                        if !ctl.is_empty() {
                            c.stream
                                .write_all(&ctl)
                                .map_err(|e| format!("write: {e}"))?;
                            ctl.clear();
                        }
                        // A short read drained the socket (as on the server).
                        if len < want {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
        if now >= sched.end_ns && out.answered == out.sent {
            break;
        }
    }
    Ok(out)
}

fn report(o: &Opts, sched: &Schedule, out: Outcome, server_pid: u32) -> Result<(), String> {
    let Some(w) = out.window else {
        return Err("the run ended before its warm-up did".into());
    };
    let wall = w.at.elapsed().as_secs_f64();
    let client_cpu =
        (cpu_time(std::process::id()).map_err(|e| e.to_string())? - w.client_cpu).as_secs_f64();
    let server_cpu =
        (cpu_time(server_pid).map_err(|e| e.to_string())? - w.server_cpu).as_secs_f64();
    let trips = (out.answered - w.answered).max(1) as f64;
    let per_trip_us = |cpu: f64| cpu * 1e6 / trips;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let machine = w
        .stat
        .zip(ProcStat::read())
        .and_then(|(a, b)| a.split_to(&b, cores as usize));
    let both = per_trip_us(client_cpu) + per_trip_us(server_cpu);
    let mut what = Vec::new();
    if o.ws {
        what.push(if o.ws_node.is_some() {
            "WebSocket + JSON, against wsnode"
        } else {
            "WebSocket + JSON"
        });
    }
    if o.tokio_client {
        what.push("tokio client");
    }
    if o.tokio_server {
        what.push("tokio server");
    }
    let what = if what.is_empty() {
        String::new()
    } else {
        format!(" ({})", what.join(", "))
    };
    println!(
        "tcp_floor{what}: {} conns x {} msg/s = {} offered/s; measured {} s after a 3 s warm-up",
        sched.conns,
        o.rate,
        sched.conns * o.rate as u64,
        o.duration
    );
    // Replies to the messages due in the measured window, per second of
    // it: never more than offered, even when a run that fell behind
    // answers its backlog in a burst.
    println!(
        "  answered {} of {} sent; {:.0} round trips/s over the measured window",
        out.answered,
        out.sent,
        out.hist.len() as f64 / o.duration as f64
    );
    println!(
        "  latency from the intended send time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} measured)",
        out.hist.value_at_quantile(0.5) as f64 / 1000.0,
        out.hist.value_at_quantile(0.99) as f64 / 1000.0,
        out.hist.max() as f64 / 1000.0,
        out.sent_measured
    );
    println!(
        "  CPU: client {:.0}% ({:.1} us per round trip), server {:.0}% ({:.1} us per round trip)",
        client_cpu * 100.0 / wall,
        per_trip_us(client_cpu),
        server_cpu * 100.0 / wall,
        per_trip_us(server_cpu)
    );
    println!(
        "  both sides: {both:.1} us of CPU per round trip; {cores:.0} cores allow at most {:.0} round trips/s at this cost",
        cores * 1e6 / both
    );
    // The whole machine over the same window: softirq work done by
    // ksoftirqd is charged to neither side above.
    if let Some(m) = machine {
        println!(
            "  machine: {m}; {:.1} us per round trip, every process and the kernel together",
            m.busy / 100.0 * wall * 1e6 / trips
        );
    }
    Ok(())
}
