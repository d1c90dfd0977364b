//! The controller's side before the run: take `--agents N` idle agents
//! from the coordinator, give each its share of the plan, and wait until
//! every one has introduced itself (name, clock offset) and is ready.
//!
//! Agents are taken in the order they joined, each with a `SET NX` claim,
//! so two controllers never share one; an agent that joins after the N-th
//! is not used. The controller's heartbeat runs from the first claim to
//! the end of the run: agents stop when it stops.

use crate::agents::beat::Beat;
use crate::agents::keys::{self, CLAIM_TTL, IDLE};
use crate::agents::transport::{Bus, Clock};
use crate::config::agents::AgentsConfig;
use crate::config::target::Target;
use crate::engine::settings::{Settings, Share};
use crate::error::Error;
use crate::workers::exchange::{AgentHello, Assignment, FromWorker, ToWorker};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Longest wait for a taken agent's `Hello` and `Ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Idle agents looked at per poll.
const SCAN: isize = 4096;

/// One taken agent.
pub struct Taken {
    /// Its unique id (its keys' names).
    pub id: String,
    pub hello: AgentHello,
    /// Connections it holds at the plan's peak.
    pub conns: u64,
    /// Its source addresses, as the report shows them.
    pub source_ips: String,
    /// Its stream of messages and the last id read.
    pub stream: (String, String),
}

/// Ready agents, waiting for the start instant.
pub struct Agents {
    pub bus: Bus,
    pub run_id: String,
    pub agents: Vec<Taken>,
    pub settings: Settings,
    /// This process's clock against the coordinator's.
    pub clock: Clock,
    /// The controller's heartbeat; stopped by `clean_up`.
    pub beat: Option<Beat>,
}

impl Agents {
    /// Stop the heartbeat and remove what this run left in Redis (streams,
    /// claims, heartbeat).
    pub async fn clean_up(&mut self) {
        if let Some(b) = self.beat.take() {
            let _ = tokio::task::spawn_blocking(move || b.stop()).await;
        }
        let mut p = redis::pipe();
        p.cmd("DEL").arg(keys::run_alive(&self.run_id)).ignore();
        for a in &self.agents {
            p.cmd("DEL")
                .arg(&a.stream.0)
                .arg(keys::claim(&a.id))
                .ignore();
        }
        let _ = self.bus.run_pipe(&p).await;
    }
}

/// Take `cfg.count` agents and start them on their shares.
pub async fn gather(
    cfg: &AgentsConfig,
    settings: &Settings,
    targets: &[Target],
    run_id: &str,
) -> Result<Agents, Error> {
    let bus = Bus::connect(&cfg.coordinator)
        .await
        .map_err(Error::NoAgents)?;
    let clock = bus.clock().await.map_err(Error::NoAgents)?;
    let beat = Beat::start(&cfg.coordinator, keys::run_alive(run_id), None);
    let ids = claim(&bus, cfg, run_id).await?;
    let mut agents = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let mut s = settings.clone();
        s.source_ips = cfg.source_ips.get(i).cloned().unwrap_or_default();
        let share = Share {
            index: i as u64,
            of: u64::from(cfg.count),
        };
        agents.push(Taken {
            id: id.clone(),
            hello: AgentHello {
                name: id.clone(),
                host: String::new(),
                clock_offset_us: 0,
                clock_rtt_us: 0,
            },
            conns: share.of_count(settings.plan.max_conns()),
            source_ips: range_text(&s.source_ips),
            stream: (keys::from_agent(run_id, i as u64), "0".to_string()),
        });
        let a = Assignment {
            settings: s,
            targets: targets.to_vec(),
            run_id: run_id.to_string(),
            share,
            threads: 0,
        };
        bus.post(&keys::inbox(id), &ToWorker::Start(Box::new(a)))
            .await
            .map_err(Error::Agents)?;
    }
    let mut ready = Agents {
        bus,
        run_id: run_id.to_string(),
        agents,
        settings: settings.clone(),
        clock,
        beat: Some(beat),
    };
    if let Err(e) = wait_ready(&mut ready).await {
        for a in &ready.agents {
            let _ = ready.bus.post(&keys::inbox(&a.id), &ToWorker::Stop).await;
        }
        ready.clean_up().await;
        return Err(e);
    }
    Ok(ready)
}

/// Claim live idle agents, earliest joined first, until there are enough.
async fn claim(bus: &Bus, cfg: &AgentsConfig, run_id: &str) -> Result<Vec<String>, Error> {
    let n = cfg.count as usize;
    let until = Instant::now() + cfg.wait;
    let mut taken: Vec<String> = Vec::new();
    let mut said = usize::MAX;
    while taken.len() < n {
        if Instant::now() >= until {
            let mut p = redis::pipe();
            for id in &taken {
                p.cmd("DEL").arg(keys::claim(id)).ignore();
            }
            let _ = bus.run_pipe(&p).await;
            return Err(Error::NoAgents(format!(
                "only {} of {n} agents joined {} within --agents-wait {}; start more with \
                 `loadgen agent --coordinator {}` (docs/DISTRIBUTED.md)",
                taken.len(),
                cfg.coordinator,
                humantime::format_duration(cfg.wait),
                cfg.coordinator
            )));
        }
        if said != taken.len() {
            said = taken.len();
            eprintln!(
                "loadgen: waiting for agents at {}: {said} of {n}",
                cfg.coordinator
            );
        }
        let idle: Vec<String> = bus
            .run(redis::cmd("ZRANGE").arg(IDLE).arg(0).arg(SCAN - 1))
            .await
            .map_err(Error::NoAgents)?;
        for id in idle {
            if taken.len() >= n || taken.contains(&id) {
                continue;
            }
            let alive: bool = bus
                .run(redis::cmd("EXISTS").arg(keys::agent_alive(&id)))
                .await
                .map_err(Error::NoAgents)?;
            if !alive {
                // Gone without leaving: forget it.
                let _: Result<(), _> = bus.run(redis::cmd("ZREM").arg(IDLE).arg(&id)).await;
                continue;
            }
            let got: Option<String> = bus
                .run(
                    redis::cmd("SET")
                        .arg(keys::claim(&id))
                        .arg(run_id)
                        .arg("NX")
                        .arg("PX")
                        .arg(CLAIM_TTL.as_millis() as u64),
                )
                .await
                .map_err(Error::NoAgents)?;
            if got.is_some() {
                taken.push(id);
            }
        }
        if taken.len() < n {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(taken)
}

/// Every agent's `Hello` then `Ready`.
async fn wait_ready(a: &mut Agents) -> Result<(), Error> {
    let until = Instant::now() + READY_TIMEOUT;
    let mut ready = vec![false; a.agents.len()];
    let mut streams: Vec<(String, String)> = a.agents.iter().map(|t| t.stream.clone()).collect();
    while ready.iter().any(|r| !r) {
        if Instant::now() >= until {
            let late: Vec<&str> = a
                .agents
                .iter()
                .zip(&ready)
                .filter(|(_, r)| !**r)
                .map(|(t, _)| t.id.as_str())
                .collect();
            return Err(Error::NoAgents(format!(
                "agents {} took the run but did not say ready within {} s",
                late.join(", "),
                READY_TIMEOUT.as_secs()
            )));
        }
        for (i, m) in a
            .bus
            .read::<FromWorker>(&mut streams)
            .await
            .map_err(Error::Agents)?
        {
            match m {
                Ok(FromWorker::Hello(h)) => a.agents[i].hello = *h,
                Ok(FromWorker::Ready) => ready[i] = true,
                _ => {}
            }
        }
    }
    for (t, s) in a.agents.iter_mut().zip(streams) {
        t.stream = s;
    }
    Ok(())
}

/// "a-b" (or one address, or nothing).
fn range_text(ips: &[Ipv4Addr]) -> String {
    match (ips.first(), ips.last()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => String::new(),
    }
}
