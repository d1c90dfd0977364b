//! The phases' part of the report: each phase's figures, which part of the
//! run the grades read (`--grade-phase`, the steady phase by default), and
//! a line for each target a ramp alone missed, so a storm at the start is
//! neither graded as the steady state nor hidden.

use crate::engine::stats::{Counts, Summary};
use crate::monitor::procs::ProcReport;
use crate::opts::GradePhase;
use crate::report::grades::{self, Grade, MetricKey};
use crate::report::inputs::Inputs;
use crate::report::model::{
    GradeRow, Latency, Messages, PhaseConnections, PhaseFigures, PhasesReport,
};
use crate::report::phases::{Phase, PhaseAcc};
use crate::report::rows::{Figures, measure_row};

/// What one phase measured, as the report shows it.
pub fn phase_figures(acc: &PhaseAcc) -> PhaseFigures {
    let c = &acc.counts;
    let secs = acc.len.as_secs_f64();
    let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    PhaseFigures {
        start_s: acc.span.map(|(a, _)| a.as_secs_f64()),
        end_s: acc.span.map(|(_, b)| b.as_secs_f64()),
        duration_s: secs,
        peak_open: acc.peak_open,
        connections: PhaseConnections {
            established: c.conn_ok,
            failed: c.conn_failed,
            drops: c.drops,
            reconnects: c.reconnects,
            time_us: Summary::of(&acc.conn_time),
        },
        messages: Messages::of(c, per_sec(c.received), per_sec(c.sent)),
        latency_us: Latency {
            corrected: Summary::of(&acc.corrected),
            uncorrected: Summary::of(&acc.uncorrected),
        },
        send_lag_us: Summary::of(&acc.send_lag),
    }
}

/// The grade rows' figures of one phase (failover and recovery stay the
/// whole run's: `whole`'s).
fn graded_figures(acc: &PhaseAcc, phase: Phase, whole: &Figures) -> Figures {
    let secs = acc.len.as_secs_f64();
    Figures {
        conn_time: Summary::of(&acc.conn_time),
        corrected: Summary::of(&acc.corrected),
        per_sec: if secs > 0.0 {
            acc.counts.received as f64 / secs
        } else {
            0.0
        },
        counts: acc.counts,
        phase: Some(phase.name()),
        ..*whole
    }
}

/// What the grades read: the steady phase unless `--grade-phase all` or the
/// run had none (then the whole run, `whole`, and why).
pub fn graded(inp: &Inputs<'_>, whole: &Figures) -> (Figures, GradePhase, Option<String>) {
    let steady = &inp.phases.steady;
    match inp.grade_phase {
        GradePhase::All => (*whole, GradePhase::All, None),
        GradePhase::Steady if steady.seconds == 0 => (
            *whole,
            GradePhase::All,
            Some(
                "no steady phase: the plan never held its peak with every connection open for a whole second (a plan without a hold, a run too short, or a ramp-down before the connections were all up); the grades and figures read the whole run"
                    .into(),
            ),
        ),
        GradePhase::Steady => (
            graded_figures(steady, Phase::Steady, whole),
            GradePhase::Steady,
            None,
        ),
    }
}

/// One line for each phase-graded target (connection time, latency) that a
/// ramp missed while the steady phase met it or did not measure it.
fn ramp_missed(
    inp: &Inputs<'_>,
    nodes: &[&ProcReport],
    whole: &Figures,
    c: &Counts,
    graded_rows: &[GradeRow],
) -> Vec<String> {
    let mut out = Vec::new();
    for row in &inp.thresholds.rows {
        if !matches!(
            row.key,
            MetricKey::ConnectionTime | MetricKey::MessageLatency
        ) {
            continue;
        }
        let Some(steady) = graded_rows.iter().find(|g| g.metric == row.name) else {
            continue;
        };
        if !matches!(steady.grade, Grade::Target | Grade::NotMeasured) {
            continue;
        }
        for phase in [Phase::RampUp, Phase::RampDown] {
            let acc = inp.phases.get(phase);
            if acc.seconds == 0 {
                continue;
            }
            let f = graded_figures(acc, phase, whole);
            let (measured, value) = measure_row(row, inp, nodes, &f, c);
            let grade = grades::grade(row, measured);
            if grade > Grade::Target && grade != Grade::NotMeasured {
                out.push(format!(
                    "the {} alone missed the {} target ({}): {value}, graded {}; the steady phase, which is graded: {}",
                    phase.name(),
                    row.name,
                    row.cells[0],
                    grade.label(),
                    steady.value
                ));
            }
        }
    }
    out
}

/// The report's `phases` section.
pub fn phases_report(
    inp: &Inputs<'_>,
    nodes: &[&ProcReport],
    whole: &Figures,
    c: &Counts,
    graded: (GradePhase, Option<String>),
    graded_rows: &[GradeRow],
) -> PhasesReport {
    let (graded, note) = graded;
    PhasesReport {
        graded,
        note,
        ramp_up: phase_figures(&inp.phases.ramp_up),
        steady: phase_figures(&inp.phases.steady),
        ramp_down: phase_figures(&inp.phases.ramp_down),
        ramp_missed: if graded == GradePhase::Steady {
            ramp_missed(inp, nodes, whole, c, graded_rows)
        } else {
            Vec::new()
        },
    }
}
