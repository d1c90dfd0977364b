//! Which processes a run watches: the embedded node, every node registered
//! in `--redis`, `--node-pid`s, each `--url` target (its local pid when
//! `/health/stats` names one, else the figures it reports there), and Redis
//! (`--redis-pid`, or `--redis`: its local pid from INFO, else INFO's own
//! figures). A node is watched once, however many ways it was found (by
//! pid when local, by node id otherwise); a node that reports itself also
//! reports its own connection count, which beats loadgen's guess of its
//! share behind a balancer.

use crate::config::target::{Target, parse_url};
use crate::config::{Config, Targets};
use crate::monitor::health;
use crate::monitor::procs::{Monitor, ProcRole, Slot, Spec};
use crate::monitor::registry;
use protocol::{HealthStats, NodeRegistration};
use std::net::SocketAddr;
use tokio::task::JoinHandle;

/// The pollers of a run's servers; they stop when this is dropped.
#[derive(Default)]
pub struct Pollers(Vec<JoinHandle<()>>);

impl Drop for Pollers {
    fn drop(&mut self) {
        for p in &self.0 {
            p.abort();
        }
    }
}

/// Watch the servers under test (see the module doc); returns their
/// pollers, which run until dropped.
pub async fn watch_servers(
    cfg: &Config,
    targets: &[Target],
    embedded_pid: Option<u32>,
    mon: &mut Monitor,
) -> Pollers {
    let mut pollers = Pollers::default();
    if let Some(pid) = embedded_pid {
        let mut spec = Spec::local(ProcRole::Node, "embedded node", pid, 1.0);
        if let Some(t) = targets.first()
            && let Some((stats, slot, task)) = health::poll_node(t.clone()).await
        {
            spec.node_id = Some(stats.node_id);
            spec.reports = Some(slot);
            pollers.0.push(task);
        }
        mon.add(spec);
    }
    if let Some(addr) = cfg.redis {
        watch_registered(addr, mon, &mut pollers).await;
    }
    // Connections are spread round-robin over the targets.
    let share = 1.0 / targets.len().max(1) as f64;
    for &p in &cfg.node_pids {
        if !mon.watches(Some(p), None) {
            mon.watch_share(ProcRole::Node, format!("node pid {p}"), p, share);
        }
    }
    if let Targets::Urls(_) = cfg.targets {
        let mut seen = Vec::new();
        for t in targets {
            if seen.contains(&t.addr) {
                continue;
            }
            seen.push(t.addr);
            let Some((stats, slot, task)) = health::poll_node(t.clone()).await else {
                continue;
            };
            let local = t.addr.ip().is_loopback() && health::local_node(stats.pid);
            // Without a local pid, --node-pid says which processes to watch.
            if mon.watches(local.then_some(stats.pid), Some(&stats.node_id))
                || (!local && !cfg.node_pids.is_empty())
            {
                task.abort();
                continue;
            }
            let label = if local {
                format!("node {} (pid {})", t.authority, stats.pid)
            } else {
                format!(
                    "node {} (pid {} there; figures from /health/stats)",
                    t.authority, stats.pid
                )
            };
            mon.add(node_spec(label, &stats, local, slot, share));
            pollers.0.push(task);
        }
    }
    watch_redis(cfg, mon, &mut pollers).await;
    pollers
}

fn node_spec(label: String, stats: &HealthStats, local: bool, slot: Slot, share: f64) -> Spec {
    Spec {
        role: ProcRole::Node,
        label,
        pid: stats.pid,
        node_id: Some(stats.node_id.clone()),
        local,
        reports: Some(slot),
        share,
    }
}

/// Every live node registered in the Redis at `addr`: by pid when it runs
/// on this machine, through its `/health/stats` otherwise.
async fn watch_registered(addr: SocketAddr, mon: &mut Monitor, pollers: &mut Pollers) {
    let nodes = match registry::registered_nodes(addr).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("loadgen: warning: {e}; only the nodes found otherwise are monitored");
            return;
        }
    };
    let here = protocol::health::local_hostname();
    let share = 1.0 / nodes.len().max(1) as f64;
    for n in nodes {
        let local = here.as_deref() == Some(n.host.as_str()) && health::local_node(n.pid);
        if mon.watches(local.then_some(n.pid), Some(&n.node_id)) {
            continue;
        }
        let polled = poll_registered(&n).await;
        match (polled, local) {
            (Some((stats, slot, task)), _) => {
                let label = if local {
                    format!("{} (pid {})", n.node_id, n.pid)
                } else {
                    format!(
                        "{} at {} (pid {} there; figures from /health/stats)",
                        n.node_id,
                        n.url.as_deref().unwrap_or("?"),
                        n.pid
                    )
                };
                mon.add(node_spec(label, &stats, local, slot, share));
                pollers.0.push(task);
            }
            (None, true) => mon.add(Spec {
                node_id: Some(n.node_id.clone()),
                ..Spec::local(
                    ProcRole::Node,
                    format!("{} (pid {})", n.node_id, n.pid),
                    n.pid,
                    share,
                )
            }),
            (None, false) => eprintln!(
                "loadgen: warning: node {} is registered in Redis at {} but does not answer /health/stats there; it is not monitored",
                n.node_id,
                n.url.as_deref().unwrap_or("no URL")
            ),
        }
    }
}

/// The `/health/stats` poller of a registered node, if its URL answers as
/// that node.
async fn poll_registered(n: &NodeRegistration) -> Option<(HealthStats, Slot, JoinHandle<()>)> {
    let target = parse_url(n.url.as_deref()?).ok()?;
    let (stats, slot, task) = health::poll_node(target).await?;
    if stats.node_id != n.node_id {
        task.abort();
        return None;
    }
    Some((stats, slot, task))
}

/// redis-server: `--redis-pid`, or `--redis`: its local pid from INFO, else
/// the figures INFO reports.
async fn watch_redis(cfg: &Config, mon: &mut Monitor, pollers: &mut Pollers) {
    if let Some(p) = cfg.redis_pid {
        mon.watch(ProcRole::Redis, "redis-server", p);
    } else if let Some(addr) = cfg.redis {
        match health::redis_info(addr).await {
            Some(i) if health::local_redis(i.pid) => {
                mon.watch(ProcRole::Redis, format!("redis-server {addr}"), i.pid);
            }
            Some(i) => {
                let (slot, task) = health::poll_redis(addr, i);
                mon.add(Spec {
                    local: false,
                    reports: Some(slot),
                    ..Spec::local(
                        ProcRole::Redis,
                        format!("redis-server {addr} (figures from INFO)"),
                        i.pid,
                        1.0,
                    )
                });
                pollers.0.push(task);
            }
            None => eprintln!(
                "loadgen: warning: redis at {addr} did not answer INFO; Redis CPU will be n/a"
            ),
        }
    }
}
