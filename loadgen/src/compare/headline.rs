//! The headline figures of a report, read from its JSON document.
//!
//! compare reads the document, not loadgen's own `Report` type: a baseline
//! may come from another build, and only the fields below must be there
//! (any `loadgen.report/v1` has them; others are ignored). Latency and
//! replies per second are read from the phase the report graded (the
//! steady phase unless it had none), like its grades; everything else is
//! the whole run's.

use serde::Deserialize;

/// The report schema compare understands.
pub const SCHEMA: &str = "loadgen.report/v1";

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// How a figure's value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds.
    Us,
    PerSec,
    /// A fraction 0..=1 shown as a percentage.
    Fraction,
    Count,
    /// Microseconds of CPU per answered message.
    CpuUs,
    Bytes,
}

/// One comparable figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// Its name in `--max-regression`.
    pub key: &'static str,
    pub label: &'static str,
    pub unit: Unit,
    pub better: Better,
}

const fn m(key: &'static str, label: &'static str, unit: Unit, better: Better) -> Metric {
    Metric {
        key,
        label,
        unit,
        better,
    }
}

/// Every headline figure, in table order.
pub const METRICS: [Metric; 12] = [
    m("p50", "Latency p50, corrected", Unit::Us, Better::Lower),
    m("p95", "Latency p95, corrected", Unit::Us, Better::Lower),
    m("p99", "Latency p99, corrected", Unit::Us, Better::Lower),
    m(
        "per_sec",
        "Replies per second",
        Unit::PerSec,
        Better::Higher,
    ),
    m(
        "success_rate",
        "Success rate",
        Unit::Fraction,
        Better::Higher,
    ),
    m(
        "connect_p50",
        "Connection time p50",
        Unit::Us,
        Better::Lower,
    ),
    m(
        "connect_p99",
        "Connection time p99",
        Unit::Us,
        Better::Lower,
    ),
    m("errors", "Errors", Unit::Count, Better::Lower),
    m(
        "cpu_node",
        "CPU per message, nodes",
        Unit::CpuUs,
        Better::Lower,
    ),
    m(
        "cpu_loadgen",
        "CPU per message, loadgen",
        Unit::CpuUs,
        Better::Lower,
    ),
    m(
        "cpu_redis",
        "CPU per message, redis",
        Unit::CpuUs,
        Better::Lower,
    ),
    m(
        "mem_per_conn",
        "Memory per connection, nodes",
        Unit::Bytes,
        Better::Lower,
    ),
];

/// The metric named `key` in `--max-regression`.
pub fn metric(key: &str) -> Option<usize> {
    METRICS.iter().position(|m| m.key == key)
}

/// A report's headline figures, one per [`METRICS`] entry (`None` when the
/// report has no such figure, e.g. no redis monitored).
#[derive(Debug, Clone, PartialEq)]
pub struct Headline {
    pub started_at: String,
    /// The phase latency and replies per second were read from.
    pub graded: String,
    /// The load the run offered: "echo, 300 connections x 10/s".
    pub offered: String,
    pub values: [Option<f64>; METRICS.len()],
}

/// The fields compare reads (`schema` is checked before; serde ignores the rest).
#[derive(Deserialize)]
struct Doc {
    started_at: String,
    mode: String,
    rate_per_conn: f64,
    latency_us: LatencyDoc,
    messages: MessagesDoc,
    connections: ConnectionsDoc,
    phases: PhasesDoc,
    success_rate: f64,
    resources: Vec<ResourceDoc>,
    nodes_cpu_us_per_msg: Option<f64>,
}

#[derive(Deserialize)]
struct SummaryDoc {
    count: u64,
    p50: u64,
    p95: u64,
    p99: u64,
}

#[derive(Deserialize)]
struct LatencyDoc {
    corrected: SummaryDoc,
}

#[derive(Deserialize)]
struct MessagesDoc {
    per_sec: f64,
    errors_total: u64,
}

#[derive(Deserialize)]
struct ConnectionsDoc {
    target: u64,
    time_us: SummaryDoc,
}

#[derive(Deserialize)]
struct PhasesDoc {
    graded: String,
    steady: PhaseDoc,
}

#[derive(Deserialize)]
struct PhaseDoc {
    messages: MessagesDoc,
    latency_us: LatencyDoc,
}

#[derive(Deserialize)]
struct ResourceDoc {
    role: String,
    cpu_us_per_msg: Option<f64>,
    bytes_per_conn: Option<f64>,
}

/// The headline figures of the report document `json`, or why it is not one.
pub fn read(json: &str) -> Result<Headline, String> {
    let schema: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not JSON ({e})"))?;
    match schema.get("schema").and_then(|s| s.as_str()) {
        Some(SCHEMA) => {}
        Some(other) => return Err(format!("its schema is {other:?}, not {SCHEMA:?}")),
        None => return Err(format!("no \"schema\": {SCHEMA:?} field")),
    }
    let d: Doc = serde_json::from_value(schema).map_err(|e| format!("a field is missing: {e}"))?;
    let (lat, msgs) = if d.phases.graded == "steady" {
        (
            &d.phases.steady.latency_us.corrected,
            &d.phases.steady.messages,
        )
    } else {
        (&d.latency_us.corrected, &d.messages)
    };
    let us = |s: &SummaryDoc, v: u64| (s.count > 0).then_some(v as f64);
    // A role's processes together; none monitored is no figure.
    let role_sum = |role: &str, f: fn(&ResourceDoc) -> Option<f64>| {
        d.resources
            .iter()
            .filter(|r| r.role == role)
            .filter_map(f)
            .reduce(|a, b| a + b)
    };
    let c = &d.connections.time_us;
    Ok(Headline {
        started_at: d.started_at.clone(),
        graded: d.phases.graded.clone(),
        offered: format!(
            "{}, {} connections x {}/s",
            d.mode, d.connections.target, d.rate_per_conn
        ),
        values: [
            us(lat, lat.p50),
            us(lat, lat.p95),
            us(lat, lat.p99),
            Some(msgs.per_sec),
            Some(d.success_rate),
            us(c, c.p50),
            us(c, c.p99),
            Some(d.messages.errors_total as f64),
            d.nodes_cpu_us_per_msg,
            role_sum("loadgen", |r| r.cpu_us_per_msg),
            role_sum("redis", |r| r.cpu_us_per_msg),
            role_sum("node", |r| r.bytes_per_conn),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_that_is_not_a_report_says_why() {
        assert!(read("nope").unwrap_err().starts_with("not JSON"));
        assert!(read("{}").unwrap_err().contains("no \"schema\""));
        let e = read(r#"{"schema":"other/v2"}"#).unwrap_err();
        assert!(e.contains("other/v2"), "{e}");
        let e = read(r#"{"schema":"loadgen.report/v1"}"#).unwrap_err();
        assert!(e.contains("missing field"), "{e}");
    }

    #[test]
    fn keys_are_unique() {
        for (i, m) in METRICS.iter().enumerate() {
            assert_eq!(metric(m.key), Some(i));
        }
    }
}
