//! floor_compare's goal check (`--search --verify --paired`) must stay
//! runnable and say how many rounds each side passed at each rate; bad
//! options get a clear error.

use std::process::Command;

#[test]
fn a_tiny_search_with_a_paired_goal_check_counts_its_rounds() {
    // From = to: each side is tried at 20 conns x 10/s, then one round of
    // the goal check runs the floor at 20 and loadgen + node at 18 (90 %),
    // and, paired, the floor at 18 and loadgen + node at 20.
    let out = Command::new(env!("CARGO_BIN_EXE_floor_compare"))
        .args(["--search", "--search-from", "20", "--search-to", "20"])
        .args(["--search-floor-to", "20", "--rate", "10", "--duration", "2"])
        .args(["--verify", "1", "--paired"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Goal check, 1 rounds at 10/s per connection, paired"),
        "{text}"
    );
    assert!(
        text.contains("| round | tcp_floor at 20: p99 | passes | loadgen + node at 18 (90 %): p99 | passes | tcp_floor at 18 (90 %): p99 | passes | loadgen + node at 20: p99 | passes |"),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("| 1 |"))
        .expect("the round's row");
    // The four runs' p99 are figures, each judged.
    assert_eq!(row.matches(" ms |").count(), 4, "{row}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("loadgen + node passed"))
        .expect("the summary line");
    assert!(
        summary.contains("of 1 rounds at 90 % of the floor's rate"),
        "{summary}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("Paired reading: loadgen + node held 90 %")),
        "{text}"
    );
}

#[test]
fn a_goal_ratio_out_of_range_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_floor_compare"))
        .args(["--search", "--goal-ratio", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--goal-ratio"));
}
