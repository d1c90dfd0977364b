//! The browser chat page (seed Test 1) in a real headless Chromium: the page
//! is served by the node, an answer streams in order, and a connection
//! dropped mid-answer reconnects and recovers without a gap or a duplicate.
//!
//! Chromium comes from the system packages and playwright-core from npm;
//! scripts/test.sh installs both (CHROMIUM and PLAYWRIGHT_CORE say where).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const CHUNKS: &str = "30";

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (it installs Debian's chromium)",
        path.display()
    );
    path
}

fn playwright_core() -> PathBuf {
    let path = std::env::var_os("PLAYWRIGHT_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../target/browser-test/node_modules/playwright-core")
        });
    assert!(
        path.join("package.json").exists(),
        "playwright-core is missing at {}: run scripts/test.sh (it installs it with npm)",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_page_is_served_with_a_content_security_policy() {
    let node = support::start(&[]).await;
    let (status, body) = node.get("/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>wsbench chat</title>"), "{body}");
    let (head, _) = support::raw_http(
        node.addr,
        "GET /chat HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(head, 200);
    node.stop().await;
}

#[tokio::test]
async fn chat_page_streams_and_recovers_a_dropped_answer_in_headless_chromium() {
    // 30 chunks 50 ms apart: 1.5 s answers, long enough to cut one mid-way.
    let node = support::start(&["--chunks", CHUNKS, "--chunk-interval", "50ms"]).await;
    let url = format!("http://{}/", node.addr);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/chat_page.mjs");
    let (chromium, playwright) = (chromium(), playwright_core());
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(url)
            .env("CHROMIUM", chromium)
            .env("PLAYWRIGHT_CORE", playwright)
            .env("CHUNKS", CHUNKS)
            .output()
    });
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the browser test finishes within 90 s")
        .expect("join")
        .expect("node (nodejs) runs: scripts/test.sh checks it is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(r#""ok":true"#), "{stdout}");
    node.stop().await;
}
