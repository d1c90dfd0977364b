//! What a scenario found: its success criteria (each met or not, with the
//! evidence line that decided it), extra evidence, timed metrics, and the
//! verdict they add up to. A leaf: every scenario module writes one.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Fail,
    Skipped,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skipped => "SKIPPED",
        }
    }
}

/// One of the seed's success criteria, as checked.
#[derive(Debug, Clone, Serialize)]
pub struct Criterion {
    pub text: String,
    pub met: bool,
    /// What was observed.
    pub evidence: String,
}

/// A time the seed's Target Metrics table grades (Recovery Time, Failover Time).
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// The table's row name.
    pub metric: String,
    pub value_ms: f64,
    /// Target, Good, Acceptable or Fail.
    pub grade: String,
}

/// Why a scenario stopped early.
#[derive(Debug)]
pub enum Stop {
    /// It cannot run here (a fault command is missing, ...): SKIPPED.
    Skip(String),
    /// A step failed (no connection, a timeout): FAIL with this reason.
    Abort(String),
}

impl From<String> for Stop {
    fn from(s: String) -> Stop {
        Stop::Abort(s)
    }
}

/// Filled while a scenario runs.
#[derive(Debug, Default)]
pub struct Sheet {
    pub criteria: Vec<Criterion>,
    pub evidence: Vec<String>,
    pub timings: Vec<Timing>,
    /// Figures the Test Checklist reads (e.g. `cpu_max_pct`).
    pub figures: BTreeMap<String, f64>,
}

impl Sheet {
    /// Record a criterion; returns whether it was met.
    pub fn check(&mut self, text: &str, met: bool, evidence: impl Into<String>) -> bool {
        self.criteria.push(Criterion {
            text: text.to_string(),
            met,
            evidence: evidence.into(),
        });
        met
    }

    /// A line of evidence that decides nothing by itself.
    pub fn note(&mut self, line: impl Into<String>) {
        self.evidence.push(line.into());
    }
}

fn find(criteria: &[Criterion], prefix: &str) -> Option<bool> {
    criteria
        .iter()
        .find(|c| c.text.starts_with(prefix))
        .map(|c| c.met)
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub name: &'static str,
    /// The seed's test number (1-10).
    pub seed_test: u8,
    pub status: Status,
    /// Why it was skipped or aborted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub criteria: Vec<Criterion>,
    pub evidence: Vec<String>,
    pub timings: Vec<Timing>,
    pub figures: BTreeMap<String, f64>,
    pub duration_s: f64,
}

impl Verdict {
    /// Whether a criterion starting with `prefix` was checked and met.
    pub fn met(&self, prefix: &str) -> Option<bool> {
        find(&self.criteria, prefix)
    }

    /// PASS only when at least one criterion was checked and all were met.
    pub fn from_run(
        name: &'static str,
        seed_test: u8,
        sheet: Sheet,
        stop: Option<Stop>,
        duration_s: f64,
    ) -> Verdict {
        let (status, reason) = match stop {
            Some(Stop::Skip(r)) => (Status::Skipped, Some(r)),
            Some(Stop::Abort(r)) => (Status::Fail, Some(r)),
            None if sheet.criteria.is_empty() => {
                (Status::Fail, Some("no criterion was checked".into()))
            }
            None if sheet.criteria.iter().all(|c| c.met) => (Status::Pass, None),
            None => (Status::Fail, None),
        };
        Verdict {
            name,
            seed_test,
            status,
            reason,
            criteria: sheet.criteria,
            evidence: sheet.evidence,
            timings: sheet.timings,
            figures: sheet.figures,
            duration_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_passes_only_with_every_criterion_met() {
        let v = |sheet, stop| Verdict::from_run("x", 1, sheet, stop, 0.0).status;
        assert_eq!(v(Sheet::default(), None), Status::Fail, "nothing checked");
        let mut ok = Sheet::default();
        ok.check("a", true, "seen");
        assert_eq!(v(ok, None), Status::Pass);
        let mut bad = Sheet::default();
        bad.check("a", true, "seen");
        bad.check("b", false, "not seen");
        assert_eq!(v(bad, None), Status::Fail);
        let mut aborted = Sheet::default();
        aborted.check("a", true, "seen");
        assert_eq!(v(aborted, Some(Stop::Abort("x".into()))), Status::Fail);
        assert_eq!(
            v(Sheet::default(), Some(Stop::Skip("no cmd".into()))),
            Status::Skipped
        );
    }
}
