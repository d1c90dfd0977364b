//! CPU and memory of the processes under test, sampled once a second with
//! sysinfo: the node(s), redis-server and loadgen itself.
//!
//! Memory per connection is (RSS at the sample with the most open
//! connections - RSS before the first connection) / those connections, so a
//! process's fixed footprint is not charged to its connections.

use serde::Serialize;
use std::sync::{Arc, Mutex};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Latest (CPU %, RSS bytes) of a process loadgen cannot see locally,
/// written by a poller (`/health/stats`, redis INFO) and read each second.
pub type RemoteSlot = Arc<Mutex<Option<(f64, u64)>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcRole {
    Node,
    Redis,
    Loadgen,
}

#[derive(Debug, Clone)]
struct Watched {
    role: ProcRole,
    label: String,
    pid: u32,
    /// Where the figures come from when the process is not local.
    remote: Option<RemoteSlot>,
    /// Fraction of loadgen's open connections this process serves.
    share: f64,
    rss_before: Option<u64>,
    cpu_sum: f64,
    cpu_n: u64,
    cpu_max: f64,
    /// Most open connections seen and the RSS at that sample.
    peak_open: i64,
    rss_at_peak: Option<u64>,
    last: Option<(f64, u64)>,
    gone: bool,
}

/// Resource figures of one process for the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcReport {
    pub role: ProcRole,
    pub label: String,
    pub pid: u32,
    /// Mean CPU % (100 = one core) over the samples with connections open.
    pub cpu_pct: Option<f64>,
    pub cpu_pct_max: Option<f64>,
    /// CPU time per answered message in microseconds (`cpu_pct` over the
    /// replies per second): what this process spends per message at this
    /// load, comparable across loads and servers. Set by the report.
    pub cpu_us_per_msg: Option<f64>,
    /// RSS at the sample with the most open connections.
    pub rss_bytes: Option<u64>,
    /// RSS before the first connection.
    pub rss_before_bytes: Option<u64>,
    /// (rss_bytes - rss_before_bytes) / open connections at that sample.
    pub bytes_per_conn: Option<f64>,
    /// Open connections at the sample used for bytes_per_conn.
    pub conns_at_sample: i64,
    /// Why a figure is missing, if one is.
    pub note: Option<String>,
}

/// The whole host, to tell whether other processes competed for CPU.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HostReport {
    pub cpus: usize,
    /// Mean CPU % of the whole host (100 = one core) with connections open.
    pub cpu_pct: f64,
    /// Of that, what the monitored processes did not account for.
    pub other_cpu_pct: f64,
}

pub struct Monitor {
    sys: System,
    watched: Vec<Watched>,
    host_sum: f64,
    other_sum: f64,
    host_n: u64,
}

impl Monitor {
    pub fn new() -> Monitor {
        Monitor {
            sys: System::new(),
            watched: Vec::new(),
            host_sum: 0.0,
            other_sum: 0.0,
            host_n: 0,
        }
    }

    pub fn watch(&mut self, role: ProcRole, label: impl Into<String>, pid: u32) {
        self.watch_share(role, label, pid, 1.0);
    }

    /// A local process that serves `share` of the open connections.
    pub fn watch_share(&mut self, role: ProcRole, label: impl Into<String>, pid: u32, share: f64) {
        self.push(role, label.into(), pid, None, share);
    }

    /// A process whose figures a poller writes into `slot`.
    pub fn watch_remote(
        &mut self,
        role: ProcRole,
        label: impl Into<String>,
        pid: u32,
        slot: RemoteSlot,
        share: f64,
    ) {
        self.push(role, label.into(), pid, Some(slot), share);
    }

    fn push(
        &mut self,
        role: ProcRole,
        label: String,
        pid: u32,
        remote: Option<RemoteSlot>,
        share: f64,
    ) {
        self.watched.push(Watched {
            role,
            label,
            pid,
            remote,
            share,
            rss_before: None,
            cpu_sum: 0.0,
            cpu_n: 0,
            cpu_max: 0.0,
            peak_open: 0,
            rss_at_peak: None,
            last: None,
            gone: false,
        });
    }

    /// (CPU %, RSS) of one watched process right now.
    fn read(sys: &System, w: &Watched) -> Option<(f64, u64)> {
        match &w.remote {
            Some(slot) => *slot.lock().unwrap_or_else(|e| e.into_inner()),
            None => sys
                .process(Pid::from_u32(w.pid))
                .map(|p| (f64::from(p.cpu_usage()), p.memory())),
        }
    }

    fn refresh(&mut self) {
        let pids: Vec<Pid> = self
            .watched
            .iter()
            .filter(|w| w.remote.is_none())
            .map(|w| Pid::from_u32(w.pid))
            .collect();
        if pids.is_empty() {
            return;
        }
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
    }

    /// Before the first connection: remember each RSS (and prime CPU usage).
    pub fn baseline(&mut self) {
        self.sys.refresh_cpu_usage();
        self.refresh();
        for w in &mut self.watched {
            w.rss_before = Self::read(&self.sys, w).map(|x| x.1);
        }
    }

    /// One sample with `open` connections (this process's count).
    pub fn sample(&mut self, open: i64) {
        self.sys.refresh_cpu_usage();
        self.refresh();
        let mut watched_cpu = 0.0;
        for w in &mut self.watched {
            let Some((cpu, rss)) = Self::read(&self.sys, w) else {
                w.gone = true;
                w.last = None;
                continue;
            };
            if w.remote.is_none() {
                watched_cpu += cpu;
            }
            w.last = Some((cpu, rss));
            let conns = (open as f64 * w.share).round() as i64;
            if open > 0 {
                w.cpu_sum += cpu;
                w.cpu_n += 1;
                w.cpu_max = w.cpu_max.max(cpu);
            }
            if conns > 0 && conns >= w.peak_open {
                w.peak_open = conns;
                w.rss_at_peak = Some(rss);
            }
        }
        if open > 0 {
            let host = f64::from(self.sys.global_cpu_usage()) * self.sys.cpus().len() as f64;
            self.host_sum += host;
            self.other_sum += (host - watched_cpu).max(0.0);
            self.host_n += 1;
        }
    }

    pub fn host(&self) -> Option<HostReport> {
        (self.host_n > 0).then(|| HostReport {
            cpus: self.sys.cpus().len(),
            cpu_pct: self.host_sum / self.host_n as f64,
            other_cpu_pct: self.other_sum / self.host_n as f64,
        })
    }

    pub fn last_node(&self) -> Option<(f64, u64)> {
        self.watched.iter().find(|w| w.role == ProcRole::Node)?.last
    }

    /// CPU % of all loadgen processes together at the last sample (one
    /// process, or every `--workers` process).
    pub fn last_loadgen_cpu(&self) -> Option<f64> {
        self.watched
            .iter()
            .filter(|w| w.role == ProcRole::Loadgen)
            .filter_map(|w| w.last.map(|l| l.0))
            .reduce(|a, b| a + b)
    }

    pub fn report(&self) -> Vec<ProcReport> {
        self.watched
            .iter()
            .map(|w| {
                let bytes_per_conn = match (w.rss_at_peak, w.rss_before) {
                    (Some(a), Some(b)) if w.peak_open > 0 => {
                        Some((a as f64 - b as f64) / w.peak_open as f64)
                    }
                    _ => None,
                };
                let note = if w.rss_before.is_none() {
                    Some(format!("process {} was not found", w.pid))
                } else if w.cpu_n == 0 {
                    Some("no sample was taken with connections open (run too short?)".to_string())
                } else if w.gone {
                    Some(format!("process {} exited during the run", w.pid))
                } else {
                    None
                };
                ProcReport {
                    role: w.role,
                    label: w.label.clone(),
                    pid: w.pid,
                    cpu_pct: (w.cpu_n > 0).then(|| w.cpu_sum / w.cpu_n as f64),
                    cpu_pct_max: (w.cpu_n > 0).then_some(w.cpu_max),
                    cpu_us_per_msg: None,
                    rss_bytes: w.rss_at_peak,
                    rss_before_bytes: w.rss_before,
                    bytes_per_conn,
                    conns_at_sample: w.peak_open,
                    note,
                }
            })
            .collect()
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor::new()
    }
}
