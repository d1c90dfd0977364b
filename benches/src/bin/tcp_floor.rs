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
//! ```sh
//! cargo run --release -p wsbench-benches --bin tcp_floor -- --conns 10000 --rate 10 --duration 20
//! ```

use clap::Parser;
use hdrhistogram::Histogram;
use loadgen::monitor::host::ProcStat;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bytes per message: the intended send time (ns since the schedule's start)
/// and zero padding, about the size of loadgen's echo frame payload.
const MSG: usize = 32;
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
    /// Internal: run as the echo server on this port.
    #[arg(long, hide = true)]
    serve: Option<u16>,
}

fn main() {
    let opts = Opts::parse();
    raise_nofile();
    let result = match opts.serve {
        Some(port) => serve(port).map_err(|e| format!("server: {e}")),
        None => client(&opts),
    };
    if let Err(e) = result {
        eprintln!("tcp_floor: {e}");
        std::process::exit(1);
    }
}

/// CPU time (user + system) of a process so far, from /proc.
fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(
        (ticks(11) + ticks(12)) * 1_000_000 / hz,
    ))
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
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    // The kernel caps it at net.core.somaxconn.
    sock.listen(i32::MAX)?;
    sock.set_nonblocking(true)?;
    Ok(TcpListener::from_std(sock.into()))
}

/// The echo server: one thread, one epoll, every byte read is written back.
fn serve(port: u16) -> std::io::Result<()> {
    let mut listener = listen(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<TcpStream>> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    // The parent closes our stdin when it is done; we then exit.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        std::process::exit(0);
    });
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut s, _)) = listener.accept() {
                    s.set_nodelay(true)?;
                    let t = Token(conns.len());
                    poll.registry().register(&mut s, t, Interest::READABLE)?;
                    conns.push(Some(s));
                }
                continue;
            }
            let Some(Some(s)) = conns.get_mut(ev.token().0) else {
                continue;
            };
            // Edge-triggered: read until the socket is empty.
            let alive = loop {
                match s.read(&mut buf) {
                    Ok(0) => break false,
                    // The client reads everything it is sent, and a reply is
                    // never bigger than what came in, so a short write means
                    // the client is gone or broken: drop it.
                    Ok(n) => {
                        if s.write(&buf[..n]).ok() != Some(n) {
                            break false;
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

struct Conn {
    stream: TcpStream,
    /// Bytes of a message split across reads.
    partial: [u8; MSG],
    have: usize,
    /// Next message due at `start + next * interval + phase`.
    next: u64,
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

fn client(o: &Opts) -> Result<(), String> {
    let port = free_port().map_err(|e| format!("no free port: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let server = ServerChild(
        Command::new(exe)
            .args(["--serve", &port.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?,
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut conns = Vec::with_capacity(o.conns as usize);
    let ready_by = Instant::now() + Duration::from_secs(10);
    for i in 0..o.conns as usize {
        // Blocking connect: on loopback it completes in the kernel, whether
        // or not the server has accepted yet.
        let s = loop {
            match std::net::TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(_) if Instant::now() < ready_by => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(format!("connect {addr}: {e} (after {i} connections)")),
            }
        };
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut stream = TcpStream::from_std(s);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
        conns.push(Conn {
            stream,
            partial: [0; MSG],
            have: 0,
            next: 0,
        });
    }

    let n = conns.len() as u64;
    let interval_ns = 1_000_000_000 / o.rate as u64;
    let warmup_ns = 3_000_000_000u64;
    let end_ns = warmup_ns + o.duration * 1_000_000_000;
    let t0 = Instant::now();
    let due = |i: u64, k: u64| k * interval_ns + i * interval_ns / n;
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| e.to_string())?;
    let (mut sent, mut answered, mut sent_measured) = (0u64, 0u64, 0u64);
    let mut cursor = 0usize;
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let mut cpu_start = None;
    loop {
        let now = t0.elapsed().as_nanos() as u64;
        if now >= end_ns + 2_000_000_000 {
            break;
        }
        if cpu_start.is_none() && now >= warmup_ns {
            cpu_start = Some((
                Instant::now(),
                cpu_time(std::process::id()).map_err(|e| e.to_string())?,
                cpu_time(server.0.id()).map_err(|e| e.to_string())?,
                answered,
                ProcStat::read(),
            ));
        }
        // Connections are due in index order (phase i * interval / n): send
        // for every one whose time has come.
        loop {
            let c = &mut conns[cursor];
            let at = due(cursor as u64, c.next);
            if at > now || at >= end_ns {
                break;
            }
            let mut msg = [0u8; MSG];
            msg[..8].copy_from_slice(&at.to_le_bytes());
            if c.stream.write(&msg).map_err(|e| format!("write: {e}"))? != MSG {
                return Err("short write: the server stopped reading".into());
            }
            sent += 1;
            if at >= warmup_ns {
                sent_measured += 1;
            }
            c.next += 1;
            cursor = (cursor + 1) % conns.len();
        }
        let next_due = due(cursor as u64, conns[cursor].next);
        let wait = Duration::from_nanos(next_due.saturating_sub(now).min(1_000_000));
        poll.poll(&mut events, Some(wait))
            .map_err(|e| e.to_string())?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return Err("the server closed a connection".into()),
                    Ok(len) => {
                        let got = t0.elapsed().as_nanos() as u64;
                        for &b in &buf[..len] {
                            c.partial[c.have] = b;
                            c.have += 1;
                            if c.have == MSG {
                                c.have = 0;
                                let at = u64::from_le_bytes(
                                    c.partial[..8].try_into().unwrap_or_default(),
                                );
                                answered += 1;
                                if at >= warmup_ns {
                                    let _ = hist.record(((got.saturating_sub(at)) / 1000).max(1));
                                }
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
        if now >= end_ns && answered == sent {
            break;
        }
    }
    let Some((t_start, client_cpu0, server_cpu0, answered0, stat0)) = cpu_start else {
        return Err("the run ended before its warm-up did".into());
    };
    let wall = t_start.elapsed().as_secs_f64();
    let client_cpu =
        (cpu_time(std::process::id()).map_err(|e| e.to_string())? - client_cpu0).as_secs_f64();
    let server_cpu =
        (cpu_time(server.0.id()).map_err(|e| e.to_string())? - server_cpu0).as_secs_f64();
    let trips = (answered - answered0).max(1) as f64;
    let per_trip_us = |cpu: f64| cpu * 1e6 / trips;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let machine = stat0
        .zip(ProcStat::read())
        .and_then(|(a, b)| a.split_to(&b, cores as usize));
    let both = per_trip_us(client_cpu) + per_trip_us(server_cpu);
    println!(
        "tcp_floor: {} conns x {} msg/s = {} offered/s; measured {} s after a 3 s warm-up",
        n,
        o.rate,
        n * o.rate as u64,
        o.duration
    );
    println!(
        "  answered {answered} of {sent} sent; {:.0} round trips/s over the measured window",
        trips / wall
    );
    println!(
        "  latency from the intended send time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} measured)",
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
        sent_measured
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
