//! The measured value of each Target Metrics row, or why there is none.

use crate::engine::stats::{Counts, Summary};
use crate::monitor::procs::ProcReport;
use crate::opts::Mode;
use crate::report::fmt::fmt_us;
use crate::report::grades::{self, MetricKey};
use crate::report::inputs::Inputs;

/// The summaries the grade rows read: connection time, latency, rate and
/// counts of the graded part of the run (the steady phase, or all of it);
/// failover and recovery of the whole run (drops are events, whenever
/// they happen).
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub conn_time: Summary,
    pub corrected: Summary,
    pub failover: Summary,
    pub recovery: Summary,
    /// Replies per second (on the plateau, or over the graded phase).
    pub per_sec: f64,
    /// Counts of the graded part.
    pub counts: Counts,
    /// The graded phase's name ("steady") when not the whole run, for the text.
    pub phase: Option<&'static str>,
}

/// The measured value for one table row, or why there is none.
pub fn measure_row(
    row: &grades::Row,
    inp: &Inputs<'_>,
    nodes: &[&ProcReport],
    f: &Figures,
    c: &Counts,
) -> (Option<f64>, String) {
    let Figures {
        conn_time,
        corrected,
        per_sec,
        ..
    } = *f;
    let g = &f.counts;
    let sent = g.sent;
    let unanswered = g.timeouts + g.lost;
    let during = f
        .phase
        .map(|p| format!(" in the {p} phase"))
        .unwrap_or_default();
    match row.key {
        // Unanswered messages waited at least --timeout: when more than 1%
        // went unanswered, the true p99 is at least that.
        MetricKey::MessageLatency if sent > 0 && unanswered * 100 > sent => (
            Some(inp.timeout_us.max(corrected.p99) as f64),
            format!(
                "p99 >= {} ({:.1}% of messages unanswered within --timeout{during})",
                fmt_us(inp.timeout_us.max(corrected.p99)),
                unanswered as f64 * 100.0 / sent as f64
            ),
        ),
        MetricKey::ConnectionTime if conn_time.count > 0 => (
            Some(conn_time.p99 as f64),
            format!(
                "p99 {} (p50 {}){during}",
                fmt_us(conn_time.p99),
                fmt_us(conn_time.p50)
            ),
        ),
        MetricKey::ConnectionTime if f.phase.is_some() && c.conn_ok > 0 => (
            None,
            format!(
                "n/a (no connection was opened{during}: see the ramp-up's; --grade-phase all grades them)"
            ),
        ),
        MetricKey::ConnectionTime => (None, "n/a (no connection was established)".into()),
        MetricKey::MessageLatency if corrected.count > 0 => (
            Some(corrected.p99 as f64),
            format!(
                "p99 {} corrected (p50 {}){during}",
                fmt_us(corrected.p99),
                fmt_us(corrected.p50)
            ),
        ),
        MetricKey::MessageLatency if sent == 0 => (None, "n/a (no message sent: --rate 0)".into()),
        MetricKey::MessageLatency => (None, "n/a (no reply received)".into()),
        MetricKey::FailoverTime => failover_row(inp, f.failover, c),
        MetricKey::RecoveryTime => recovery_row(inp, f.recovery, c),
        MetricKey::ConcurrentConnections => {
            let (wanted, held) = (inp.target_conns, inp.peak_open.max(0) as u64);
            let text = if held >= wanted {
                format!("{held} open at peak, all that were wanted")
            } else {
                format!("{held} open at peak (of {wanted} wanted)")
            };
            capacity(row, wanted as f64, held as f64, held >= wanted, text)
        }
        MetricKey::MessagesPerSec if sent > 0 => {
            let offered = inp.target_conns as f64 * inp.rate_per_conn;
            // Kept up: (nearly) every offered message answered on time, at the
            // offered rate (the plateau's edges cost a fraction of a percent).
            let kept_up = per_sec >= offered * 0.98 && g.ok as f64 >= sent as f64 * 0.999;
            let text = if kept_up {
                format!(
                    "{per_sec:.0} replies/s sustained{during}: kept up with the {offered:.0}/s offered"
                )
            } else {
                format!("{per_sec:.0} replies/s sustained{during} (of {offered:.0}/s offered)")
            };
            capacity(row, offered, per_sec, kept_up, text)
        }
        MetricKey::MessagesPerSec => (None, "n/a (no message sent: --rate 0)".into()),
        MetricKey::MemoryPerConnection => memory_row(inp, nodes),
        MetricKey::CpuUsage => match nodes.iter().find_map(|n| n.cpu_pct.map(|c| (c, n))) {
            Some((c, n)) => (
                Some(c),
                format!(
                    "{c:.0}% of one core (node mean at {} conns)",
                    n.conns_at_sample
                ),
            ),
            None => (None, no_node_reason(inp, nodes)),
        },
    }
}

/// Memory per connection: the RSS growth of every node with a sound figure
/// over the connections it held at its peak (one node: its own figure).
/// Nodes without one (died, warm, below their baseline) are named, never
/// counted as 0: a missing figure is not measured, not Target.
fn memory_row(inp: &Inputs<'_>, nodes: &[&ProcReport]) -> (Option<f64>, String) {
    let measured: Vec<(f64, i64)> = nodes
        .iter()
        .filter_map(|n| n.bytes_per_conn.map(|b| (b, n.conns_at_sample)))
        .filter(|&(b, conns)| b >= 0.0 && conns > 0)
        .collect();
    let left_out: Vec<String> = nodes
        .iter()
        .filter(|n| n.bytes_per_conn.is_none())
        .filter_map(|n| {
            let why = n.memory_note.as_deref().or(n.note.as_deref())?;
            Some(format!("{}: {why}", n.name()))
        })
        .collect();
    let conns: i64 = measured.iter().map(|m| m.1).sum();
    if conns == 0 {
        return match left_out.first() {
            Some(_) => (None, format!("n/a ({})", left_out.join("; "))),
            None => (None, no_node_reason(inp, nodes)),
        };
    }
    let bytes = measured.iter().map(|&(b, n)| b * n as f64).sum::<f64>() / conns as f64;
    let whose = if measured.len() == 1 {
        format!("node RSS at {conns} conns")
    } else {
        format!(
            "RSS growth of {} nodes over their {conns} conns at peak",
            measured.len()
        )
    };
    let mut text = format!("{:.1} KiB per conn ({whose})", bytes / 1024.0);
    if !left_out.is_empty() {
        text.push_str(&format!("; not counted: {}", left_out.join("; ")));
    }
    (Some(bytes), text)
}

/// "p99 X (p50 Y) over N things".
fn timed(s: Summary, one: &str, many: &str) -> String {
    let what = if s.count == 1 { one } else { many };
    format!(
        "p99 {} (p50 {}) over {} {what}",
        fmt_us(s.p99),
        fmt_us(s.p50),
        s.count
    )
}

/// Failover Time: the p99 wait of clients whose connection dropped until a
/// node took them again (loadgen reconnects; nginx picks a live node).
fn failover_row(inp: &Inputs<'_>, f: Summary, c: &Counts) -> (Option<f64>, String) {
    if f.count > 0 {
        let mut text = timed(f, "drop", "drops");
        if c.failovers_unfinished > 0 {
            text.push_str(&format!(
                "; {} never reconnected (their wait until the run's end is counted)",
                c.failovers_unfinished
            ));
        }
        (Some(f.p99 as f64), text)
    } else if c.drops > 0 {
        let why = format!(
            "{} connections dropped; pass --reconnect to measure failover",
            c.drops
        );
        (None, format!("n/a ({why})"))
    } else if inp.embedded {
        (
            None,
            "n/a (no connection dropped: one embedded node has nothing to fail over to)".into(),
        )
    } else {
        let why = "no connection dropped: stop a node during a --reconnect run to measure it";
        (None, format!("n/a ({why})"))
    }
}

/// Recovery Time: the p99 wait of answers cut off by a dropped connection
/// until they moved again on the next one (seed Test 4: missing chunks
/// retrieved from the cache, the stream continuing from the last one).
fn recovery_row(inp: &Inputs<'_>, r: Summary, c: &Counts) -> (Option<f64>, String) {
    let ended = if c.recoveries_ended > 0 {
        format!(
            "; {} more ended without continuing (interrupted: no node could continue them)",
            c.recoveries_ended
        )
    } else {
        String::new()
    } + &if c.requests_never_reached > 0 {
        format!(
            "; {} chats sent just before a drop never reached a node (counted lost)",
            c.requests_never_reached
        )
    } else {
        String::new()
    };
    if r.count > 0 {
        let mut text = timed(r, "answer cut by a drop", "answers cut by a drop");
        if c.recoveries_unfinished > 0 {
            text.push_str(&format!(
                ", {} of which never got an answer (their wait until they timed out or the run's end is counted)",
                c.recoveries_unfinished
            ));
        }
        text.push_str(&ended);
        (Some(r.p99 as f64), text)
    } else if c.recoveries_ended > 0 {
        let why = format!(
            "{} answers cut by a drop, none could continue: interrupted (no node could continue them) or never received",
            c.recoveries_ended
        );
        (
            None,
            format!("n/a ({why}; they count against the success rate)"),
        )
    } else if inp.mode != Mode::Chat {
        (
            None,
            "n/a (recovery resumes streamed answers: run --mode chat --reconnect)".into(),
        )
    } else if !inp.reconnect {
        (None, "n/a (pass --reconnect: answers cut by a drop are then recovered on the next connection)".into())
    } else {
        (
            None,
            "n/a (no answer was cut by a dropped connection)".into(),
        )
    }
}

/// Grade a capacity row (the most the system holds) from a run that offered
/// `offered`. A run that offers less than the table's lowest bound does not
/// test the row; a run the system kept up with shows that it holds what was
/// offered (9,98x replies/s measured at 10,000/s offered grades as 10K, the
/// shortfall being the plateau's edges); one it fell short of is graded on
/// what it did.
fn capacity(
    row: &grades::Row,
    offered: f64,
    measured: f64,
    kept_up: bool,
    text: String,
) -> (Option<f64>, String) {
    if !row.bounds[2].holds(offered) {
        let lowest = row.cells[2].trim();
        let why =
            format!("the run offered less than the lowest bound {lowest}: not a test of this row");
        (None, format!("n/a ({text}; {why})"))
    } else if kept_up {
        (Some(offered.max(measured)), text)
    } else {
        (Some(measured), text)
    }
}

fn no_node_reason(inp: &Inputs<'_>, nodes: &[&ProcReport]) -> String {
    if let Some(n) = nodes.iter().find_map(|n| n.note.clone()) {
        format!("n/a ({n})")
    } else if !inp.embedded {
        "n/a (node process not local to loadgen; pass --node-pid)".into()
    } else {
        "n/a (no sample with connections open)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grades::{Grade, Thresholds};

    fn row(key: MetricKey) -> grades::Row {
        let t = Thresholds::seed();
        t.rows.into_iter().find(|r| r.key == key).unwrap()
    }

    #[test]
    fn capacity_rows_grade_the_offered_load_or_say_why_not() {
        let msgs = row(MetricKey::MessagesPerSec);
        // Kept up with 10K/s offered: graded as 10K (Acceptable), not as the 9,98x measured.
        let (v, _) = capacity(&msgs, 10_000.0, 9_981.0, true, String::new());
        assert_eq!(v, Some(10_000.0));
        assert_eq!(grades::grade(&msgs, v), Grade::Acceptable);
        // Fell short of what was offered: graded on what it did.
        let (v, _) = capacity(&msgs, 60_000.0, 9_000.0, false, String::new());
        assert_eq!(grades::grade(&msgs, v), Grade::Fail);
        // Measured more than offered (a burst): the measurement stands.
        let (v, _) = capacity(&msgs, 50_000.0, 50_400.0, true, String::new());
        assert_eq!(v, Some(50_400.0));
        // Offered below the lowest bound: not a capacity test.
        let (v, text) = capacity(&msgs, 1_500.0, 1_490.0, true, "x".into());
        assert_eq!(grades::grade(&msgs, v), Grade::NotMeasured);
        assert!(
            text.starts_with("n/a (x;") && text.contains("10K+"),
            "{text}"
        );
        let conns = row(MetricKey::ConcurrentConnections);
        let (v, _) = capacity(&conns, 5_000.0, 4_000.0, false, String::new());
        assert_eq!(grades::grade(&conns, v), Grade::Acceptable);
        let (v, _) = capacity(&conns, 300.0, 300.0, true, String::new());
        assert_eq!(v, None);
    }
}
