//! A loadgen child serving `--metrics-listen 127.0.0.1:0`, and a plain
//! HTTP/1.0 GET to read it (and Prometheus' API) without a client library.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `GET target` on `addr`: the status and the body.
pub fn http_get(addr: SocketAddr, target: &str) -> std::io::Result<(u16, String)> {
    http_raw(
        addr,
        &format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n"),
    )
}

/// Send `request` as is; the status and the body of the answer.
pub fn http_raw(addr: SocketAddr, request: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

/// Percent-encode a query parameter value.
pub fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every sample of a text exposition: name, labels (without braces), value.
pub fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            let labels = labels.strip_suffix('}')?;
            Some((name.to_string(), labels.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The value of the one series of `name` whose labels end with `suffix`.
pub fn value(text: &str, name: &str, suffix: &str) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|(n, l, _)| n == name && l.ends_with(suffix))
        .map(|s| s.2)
}

/// A loadgen process with `--metrics-listen`; killed on drop.
pub struct MetricsRun {
    child: Option<Child>,
    /// Where its metrics are served.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl MetricsRun {
    /// Start loadgen with `args` and `--metrics-listen listen` and wait (up
    /// to 60 s) for the line that says where its metrics are.
    pub fn start(listen: &str, args: &[&str]) -> MetricsRun {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(args)
            .args(["--metrics-listen", listen])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loadgen");
        let err = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("loadgen: metrics on http://") {
                    let addr = rest.trim_end_matches("/metrics").parse::<SocketAddr>();
                    let _ = tx.send(addr.ok());
                }
                let mut k = keep.lock().unwrap();
                k.push_str(&line);
                k.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                panic!(
                    "loadgen printed no metrics address:\n{}",
                    stderr.lock().unwrap()
                )
            });
        MetricsRun {
            child: Some(child),
            addr,
            stderr,
        }
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Wait for the exit (at most `limit`); the status and everything on stderr.
    pub fn wait(mut self, limit: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("child");
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if t.elapsed() > limit {
                let _ = child.kill();
                panic!(
                    "loadgen still running after {limit:?}:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // The reader thread ends at EOF; give it a moment to take the rest.
        std::thread::sleep(Duration::from_millis(200));
        let text = self.stderr.lock().unwrap().clone();
        (status, text)
    }
}

impl Drop for MetricsRun {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
