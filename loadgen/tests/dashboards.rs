//! Both Grafana dashboards against a real Prometheus scraping a real run
//! (issue 11, item 7): Debian's `prometheus`, started here on a free
//! loopback port, scrapes two wsnodes' `/metrics` and a `loadgen --workers 2`
//! run's `--metrics-listen` every second. Afterwards every panel's query,
//! with Grafana's variables filled in, must return data from Prometheus'
//! HTTP API: a series at an instant in the run (`/api/v1/query`) and a
//! number, not only NaN, somewhere in it (`/api/v1/query_range`).
//!
//! scripts/test.sh installs prometheus and names it in `PROMETHEUS`; without
//! it the test fails when `PROMETHEUS` or `CI` is set, and otherwise says on
//! stderr that it skipped.

mod support;

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::scrape::{MetricsRun, encode, http_get};

/// Prometheus' scrape interval here; Grafana's `$__rate_interval` is at
/// least four of them.
const SCRAPE: &str = "1s";
const RATE_INTERVAL: &str = "5s";

/// `PROMETHEUS` (set by scripts/test.sh, so it must be there), else
/// `prometheus` on PATH or in /usr/bin.
fn prometheus_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PROMETHEUS") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "PROMETHEUS={} is not a file; scripts/test.sh installs Debian's prometheus",
            p.display()
        );
        return Some(p);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file())
}

/// A Prometheus process with its own storage; killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(bin: &Path, dir: &Path, config: &str) -> Prometheus {
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config).expect("write config");
        let addr = support::dead_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("prometheus.log")).expect("log file"),
            ))
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, addr };
        let t = Instant::now();
        while http_get(addr, "/-/ready").map(|r| r.0).ok() != Some(200) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "prometheus not ready in 30 s: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    /// The `data.result` of one API call, or why there is none.
    fn api(&self, target: &str) -> Result<Vec<Value>, String> {
        let (status, body) = http_get(self.addr, target).map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status} {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("{status}: {body}"));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    fn query(&self, expr: &str, at: f64) -> Result<Vec<Value>, String> {
        self.api(&format!(
            "/api/v1/query?query={}&time={at:.3}",
            encode(expr)
        ))
    }

    fn query_range(&self, expr: &str, from: f64, to: f64) -> Result<Vec<Value>, String> {
        self.api(&format!(
            "/api/v1/query_range?query={}&start={from:.3}&end={to:.3}&step=1",
            encode(expr)
        ))
    }

    /// One instant value of `expr` (the first series).
    fn scalar(&self, expr: &str, at: f64) -> Option<f64> {
        let r = self.query(expr, at).ok()?;
        r.first()?["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Grafana's variables as a dashboard would fill them for this run.
fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, with) in [
        ("__rate_interval", RATE_INTERVAL),
        ("__interval", SCRAPE),
        ("__range", "5m"),
    ] {
        e = e.replace(&format!("${{{var}}}"), with);
        e = e.replace(&format!("${var}"), with);
    }
    // Any other variable ($run, $node) is a label filter: "All".
    let mut out = String::new();
    let mut rest = e.as_str();
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let tail = tail.strip_prefix('{').unwrap_or(tail);
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        assert!(
            out.ends_with("=~\""),
            "{expr}: ${} is not in a =~ matcher; the test cannot fill it",
            &tail[..end]
        );
        out.push_str(".*");
        rest = tail[end..].strip_prefix('}').unwrap_or(&tail[end..]);
    }
    out.push_str(rest);
    out
}

/// Every panel's title and query expressions.
fn panel_queries(file: &str) -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let dash: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().unwrap_or("?").to_string();
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{file}: panel {title} has no query");
        for t in targets {
            out.push((title.clone(), t["expr"].as_str().expect("expr").to_string()));
        }
    }
    out
}

#[test]
fn every_panel_of_both_dashboards_has_data_from_a_real_prometheus() {
    let Some(bin) = prometheus_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but prometheus is not installed (scripts/test.sh installs it)"
        );
        eprintln!(
            "SKIPPED: no prometheus on PATH (apt-get install prometheus, or PROMETHEUS=path)"
        );
        return;
    };
    // The shipped scrape config is one Prometheus accepts.
    let promtool = bin.with_file_name("promtool");
    if promtool.is_file() {
        let shipped =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards/prometheus.yml");
        let out = Command::new(&promtool)
            .args(["check", "config"])
            .arg(&shipped)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "dashboards/prometheus.yml: {}",
            String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
        );
    }
    let n1 = support::start_wsnode(&[]);
    let n2 = support::start_wsnode(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    // loadgen's port is chosen here, so Prometheus scrapes it from its first
    // second: a target found later (file discovery) waits up to 5 s for the
    // scrape manager, and the ramp's connection times would go unseen.
    let lg = support::dead_port();
    let config = format!(
        "global:\n  scrape_interval: {SCRAPE}\n  evaluation_interval: {SCRAPE}\n\
         scrape_configs:\n\
         \x20 - job_name: wsbench-local\n    static_configs:\n      - targets: [\"{}\", \"{}\"]\n\
         \x20 - job_name: loadgen\n    static_configs:\n      - targets: [\"{lg}\"]\n",
        n1.addr, n2.addr,
    );
    let prom = Prometheus::start(&bin, dir.path(), &config);
    // Both nodes scraped before the run, so their counters start in view.
    let t = Instant::now();
    while prom.scalar("sum(up{job=\"wsbench-local\"})", now()) != Some(2.0) {
        assert!(t.elapsed() < Duration::from_secs(30), "nodes never up");
        std::thread::sleep(Duration::from_millis(250));
    }

    let json = dir.path().join("run.json");
    let (u1, u2) = (n1.url(), n2.url());
    let from = now();
    // A 5 s ramp (so connection times fall in scraped seconds), a hold,
    // a ramp down; lingering so the final figures are scraped.
    let listen = lg.to_string();
    let run = MetricsRun::start(
        &listen,
        &[
            "--quiet",
            "--url",
            &u1,
            "--url",
            &u2,
            "--workers",
            "2",
            "--stages",
            "5s:40,10s:40,3s:0",
            "--rate",
            "10",
            "--metrics-linger",
            "3s",
            "--json",
            json.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(run.addr, lg);
    let (status, stderr) = run.wait(Duration::from_secs(90));
    // 1 is a grade below --fail-on on a busy machine: still a measured run.
    assert!(matches!(status.code(), Some(0 | 1)), "{status}: {stderr}");
    let to = now();
    let mid = from + (to - from) / 2.0;

    // When Prometheus first scraped loadgen: the ramp's 5 s leave room.
    let first_up = prom
        .query_range("up{job=\"loadgen\"} == 1", from, to)
        .ok()
        .and_then(|r| r.first()?["values"][0][0].as_f64());
    eprintln!(
        "loadgen first scraped {:?} s after it started",
        first_up.map(|t| ((t - from) * 10.0).round() / 10.0)
    );
    // Prometheus saw the run, to its end (the linger's scrape).
    let window = format!("[{}s]", (to - from).ceil() as u64 + 5);
    let seen = |q: &str| prom.scalar(&format!("max(max_over_time({q}{window}))"), to);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid");
    assert_eq!(seen("loadgen_run_finished"), Some(1.0), "no final scrape");
    assert_eq!(
        seen("loadgen_messages_sent_total"),
        report["messages"]["sent"].as_f64(),
        "the last scrape's sent count is the report's"
    );
    assert_eq!(seen("loadgen_connections_open"), Some(40.0));
    assert_eq!(
        seen("loadgen_run_info{workers=\"2\"}"),
        Some(1.0),
        "the run's labels"
    );

    let mut failures = Vec::new();
    let mut checked = 0;
    for file in [
        "dashboards/grafana/wsbench-nodes.json",
        "dashboards/grafana/wsbench-loadgen.json",
    ] {
        for (title, expr) in panel_queries(file) {
            let q = substitute(&expr);
            checked += 1;
            match prom.query(&q, mid) {
                Ok(r) if !r.is_empty() => {}
                Ok(_) => failures.push(format!("{file}: {title}: no series at mid-run: {q}")),
                Err(e) => failures.push(format!("{file}: {title}: {q}: {e}")),
            }
            let numbers = prom.query_range(&q, from, to).map(|r| {
                r.iter()
                    .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
                    .filter_map(|v| v[1].as_str()?.parse::<f64>().ok())
                    .filter(|v| v.is_finite())
                    .count()
            });
            match numbers {
                Ok(n) if n > 0 => {}
                Ok(_) => failures.push(format!(
                    "{file}: {title}: only NaN or nothing in the run: {q}"
                )),
                Err(e) => failures.push(format!("{file}: {title}: {q}: {e}")),
            }
        }
    }
    assert!(checked >= 30, "only {checked} queries");
    assert!(
        failures.is_empty(),
        "{} of {checked} queries without data:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
