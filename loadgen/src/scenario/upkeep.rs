//! Seed tests 7 and 9: many connections at a steady rate (loadgen's own
//! engine through `crate::run`), and a silent client's session cleaned up.

use crate::monitor::procs::ProcRole;
use crate::scenario::basics::{answer_whole, nodes_logging};
use crate::scenario::client::{Client, session_url};
use crate::scenario::evidence::{Sheet, Stop};
use crate::scenario::faults::Control;
use crate::scenario::nodes::wait_for;
use crate::scenario::setup::Env;
use crate::scenario::store::shown;
use clap::Parser;
use std::time::Duration;
use tokio::time::Instant;

/// RSS a node may keep after its first load whatever the load's size.
const ONE_TIME_RSS: u64 = 4 << 20;

/// Open connections and RSS per node, from `/health/stats` (`None` when unreadable).
fn node_figures(env: &Env) -> Vec<Option<(u64, u64)>> {
    env.nodes
        .iter()
        .map(|n| {
            let v = n.stats().ok()?;
            Some((v["connections"].as_u64()?, v["rss_bytes"].as_u64()?))
        })
        .collect()
}

/// Test 7: `--load-conns` connections through the balancer at
/// `--load-rate` messages per second each, for `--load-duration`.
pub async fn load(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    let st = env.settings.clone();
    let mut args: Vec<String> = vec![
        "loadgen".into(),
        "--quiet".into(),
        "--url".into(),
        env.balancer.clone(),
        "--conns".into(),
        st.load_conns.to_string(),
        "--rate".into(),
        st.load_rate.to_string(),
        "--duration".into(),
        humantime::format_duration(st.load_duration).to_string(),
        "--session-pattern".into(),
        format!("{}-{{N}}", env.session("load")),
    ];
    match (&env.control, &env.store) {
        (Control::Local(c), _) => {
            for pid in c.nodes().iter().filter_map(|n| n.pid()) {
                args.extend(["--node-pid".into(), pid.to_string()]);
            }
        }
        // A deployment's nodes are found through the Redis they register in.
        (Control::External(_), Some(store)) => {
            let rest = store.url().trim_start_matches("redis://");
            let host_port = rest.rsplit('@').next().unwrap_or(rest);
            let host_port = host_port.split('/').next().unwrap_or(host_port);
            args.extend(["--redis".into(), host_port.into()]);
        }
        (Control::External(_), None) => {}
    }
    let opts = crate::opts::Opts::try_parse_from(&args)
        .map_err(|e| Stop::Abort(format!("load options: {e}")))?;
    s.note(format!("loadgen {}", args[2..].join(" ")));
    let before = node_figures(env);
    // `run` builds its own runtime: give it a thread of its own.
    let outcome = tokio::task::block_in_place(|| {
        std::thread::spawn(move || crate::run::load(&opts.load))
            .join()
            .map_err(|_| Stop::Abort("the load run panicked".into()))
    })?
    .map_err(|e| Stop::Abort(format!("the load run failed: {e}")))?;
    let Some(r) = outcome.report else {
        return Err(Stop::Abort("the load run produced no report".into()));
    };
    let c = &r.connections;
    s.check(
        &format!("All {} connections established", st.load_conns),
        c.established >= c.target && c.failed == 0,
        format!(
            "{} of {} established, {} failed, peak open {}",
            c.established, c.target, c.failed, c.peak_open
        ),
    );
    let lat = &r.latency_us.corrected;
    s.check(
        "Message delivery < 100ms latency",
        lat.count > 0 && lat.p99 < 100_000,
        format!(
            "{} replies; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} lost, {} errors",
            lat.count,
            lat.p50 as f64 / 1000.0,
            lat.p99 as f64 / 1000.0,
            lat.max as f64 / 1000.0,
            r.messages.lost,
            r.messages.errors_total
        ),
    );
    s.check(
        "No connection drops",
        c.drops == 0,
        format!("{} drops, {} reconnects", c.drops, c.reconnects),
    );
    let cpu: Vec<(String, f64)> = r
        .resources
        .iter()
        .filter(|p| matches!(p.role, ProcRole::Node))
        .filter_map(|p| Some((p.label.clone(), p.cpu_pct_max?)))
        .collect();
    let cpu_max = cpu.iter().map(|x| x.1).fold(0.0, f64::max);
    if !cpu.is_empty() {
        s.figures.insert("cpu_max_pct".into(), cpu_max);
    }
    s.figures
        .insert("lost_messages".into(), r.messages.lost as f64);
    s.figures.insert("connections".into(), c.established as f64);
    s.figures
        .insert("latency_p99_ms".into(), lat.p99 as f64 / 1000.0);
    if cpu.is_empty() {
        s.note("node CPU not measured (a deployment's processes are not on this machine)");
    } else {
        s.check(
            "CPU usage < 80%",
            cpu.iter().all(|(_, p)| *p < 80.0),
            format!("highest CPU per node process (% of one core): {cpu:?}"),
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = node_figures(env);
    let mut lines = Vec::new();
    let mut stable = true;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if let (Some((bc, br)), Some((ac, ar))) = (b, a) {
            // Kept after every load connection closed: less than the seed's
            // acceptable memory per connection (50 KB) for each of them, plus
            // a fixed allowance for what a fresh node allocates once (runtime
            // and allocator pools) and never returns, which is not a leak.
            let kept = ar.saturating_sub(*br);
            stable &= kept < 50 * 1024 * u64::from(st.load_conns) + ONE_TIME_RSS && ac <= bc;
            lines.push(format!(
                "node{}: {bc} -> {ac} connections, RSS {:.1} -> {:.1} MiB",
                i + 1,
                *br as f64 / 1048576.0,
                *ar as f64 / 1048576.0
            ));
        }
    }
    if lines.is_empty() {
        s.note("no node /health/stats: memory not checked");
    } else {
        s.check(
            "Memory usage stable",
            stable,
            format!(
                "2 s after the load, before -> after (pass: connections back, RSS kept < 50 KB per load connection + 4 MiB once): {}",
                lines.join("; ")
            ),
        );
    }
    s.note(format!(
        "short run: {} connections for {:?}; the seed's full test is 1000 for 5m (--load-conns 1000 --load-duration 5m)",
        st.load_conns, st.load_duration
    ));
    Ok(())
}

/// Test 9: a client that stops answering is dropped by the heartbeat, and
/// its session leaves `sessions:active` within the cleanup bound.
pub async fn cleanup(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    let st = env.settings.clone();
    let store = env.store()?;
    let sid = env.session("cleanup");
    let conns_before: u64 = node_figures(env).iter().flatten().map(|x| x.0).sum();
    let mut c = Client::connect(&session_url(&env.balancer, &sid, None), st.step).await?;
    let mid = format!("{sid}-m1");
    c.chat(&mid, st.chunks, st.interval_ms);
    let (_, line) = answer_whole(&c.collect(&mid, st.answer_wait()).await, st.chunks);
    let entry = store.session(&sid)?;
    s.note(format!(
        "before: answer {line}; HGET sessions:active {sid} = {}",
        shown(&entry)
    ));
    if entry.is_none() {
        return Err(Stop::Abort(
            "the session never appeared in sessions:active".into(),
        ));
    }
    c.freeze();
    let frozen = Instant::now();
    s.note("the client stopped reading and answering pings (socket left open)");

    // The seed: detected within 30 s (its idle timeout), with 2 s for the
    // close to be logged; the local nodes' idle timeout is 3 s.
    let heartbeat = if st.local {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(32)
    };
    let needles = ["WebSocket disconnected", sid.as_str()];
    if nodes_logging(&env.nodes, &needles).is_some() {
        let seen = wait_for(heartbeat, || {
            nodes_logging(&env.nodes, &needles).is_some_and(|h| !h.is_empty())
        })
        .await;
        s.check(
            "Stale session detected within 30s (heartbeat)",
            seen,
            format!(
                "\"WebSocket disconnected\" for {sid} logged {:.1} s after the client went silent (bound {heartbeat:?})",
                frozen.elapsed().as_secs_f64()
            ),
        );
    } else {
        s.note("no node logs (--node-log): the heartbeat is judged by the Redis entry alone");
    }

    let removed = wait_for(st.cleanup_within, || {
        matches!(store.session(&sid), Ok(None))
    })
    .await;
    let took = frozen.elapsed().as_secs_f64();
    let entry = store.session(&sid)?;
    s.check(
        "Session cleaned within 60s (cleanup job)",
        removed,
        format!(
            "{took:.1} s after the client went silent (bound {:?})",
            st.cleanup_within
        ),
    );
    s.check(
        "Redis entry removed",
        removed && entry.is_none(),
        format!("HGET sessions:active {sid} = {}", shown(&entry)),
    );
    if let Some(hits) = nodes_logging(&env.nodes, &["Cleaning up stale session", sid.as_str()]) {
        s.note(format!(
            "\"Cleaning up stale session\" for {sid} by nodes (number, lines) {hits:?}"
        ));
    }
    let conns_after: u64 = node_figures(env).iter().flatten().map(|x| x.0).sum();
    s.check(
        "Memory released",
        conns_after <= conns_before,
        format!("open connections over the nodes' /health/stats: {conns_before} before, {conns_after} after"),
    );
    drop(c);
    Ok(())
}
