//! Ramp-up, steady and ramp-down measured apart (issue 11, item 1): the
//! "15,000 connections x 1/s" case at a size this machine runs in seconds.
//! A connection storm against a server with one busy core slows the
//! handshakes and every reply due during the storm; once every connection
//! is open, replies leave after the server's fixed delay again.

mod support;

use clap::Parser;
use loadgen::opts::GradePhase;
use loadgen::report::grades::{Grade, MetricKey};
use loadgen::report::model::{GradeRow, Report};
use std::time::Duration;
use support::Behavior;

const DELAY_MS: f64 = 40.0;

fn run(url: &str, extra: &str) -> Report {
    let args = format!("loadgen --quiet --url {url} --conns 300 --rate 1 --duration 6s {extra}");
    let opts = loadgen::Opts::try_parse_from(args.split_whitespace()).expect("valid options");
    loadgen::run(opts)
        .expect("the run succeeds")
        .report
        .expect("a report")
}

fn row(r: &Report, key: MetricKey) -> &GradeRow {
    r.grades.iter().find(|g| g.key == key).expect("a row")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[test]
fn a_connection_storm_is_reported_apart_and_the_steady_phase_is_graded() {
    let srv = support::start(Behavior::Busy {
        delay: Duration::from_millis(DELAY_MS as u64),
        handshake: Duration::from_millis(3),
    });
    let r = run(&srv.url(), "");
    let ph = &r.phases;
    assert_eq!(ph.graded, GradePhase::Steady, "{:?}", ph.note);
    assert!(ph.steady.duration_s >= 3.0, "{ph:?}");

    // The storm is the ramp-up: every connection opened there, slowly.
    let up = &ph.ramp_up;
    assert_eq!(up.connections.established, 300, "{:?}", up.connections);
    assert_eq!(ph.steady.connections.established, 0);
    assert!(
        ms(up.connections.time_us.p99) >= 100.0,
        "the storm queued the handshakes: {:?}",
        up.connections.time_us
    );

    // The steady phase shows the server's delay, and drives the grade.
    let steady = &ph.steady.latency_us.corrected;
    assert!(
        (DELAY_MS * 0.9..=DELAY_MS * 1.1).contains(&ms(steady.p50)),
        "steady p50 {} ms is not within 10% of {DELAY_MS} ms",
        ms(steady.p50)
    );
    assert!(steady.count >= 1000, "{steady:?}");
    let lat = row(&r, MetricKey::MessageLatency);
    assert_eq!(lat.measured, Some(steady.p99 as f64), "{lat:?}");
    assert!(lat.value.contains("steady"), "{lat:?}");
    // The ramp-up's latency is reported apart, and it is the storm's.
    let up_lat = &up.latency_us.corrected;
    assert!(up_lat.count > 0, "{up:?}");
    assert!(
        up_lat.p99 > 2 * steady.p99,
        "ramp-up p99 {} ms vs steady {} ms",
        ms(up_lat.p99),
        ms(steady.p99)
    );
    assert!(
        r.latency_us.corrected.p99 > steady.p99,
        "the whole run includes the storm"
    );
    // No connection opened in the steady phase: not measured, never graded from the storm.
    let conn = row(&r, MetricKey::ConnectionTime);
    assert_eq!(conn.grade, Grade::NotMeasured, "{conn:?}");
    assert!(
        ph.ramp_missed
            .iter()
            .any(|l| l.contains("ramp-up") && l.contains("Connection Time")),
        "{:?}",
        ph.ramp_missed
    );
    // Each phase adds up to the whole run.
    let counts = [&ph.ramp_up, &ph.steady, &ph.ramp_down];
    let lat_n: u64 = counts.iter().map(|p| p.latency_us.corrected.count).sum();
    assert_eq!(lat_n, r.latency_us.corrected.count);
    let conn_n: u64 = counts.iter().map(|p| p.connections.time_us.count).sum();
    assert_eq!(conn_n, r.connections.time_us.count);
    assert!(r.series.iter().all(|s| s.phase.is_some()), "{:?}", r.series);

    let text = loadgen::report::template::template(&r);
    for needle in [
        "Graded: the steady phase",
        "- Ramp-up (",
        "- Missed during a ramp only: the ramp-up alone missed the Connection Time target",
        "steady phase; corrected",
    ] {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }

    // Graded over the whole run, the storm decides the latency grade.
    let all = run(&srv.url(), "--grade-phase all");
    assert_eq!(all.phases.graded, GradePhase::All);
    let lat_all = row(&all, MetricKey::MessageLatency);
    assert_eq!(
        lat_all.measured,
        Some(all.latency_us.corrected.p99 as f64),
        "{lat_all:?}"
    );
    let steady_grade = row(&r, MetricKey::MessageLatency).grade;
    assert!(
        lat_all.grade > steady_grade,
        "whole run {lat_all:?} vs steady {steady_grade:?}"
    );
    assert!(all.phases.ramp_missed.is_empty());
}

#[test]
fn a_run_without_a_hold_says_so_and_grades_the_whole_run() {
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(1),
    });
    let opts = loadgen::Opts::try_parse_from(
        format!(
            "loadgen --quiet --url {} --stages 2s:6,2s:0 --rate 10",
            srv.url()
        )
        .split_whitespace(),
    )
    .unwrap();
    let r = loadgen::run(opts).unwrap().report.unwrap();
    assert_eq!(r.phases.graded, GradePhase::All);
    assert_eq!(r.phases.steady.duration_s, 0.0);
    let note = r.phases.note.as_deref().expect("a note");
    assert!(note.contains("no steady phase"), "{note}");
    let text = loadgen::report::template::template(&r);
    assert!(
        text.contains("Graded: the whole run: no steady phase"),
        "{text}"
    );
    let lat = row(&r, MetricKey::MessageLatency);
    assert_eq!(lat.measured, Some(r.latency_us.corrected.p99 as f64));
}

/// When sending ends, drained connections wait for the ones still owed a
/// reply, then all close: the teardown does not overlap the last replies.
#[test]
fn connections_close_together_once_the_last_reply_is_in() {
    // Replies leave at once, until a stall near the end of sending holds
    // every reply then in flight for 800 ms: the connections that sent in
    // the last ~250 ms (2/s) or ~50 ms (10/s: about half of them) are still
    // owed a reply, the others have theirs.
    for (rate, stall_at) in [(2, 2_750), (10, 2_950)] {
        close_together_at(rate, stall_at);
    }
}

fn close_together_at(rate: u32, stall_at_ms: u64) {
    let srv = support::start(Behavior::StallOnce {
        at: Duration::from_millis(stall_at_ms),
        stall: Duration::from_millis(800),
    });
    let args = format!(
        "loadgen --quiet --url {} --conns 20 --rate {rate} --duration 3s --timeout 5s",
        srv.url()
    );
    let opts = loadgen::Opts::try_parse_from(args.split_whitespace()).expect("valid options");
    let r = loadgen::run(opts)
        .expect("the run succeeds")
        .report
        .expect("a report");
    assert_eq!(
        r.messages.received, r.messages.sent,
        "{rate}/s: {:?}",
        r.messages
    );
    // The stall happened: some replies waited for it.
    assert!(
        ms(r.latency_us.corrected.max) >= 500.0,
        "{rate}/s: no reply was held (max {} ms): the stall came after sending ended",
        ms(r.latency_us.corrected.max)
    );
    let last = srv
        .times
        .last_reply
        .lock()
        .unwrap()
        .expect("replies were written");
    let closed = srv.times.closed.lock().unwrap().clone();
    assert_eq!(closed.len(), 20, "{rate}/s: every connection ended");
    let early = closed.iter().filter(|t| **t < last).count();
    assert_eq!(
        early, 0,
        "{rate}/s: {early} of 20 connections closed before the last reply was written"
    );
}
