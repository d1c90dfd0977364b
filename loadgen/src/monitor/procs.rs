//! CPU and memory of the processes under test, sampled once a second with
//! sysinfo (or read from what a server reports about itself): the node(s),
//! redis-server and loadgen itself.
//!
//! Memory per connection is (RSS at the sample with the most open
//! connections - RSS before the first connection) / those connections, so a
//! process's fixed footprint is not charged to its connections. It is only
//! a figure when it means something: the process is alive at the end, its
//! baseline was taken before this run's first connection to it, it had
//! served no connection before (a warm process keeps memory from earlier
//! clients, so its "before" is no baseline), and the result is not
//! negative. Otherwise it is `None`, with the reason. A process that dies
//! mid-run keeps the CPU it used until then.

use crate::monitor::host::{HostReport, HostSecond, ProcStat, Seconds, mean};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};

/// What a server reports about itself (a node's `/health/stats`, redis
/// `INFO`), written by a poller, read by the monitor each second.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reading {
    /// CPU %, 100 = one core.
    pub cpu_pct: f64,
    pub rss_bytes: u64,
    /// Connections the process holds now, when it says (a node does).
    pub connections: Option<u64>,
    /// Connections it accepted since it started, when it says.
    pub connections_total: Option<u64>,
    /// Another process answers now (restarted: new pid, or uptime reset).
    pub replaced: bool,
}

/// The latest [`Reading`]; `None` while the server does not answer.
pub type Slot = Arc<Mutex<Option<Reading>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcRole {
    Node,
    Redis,
    Loadgen,
}

/// Who is watched, and where its figures come from.
#[derive(Debug, Clone)]
pub struct Spec {
    pub role: ProcRole,
    pub label: String,
    pub pid: u32,
    /// A node's id, when known (registry, `/health/stats`).
    pub node_id: Option<String>,
    /// The process runs here: CPU and RSS from sysinfo.
    pub local: bool,
    /// What the process reports about itself: all its figures when not
    /// local, its connection counts (and whether it was warm) when local.
    pub reports: Option<Slot>,
    /// Fraction of loadgen's open connections it serves, when it does not
    /// report its own connection count.
    pub share: f64,
}

impl Spec {
    /// A process on this machine, watched by pid alone.
    pub fn local(role: ProcRole, label: impl Into<String>, pid: u32, share: f64) -> Spec {
        Spec {
            role,
            label: label.into(),
            pid,
            node_id: None,
            local: true,
            reports: None,
            share,
        }
    }
}

#[derive(Debug)]
struct Watched {
    spec: Spec,
    /// The baseline was taken (before this run's first connection to it).
    baselined: bool,
    rss_before: Option<u64>,
    /// Connections it had accepted before the baseline, when it says.
    served_before: Option<u64>,
    cpu_max: f64,
    /// CPU % of each second with connections open.
    cpu_seconds: Seconds<f64>,
    /// Most open connections seen and the RSS at that sample.
    peak_open: i64,
    rss_at_peak: Option<u64>,
    last: Option<(f64, u64)>,
    /// Run seconds at which it was found dead (local) or replaced; sticky.
    died_at: Option<f64>,
    /// Not local: run seconds since which it has not answered.
    silent_since: Option<f64>,
}

/// Resource figures of one process for the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProcReport {
    pub role: ProcRole,
    pub label: String,
    pub pid: u32,
    /// The node's id (nodes only, when known).
    pub node_id: Option<String>,
    /// Mean CPU % (100 = one core) over the plateau, the seconds the
    /// message rate is read from (at least 90 % of the peak connections
    /// open), else over every second with connections open (until its
    /// death, for a process that died).
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
    /// (rss_bytes - rss_before_bytes) / open connections at that sample;
    /// `null` unless sound (see `memory_note`).
    pub bytes_per_conn: Option<f64>,
    /// Open connections at the sample used for bytes_per_conn.
    pub conns_at_sample: i64,
    /// Seconds into the run at which the process was found dead (or
    /// replaced by a restart, or stopped answering for good).
    pub died_at_s: Option<f64>,
    /// Why `bytes_per_conn` is null, if it is.
    pub memory_note: Option<String>,
    /// Why a figure is missing, if one is.
    pub note: Option<String>,
}

impl ProcReport {
    /// The node's id, else the label.
    pub fn name(&self) -> &str {
        self.node_id.as_deref().unwrap_or(&self.label)
    }
}

/// What one sample saw of a process.
enum Seen {
    Alive(f64, u64, Option<Reading>),
    /// Not local and not answering (it may come back).
    Silent,
    /// Gone for good: exited, a zombie, or replaced by another process.
    Dead,
}

pub struct Monitor {
    sys: System,
    watched: Vec<Watched>,
    /// Each second with connections open: host CPU %, the unaccounted
    /// part, and /proc/stat's split when there is one.
    host_seconds: Seconds<HostSecond>,
    stat_before: Option<ProcStat>,
}

impl Monitor {
    pub fn new() -> Monitor {
        Monitor {
            sys: System::new(),
            watched: Vec::new(),
            host_seconds: Seconds::default(),
            stat_before: None,
        }
    }

    pub fn watch(&mut self, role: ProcRole, label: impl Into<String>, pid: u32) {
        self.add(Spec::local(role, label, pid, 1.0));
    }

    /// A local process that serves `share` of the open connections.
    pub fn watch_share(&mut self, role: ProcRole, label: impl Into<String>, pid: u32, share: f64) {
        self.add(Spec::local(role, label, pid, share));
    }

    pub fn add(&mut self, spec: Spec) {
        self.watched.push(Watched {
            spec,
            baselined: false,
            rss_before: None,
            served_before: None,
            cpu_max: 0.0,
            cpu_seconds: Seconds::default(),
            peak_open: 0,
            rss_at_peak: None,
            last: None,
            died_at: None,
            silent_since: None,
        });
    }

    /// Whether a process with this pid or node id is watched already.
    pub fn watches(&self, pid: Option<u32>, node_id: Option<&str>) -> bool {
        self.watched.iter().any(|w| {
            (w.spec.local && Some(w.spec.pid) == pid)
                || (node_id.is_some() && w.spec.node_id.as_deref() == node_id)
        })
    }

    fn see(sys: &System, w: &Watched) -> Seen {
        if w.died_at.is_some() {
            return Seen::Dead;
        }
        let reading = w
            .spec
            .reports
            .as_ref()
            .and_then(|s| *s.lock().unwrap_or_else(|e| e.into_inner()));
        if reading.is_some_and(|r| r.replaced) {
            return Seen::Dead;
        }
        if !w.spec.local {
            return match reading {
                Some(r) => Seen::Alive(r.cpu_pct, r.rss_bytes, Some(r)),
                None => Seen::Silent,
            };
        }
        match sys.process(Pid::from_u32(w.spec.pid)) {
            Some(p) if !matches!(p.status(), ProcessStatus::Zombie | ProcessStatus::Dead) => {
                Seen::Alive(f64::from(p.cpu_usage()), p.memory(), reading)
            }
            _ => Seen::Dead,
        }
    }

    fn refresh(&mut self) {
        let pids: Vec<Pid> = self
            .watched
            .iter()
            .filter(|w| w.spec.local && w.died_at.is_none())
            .map(|w| Pid::from_u32(w.spec.pid))
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

    /// Before this run's first connection to them: remember each RSS (and
    /// whether the process had served connections already), and prime CPU
    /// usage. Processes watched since an earlier call keep their baseline.
    pub fn baseline(&mut self) {
        self.sys.refresh_cpu_usage();
        self.stat_before = ProcStat::read();
        self.refresh();
        for i in 0..self.watched.len() {
            if self.watched[i].baselined {
                continue;
            }
            let seen = Self::see(&self.sys, &self.watched[i]);
            let w = &mut self.watched[i];
            w.baselined = true;
            if let Seen::Alive(_, rss, reading) = seen {
                w.rss_before = Some(rss);
                w.served_before = reading.and_then(|r| r.connections_total);
            }
        }
    }

    /// One sample with `open` connections (this process's count), `t_s`
    /// seconds into the run.
    pub fn sample(&mut self, open: i64, t_s: f64) {
        self.sys.refresh_cpu_usage();
        self.refresh();
        let mut watched_cpu = 0.0;
        for i in 0..self.watched.len() {
            let seen = Self::see(&self.sys, &self.watched[i]);
            let w = &mut self.watched[i];
            let (cpu, rss, reading) = match seen {
                Seen::Alive(cpu, rss, reading) => (cpu, rss, reading),
                Seen::Silent => {
                    w.silent_since.get_or_insert(t_s);
                    w.last = None;
                    continue;
                }
                Seen::Dead => {
                    w.died_at.get_or_insert(t_s);
                    w.last = None;
                    continue;
                }
            };
            w.silent_since = None;
            if w.spec.local {
                watched_cpu += cpu;
            }
            w.last = Some((cpu, rss));
            if open > 0 {
                w.cpu_max = w.cpu_max.max(cpu);
                w.cpu_seconds.push(open, cpu);
            }
            // A node that reports its connections but missed this poll:
            // its count is unknown, not loadgen's guess.
            let guess = (open as f64 * w.spec.share).round() as i64;
            let conns = match (reading, &w.spec.reports) {
                (Some(r), _) => r.connections.map_or(guess, |n| n as i64),
                (None, Some(_)) => 0,
                (None, None) => guess,
            };
            if conns > 0 && conns >= w.peak_open {
                w.peak_open = conns;
                w.rss_at_peak = Some(rss);
            }
        }
        let cpus = self.sys.cpus().len();
        let stat = ProcStat::read();
        let split = match (&self.stat_before, &stat) {
            (Some(a), Some(b)) => a.split_to(b, cpus),
            _ => None,
        };
        self.stat_before = stat;
        if open > 0 {
            let host = f64::from(self.sys.global_cpu_usage()) * cpus as f64;
            let other = (host - watched_cpu).max(0.0);
            self.host_seconds.push(
                open,
                HostSecond {
                    cpu: host,
                    other,
                    split,
                },
            );
        }
    }

    /// The host's figures over the plateau of a run that peaked at `peak`
    /// open connections (else over every second with connections open).
    pub fn host(&self, peak: i64) -> Option<HostReport> {
        self.host_seconds.report(peak, self.sys.cpus().len())
    }

    /// Each watched node's CPU % and RSS at the last sample (`None` when
    /// it did not answer or was gone), in the order of [`Monitor::report`].
    pub fn last_nodes(&self) -> impl Iterator<Item = Option<(f64, u64)>> + '_ {
        self.watched
            .iter()
            .filter(|w| w.spec.role == ProcRole::Node)
            .map(|w| w.last)
    }

    /// CPU % of all loadgen processes together at the last sample (one
    /// process, or every `--workers` process).
    pub fn last_loadgen_cpu(&self) -> Option<f64> {
        self.watched
            .iter()
            .filter(|w| w.spec.role == ProcRole::Loadgen)
            .filter_map(|w| w.last.map(|l| l.0))
            .reduce(|a, b| a + b)
    }

    /// Each process's figures, CPU over the plateau of a run that peaked
    /// at `peak` open connections (see [`HostReport::plateau`]).
    pub fn report(&self, peak: i64) -> Vec<ProcReport> {
        self.watched.iter().map(|w| report(w, peak)).collect()
    }
}

/// When a process stopped being measurable for good: found dead or
/// replaced, or (not local) silent since then until the end.
fn ended_at(w: &Watched) -> Option<f64> {
    w.died_at.or(w.silent_since)
}

/// The memory per connection of `w`, or why there is none.
fn memory(w: &Watched) -> Result<f64, String> {
    if let Some(t) = ended_at(w) {
        return Err(if w.spec.local {
            format!("the process died {t:.1} s into the run: its memory at the end is unknown")
        } else {
            format!(
                "it stopped answering (or restarted) {t:.1} s into the run: its memory at the end is unknown"
            )
        });
    }
    let Some(before) = w.rss_before else {
        return Err("no baseline: the process was not found before the run".into());
    };
    if let Some(n) = w.served_before.filter(|&n| n > 0) {
        return Err(format!(
            "warm: it had accepted {n} connections before this run, so its RSS before the run is no baseline (restart it for a figure)"
        ));
    }
    let (Some(at_peak), true) = (w.rss_at_peak, w.peak_open > 0) else {
        return Err("no sample was taken with connections open".into());
    };
    let b = (at_peak as f64 - before as f64) / w.peak_open as f64;
    if b < 0.0 {
        return Err(format!(
            "its RSS at peak ({:.1} MB) was below its baseline ({:.1} MB): memory was returned during the run",
            at_peak as f64 / 1048576.0,
            before as f64 / 1048576.0
        ));
    }
    Ok(b)
}

fn report(w: &Watched, peak: i64) -> ProcReport {
    let s = &w.spec;
    let mem = memory(w);
    let sampled = !w.cpu_seconds.is_empty();
    let note = if w.rss_before.is_none() && !sampled {
        Some(format!("process {} was not found", s.pid))
    } else if !sampled {
        Some("no sample was taken with connections open (run too short?)".to_string())
    } else {
        ended_at(w).map(|t| {
            format!(
                "process {} was gone {t:.1} s into the run; CPU until then",
                s.pid
            )
        })
    };
    ProcReport {
        role: s.role,
        label: s.label.clone(),
        pid: s.pid,
        node_id: s.node_id.clone(),
        cpu_pct: mean(w.cpu_seconds.window(peak).0),
        cpu_pct_max: sampled.then_some(w.cpu_max),
        cpu_us_per_msg: None,
        rss_bytes: w.rss_at_peak,
        rss_before_bytes: w.rss_before,
        bytes_per_conn: mem.as_ref().ok().copied(),
        conns_at_sample: w.peak_open,
        died_at_s: ended_at(w),
        memory_note: mem.err(),
        note,
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor::new()
    }
}

#[cfg(test)]
#[path = "procs_tests.rs"]
mod tests;
