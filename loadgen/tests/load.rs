//! Behaviour of whole runs, driven through `loadgen::run` like the binary.
//!
//! Runs are short (a few seconds, a handful of connections) and the checks
//! are about correctness, not speed: this machine is small and shared.

mod support;

use clap::Parser;
use loadgen::report::model::Report;
use loadgen::{Error, Opts};
use std::time::{Duration, Instant};
use support::{Behavior, assert_balanced};

fn opts(args: &[&str]) -> Opts {
    Opts::try_parse_from(["loadgen", "--quiet"].iter().chain(args.iter())).expect("valid options")
}

fn report(args: &[&str]) -> Report {
    let out = loadgen::run(opts(args)).expect("the run should succeed");
    out.report.expect("a report")
}

/// A run against `url` with the other options written as on a command line.
fn against(url: &str, options: &str) -> Report {
    let mut args = vec!["--url", url];
    args.extend(options.split_whitespace());
    report(&args)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[test]
fn fixed_delay_server_gives_p50_within_10_percent() {
    // 100 ms leaves room for a busy machine's scheduling noise within 10 %.
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(100),
    });
    let r = against(&srv.url(), "--conns 5 --rate 20 --duration 2s");
    let c = r.latency_us.corrected.p50;
    let u = r.latency_us.uncorrected.p50;
    assert!(r.messages.received > 100, "{:?}", r.messages);
    for p50 in [c, u] {
        assert!(
            (90.0..=110.0).contains(&ms(p50)),
            "p50 {} ms is not within 10% of 100 ms",
            ms(p50)
        );
    }
    assert_eq!(r.messages.errors_total, 0);
    assert_balanced(&r);
}

#[test]
fn one_stall_shows_in_corrected_p99_but_not_uncorrected() {
    let srv = support::start(Behavior::StallOnce {
        at: Duration::from_millis(1000),
        stall: Duration::from_secs(1),
    });
    let r = against(
        &srv.url(),
        "--conns 2 --rate 100 --duration 4s --wait-reply",
    );
    let c = r.latency_us.corrected.p99;
    let u = r.latency_us.uncorrected.p99;
    assert!(r.messages.received > 500, "{:?}", r.messages);
    assert!(
        ms(c) >= 500.0,
        "corrected p99 {} ms should show the 1 s stall",
        ms(c)
    );
    assert!(
        ms(u) < 200.0,
        "uncorrected p99 {} ms should hide the stall",
        ms(u)
    );
    assert!(
        r.latency_us.uncorrected.max >= 900_000,
        "the stalled message itself took ~1 s: max {}",
        r.latency_us.uncorrected.max
    );
    assert_balanced(&r);
}

#[test]
fn accounting_holds_with_timeouts_and_in_flight() {
    let srv = support::start(Behavior::SilentAfter {
        after: Duration::from_millis(500),
    });
    let r = against(
        &srv.url(),
        "--conns 3 --rate 20 --duration 2s --timeout 700ms",
    );
    let m = &r.messages;
    assert!(m.received > 0 && m.timeouts > 0, "{m:?}");
    assert!(m.in_flight == 0, "the drain waits out the timeout: {m:?}");
    assert_balanced(&r);
    assert!(r.success_rate < 1.0);
    // More than 1% unanswered: latency is graded as at least the timeout.
    let lat = r
        .grades
        .iter()
        .find(|g| g.metric == "Message Latency")
        .unwrap();
    assert_eq!(lat.grade, loadgen::report::grades::Grade::Fail, "{lat:?}");
    assert_eq!(r.exit_code, 1);
}

#[test]
fn accounting_holds_when_connections_drop_and_reconnect() {
    let srv = support::start(Behavior::DropAfter { n: 5 });
    let r = against(&srv.url(), "--conns 3 --rate 50 --duration 2s --reconnect");
    let m = &r.messages;
    assert!(r.connections.drops > 0, "{:?}", r.connections);
    assert!(r.connections.reconnects > 0, "{:?}", r.connections);
    assert!(m.received >= 15, "{m:?}");
    assert_balanced(&r);
}

#[test]
fn silent_server_messages_all_time_out() {
    // The final drain waits out --timeout, so nothing is left in flight.
    let srv = support::start(Behavior::Silent);
    let r = against(&srv.url(), "--conns 2 --rate 20 --duration 1s --timeout 3s");
    let m = &r.messages;
    assert!(m.sent > 20, "{m:?}");
    assert_eq!(m.received, 0);
    assert_eq!(m.timeouts, m.sent, "{m:?}");
    assert_balanced(&r);
}

#[test]
fn interrupt_counts_unanswered_messages_as_in_flight() {
    // Process boundary on purpose: SIGINT is what a user's Ctrl-C sends.
    let srv = support::start(Behavior::Silent);
    let json = std::env::temp_dir().join(format!("loadgen-int-{}.json", std::process::id()));
    let t = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--quiet",
            "--url",
            &srv.url(),
            "--conns",
            "2",
            "--rate",
            "20",
            "--duration",
            "20s",
        ])
        .args(["--timeout", "5s", "--json", json.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(status.code(), Some(1), "no message was answered");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let m = &v["messages"];
    let n = |k: &str| m[k].as_u64().unwrap();
    assert!(n("in_flight") > 0, "{m}");
    assert_eq!(
        n("sent"),
        n("received") + n("timeouts") + n("lost") + n("in_flight"),
        "{m}"
    );
    let warned = v["warnings"].as_array().unwrap().iter();
    assert!(
        warned
            .filter_map(|w| w.as_str())
            .any(|w| w.starts_with("none of the")),
        "{}",
        v["warnings"]
    );
    let _ = std::fs::remove_file(&json);
}

#[test]
fn echo_and_chat_against_the_real_node() {
    let node = support::start_wsnode(&[]);
    let r = against(&node.url(), "--conns 4 --rate 20 --duration 2s");
    assert!(r.messages.sent > 100);
    // The in-process node's pid is this test binary, not a node process, so
    // its figures come from its own /health/stats instead.
    let n = r
        .resources
        .iter()
        .find(|p| p.role == loadgen::monitor::procs::ProcRole::Node)
        .expect("node figures from /health/stats");
    assert!(n.label.contains("/health/stats"), "{n:?}");
    assert_eq!(n.pid, std::process::id());
    assert!(n.rss_bytes.unwrap_or(0) > 0 && n.cpu_pct.is_some(), "{n:?}");
    // CPU per message is the mean CPU over the replies per second.
    let per_msg = n.cpu_us_per_msg.expect("CPU per message");
    let expect = n.cpu_pct.unwrap() / 100.0 * 1e6 / r.messages.per_sec;
    assert!(
        (per_msg - expect).abs() <= expect * 1e-9,
        "{per_msg} vs {expect}"
    );
    assert_eq!(
        r.messages.ok,
        r.messages.sent - r.messages.in_flight,
        "{:?}",
        r.messages
    );
    assert_eq!(r.messages.errors_total, 0, "{:?}", r.error_samples);
    assert_balanced(&r);

    let r = against(
        &node.url(),
        "--mode chat --conns 3 --rate 5 --duration 2s --chat-chunks 4 --chat-interval-ms 5 --session-pattern load_test_{run}_{n}",
    );
    let m = &r.messages;
    assert!(m.received >= 20, "{m:?}");
    assert_eq!(m.errors_total, 0, "chunk checks: {:?}", r.error_samples);
    assert_eq!(m.ok, m.received);
    let chat = r.chat.as_ref().expect("chat figures");
    assert_eq!(chat.done_us.count, m.received);
    assert!(chat.chunk_gap_us.count >= 3 * m.received);
    assert_balanced(&r);
}

#[test]
fn chat_chunks_are_checked() {
    // The test server's chunks are correct; a wrong count would show as chunk_order.
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(1),
    });
    let r = against(
        &srv.url(),
        "--mode chat --conns 2 --rate 10 --duration 1s --chat-chunks 3 --wait-reply",
    );
    assert!(r.messages.received > 10);
    assert_eq!(r.messages.errors_total, 0, "{:?}", r.error_samples);
    assert_balanced(&r);
}

#[test]
fn raw_mode_against_a_plain_echo_server() {
    let srv = support::start(Behavior::RawEcho);
    let r = against(
        &srv.url(),
        "--mode raw --conns 3 --rate 30 --duration 1s --payload-size 100",
    );
    assert!(r.messages.received > 50, "{:?}", r.messages);
    assert_eq!(r.messages.errors_total, 0);
    assert_eq!(r.messages.ok, r.messages.received);
    assert_balanced(&r);
}

#[test]
fn embedded_node_child_process_default_mode() {
    let r = report(&[
        "--exe",
        env!("CARGO_BIN_EXE_loadgen"),
        "--conns",
        "10",
        "--rate",
        "10",
        "--duration",
        "2s",
    ]);
    assert!(r.messages.received > 100, "{:?}", r.messages);
    let node = r
        .resources
        .iter()
        .find(|p| p.role == loadgen::monitor::procs::ProcRole::Node)
        .expect("the embedded node is monitored");
    assert!(node.rss_bytes.unwrap_or(0) > 0, "{node:?}");
    assert!(node.pid != std::process::id());
    // The whole host over the plateau: its busy time per message covers at
    // least what the watched processes were charged (other processes and
    // uncharged kernel work only add), and /proc/stat splits it.
    let h = r.host.as_ref().expect("host figures");
    assert!(h.plateau, "{h:?}");
    let host_us = h.cpu_us_per_msg.expect("host CPU per message");
    let expect = h.cpu_pct / 100.0 * 1e6 / r.messages.per_sec;
    assert!((host_us - expect).abs() <= expect * 1e-9, "{h:?}");
    let (u, s, i) = (
        h.user_pct.unwrap(),
        h.system_pct.unwrap(),
        h.softirq_pct.unwrap(),
    );
    // Loopback work is charged as system or softirq time: a quiet host can
    // show no system tick at all over a short plateau.
    assert!(u > 0.0 && s >= 0.0 && i >= 0.0 && s + i > 0.0, "{h:?}");
    assert!(u + s + i <= h.cpus as f64 * 100.0 + 1.0, "{h:?}");
    assert_balanced(&r);
}

#[test]
fn unreachable_url_exits_3_quickly() {
    let dead = support::dead_port();
    let t = Instant::now();
    let e = loadgen::run(opts(&[
        "--url",
        &format!("ws://{dead}/ws/chat"),
        "--conns",
        "5",
        "--duration",
        "10s",
    ]))
    .expect_err("nothing listens there");
    assert!(matches!(e, Error::Unreachable(_)), "{e}");
    assert_eq!(e.exit_code(), 3);
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn non_websocket_server_exits_3() {
    let srv = support::start(Behavior::NotWebSocket);
    let e = loadgen::run(opts(&[
        "--url",
        &srv.url(),
        "--conns",
        "2",
        "--duration",
        "5s",
    ]))
    .expect_err("not a WebSocket server");
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(e.to_string().contains("HTTP 200"), "{e}");
}

#[test]
fn garbage_is_counted_not_fatal() {
    let srv = support::start(Behavior::Garbage);
    let r = against(
        &srv.url(),
        "--conns 2 --rate 20 --duration 1s --timeout 500ms",
    );
    assert!(r.messages.errors_total > 0);
    assert!(
        r.messages.errors.contains_key("protocol"),
        "{:?}",
        r.messages.errors
    );
    assert_eq!(r.messages.received, 0);
    assert_eq!(r.exit_code, 1);
    assert_balanced(&r);
}

#[test]
fn silent_server_does_not_hang_past_duration_plus_timeout() {
    let srv = support::start(Behavior::Silent);
    let t = Instant::now();
    let r = against(&srv.url(), "--conns 3 --rate 10 --duration 1s --timeout 1s");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(r.messages.received, 0);
    assert_balanced(&r);
}

#[test]
fn nonsense_options_exit_2() {
    for args in [
        &["--rate", "1e9"][..],
        &["--duration", "later"],
        &["--mode", "raw"],
        &["--url", "http://127.0.0.1:1/"],
        &["--conns", "0"],
    ] {
        let e = loadgen::run(opts(args)).expect_err(&format!("{args:?}"));
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
    }
    // Clap-level errors from the binary also exit 2.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--rate", "abc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_option_has_an_example_in_help() {
    let cmd = <Opts as clap::CommandFactory>::command();
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() || matches!(arg.get_id().as_str(), "help" | "version") {
            continue;
        }
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(
            help.contains("Example"),
            "--{} has no example: {help:?}",
            arg.get_id()
        );
    }
}

#[test]
fn template_and_grades_have_no_blanks_and_files_are_written() {
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(2),
    });
    let dir = std::env::temp_dir().join(format!("loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("r.json");
    let md = dir.join("r.md");
    let hlog = dir.join("r.hlog");
    let r = report(&[
        "--url",
        &srv.url(),
        "--conns",
        "3",
        "--rate",
        "20",
        "--duration",
        "2s",
        "--json",
        json.to_str().unwrap(),
        "--out-md",
        md.to_str().unwrap(),
        "--hdr-log",
        hlog.to_str().unwrap(),
    ]);
    let text = loadgen::report::template::template(&r);
    let table = loadgen::report::template::grade_table(&r);
    for doc in [&text, &table] {
        assert!(!doc.contains("___"), "{doc}");
    }
    for line in text
        .lines()
        .filter(|l| l.contains(':') && !l.ends_with(':'))
    {
        let (_, v) = line.split_once(':').unwrap();
        assert!(!v.trim().is_empty(), "blank: {line:?}");
    }
    for heading in [
        "Issues Found:\n- ",
        "Recommendations:\n- ",
        "Node 3 CPU: n/a (",
    ] {
        assert!(text.contains(heading), "{heading:?} in {text}");
    }
    assert_eq!(r.grades.len(), 8);
    // The JSON file has the documented top-level shape.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "connections",
        "messages",
        "latency_us",
        "send_lag_us",
        "resources",
        "success_rate",
        "grades",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert!(v["latency_us"]["corrected"]["p999"].is_u64());
    assert!(v["connections"]["time_us"]["p99"].is_u64());
    assert!(
        std::fs::read_to_string(&md)
            .unwrap()
            .contains("| Message Latency |")
    );
    // The interval log merges back to the same number of samples.
    let merged = loadgen::report::hdrlog::merge_files(&[&hlog, &hlog]).unwrap();
    assert_eq!(merged.corrected.len(), 2 * r.latency_us.corrected.count);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stages_ramp_up_and_down() {
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(1),
    });
    let r = against(&srv.url(), "--stages 1s:6,1s:6,1s:0 --rate 10");
    assert_eq!(r.connections.peak_open, 6, "{:?}", r.connections);
    assert!(r.series.iter().any(|s| s.open < 6));
    assert_balanced(&r);
}

#[test]
fn workers_split_the_load_and_merge_exactly() {
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(5),
    });
    let hlog = std::env::temp_dir().join(format!("loadgen-workers-{}.hlog", std::process::id()));
    let r = report(&[
        "--exe",
        env!("CARGO_BIN_EXE_loadgen"),
        "--url",
        &srv.url(),
        "--workers",
        "2",
        "--conns",
        "6",
        "--rate",
        "20",
        "--duration",
        "2s",
        "--hdr-log",
        hlog.to_str().unwrap(),
    ]);
    // Per-second histograms from both workers add up to the run's total.
    let merged = loadgen::report::hdrlog::merge_files(&[&hlog]).unwrap();
    assert_eq!(merged.corrected.len(), r.latency_us.corrected.count);
    let per_second: u64 = r.series.iter().map(|s| s.received).sum();
    assert_eq!(per_second, r.messages.received, "{:?}", r.series);
    let _ = std::fs::remove_file(&hlog);
    assert_eq!(r.connections.established, 6, "{:?}", r.connections);
    assert_eq!(r.workers, 2);
    // Every message the server saw was sent by one of the workers.
    let server_saw = srv.received.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(r.messages.sent, server_saw, "{:?}", r.messages);
    assert_eq!(r.latency_us.corrected.count, r.messages.received);
    assert!(ms(r.latency_us.uncorrected.p50) >= 5.0);
    // Each second's connection times and send lags travel from the workers
    // too: the phases add up to the run's totals.
    let ph = &r.phases;
    let phases = [&ph.ramp_up, &ph.steady, &ph.ramp_down];
    let conns: u64 = phases.iter().map(|p| p.connections.time_us.count).sum();
    assert_eq!(conns, 6, "{ph:?}");
    let lags: u64 = phases.iter().map(|p| p.send_lag_us.count).sum();
    assert_eq!(lags, r.send_lag_us.summary.count, "{ph:?}");
    assert!(ph.steady.latency_us.corrected.count > 0, "{ph:?}");
    let workers = r
        .resources
        .iter()
        .filter(|p| p.role == loadgen::monitor::procs::ProcRole::Loadgen)
        .count();
    assert_eq!(workers, 2);
    assert_balanced(&r);
}

#[test]
fn source_ips_are_used_for_loopback_targets() {
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(1),
    });
    let r = against(
        &srv.url(),
        "--source-ips 127.0.0.2-127.0.0.4 --conns 6 --rate 10 --duration 1s",
    );
    assert_eq!(r.connections.established, 6, "{:?}", r.error_samples);
    let mut peers: Vec<String> = srv
        .peers
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    peers.sort();
    assert_eq!(peers, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    assert_balanced(&r);
}

#[test]
fn a_local_node_process_is_found_through_health_stats() {
    use std::io::BufRead;
    // A separate node process, as a user would start it.
    let mut node = std::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["__node", "--listen", "127.0.0.1:0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(node.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.split_whitespace().last().unwrap().to_string();
    let r = report(&[
        "--url",
        &format!("ws://{addr}/ws/chat"),
        "--conns",
        "5",
        "--rate",
        "10",
        "--duration",
        "2s",
    ]);
    let found = r
        .resources
        .iter()
        .find(|p| p.role == loadgen::monitor::procs::ProcRole::Node)
        .expect("the node was found through /health/stats");
    assert_eq!(found.pid, node.id());
    assert!(found.rss_bytes.unwrap_or(0) > 0);
    let _ = node.kill();
    let _ = node.wait();
}

#[test]
fn redis_is_found_through_info() {
    let Ok(_) = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
    else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let port = support::dead_port().port();
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let up = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(up.elapsed() < Duration::from_secs(5), "redis did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(1),
    });
    let r = report(&[
        "--url",
        &srv.url(),
        "--redis",
        &format!("127.0.0.1:{port}"),
        "--conns",
        "2",
        "--rate",
        "10",
        "--duration",
        "2s",
    ]);
    let _ = redis.kill();
    let _ = redis.wait();
    let found = r
        .resources
        .iter()
        .find(|p| p.role == loadgen::monitor::procs::ProcRole::Redis)
        .expect("redis monitored");
    assert_eq!(found.pid, redis.id());
    assert!(found.rss_bytes.unwrap_or(0) > 0);
    let text = loadgen::report::template::template(&r);
    assert!(
        text.contains("- Redis CPU: ") && !text.contains("Redis CPU: n/a"),
        "{text}"
    );
}

#[test]
fn connect_rate_paces_new_connections() {
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(1),
    });
    let r = against(
        &srv.url(),
        "--conns 6 --connect-rate 2 --rate 5 --duration 4s",
    );
    assert_eq!(r.connections.established, 6);
    // 2 per second: about 2 open after the first second, all 6 by the end.
    let first = r.series.first().expect("a first second");
    assert!(first.open <= 3, "{:?}", r.series);
    assert_eq!(r.connections.peak_open, 6);
    assert_balanced(&r);
    assert!(
        !r.warnings.iter().any(|w| w.contains("never opened")),
        "{:?}",
        r.warnings
    );
    // Too slow a pace for the run: the connections still waiting at its
    // end are reported, not silently missing from the figures.
    let r = against(
        &srv.url(),
        "--conns 12 --connect-rate 2 --rate 5 --duration 2s",
    );
    let missing = 12 - r.connections.established;
    assert!(missing >= 4, "{:?}", r.connections);
    let want =
        format!("{missing} of the 12 connections wanted never opened, and none of them failed");
    assert!(
        r.warnings.iter().any(|w| w.starts_with(&want)),
        "{:?}",
        r.warnings
    );
}

#[test]
fn raw_mode_against_another_websocket_implementation() {
    let srv = support::start_tungstenite_echo();
    let r = against(
        &srv.url(),
        "--mode raw --conns 3 --rate 20 --duration 1s --payload-size 300",
    );
    let m = &r.messages;
    assert!(m.received > 30, "{m:?}");
    assert_eq!(m.errors_total, 0, "{:?}", r.error_samples);
    assert_eq!(m.ok, m.received);
    assert_eq!(
        m.sent,
        srv.received.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_balanced(&r);
}

#[test]
fn thresholds_file_and_fail_on_decide_the_exit_code() {
    let srv = support::start(Behavior::Echo {
        delay: Duration::from_millis(20),
    });
    let dir = std::env::temp_dir();
    let lenient = dir.join(format!("loadgen-lenient-{}.md", std::process::id()));
    let strict = dir.join(format!("loadgen-strict-{}.md", std::process::id()));
    std::fs::write(
        &lenient,
        "| Metric | Target | Good | Acceptable |\n|---|---|---|---|\n| Message Latency | < 1s | < 2s | < 5s |\n| Concurrent Connections | 2+ | 1+ | 1+ |\n",
    )
    .unwrap();
    std::fs::write(
        &strict,
        "| Metric | Target | Good | Acceptable |\n|---|---|---|---|\n| Message Latency | < 5ms | < 10ms | < 15ms |\n",
    )
    .unwrap();
    let run = |file: &std::path::Path, fail_on: &str| {
        report(&[
            "--url",
            &srv.url(),
            "--conns",
            "2",
            "--rate",
            "10",
            "--duration",
            "1s",
            "--thresholds",
            file.to_str().unwrap(),
            "--fail-on",
            fail_on,
        ])
    };
    let r = run(&lenient, "target");
    assert_eq!(r.grades.len(), 2);
    assert!(
        r.grades
            .iter()
            .all(|g| g.grade == loadgen::report::grades::Grade::Target),
        "{:?}",
        r.grades
    );
    assert_eq!(r.exit_code, 0);
    let r = run(&strict, "acceptable");
    assert_eq!(
        r.grades[0].grade,
        loadgen::report::grades::Grade::Fail,
        "{:?}",
        r.grades
    );
    assert_eq!(r.exit_code, 1);
    let _ = std::fs::remove_file(&lenient);
    let _ = std::fs::remove_file(&strict);
    // A table that cannot be read is a bad option.
    let bad = dir.join(format!("loadgen-bad-{}.md", std::process::id()));
    std::fs::write(&bad, "| Coffee | < 1 | < 2 | < 3 |\n").unwrap();
    let e = loadgen::run(opts(&["--thresholds", bad.to_str().unwrap()])).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let _ = std::fs::remove_file(&bad);
}

#[test]
fn answers_cut_by_a_drop_are_recovered_whole_and_timed() {
    let node = support::start_wsnode(&[]);
    let proxy = support::CutProxy::start(node.addr);
    let url = proxy.url();
    // Each answer streams for ~400 ms, so a cut always catches some mid-way.
    let load = std::thread::spawn(move || {
        against(
            &url,
            "--mode chat --conns 6 --rate 2 --duration 3s --chat-chunks 20 --chat-interval-ms 20 --reconnect",
        )
    });
    std::thread::sleep(Duration::from_millis(1300));
    // The 6 WebSockets, and any /health/stats request loadgen has open.
    assert!(
        proxy.cut() >= 6,
        "every connection was open through the proxy"
    );
    let r = load.join().expect("loadgen run");

    let chat = r.chat.as_ref().expect("chat figures");
    assert!(r.connections.drops >= 6, "{:?}", r.connections);
    assert!(
        chat.recovery_us.count >= 1,
        "some answer was mid-stream: {chat:?}"
    );
    assert_eq!(
        (chat.recoveries_unfinished, chat.recoveries_ended),
        (0, 0),
        "the node lived on, so every cut answer continued: {chat:?}"
    );
    // Recovered answers are whole: no chunk missing, repeated or wrong.
    // A chat sent in the instant of the cut may never reach the node: the
    // node then answers the resume with "not found", and loadgen counts it
    // lost and names it. Any other loss is a defect.
    let m = &r.messages;
    assert_eq!(
        (m.lost, m.timeouts),
        (chat.requests_never_reached, 0),
        "{m:?} {chat:?}"
    );
    assert!(chat.requests_never_reached <= 6, "{chat:?}");
    assert_eq!(
        m.ok + m.in_flight + m.lost,
        m.sent,
        "{m:?} {:?}",
        r.error_samples
    );
    for kind in ["chunk_order", "chunk_text", "server_error", "bad_reply"] {
        assert!(!m.errors.contains_key(kind), "{kind}: {m:?}");
    }
    let row = r
        .grades
        .iter()
        .find(|g| g.key == loadgen::report::grades::MetricKey::RecoveryTime)
        .expect("a Recovery Time row");
    assert_eq!(row.measured, Some(chat.recovery_us.p99 as f64), "{row:?}");
}

#[test]
fn min_success_rate_fails_a_run_the_table_alone_would_pass() {
    // Each connection is dropped after 3 answers: the rest of its messages are lost.
    let srv = support::start(Behavior::DropAfter { n: 3 });
    let table = std::env::temp_dir().join(format!("loadgen-conn-only-{}.md", std::process::id()));
    std::fs::write(
        &table,
        "| Metric | Target | Good | Acceptable |\n|---|---|---|---|\n| Connection Time | < 1s | < 2s | < 5s |\n",
    )
    .unwrap();
    let base = format!(
        "--conns 3 --rate 20 --duration 1s --thresholds {}",
        table.display()
    );
    let lenient = against(&srv.url(), &base);
    assert!(lenient.success_rate < 0.9, "{}", lenient.success_rate);
    assert_eq!(lenient.exit_code, 0, "only Connection Time is graded");
    let strict = against(&srv.url(), &format!("{base} --min-success-rate 99.9"));
    assert_eq!(strict.exit_code, 1);
    assert!(
        strict
            .warnings
            .iter()
            .any(|w| w.contains("--min-success-rate")),
        "{:?}",
        strict.warnings
    );
    let bad = loadgen::run(opts(&["--url", &srv.url(), "--min-success-rate", "120"]));
    assert!(matches!(bad, Err(Error::Config(_))), "{:?}", bad.err());
    let _ = std::fs::remove_file(&table);
}
