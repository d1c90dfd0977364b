//! Turning what a run measured into the [`Report`]: summaries, the
//! accounting check, grades, warnings and the exit code.

use crate::engine::stats::{Recorder, Summary};
use crate::monitor::host::on_plateau;
use crate::monitor::procs::{ProcReport, ProcRole};
use crate::opts::Mode;
use crate::report::fmt::fmt_us;
use crate::report::grades::{self, Grade};
use crate::report::inputs::Inputs;
use crate::report::model::*;
use crate::report::percentiles::{Percentiles, points};
use crate::report::phase_report;
use crate::report::phases::Phase;
use crate::report::rows::{Figures, measure_row};
use crate::report::series::SecondSample;

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
        .filter(|s| on_plateau(s.open, inp.peak_open))
        .collect();
    let plateau_secs: f64 = plateau.iter().map(|s| s.dt).sum();
    let per_sec = if plateau_secs < 0.5 {
        c.received as f64 / inp.duration_s.max(0.001)
    } else {
        plateau.iter().map(|s| s.received as f64).sum::<f64>() / plateau_secs
    };
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
            fmt_us(lag.p99),
            fmt_us(lag.max)
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
    // Connections the plan wanted that neither opened nor failed: the run
    // ended while they waited. Past a host's capacity the last handshakes
    // starve behind the open connections' traffic (issue 12), and then
    // every figure describes fewer connections than were asked for.
    let attempted = c.conn_ok + c.conn_failed;
    if attempted < inp.target_conns {
        warnings.push(format!(
            "{} of the {} connections wanted never opened, and none of them failed: the run ended while they \
             waited to connect (a --connect-rate or ramp too slow for the run, or a host saturated while \
             connections opened: see the send lag and the CPU figures). The figures describe the {} that were open.",
            inp.target_conns - attempted,
            inp.target_conns,
            inp.peak_open.max(0)
        ));
    }

    // Streamed answers: chat mode, or a profile with a [stream] (its ends are timed).
    let chat = (inp.mode == Mode::Chat || !rec.done_time.is_empty()).then(|| Chat {
        first_chunk_us: corrected,
        chunk_gap_us: Summary::of(&rec.chunk_gap),
        done_us: Summary::of(&rec.done_time),
        parts: Summary::of(&rec.parts),
        recovery_us: recovery,
        recoveries_unfinished: c.recoveries_unfinished,
        recoveries_ended: c.recoveries_ended,
        requests_never_reached: c.requests_never_reached,
    });

    let mut resources = inp.resources.clone();
    let per_msg = |cpu: f64| (per_sec > 0.0).then(|| cpu / 100.0 * 1e6 / per_sec);
    // Behind a balancer each node's share of the messages is unknown: with
    // several nodes only their sum per message is meaningful.
    let node_count = resources
        .iter()
        .filter(|r| r.role == ProcRole::Node)
        .count();
    let node_cpu: Option<f64> = resources
        .iter()
        .filter(|r| r.role == ProcRole::Node)
        .map(|r| r.cpu_pct)
        .sum();
    let nodes_cpu_us_per_msg = node_cpu.and_then(per_msg);
    for p in &mut resources {
        if p.role != ProcRole::Node || node_count == 1 {
            p.cpu_us_per_msg = p.cpu_pct.and_then(per_msg);
        }
    }
    // The whole machine's busy time per message: what the host can afford.
    let host = inp.host.clone().map(|mut h| {
        h.cpu_us_per_msg = per_msg(h.cpu_pct);
        h
    });
    let nodes: Vec<&ProcReport> = resources
        .iter()
        .filter(|r| r.role == ProcRole::Node)
        .collect();
    let whole = Figures {
        conn_time,
        corrected,
        failover,
        recovery,
        per_sec,
        counts: *c,
        phase: None,
    };
    let (figures, graded, phase_note) = phase_report::graded(&inp, &whole);
    let grades = inp
        .thresholds
        .rows
        .iter()
        .map(|row| {
            let (measured, value) = measure_row(row, &inp, &nodes, &figures, c);
            GradeRow::new(row, measured, value)
        })
        .collect::<Vec<_>>();
    let phases =
        phase_report::phases_report(&inp, &nodes, &whole, c, (graded, phase_note), &grades);
    let pass_level = grades::pass_level(inp.fail_on);
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
            in_loop: c.in_loop,
            time_us: conn_time,
            tcp_us: Summary::of(&rec.conn_tcp),
            tls_us: Summary::of(&rec.conn_tls),
            upgrade_us: Summary::of(&rec.conn_upgrade),
            failover_us: failover,
            failovers_unfinished: c.failovers_unfinished,
        },
        messages: Messages::of(c, per_sec, c.sent as f64 / inp.duration_s.max(0.001)),
        latency_us: Latency {
            corrected,
            uncorrected,
        },
        percentiles: Percentiles {
            latency_us: points(&rec.corrected),
            uncorrected_us: points(&rec.uncorrected),
            connection_us: points(&rec.conn_time),
        },
        send_lag_us: SendLag {
            summary: lag,
            behind,
        },
        phases,
        chat,
        resources,
        nodes_cpu_us_per_msg,
        host,
        success_rate,
        grades,
        warnings,
        error_samples: inp
            .notes
            .into_iter()
            .map(|(message, count)| ErrorSample { message, count })
            .collect(),
        series: with_phases(inp.series, &inp.phases.timeline),
        agents: Vec::new(),
        exit_code: u8::from(failed),
    }
}

/// Each second of the series, marked with its phase (both sinks saw the
/// same seconds in the same order).
fn with_phases(mut series: Vec<SecondSample>, timeline: &[Phase]) -> Vec<SecondSample> {
    for (s, p) in series.iter_mut().zip(timeline) {
        s.phase = Some(*p);
    }
    series
}
