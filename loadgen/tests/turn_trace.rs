//! `LOADGEN_TRACE_TURNS` (engine::steady::trace): off by default, every
//! turn over the threshold on standard error when set, a clear word and
//! no trace for a bad value. Runs the binary, as a user would.

use std::process::Command;

fn run(trace: Option<&str>, json: &std::path::Path) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args([
        "--quiet",
        "--conns",
        "4",
        "--rate",
        "10",
        "--duration",
        "2s",
    ])
    .args(["--json", json.to_str().unwrap()]);
    match trace {
        Some(v) => cmd.env("LOADGEN_TRACE_TURNS", v),
        None => cmd.env_remove("LOADGEN_TRACE_TURNS"),
    };
    let out = cmd.output().expect("loadgen runs");
    // 1: a grade missed (memory per connection, at 4 connections); the
    // run itself completed.
    (
        matches!(out.status.code(), Some(0 | 1)),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sent(json: &std::path::Path) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    v["messages"]["sent"].as_u64().expect("messages.sent")
}

#[test]
fn every_turn_over_the_threshold_is_printed_with_its_timers() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    // Threshold 0: every turn that took any time.
    let (ok, err) = run(Some("0"), &json);
    assert!(ok, "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("loadgen turn: loop "))
        .collect();
    assert!(!lines.is_empty(), "no turn printed:\n{err}");
    // Each due send is one timer fired in some turn.
    let fired: u64 = lines
        .iter()
        .map(|l| {
            let (_, rest) = l
                .split_once("; ")
                .and_then(|(_, r)| r.split_once("; "))
                .unwrap();
            rest.split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(
        fired >= sent(&json),
        "{fired} timers fired for {} sends",
        sent(&json)
    );
    // Off by default.
    let (ok, err) = run(None, &json);
    assert!(ok, "{err}");
    assert!(!err.contains("loadgen turn:"), "{err}");
}

#[test]
fn a_bad_threshold_is_said_and_traces_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let (ok, err) = run(Some("soon"), &json);
    assert!(ok, "{err}");
    assert!(
        err.contains("LOADGEN_TRACE_TURNS=\"soon\" is not a number of milliseconds"),
        "{err}"
    );
    assert!(!err.contains("loadgen turn:"), "{err}");
    assert!(sent(&json) > 0);
}
