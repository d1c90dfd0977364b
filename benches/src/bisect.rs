//! The search for one side's highest passing connection count, as a state
//! machine that is told each run's outcome instead of running the probes
//! itself.
//!
//! Why: floor_compare alternates the floor's runs and ours, so both
//! searches see the host of the same minutes. This machine's speed drifts
//! by a fifth within an hour; searching one side for five minutes and then
//! the other compared two different hosts (issue 12, session 9).

/// Where a search stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Trying the lowest count: if it fails, nothing passes.
    Bottom,
    /// Trying the highest count: if it passes, that is the best.
    Top,
    /// Halving `[lo, hi]` at this count.
    Middle(u32),
    Done(Option<u32>),
}

/// A bisection of `[from, to]` down to `resolution` connections, in which
/// a count passes only when `confirm` runs in a row pass there.
#[derive(Debug, Clone)]
pub struct Bisect {
    /// Always passes (once past `Bottom`).
    lo: u32,
    /// Always fails (once past `Top`).
    hi: u32,
    resolution: u32,
    confirm: u32,
    /// Runs in a row that passed at the current count.
    passed: u32,
    phase: Phase,
}

impl Bisect {
    pub fn new(from: u32, to: u32, resolution: u32, confirm: u32) -> Bisect {
        Bisect {
            lo: from,
            hi: to.max(from),
            resolution: resolution.max(1),
            confirm: confirm.max(1),
            passed: 0,
            phase: Phase::Bottom,
        }
    }

    /// The connection count to run next; `None` once the search ended.
    pub fn next(&self) -> Option<u32> {
        match self.phase {
            Phase::Bottom => Some(self.lo),
            Phase::Top => Some(self.hi),
            Phase::Middle(at) => Some(at),
            Phase::Done(_) => None,
        }
    }

    /// The outcome of one run at `next()`. A pass counts only once
    /// `confirm` runs in a row passed; the first failure decides.
    pub fn record(&mut self, pass: bool) {
        if pass {
            self.passed += 1;
            if self.passed < self.confirm {
                return;
            }
        }
        self.passed = 0;
        self.phase = match (self.phase, pass) {
            (Phase::Bottom, false) => Phase::Done(None),
            (Phase::Bottom, true) => Phase::Top,
            (Phase::Top, true) => Phase::Done(Some(self.hi)),
            (Phase::Top, false) => self.halve(),
            (Phase::Middle(at), true) => {
                self.lo = at;
                self.halve()
            }
            (Phase::Middle(at), false) => {
                self.hi = at;
                self.halve()
            }
            (done @ Phase::Done(_), _) => done,
        };
    }

    fn halve(&self) -> Phase {
        if self.hi - self.lo > self.resolution {
            Phase::Middle(self.lo + (self.hi - self.lo) / 2)
        } else {
            Phase::Done(Some(self.lo))
        }
    }

    /// The highest count that passed, once `next()` is `None`: `None` if
    /// even the lowest failed (or the search has not ended).
    pub fn best(&self) -> Option<u32> {
        match self.phase {
            Phase::Done(best) => best,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a search against a side that passes up to `limit`.
    fn search(mut b: Bisect, limit: u32) -> (Option<u32>, Vec<u32>) {
        let mut runs = Vec::new();
        while let Some(c) = b.next() {
            assert!(runs.len() < 100, "the search does not end");
            runs.push(c);
            b.record(c <= limit);
        }
        (b.best(), runs)
    }

    #[test]
    fn finds_the_highest_passing_count_within_the_resolution() {
        let (best, runs) = search(Bisect::new(1000, 9000, 100, 1), 6300);
        let best = best.unwrap();
        assert!((6200..=6300).contains(&best), "{best}");
        assert_eq!(&runs[..2], &[1000, 9000]);
        assert!(runs.len() < 12, "{runs:?}");
        assert_eq!(search(Bisect::new(1000, 9000, 100, 1), 500).0, None);
        assert_eq!(search(Bisect::new(1000, 9000, 100, 1), 9000).0, Some(9000));
        // A range narrower than the resolution: its two ends only.
        assert_eq!(search(Bisect::new(1000, 1050, 100, 1), 1020).0, Some(1000));
    }

    #[test]
    fn with_confirm_every_run_at_a_count_must_pass() {
        // At 20 the first run passes and the second fails: a lucky pass.
        let mut b = Bisect::new(10, 20, 5, 2);
        let mut at_20 = 0;
        let mut runs = Vec::new();
        while let Some(c) = b.next() {
            runs.push(c);
            at_20 += u32::from(c == 20);
            b.record(c < 20 || at_20 == 1);
        }
        assert_eq!(runs, [10, 10, 20, 20, 15, 15]);
        assert_eq!(b.best(), Some(15));
        // One failure at the bottom ends it, without a second run.
        let mut b = Bisect::new(10, 20, 5, 3);
        b.record(false);
        assert_eq!((b.next(), b.best()), (None, None));
    }
}
