//! `wss://` and handshake options against real nginx terminating TLS in
//! front of a real wsnode, with a self-signed certificate made here.
//!
//! nginx listens twice: plain HTTP on the port the harness chooses (its
//! readiness probe), and TLS on a second free port, which proxies
//! `/ws/chat` to the node and `/auth/` to the node only with the right
//! Authorization header (401 otherwise).

mod support;

use clap::Parser;
use cluster::NginxServer;
use loadgen::report::model::Report;
use loadgen::{Error, Opts};
use std::net::TcpListener;
use std::path::PathBuf;

struct Setup {
    _node: support::Node,
    _nginx: NginxServer,
    tls_port: u16,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("a self-signed certificate");
    let (crt, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    let node = support::start_wsnode(&[]);
    let tls_port = free_port();
    let upstream = node.addr;
    let conf = format!(
        r#"worker_processes 1;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:@PORT@;
        location = /nginx-health {{ return 200 "ok\n"; }}
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        location /ws/ {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
        location /auth/ {{
            if ($http_authorization != "Bearer s3cret") {{ return 401; }}
            proxy_pass http://{upstream}/ws/;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        }}
    }}
}}
"#,
        crt = crt.display(),
        key = key.display(),
    );
    let nginx = NginxServer::builder()
        .config_text(conf)
        .start()
        .expect("nginx starts with TLS");
    Setup {
        _node: node,
        _nginx: nginx,
        tls_port,
        ca: crt,
        _dir: dir,
    }
}

fn run(args: &[&str]) -> Result<Report, Error> {
    let o = Opts::try_parse_from(["loadgen", "--quiet"].iter().chain(args.iter()))
        .expect("valid options");
    loadgen::run(o).map(|out| out.report.expect("a report"))
}

fn assert_all_answered(r: &Report) {
    let m = &r.messages;
    assert!(m.received > 0, "{m:?}");
    assert_eq!(
        m.sent,
        m.received + m.timeouts + m.lost + m.in_flight,
        "{m:?}"
    );
    assert_eq!(m.received, m.ok, "{m:?}");
    assert_eq!(m.errors_total, 0, "{:?}", r.error_samples);
}

#[test]
fn wss_through_nginx_carries_echo_and_chat_and_times_the_tls_handshake() {
    let s = setup();
    let url = format!("wss://localhost:{}/ws/chat", s.tls_port);
    let ca = s.ca.to_str().unwrap();
    for mode in ["echo", "chat"] {
        let r = run(&[
            "--url",
            &url,
            "--ca-cert",
            ca,
            "--mode",
            mode,
            "--conns",
            "10",
            "--rate",
            "5",
            "--duration",
            "2s",
        ])
        .unwrap_or_else(|e| panic!("{mode} over wss: {e}"));
        assert_all_answered(&r);
        let c = &r.connections;
        assert_eq!(
            c.tls_us.count, c.established,
            "one TLS handshake per connection: {c:?}"
        );
        assert!(c.tls_us.p50 > 0 && c.tcp_us.count == c.established, "{c:?}");
        assert!(
            c.time_us.p50 >= c.tls_us.p50,
            "the graded connection time includes the TLS handshake: {c:?}"
        );
        assert!(r.warnings.iter().all(|w| !w.contains("--insecure")));
    }
}

#[test]
fn an_untrusted_certificate_fails_clearly_and_insecure_passes_with_a_warning() {
    let s = setup();
    let url = format!("wss://localhost:{}/ws/chat", s.tls_port);
    let e = run(&["--url", &url, "--conns", "2", "--duration", "1s"]).expect_err("untrusted");
    assert_eq!(e.exit_code(), 3, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("TLS handshake") && msg.contains("--ca-cert"),
        "{msg}"
    );

    let r = run(&[
        "--url",
        &url,
        "--insecure",
        "--conns",
        "2",
        "--rate",
        "5",
        "--duration",
        "1s",
    ])
    .expect("--insecure connects");
    assert_all_answered(&r);
    assert!(
        r.warnings.iter().any(|w| w.contains("--insecure")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_refused_upgrade_says_401_and_the_right_header_gets_through() {
    let s = setup();
    let url = format!("wss://localhost:{}/auth/chat", s.tls_port);
    let ca = s.ca.to_str().unwrap();
    let e = run(&[
        "--url",
        &url,
        "--ca-cert",
        ca,
        "--conns",
        "2",
        "--duration",
        "1s",
    ])
    .expect_err("no credentials");
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(e.to_string().contains("HTTP 401"), "{e}");

    let r = run(&[
        "--url",
        &url,
        "--ca-cert",
        ca,
        "--header",
        "Authorization: Bearer s3cret",
        "--conns",
        "4",
        "--rate",
        "5",
        "--duration",
        "1s",
    ])
    .expect("the header is sent");
    assert_all_answered(&r);
    assert_eq!(r.connections.established, 4);
}

#[test]
fn bad_tls_and_header_options_are_refused_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("x.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    for args in [
        &["--url", "wss://127.0.0.1:1/", "--ca-cert", not_pem][..],
        &[
            "--url",
            "wss://127.0.0.1:1/",
            "--ca-cert",
            "/no/such/file.pem",
        ],
        &["--url", "ws://127.0.0.1:1/", "--insecure"],
        &["--url", "ws://127.0.0.1:1/", "--header", "NoColon"],
        &["--url", "ws://127.0.0.1:1/", "--header", "X-Token: {nope}"],
        &["--url", "ws://127.0.0.1:1/", "--header", "Host: other"],
    ] {
        let e = run(args).expect_err("refused");
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
    }
}
