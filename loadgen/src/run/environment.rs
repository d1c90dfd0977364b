//! The template's "Environment" line: what ran where, as the run saw it.

use crate::config::{Config, Targets};
use crate::engine::measured::Part;
use crate::engine::steady::loop_count;
use crate::monitor::procs::{ProcReport, ProcRole};
use crate::opts::Io;

/// The "Environment" line of the template.
pub fn environment(
    cfg: &Config,
    embedded_pid: Option<u32>,
    res: &[ProcReport],
    agents: &[Part],
) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let nodes = match (embedded_pid, &cfg.targets) {
        (Some(pid), _) => {
            format!("1 node (embedded wsnode child pid {pid}, in-memory broker, no Redis)")
        }
        (None, Targets::Urls(v)) => format!(
            "{} target URL{} ({} node process{} monitored), {}",
            v.len(),
            if v.len() == 1 { "" } else { "s" },
            res.iter().filter(|p| p.role == ProcRole::Node).count(),
            if res.iter().filter(|p| p.role == ProcRole::Node).count() == 1 {
                ""
            } else {
                "es"
            },
            if res.iter().any(|p| p.role == ProcRole::Redis) {
                "1 Redis monitored"
            } else {
                "Redis not monitored"
            }
        ),
        (None, Targets::Embedded { .. }) => "embedded node".to_string(),
    };
    if !agents.is_empty() {
        let each: Vec<String> = agents
            .iter()
            .map(|a| {
                format!(
                    "{} on {} (clock {:+.1} ms ±{:.1} ms)",
                    a.name,
                    a.host,
                    a.clock_offset_us as f64 / 1000.0,
                    a.clock_rtt_us as f64 / 2000.0
                )
            })
            .collect();
        return format!(
            "{nodes}; {} loadgen agent{} via Redis: {}",
            agents.len(),
            if agents.len() == 1 { "" } else { "s" },
            each.join(", ")
        );
    }
    let threads = if cfg.workers > 1 {
        (cfg.threads / cfg.workers as usize).max(1)
    } else {
        cfg.threads
    };
    format!(
        "{nodes}; loadgen {} process{} x {threads} thread{}{} on a {cpus}-CPU host",
        cfg.workers,
        if cfg.workers == 1 { "" } else { "es" },
        if threads == 1 { "" } else { "s" },
        loops(cfg, threads),
    )
}

/// Each process's epoll loops, as `engine::steady` counts them.
fn loops(cfg: &Config, threads: usize) -> String {
    if cfg.load.io != Io::Epoll {
        return String::new();
    }
    let n = loop_count(&cfg.load, threads);
    format!(
        " ({n} epoll loop{}{})",
        if n == 1 { "" } else { "s" },
        if cfg.load.pin { ", pinned to CPUs" } else { "" }
    )
}
