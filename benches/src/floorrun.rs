//! tcp_floor's run: the schedule every client variant follows, what a run
//! measured, and the CPU readings of its window.
//!
//! Connection `i` of `n` sends message `k` at `k * interval + i * interval / n`
//! after the start; the first 3 s are a warm-up, then `--duration` seconds
//! are measured (latency from each message's intended send time, and the
//! CPU of both processes and the machine over the window).

use hdrhistogram::Histogram;
use loadgen::monitor::host::ProcStat;
use std::time::{Duration, Instant};

/// The paced schedule, in ns since the run's start.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub conns: u64,
    pub interval_ns: u64,
    pub warmup_ns: u64,
    pub end_ns: u64,
}

impl Schedule {
    pub fn new(conns: u64, rate: u32, duration_s: u64) -> Schedule {
        let warmup_ns = 3_000_000_000;
        Schedule {
            conns: conns.max(1),
            interval_ns: 1_000_000_000 / u64::from(rate.max(1)),
            warmup_ns,
            end_ns: warmup_ns + duration_s * 1_000_000_000,
        }
    }

    /// When connection `i` sends its message `k`.
    pub fn due(&self, i: u64, k: u64) -> u64 {
        k * self.interval_ns + i * self.interval_ns / self.conns
    }

    /// When connection `i`'s message `k` is due, if it is by `now_ns` and
    /// within the run (the clients walk the connections in due order).
    pub fn due_now(&self, i: usize, k: u64, now_ns: u64) -> Option<u64> {
        let at = self.due(i as u64, k);
        (at <= now_ns && at < self.end_ns).then_some(at)
    }

    /// Past this nothing more is awaited.
    pub fn give_up_ns(&self) -> u64 {
        self.end_ns + 2_000_000_000
    }
}

/// CPU readings at the start of the measured window.
pub struct Window {
    pub at: Instant,
    pub client_cpu: Duration,
    pub server_cpu: Duration,
    pub answered: u64,
    pub stat: Option<ProcStat>,
}

impl Window {
    pub fn open(server_pid: u32, answered: u64) -> Result<Window, String> {
        Ok(Window {
            at: Instant::now(),
            client_cpu: cpu_time(std::process::id()).map_err(|e| e.to_string())?,
            server_cpu: cpu_time(server_pid).map_err(|e| e.to_string())?,
            answered,
            stat: ProcStat::read(),
        })
    }
}

/// What one run measured.
pub struct Outcome {
    pub sent: u64,
    pub answered: u64,
    pub sent_measured: u64,
    /// Latency from the intended send time, µs, of messages due in the window.
    pub hist: Histogram<u64>,
    /// `None` if the run ended before its warm-up did.
    pub window: Option<Window>,
}

impl Outcome {
    pub fn new() -> Result<Outcome, String> {
        Ok(Outcome {
            sent: 0,
            answered: 0,
            sent_measured: 0,
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| e.to_string())?,
            window: None,
        })
    }

    /// A reply to the message due at `at_ns` arrived at `got_ns`.
    pub fn answered(&mut self, s: &Schedule, at_ns: u64, got_ns: u64) {
        self.answered += 1;
        if at_ns >= s.warmup_ns {
            let _ = self
                .hist
                .record((got_ns.saturating_sub(at_ns) / 1000).max(1));
        }
    }

    /// Open the measured window once the warm-up has passed (`now_ns`
    /// since the run's start); the CPU readings start there.
    pub fn window_at(&mut self, s: &Schedule, now_ns: u64, server_pid: u32) -> Result<(), String> {
        if self.window.is_none() && now_ns >= s.warmup_ns {
            self.window = Some(Window::open(server_pid, self.answered)?);
        }
        Ok(())
    }

    /// The message due at `at_ns` was sent.
    pub fn sent(&mut self, s: &Schedule, at_ns: u64) {
        self.sent += 1;
        if at_ns >= s.warmup_ns {
            self.sent_measured += 1;
        }
    }
}

/// CPU time (user + system) of a process so far, from /proc.
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
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
