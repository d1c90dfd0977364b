//! Where the next step goes: climb until a step breaks the objective, then
//! bisect between the last step that held and the first that broke.
//!
//! Pure (no I/O, no clock) so the walk is unit-tested exactly; the caller
//! runs each step and adds the step and time bounds (`--max-steps`,
//! `--max-time`).

use crate::capacity::settings::Growth;
use serde::Serialize;

/// Which part of the search a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Climb,
    Narrow,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Climb => "climb",
            Kind::Narrow => "narrow",
        }
    }
}

/// Why the search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The first step already broke the objective.
    BrokeAtStart,
    /// Every step held, up to the largest value allowed.
    MaxHeld,
    /// Held and broke are within `--precision`.
    Narrowed,
    /// `--narrow-steps` were used.
    NarrowStepsUsed,
    /// `--max-steps` steps ran.
    MaxSteps,
    /// The next step would not have ended within `--max-time`.
    MaxTime,
    /// Ctrl-C.
    Interrupted,
}

impl Stop {
    /// A sentence for the report.
    pub fn text(self) -> &'static str {
        match self {
            Stop::BrokeAtStart => {
                "the first step already broke the objective: lower --start-rate (or --start-conns)"
            }
            Stop::MaxHeld => {
                "every step held up to the largest allowed (--max-rate or --max-conns): the capacity is at least that; raise it to find the limit"
            }
            Stop::Narrowed => "narrowed to within --precision",
            Stop::NarrowStepsUsed => "all --narrow-steps used",
            Stop::MaxSteps => "--max-steps reached",
            Stop::MaxTime => "--max-time reached: the next step would not have ended in time",
            Stop::Interrupted => "interrupted (Ctrl-C); the step under way is not counted",
        }
    }
}

/// The walk: values tried, the best that held and the lowest that broke.
#[derive(Debug, Clone)]
pub struct Walk {
    start: f64,
    max: f64,
    growth: Growth,
    /// Values are connection counts (whole numbers).
    whole: bool,
    precision: f64,
    narrow_left: u32,
    next_climb: f64,
    held: Option<f64>,
    broke: Option<f64>,
    stop: Option<Stop>,
}

impl Walk {
    pub fn new(
        start: f64,
        max: f64,
        growth: Growth,
        whole: bool,
        precision: f64,
        narrow: u32,
    ) -> Walk {
        Walk {
            start,
            max,
            growth,
            whole,
            precision,
            narrow_left: narrow,
            next_climb: start,
            held: None,
            broke: None,
            stop: None,
        }
    }

    /// The next value to try, or why the search is over.
    pub fn next(&self) -> Result<(f64, Kind), Stop> {
        if let Some(s) = self.stop {
            return Err(s);
        }
        let Some(bad) = self.broke else {
            return Ok((self.next_climb, Kind::Climb));
        };
        let Some(good) = self.held else {
            return Err(Stop::BrokeAtStart);
        };
        let gap = bad - good;
        if gap <= self.precision * good || (self.whole && gap <= 1.0) {
            return Err(Stop::Narrowed);
        }
        if self.narrow_left == 0 {
            return Err(Stop::NarrowStepsUsed);
        }
        let mid = good + gap / 2.0;
        Ok((if self.whole { mid.floor() } else { mid }, Kind::Narrow))
    }

    /// What the step at `v` (the one [`Walk::next`] gave) did.
    pub fn record(&mut self, v: f64, kind: Kind, held: bool) {
        if kind == Kind::Narrow {
            self.narrow_left = self.narrow_left.saturating_sub(1);
        }
        if held {
            self.held = Some(self.held.map_or(v, |h| h.max(v)));
        } else {
            self.broke = Some(self.broke.map_or(v, |b| b.min(v)));
        }
        if kind == Kind::Climb && held {
            if v >= self.max {
                self.stop = Some(Stop::MaxHeld);
            } else {
                self.next_climb = self.growth.after(v, self.whole).min(self.max);
            }
        }
    }

    /// End the walk for a reason of the caller's (steps, time).
    pub fn end(&mut self, why: Stop) {
        self.stop.get_or_insert(why);
    }

    /// The largest value that held.
    pub fn held(&self) -> Option<f64> {
        self.held
    }

    /// The smallest value that broke.
    pub fn broke(&self) -> Option<f64> {
        self.broke
    }

    /// The first value tried.
    pub fn start(&self) -> f64 {
        self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walk against a system that holds everything up to `capacity`.
    fn walk(mut w: Walk, capacity: f64) -> (Vec<(f64, Kind)>, Stop, Option<f64>) {
        let mut tried = Vec::new();
        loop {
            match w.next() {
                Ok((v, k)) => {
                    tried.push((v, k));
                    w.record(v, k, v <= capacity);
                    assert!(tried.len() < 100, "the walk must end");
                }
                Err(s) => return (tried, s, w.held()),
            }
        }
    }

    #[test]
    fn climbs_by_factor_then_bisects() {
        let w = Walk::new(100.0, 100_000.0, Growth::Times(2.0), false, 0.03, 4);
        let (tried, stop, held) = walk(w, 500.0);
        let values: Vec<f64> = tried.iter().map(|t| t.0).collect();
        assert_eq!(
            values,
            [100.0, 200.0, 400.0, 800.0, 600.0, 500.0, 550.0, 525.0]
        );
        assert_eq!(tried[3].1, Kind::Climb);
        assert_eq!(tried[4].1, Kind::Narrow);
        assert_eq!(stop, Stop::NarrowStepsUsed);
        assert_eq!(held, Some(500.0));
    }

    #[test]
    fn precision_ends_narrowing_early() {
        let w = Walk::new(100.0, 100_000.0, Growth::Plus(100.0), false, 0.06, 10);
        let (tried, stop, held) = walk(w, 430.0);
        let values: Vec<f64> = tried.iter().map(|t| t.0).collect();
        // 400 held, 500 broke; 450 broke, 425 held: gap 25 <= 6% of 425.
        assert_eq!(values, [100.0, 200.0, 300.0, 400.0, 500.0, 450.0, 425.0]);
        assert_eq!(stop, Stop::Narrowed);
        assert_eq!(held, Some(425.0));
    }

    #[test]
    fn the_max_caps_the_climb_and_ends_it_when_held() {
        let w = Walk::new(100.0, 300.0, Growth::Times(2.0), false, 0.03, 4);
        let (tried, stop, held) = walk(w, 1e9);
        let values: Vec<f64> = tried.iter().map(|t| t.0).collect();
        assert_eq!(values, [100.0, 200.0, 300.0]);
        assert_eq!(stop, Stop::MaxHeld);
        assert_eq!(held, Some(300.0));
    }

    #[test]
    fn a_broken_start_ends_at_once() {
        let w = Walk::new(100.0, 300.0, Growth::Times(2.0), false, 0.03, 4);
        let (tried, stop, held) = walk(w, 50.0);
        assert_eq!(tried.len(), 1);
        assert_eq!(stop, Stop::BrokeAtStart);
        assert_eq!(held, None);
    }

    #[test]
    fn connection_counts_stay_whole_and_stop_one_apart() {
        let w = Walk::new(1.0, 1000.0, Growth::Times(1.2), true, 0.0, 20);
        let (tried, stop, held) = walk(w, 7.0);
        let values: Vec<f64> = tried.iter().map(|t| t.0).collect();
        assert!(values.iter().all(|v| v.fract() == 0.0), "{values:?}");
        // x1.2 of 1 rounds to 1: still one more.
        assert_eq!(&values[..3], [1.0, 2.0, 3.0]);
        assert_eq!(stop, Stop::Narrowed);
        assert_eq!(held, Some(7.0));
    }

    #[test]
    fn the_caller_can_end_it() {
        let mut w = Walk::new(100.0, 300.0, Growth::Times(2.0), false, 0.03, 4);
        w.end(Stop::MaxTime);
        assert_eq!(w.next(), Err(Stop::MaxTime));
    }
}
