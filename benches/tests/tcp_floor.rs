//! The floor program must stay runnable: a short run answers every message
//! and prints the figures docs/BENCHMARKS.md quotes.

use std::process::Command;

#[test]
fn a_short_floor_run_answers_every_message() {
    let (got, sent, text) = answered(&[]);
    // 40 conns x 20/s over 3 s warm-up + 1 s measured.
    assert!(got == sent && got >= 40 * 20 * 4 - 40, "{text}");
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

#[test]
fn a_pinned_pair_answers_every_message_and_a_cpu_it_may_not_use_is_refused() {
    let cpu = *server::placement::allowed_cpus().last().unwrap();
    let (got, sent, text) = answered(&["--ws", "--cpu", &cpu.to_string()]);
    assert!(got == sent && got >= 40 * 20 * 4 - 40, "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_tcp_floor"))
        .args(["--cpu", "100000", "--duration", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cpu 100000"), "{err}");
}

/// The answered line's two counts (answered, sent) and the rate.
fn answered(args: &[&str]) -> (u64, u64, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tcp_floor"))
        .args(["--conns", "40", "--rate", "20", "--duration", "1"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{args:?}: {text}{}",
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
    (nums[0], nums[1], text)
}

#[test]
fn every_layout_answers_every_message_over_websocket() {
    for args in [
        &["--ws"][..],
        &["--ws", "--tokio-client"],
        &["--ws", "--tokio-server"],
        &["--ws", "--tokio-client", "--tokio-server"],
        &["--tokio-client", "--tokio-server"],
        &["--uring-client"],
        &["--ws", "--uring-client"],
    ] {
        let (got, sent, text) = answered(args);
        // 40 conns x 20/s over 3 s warm-up + 1 s measured.
        assert!(got == sent && got >= 40 * 20 * 4 - 40, "{args:?}: {text}");
        assert!(text.contains("us of CPU per round trip"), "{text}");
    }
}

/// The floor's WebSocket server speaks what loadgen's echo mode expects
/// (a welcome, then every echo answered with its fields), so loadgen can
/// be measured against it.
#[test]
fn loadgen_answers_every_message_against_the_floors_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tcp_floor"))
        .args(["--serve", &port.to_string(), "--ws"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the listener.
    let up = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "the floor's server did not listen");
    let args = format!(
        "loadgen --quiet --url ws://127.0.0.1:{port}/ws/chat --conns 20 --rate 10 --duration 2s"
    );
    use clap::Parser;
    let opts = loadgen::Opts::try_parse_from(args.split_whitespace()).unwrap();
    let report = loadgen::run(opts).unwrap().report.unwrap();
    // Closing stdin ends the server.
    drop(server.stdin.take());
    let status = server.wait().unwrap();
    let m = &report.messages;
    assert!(m.sent >= 20 * 10 && m.received == m.sent, "{m:?}");
    assert!(
        status.success(),
        "the server did not end cleanly: {status:?}"
    );
}
