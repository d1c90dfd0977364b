//! Which processes a run watches: the embedded node, `--node-pid`s, each
//! `--url` target (its local pid when `/health/stats` names one, else the
//! figures it reports there), and Redis (`--redis-pid`, or `--redis`: its
//! local pid from INFO, else INFO's own figures).

use crate::config::target::Target;
use crate::config::{Config, Targets};
use crate::monitor::health;
use crate::monitor::procs::{Monitor, ProcRole};

/// Watch the servers under test: the embedded node, `--node-pid`s, each
/// `--url` target (its local pid when `/health/stats` names one, else the
/// figures it reports there), and redis (`--redis-pid`, or `--redis`:
/// its local pid from INFO, else INFO's own figures). Returns the pollers
/// to stop at the end.
pub async fn watch_servers(
    cfg: &Config,
    targets: &[Target],
    embedded_pid: Option<u32>,
    mon: &mut Monitor,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut pollers = Vec::new();
    // Connections are spread round-robin over the targets.
    let share = 1.0 / targets.len().max(1) as f64;
    let mut pids: Vec<u32> = Vec::new();
    if let Some(pid) = embedded_pid {
        mon.watch(ProcRole::Node, "embedded node", pid);
        pids.push(pid);
    }
    for &p in &cfg.node_pids {
        if !pids.contains(&p) {
            mon.watch_share(ProcRole::Node, format!("node pid {p}"), p, share);
            pids.push(p);
        }
    }
    if let Targets::Urls(_) = cfg.targets {
        let mut seen = Vec::new();
        for t in targets {
            if seen.contains(&t.addr) {
                continue;
            }
            seen.push(t.addr);
            if let Some(p) = health::local_pid(t).await {
                if !pids.contains(&p) {
                    mon.watch_share(
                        ProcRole::Node,
                        format!("node {} (pid {p})", t.authority),
                        p,
                        share,
                    );
                    pids.push(p);
                }
            } else if cfg.node_pids.is_empty()
                && let Some((pid, slot, task)) = health::poll_node(t.clone()).await
            {
                let label = format!(
                    "node {} (pid {pid} there; figures from /health/stats)",
                    t.authority
                );
                mon.watch_remote(ProcRole::Node, label, pid, slot, share);
                pollers.push(task);
            }
        }
    }
    if let Some(p) = cfg.redis_pid {
        mon.watch(ProcRole::Redis, "redis-server", p);
    } else if let Some(addr) = cfg.redis {
        match health::redis_info(addr).await {
            Some(i) if health::local_redis(i.pid) => {
                mon.watch(ProcRole::Redis, format!("redis-server {addr}"), i.pid);
            }
            Some(i) => {
                let (slot, task) = health::poll_redis(addr, i);
                let label = format!("redis-server {addr} (figures from INFO)");
                mon.watch_remote(ProcRole::Redis, label, i.pid, slot, 1.0);
                pollers.push(task);
            }
            None => eprintln!(
                "loadgen: warning: redis at {addr} did not answer INFO; Redis CPU will be n/a"
            ),
        }
    }
    pollers
}
