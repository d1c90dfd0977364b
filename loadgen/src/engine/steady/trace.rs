//! An off-by-default timing of the loop's turns, for finding where a tail
//! comes from: `LOADGEN_TRACE_TURNS=MS` prints every turn of an epoll loop
//! that took longer than MS milliseconds (wall time from `epoll_wait`'s
//! return to the end of the turn), with what it did and how much of that
//! time the thread had a CPU. A turn whose wall time is far above its CPU
//! time waited: for a core (another thread had it) or for its vCPU.
//!
//! Read once per loop; when unset the loop reads no extra clock. Bounded:
//! at most [`MAX_LINES`] lines per loop, then one line saying how many
//! more turns went over. docs/BENCHMARKS.md ("What a tail episode is made
//! of") shows it in use.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The environment variable that turns the trace on (milliseconds).
pub const VAR: &str = "LOADGEN_TRACE_TURNS";
/// Most turns printed per loop.
pub const MAX_LINES: u64 = 10_000;
/// The largest threshold taken, in milliseconds.
const MAX_MS: f64 = 60_000.0;

/// One loop's trace: its threshold, the current turn's clock readings and
/// what it has printed.
pub struct Trace {
    loop_i: usize,
    over: Duration,
    t0: Instant,
    printed: u64,
    dropped: u64,
    /// Going into `epoll_wait`.
    asleep: Instant,
    /// Out of it, with the thread's CPU time then.
    woke: (Instant, Duration),
    /// The socket events done, with the thread's CPU time then.
    events_done: (Instant, Duration),
}

/// What one turn did, as the loop measured it.
pub struct Turn {
    /// Time asleep in `epoll_wait`.
    pub slept: Duration,
    /// When `epoll_wait` returned.
    pub woke: Instant,
    /// Events `epoll_wait` returned.
    pub ready: usize,
    /// Wall and thread CPU time of the socket events.
    pub events: (Duration, Duration),
    /// Timers fired: due sends and deadlines.
    pub timers_fired: usize,
    /// Wall and thread CPU time of the due sends and deadlines.
    pub timers: (Duration, Duration),
}

/// The threshold in `value`, or why it is not one.
pub fn parse(value: &str) -> Result<Duration, String> {
    match value.trim().parse::<f64>() {
        Ok(ms) if (0.0..=MAX_MS).contains(&ms) => Ok(Duration::from_secs_f64(ms / 1000.0)),
        _ => Err(format!(
            "{VAR}={value:?} is not a number of milliseconds from 0 to {MAX_MS}; turns are not traced"
        )),
    }
}

impl Trace {
    /// The trace for loop `loop_i` when [`VAR`] asks for one; a bad value
    /// is said once, on standard error, and traces nothing.
    pub fn from_env(loop_i: usize, t0: Instant) -> Option<Trace> {
        let value = std::env::var(VAR).ok()?;
        match parse(&value) {
            Ok(over) => Some(Trace::new(loop_i, over, t0)),
            Err(why) => {
                if loop_i == 0 {
                    eprintln!("loadgen: {why}");
                }
                None
            }
        }
    }

    pub fn new(loop_i: usize, over: Duration, t0: Instant) -> Trace {
        Trace {
            loop_i,
            over,
            t0,
            printed: 0,
            dropped: 0,
            asleep: t0,
            woke: (t0, Duration::ZERO),
            events_done: (t0, Duration::ZERO),
        }
    }

    /// The loop is going into `epoll_wait`.
    pub fn sleeping(&mut self) {
        self.asleep = Instant::now();
    }

    /// `epoll_wait` returned.
    pub fn woke(&mut self) {
        self.woke = (Instant::now(), thread_cpu());
    }

    /// The turn's socket events are done.
    pub fn events_done(&mut self) {
        self.events_done = (Instant::now(), thread_cpu());
    }

    /// The turn is done, with `ready` events taken and `timers_fired`
    /// timers: its line, when it went over the threshold.
    pub fn finish(&mut self, ready: usize, timers_fired: usize) -> Option<String> {
        let ((woke, cpu0), (at, cpu1)) = (self.woke, self.events_done);
        let turn = Turn {
            slept: woke.saturating_duration_since(self.asleep),
            woke,
            ready,
            events: (at - woke, cpu1.saturating_sub(cpu0)),
            timers_fired,
            timers: (at.elapsed(), thread_cpu().saturating_sub(cpu1)),
        };
        self.line(&turn)
    }

    /// The line for `turn` when it went over the threshold and the loop
    /// has lines left.
    pub fn line(&mut self, turn: &Turn) -> Option<String> {
        if turn.events.0 + turn.timers.0 <= self.over {
            return None;
        }
        if self.printed >= MAX_LINES {
            self.dropped += 1;
            return None;
        }
        self.printed += 1;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut s = String::with_capacity(160);
        let _ = write!(
            s,
            "loadgen turn: loop {} at {:.4} s, slept {:.2} ms; {} events in {:.2} ms (cpu {:.2}); {} timers (sends, deadlines) in {:.2} ms (cpu {:.2})",
            self.loop_i,
            turn.woke.saturating_duration_since(self.t0).as_secs_f64(),
            ms(turn.slept),
            turn.ready,
            ms(turn.events.0),
            ms(turn.events.1),
            turn.timers_fired,
            ms(turn.timers.0),
            ms(turn.timers.1),
        );
        Some(s)
    }

    /// The closing line, when turns went over after the last one printed.
    pub fn end(&self) -> Option<String> {
        (self.dropped > 0).then(|| {
            format!(
                "loadgen turn: loop {}: {} more turns over {:.2} ms not printed (at most {MAX_LINES} per loop)",
                self.loop_i,
                self.dropped,
                self.over.as_secs_f64() * 1e3
            )
        })
    }
}

/// This thread's CPU time so far (zero if the clock cannot be read).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(t0: Instant, events_ms: u64, timers_ms: u64) -> Turn {
        Turn {
            slept: Duration::from_micros(250),
            woke: t0 + Duration::from_millis(1500),
            ready: 7,
            events: (Duration::from_millis(events_ms), Duration::from_micros(100)),
            timers_fired: 3,
            timers: (Duration::from_millis(timers_ms), Duration::from_micros(200)),
        }
    }

    #[test]
    fn turns_over_the_threshold_are_printed_and_bounded() {
        let t0 = Instant::now();
        let mut t = Trace::new(1, Duration::from_millis(2), t0);
        assert_eq!(t.line(&turn(t0, 1, 1)), None, "2 ms is not over 2 ms");
        assert_eq!(
            t.line(&turn(t0, 2, 1)).as_deref(),
            Some(
                "loadgen turn: loop 1 at 1.5000 s, slept 0.25 ms; 7 events in 2.00 ms (cpu 0.10); 3 timers (sends, deadlines) in 1.00 ms (cpu 0.20)"
            )
        );
        assert_eq!(t.end(), None);
        for _ in 1..MAX_LINES {
            assert!(t.line(&turn(t0, 5, 0)).is_some());
        }
        assert_eq!(t.line(&turn(t0, 5, 0)), None, "past the bound");
        assert_eq!(t.line(&turn(t0, 0, 1)), None, "under the threshold");
        assert_eq!(
            t.end().as_deref(),
            Some(
                "loadgen turn: loop 1: 1 more turns over 2.00 ms not printed (at most 10000 per loop)"
            )
        );
    }

    #[test]
    fn the_threshold_is_checked() {
        assert_eq!(parse("2"), Ok(Duration::from_millis(2)));
        assert_eq!(parse(" 0.5 "), Ok(Duration::from_micros(500)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        for bad in ["", "-1", "abc", "1e9", "NaN", "inf"] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains("LOADGEN_TRACE_TURNS") && e.contains("not traced"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_busy_thread_has_cpu_time() {
        let before = thread_cpu();
        let until = Instant::now() + Duration::from_millis(20);
        let mut n = 0u64;
        while Instant::now() < until {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        assert!(thread_cpu() > before, "no CPU time counted");
    }
}
