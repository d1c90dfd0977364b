//! Handshake options (`--subprotocol`, `--origin`, `--header` with
//! placeholders) against a WebSocket server we did not write
//! (tokio-tungstenite), which records what each handshake carried and
//! echoes frames byte for byte (`--mode raw`).

// tungstenite's callback signature has a large error type; not ours to box.
#![allow(clippy::result_large_err)]

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use loadgen::Opts;
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// What one handshake carried: Origin, X-Conn, X-Session.
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>, Option<String>)>>>;

/// An echo server that accepts the subprotocol `accept` when offered.
fn start(accept: &'static str) -> (std::net::SocketAddr, Seen, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let callback = |req: &Request, mut resp: Response| {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    log.lock()
                        .unwrap()
                        .push((h("origin"), h("x-conn"), h("x-session")));
                    let offered = h("sec-websocket-protocol").unwrap_or_default();
                    if offered.split(',').any(|p| p.trim() == accept) {
                        resp.headers_mut()
                            .insert("sec-websocket-protocol", HeaderValue::from_static(accept));
                    }
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen, rt)
}

fn run(args: &[&str]) -> Result<loadgen::Report, loadgen::Error> {
    let o = Opts::try_parse_from(["loadgen", "--quiet"].iter().chain(args.iter())).unwrap();
    loadgen::run(o).map(|out| out.report.expect("a report"))
}

#[test]
fn subprotocol_origin_and_templated_headers_reach_the_server() {
    let (addr, seen, _rt) = start("wsbench.v1");
    let url = format!("ws://{addr}/");
    let r = run(&[
        "--url",
        &url,
        "--mode",
        "raw",
        "--subprotocol",
        "wsbench.v1",
        "--origin",
        "https://chat.example",
        "--header",
        "X-Conn: c{conn}",
        "--header",
        "X-Session: {session}",
        "--session-pattern",
        "s_{N}",
        "--conns",
        "3",
        "--rate",
        "5",
        "--duration",
        "1s",
    ])
    .expect("the server accepts the subprotocol");
    assert!(
        r.messages.received > 0 && r.messages.errors_total == 0,
        "{:?}",
        r.messages
    );
    let seen = seen.lock().unwrap().clone();
    // The probe's handshake, then one per connection.
    let conns: Vec<_> = seen.iter().skip(1).collect();
    assert_eq!(conns.len(), 3, "{seen:?}");
    for (origin, _, _) in &seen {
        assert_eq!(origin.as_deref(), Some("https://chat.example"));
    }
    let mut got: Vec<(String, String)> = conns
        .iter()
        .map(|(_, c, s)| (c.clone().unwrap_or_default(), s.clone().unwrap_or_default()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("c1", "s_1"), ("c2", "s_2"), ("c3", "s_3")].map(|(c, s)| (c.into(), s.into()))
    );
}

#[test]
fn a_subprotocol_the_server_does_not_accept_fails_the_handshake() {
    let (addr, _seen, _rt) = start("something-else");
    let url = format!("ws://{addr}/");
    let e = run(&[
        "--url",
        &url,
        "--mode",
        "raw",
        "--subprotocol",
        "wsbench.v1",
        "--conns",
        "1",
        "--duration",
        "1s",
    ])
    .expect_err("refused");
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(e.to_string().contains("did not accept subprotocol"), "{e}");
}
