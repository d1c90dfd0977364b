//! Does the host itself pause? One sleeper per CPU, pinned to it, asks to
//! sleep `--period-us` again and again and records how late it wakes (the
//! method of jHiccup). A run's latency spike in a second where every CPU's
//! sleeper woke on time is not the host freezing a CPU (a hypervisor
//! taking the vCPU away, a long interrupt): it is the processes under
//! test. A sleeper is pinned because the guest's scheduler cannot move a
//! thread off a vCPU the hypervisor has paused: one unpinned sleeper would
//! run on the other CPU and see nothing.
//!
//! Prints each second's worst wake per CPU, then each CPU's p50, p99 and
//! max. Bounded: at most 600 s, one thread per CPU this process may run
//! on (at most 256).
//!
//! ```sh
//! cargo build --release -p wsbench-benches --bin hiccup
//! target/release/hiccup --seconds 15 & target/release/loadgen --stages 3s:4500,12s:4500 --rate 10 --json run.json
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
}

/// One CPU's sleeper: each second's worst late wake (us), and all of them.
struct Sleeper {
    cpu: usize,
    per_second: Vec<u64>,
    all: Histogram<u64>,
}

fn main() {
    let o = Opts::parse();
    let period = Duration::from_micros(o.period_us);
    let until = Instant::now() + Duration::from_secs(o.seconds);
    let handles: Vec<_> = allowed_cpus()
        .into_iter()
        .map(|cpu| std::thread::spawn(move || sleep_on(cpu, period, until)))
        .collect();
    let sleepers: Vec<Sleeper> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    print!("{}", report(&sleepers, o.period_us));
}

/// Pin this thread to `cpu` (best effort: unpinned, it still measures the
/// scheduler's lateness) and sleep `period` until `until`.
fn sleep_on(cpu: usize, period: Duration, until: Instant) -> Sleeper {
    pin(cpu);
    let t0 = Instant::now();
    let mut s = Sleeper {
        cpu,
        per_second: Vec::new(),
        all: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
    };
    while Instant::now() < until {
        let asked = Instant::now();
        std::thread::sleep(period);
        let late = asked.elapsed().saturating_sub(period).as_micros() as u64;
        s.all.saturating_record(late.max(1));
        let second = t0.elapsed().as_secs() as usize;
        if s.per_second.len() <= second {
            s.per_second.resize(second + 1, 0);
        }
        s.per_second[second] = s.per_second[second].max(late);
    }
    s
}

fn pin(cpu: usize) {
    // A sleeper left unpinned still measures its wakes, only not per CPU.
    let _ = placement::pin_current(cpu);
}

fn report(sleepers: &[Sleeper], period_us: u64) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut s = format!(
        "hiccup: a sleeper per CPU asking for {period_us} us; worst late wake per second, ms\n\n| second |"
    );
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
        s.push_str(&format!(
            "CPU {}: {} wakes, late by p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
            p.cpu,
            p.all.len(),
            ms(p.all.value_at_quantile(0.5)),
            ms(p.all.value_at_quantile(0.99)),
            ms(p.all.max()),
        ));
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
        let b = Sleeper {
            cpu: 1,
            per_second: vec![2500],
            all: {
                let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
                h.record(2500).unwrap();
                h
            },
        };
        let r = report(&[a, b], 1000);
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
    }
}
