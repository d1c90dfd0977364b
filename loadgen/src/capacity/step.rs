//! One step of the search: a normal measured run (`run::measure`, the same
//! path and backend as `loadgen` itself) at one offered load, judged on its
//! graded phase against the objective.

use crate::capacity::model::Step;
use crate::capacity::search::Kind;
use crate::capacity::settings::Search;
use crate::capacity::slo::Measured;
use crate::error::Error;
use crate::opts::GradePhase;
use crate::report::fmt::fmt_us;
use crate::report::model::Report;
use crate::run::{self, Site};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Replies (and sends) per second below this share of the offered rate:
/// the step did not keep up, whatever its latency.
const KEPT_UP: f64 = 0.95;

/// Run the step at `v` against `site` and judge it.
pub async fn run_step(s: &Search, site: &Site, n: u32, v: f64, kind: Kind) -> Result<Step, Error> {
    let cfg = Arc::new(s.step_config(v));
    let (conns, rate) = s.shape(v);
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let t0 = Instant::now();
    let measured = run::measure(&cfg, site, run::new_run_id(), started_at, None).await;
    let duration_s = t0.elapsed().as_secs_f64();
    let shape = (n, kind, conns, rate);
    match measured {
        Ok(r) => Ok(judge(s, shape, &r, duration_s)),
        // A load at which no connection opens broke; the search goes on.
        Err(Error::Unreachable(why)) if n > 1 => Ok(unreachable(shape, why, duration_s)),
        Err(e) => Err(e),
    }
}

/// The step's figures from its report, and whether it held.
fn judge(
    s: &Search,
    (n, kind, conns, rate): (u32, Kind, u64, f64),
    r: &Report,
    duration_s: f64,
) -> Step {
    let offered = conns as f64 * rate;
    let ph = &r.phases;
    let mut warnings = Vec::new();
    let (graded_s, msgs, latency, lag, drops) = match ph.graded {
        GradePhase::Steady => {
            let f = &ph.steady;
            (
                f.duration_s,
                &f.messages,
                f.latency_us.corrected,
                f.send_lag_us.p99,
                f.connections.drops,
            )
        }
        GradePhase::All => (
            r.duration_s,
            &r.messages,
            r.latency_us.corrected,
            r.send_lag_us.summary.p99,
            r.connections.drops,
        ),
    };
    if let Some(note) = &ph.note {
        warnings.push(note.clone());
    }
    let failed = msgs.timeouts + msgs.lost + msgs.received.saturating_sub(msgs.ok);
    let mut broke = s.slo.judge(&Measured {
        latency,
        sent: msgs.sent,
        failed,
    });
    // The whole step's peak: the graded phase's last second may end just
    // after the plan closed its connections.
    if r.connections.peak_open < conns as i64 {
        broke.push(format!(
            "only {} of {conns} connections opened",
            r.connections.peak_open
        ));
    }
    if drops > 0 {
        broke.push(format!("{drops} connections dropped"));
    }
    if msgs.sent_per_sec < offered * KEPT_UP {
        let why = format!(
            "loadgen sent {:.0} msg/s of the {offered:.0} offered (send lag p99 {})",
            msgs.sent_per_sec,
            fmt_us(lag)
        );
        warnings.push(format!(
            "{why}: loadgen or the connection's backpressure, not only the target, limited this step"
        ));
        broke.push(why);
    } else if msgs.per_sec < offered * KEPT_UP {
        broke.push(format!(
            "answered {:.0} msg/s of the {offered:.0} offered",
            msgs.per_sec
        ));
    }
    warnings.extend(r.warnings.iter().cloned());
    Step {
        n,
        kind,
        conns,
        rate_per_conn: rate,
        offered_per_sec: offered,
        graded: ph.graded,
        graded_s,
        sent_per_sec: msgs.sent_per_sec,
        replies_per_sec: msgs.per_sec,
        latency_us: latency,
        sent: msgs.sent,
        failed,
        peak_open: r.connections.peak_open,
        send_lag_p99_us: lag,
        held: broke.is_empty(),
        broke,
        warnings,
        duration_s,
    }
}

/// A step in which no connection opened.
fn unreachable(
    (n, kind, conns, rate): (u32, Kind, u64, f64),
    why: String,
    duration_s: f64,
) -> Step {
    Step {
        n,
        kind,
        conns,
        rate_per_conn: rate,
        offered_per_sec: conns as f64 * rate,
        graded: GradePhase::All,
        graded_s: 0.0,
        sent_per_sec: 0.0,
        replies_per_sec: 0.0,
        latency_us: Default::default(),
        sent: 0,
        failed: 0,
        peak_open: 0,
        send_lag_p99_us: 0,
        held: false,
        broke: vec![format!("cannot reach the target: {why}")],
        warnings: Vec::new(),
        duration_s,
    }
}
