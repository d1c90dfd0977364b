//! `loadgen capacity`: check the options, start the site once (the
//! embedded node, or the `--url` targets), walk the steps within
//! `--max-steps` and `--max-time`, then grade the Messages/sec row from the
//! highest load that held and emit the curve.

use crate::capacity::args::CapacityOpts;
use crate::capacity::model::{CapacityReport, SCHEMA, Step, Sustained};
use crate::capacity::output;
use crate::capacity::search::{Stop, Walk};
use crate::capacity::settings::{Axis, Search};
use crate::capacity::step::run_step;
use crate::error::Error;
use crate::limits;
use crate::report::grades::{self, Grade, MetricKey};
use crate::report::model::GradeRow;
use crate::run::{self, Site};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Distinct warnings kept from all the steps.
const MAX_WARNINGS: usize = 12;

/// Run the search `o` asks for; the exit code, or an error (bad options: exit 2).
pub fn run(o: &CapacityOpts) -> Result<u8, Error> {
    let s = Search::from_opts(o)?;
    let (soft, hard) = limits::raise_nofile();
    s.step_config(s.max).check_capacity(soft, hard)?;
    let rt = run::runtime(s.base.threads)?;
    let out = rt.block_on(search(&s));
    rt.shutdown_timeout(Duration::from_secs(1));
    let report = out?;
    output::emit(s.base.json.as_deref(), s.base.html.as_deref(), &report)?;
    Ok(report.exit_code)
}

async fn search(s: &Search) -> Result<CapacityReport, Error> {
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let t0 = Instant::now();
    let site = Site::open(&s.base).await?;
    let targets = site.targets.iter().map(|t| t.url.clone()).collect();
    let result = walk(s, &site, t0).await;
    let ((steps, walk), stop_note) = site.close(result).await?;
    let mut r = report(s, steps, &walk, started_at, targets, t0.elapsed());
    r.warnings.extend(stop_note);
    Ok(r)
}

/// Set once Ctrl-C is pressed: each step's engine stops its own run, and
/// this stops the search.
fn watch_ctrl_c() -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let task = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            set.store(true, Ordering::Relaxed);
        }
    });
    (flag, task)
}

/// Run steps until the walk ends or a bound is reached.
async fn walk(s: &Search, site: &Site, t0: Instant) -> Result<(Vec<Step>, Walk), Error> {
    let mut w = Walk::new(
        s.start,
        s.max,
        s.growth,
        s.whole(),
        s.precision,
        s.narrow_steps,
    );
    let mut steps: Vec<Step> = Vec::new();
    let (interrupted, watcher) = watch_ctrl_c();
    while let Ok((v, kind)) = w.next() {
        if steps.len() >= s.max_steps as usize {
            w.end(Stop::MaxSteps);
            break;
        }
        if t0.elapsed() + s.step_time() > s.max_time {
            w.end(Stop::MaxTime);
            break;
        }
        let n = steps.len() as u32 + 1;
        let step = run_step(s, site, n, v, kind).await?;
        if interrupted.load(Ordering::Relaxed) {
            w.end(Stop::Interrupted);
            break;
        }
        if !s.base.quiet {
            eprintln!("{}", progress(&step));
        }
        w.record(v, kind, step.held);
        steps.push(step);
    }
    watcher.abort();
    Ok((steps, w))
}

fn progress(st: &Step) -> String {
    let verdict = if st.held {
        "held".to_string()
    } else {
        format!("broke: {}", st.broke.join("; "))
    };
    format!(
        "capacity: step {} ({}) {:.0} msg/s offered ({} conns x {:.2}/s): {:.0} replies/s, p99 {}: {verdict}",
        st.n,
        st.kind.name(),
        st.offered_per_sec,
        st.conns,
        st.rate_per_conn,
        st.replies_per_sec,
        crate::report::fmt::fmt_us(st.latency_us.p99)
    )
}

/// The search's document: the steps, the highest load that held, the grade.
fn report(
    s: &Search,
    steps: Vec<Step>,
    walk: &Walk,
    started_at: String,
    targets: Vec<String>,
    took: Duration,
) -> CapacityReport {
    let stop = walk.next().err().unwrap_or(Stop::MaxSteps);
    let best = steps
        .iter()
        .filter(|st| st.held)
        .max_by(|a, b| a.offered_per_sec.total_cmp(&b.offered_per_sec));
    let sustained = best.map(|b| Sustained {
        step: b.n,
        offered_per_sec: b.offered_per_sec,
        replies_per_sec: b.replies_per_sec,
        conns: b.conns,
        rate_per_conn: b.rate_per_conn,
        latency_us: b.latency_us,
    });
    let first_broken_per_sec = steps
        .iter()
        .filter(|st| !st.held)
        .map(|st| st.offered_per_sec)
        .min_by(f64::total_cmp);
    let slo_text = s
        .slo
        .latency
        .iter()
        .map(|o| o.text())
        .collect::<Vec<_>>()
        .join(",");
    let grade = grade_row(
        s,
        sustained.as_ref(),
        (stop, first_broken_per_sec),
        &slo_text,
    );
    let pass = grades::pass_level(s.base.fail_on);
    let failed = sustained.is_none()
        || grade
            .as_ref()
            .is_some_and(|g| g.grade != Grade::NotMeasured && g.grade > pass);
    let warnings = distinct_warnings(&steps);
    CapacityReport {
        schema: SCHEMA,
        started_at,
        targets,
        mode: s.base.load.mode,
        axis: match s.axis {
            Axis::Rate { .. } => "rate",
            Axis::Conns { .. } => "conns",
        },
        slo: s.slo.latency.clone(),
        slo_text,
        max_error_frac: s.slo.max_error_frac,
        warmup_s: s.warmup.as_secs_f64(),
        step_duration_s: s.hold.as_secs_f64(),
        steps,
        sustained,
        first_broken_per_sec,
        stop,
        stop_reason: stop.text().to_string(),
        grade,
        duration_s: took.as_secs_f64(),
        warnings,
        exit_code: u8::from(failed),
    }
}

/// The steps' warnings, each kind once (the first step's figures; kinds
/// differ in their words, not their numbers), at most [`MAX_WARNINGS`].
fn distinct_warnings(steps: &[Step]) -> Vec<String> {
    let kind = |w: &str| -> String { w.chars().filter(|c| !c.is_ascii_digit()).collect() };
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for st in steps {
        for w in &st.warnings {
            let k = kind(w);
            if out.len() < MAX_WARNINGS && !seen.contains(&k) {
                let others = steps
                    .iter()
                    .filter(|o| o.n != st.n && o.warnings.iter().any(|x| kind(x) == k))
                    .count();
                let also = if others > 0 {
                    format!(" (and {others} more steps)")
                } else {
                    String::new()
                };
                out.push(format!("step {}{also}: {w}", st.n));
                seen.push(k);
            }
        }
    }
    out
}

/// The Messages/sec row, graded on the highest load that held. Until a
/// step broke, that load is only a lower bound: below the row's lowest
/// bound, the search did not test the row.
fn grade_row(
    s: &Search,
    best: Option<&Sustained>,
    (stop, broke): (Stop, Option<f64>),
    slo_text: &str,
) -> Option<GradeRow> {
    let row = s
        .base
        .thresholds
        .rows
        .iter()
        .find(|r| r.key == MetricKey::MessagesPerSec)?;
    let raise = match (stop, s.axis) {
        (Stop::MaxHeld, Axis::Rate { .. }) => "raise --max-rate",
        (Stop::MaxHeld, Axis::Conns { .. }) => "raise --max-conns",
        _ => "let the search go on",
    };
    let (measured, value) = match best {
        None => (None, format!("n/a (no step held {slo_text})")),
        Some(b) if broke.is_none() && !row.bounds[2].holds(b.offered_per_sec) => (
            None,
            format!(
                "n/a ({:.0} msg/s held and no step broke ({}): below the lowest bound {}, not a test of this row; {raise})",
                b.offered_per_sec,
                stop.text(),
                row.cells[2].trim(),
            ),
        ),
        Some(b) => (
            Some(b.offered_per_sec),
            format!(
                "{}{:.0} msg/s sustained under {slo_text} (capacity search, step {}; {:.0} replies/s)",
                if broke.is_none() { "at least " } else { "" },
                b.offered_per_sec,
                b.step,
                b.replies_per_sec
            ),
        ),
    };
    Some(GradeRow::new(row, measured, value))
}
