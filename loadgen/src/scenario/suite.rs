//! `loadgen scenario`: set up, run each scenario asked for (bounded in
//! time), tear down, report. The only module that knows every scenario.

use crate::error::Error;
use crate::scenario::args::{Name, ScenarioOpts};
use crate::scenario::evidence::{Sheet, Stop, Verdict};
use crate::scenario::output::SuiteReport;
use crate::scenario::setup::{Env, prepare};
use crate::scenario::{basics, outages, soak, streams, upkeep};
use std::time::{Duration, Instant};

/// Run the suite, print it, write `--json`; the exit code.
pub fn run(opts: &ScenarioOpts) -> Result<u8, Error> {
    let report = run_suite(opts)?;
    print!("{}", report.render(opts.quiet));
    if let Some(path) = &opts.json {
        report.write_json(path)?;
    }
    Ok(report.exit_code())
}

/// The scenarios asked for, each once, in the seed's order.
pub fn selected(names: &[Name]) -> Vec<Name> {
    if names.contains(&Name::All) {
        let mut all = Name::EVERY.to_vec();
        all.push(Name::Soak);
        return all;
    }
    let mut v = names.to_vec();
    v.sort();
    v.dedup();
    v
}

/// Set up, run, tear down (the local cluster stops when `env` drops).
pub fn run_suite(opts: &ScenarioOpts) -> Result<SuiteReport, Error> {
    let names = selected(&opts.names);
    let mut env = prepare(opts)?;
    // Two workers: the clients' socket tasks keep running while a scenario
    // blocks one worker on a fault (stopping a process).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the scenario runtime", e))?;
    let monitoring = probe_monitoring(&env);
    let verdicts = rt.block_on(async {
        let mut verdicts = Vec::new();
        for name in names {
            verdicts.push(run_one(name, &mut env).await);
        }
        verdicts
    });
    drop(rt);
    let set_up = env.description.clone();
    drop(env);
    Ok(SuiteReport::build(set_up, monitoring, verdicts))
}

/// Longest one scenario may take: its own waits are bounded, this bounds
/// the sum (the load's duration on top).
fn limit(env: &Env, name: Name) -> Duration {
    let base = Duration::from_secs(120) + env.settings.step * 6 + env.settings.cleanup_within;
    match name {
        Name::Load => base + env.settings.load_duration,
        Name::Soak => {
            base + env.settings.soak_duration + env.settings.soak_calm + env.settings.step * 3
        }
        _ => base,
    }
}

async fn run_one(name: Name, env: &mut Env) -> Verdict {
    let started = Instant::now();
    let mut sheet = Sheet::default();
    let limit = limit(env, name);
    eprintln!("scenario {}: running", name.as_str());
    let result = tokio::time::timeout(limit, dispatch(name, env, &mut sheet)).await;
    let stop = match result {
        Ok(Ok(())) => None,
        Ok(Err(stop)) => Some(stop),
        Err(_) => Some(Stop::Abort(format!("did not finish within {limit:?}"))),
    };
    let seed_test = Name::EVERY
        .iter()
        .position(|n| *n == name)
        .map_or(0, |i| i as u8 + 1);
    let v = Verdict::from_run(
        name.as_str(),
        seed_test,
        sheet,
        stop,
        started.elapsed().as_secs_f64(),
    );
    eprintln!(
        "scenario {}: {} ({:.1} s)",
        v.name,
        v.status.label(),
        v.duration_s
    );
    v
}

async fn dispatch(name: Name, env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    match name {
        Name::Connectivity => basics::connectivity(env, s).await,
        Name::Sticky => basics::sticky(env, s).await,
        Name::Broadcast => streams::broadcast(env, s).await,
        Name::Recovery => streams::recovery(env, s).await,
        Name::Failover => outages::failover(env, s).await,
        Name::RedisFailure => outages::redis_failure(env, s).await,
        Name::Load => upkeep::load(env, s).await,
        Name::Ordering => streams::ordering(env, s).await,
        Name::Cleanup => upkeep::cleanup(env, s).await,
        Name::Isolation => basics::isolation(env, s).await,
        Name::Soak => soak::soak(env, s).await,
        Name::All => Err(Stop::Skip("`all` is expanded before running".into())),
    }
}

/// `/health`, `/health/stats` and `/metrics` of every node, for the
/// checklist's Monitoring section (`None`: no node URL to ask).
fn probe_monitoring(env: &Env) -> (Option<bool>, Option<bool>, Vec<String>) {
    if env.nodes.is_empty() {
        return (
            None,
            None,
            vec!["no --node-url: node endpoints not checked".into()],
        );
    }
    let mut lines = Vec::new();
    let (mut health, mut metrics) = (true, true);
    for (i, n) in env.nodes.iter().enumerate() {
        let h = n.healthy();
        let st = n.stats();
        let m = matches!(n.get("/metrics"), Ok((200, ref b)) if b.contains("wsnode_"));
        health &= h && st.is_ok();
        metrics &= m;
        lines.push(format!(
            "node{}: /health {}, /health/stats {}, /metrics {}",
            i + 1,
            if h { "200" } else { "not 200" },
            match &st {
                Ok(v) => format!("node_id {}", v["node_id"]),
                Err(e) => e.clone(),
            },
            if m { "ok" } else { "missing" }
        ));
    }
    (Some(health), Some(metrics), lines)
}
