//! The soak: chat load with `--reconnect` through the balancer for
//! `--soak-duration`, while the chaos schedule (`scenario::chaos`) kills
//! nodes, restarts Redis and reloads the balancer. Passes when every
//! answer is accounted for, no chunk was lost, duplicated or reordered,
//! and every node's RSS and file descriptors came back where they were.
//!
//! The load is loadgen's own engine (`crate::run::load`) on a thread of
//! its own; the faults run here, on the scenario's runtime, at their
//! instants. No fault waits for the load and the load never waits for a
//! fault, as in production.

use crate::report::model::Report;
use crate::scenario::chaos::Fault;
use crate::scenario::evidence::{Sheet, Stop};
use crate::scenario::faults::Control;
use crate::scenario::nodes::wait_for;
use crate::scenario::setup::Env;
use clap::Parser;
use std::time::Duration;
use tokio::time::Instant;

/// RSS may exceed its level before the chaos by this share.
const RSS_SLACK: f64 = 0.10;
/// What a node started again during the soak allocates once (runtime and
/// allocator pools sized by the reconnect storm it takes) and keeps; the
/// load scenario allows the same for a fresh node.
const RESTART_RSS: u64 = 4 << 20;
/// File descriptors a node may hold above its idle baseline at the end (a
/// Redis connection being re-established).
const FD_SLACK: u64 = 2;

/// What `/health/stats` says of one node now.
#[derive(Debug, Clone, Copy)]
struct Figures {
    connections: u64,
    rss: u64,
    fds: Option<u64>,
}

fn figures(env: &Env) -> Vec<Option<Figures>> {
    env.nodes
        .iter()
        .map(|n| {
            let v = n.stats().ok()?;
            Some(Figures {
                connections: v["connections"].as_u64()?,
                rss: v["rss_bytes"].as_u64()?,
                fds: v["open_fds"].as_u64(),
            })
        })
        .collect()
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// Can every fault of the schedule be injected here? SKIP naming the option otherwise.
fn can_inject(env: &Env) -> Result<(), Stop> {
    for e in &env.settings.chaos {
        match e.fault {
            Fault::KillNode(_) | Fault::StopNode(_) | Fault::StartNode(_) => {
                env.control.can_restart_node()?
            }
            Fault::StopRedis | Fault::StartRedis => env.control.can_restart_redis()?,
            Fault::ReloadBalancer => env.control.can_reload_balancer()?,
        }
    }
    Ok(())
}

fn inject(control: &mut Control, fault: Fault) -> Result<String, Stop> {
    match fault {
        Fault::KillNode(i) => control.stop_node(i, true),
        Fault::StopNode(i) => control.stop_node(i, false),
        Fault::StartNode(i) => control.start_node(i),
        Fault::StopRedis => control.stop_redis(),
        Fault::StartRedis => control.start_redis(),
        Fault::ReloadBalancer => control.reload_balancer(),
    }
}

/// The load's options: chat with --reconnect through the balancer.
fn load_args(env: &Env) -> Vec<String> {
    let st = &env.settings;
    let mut args: Vec<String> = vec![
        "loadgen".into(),
        "--quiet".into(),
        "--url".into(),
        env.balancer.clone(),
        "--mode".into(),
        "chat".into(),
        "--reconnect".into(),
        "--conns".into(),
        st.soak_conns.to_string(),
        "--rate".into(),
        st.soak_rate.to_string(),
        "--duration".into(),
        humantime::format_duration(st.soak_duration + st.soak_calm).to_string(),
        "--chat-chunks".into(),
        st.chunks.to_string(),
        "--chat-interval-ms".into(),
        st.interval_ms.to_string(),
        "--timeout".into(),
        humantime::format_duration(st.step).to_string(),
        "--session-pattern".into(),
        format!("{}-{{N}}", env.session("soak")),
    ];
    if st.local {
        // The local balancer hashes the client's whole address: clients
        // from many loopback addresses spread over the nodes.
        let last = 1 + st.soak_conns.clamp(1, 200);
        args.extend(["--source-ips".into(), format!("127.0.0.2-127.0.0.{last}")]);
    }
    args
}

pub async fn soak(env: &mut Env, s: &mut Sheet) -> Result<(), Stop> {
    can_inject(env)?;
    let st = env.settings.clone();
    s.note(format!("chaos: {}", st.chaos_spec));
    let idle = figures(env);
    let args = load_args(env);
    let opts = crate::opts::Opts::try_parse_from(&args)
        .map_err(|e| Stop::Abort(format!("soak options: {e}")))?;
    s.note(format!("loadgen {}", args[2..].join(" ")));
    let started = Instant::now();
    let load = std::thread::spawn(move || crate::run::load(&opts.load));

    // Before the first fault (or halfway without one): the warm level
    // each node's RSS must come back to.
    let warm_at = st
        .chaos
        .first()
        .map_or(st.soak_duration / 2, |e| e.at)
        .saturating_sub(Duration::from_millis(500));
    tokio::time::sleep_until(started + warm_at).await;
    let warm = figures(env);
    let mut fault_error = None;
    for e in &st.chaos {
        tokio::time::sleep_until(started + e.at).await;
        let t = started.elapsed().as_secs_f64();
        match inject(&mut env.control, e.fault) {
            Ok(line) => s.note(format!("{t:.1} s: {line}")),
            Err(stop) => {
                s.note(format!("{t:.1} s: {:?} failed", e.fault));
                fault_error = Some(stop);
                break;
            }
        }
    }
    if fault_error.is_some() {
        // Bring back whatever the schedule left stopped before judging.
        for i in 0..env.nodes.len() {
            if !env.nodes[i].healthy() {
                let _ = env.control.start_node(i);
            }
        }
        let _ = env.control.start_redis();
    }
    // The load stops by itself: its duration, then at most --timeout.
    let limit = st.soak_duration + st.soak_calm + st.step * 3;
    let joined = wait_for(limit, || load.is_finished()).await;
    if !joined {
        return Err(Stop::Abort(format!(
            "the soak's load did not end within {limit:?}"
        )));
    }
    let outcome = load
        .join()
        .map_err(|_| Stop::Abort("the soak's load panicked".into()))?
        .map_err(|e| Stop::Abort(format!("the soak's load failed: {e}")))?;
    if let Some(stop) = fault_error {
        return Err(stop);
    }
    let Some(r) = outcome.report else {
        return Err(Stop::Abort("the soak's load produced no report".into()));
    };
    account(&r, s);
    calm(
        &r,
        s,
        st.soak_duration + st.soak_calm / 2,
        st.soak_duration + st.soak_calm,
    );
    let restarted: Vec<usize> = st
        .chaos
        .iter()
        .filter_map(|e| match e.fault {
            Fault::StartNode(i) => Some(i),
            _ => None,
        })
        .collect();
    settle(env, s, &idle, &warm, &restarted).await;
    Ok(())
}

/// Every answer in exactly one bucket, every chunk checked.
fn account(r: &Report, s: &mut Sheet) {
    let m = &r.messages;
    let c = &r.connections;
    let chat = r.chat.as_ref();
    let recovered = chat.map_or(0, |c| c.recovery_us.count);
    let ended = chat.map_or(0, |c| c.recoveries_ended);
    let unfinished = chat.map_or(0, |c| c.recoveries_unfinished);
    let never = chat.map_or(0, |c| c.requests_never_reached);
    let balanced = m.sent == m.received + m.timeouts + m.lost + m.in_flight;
    let reasons: Vec<String> = r
        .error_samples
        .iter()
        .take(6)
        .map(|e| format!("{} x{}", e.message, e.count))
        .collect();
    s.check(
        "Every answer accounted for: completed, recovered whole, or reported with the reason",
        balanced && m.sent > 0 && (m.ok == m.received || !reasons.is_empty()),
        format!(
            "{} sent = {} answered ({} ok) + {} timed out + {} lost + {} in flight; \
             cut by a drop: {recovered} moved again, {ended} ended without continuing, {unfinished} got no answer; \
             {never} sent just before a drop never reached a node; \
             {} drops, {} reconnects; reasons: {}",
            m.sent,
            m.received,
            m.ok,
            m.timeouts,
            m.lost,
            m.in_flight,
            c.drops,
            c.reconnects,
            if reasons.is_empty() {
                "none".into()
            } else {
                reasons.join("; ")
            }
        ),
    );
    let order = m.errors.get("chunk_order").copied().unwrap_or(0);
    let text = m.errors.get("chunk_text").copied().unwrap_or(0);
    let cross = m.errors.get("bad_reply").copied().unwrap_or(0);
    s.check(
        "No chunk lost, duplicated or reordered",
        order == 0 && text == 0 && cross == 0 && chat.is_some_and(|c| c.parts.count > 0),
        format!(
            "{order} order errors (gaps, duplicates), {text} wrong texts, {cross} replies for another message; {} answers with chunks, {} of them ok",
            chat.map_or(0, |c| c.parts.count),
            m.ok
        ),
    );
    s.figures.insert("soak_sent".into(), m.sent as f64);
    s.figures.insert("soak_interrupted".into(), ended as f64);
    if let Some(ch) = chat.filter(|c| c.recovery_us.count > 0) {
        s.figures
            .insert("recovery_p99_ms".into(), ch.recovery_us.p99 as f64 / 1000.0);
    }
}

/// The second half of the calm after the chaos: the system serves as if
/// nothing happened (the first half lets reconnects and recoveries end).
fn calm(r: &Report, s: &mut Sheet, from: Duration, to: Duration) {
    let (from, to) = (from.as_secs_f64(), to.as_secs_f64());
    let quiet: Vec<_> = r
        .series
        .iter()
        .filter(|x| x.t - x.dt >= from - 0.5 && x.t <= to + 0.5)
        .collect();
    let (sent, received, errors, timeouts, drops) = quiet.iter().fold((0, 0, 0, 0, 0), |a, x| {
        (
            a.0 + x.sent,
            a.1 + x.received,
            a.2 + x.errors,
            a.3 + x.timeouts,
            a.4 + x.drops,
        )
    });
    s.check(
        "After the chaos, answers complete and nothing fails",
        !quiet.is_empty() && received > 0 && errors == 0 && timeouts == 0 && drops == 0,
        format!(
            "{from:.0}-{to:.0} s ({} seconds): {sent} sent, {received} answered, {errors} errors, {timeouts} timeouts, {drops} drops",
            quiet.len()
        ),
    );
}

/// After the load: every node back to its level before the chaos.
async fn settle(
    env: &Env,
    s: &mut Sheet,
    idle: &[Option<Figures>],
    warm: &[Option<Figures>],
    restarted: &[usize],
) {
    // Connections close, sessions expire, restarted nodes finish starting.
    let step = env.settings.step;
    wait_for(step, || {
        figures(env)
            .iter()
            .all(|f| f.is_some_and(|f| f.connections == 0))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = figures(env);
    // The chaos moves clients between nodes: a node may end up serving what
    // another served before, so the level to come back to is the higher of
    // its own and the busiest node's before the chaos.
    let busiest = warm.iter().flatten().map(|f| f.rss).max().unwrap_or(0);
    let (mut rss_ok, mut fds_ok, mut seen) = (true, true, 0);
    let mut lines = Vec::new();
    for (i, a) in after.iter().enumerate() {
        let (Some(a), Some(w)) = (a, warm.get(i).copied().flatten()) else {
            lines.push(format!("node{}: not readable", i + 1));
            rss_ok = false;
            continue;
        };
        seen += 1;
        let fresh = if restarted.contains(&i) {
            RESTART_RSS
        } else {
            0
        };
        let cap = (w.rss.max(busiest) as f64 * (1.0 + RSS_SLACK)) as u64 + fresh;
        rss_ok &= a.rss <= cap;
        let fd_line = match (a.fds, idle.get(i).copied().flatten().and_then(|f| f.fds)) {
            (Some(now), Some(base)) => {
                fds_ok &= now <= base + FD_SLACK;
                format!("fds {now} (idle before: {base})")
            }
            _ => "fds not reported".into(),
        };
        lines.push(format!(
            "node{}: RSS {} (under load before the chaos: {}, busiest node {}, cap {}{}), {} connections, {fd_line}",
            i + 1,
            mib(a.rss),
            mib(w.rss),
            mib(busiest),
            mib(cap),
            if fresh > 0 {
                " with 4 MiB for a restarted node"
            } else {
                ""
            },
            a.connections
        ));
    }
    let evidence = lines.join("; ");
    if seen == 0 {
        s.note(format!(
            "node RSS and file descriptors not checked: {evidence}"
        ));
        return;
    }
    s.check(
        "Each node's RSS back within 10% of its level before the chaos",
        rss_ok,
        evidence.clone(),
    );
    s.check(
        "Each node's file descriptors back to baseline",
        fds_ok,
        evidence,
    );
}
