//! `loadgen agent`: join the coordinator's idle agents, wait for a run to
//! take this one, run its share (`job`), and wait again.
//!
//! Every wait is bounded: stream reads by `keys::BLOCK`, the whole idle
//! wait by `--wait`; Ctrl-C leaves the idle set and exits at the next
//! read. While idle the agent beats its heartbeat so a controller only
//! takes live agents.

use crate::agents::args::AgentOpts;
use crate::agents::identity::Me;
use crate::agents::job;
use crate::agents::keys::{self, BEAT, IDLE};
use crate::agents::transport::Bus;
use crate::error::Error;
use crate::limits;
use crate::workers::exchange::{Assignment, ToWorker};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Run as an agent; returns the exit code.
pub fn serve(o: &AgentOpts) -> Result<u8, Error> {
    let wait = humantime::parse_duration(o.wait.trim()).map_err(|e| {
        crate::config::error::ConfigError(format!("--wait {:?}: {e}; write it like 10m", o.wait))
    })?;
    let threads = match o.threads {
        Some(0) => {
            return Err(
                crate::config::error::ConfigError("--threads must be at least 1".into()).into(),
            );
        }
        Some(t) => t.min(256),
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    if let Some(p) = &o.hdr_log
        && let Some(dir) = p.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(crate::config::error::ConfigError(format!(
            "--hdr-log {}: directory {} does not exist",
            p.display(),
            dir.display()
        ))
        .into());
    }
    limits::raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the agent's runtime", e))?;
    let out = rt.block_on(lobby(o, wait));
    rt.shutdown_timeout(Duration::from_secs(1));
    out
}

async fn lobby(o: &AgentOpts, wait: Duration) -> Result<u8, Error> {
    let me = Me::new(o.name.as_deref());
    let interrupted = Arc::new(AtomicBool::new(false));
    tokio::spawn({
        let flag = interrupted.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        }
    });
    let bus = connect(&o.coordinator, wait, &interrupted).await?;
    eprintln!(
        "loadgen agent {}: waiting for work at {}",
        me.name, o.coordinator
    );
    let mut inbox_last = "0".to_string();
    let mut runs = 0;
    let code = loop {
        if interrupted.load(Ordering::Relaxed) {
            break 0;
        }
        let Some(a) = wait_for_work(&bus, &me, &mut inbox_last, wait, &interrupted).await? else {
            break if interrupted.load(Ordering::Relaxed) {
                0
            } else {
                eprintln!(
                    "loadgen agent {}: no run took this agent within --wait {}",
                    me.name,
                    humantime::format_duration(wait)
                );
                3
            };
        };
        eprintln!(
            "loadgen agent {}: run {} as agent {} of {}",
            me.name, a.run_id, a.share.index, a.share.of
        );
        let run = a.run_id.clone();
        match job::run(&bus, &me, *a, &mut inbox_last, o.hdr_log.as_deref()).await {
            Ok(note) => eprintln!("loadgen agent {}: run {run} {note}", me.name),
            Err(e) => eprintln!("loadgen agent {}: run {run} failed: {e}", me.name),
        }
        let _: Result<(), _> = bus.run(redis::cmd("DEL").arg(keys::claim(&me.id))).await;
        runs += 1;
        if o.runs > 0 && runs >= o.runs {
            break 0;
        }
    };
    let mut leave = redis::pipe();
    leave
        .cmd("ZREM")
        .arg(IDLE)
        .arg(&me.id)
        .ignore()
        .cmd("DEL")
        .arg(keys::agent_alive(&me.id))
        .arg(keys::inbox(&me.id))
        .ignore();
    let _: Result<(), _> = bus.run_pipe(&leave).await;
    Ok(code)
}

/// Connect, retrying once a second: in a Kubernetes Job the agents may
/// start before Redis does.
async fn connect(url: &str, wait: Duration, interrupted: &AtomicBool) -> Result<Bus, Error> {
    let until = Instant::now() + wait;
    loop {
        match Bus::connect(url).await {
            Ok(b) => return Ok(b),
            Err(e) if Instant::now() >= until || interrupted.load(Ordering::Relaxed) => {
                return Err(Error::Unreachable(e));
            }
            Err(_) => tokio::time::sleep(BEAT).await,
        }
    }
}

/// Beat and read the inbox until a run that claimed this agent sends its
/// assignment; `None` on Ctrl-C or past `wait`.
async fn wait_for_work(
    bus: &Bus,
    me: &Me,
    inbox_last: &mut String,
    wait: Duration,
    interrupted: &AtomicBool,
) -> Result<Option<Box<Assignment>>, Error> {
    let until = Instant::now() + wait;
    let mut beat_at = Instant::now();
    let mut streams = [(keys::inbox(&me.id), inbox_last.clone())];
    let result = loop {
        if interrupted.load(Ordering::Relaxed) || Instant::now() >= until {
            break None;
        }
        if Instant::now() >= beat_at {
            beat(bus, me).await.map_err(Error::Agents)?;
            beat_at = Instant::now() + BEAT;
        }
        let got = bus
            .read::<ToWorker>(&mut streams)
            .await
            .map_err(Error::Agents)?;
        let mut found = None;
        for (_, m) in got {
            if let Ok(ToWorker::Start(a)) = m {
                let claim: Option<String> = bus
                    .run(redis::cmd("GET").arg(keys::claim(&me.id)))
                    .await
                    .map_err(Error::Agents)?;
                // A start from a run that no longer holds the claim is stale.
                if claim.as_deref() == Some(a.run_id.as_str()) {
                    found = Some(a);
                }
            }
        }
        if found.is_some() {
            break found;
        }
    };
    inbox_last.clone_from(&streams[0].1);
    Ok(result)
}

/// Say "alive and idle": the heartbeat, and the idle set (joined time kept).
async fn beat(bus: &Bus, me: &Me) -> Result<(), String> {
    let now_ms = bus.time_us().await? / 1000;
    let mut p = redis::pipe();
    me.beat(&mut p);
    p.cmd("ZADD")
        .arg(IDLE)
        .arg("NX")
        .arg(now_ms)
        .arg(&me.id)
        .ignore();
    bus.run_pipe(&p).await
}
