//! The whole machine's CPU, and which seconds a run's CPU figures read.
//!
//! Two things a per-process CPU figure misses, both measured here:
//! - **The ramp.** A run's message rate is read over its plateau (the
//!   seconds with at least 90 % of its peak connections open). CPU averaged
//!   over every second with a connection open also charges the connection
//!   storm's handshakes to those messages. So CPU is kept per second and
//!   averaged over the same plateau seconds as the rate ([`on_plateau`]).
//! - **Work no process is charged for.** On loopback much of TCP's receive
//!   path runs as softirq work: in the sending process's time while the
//!   machine has room, but more and more in `ksoftirqd` threads, charged
//!   to no process under test, as it fills. So two stacks with the same
//!   process CPU per message can load the machine differently. `/proc/stat` splits the whole machine's time into user,
//!   system and softirq; its busy time per message is what a machine can
//!   afford (issue 12: tcp_floor's user share was 3 % where ours was 23 %).

use serde::Serialize;

/// At most this many seconds are kept per series (36 h at one a second):
/// a longer run's CPU is read over its first 36 hours.
pub const MAX_SAMPLES: usize = 1 << 17;

/// Whether a second with `open` connections belongs to the plateau of a
/// run whose peak was `peak`: at least 90 % of the peak open.
pub fn on_plateau(open: i64, peak: i64) -> bool {
    peak > 0 && open.saturating_mul(10) >= peak.saturating_mul(9)
}

/// Per-second values with the connections open in each second.
#[derive(Debug, Clone)]
pub struct Seconds<T> {
    items: Vec<(i64, T)>,
}

impl<T> Default for Seconds<T> {
    fn default() -> Self {
        Seconds { items: Vec::new() }
    }
}

impl<T: Copy> Seconds<T> {
    pub fn push(&mut self, open: i64, v: T) {
        if self.items.len() < MAX_SAMPLES {
            self.items.push((open, v));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The values of the plateau (see [`on_plateau`]) of a run that peaked
    /// at `peak`, or of every second kept when it had none; and whether
    /// they are the plateau's.
    pub fn window(&self, peak: i64) -> (Vec<T>, bool) {
        let on: Vec<T> = self
            .items
            .iter()
            .filter(|(open, _)| on_plateau(*open, peak))
            .map(|(_, v)| *v)
            .collect();
        if on.is_empty() {
            (self.items.iter().map(|(_, v)| *v).collect(), false)
        } else {
            (on, true)
        }
    }
}

/// The mean of `values`, if there are any.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0u64), |(a, n), v| (a + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// One second of the whole host: its CPU %, the part no watched process
/// accounts for, and `/proc/stat`'s split when there is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSecond {
    pub cpu: f64,
    pub other: f64,
    pub split: Option<Split>,
}

impl Seconds<HostSecond> {
    /// The host's figures over [`Seconds::window`]; `None` without a second.
    pub fn report(&self, peak: i64, cpus: usize) -> Option<HostReport> {
        let (seconds, plateau) = self.window(peak);
        // A split only when every second has one.
        let split = |f: fn(&Split) -> f64| {
            let v: Option<Vec<f64>> = seconds.iter().map(|s| s.split.as_ref().map(f)).collect();
            mean(v?)
        };
        Some(HostReport {
            cpus,
            cpu_pct: mean(seconds.iter().map(|s| s.cpu))?,
            other_cpu_pct: mean(seconds.iter().map(|s| s.other))?,
            user_pct: split(|s| s.user),
            system_pct: split(|s| s.system),
            softirq_pct: split(|s| s.irq),
            cpu_us_per_msg: None,
            plateau,
        })
    }
}

/// The whole host, to tell whether other processes competed for CPU and
/// what the machine as a whole spent per message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostReport {
    pub cpus: usize,
    /// Mean CPU % of the whole host (100 = one core) over the plateau
    /// (`plateau`), else over every second with connections open.
    pub cpu_pct: f64,
    /// Of that, what the monitored processes did not account for (other
    /// processes, and kernel work no process is charged for).
    pub other_cpu_pct: f64,
    /// The same seconds split by `/proc/stat` (Linux): user space, kernel
    /// on behalf of processes, and interrupt work (irq + softirq: on
    /// loopback, most of TCP's receive path). `null` elsewhere.
    pub user_pct: Option<f64>,
    pub system_pct: Option<f64>,
    pub softirq_pct: Option<f64>,
    /// The whole host's busy CPU per answered message (us): every process
    /// and the kernel together. Set by the report.
    pub cpu_us_per_msg: Option<f64>,
    /// The figures cover the plateau (true) or, for a run without one,
    /// every second with connections open (false).
    pub plateau: bool,
}

/// `/proc/stat`'s first line: the machine's time in each state since boot,
/// in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcStat {
    pub user: u64,
    pub system: u64,
    pub irq: u64,
    pub idle: u64,
    /// Every state, idle included.
    pub total: u64,
}

impl ProcStat {
    /// The machine's counters now; `None` where there is no `/proc/stat`.
    pub fn read() -> Option<ProcStat> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        ProcStat::parse(text.lines().next()?)
    }

    /// `cpu  user nice system idle iowait irq softirq steal ...`
    pub fn parse(line: &str) -> Option<ProcStat> {
        let mut f = line.split_whitespace();
        if f.next()? != "cpu" {
            return None;
        }
        let v: Vec<u64> = f.map(|x| x.parse().ok()).collect::<Option<_>>()?;
        if v.len() < 7 {
            return None;
        }
        // guest and guest_nice (fields 9 and 10) are already in user and nice.
        let total = v.iter().take(8).sum();
        Some(ProcStat {
            user: v[0] + v[1],
            system: v[2],
            irq: v[5] + v[6],
            idle: v[3] + v[4],
            total,
        })
    }

    /// The split between `self` (earlier) and `now`, in % of one core for
    /// a machine of `cpus` cores; `None` when no time passed.
    pub fn split_to(&self, now: &ProcStat, cpus: usize) -> Option<Split> {
        let total = now.total.checked_sub(self.total)?;
        if total == 0 {
            return None;
        }
        let pct = |a: u64, b: u64| b.saturating_sub(a) as f64 * 100.0 * cpus as f64 / total as f64;
        Some(Split {
            user: pct(self.user, now.user),
            system: pct(self.system, now.system),
            irq: pct(self.irq, now.irq),
            busy: 100.0 * cpus as f64 - pct(self.idle, now.idle),
        })
    }
}

/// Where a machine's time went over an interval, in % of one core.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Split {
    pub user: f64,
    pub system: f64,
    /// irq + softirq.
    pub irq: f64,
    /// Everything but idle and iowait.
    pub busy: f64,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0}% busy (user {:.0}%, system {:.0}%, softirq {:.0}%; 100% = one core)",
            self.busy, self.user, self.system, self.irq
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_is_read_and_split() {
        let a = ProcStat::parse("cpu  100 0 50 800 10 0 40 0 0 0").unwrap();
        let b = ProcStat::parse("cpu  160 20 90 900 10 5 65 0 0 0").unwrap();
        // 250 ticks passed on 2 cores: user 80, system 40, irq 30, idle 100.
        let s = a.split_to(&b, 2).unwrap();
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(near(s.user, 64.0) && near(s.system, 32.0), "{s:?}");
        assert!(near(s.irq, 24.0) && near(s.busy, 120.0), "{s:?}");
        assert_eq!(
            b.split_to(&a, 2),
            None,
            "counters that went back give nothing"
        );
        assert_eq!(a.split_to(&a, 2), None, "no time, no split");
        assert_eq!(ProcStat::parse("cpu0 1 2 3 4 5 6 7"), None);
        assert_eq!(ProcStat::parse("cpu 1 2 x 4 5 6 7"), None);
        assert_eq!(ProcStat::parse("cpu 1 2 3"), None);
    }

    #[test]
    fn the_plateau_is_the_seconds_near_the_peak() {
        let mut s = Seconds::default();
        // A ramp (cheap per second but not per message), then the hold.
        for (open, cpu) in [
            (100, 90.0),
            (500, 80.0),
            (950, 40.0),
            (1000, 42.0),
            (20, 5.0),
        ] {
            s.push(open, cpu);
        }
        assert_eq!(s.window(1000), (vec![40.0, 42.0], true));
        let (all, plateau) = s.window(0);
        assert!(
            !plateau && all.len() == 5,
            "no peak, no plateau: every second"
        );
        assert_eq!(mean(s.window(1000).0), Some(41.0));
        assert_eq!(mean([]), None);
        assert!(on_plateau(900, 1000) && !on_plateau(899, 1000));
        assert!(!on_plateau(i64::MAX, 0));
        assert!(on_plateau(i64::MAX, i64::MAX), "no overflow");
    }
}
