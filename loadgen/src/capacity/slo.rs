//! The objective a step must hold: latency percentiles under limits
//! (`--slo 'p99<50ms'`) and an error budget (`--max-errors 1%`).
//!
//! Parsed once into typed values; a step is judged by [`Slo::judge`], a
//! pure function of its figures, so what "held" means is unit-tested.

use crate::engine::stats::Summary;
use serde::Serialize;

/// A latency percentile an objective can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pct {
    P50,
    P90,
    P95,
    P99,
    P999,
}

impl Pct {
    fn parse(s: &str) -> Option<Pct> {
        Some(match s.to_ascii_lowercase().as_str() {
            "p50" => Pct::P50,
            "p90" => Pct::P90,
            "p95" => Pct::P95,
            "p99" => Pct::P99,
            "p99.9" | "p999" => Pct::P999,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Pct::P50 => "p50",
            Pct::P90 => "p90",
            Pct::P95 => "p95",
            Pct::P99 => "p99",
            Pct::P999 => "p99.9",
        }
    }

    /// This percentile of `s`, in microseconds.
    pub fn of(self, s: &Summary) -> u64 {
        match self {
            Pct::P50 => s.p50,
            Pct::P90 => s.p90,
            Pct::P95 => s.p95,
            Pct::P99 => s.p99,
            Pct::P999 => s.p999,
        }
    }
}

/// One latency objective: `pct` below (or at most) `limit_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Objective {
    pub pct: Pct,
    pub limit_us: u64,
    /// `<=` rather than `<`.
    pub inclusive: bool,
}

impl Objective {
    pub fn holds(&self, us: u64) -> bool {
        if self.inclusive {
            us <= self.limit_us
        } else {
            us < self.limit_us
        }
    }

    /// As the user would write it: "p99<50ms".
    pub fn text(&self) -> String {
        let op = if self.inclusive { "<=" } else { "<" };
        format!("{}{op}{}", self.pct.name(), fmt_limit(self.limit_us))
    }
}

fn fmt_limit(us: u64) -> String {
    if us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

/// Everything a step must hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slo {
    pub latency: Vec<Objective>,
    /// Most failed messages, as a fraction (0..=1) of those sent.
    pub max_error_frac: f64,
}

/// What a step measured, as far as the objective is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Corrected latency of the graded phase.
    pub latency: Summary,
    pub sent: u64,
    /// Timed out, lost with their connection, or answered wrong.
    pub failed: u64,
}

impl Slo {
    /// Why the step did not hold (empty: it held).
    pub fn judge(&self, m: &Measured) -> Vec<String> {
        let mut why = Vec::new();
        if m.latency.count == 0 {
            why.push("no reply was measured".to_string());
        } else {
            for o in &self.latency {
                let v = o.pct.of(&m.latency);
                if !o.holds(v) {
                    why.push(format!(
                        "{} {} missed {}",
                        o.pct.name(),
                        crate::report::fmt::fmt_us(v),
                        o.text()
                    ));
                }
            }
        }
        if m.sent > 0 && m.failed as f64 > self.max_error_frac * m.sent as f64 {
            why.push(format!(
                "{} of {} messages failed ({:.2} %), over the {} % error budget",
                m.failed,
                m.sent,
                m.failed as f64 * 100.0 / m.sent as f64,
                self.max_error_frac * 100.0
            ));
        }
        why
    }
}

/// Parse `--slo`: "p99<50ms", several separated by commas.
pub fn parse_latency(s: &str) -> Result<Vec<Objective>, String> {
    let mut out: Vec<Objective> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, rest, inclusive) = if let Some((a, b)) = part.split_once("<=") {
            (a, b, true)
        } else if let Some((a, b)) = part.split_once('<') {
            (a, b, false)
        } else {
            return Err(format!(
                "--slo {part:?} is not PERCENTILE<LIMIT, e.g. --slo 'p99<50ms'"
            ));
        };
        let pct = Pct::parse(name.trim()).ok_or_else(|| {
            format!("--slo {part:?}: unknown percentile {name:?}; use p50, p90, p95, p99 or p99.9")
        })?;
        let limit_us = parse_limit(rest.trim()).ok_or_else(|| {
            format!(
                "--slo {part:?}: cannot read the limit {rest:?}; write it like 50ms, 800us or 1s"
            )
        })?;
        if limit_us == 0 {
            return Err(format!("--slo {part:?}: the limit must be above 0"));
        }
        if out.iter().any(|o| o.pct == pct) {
            return Err(format!("--slo names {} twice", pct.name()));
        }
        out.push(Objective {
            pct,
            limit_us,
            inclusive,
        });
    }
    if out.is_empty() {
        return Err("--slo is empty; e.g. --slo 'p99<50ms'".into());
    }
    Ok(out)
}

/// "50ms", "800us", "1.5s" in microseconds (at most an hour).
fn parse_limit(s: &str) -> Option<u64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => return None,
    };
    let us = n * mult;
    (us.is_finite() && us <= 3.6e9).then_some(us.round() as u64)
}

/// Parse a percentage such as "1%" or "0.5" into a fraction (0..=1).
pub fn parse_pct(flag: &str, s: &str) -> Result<f64, String> {
    let t = s.trim();
    let num = t.strip_suffix('%').unwrap_or(t).trim();
    match num.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v / 100.0),
        _ => Err(format!(
            "{flag} {s:?} is not a percentage from 0 to 100, e.g. {flag} 1%"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p50: u64, p99: u64) -> Summary {
        Summary {
            count: 100,
            p50,
            p90: p50,
            p95: p99,
            p99,
            p999: p99,
            max: p99,
            ..Summary::default()
        }
    }

    #[test]
    fn objectives_parse_with_units_and_several_percentiles() {
        let v = parse_latency("p99<50ms, p50<=800us,p99.9<1.5s").unwrap();
        assert_eq!(
            v,
            [
                Objective {
                    pct: Pct::P99,
                    limit_us: 50_000,
                    inclusive: false
                },
                Objective {
                    pct: Pct::P50,
                    limit_us: 800,
                    inclusive: true
                },
                Objective {
                    pct: Pct::P999,
                    limit_us: 1_500_000,
                    inclusive: false
                },
            ]
        );
        assert_eq!(v[0].text(), "p99<50ms");
        assert_eq!(v[1].text(), "p50<=800us");
        assert_eq!(parse_latency("p90<2s").unwrap()[0].limit_us, 2_000_000);
        for bad in [
            "",
            "p98<5ms",
            "p99>5ms",
            "p99<5",
            "p99<fast",
            "p99<0ms",
            "p99<1ms,p99<2ms",
        ] {
            assert!(parse_latency(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_pct("--max-errors", "1%").unwrap(), 0.01);
        assert_eq!(parse_pct("--max-errors", "0").unwrap(), 0.0);
        assert!(parse_pct("--max-errors", "101%").is_err());
        assert!(parse_pct("--max-errors", "lots").is_err());
    }

    #[test]
    fn a_step_holds_only_within_latency_and_error_budget() {
        let slo = Slo {
            latency: parse_latency("p99<50ms").unwrap(),
            max_error_frac: 0.01,
        };
        let ok = Measured {
            latency: lat(2_000, 49_999),
            sent: 1000,
            failed: 10,
        };
        assert!(slo.judge(&ok).is_empty());
        let slow = Measured {
            latency: lat(2_000, 50_000),
            ..ok
        };
        assert_eq!(slo.judge(&slow), ["p99 50.0ms missed p99<50ms"]);
        let failing = Measured { failed: 11, ..ok };
        let why = slo.judge(&failing);
        assert!(
            why[0].contains("11 of 1000") && why[0].contains("1 %"),
            "{why:?}"
        );
        let silent = Measured {
            latency: Summary::default(),
            sent: 1000,
            failed: 0,
        };
        assert_eq!(slo.judge(&silent), ["no reply was measured"]);
    }
}
