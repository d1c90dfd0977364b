//! `loadgen compare BASE.json NEW.json` (issue 11, item 5): a run against a
//! server that answers after 5 ms, compared with one against a server that
//! answers after 100 ms, exits 1 naming p99; identical inputs exit 0; bad
//! inputs exit 2 with a message. The runs go through `loadgen::run`; the
//! comparison through the binary, since its exit code and messages are
//! what a CI script sees.

mod support;

use clap::Parser;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::Behavior;

/// A short run against a server replying after `delay_ms`, its report in `json`.
fn run_against(delay_ms: u64, json: &Path) {
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(delay_ms),
    });
    let args = format!(
        "loadgen --quiet --url {} --conns 20 --rate 10 --duration 4s --json {}",
        srv.url(),
        json.display()
    );
    let opts = loadgen::Opts::try_parse_from(args.split_whitespace()).expect("valid options");
    let out = loadgen::run(opts).expect("the run succeeds");
    let r = out.report.expect("a report");
    assert!(r.messages.received > 0, "{:?}", r.messages);
}

fn compare(args: &[&Path], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("compare")
        .args(args)
        .args(extra)
        .output()
        .expect("loadgen runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const GATE: [&str; 2] = ["--max-regression", "p99=10%,per_sec=5%"];

#[test]
fn a_slower_server_fails_the_p99_gate_and_identical_reports_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fast = dir.path().join("fast.json");
    let slow = dir.path().join("slow.json");
    run_against(5, &fast);
    // Far enough apart that a stall of the shared host in the fast run
    // cannot lift its p99 to the slow one's (20 ms was not: a 43 ms p99
    // on the 5 ms server failed a CI run, 2026-12-01).
    run_against(100, &slow);

    let o = compare(&[&fast, &slow], &GATE);
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("REGRESSION: p99 "), "{stdout}");
    assert!(stderr.contains("regression: p99 "), "{stderr}");
    // Every headline figure is in the table; the rate held.
    for key in [
        "p50",
        "p95",
        "p99",
        "per_sec",
        "success_rate",
        "connect_p99",
        "errors",
        "cpu_node",
        "cpu_loadgen",
        "mem_per_conn",
    ] {
        assert!(stdout.contains(&format!("| {key} |")), "{key}: {stdout}");
    }
    let per_sec = stdout
        .lines()
        .find(|l| l.contains("| per_sec |"))
        .expect("a per_sec row");
    assert!(per_sec.ends_with("| 5%: held |"), "{stdout}");
    let p99 = stdout.lines().find(|l| l.contains("| p99 |")).unwrap();
    assert!(
        p99.contains("(worse)") && p99.ends_with("| 10%: EXCEEDED |"),
        "{p99}"
    );

    for (a, b) in [(&fast, &fast), (&slow, &slow), (&slow, &fast)] {
        let o = compare(&[a, b], &GATE);
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("Every --max-regression limit held (2)"),
            "{stdout}"
        );
    }
    // Without limits, the table alone: exit 0.
    assert_eq!(compare(&[&fast, &slow], &[]).status.code(), Some(0));
}

#[test]
fn bad_inputs_exit_2_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("r.json");
    run_against(1, &report);
    let missing = dir.path().join("missing.json");
    let not_json = dir.path().join("not.json");
    std::fs::write(&not_json, "hello").unwrap();
    let other = dir.path().join("other.json");
    std::fs::write(&other, r#"{"schema":"k6.summary/v1"}"#).unwrap();
    let partial = dir.path().join("partial.json");
    std::fs::write(&partial, r#"{"schema":"loadgen.report/v1","mode":"echo"}"#).unwrap();

    let r: &Path = &report;
    let cases: [(&[&Path], &[&str], &str); 7] = [
        (&[r, &missing], &[], "cannot read"),
        (&[r, &not_json], &[], "is not a loadgen report"),
        (&[&other, r], &[], "\"k6.summary/v1\""),
        (&[r, &partial], &[], "missing field"),
        (
            &[r, r],
            &["--max-regression", "p98=10%"],
            "unknown figure \"p98\"",
        ),
        (
            &[r, r],
            &["--max-regression", "p99=ten%"],
            "not a percentage",
        ),
        (
            &[r, r],
            &["--max-regression", "p99=10%,p99=5%"],
            "given twice",
        ),
    ];
    for (files, extra, says) in cases {
        let o = compare(files, extra);
        let (stdout, stderr) = text(&o);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{files:?} {extra:?}: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains(says),
            "{files:?} {extra:?}: wanted {says:?} in {stderr}"
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["compare", r.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "one file is not enough");
}
