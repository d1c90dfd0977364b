//! `loadgen capacity` (issue 11, item 6) against a server whose capacity is
//! known: one server for all connections, each request taking a fixed
//! service time S, so it holds 1 / S requests a second with a low p99 and
//! queues without bound above that. It echoes frames byte for byte
//! (`--mode raw`), so little CPU besides its queue stands between the
//! search and 1 / S on a busy machine. The rate found must be within 15 % of
//! 1 / S; bad options exit 2.

mod support;

use clap::Parser;
use serde_json::Value;
use std::time::Duration;
use support::Behavior;

/// 2 ms a request: 500 requests a second, modest for a 2-core machine.
const SERVICE: Duration = Duration::from_millis(2);

fn opts(args: &str) -> loadgen::Opts {
    loadgen::Opts::try_parse_from(shell_split(args)).expect("valid options")
}

/// Split on spaces, keeping single-quoted words whole.
fn shell_split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, part) in s.split('\'').enumerate() {
        if i % 2 == 1 {
            out.push(part.to_string());
        } else {
            out.extend(part.split_whitespace().map(str::to_string));
        }
    }
    out
}

#[test]
fn the_rate_found_is_within_15_percent_of_a_queueing_servers_capacity() {
    let srv = support::start(Behavior::Queue { service: SERVICE });
    let capacity = 1.0 / SERVICE.as_secs_f64();
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("capacity.json");
    let html = dir.path().join("capacity.html");
    let args = format!(
        "loadgen capacity --quiet --mode raw --url {} --conns 20 --slo 'p99<50ms' --max-errors 1% \
         --start-rate 300 --step x2 --max-rate 4000 --warmup 1s --step-duration 3s \
         --timeout 1s --narrow-steps 4 --max-steps 8 --max-time 2m --json {} --html {}",
        srv.url(),
        json.display(),
        html.display()
    );
    let out = loadgen::run(opts(&args)).expect("the search runs");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("--json written"))
        .expect("JSON");
    assert_eq!(doc["schema"], "loadgen.capacity/v1");
    let steps = doc["steps"].as_array().expect("steps");
    let found = doc["sustained"]["offered_per_sec"]
        .as_f64()
        .unwrap_or_else(|| panic!("no rate held: {doc:#}"));
    assert!(
        (found - capacity).abs() <= capacity * 0.15,
        "found {found} msg/s, capacity {capacity}: steps {}",
        serde_json::to_string_pretty(steps).unwrap()
    );
    // It climbed past the capacity, saw the objective break, and narrowed.
    let broke = doc["first_broken_per_sec"].as_f64().expect("a step broke");
    assert!(broke > found && broke <= capacity * 1.3, "{broke}");
    assert!(steps.len() <= 8, "--max-steps bounds the search");
    let kinds: Vec<&str> = steps.iter().filter_map(|s| s["kind"].as_str()).collect();
    assert!(kinds.contains(&"narrow"), "{kinds:?}");
    // A broken step says why: its p99 over the objective (the queue grew).
    let over = steps
        .iter()
        .find(|s| s["offered_per_sec"].as_f64() == Some(broke))
        .expect("the broken step");
    let why = over["broke"].to_string();
    assert!(why.contains("p99") && why.contains("p99<50ms"), "{why}");
    // Each held step was judged on its steady phase, whose p99 held.
    for s in steps.iter().filter(|s| s["held"] == true) {
        assert_eq!(s["graded"], "steady", "{s}");
        assert!(s["latency_us"]["p99"].as_u64().unwrap() < 50_000, "{s}");
        assert!(s["graded_s"].as_f64().unwrap() >= 2.0, "{s}");
    }
    // The Messages/sec row is graded from the rate found: 500/s is below
    // the seed's Acceptable (10K+), so the row fails, and so does the exit code.
    let grade = &doc["grade"];
    assert_eq!(grade["metric"], "Messages/sec");
    assert_eq!(grade["measured"].as_f64(), Some(found));
    assert_eq!(grade["grade"], "fail");
    assert_eq!(out.exit_code, 1);
    assert_eq!(doc["exit_code"], 1);
    // The curve as a self-contained page: one point per step in each chart.
    let page = std::fs::read_to_string(&html).expect("--html written");
    assert!(
        page.contains("default-src 'none'"),
        "a policy that forbids fetches"
    );
    for fetch in ["<script", " src=", " href=", "@import"] {
        assert!(!page.contains(fetch), "the page holds {fetch}");
    }
    for id in ["chart-capacity-latency", "chart-capacity-throughput"] {
        let chart = &page[page.find(id).unwrap_or_else(|| panic!("{id}"))..];
        let points = format!("data-points=\"{}\"", steps.len());
        assert!(chart.contains(&points), "{id} lacks {points}");
    }
}

#[test]
fn bad_options_exit_2_with_the_fix() {
    for (args, says) in [
        ("--slo 'p98<5ms'", "p50, p90, p95, p99 or p99.9"),
        ("--slo 'p99<5'", "50ms"),
        ("--max-errors 200%", "--max-errors"),
        ("--step x1", "above 1"),
        ("--step 2", "xFACTOR"),
        ("--start-rate 500 --max-rate 100", "below --start-rate"),
        (
            "--conns 10 --max-rate 20000",
            "raise --conns to at least 20",
        ),
        ("--stages 10s:5", "drop --stages"),
        ("--duration 5s", "drop --duration"),
        ("--rate 5", "drop --rate"),
        ("--step-duration 2s", "--step-duration must be 3s"),
        ("--max-steps 0", "--max-steps"),
        ("--max-time 5s", "at least one step"),
        ("--start-conns 10 --step +1.5", "whole number"),
        ("--start-conns 10 --max-conns 5", "start <= max"),
        ("--hdr-log x.hlog", "single run"),
    ] {
        let o = loadgen::Opts::try_parse_from(shell_split(&format!(
            "loadgen capacity --url ws://127.0.0.1:9/ws/chat {args}"
        )))
        .expect("clap parses");
        let e = loadgen::run(o).expect_err(args);
        assert_eq!(e.exit_code(), 2, "{args}: {e}");
        assert!(e.to_string().contains(says), "{args}: {e}");
    }
}
