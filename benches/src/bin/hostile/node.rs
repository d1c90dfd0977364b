//! The two real processes around the attacks: a wsnode in its own process
//! (so its RSS is its own, read from /proc/PID/status every 200 ms), and
//! loadgen as the well-behaved clients, whose `--json` report gives their
//! p99.

use crate::beside::loadgen_report;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A wsnode child on a free loopback port; killed on drop.
pub struct Node {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl Node {
    /// Start `exe --listen 127.0.0.1:PORT ARGS` and wait until `/health` answers.
    pub fn start(exe: &Path, args: &[String], log: &Path) -> Result<Node, String> {
        // A port the kernel just handed out and we let go: free, on loopback.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?;
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(exe)
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        let mut node = Node {
            pid: child.id(),
            child,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(format!(
                    "wsnode exited at start ({status}); see {}",
                    log.display()
                ));
            }
            if http_get(addr, "/health").is_ok_and(|r| r.starts_with("HTTP/1.1 200")) {
                return Ok(node);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        node.stop();
        Err(format!(
            "wsnode did not answer /health within 15 s; see {}",
            log.display()
        ))
    }

    /// `Some(status)` when the node has exited (a crash, during a run).
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// `GET /metrics`: the value of each `wsnode_*` sample line.
    pub fn metrics(&self) -> Result<Vec<(String, f64)>, String> {
        let resp = http_get(self.addr, "/metrics")?;
        Ok(parse_metrics(&resp))
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP/1.1 GET with `Connection: close`; the whole response.
fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.take(4 << 20)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Prometheus text lines `wsnode_NAME VALUE` (labels dropped).
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with("wsnode_"))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let name = name.split('{').next()?.to_string();
            Some((name, value.trim().parse().ok()?))
        })
        .collect()
}

/// A metric's value, 0 when absent.
pub fn metric(m: &[(String, f64)], name: &str) -> f64 {
    m.iter().find(|(n, _)| n == name).map_or(0.0, |(_, v)| *v)
}

/// VmRSS of `pid` in bytes; `None` once the process is gone.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&status)
}

fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User + system CPU seconds of `pid` so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf with a valid name has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// Peak RSS of a process, sampled every 200 ms on its own thread.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    match rss_bytes(pid) {
                        Some(rss) => peak.fetch_max(rss, Relaxed),
                        None => return,
                    };
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stop sampling; the peak seen.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Relaxed)
    }
}

/// What the well-behaved clients measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Good {
    pub p99_ms: f64,
    pub established: u64,
    pub failed: u64,
    pub drops: u64,
    pub success_rate: f64,
}

/// Run loadgen against `addr` and read its report.
pub fn loadgen(
    exe: &Path,
    addr: SocketAddr,
    conns: u32,
    rate: u32,
    duration_s: u64,
    json: &Path,
) -> Result<Good, String> {
    let args = [
        "--url".to_string(),
        format!("ws://{addr}/ws/chat"),
        "--conns".into(),
        conns.to_string(),
        "--rate".into(),
        rate.to_string(),
        "--duration".into(),
        format!("{duration_s}s"),
    ];
    let doc = loadgen_report(exe, args, json)?;
    parse_report(&doc)
}

/// The steady phase's corrected p99 and how the connections fared.
pub fn parse_report(doc: &serde_json::Value) -> Result<Good, String> {
    let p99 = doc["phases"]["steady"]["latency_us"]["corrected"]["p99"]
        .as_f64()
        .ok_or("loadgen: no phases.steady.latency_us.corrected.p99 in the report")?;
    let c = &doc["connections"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    Ok(Good {
        p99_ms: p99 / 1000.0,
        established: n(&c["established"]),
        failed: n(&c["failed"]),
        drops: n(&c["drops"]),
        success_rate: doc["success_rate"].as_f64().unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_metrics_and_proc_files_are_read() {
        let doc = serde_json::json!({
            "phases": {"steady": {"latency_us": {"corrected": {"p99": 4200}}}},
            "connections": {"established": 1000, "failed": 2, "drops": 1},
            "success_rate": 0.999
        });
        assert_eq!(
            parse_report(&doc).unwrap(),
            Good {
                p99_ms: 4.2,
                established: 1000,
                failed: 2,
                drops: 1,
                success_rate: 0.999
            }
        );
        let no_steady = serde_json::json!({"latency_us": {"corrected": {"p99": 1}}});
        assert!(parse_report(&no_steady).is_err());

        let m = parse_metrics(
            "# HELP x\nwsnode_connections{node_id=\"a\"} 12\nwsnode_slow_consumer_closes_total 3\nother 9\n",
        );
        assert_eq!(metric(&m, "wsnode_connections"), 12.0);
        assert_eq!(metric(&m, "wsnode_slow_consumer_closes_total"), 3.0);
        assert_eq!(metric(&m, "other"), 0.0);

        assert_eq!(
            parse_vmrss("Name:\twsnode\nVmPeak:\t  9 kB\nVmRSS:\t   20480 kB\n"),
            Some(20 << 20)
        );
        assert_eq!(parse_vmrss("Name: x\n"), None);
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0 && cpu_seconds(me).is_some());
    }
}
