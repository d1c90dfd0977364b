//! Does the host itself pause? One sleeper per CPU, pinned to it, asks to
//! sleep `--period-us` again and again and records how late it wakes (the
//! method of jHiccup). A run's latency spike in a second where every CPU's
//! sleeper woke on time is not the host freezing a CPU (a hypervisor
//! taking the vCPU away, a long interrupt): it is the processes under
//! test. A sleeper is pinned because the guest's scheduler cannot move a
//! thread off a vCPU the hypervisor has paused: one unpinned sleeper would
//! run on the other CPU and see nothing.
//!
//! A sleeper cannot see a pause shorter than its own sleep and wake-up
//! (about 1 ms here). `--spin` sees them: one thread per CPU, pinned,
//! reads the clock in a tight loop and records every gap between two
//! readings of at least `--gap-us`. It also counts the times the guest's
//! scheduler took its CPU from it (`getrusage`'s involuntary switches): a
//! gap with none is time the guest did not run at all (the hypervisor had
//! the vCPU), as a guest interrupt lasts microseconds. It keeps every CPU
//! busy, so it measures an idle machine, not one under test.
//!
//! Prints each second's worst wake (or gap) per CPU, then each CPU's p50,
//! p99 and max. Bounded: at most 600 s, one thread per CPU this process
//! may run on (at most 256).
//!
//! ```sh
//! cargo build --release -p wsbench-benches --bin hiccup
//! target/release/hiccup --seconds 15 & target/release/loadgen --stages 3s:4500,12s:4500 --rate 10 --json run.json
//! target/release/hiccup --spin --seconds 10      # on an idle machine: the host's own pauses
//! ```

use clap::Parser;
use hdrhistogram::Histogram;
use server::placement::{self, allowed_cpus};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "How late a pinned sleeper per CPU wakes: the host's own pauses (as jHiccup)")]
struct Opts {
    /// Seconds to measure. Example: --seconds 15
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=600))]
    seconds: u64,
    /// Each sleep asked for, in microseconds. Example: --period-us 1000
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=100_000))]
    period_us: u64,
    /// Spin on the clock instead of sleeping (takes every CPU: run it on an
    /// idle machine). Example: --spin
    #[arg(long)]
    spin: bool,
    /// With --spin, the shortest gap between two clock readings recorded,
    /// in microseconds. Example: --gap-us 100
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=100_000))]
    gap_us: u64,
}

/// One CPU's sleeper (or spinner): each second's worst late wake or gap
/// (us), and all of them.
struct Sleeper {
    cpu: usize,
    per_second: Vec<u64>,
    all: Histogram<u64>,
    /// A spinner's involuntary context switches over its run (`None` for a
    /// sleeper, which gives its CPU up on purpose).
    taken: Option<i64>,
    /// A spinner's gaps during which the guest's scheduler did not switch
    /// it out: the guest did not run on that CPU at all.
    unseen: Histogram<u64>,
}

impl Sleeper {
    fn new(cpu: usize) -> Sleeper {
        Sleeper {
            cpu,
            per_second: Vec::new(),
            all: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            taken: None,
            unseen: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        }
    }

    /// Note a late wake or gap of `us`, `at` into the run.
    fn note(&mut self, at: Duration, us: u64) {
        self.all.saturating_record(us.max(1));
        let second = at.as_secs() as usize;
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, 0);
        }
        self.per_second[second] = self.per_second[second].max(us);
    }
}

fn main() {
    let o = Opts::parse();
    let until = Instant::now() + Duration::from_secs(o.seconds);
    let what = if o.spin {
        What::Spin(o.gap_us)
    } else {
        What::Sleep(o.period_us)
    };
    let handles: Vec<_> = allowed_cpus()
        .into_iter()
        .map(|cpu| {
            std::thread::spawn(move || match what {
                What::Spin(us) => spin_on(cpu, Duration::from_micros(us), until),
                What::Sleep(us) => sleep_on(cpu, Duration::from_micros(us), until),
            })
        })
        .collect();
    let sleepers: Vec<Sleeper> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    print!("{}", report(&sleepers, what));
}

/// What the threads did: slept this long each time, or spun, recording
/// gaps of at least this long (us).
#[derive(Clone, Copy)]
enum What {
    Sleep(u64),
    Spin(u64),
}

/// Pin this thread to `cpu` (best effort: unpinned, it still measures the
/// scheduler's lateness) and sleep `period` until `until`.
fn sleep_on(cpu: usize, period: Duration, until: Instant) -> Sleeper {
    pin(cpu);
    let t0 = Instant::now();
    let mut s = Sleeper::new(cpu);
    while Instant::now() < until {
        let asked = Instant::now();
        std::thread::sleep(period);
        let late = asked.elapsed().saturating_sub(period).as_micros() as u64;
        s.note(t0.elapsed(), late);
    }
    s
}

/// Pin this thread to `cpu` and read the clock until `until`, noting every
/// gap of at least `gap` between two readings.
fn spin_on(cpu: usize, gap: Duration, until: Instant) -> Sleeper {
    pin(cpu);
    let first = involuntary_switches();
    let mut switched = first;
    let t0 = Instant::now();
    let mut s = Sleeper::new(cpu);
    let mut last = t0;
    while last < until {
        let now = Instant::now();
        let d = now - last;
        if d >= gap {
            let us = d.as_micros() as u64;
            s.note(last - t0, us);
            // Read only after a gap (a system call): a switch since the
            // last gap counts against this one, so a gap is called the
            // host's only when the guest surely switched nothing.
            let n = involuntary_switches();
            if n == switched {
                s.unseen.saturating_record(us.max(1));
            }
            switched = n;
        }
        last = now;
    }
    // Every second spun is a row, a second with no gap as 0.
    let seconds = (last - t0).as_secs() as usize + 1;
    if s.per_second.len() < seconds {
        s.per_second.resize(seconds, 0);
    }
    s.taken = Some(involuntary_switches() - first);
    s
}

/// This thread's involuntary context switches so far.
fn involuntary_switches() -> i64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) } != 0 {
        return 0;
    }
    u.ru_nivcsw
}

fn pin(cpu: usize) {
    // A sleeper left unpinned still measures its wakes, only not per CPU.
    let _ = placement::pin_current(cpu);
}

fn report(sleepers: &[Sleeper], what: What) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut s = match what {
        What::Sleep(us) => format!(
            "hiccup: a sleeper per CPU asking for {us} us; worst late wake per second, ms\n\n| second |"
        ),
        What::Spin(us) => format!(
            "hiccup --spin: a spinner per CPU; worst gap of at least {us} us between two clock readings per second, ms (0: none)\n\n| second |"
        ),
    };
    for p in sleepers {
        s.push_str(&format!(" CPU {} |", p.cpu));
    }
    s.push_str(&format!("\n|---|{}\n", "---|".repeat(sleepers.len())));
    let seconds = sleepers
        .iter()
        .map(|p| p.per_second.len())
        .max()
        .unwrap_or(0);
    for t in 0..seconds {
        s.push_str(&format!("| {t} |"));
        for p in sleepers {
            match p.per_second.get(t) {
                Some(us) => s.push_str(&format!(" {:.1} |", ms(*us))),
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s.push('\n');
    for p in sleepers {
        let (what, how) = match what {
            What::Sleep(_) => ("wakes", "late by"),
            What::Spin(_) => ("gaps", "lasting"),
        };
        s.push_str(&format!(
            "CPU {}: {} {what}, {how} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            p.cpu,
            p.all.len(),
            ms(p.all.value_at_quantile(0.5)),
            ms(p.all.value_at_quantile(0.99)),
            ms(p.all.max()),
        ));
        if let Some(n) = p.taken {
            s.push_str(&format!(
                "; the guest's scheduler took this CPU from the spinner {n} times; {} gaps with no switch (the guest did not run: the host's), max {:.2} ms",
                p.unseen.len(),
                ms(p.unseen.max()),
            ));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cpus_sleeper_is_reported_by_second_and_in_all() {
        let until = Instant::now() + Duration::from_millis(1200);
        let a = sleep_on(0, Duration::from_millis(1), until);
        assert!(a.all.len() > 10, "{} wakes", a.all.len());
        assert_eq!(a.per_second.len(), 2, "{:?}", a.per_second);
        let mut b = Sleeper::new(1);
        b.note(Duration::from_millis(300), 2500);
        let r = report(&[a, b], What::Sleep(1000));
        assert!(r.contains("| second | CPU 0 | CPU 1 |"), "{r}");
        // CPU 1 has no second 1: shown as missing, not as on time.
        assert!(
            r.lines()
                .any(|l| l.starts_with("| 1 |") && l.ends_with(" - |")),
            "{r}"
        );
        assert!(
            r.contains("CPU 1: 1 wakes, late by p50 2.50 ms, p99 2.50 ms, max 2.50 ms"),
            "{r}"
        );
    }

    #[test]
    fn a_spinner_notes_gaps_and_what_the_guest_took() {
        // A second busy thread on the spinner's CPU: the guest's scheduler
        // takes turns between the two, so the spinner sees gaps, and
        // counts the switches that made them.
        let cpu = allowed_cpus()[0];
        let until = Instant::now() + Duration::from_millis(400);
        let rival = std::thread::spawn(move || {
            pin(cpu);
            let mut n = 0u64;
            while Instant::now() < until {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        });
        let a = spin_on(cpu, Duration::from_micros(100), until);
        rival.join().unwrap();
        assert!(a.taken.is_some_and(|n| n > 0), "{:?}", a.taken);
        assert!(!a.all.is_empty(), "no gap seen beside a busy thread");
        assert!(
            a.per_second.len() == 1 && a.per_second[0] >= 100,
            "{:?}",
            a.per_second
        );
        let mut b = Sleeper::new(1);
        b.note(Duration::from_millis(1500), 1400);
        b.note(Duration::from_millis(1600), 400);
        b.taken = Some(0);
        b.unseen.record(1400).unwrap();
        let r = report(&[a, b], What::Spin(100));
        assert!(r.starts_with("hiccup --spin"), "{r}");
        assert!(
            r.lines()
                .any(|l| l.starts_with("| 1 |") && l.ends_with(" 1.4 |")),
            "{r}"
        );
        assert!(
            r.contains("CPU 1: 2 gaps, lasting p50 0.40 ms, p99 1.40 ms, max 1.40 ms; the guest's scheduler took this CPU from the spinner 0 times; 1 gaps with no switch (the guest did not run: the host's), max 1.40 ms"),
            "{r}"
        );
    }

    #[test]
    fn a_sleeper_goes_to_each_cpu_this_process_may_use() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty() && cpus.len() <= 256, "{cpus:?}");
        assert!(cpus.windows(2).all(|w| w[0] < w[1]), "{cpus:?}");
        // This thread runs on one of them.
        // SAFETY: sched_getcpu takes no argument and only reads.
        let here = unsafe { libc::sched_getcpu() };
        assert!(cpus.contains(&(here as usize)), "{here} not in {cpus:?}");
    }

    #[test]
    fn bounds_are_checked() {
        assert!(Opts::try_parse_from(["hiccup", "--seconds", "0"]).is_err());
        assert!(Opts::try_parse_from(["hiccup", "--seconds", "601"]).is_err());
        assert!(Opts::try_parse_from(["hiccup", "--period-us", "99"]).is_err());
        assert!(Opts::try_parse_from(["hiccup"]).is_ok());
        assert!(Opts::try_parse_from(["hiccup", "--spin", "--gap-us", "9"]).is_err());
        assert!(Opts::try_parse_from(["hiccup", "--spin", "--gap-us", "100"]).is_ok());
    }
}
