//! The `wsnode` binary as a process: help text, option errors, SIGTERM, and
//! `wsnode health` (the container image's HEALTHCHECK).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wsnode");

#[test]
fn help_documents_every_option() {
    use clap::CommandFactory;
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for arg in server::Opts::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() {
            // Test-only options (`--test-fault`) stay out of the manual.
            assert!(
                !help.contains(&format!("--{long}")),
                "--{long} shown in --help"
            );
            continue;
        }
        assert!(
            help.contains(&format!("--{long}")),
            "--{long} missing from --help"
        );
        if long != "help" && long != "version" {
            let env = arg
                .get_env()
                .expect("every option reads a WSNODE_* variable");
            assert!(
                help.contains(env.to_str().unwrap()),
                "{env:?} not shown in --help"
            );
        }
    }
}

#[test]
fn nonsense_options_fail_with_a_message() {
    let out = Command::new(BIN)
        .args(["--idle-timeout", "1s", "--ping-interval", "5s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--idle-timeout"), "{err}");
    let out = Command::new(BIN)
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}

#[test]
fn sigterm_closes_clients_with_1001_and_exits_zero() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--node-id", "proc-node"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("node logs its address").unwrap();
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let code = rt.block_on(async {
        use futures_util::StreamExt;
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws/chat?session_id=p1"))
                .await
                .unwrap();
        ws.next().await.unwrap().unwrap(); // welcome
        send_sigterm(child.id());
        loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => {
                    break f.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => continue,
                _ => break None,
            }
        }
    });
    assert_eq!(code, Some(1001));
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "wsnode did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
    // The log says it connected, as the seed's greps expect.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("WebSocket connected") || l.contains("disconnected")),
        "{rest:?}"
    );
}

#[test]
fn health_probes_the_port_from_wsnode_listen() {
    let config = server::embed::config_from_args(["--listen", "127.0.0.1:0"]).unwrap();
    let node = server::embed::EmbeddedNode::start_blocking(config).unwrap();
    let probe = |listen: &str, args: &[&str]| {
        Command::new(BIN)
            .arg("health")
            .args(args)
            .env("WSNODE_LISTEN", listen)
            .output()
            .unwrap()
    };
    // As in the image: the node listens on all interfaces, the probe uses loopback.
    let up = probe(&format!("0.0.0.0:{}", node.addr().port()), &[]);
    assert!(up.status.success(), "{up:?}");
    let out = String::from_utf8_lossy(&up.stdout);
    assert!(out.contains(": 200 {\"status\":\"UP\""), "{out}");
    let url = format!("http://{}/health/ready", node.addr());
    assert!(
        probe("nonsense", &[&url]).status.success(),
        "a URL wins over WSNODE_LISTEN"
    );

    let port = node.addr().port();
    drop(node);
    let down = probe(&format!("0.0.0.0:{port}"), &["--timeout", "1s"]);
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert_eq!(
        probe("nonsense", &[]).status.code(),
        Some(2),
        "bad WSNODE_LISTEN"
    );
    assert_eq!(
        probe("0.0.0.0:1", &["ftp://x"]).status.code(),
        Some(2),
        "bad URL"
    );
}

fn send_sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}
