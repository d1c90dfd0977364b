//! Hostile clients against one wsnode, measured (issue 12): while 1,000
//! well-behaved loadgen clients echo at 10/s, one attack at a time runs
//! from raw TCP sockets in this process, and the node's RSS is sampled
//! every 200 ms. Each row says how big the attack was, what the node
//! answered (close codes, closes), the node's peak RSS against a cap
//! derived from its documented limits (`server::Config`, the same defaults
//! the node runs with), and the good clients' p99 against 50 ms.
//!
//! Every row gets a fresh wsnode process (so one attack's leftovers do not
//! count against the next); the baseline row (no attack) always runs first,
//! and every cap is the baseline's peak plus what the attack may add.
//! Only 127.0.0.1 is contacted; every attack is bounded in size and time.
//!
//! ```sh
//! cargo build --release -p server -p loadgen -p wsbench-benches --bins
//! ulimit -n 20000; target/release/hostile --duration 20
//! ```

mod attacks;
mod frames;
mod node;

#[path = "../../beside.rs"]
mod beside;
use attacks::{Attack, Sizes, Tally};
use beside::beside;
use clap::Parser;
use node::{Good, Node, RssSampler};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Hostile clients against a wsnode while 1,000 good clients measure p99")]
struct Opts {
    /// Attacks to run, comma-separated; the baseline always runs first.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "slowloris,slow-readers,fragment-flood,oversized,invalid-utf8,ping-flood"
    )]
    attacks: Vec<Attack>,
    /// Well-behaved loadgen connections.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    good_conns: u32,
    /// Echo messages per second per good connection.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    rate: u32,
    /// Seconds of loadgen per row (its steady phase is graded).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(5..=300))]
    duration: u64,
    /// The good clients' p99 bound, in milliseconds.
    #[arg(long, default_value_t = 50.0)]
    p99_ms: f64,
    /// Half-open handshakes held at once (slowloris).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    slowloris: u64,
    /// Connections that ask for an answer and never read.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=5000))]
    slow_readers: u64,
    /// Chunks each slow reader asks for (at most the node's --max-chunks, 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    reader_chunks: u32,
    /// Milliseconds between the chunks a slow reader asks for.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    reader_interval_ms: u64,
    /// Connections sending continuation frames without FIN.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    flood_conns: u64,
    /// Payload bytes per continuation frame (0 is allowed: never reaches the size limit).
    #[arg(long, default_value_t = 125, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    flood_frame: u64,
    /// Continuation frames per second, all flood connections together.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    flood_rate: u32,
    /// Concurrent clients of the oversized-frame and invalid-UTF-8 attacks.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    abusers: u64,
    /// New connections per second of those two attacks, all clients together.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
    abuse_rate: u32,
    /// Pings per second from the one ping-flood client.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    ping_rate: u32,
    /// The wsnode binary [default: the one beside this program].
    #[arg(long)]
    wsnode: Option<PathBuf>,
    /// The loadgen binary [default: the one beside this program].
    #[arg(long)]
    loadgen: Option<PathBuf>,
}

impl Opts {
    fn sizes(&self) -> Sizes {
        Sizes {
            slowloris: self.slowloris as usize,
            slow_readers: self.slow_readers as usize,
            reader_chunks: self.reader_chunks,
            reader_interval_ms: self.reader_interval_ms,
            flood_conns: self.flood_conns as usize,
            flood_frame: self.flood_frame as usize,
            flood_rate: self.flood_rate,
            abusers: self.abusers as usize,
            abuse_rate: self.abuse_rate,
            ping_rate: self.ping_rate,
        }
    }
}

/// One measured row.
#[derive(Debug, Clone)]
struct Row {
    attack: Attack,
    size: String,
    answer: String,
    peak_rss: u64,
    cap: u64,
    cpu_pct: f64,
    good: Option<Good>,
    /// Set when the node died or loadgen could not run.
    failure: Option<String>,
}

impl Row {
    fn pass(&self, p99_ms: f64, conns: u32) -> bool {
        self.failure.is_none()
            && self.peak_rss <= self.cap
            && self.good.is_some_and(|g| {
                g.p99_ms < p99_ms
                    && g.established >= u64::from(conns)
                    && g.failed == 0
                    && g.drops == 0
            })
    }
}

fn main() {
    let o = Opts::parse();
    if let Err(e) = run(&o) {
        eprintln!("hostile: {e}");
        std::process::exit(1);
    }
}

/// Raise this process's open-file limit to its hard limit (children inherit it).
fn raise_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = rl.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every unix
    (rl.rlim_cur as u64)
}

fn run(o: &Opts) -> Result<(), String> {
    let wsnode = o.wsnode.clone().map_or_else(|| beside("wsnode"), Ok)?;
    let loadgen = o.loadgen.clone().map_or_else(|| beside("loadgen"), Ok)?;
    let limits = server::embed::config_from_args(Vec::<String>::new())
        .map_err(|e| format!("wsnode's default options: {e}"))?;
    let sizes = o.sizes();
    let need = u64::from(o.good_conns) + sizes.slowloris.max(sizes.slow_readers) as u64 + 1000;
    let nofile = raise_nofile();
    if nofile < need {
        return Err(format!(
            "the open-file limit is {nofile}, these sizes need about {need}: run `ulimit -n 20000` first"
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let dir = std::env::temp_dir().join(format!("hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let mut order = vec![Attack::Baseline];
    order.extend(o.attacks.iter().filter(|a| **a != Attack::Baseline));
    let mut rows: Vec<Row> = Vec::new();
    let mut base = 0;
    for attack in order {
        eprintln!("hostile: {attack:?}: starting a fresh wsnode");
        let log = dir.join(format!("wsnode-{attack:?}.log"));
        let mut node = Node::start(&wsnode, &[], &log)?;
        let sampler = RssSampler::start(node.pid);
        let (cpu0, t0) = (node::cpu_seconds(node.pid).unwrap_or(0.0), Instant::now());
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let tasks = {
            let _rt = rt.enter();
            attacks::launch(attack, node.addr, sizes, &stop, &tally)
        };
        if attack != Attack::Baseline {
            // Slowloris spreads its connections over 2 s; let every attack settle in.
            std::thread::sleep(Duration::from_secs(3));
        }
        eprintln!(
            "hostile: {attack:?}: {} good clients for {} s",
            o.good_conns, o.duration
        );
        let json = dir.join(format!("loadgen-{attack:?}.json"));
        let good = node::loadgen(&loadgen, node.addr, o.good_conns, o.rate, o.duration, &json);
        stop.store(true, Relaxed);
        let died = node.exited();
        let metrics = node.metrics().unwrap_or_default();
        let cpu_pct = (node::cpu_seconds(node.pid).unwrap_or(cpu0) - cpu0)
            / t0.elapsed().as_secs_f64()
            * 100.0;
        let peak_rss = sampler.finish();
        rt.block_on(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for t in &tasks {
                t.abort();
            }
        });
        node.stop();
        if attack == Attack::Baseline {
            base = peak_rss;
        }
        let failure = match (&died, &good) {
            (Some(status), _) => Some(format!("wsnode died: {status}; see {}", log.display())),
            (None, Err(e)) => Some(e.clone()),
            _ => None,
        };
        let row = Row {
            attack,
            size: size_text(attack, &sizes),
            answer: answer_text(attack, &tally, &metrics),
            peak_rss,
            cap: cap(attack, base, &sizes, &limits, &tally),
            cpu_pct,
            good: good.ok(),
            failure,
        };
        eprintln!("hostile: {attack:?}: {}", table_line(&row, o));
        rows.push(row);
        std::thread::sleep(Duration::from_secs(1));
    }
    let _ = std::fs::remove_dir_all(&dir);
    print!("{}", table(&rows, o));
    if rows
        .iter()
        .any(|r| r.failure.as_deref().is_some_and(|f| f.contains("died")))
    {
        // Keep nothing silent: a crash is the finding.
        return Err("wsnode died during an attack (see the table)".into());
    }
    Ok(())
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// What one connection of the node may hold apart from its message buffer:
/// task, socket halves, queue block, and an 8 KiB read buffer (hyper's
/// while the request is read, the frame reader's once upgraded). Idle
/// connections measure 6.2 KiB (docs/BENCHMARKS.md); busy ones touch more.
const PER_CONN: u64 = 16 * KIB;
/// A connection waiting for its request head: hyper's 8 KiB read buffer
/// and connection state, the task, the socket. Measured 18.8-23 KiB (the
/// slowloris rows before `--max-handshakes`, docs/BENCHMARKS.md).
const PER_HALF_OPEN: u64 = 24 * KIB;
/// A session the node keeps `--session-ttl` after its connection went:
/// ids, token, its map entries (a generous bound).
const PER_SESSION: u64 = 2 * KIB;
/// A cached chunk frame: the JSON (about 130 bytes at the default chunk
/// size) and its entry in the stream's list.
const PER_CHUNK: u64 = 256;
/// An outbound queue item (40 bytes) with its share of the queue's growth.
const PER_QUEUED: u64 = 48;

/// The RSS the node may reach under `attack`, from its limits: the
/// baseline's peak, a measurement margin (10 %, at least 8 MiB), and what
/// the node's bounds let the attack add.
fn cap(attack: Attack, base: u64, s: &Sizes, l: &server::Config, t: &Tally) -> u64 {
    let max_msg = l.max_message_size as u64;
    // Every upgraded connection leaves a session for --session-ttl.
    let sessions = t.upgraded.load(Relaxed).min(l.max_sessions as u64) * PER_SESSION;
    let extra = match attack {
        Attack::Baseline => 0,
        // At most --max-handshakes wait for their headers (the node closes
        // the oldest beyond it), and at most twice that many connections
        // are not yet upgraded (the others being closed or answered); a
        // header cannot grow past a few hundred bytes before
        // --handshake-timeout closes it.
        Attack::Slowloris => (s.slowloris as u64).min(2 * l.max_handshakes as u64) * PER_HALF_OPEN,
        // Each connection's full outbound queue, plus every chunk it asked
        // for in the answer cache (bounded by --max-cached-bytes).
        Attack::SlowReaders => {
            let cached = (s.slow_readers as u64 * u64::from(s.reader_chunks) * PER_CHUNK)
                .min(l.max_cached_bytes as u64);
            s.slow_readers as u64 * (PER_CONN + l.outbound_queue as u64 * PER_QUEUED)
                + cached
                + sessions
        }
        // A message being reassembled is at most --max-message-size.
        Attack::FragmentFlood => s.flood_conns as u64 * (PER_CONN + max_msg) + sessions,
        // A frame larger than --max-message-size is refused from its header.
        Attack::Oversized => s.abusers as u64 * (PER_CONN + max_msg) + sessions,
        Attack::InvalidUtf8 => s.abusers as u64 * PER_CONN + sessions,
        // One connection; its queue holds at most --outbound-queue pongs.
        Attack::PingFlood => PER_CONN + l.outbound_queue as u64 * (PER_QUEUED + 125) + sessions,
    };
    base + (base / 10).max(8 * MIB) + extra
}

fn size_text(attack: Attack, s: &Sizes) -> String {
    match attack {
        Attack::Baseline => "none".into(),
        Attack::Slowloris => format!(
            "{} half-open upgrades held (one header line/s, never the blank line; reopened 1 s after the node closes one)",
            s.slowloris
        ),
        Attack::SlowReaders => format!(
            "{} connections (4 KiB receive buffer), each asks for {} chunks every {} ms, never reads",
            s.slow_readers, s.reader_chunks, s.reader_interval_ms
        ),
        Attack::FragmentFlood => format!(
            "{} connections, {} continuation frames/s of {} B without FIN",
            s.flood_conns, s.flood_rate, s.flood_frame
        ),
        Attack::Oversized => format!(
            "{} clients, {} connections/s: a header announcing 1 GiB, then up to 1 MiB of it",
            s.abusers, s.abuse_rate
        ),
        Attack::InvalidUtf8 => format!(
            "{} clients, {} connections/s: a text frame with invalid UTF-8 (whole or split)",
            s.abusers, s.abuse_rate
        ),
        Attack::PingFlood => format!("1 connection, {} pings/s of 125 B", s.ping_rate),
    }
}

fn answer_text(attack: Attack, t: &Tally, m: &[(String, f64)]) -> String {
    let n = |v: &std::sync::atomic::AtomicU64| v.load(Relaxed);
    let metric = |name: &str| node::metric(m, name) as u64;
    match attack {
        Attack::Baseline => "-".into(),
        Attack::Slowloris => format!(
            "peak {} open; node closed {} (longest held {:.1} s; {} to stay within --max-handshakes); {} connects failed",
            n(&t.peak_open),
            n(&t.node_closes),
            n(&t.longest_held_ms) as f64 / 1000.0,
            metric("wsnode_handshakes_evicted_total"),
            n(&t.failed)
        ),
        Attack::SlowReaders => format!(
            "{} upgraded; node: {} slow-consumer closes, {} streams started, {} cached bytes",
            n(&t.upgraded),
            metric("wsnode_slow_consumer_closes_total"),
            metric("wsnode_streams_started_total"),
            metric("wsnode_cached_stream_bytes")
        ),
        Attack::PingFlood => format!(
            "{} pings sent, {} pongs read; closes: {}",
            n(&t.frames_sent),
            n(&t.pongs),
            t.close_codes()
        ),
        _ => format!(
            "{} connections ({} upgraded), {} frames sent; closes: {}",
            n(&t.attempts),
            n(&t.upgraded),
            n(&t.frames_sent),
            t.close_codes()
        ),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB as f64)
}

fn table_line(r: &Row, o: &Opts) -> String {
    let good = match (&r.good, &r.failure) {
        (_, Some(f)) => format!("| {f} |"),
        (Some(g), None) => format!(
            "| {:.1} ms | {}/{}/{} |",
            g.p99_ms, g.established, g.failed, g.drops
        ),
        (None, None) => "| - | - |".into(),
    };
    format!(
        "| {:?} | {} | {} | {} | {} | {:.0} % {good} {} |",
        r.attack,
        r.size,
        r.answer,
        mib(r.peak_rss),
        mib(r.cap),
        r.cpu_pct,
        if r.pass(o.p99_ms, o.good_conns) {
            "PASS"
        } else {
            "FAIL"
        }
    )
}

fn table(rows: &[Row], o: &Opts) -> String {
    let mut s = format!(
        "| attack | size | what the node did | node peak RSS | RSS cap | node CPU | good p99 (< {} ms) | good conns ok/failed/drops | verdict |\n|---|---|---|---|---|---|---|---|---|\n",
        o.p99_ms
    );
    for r in rows {
        s.push_str(&table_line(r, o));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Opts {
        Opts::parse_from(["hostile"])
    }

    #[test]
    fn options_are_bounded_and_caps_follow_the_limits() {
        assert!(Opts::try_parse_from(["hostile", "--slowloris", "0"]).is_err());
        assert!(Opts::try_parse_from(["hostile", "--duration", "3600"]).is_err());
        assert!(Opts::try_parse_from(["hostile", "--attacks", "teleport"]).is_err());
        let o = Opts::parse_from(["hostile", "--attacks", "oversized,ping-flood"]);
        assert_eq!(o.attacks, [Attack::Oversized, Attack::PingFlood]);

        let l = server::embed::config_from_args(Vec::<String>::new()).unwrap();
        let s = opts().sizes();
        let t = Tally::default();
        let base = 100 * MIB;
        let margin = 10 * MIB;
        assert_eq!(cap(Attack::Baseline, base, &s, &l, &t), base + margin);
        // 5,000 half-open connections: 2 x --max-handshakes (1024) exist.
        assert_eq!(
            cap(Attack::Slowloris, base, &s, &l, &t),
            base + margin + 2048 * 24 * KIB
        );
        // 1000 x 1000 chunks x 256 B is under --max-cached-bytes (256 MiB).
        assert_eq!(
            cap(Attack::SlowReaders, base, &s, &l, &t),
            base + margin + 1000 * (16 * KIB + 256 * 48) + 1000 * 1000 * 256
        );
        t.upgraded.store(100, Relaxed);
        assert_eq!(
            cap(Attack::Oversized, base, &s, &l, &t),
            base + margin + 50 * (16 * KIB + 64 * KIB) + 100 * 2 * KIB
        );
    }

    #[test]
    fn rows_pass_only_within_every_bound() {
        let o = opts();
        let good = Good {
            p99_ms: 4.0,
            established: 1000,
            failed: 0,
            drops: 0,
            success_rate: 1.0,
        };
        let row = Row {
            attack: Attack::PingFlood,
            size: "1 connection".into(),
            answer: "pongs".into(),
            peak_rss: 50 * MIB,
            cap: 60 * MIB,
            cpu_pct: 40.0,
            good: Some(good),
            failure: None,
        };
        assert!(row.pass(o.p99_ms, o.good_conns));
        let line = table_line(&row, &o);
        assert!(
            line.contains("| 50.0 MiB | 60.0 MiB | 40 % | 4.0 ms | 1000/0/0 | PASS |"),
            "{line}"
        );
        let over = Row {
            peak_rss: 61 * MIB,
            ..row.clone()
        };
        assert!(!over.pass(o.p99_ms, o.good_conns));
        let slow = Row {
            good: Some(Good {
                p99_ms: 50.0,
                ..good
            }),
            ..row.clone()
        };
        assert!(!slow.pass(o.p99_ms, o.good_conns));
        let dropped = Row {
            good: Some(Good { drops: 1, ..good }),
            ..row.clone()
        };
        assert!(!dropped.pass(o.p99_ms, o.good_conns));
        let died = Row {
            failure: Some("wsnode died: signal 11".into()),
            ..row
        };
        assert!(!died.pass(o.p99_ms, o.good_conns));
        assert!(table(&[died], &o).contains("| wsnode died: signal 11 |"));
    }
}
