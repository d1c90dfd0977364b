//! The seed's "Load Test Results Template" and "Target Metrics" table,
//! filled from a [`Report`].
//!
//! Every blank of the template gets a measured value or `n/a (why)`; Issues
//! Found and Recommendations are derived from the grades and warnings, so a
//! reader never sees an empty line to fill in by hand.

use crate::monitor::host::HostReport;
use crate::monitor::procs::{ProcReport, ProcRole};
use crate::opts::GradePhase;
use crate::report::fmt::fmt_us;
use crate::report::grades::{Grade, MetricKey};
use crate::report::model::{PhaseFigures, PhasesReport, Report};
use std::fmt::Write as _;

/// The filled template as plain text (the seed's layout).
pub fn template(r: &Report) -> String {
    let mut s = String::new();
    let c = &r.connections;
    let m = &r.messages;
    let ph = &r.phases;
    // The latency lines read the graded part of the run (as the grades do).
    let (l, during) = match ph.graded {
        GradePhase::Steady => (&ph.steady.latency_us, "steady phase; "),
        GradePhase::All => (&r.latency_us, ""),
    };
    let _ = writeln!(s, "Test Date: {}", r.started_at);
    let _ = writeln!(s, "Environment: {}", r.environment);
    let _ = writeln!(s, "Duration: {:.1} s ({})", r.duration_s, phase_spans(ph));
    let graded = match (ph.graded, &ph.note) {
        (GradePhase::Steady, _) => {
            "the steady phase (--grade-phase steady); the ramps are shown beside, under Results"
                .into()
        }
        (GradePhase::All, Some(why)) => format!("the whole run: {why}"),
        (GradePhase::All, None) => "the whole run, ramps included (--grade-phase all)".into(),
    };
    let _ = writeln!(s, "Graded: {graded}");
    s.push('\n');
    let _ = writeln!(
        s,
        "Connections: {} concurrent (peak open; {} wanted, {} established, {} failed)",
        c.peak_open, c.target, c.established, c.failed
    );
    if c.time_us.count > 0 {
        let tls = if c.tls_us.count > 0 {
            format!(", TLS {}", fmt_us(c.tls_us.p50))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "Connection Time: p50 {}, p99 {} (p50 of its parts: TCP {}{tls}, upgrade {})",
            fmt_us(c.time_us.p50),
            fmt_us(c.time_us.p99),
            fmt_us(c.tcp_us.p50),
            fmt_us(c.upgrade_us.p50),
        );
    }
    let _ = writeln!(
        s,
        "Message Rate: {:.0} msg/sec (replies, sustained; {:.0} sent/s, {} per connection asked)",
        m.per_sec, m.sent_per_sec, r.rate_per_conn
    );
    let _ = writeln!(
        s,
        "Total Messages: {} sent, {} received",
        m.sent, m.received
    );
    s.push('\n');
    s.push_str("Results:\n");
    let _ = writeln!(s, "- Success Rate: {:.3}%", r.success_rate * 100.0);
    let lat = |v: u64, u: u64| {
        if l.corrected.count == 0 {
            "n/a (no reply received)".to_string()
        } else {
            format!(
                "{:.2}ms ({during}corrected for coordinated omission; uncorrected {:.2}ms)",
                v as f64 / 1000.0,
                u as f64 / 1000.0
            )
        }
    };
    let _ = writeln!(
        s,
        "- Avg Latency: {}",
        lat(
            l.corrected.mean.round() as u64,
            l.uncorrected.mean.round() as u64
        )
    );
    let _ = writeln!(
        s,
        "- P95 Latency: {}",
        lat(l.corrected.p95, l.uncorrected.p95)
    );
    let _ = writeln!(
        s,
        "- P99 Latency: {}",
        lat(l.corrected.p99, l.uncorrected.p99)
    );
    let kinds: Vec<String> = m.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let _ = writeln!(
        s,
        "- Errors: {} ({}; {} timeouts, {} lost with their connection, {} drops)",
        m.errors_total,
        if kinds.is_empty() {
            "none by kind".to_string()
        } else {
            kinds.join(", ")
        },
        m.timeouts,
        m.lost,
        c.drops
    );
    let f = &r.connections.failover_us;
    if f.count > 0 {
        let _ = writeln!(
            s,
            "- Reconnects: {} (after a drop, back on a node in p50 {}, p99 {}; {} never back)",
            c.reconnects,
            fmt_us(f.p50),
            fmt_us(f.p99),
            r.connections.failovers_unfinished
        );
    } else {
        let _ = writeln!(s, "- Reconnects: {}", c.reconnects);
    }
    if let Some(chat) = r
        .chat
        .as_ref()
        .filter(|c| c.recovery_us.count + c.recoveries_ended > 0)
    {
        let rec = &chat.recovery_us;
        let moved = rec.count.saturating_sub(chat.recoveries_unfinished);
        let timing = if rec.count > 0 {
            format!(
                ", p50 {}, p99 {} after the drop",
                fmt_us(rec.p50),
                fmt_us(rec.p99)
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "- Answers cut by a drop: {} ({moved} moved again on the next connection{timing}; {} ended without continuing; {} got no answer)",
            rec.count + chat.recoveries_ended,
            chat.recoveries_ended,
            chat.recoveries_unfinished
        );
    }
    if ph.graded == GradePhase::Steady {
        for (name, f) in [("Ramp-up", &ph.ramp_up), ("Ramp-down", &ph.ramp_down)] {
            if let Some(line) = ramp_line(name, f) {
                let _ = writeln!(s, "- {line}");
            }
        }
        for missed in &ph.ramp_missed {
            let _ = writeln!(s, "- Missed during a ramp only: {missed}");
        }
    }
    s.push('\n');
    s.push_str("Resource Usage:\n");
    let nodes: Vec<_> = r
        .resources
        .iter()
        .filter(|p| p.role == ProcRole::Node)
        .collect();
    for i in 0..nodes.len().max(3) {
        let v = match nodes.get(i) {
            Some(p) => {
                let id = p
                    .node_id
                    .as_deref()
                    .map(|id| format!("{id}; "))
                    .unwrap_or_default();
                match p.cpu_pct {
                    Some(cpu) => format!(
                        "{cpu:.1}% ({id}mean, max {:.1}%; 100% = one core; {}pid {}{})",
                        p.cpu_pct_max.unwrap_or(cpu),
                        per_msg(p),
                        p.pid,
                        p.died_at_s
                            .map(|t| format!("; gone {t:.1} s into the run, mean until then"))
                            .unwrap_or_default()
                    ),
                    None => format!(
                        "n/a ({id}{})",
                        p.note.clone().unwrap_or_else(|| "no sample".into())
                    ),
                }
            }
            None if nodes.is_empty() => {
                "n/a (no node process monitored: pass --node-pid)".to_string()
            }
            None => format!(
                "n/a (only {} node process{} monitored)",
                nodes.len(),
                if nodes.len() == 1 { "" } else { "es" }
            ),
        };
        let _ = writeln!(s, "- Node {} CPU: {v}", i + 1);
    }
    let redis = r.resources.iter().find(|p| p.role == ProcRole::Redis);
    let redis_v = match redis {
        Some(p) => match p.cpu_pct {
            Some(cpu) => format!("{cpu:.1}% (mean; {}pid {})", per_msg(p), p.pid),
            None => format!(
                "n/a ({})",
                p.note.clone().unwrap_or_else(|| "no sample".into())
            ),
        },
        None => {
            "n/a (no redis-server monitored: pass --redis HOST:PORT or --redis-pid)".to_string()
        }
    };
    let _ = writeln!(s, "- Redis CPU: {redis_v}");
    let server_rss: u64 = r
        .resources
        .iter()
        .filter(|p| p.role != ProcRole::Loadgen)
        .filter_map(|p| p.rss_bytes)
        .sum();
    let loadgen_rss: u64 = r
        .resources
        .iter()
        .filter(|p| p.role == ProcRole::Loadgen)
        .filter_map(|p| p.rss_bytes)
        .sum();
    let total = if r
        .resources
        .iter()
        .any(|p| p.role != ProcRole::Loadgen && p.rss_bytes.is_some())
    {
        format!(
            "{:.1}MB (nodes + redis RSS at peak connections; loadgen itself {:.1}MB more)",
            mb(server_rss),
            mb(loadgen_rss)
        )
    } else {
        format!(
            "n/a (no server process monitored; loadgen itself {:.1}MB)",
            mb(loadgen_rss)
        )
    };
    let _ = writeln!(s, "- Total Memory: {total}");
    if nodes.len() > 1
        && let Some(us) = r.nodes_cpu_us_per_msg
    {
        let _ = writeln!(
            s,
            "- Nodes together: {us:.1} us CPU per message (each node's share of the messages is not known behind a balancer)"
        );
    }
    // Not in the seed's template: what the measuring side itself cost.
    if let Some(p) = r.resources.iter().find(|p| p.role == ProcRole::Loadgen)
        && let Some(cpu) = p.cpu_pct
    {
        let _ = writeln!(
            s,
            "- loadgen CPU: {cpu:.1}% (mean, max {:.1}%; {}pid {})",
            p.cpu_pct_max.unwrap_or(cpu),
            per_msg(p),
            p.pid
        );
    }
    if let Some(h) = &r.host {
        let _ = writeln!(s, "- Host CPU: {}", host_line(h));
    }
    s.push('\n');
    s.push_str("Issues Found:\n");
    for i in issues(r) {
        let _ = writeln!(s, "- {i}");
    }
    s.push('\n');
    s.push_str("Recommendations:\n");
    for i in recommendations(r) {
        let _ = writeln!(s, "- {i}");
    }
    s
}

fn mb(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// The Target Metrics table with the measured value and grade of each row.
pub fn grade_table(r: &Report) -> String {
    let mut s = String::new();
    s.push_str("| Metric | Target | Good | Acceptable | Measured | Grade |\n");
    s.push_str("|--------|--------|------|------------|----------|-------|\n");
    for g in &r.grades {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            g.metric,
            g.thresholds[0],
            g.thresholds[1],
            g.thresholds[2],
            g.value,
            g.grade.label()
        );
    }
    s
}

/// "ramp-up 0.0-2.0 s, steady 2.0-39.0 s, ramp-down 39.0-40.2 s".
fn phase_spans(p: &PhasesReport) -> String {
    p.named()
        .iter()
        .map(|(name, f)| match (f.start_s, f.end_s) {
            (Some(a), Some(b)) => format!("{name} {a:.1}-{b:.1} s"),
            _ => format!("no {name}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One ramp's figures in a line, or `None` when the run had no such phase.
fn ramp_line(name: &str, f: &PhaseFigures) -> Option<String> {
    f.start_s?;
    let k = &f.connections;
    let conns = if k.established > 0 {
        format!(
            "{} connections opened (p99 {})",
            k.established,
            fmt_us(k.time_us.p99)
        )
    } else {
        "no connection opened".to_string()
    };
    let l = &f.latency_us;
    let lat = if l.corrected.count > 0 {
        format!(
            "latency p50 {}, p99 {} corrected (p99 {} uncorrected)",
            fmt_us(l.corrected.p50),
            fmt_us(l.corrected.p99),
            fmt_us(l.uncorrected.p99)
        )
    } else {
        "no reply".to_string()
    };
    Some(format!(
        "{name} ({:.1} s, not graded): {conns}; {lat}; send lag p99 {}; {} errors, {} timeouts",
        f.duration_s,
        fmt_us(f.send_lag_us.p99),
        f.messages.errors_total,
        f.messages.timeouts
    ))
}

/// Warnings first (they qualify every figure), then each metric short of Target.
pub fn issues(r: &Report) -> Vec<String> {
    let mut v: Vec<String> = r.warnings.clone();
    v.extend(r.phases.note.iter().cloned());
    v.extend(r.phases.ramp_missed.iter().cloned());
    for g in &r.grades {
        if matches!(g.grade, Grade::Good | Grade::Acceptable | Grade::Fail) {
            v.push(format!(
                "{}: {} graded {} (Target {})",
                g.metric,
                g.value,
                g.grade.label(),
                g.thresholds[0]
            ));
        }
    }
    let m = &r.messages;
    if m.timeouts > 0 || m.lost > 0 {
        v.push(format!(
            "{} messages timed out and {} were lost with their connection",
            m.timeouts, m.lost
        ));
    }
    for e in r.error_samples.iter().take(3) {
        v.push(format!("error seen {} times: {}", e.count, e.message));
    }
    if v.is_empty() {
        v.push("none: every measured metric reached its Target and no message failed".into());
    }
    v
}

pub fn recommendations(r: &Report) -> Vec<String> {
    let mut v = Vec::new();
    if r.send_lag_us.behind {
        v.push("loadgen could not keep its schedule (its own CPU, or the whole host, was saturated): rerun with --workers 2 on a less busy host, or with fewer --conns / a lower --rate, before trusting the latency figures".to_string());
    }
    for g in &r.grades {
        if !matches!(g.grade, Grade::Acceptable | Grade::Fail) {
            continue;
        }
        let tip = match g.key {
            MetricKey::ConnectionTime => {
                "connection setup is slow: check the node's accept loop and listen backlog, or lower --connect-rate to see if bursts cause it"
            }
            MetricKey::MessageLatency => {
                "message latency is high: profile the node under this load (CPU bound?) and compare the corrected and uncorrected p99 to tell stalls from steady slowness"
            }
            // A capacity row graded low because the run offered little says
            // so; only a run that lost connections or replies is told to
            // look for a fault.
            MetricKey::ConcurrentConnections
                if r.connections.peak_open >= r.connections.target as i64 =>
            {
                "every wanted connection was open: raise --conns to grade a higher capacity (--workers past the fd limit)"
            }
            MetricKey::ConcurrentConnections => {
                "fewer connections stayed open than wanted: check fd limits (ulimit -n) on both sides and the connection errors above"
            }
            MetricKey::MessagesPerSec if g.value.contains("kept up with") => {
                "the node kept up with all the load offered: raise --conns or --rate to find where it saturates"
            }
            MetricKey::MessagesPerSec => {
                "throughput is below the table: raise --conns/--rate until the node saturates, or add nodes"
            }
            MetricKey::MemoryPerConnection => {
                "memory per connection is high: look at per-connection buffers and queues in the node"
            }
            MetricKey::CpuUsage => {
                "node CPU is high at this load: profile it (perf, flamegraph) before adding nodes"
            }
            MetricKey::RecoveryTime => {
                "answers cut by a drop were slow to move again, or never did: wsnode on Redis takes over the answers of a crashed node when their clients recover them or within a second (`Stream lease taken over` in the node logs), so look for nodes without a shared broker, a broker that lost the chunks, or no free --max-streams slot on the survivors; check the node logs for `Recovery requested`"
            }
            MetricKey::FailoverTime => {
                "clients were slow to get back on a node: check that the balancer retries the next node on a refused connection (nginx proxy_next_upstream) and loadgen's backoff"
            }
        };
        v.push(format!("{}: {tip}", g.metric));
    }
    if r.messages.timeouts + r.messages.lost > 0 && v.is_empty() {
        v.push(
            "some messages failed: read the errors above and the node's logs for that time"
                .to_string(),
        );
    }
    if !r.phases.ramp_missed.is_empty() {
        v.push("a ramp missed targets the steady phase met: if clients arrive like this in production, size the node for the storm; if not, ramp gentler (--stages, --connect-rate)".to_string());
    }
    if r.grades.iter().any(|g| g.grade == Grade::NotMeasured) {
        v.push("some metrics were not measured (see the grade table); run the matching scenario or pass --node-pid/--redis-pid to fill them".to_string());
    }
    if v.is_empty() {
        v.push("none needed at this load; raise --conns or --rate to find the limit".to_string());
    }
    v
}

/// The Markdown document for `--out-md`.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    s.push_str("# Load Test Results\n\n");
    let _ = writeln!(
        s,
        "Mode `{:?}`{}, {} per connection, targets: {}.\n",
        r.mode,
        if r.wait_reply { " (--wait-reply)" } else { "" },
        format_rate(r.rate_per_conn),
        r.targets.join(", ")
    );
    if !r.warnings.is_empty() {
        s.push_str("**Warnings**\n\n");
        for w in &r.warnings {
            let _ = writeln!(s, "- **{w}**");
        }
        s.push('\n');
    }
    s.push_str("## Load Test Results Template\n\n```\n");
    s.push_str(&template(r));
    s.push_str("```\n\n## Target Metrics\n\n");
    s.push_str(&grade_table(r));
    s.push_str("\n## Phases\n\n");
    s.push_str("| phase | seconds | connections opened (p99) | latency p50 / p99 corrected | send lag p99 | errors | timeouts |\n|---|---|---|---|---|---|---|\n");
    for (name, f) in r.phases.named() {
        let l = &f.latency_us.corrected;
        let _ = writeln!(
            s,
            "| {name} | {:.1} | {} ({}) | {} / {} | {} | {} | {} |",
            f.duration_s,
            f.connections.established,
            fmt_us(f.connections.time_us.p99),
            fmt_us(l.p50),
            fmt_us(l.p99),
            fmt_us(f.send_lag_us.p99),
            f.messages.errors_total,
            f.messages.timeouts
        );
    }
    let graded = match r.phases.graded {
        GradePhase::Steady => "the steady phase",
        GradePhase::All => "the whole run",
    };
    let _ = writeln!(s, "\nThe grades read {graded}.");
    s.push_str("\n## Latency detail\n\n");
    s.push_str("| | mean | p50 | p95 | p99 | p99.9 | max |\n|---|---|---|---|---|---|---|\n");
    for (name, x) in [
        ("corrected (from intended send)", &r.latency_us.corrected),
        ("uncorrected (from actual send)", &r.latency_us.uncorrected),
        ("send lag", &r.send_lag_us.summary),
        ("connection time", &r.connections.time_us),
        ("- TCP connect", &r.connections.tcp_us),
        ("- TLS handshake", &r.connections.tls_us),
        ("- WebSocket upgrade", &r.connections.upgrade_us),
    ] {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            fmt_us(x.mean.round() as u64),
            fmt_us(x.p50),
            fmt_us(x.p95),
            fmt_us(x.p99),
            fmt_us(x.p999),
            fmt_us(x.max)
        );
    }
    s
}

fn format_rate(r: f64) -> String {
    if r == 0.0 {
        "no messages (connect only)".into()
    } else {
        format!("{r} msg/s")
    }
}

/// The whole machine's CPU: what it was, where it went, per message.
pub fn host_line(h: &HostReport) -> String {
    let split = match (h.user_pct, h.system_pct, h.softirq_pct) {
        (Some(u), Some(k), Some(i)) => {
            format!("user {u:.0}%, system {k:.0}%, softirq {i:.0}%; ")
        }
        _ => String::new(),
    };
    format!(
        "{:.0}% of {}% ({} seconds; {split}not charged to a watched process {:.0}%){}",
        h.cpu_pct,
        h.cpus * 100,
        if h.plateau { "plateau" } else { "all" },
        h.other_cpu_pct,
        h.cpu_us_per_msg
            .map(|us| format!("; {us:.1} us per message, every process and the kernel together"))
            .unwrap_or_default()
    )
}

/// "12.3 us CPU per message; " when known.
fn per_msg(p: &ProcReport) -> String {
    p.cpu_us_per_msg
        .map(|us| format!("{us:.1} us CPU per message; "))
        .unwrap_or_default()
}
