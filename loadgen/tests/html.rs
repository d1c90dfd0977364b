//! `--html FILE` (issue 11, item 4): a real run's page opened in Debian's
//! headless Chromium through playwright-core (as server/tests/browser.rs
//! does): no console error, no request beyond the file, no script, and
//! data drawn in every chart. The screenshot is kept as a test artifact in
//! target/html-report/.
//!
//! Chromium comes from the system packages and playwright-core from npm;
//! scripts/test.sh installs both (CHROMIUM and PLAYWRIGHT_CORE say where;
//! the script falls back to /usr/bin/chromium and target/browser-test).

use clap::Parser;
use std::path::PathBuf;
use std::process::Command;

/// Where the page and its screenshot are kept after the test.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/html-report");
    std::fs::create_dir_all(&dir).expect("create target/html-report");
    dir
}

#[test]
fn the_html_report_opens_in_headless_chromium_with_data_in_every_chart() {
    let dir = artifacts();
    let page = dir.join("report.html");
    let shot = dir.join("report.png");
    let _ = std::fs::remove_file(&shot);
    // The embedded node (a child process, so its CPU and RSS are sampled),
    // with stages so that all three phases are shaded.
    let args = [
        "loadgen",
        "--quiet",
        "--stages",
        "2s:40,3s:40,1s:0",
        "--rate",
        "10",
        "--exe",
        env!("CARGO_BIN_EXE_loadgen"),
        "--html",
        page.to_str().expect("utf-8 path"),
    ];
    let opts = loadgen::Opts::try_parse_from(args).expect("valid options");
    let report = loadgen::run(opts)
        .expect("the run succeeds")
        .report
        .expect("a report");
    assert!(report.messages.received > 0, "{:?}", report.messages);
    assert!(!report.percentiles.latency_us.is_empty());
    assert!(!report.percentiles.connection_us.is_empty());

    let html = std::fs::read_to_string(&page).expect("the page was written");
    assert!(!html.contains("<script"), "the page has no script");
    assert!(
        !html.contains(" src=") && !html.contains(" href="),
        "nothing to fetch"
    );

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/report_page.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(&page)
        .arg(&shot)
        .output()
        .expect("node (nodejs) runs: scripts/test.sh installs it");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser failed:\n{stdout}\n{stderr}");
    let found: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("a JSON line"),
    )
    .expect("JSON");

    assert_eq!(found["errors"], serde_json::json!([]), "console: {found}");
    assert_eq!(found["requests"], serde_json::json!([]), "fetches: {found}");
    assert_eq!(found["scripts"], 0);
    let charts = found["charts"].as_array().expect("charts");
    let ids: Vec<&str> = charts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "chart-open",
            "chart-throughput",
            "chart-latency",
            "chart-latency-dist",
            "chart-connect-dist",
            "chart-cpu",
            "chart-rss"
        ]
    );
    for c in charts {
        assert!(c["points"].as_u64() >= Some(1), "no data drawn: {c}");
        assert!(c["width"].as_f64() > Some(300.0), "chart not laid out: {c}");
    }
    // The time charts shade the phases.
    let latency = &charts[2];
    assert!(latency["bands"].as_u64() >= Some(2), "{latency}");
    assert_eq!(found["grades"].as_u64(), Some(report.grades.len() as u64));
    assert!(
        found["template"]
            .as_str()
            .is_some_and(|t| t.contains("Test Date:")),
        "{found}"
    );
    assert!(std::fs::metadata(&shot).expect("a screenshot").len() > 10_000);
}
