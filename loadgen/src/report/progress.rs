//! The live progress line on stderr, redrawn once a second (only on a
//! terminal, and not with `--quiet`).

use crate::engine::collect::{Second, SecondSink};
use crate::engine::stats::Summary;
use crate::report::fmt::fmt_us;

/// Draws one line per second over the previous one.
pub struct Progress {
    drew: bool,
}

impl Progress {
    pub fn new() -> Progress {
        Progress { drew: false }
    }

    /// End the line, so what is printed next starts on its own.
    pub fn finish(&mut self) {
        if self.drew {
            eprintln!();
            self.drew = false;
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl SecondSink for Progress {
    fn second(&mut self, s: &Second) {
        let secs = s.len.as_secs_f64().max(0.001);
        let d = &s.delta;
        eprint!(
            "\r[{:>5.0}s] open {:>6}  sent {:>8.0}/s  recv {:>8.0}/s  p99 {:>8}  timeouts {:>5}  errors {:>5}   ",
            (s.start + s.len).as_secs_f64(),
            s.open,
            d.sent as f64 / secs,
            d.received as f64 / secs,
            fmt_us(Summary::of(&s.corrected).p99),
            d.timeouts,
            d.total_errors(),
        );
        self.drew = true;
    }
}
