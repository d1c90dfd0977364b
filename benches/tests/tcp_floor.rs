//! The floor program must stay runnable: a short run answers every message
//! and prints the figures docs/BENCHMARKS.md quotes.

use std::process::Command;

#[test]
fn a_short_floor_run_answers_every_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_tcp_floor"))
        .args(["--conns", "50", "--rate", "20", "--duration", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.contains("answered"))
        .expect("an answered line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(';').parse().ok())
        .collect();
    // 50 conns x 20/s over 3 s warm-up + 1 s measured.
    assert!(
        nums.len() >= 2 && nums[0] == nums[1] && nums[0] >= 50 * 20 * 4 - 50,
        "{line}"
    );
    assert!(text.contains("us of CPU per round trip"), "{text}");
}

#[test]
fn bad_options_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_tcp_floor"))
        .args(["--conns", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--conns"));
}
