//! scripts/cpu-per-trip.sh, the split behind BENCHMARKS' CPU figures, must
//! keep running: each side's figures are read from the processes it
//! started, and they add up to its total.

use std::path::Path;
use std::process::Command;

/// The script's one line for `kind` at 100 connections, as numbers in the
/// order printed: client user, client system, server user, server system,
/// total, then switches per message of the client and the server.
fn run(kind: &str) -> Vec<f64> {
    let bin = Path::new(env!("CARGO_BIN_EXE_tcp_floor"))
        .parent()
        .expect("the binaries' directory");
    let out = script(kind)
        .env("WSBENCH_BIN", bin)
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{kind}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{kind}: client user ")))
        .unwrap_or_else(|| panic!("{kind}: no figures in {text:?}"));
    let nums: Vec<f64> = line
        .split(|c: char| c.is_whitespace() || c == '|')
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 7, "{line}");
    nums
}

/// The script for side `kind` at 100 connections.
fn script(kind: &str) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut c = Command::new("bash");
    c.arg(root.join("scripts/cpu-per-trip.sh"))
        .args([kind, "100"]);
    c
}

#[test]
fn each_side_is_measured_and_its_parts_add_up() {
    for kind in ["ours", "ws"] {
        let n = run(kind);
        let (client, server, total) = (n[0] + n[1], n[2] + n[3], n[4]);
        // Each side worked for the 5,000 messages of the window.
        assert!(client > 0.0 && server > 0.0, "{kind}: {n:?}");
        // Printed to 2 decimals each.
        assert!((client + server - total).abs() <= 0.03, "{kind}: {n:?}");
        assert!(n[5] >= 0.0 && n[6] >= 0.0, "{kind}: {n:?}");
    }
}

#[test]
fn an_unknown_side_is_refused() {
    let out = script("neither").output().expect("bash runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"));
}
