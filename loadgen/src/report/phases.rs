//! The run cut into the plan's phases, each measured apart.
//!
//! A connection storm at the start (thousands of handshakes at once) and
//! the drain at the end are not the state a system is sized for: graded
//! together with the hold, two seconds of storm decide a forty-second run's
//! p99. So every second of a run belongs to one phase:
//!
//! - **ramp-up** until the plan has stopped rising *and* every connection it
//!   wants is open (or, once `--connect-rate` could have opened them all, a
//!   whole second passed in which no connection attempt finished: the ones
//!   still missing are not coming). A constant plan wants
//!   all its connections at t=0, so its connection storm is its ramp-up;
//! - **steady** from then until the plan's target starts falling (stages) or
//!   sending ends;
//! - **ramp-down** from then to the end of the drain.
//!
//! Phases are whole seconds (the [`Second`]s the collector hands every
//! sink), and a figure counts in the second it was measured: a reply's
//! latency in the second it arrived, a connection time in the second the
//! connection opened. Histograms add exactly, so each phase's percentiles
//! are exact and the three phases add up to the whole run.

use crate::engine::collect::{Second, SecondSink};
use crate::engine::plan::Plan;
use crate::engine::stats::{Counts, new_hist};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// One of the plan's three phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    RampUp,
    Steady,
    RampDown,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::RampUp => "ramp-up",
            Phase::Steady => "steady",
            Phase::RampDown => "ramp-down",
        }
    }
}

/// Decides each second's phase, from the plan and what the second measured.
#[derive(Debug, Clone)]
pub struct PhaseClock {
    /// When the plan first wants its most connections.
    rise_end: Duration,
    /// Before this, `--connect-rate` cannot have opened them all yet, so a
    /// second without a finished attempt does not end the ramp-up.
    paced_until: Duration,
    /// When the plan's target first falls below that (or sending ends).
    fall_start: Duration,
    /// The most connections the plan wants.
    peak: u64,
    /// Ramp-up is over: seconds before `fall_start` are steady.
    held: bool,
}

impl PhaseClock {
    pub fn new(plan: &Plan) -> PhaseClock {
        let peak = plan.max_conns();
        let mut t = Duration::ZERO;
        let mut rise_end = None;
        let mut fall_start = plan.total();
        for stage in &plan.stages {
            if rise_end.is_none() {
                if stage.target == peak {
                    rise_end = Some(t + stage.duration);
                }
            } else if stage.target < peak {
                fall_start = t;
                break;
            }
            t += stage.duration;
        }
        let paced = plan
            .connect_rate
            .filter(|r| *r > 0.0)
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(peak as f64 / r));
        PhaseClock {
            rise_end: rise_end.unwrap_or(fall_start),
            paced_until: paced,
            fall_start,
            peak,
            held: false,
        }
    }

    /// The phase of second `s`; seconds must come in order.
    pub fn phase(&mut self, s: &Second) -> Phase {
        if s.start + s.len / 2 >= self.fall_start {
            return Phase::RampDown;
        }
        if self.held {
            return Phase::Steady;
        }
        // Ramp-up to the end of the second in which it finished.
        let end = s.start + s.len;
        let risen = end >= self.rise_end;
        let all_open = s.open >= 0 && s.open as u64 >= self.peak;
        let settled = s.delta.conn_ok + s.delta.conn_failed == 0 && end >= self.paced_until;
        if risen && (all_open || settled) {
            self.held = true;
        }
        Phase::RampUp
    }
}

/// Everything measured in one phase.
#[derive(Debug, Clone)]
pub struct PhaseAcc {
    /// Seconds in the phase.
    pub seconds: u32,
    /// Start of its first second and end of its last, since the run's start.
    pub span: Option<(Duration, Duration)>,
    /// The seconds' lengths added up.
    pub len: Duration,
    /// Most connections open at the end of one of its seconds.
    pub peak_open: i64,
    pub counts: Counts,
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub conn_time: Histogram<u64>,
    pub send_lag: Histogram<u64>,
}

impl Default for PhaseAcc {
    fn default() -> Self {
        PhaseAcc {
            seconds: 0,
            span: None,
            len: Duration::ZERO,
            peak_open: 0,
            counts: Counts::default(),
            corrected: new_hist(),
            uncorrected: new_hist(),
            conn_time: new_hist(),
            send_lag: new_hist(),
        }
    }
}

impl PhaseAcc {
    fn add(&mut self, s: &Second) {
        self.seconds += 1;
        let end = s.start + s.len;
        self.span = Some(self.span.map_or((s.start, end), |(a, b)| (a, b.max(end))));
        self.len += s.len;
        self.peak_open = self.peak_open.max(s.open);
        self.counts.add(&s.delta);
        for (a, b) in [
            (&mut self.corrected, &s.corrected),
            (&mut self.uncorrected, &s.uncorrected),
            (&mut self.conn_time, &s.conn_time),
            (&mut self.send_lag, &s.send_lag),
        ] {
            // Same bounds: exact.
            let _ = a.add(b);
        }
    }
}

/// The per-second sink that sorts seconds into phases and adds them up.
pub struct Phases {
    clock: PhaseClock,
    pub ramp_up: PhaseAcc,
    pub steady: PhaseAcc,
    pub ramp_down: PhaseAcc,
    /// Each second's phase, in order (at most `max_len`, like the series).
    pub timeline: Vec<Phase>,
    max_len: usize,
}

impl Phases {
    pub fn new(plan: &Plan, max_len: usize) -> Phases {
        Phases {
            clock: PhaseClock::new(plan),
            ramp_up: PhaseAcc::default(),
            steady: PhaseAcc::default(),
            ramp_down: PhaseAcc::default(),
            timeline: Vec::new(),
            max_len,
        }
    }

    pub fn get(&self, p: Phase) -> &PhaseAcc {
        match p {
            Phase::RampUp => &self.ramp_up,
            Phase::Steady => &self.steady,
            Phase::RampDown => &self.ramp_down,
        }
    }
}

impl SecondSink for Phases {
    fn second(&mut self, s: &Second) {
        let p = self.clock.phase(s);
        match p {
            Phase::RampUp => self.ramp_up.add(s),
            Phase::Steady => self.steady.add(s),
            Phase::RampDown => self.ramp_down.add(s),
        }
        if self.timeline.len() < self.max_len {
            self.timeline.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::parse_stages;
    use crate::engine::stats::record;

    fn sec(start_ms: u64, open: i64, opened: u64, lat_us: u64) -> Second {
        let mut s = Second::empty();
        s.start = Duration::from_millis(start_ms);
        s.len = Duration::from_millis(1000);
        s.open = open;
        s.delta.conn_ok = opened;
        s.delta.sent = 10;
        record(&mut s.corrected, lat_us);
        record(&mut s.conn_time, lat_us);
        s
    }

    fn staged(stages: &str) -> Plan {
        Plan {
            stages: parse_stages(stages).unwrap(),
            rate: 1.0,
            connect_rate: None,
        }
    }

    #[test]
    fn a_constant_plans_connection_storm_is_its_ramp_up() {
        let plan = Plan::constant(100, Duration::from_secs(5), 1.0, None);
        let mut ph = Phases::new(&plan, 100);
        // The storm takes two seconds; then three steady ones; then the drain.
        for s in [
            sec(0, 60, 60, 300_000),
            sec(1000, 100, 40, 200_000),
            sec(2000, 100, 0, 5_000),
            sec(3000, 100, 0, 5_000),
            sec(4000, 100, 0, 6_000),
            sec(5000, 100, 0, 5_000),
        ] {
            ph.second(&s);
        }
        use Phase::*;
        assert_eq!(
            ph.timeline,
            [RampUp, RampUp, Steady, Steady, Steady, RampDown]
        );
        assert_eq!(ph.ramp_up.conn_time.len(), 2);
        assert!(ph.ramp_up.corrected.min() >= 199_000);
        assert!(ph.steady.corrected.max() < 7_000);
        assert_eq!(ph.steady.seconds, 3);
        assert_eq!(ph.steady.counts.sent, 30);
        assert_eq!(
            ph.steady.span,
            Some((Duration::from_secs(2), Duration::from_secs(5)))
        );
        assert_eq!(ph.ramp_up.peak_open, 100);
    }

    #[test]
    fn stages_hold_between_rising_and_falling() {
        let plan = staged("2s:10,3s:10,2s:0");
        let mut clock = PhaseClock::new(&plan);
        let phases: Vec<Phase> = [
            (0, 5),
            (1000, 10),
            (2000, 10),
            (3000, 10),
            (4000, 10),
            (5000, 5),
            (6000, 0),
            (7000, 0),
        ]
        .into_iter()
        .map(|(t, open)| clock.phase(&sec(t, open, 1, 1)))
        .collect();
        use Phase::*;
        // All 10 are open at 2 s, but the plan rose until then.
        assert_eq!(
            phases,
            [
                RampUp, RampUp, Steady, Steady, Steady, RampDown, RampDown, RampDown
            ]
        );
    }

    #[test]
    fn connections_that_never_open_end_the_ramp_once_attempts_stop() {
        let plan = Plan::constant(10, Duration::from_secs(4), 1.0, None);
        let mut clock = PhaseClock::new(&plan);
        // Only 8 of 10 open: the ramp ends after a second with no attempt.
        let mut failed = sec(0, 8, 8, 1);
        failed.delta.conn_failed = 2;
        assert_eq!(clock.phase(&failed), Phase::RampUp);
        assert_eq!(clock.phase(&sec(1000, 8, 0, 1)), Phase::RampUp);
        assert_eq!(clock.phase(&sec(2000, 8, 0, 1)), Phase::Steady);
        // Paced by --connect-rate 2: a quiet second within the 5 s the
        // rate needs to open all 10 is not the end of the ramp.
        let paced = Plan::constant(10, Duration::from_secs(9), 1.0, Some(2.0));
        let mut clock = PhaseClock::new(&paced);
        let seconds = [(2, 2), (4, 2), (4, 0), (6, 2), (8, 2), (10, 2), (10, 0)];
        let phases: Vec<Phase> = seconds
            .iter()
            .enumerate()
            .map(|(t, &(open, opened))| clock.phase(&sec(t as u64 * 1000, open, opened, 1)))
            .collect();
        use Phase::*;
        assert_eq!(
            phases,
            [RampUp, RampUp, RampUp, RampUp, RampUp, RampUp, Steady]
        );
    }

    #[test]
    fn a_plan_without_a_hold_has_no_steady_phase() {
        let mut clock = PhaseClock::new(&staged("2s:10,2s:0"));
        let got: Vec<Phase> = (0..4)
            .map(|t| clock.phase(&sec(t * 1000, 10, 0, 1)))
            .collect();
        assert!(!got.contains(&Phase::Steady), "{got:?}");
    }
}
