//! The results of a run as one serializable [`Report`], built once from the
//! merged measurements; every output format (the filled seed template, the
//! grade table, `--json`, `--out-md`) is rendered from it so they can never
//! disagree.

pub mod grades;
pub mod template;

use crate::engine::SecondSample;
use crate::monitor::{HostReport, ProcReport, Role};
use crate::opts::{FailOn, Mode};
use crate::stats::{ErrorKind, Recorder, Summary};
use grades::{Grade, MetricKey, Thresholds};
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the JSON document; bumped on any incompatible change.
pub const SCHEMA: &str = "loadgen.report/v1";
/// Send lag p99 above which loadgen itself fell behind its schedule.
pub const LAG_WARN_US: u64 = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub started_at: String,
    pub duration_s: f64,
    pub mode: Mode,
    pub wait_reply: bool,
    pub rate_per_conn: f64,
    pub payload_size: usize,
    pub targets: Vec<String>,
    pub environment: String,
    pub workers: u32,
    pub connections: Connections,
    pub messages: Messages,
    pub latency_us: Latency,
    pub send_lag_us: SendLag,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<Chat>,
    pub resources: Vec<ProcReport>,
    /// CPU of all monitored node processes together per answered message
    /// (us); with one node, the same as its `cpu_us_per_msg`.
    pub nodes_cpu_us_per_msg: Option<f64>,
    /// Whole-host CPU, to judge whether other processes disturbed the run.
    pub host: Option<HostReport>,
    /// Replies on time and correct / messages sent (1.0 when nothing was sent).
    pub success_rate: f64,
    pub grades: Vec<GradeRow>,
    pub warnings: Vec<String>,
    pub error_samples: Vec<ErrorSample>,
    pub series: Vec<SecondSample>,
    pub exit_code: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    pub target: u64,
    pub established: u64,
    pub failed: u64,
    pub peak_open: i64,
    pub drops: u64,
    pub reconnects: u64,
    pub time_us: Summary,
    /// With --reconnect: from a drop to the slot's next successful
    /// handshake; a slot that never got back counts the wait until the end.
    pub failover_us: Summary,
    /// Drops after which the slot never connected again.
    pub failovers_unfinished: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Messages {
    pub sent: u64,
    pub received: u64,
    pub ok: u64,
    pub timeouts: u64,
    pub lost: u64,
    pub in_flight: u64,
    pub late: u64,
    pub errors: BTreeMap<&'static str, u64>,
    pub errors_total: u64,
    /// Replies per second while at least 90% of the peak connections were open.
    pub per_sec: f64,
    pub sent_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub corrected: Summary,
    pub uncorrected: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct SendLag {
    #[serde(flatten)]
    pub summary: Summary,
    /// True when loadgen could not keep its own schedule.
    pub behind: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Chat {
    /// Time to first chunk, from the intended send time (= latency_us.corrected).
    pub first_chunk_us: Summary,
    pub chunk_gap_us: Summary,
    pub done_us: Summary,
    /// With --reconnect: from the drop that cut an answer until it moves
    /// again on the next connection (first chunk past the `recovered` replay,
    /// or `done`); an answer that never does counts its wait until it was
    /// interrupted, timed out or the run ended.
    pub recovery_us: Summary,
    /// Answers cut by a drop that got no answer before timing out or the
    /// run's end (their wait is in `recovery_us`).
    pub recoveries_unfinished: u64,
    /// Answers cut by a drop that the system ended without continuing
    /// (`interrupted`: their generating node was gone; an error; a request
    /// that never reached a node). Not in `recovery_us`.
    pub recoveries_ended: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GradeRow {
    pub metric: String,
    pub key: MetricKey,
    /// Human-readable measured value, or why it was not measured.
    pub value: String,
    /// The measured number in the table's base unit (us, bytes, %, count).
    pub measured: Option<f64>,
    pub grade: Grade,
    pub thresholds: [String; 3],
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorSample {
    pub message: String,
    pub count: u64,
}

/// Everything [`build`] needs besides the merged recorder.
pub struct Inputs<'a> {
    pub started_at: String,
    pub duration_s: f64,
    pub mode: Mode,
    pub wait_reply: bool,
    pub reconnect: bool,
    pub rate_per_conn: f64,
    pub payload_size: usize,
    pub targets: Vec<String>,
    pub environment: String,
    pub workers: u32,
    pub target_conns: u64,
    pub peak_open: i64,
    pub resources: Vec<ProcReport>,
    pub host: Option<HostReport>,
    pub series: Vec<SecondSample>,
    pub notes: Vec<(String, u64)>,
    pub thresholds: &'a Thresholds,
    pub fail_on: FailOn,
    /// Fraction (0..=1): a lower success rate fails the run.
    pub min_success_rate: Option<f64>,
    pub embedded: bool,
    pub abandoned: usize,
    /// --timeout in microseconds: the latency at least every unanswered message had.
    pub timeout_us: u64,
}

pub fn build(rec: &Recorder, inp: Inputs<'_>) -> Report {
    let c = &rec.counts;
    let corrected = Summary::of(&rec.corrected);
    let uncorrected = Summary::of(&rec.uncorrected);
    let lag = Summary::of(&rec.send_lag);
    let behind = lag.p99 > LAG_WARN_US;
    let conn_time = Summary::of(&rec.conn_time);
    let failover = Summary::of(&rec.failover);
    let recovery = Summary::of(&rec.recovery);
    let plateau: Vec<&SecondSample> = inp
        .series
        .iter()
        .filter(|s| inp.peak_open > 0 && s.open * 10 >= inp.peak_open * 9)
        .collect();
    let plateau_secs: f64 = plateau.iter().map(|s| s.dt).sum();
    let per_sec = if plateau_secs < 0.5 {
        c.received as f64 / inp.duration_s.max(0.001)
    } else {
        plateau.iter().map(|s| s.received as f64).sum::<f64>() / plateau_secs
    };
    let errors: BTreeMap<&'static str, u64> = ErrorKind::ALL
        .iter()
        .map(|k| (k.name(), c.errors[*k as usize]))
        .filter(|(_, n)| *n > 0)
        .collect();
    let success_rate = if c.sent == 0 {
        1.0
    } else {
        c.ok as f64 / c.sent as f64
    };

    let mut warnings = Vec::new();
    let below_min = inp.min_success_rate.is_some_and(|min| success_rate < min);
    if let (true, Some(min)) = (below_min, inp.min_success_rate) {
        warnings.push(format!(
            "success rate {:.3}% is below --min-success-rate {}%",
            success_rate * 100.0,
            min * 100.0
        ));
    }
    if behind {
        warnings.push(format!(
            "LOADGEN FELL BEHIND ITS SCHEDULE: send lag p99 {} (max {}). Its latency figures understate the truth \
             and its rate is below the one asked for: use --workers, fewer --conns or a lower --rate.",
            crate::engine::fmt_us(lag.p99),
            crate::engine::fmt_us(lag.max)
        ));
    }
    if !c.balanced() {
        warnings.push(format!(
            "accounting does not balance: sent {} != received {} + timeouts {} + lost {} + in flight {}",
            c.sent, c.received, c.timeouts, c.lost, c.in_flight
        ));
    }
    if inp.abandoned > 0 {
        warnings.push(format!(
            "{} connection tasks outlived the run and were abandoned; their unanswered messages are not accounted",
            inp.abandoned
        ));
    }
    if let Some(h) = &inp.host
        && h.other_cpu_pct > 25.0
    {
        warnings.push(format!(
            "other processes used {:.0}% CPU (of the host's {}%) during the run; every figure here competed with them",
            h.other_cpu_pct,
            h.cpus * 100
        ));
    }
    if c.sent > 0 && c.received == 0 {
        warnings.push(format!("none of the {} messages sent was answered", c.sent));
    }
    if c.conn_failed > 0 {
        warnings.push(format!("{} connection attempts failed", c.conn_failed));
    }

    let chat = (inp.mode == Mode::Chat).then(|| Chat {
        first_chunk_us: corrected,
        chunk_gap_us: Summary::of(&rec.chunk_gap),
        done_us: Summary::of(&rec.done_time),
        recovery_us: recovery,
        recoveries_unfinished: c.recoveries_unfinished,
        recoveries_ended: c.recoveries_ended,
    });

    let mut resources = inp.resources.clone();
    let per_msg = |cpu: f64| (per_sec > 0.0).then(|| cpu / 100.0 * 1e6 / per_sec);
    // Behind a balancer each node's share of the messages is unknown: with
    // several nodes only their sum per message is meaningful.
    let node_count = resources.iter().filter(|r| r.role == Role::Node).count();
    let node_cpu: Option<f64> = resources
        .iter()
        .filter(|r| r.role == Role::Node)
        .map(|r| r.cpu_pct)
        .sum();
    let nodes_cpu_us_per_msg = node_cpu.and_then(per_msg);
    for p in &mut resources {
        if p.role != Role::Node || node_count == 1 {
            p.cpu_us_per_msg = p.cpu_pct.and_then(per_msg);
        }
    }
    let nodes: Vec<&ProcReport> = resources.iter().filter(|r| r.role == Role::Node).collect();
    let figures = Figures {
        conn_time,
        corrected,
        failover,
        recovery,
        per_sec,
    };
    let grades = inp
        .thresholds
        .rows
        .iter()
        .map(|row| {
            let (measured, value) = measure(row, &inp, &nodes, &figures, c);
            GradeRow {
                metric: row.name.clone(),
                key: row.key,
                grade: grades::grade(row, measured),
                value,
                measured,
                thresholds: row.cells.clone(),
            }
        })
        .collect::<Vec<_>>();
    let pass_level = match inp.fail_on {
        FailOn::Target => Grade::Target,
        FailOn::Good => Grade::Good,
        FailOn::Acceptable => Grade::Acceptable,
    };
    // No reply at all fails the run even when no row could be graded.
    let failed = grades
        .iter()
        .any(|g| g.grade != Grade::NotMeasured && g.grade > pass_level)
        || (c.sent > 0 && c.received == 0)
        || below_min;
    Report {
        schema: SCHEMA,
        started_at: inp.started_at,
        duration_s: inp.duration_s,
        mode: inp.mode,
        wait_reply: inp.wait_reply,
        rate_per_conn: inp.rate_per_conn,
        payload_size: inp.payload_size,
        targets: inp.targets,
        environment: inp.environment,
        workers: inp.workers,
        connections: Connections {
            target: inp.target_conns,
            established: c.conn_ok,
            failed: c.conn_failed,
            peak_open: inp.peak_open,
            drops: c.drops,
            reconnects: c.reconnects,
            time_us: conn_time,
            failover_us: failover,
            failovers_unfinished: c.failovers_unfinished,
        },
        messages: Messages {
            sent: c.sent,
            received: c.received,
            ok: c.ok,
            timeouts: c.timeouts,
            lost: c.lost,
            in_flight: c.in_flight,
            late: c.late,
            errors_total: c.total_errors(),
            errors,
            per_sec,
            sent_per_sec: c.sent as f64 / inp.duration_s.max(0.001),
        },
        latency_us: Latency {
            corrected,
            uncorrected,
        },
        send_lag_us: SendLag {
            summary: lag,
            behind,
        },
        chat,
        resources,
        nodes_cpu_us_per_msg,
        host: inp.host,
        success_rate,
        grades,
        warnings,
        error_samples: inp
            .notes
            .into_iter()
            .map(|(message, count)| ErrorSample { message, count })
            .collect(),
        series: inp.series,
        exit_code: u8::from(failed),
    }
}

/// The run's summaries the grade rows read.
struct Figures {
    conn_time: Summary,
    corrected: Summary,
    failover: Summary,
    recovery: Summary,
    /// Replies per second on the plateau.
    per_sec: f64,
}

/// The measured value for one table row, or why there is none.
fn measure(
    row: &grades::Row,
    inp: &Inputs<'_>,
    nodes: &[&ProcReport],
    f: &Figures,
    c: &crate::stats::Counts,
) -> (Option<f64>, String) {
    use crate::engine::fmt_us;
    let Figures {
        conn_time,
        corrected,
        per_sec,
        ..
    } = *f;
    let sent = c.sent;
    let unanswered = c.timeouts + c.lost;
    match row.key {
        // Unanswered messages waited at least --timeout: when more than 1%
        // went unanswered, the true p99 is at least that.
        MetricKey::MessageLatency if sent > 0 && unanswered * 100 > sent => (
            Some(inp.timeout_us.max(corrected.p99) as f64),
            format!(
                "p99 >= {} ({:.1}% of messages unanswered within --timeout)",
                fmt_us(inp.timeout_us.max(corrected.p99)),
                unanswered as f64 * 100.0 / sent as f64
            ),
        ),
        MetricKey::ConnectionTime if conn_time.count > 0 => (
            Some(conn_time.p99 as f64),
            format!(
                "p99 {} (p50 {})",
                fmt_us(conn_time.p99),
                fmt_us(conn_time.p50)
            ),
        ),
        MetricKey::ConnectionTime => (None, "n/a (no connection was established)".into()),
        MetricKey::MessageLatency if corrected.count > 0 => (
            Some(corrected.p99 as f64),
            format!(
                "p99 {} corrected (p50 {})",
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
            let kept_up = per_sec >= offered * 0.98 && c.ok as f64 >= sent as f64 * 0.999;
            let text = if kept_up {
                format!("{per_sec:.0} replies/s sustained: kept up with the {offered:.0}/s offered")
            } else {
                format!("{per_sec:.0} replies/s sustained (of {offered:.0}/s offered)")
            };
            capacity(row, offered, per_sec, kept_up, text)
        }
        MetricKey::MessagesPerSec => (None, "n/a (no message sent: --rate 0)".into()),
        MetricKey::MemoryPerConnection => {
            match nodes.iter().find_map(|n| n.bytes_per_conn.map(|b| (b, n))) {
                Some((b, n)) => (
                    Some(b.max(0.0)),
                    format!(
                        "{:.1} KiB per conn (node RSS at {} conns)",
                        b / 1024.0,
                        n.conns_at_sample
                    ),
                ),
                None => (None, no_node_reason(inp, nodes)),
            }
        }
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

/// "p99 X (p50 Y) over N things".
fn timed(s: Summary, one: &str, many: &str) -> String {
    use crate::engine::fmt_us;
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
fn failover_row(inp: &Inputs<'_>, f: Summary, c: &crate::stats::Counts) -> (Option<f64>, String) {
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
fn recovery_row(inp: &Inputs<'_>, r: Summary, c: &crate::stats::Counts) -> (Option<f64>, String) {
    let ended = if c.recoveries_ended > 0 {
        format!(
            "; {} more ended without continuing (interrupted: their generating node was gone, or the request never reached one)",
            c.recoveries_ended
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
            "{} answers cut by a drop, none could continue: interrupted (their generating node was gone) or never received",
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
