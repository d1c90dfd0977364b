//! Two reports' headline figures side by side: the change of each, and
//! which `--max-regression` limits it exceeds.
//!
//! A regression is a change for the worse, in percent of the baseline: a
//! higher latency or a lower rate. From a baseline of 0 (no errors), any
//! worsening is an infinite regression, so `errors=0%` reads "no new
//! errors". A limit on a figure one of the reports lacks cannot be checked,
//! and fails: a gate must not pass on a figure it never saw.

use crate::compare::headline::{Better, Headline, METRICS, Metric, Unit};
use crate::compare::limits::Limit;
use crate::report::fmt::fmt_us;
use std::fmt::Write as _;

/// One figure of both reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: Metric,
    pub base: Option<f64>,
    pub new: Option<f64>,
    /// Regression in percent of the baseline (negative: better), when both exist.
    pub regression: Option<f64>,
    /// Its `--max-regression`, if any.
    pub limit: Option<f64>,
}

impl Row {
    /// Why this row fails its limit, if it does.
    pub fn exceeded(&self) -> Option<String> {
        let limit = self.limit?;
        let m = &self.metric;
        match self.regression {
            Some(r) if r > limit => Some(format!(
                "{} ({}) is {} worse: {} -> {} (limit {limit}%)",
                m.key,
                m.label.to_lowercase(),
                pct(r),
                value(m.unit, self.base),
                value(m.unit, self.new),
            )),
            Some(_) => None,
            None => Some(format!(
                "{} ({}) cannot be checked against its limit {limit}%: base {}, new {}",
                m.key,
                m.label.to_lowercase(),
                value(m.unit, self.base),
                value(m.unit, self.new),
            )),
        }
    }
}

/// The comparison of two reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
    /// Lines worth knowing before reading the table (graded phases differ).
    pub notes: Vec<String>,
}

/// Regression of `new` against `base`, in percent of `base`.
pub fn regression(better: Better, base: f64, new: f64) -> f64 {
    let worse_by = match better {
        Better::Lower => new - base,
        Better::Higher => base - new,
    };
    if worse_by == 0.0 {
        0.0
    } else if base == 0.0 {
        worse_by.signum() * f64::INFINITY
    } else {
        worse_by / base.abs() * 100.0
    }
}

/// Compare `new` against `base` under `limits`.
pub fn compare(base: &Headline, new: &Headline, limits: &[Limit]) -> Comparison {
    let rows = METRICS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (b, n) = (base.values[i], new.values[i]);
            Row {
                metric: *m,
                base: b,
                new: n,
                regression: b.zip(n).map(|(b, n)| regression(m.better, b, n)),
                limit: limits.iter().find(|l| l.metric == i).map(|l| l.pct),
            }
        })
        .collect();
    let mut notes = Vec::new();
    if base.offered != new.offered {
        notes.push(format!(
            "the runs offered different loads (base: {}; new: {}): their figures are not like for like",
            base.offered, new.offered
        ));
    }
    if base.graded != new.graded {
        notes.push(format!(
            "the reports graded different phases (base: {}, new: {}): latency and replies per second compare {} with {}",
            base.graded, new.graded, base.graded, new.graded
        ));
    }
    Comparison { rows, notes }
}

impl Comparison {
    /// Every exceeded (or uncheckable) limit, one line each.
    pub fn exceeded(&self) -> Vec<String> {
        self.rows.iter().filter_map(Row::exceeded).collect()
    }

    /// The table, Markdown-shaped, one row per figure.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s.push_str("| Figure | Key | Base | New | Change | Limit |\n");
        s.push_str("|--------|-----|------|-----|--------|-------|\n");
        for r in &self.rows {
            let change = match r.regression {
                Some(0.0) => "same".to_string(),
                Some(x) => format!(
                    "{} ({})",
                    signed_change(r),
                    if x > 0.0 { "worse" } else { "better" }
                ),
                None => "n/a".to_string(),
            };
            let limit = match (r.limit, r.exceeded()) {
                (None, _) => String::new(),
                (Some(l), None) => format!("{l}%: held"),
                (Some(l), Some(_)) => format!("{l}%: EXCEEDED"),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                r.metric.label,
                r.metric.key,
                value(r.metric.unit, r.base),
                value(r.metric.unit, r.new),
                change,
                limit
            );
        }
        s
    }
}

/// The raw change of a row's value, in percent of the base ("+12.5%").
fn signed_change(r: &Row) -> String {
    match (r.base, r.new) {
        (Some(b), Some(n)) if b != 0.0 => format!("{:+.1}%", (n - b) / b.abs() * 100.0),
        (Some(_), Some(n)) => format!("from 0 to {}", value(r.metric.unit, Some(n))),
        _ => "n/a".into(),
    }
}

fn pct(r: f64) -> String {
    if r.is_infinite() {
        "infinitely (from 0)".into()
    } else {
        format!("{r:.1}%")
    }
}

/// A figure for people, in its unit.
pub fn value(unit: Unit, v: Option<f64>) -> String {
    let Some(v) = v else {
        return "n/a".into();
    };
    match unit {
        Unit::Us => fmt_us(v.round() as u64),
        Unit::PerSec => format!("{v:.1}/s"),
        Unit::Fraction => format!("{:.3}%", v * 100.0),
        Unit::Count => format!("{v:.0}"),
        Unit::CpuUs => format!("{v:.1} us"),
        Unit::Bytes => format!("{:.1} KiB", v / 1024.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::headline::metric;

    fn headline(p99: f64, per_sec: f64, errors: f64) -> Headline {
        let mut values = [None; METRICS.len()];
        values[metric("p99").unwrap()] = Some(p99);
        values[metric("per_sec").unwrap()] = Some(per_sec);
        values[metric("errors").unwrap()] = Some(errors);
        Headline {
            started_at: "t".into(),
            graded: "steady".into(),
            offered: "echo, 10 connections x 10/s".into(),
            values,
        }
    }

    fn limit(key: &str, pct: f64) -> Limit {
        Limit {
            metric: metric(key).unwrap(),
            pct,
        }
    }

    #[test]
    fn regressions_read_the_direction_of_better() {
        assert_eq!(regression(Better::Lower, 10.0, 12.0), 20.0);
        assert_eq!(regression(Better::Higher, 100.0, 90.0), 10.0);
        assert_eq!(regression(Better::Higher, 100.0, 110.0), -10.0);
        assert_eq!(regression(Better::Lower, 0.0, 3.0), f64::INFINITY);
        assert_eq!(regression(Better::Lower, 0.0, 0.0), 0.0);
    }

    #[test]
    fn only_limits_exceeded_are_named() {
        let base = headline(5_000.0, 1000.0, 0.0);
        let new = headline(20_000.0, 960.0, 0.0);
        let limits = [
            limit("p99", 10.0),
            limit("per_sec", 5.0),
            limit("errors", 0.0),
        ];
        let c = compare(&base, &new, &limits);
        let ex = c.exceeded();
        assert_eq!(ex.len(), 1, "{ex:?}");
        assert!(ex[0].starts_with("p99 "), "{ex:?}");
        assert!(ex[0].contains("300.0% worse"), "{ex:?}");
        let t = c.table();
        assert!(t.contains("| 10%: EXCEEDED |"), "{t}");
        assert!(t.contains("| 5%: held |"), "{t}");
        assert!(compare(&base, &base, &limits).exceeded().is_empty());
    }

    #[test]
    fn a_limit_on_a_missing_figure_fails() {
        let base = headline(5_000.0, 1000.0, 0.0);
        let c = compare(&base, &base, &[limit("mem_per_conn", 10.0)]);
        let ex = c.exceeded();
        assert_eq!(ex.len(), 1);
        assert!(ex[0].contains("cannot be checked"), "{ex:?}");
    }
}
