//! The suite's document: every verdict, the seed's Expected Results
//! Summary and Test Checklist filled from them, printed as text and written
//! as JSON (`--json`).

use crate::error::Error;
use crate::scenario::args::Name;
use crate::scenario::evidence::{Status, Verdict};
use serde::Serialize;
use std::path::Path;

/// The `--json` document (schema `wsbench.scenarios.v1`).
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub schema: &'static str,
    /// What was under test.
    pub set_up: String,
    /// `/health`, `/health/stats` and `/metrics` of each node, before the scenarios.
    pub monitoring: Vec<String>,
    /// Each scenario asked for, in the seed's order.
    pub verdicts: Vec<Verdict>,
    pub summary: Vec<SummaryRow>,
    pub checklist: Vec<ChecklistItem>,
}

/// One row of the seed's Expected Results Summary.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    pub test: &'static str,
    pub status: Status,
    pub critical: &'static str,
    pub notes: String,
}

/// One box of the seed's Test Checklist.
#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    pub section: &'static str,
    pub item: &'static str,
    /// `Some(true)`: ticked; `Some(false)`: checked and not met; `None`: not checked.
    pub met: Option<bool>,
    pub why: String,
}

/// The seed's row name and Critical column for each scenario.
fn seed_row(name: &str) -> (&'static str, &'static str, &'static str) {
    match name {
        "connectivity" => ("Basic Connectivity", "Yes", "Test 1: Basic Connectivity"),
        "sticky" => ("Sticky Sessions", "Yes", "Test 2: Sticky Sessions"),
        "broadcast" => (
            "Cross-Node Broadcast",
            "Yes",
            "Test 3: Cross-Node Broadcasting",
        ),
        "recovery" => ("Session Recovery", "Yes", "Test 4: Session Recovery"),
        "failover" => ("Node Failover", "Yes", "Test 5: Node Failover"),
        "redis-failure" => ("Redis Failure", "Yes", "Test 6: Redis Failure"),
        "load" => ("Load Test", "Medium", "Test 7: Load Test (1000 concurrent)"),
        "ordering" => ("Lock Ordering", "High", "Test 8: Lock Ordering"),
        "cleanup" => ("Session Cleanup", "Medium", "Test 9: Session Cleanup"),
        "soak" => (
            "Soak under chaos (wsbench)",
            "Yes",
            "Soak: chat load through node kills, a Redis restart and a balancer reload",
        ),
        _ => ("Multi-User", "High", "Test 10: Multi-User Streams"),
    }
}

/// What decided a verdict, in one line.
fn note(v: &Verdict) -> String {
    if let Some(r) = &v.reason {
        return r.clone();
    }
    let failed: Vec<&str> = v
        .criteria
        .iter()
        .filter(|c| !c.met)
        .map(|c| c.text.as_str())
        .collect();
    let times: Vec<String> = v
        .timings
        .iter()
        .map(|t| format!("{} {:.0} ms ({})", t.metric, t.value_ms, t.grade))
        .collect();
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(format!("not met: {}", failed.join("; ")));
    } else {
        parts.push(format!("{} criteria met", v.criteria.len()));
    }
    parts.extend(times);
    parts.join("; ")
}

impl SuiteReport {
    pub fn build(
        set_up: String,
        monitoring: (Option<bool>, Option<bool>, Vec<String>),
        verdicts: Vec<Verdict>,
    ) -> SuiteReport {
        let summary = verdicts
            .iter()
            .map(|v| {
                let (test, critical, _) = seed_row(v.name);
                SummaryRow {
                    test,
                    status: v.status,
                    critical,
                    notes: note(v),
                }
            })
            .collect();
        let checklist = checklist(&verdicts, monitoring.0, monitoring.1);
        SuiteReport {
            schema: "wsbench.scenarios.v1",
            set_up,
            monitoring: monitoring.2,
            verdicts,
            summary,
            checklist,
        }
    }

    /// 0 when every scenario that ran passed, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.verdicts.iter().any(|v| v.status == Status::Fail))
    }

    pub fn write_json(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Output {
            what: format!("--json {}", path.display()),
            why: e.to_string(),
        })?;
        std::fs::write(path, text)
            .map_err(|e| Error::io(format!("writing --json {}", path.display()), e))
    }

    /// The text report: each scenario with its evidence (unless `quiet`),
    /// then the two seed tables.
    pub fn render(&self, quiet: bool) -> String {
        let mut out = format!("wsbench scenarios: {}\n", self.set_up);
        if !quiet {
            for v in &self.verdicts {
                let test = match v.seed_test {
                    0 => "wsbench".to_string(),
                    n => format!("Test {n}"),
                };
                out.push_str(&format!(
                    "\n[{}] {test}: {} ({:.1} s)\n",
                    v.status.label(),
                    v.name,
                    v.duration_s
                ));
                if let Some(r) = &v.reason {
                    out.push_str(&format!("  reason: {r}\n"));
                }
                for c in &v.criteria {
                    let mark = if c.met { "ok  " } else { "FAIL" };
                    out.push_str(&format!("  {mark} {}: {}\n", c.text, c.evidence));
                }
                for e in &v.evidence {
                    out.push_str(&format!("       {e}\n"));
                }
            }
        }
        out.push_str("\n## Expected Results Summary\n\n| Test | Status | Critical | Notes |\n|------|--------|----------|-------|\n");
        for r in &self.summary {
            let status = match r.status {
                Status::Pass => "✅ PASS",
                Status::Fail => "❌ FAIL",
                Status::Skipped => "⏭ SKIPPED",
            };
            out.push_str(&format!(
                "| {} | {status} | {} | {} |\n",
                r.test, r.critical, r.notes
            ));
        }
        out.push_str("\n## Test Checklist\n");
        let mut section = "";
        for c in &self.checklist {
            if c.section != section {
                section = c.section;
                out.push_str(&format!("\n### {section}\n"));
            }
            let (mark, word) = match c.met {
                Some(true) => ("x", "met"),
                Some(false) => (" ", "NOT MET"),
                None => (" ", "not checked"),
            };
            out.push_str(&format!("- [{mark}] {} ({word}: {})\n", c.item, c.why));
        }
        out
    }
}

fn checklist(
    verdicts: &[Verdict],
    health: Option<bool>,
    metrics: Option<bool>,
) -> Vec<ChecklistItem> {
    let by = |n: Name| verdicts.iter().find(|v| v.name == n.as_str());
    let mut items = Vec::new();
    for n in Name::EVERY {
        let (_, _, item) = seed_row(n.as_str());
        let (met, why) = match by(n) {
            Some(v) if v.status == Status::Skipped => (None, note(v)),
            Some(v) => (Some(v.status == Status::Pass), v.status.label().to_string()),
            None => (None, "not run".into()),
        };
        items.push(ChecklistItem {
            section: "Functionality",
            item,
            met,
            why,
        });
    }
    let crit = |n: Name, prefix: &str| by(n).and_then(|v| v.met(prefix));
    let fig = |n: Name, key: &str| by(n).and_then(|v| v.figures.get(key).copied());
    let both = |a: Option<bool>, b: Option<bool>| match (a, b) {
        (Some(x), Some(y)) => Some(x && y),
        (x, None) => x,
        (None, y) => y,
    };
    let conns = fig(Name::Load, "connections");
    let perf = [
        (
            "Latency < 100ms",
            (
                crit(Name::Load, "Message delivery < 100ms"),
                fig(Name::Load, "latency_p99_ms")
                    .map_or("load not run".into(), |p| format!("load p99 {p:.1} ms")),
            ),
        ),
        (
            "1000+ concurrent connections",
            match conns {
                Some(c) if c >= 1000.0 => (crit(Name::Load, "All "), format!("{c} established")),
                Some(c) => (
                    None,
                    format!("the load ran {c} connections only (--load-conns 1000)"),
                ),
                None => (None, "load not run".into()),
            },
        ),
        (
            "CPU < 70% under load",
            match fig(Name::Load, "cpu_max_pct") {
                Some(p) => (
                    Some(p < 70.0),
                    format!("highest node CPU {p:.0}% of one core"),
                ),
                None => (None, "node CPU not measured".into()),
            },
        ),
        (
            "Memory stable (no leaks)",
            (
                both(
                    crit(Name::Load, "Memory usage stable"),
                    crit(Name::Cleanup, "Memory released"),
                ),
                "load: Memory usage stable; cleanup: Memory released".into(),
            ),
        ),
        (
            "No dropped messages",
            (
                both(
                    fig(Name::Load, "lost_messages").map(|l| l == 0.0),
                    crit(Name::Ordering, "No missing chunks"),
                ),
                "load: 0 lost; ordering: No missing chunks".into(),
            ),
        ),
    ];
    let reliability = [
        (
            "Graceful failover",
            (
                by(Name::Failover).and_then(|v| passed(v.status)),
                "failover".into(),
            ),
        ),
        (
            "Session persistence",
            (
                both(
                    crit(Name::Recovery, "Session persists"),
                    crit(Name::Failover, "Session state preserved"),
                ),
                "recovery: Session persists in Redis; failover: Session state preserved".into(),
            ),
        ),
        (
            "Survives chaos (soak)",
            (
                by(Name::Soak).and_then(|v| passed(v.status)),
                "soak: node kills, a Redis restart and a balancer reload under chat load".into(),
            ),
        ),
        (
            "Stale cleanup working",
            (
                by(Name::Cleanup).and_then(|v| passed(v.status)),
                "cleanup".into(),
            ),
        ),
        (
            "Error handling proper",
            (
                by(Name::RedisFailure).and_then(|v| passed(v.status)),
                "redis-failure".into(),
            ),
        ),
        (
            "Logs informative",
            (
                both(
                    crit(Name::Connectivity, "One node shows"),
                    crit(Name::Ordering, "Lock acquisition logs"),
                ),
                "connectivity: \"WebSocket connected\"; ordering: lease logs".into(),
            ),
        ),
    ];
    let monitoring = [
        (
            "Health endpoints working",
            (health, "/health and /health/stats of every node".into()),
        ),
        (
            "Metrics available",
            (metrics, "/metrics of every node".into()),
        ),
        (
            "Alerts configured",
            (None, "outside what loadgen can see".into()),
        ),
        (
            "Dashboard created",
            (None, "outside what loadgen can see".into()),
        ),
    ];
    for (section, rows) in [
        ("Performance", &perf[..]),
        ("Reliability", &reliability[..]),
        ("Monitoring", &monitoring[..]),
    ] {
        for (item, (met, why)) in rows {
            items.push(ChecklistItem {
                section,
                item,
                met: *met,
                why: why.clone(),
            });
        }
    }
    items
}

/// PASS and FAIL decide; SKIPPED decides nothing.
fn passed(s: Status) -> Option<bool> {
    match s {
        Status::Skipped => None,
        s => Some(s == Status::Pass),
    }
}
