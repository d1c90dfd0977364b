//! The seed's "Target Metrics" table as data, and grading against it.
//!
//! The default thresholds are parsed from the seed's own table text, so the
//! grades cannot drift from the document users read; `--thresholds FILE`
//! parses a user's table in the same Markdown form.

use crate::opts::FailOn;
use serde::Serialize;

/// The seed's table, verbatim.
pub const SEED_TABLE: &str = "\
| Metric | Target | Good | Acceptable |
|--------|--------|------|------------|
| Connection Time | < 50ms | < 100ms | < 200ms |
| Message Latency | < 50ms | < 100ms | < 200ms |
| Recovery Time | < 1s | < 2s | < 5s |
| Failover Time | < 5s | < 10s | < 30s |
| Concurrent Connections | 10K+ | 5K+ | 1K+ |
| Messages/sec | 100K+ | 50K+ | 10K+ |
| Memory per connection | < 10KB | < 20KB | < 50KB |
| CPU usage (1K conn) | < 50% | < 70% | < 90% |
";

/// Which measurement a table row grades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKey {
    ConnectionTime,
    MessageLatency,
    RecoveryTime,
    FailoverTime,
    ConcurrentConnections,
    MessagesPerSec,
    MemoryPerConnection,
    CpuUsage,
}

impl MetricKey {
    fn from_name(name: &str) -> Option<MetricKey> {
        let n = name.to_ascii_lowercase();
        Some(if n.contains("connection time") {
            MetricKey::ConnectionTime
        } else if n.contains("latency") {
            MetricKey::MessageLatency
        } else if n.contains("recovery") {
            MetricKey::RecoveryTime
        } else if n.contains("failover") {
            MetricKey::FailoverTime
        } else if n.contains("concurrent") {
            MetricKey::ConcurrentConnections
        } else if n.contains("messages") || n.contains("msg") {
            MetricKey::MessagesPerSec
        } else if n.contains("memory") {
            MetricKey::MemoryPerConnection
        } else if n.contains("cpu") {
            MetricKey::CpuUsage
        } else {
            return None;
        })
    }
}

/// One threshold, in base units: microseconds, bytes, percent or a count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Below(f64),
    AtMost(f64),
    AtLeast(f64),
    Above(f64),
}

impl Bound {
    pub fn holds(self, v: f64) -> bool {
        match self {
            Bound::Below(x) => v < x,
            Bound::AtMost(x) => v <= x,
            Bound::AtLeast(x) => v >= x,
            Bound::Above(x) => v > x,
        }
    }

    fn parse(s: &str, key: MetricKey) -> Result<Bound, String> {
        let s = s.trim();
        let (ctor, rest): (fn(f64) -> Bound, &str) = if let Some(r) = s.strip_prefix("<=") {
            (Bound::AtMost, r)
        } else if let Some(r) = s.strip_prefix('<') {
            (Bound::Below, r)
        } else if let Some(r) = s.strip_prefix(">=") {
            (Bound::AtLeast, r)
        } else if let Some(r) = s.strip_prefix('>') {
            (Bound::Above, r)
        } else if let Some(r) = s.strip_suffix('+') {
            (Bound::AtLeast, r)
        } else {
            return Err(format!(
                "{s:?}: write a bound like \"< 50ms\", \"<= 2s\" or \"10K+\""
            ));
        };
        let v = parse_quantity(rest.trim(), key).ok_or_else(|| {
            format!("{s:?}: cannot read the number and unit (ms, s, KB, MB, %, K)")
        })?;
        Ok(ctor(v))
    }
}

fn parse_quantity(s: &str, key: MetricKey) -> Option<f64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let mult = match (key, unit.as_str()) {
        (
            MetricKey::ConnectionTime
            | MetricKey::MessageLatency
            | MetricKey::RecoveryTime
            | MetricKey::FailoverTime,
            u,
        ) => match u {
            "us" | "µs" => 1.0,
            "ms" => 1e3,
            "s" | "" => 1e6,
            "m" | "min" => 60e6,
            _ => return None,
        },
        (MetricKey::MemoryPerConnection, u) => match u {
            "b" | "" => 1.0,
            "kb" | "kib" => 1024.0,
            "mb" | "mib" => 1024.0 * 1024.0,
            _ => return None,
        },
        (MetricKey::CpuUsage, "%" | "") => 1.0,
        (MetricKey::ConcurrentConnections | MetricKey::MessagesPerSec, u) => match u {
            "" => 1.0,
            "k" => 1e3,
            "m" => 1e6,
            _ => return None,
        },
        _ => return None,
    };
    n.is_finite().then_some(n * mult)
}

#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub key: MetricKey,
    /// The cells as written, for the report.
    pub cells: [String; 3],
    pub bounds: [Bound; 3],
}

#[derive(Debug, Clone)]
pub struct Thresholds {
    pub rows: Vec<Row>,
}

impl Thresholds {
    pub fn seed() -> Thresholds {
        // The embedded table is known-good; tested below.
        Thresholds::parse(SEED_TABLE).unwrap_or(Thresholds { rows: Vec::new() })
    }

    /// Parse a Markdown table `| Metric | Target | Good | Acceptable |`.
    pub fn parse(text: &str) -> Result<Thresholds, String> {
        let mut rows = Vec::new();
        for (ln, line) in text.lines().enumerate() {
            let line = line.trim();
            if !line.starts_with('|') {
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            if cells
                .first()
                .is_some_and(|c| c.eq_ignore_ascii_case("metric"))
            {
                continue;
            }
            if cells.len() < 4 {
                return Err(format!(
                    "line {}: expected | Metric | Target | Good | Acceptable |",
                    ln + 1
                ));
            }
            let key = MetricKey::from_name(cells[0]).ok_or_else(|| {
                format!(
                    "line {}: unknown metric {:?}; known: Connection Time, Message Latency, Recovery Time, \
                     Failover Time, Concurrent Connections, Messages/sec, Memory per connection, CPU usage",
                    ln + 1,
                    cells[0]
                )
            })?;
            let mut bounds = [Bound::Below(0.0); 3];
            for i in 0..3 {
                bounds[i] =
                    Bound::parse(cells[i + 1], key).map_err(|e| format!("line {}: {e}", ln + 1))?;
            }
            rows.push(Row {
                name: cells[0].to_string(),
                key,
                cells: [
                    cells[1].to_string(),
                    cells[2].to_string(),
                    cells[3].to_string(),
                ],
                bounds,
            });
        }
        if rows.is_empty() {
            return Err(
                "no table rows found; expected | Metric | Target | Good | Acceptable |".into(),
            );
        }
        Ok(Thresholds { rows })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    Target,
    Good,
    Acceptable,
    Fail,
    NotMeasured,
}

impl Grade {
    pub fn label(self) -> &'static str {
        match self {
            Grade::Target => "Target",
            Grade::Good => "Good",
            Grade::Acceptable => "Acceptable",
            Grade::Fail => "Fail",
            Grade::NotMeasured => "not measured",
        }
    }
}

/// The lowest grade that still passes under `--fail-on`.
pub fn pass_level(f: FailOn) -> Grade {
    match f {
        FailOn::Target => Grade::Target,
        FailOn::Good => Grade::Good,
        FailOn::Acceptable => Grade::Acceptable,
    }
}

pub fn grade(row: &Row, value: Option<f64>) -> Grade {
    let Some(v) = value else {
        return Grade::NotMeasured;
    };
    if row.bounds[0].holds(v) {
        Grade::Target
    } else if row.bounds[1].holds(v) {
        Grade::Good
    } else if row.bounds[2].holds(v) {
        Grade::Acceptable
    } else {
        Grade::Fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_table_parses() {
        let t = Thresholds::parse(SEED_TABLE).unwrap();
        assert_eq!(t.rows.len(), 8);
        let lat = &t.rows[1];
        assert_eq!(lat.key, MetricKey::MessageLatency);
        assert_eq!(grade(lat, Some(49_999.0)), Grade::Target);
        assert_eq!(grade(lat, Some(50_000.0)), Grade::Good);
        assert_eq!(grade(lat, Some(150_000.0)), Grade::Acceptable);
        assert_eq!(grade(lat, Some(200_000.0)), Grade::Fail);
        assert_eq!(grade(lat, None), Grade::NotMeasured);
        let conns = &t.rows[4];
        assert_eq!(grade(conns, Some(10_000.0)), Grade::Target);
        assert_eq!(grade(conns, Some(999.0)), Grade::Fail);
        let mem = &t.rows[6];
        assert_eq!(grade(mem, Some(10.0 * 1024.0 - 1.0)), Grade::Target);
    }

    #[test]
    fn user_tables_and_errors() {
        let t = Thresholds::parse("| Message Latency | < 5ms | <= 10ms | < 1s |").unwrap();
        assert_eq!(grade(&t.rows[0], Some(10_000.0)), Grade::Good);
        assert!(Thresholds::parse("| Coffee | < 1 | < 2 | < 3 |").is_err());
        assert!(Thresholds::parse("| Message Latency | fast | < 2s | < 3s |").is_err());
        assert!(Thresholds::parse("nothing here").is_err());
    }
}
